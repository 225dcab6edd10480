//! Netlink replies (sock_diag's socket list, tc's filter dump): messages and attributes of any
//! length, checked as if anyone could have written them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netmon::netlink;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, buf)) = data.split_first() else {
        return;
    };
    let mut out = Vec::new();
    let _ = netlink::replies(buf, flags & 1 == 1, &mut out);
    for m in &out {
        let _ = netmon::owner::diag::parse_msg(&m.body, flags >> 1);
        for (_, v) in netlink::attributes(&m.body) {
            let _ = netlink::attr_str(v);
            let _ = netlink::attributes(v);
        }
    }
    let _ = netmon::source::ebpf::tc::parse_filters(&out);
});
