//! A remote host's `ip -o -d link` and `ip -o addr` output, read over SSH: the host controls it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for i in netmon::source::ssh::parse_ip_output(&text) {
        let _ = netmon::request::IfaceName::parse(&i.name, "iface");
    }
});
