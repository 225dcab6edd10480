#![no_std]
//! Empty library target: lets `netmon` declare this crate as a build dependency.
