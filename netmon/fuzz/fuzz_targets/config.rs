//! The config file (TOML): a mistake is an error that names the place, never a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = netmon::config::Config::parse(&text, std::path::Path::new("/fuzz/netmon.toml"));
});
