//! What netmon reads of /proc about other processes, as they may have made it: command lines,
//! status, cgroup and mountinfo files, fd links.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netmon::owner::procfs;

fuzz_target!(|data: &[u8]| {
    let line = procfs::cmdline(data);
    assert!(line.len() <= procfs::CMDLINE_MAX * 3);
    let text = String::from_utf8_lossy(data);
    let _ = procfs::status_field(&text, "Uid:");
    let _ = procfs::status_field(&text, "PPid:");
    let _ = procfs::cgroup_v2(&text);
    let _ = procfs::cgroup2_mount(&text);
    let _ = procfs::socket_inode(&text);
});
