//! The pcap-filter subset from any MCP client or command line, and what netmon writes back for
//! iftop's own `-f`. What parses must write back to text made only of the subset's words,
//! addresses, numbers and parentheses, which parses again to a filter that writes the same text
//! and decides every packet alike. What is refused names a word of the text, or the whole
//! expression when it is too long.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netmon::filter::{MAX_WRITTEN_FILTER_BYTES, Packet, parse, parse_written};

fn packets(seed: &[u8]) -> Vec<Packet> {
    seed.chunks(12)
        .map(|c| {
            let b = |i: usize| c.get(i).copied().unwrap_or(0);
            let v6 = b(0) & 1 == 1;
            let (src, dst) = if v6 {
                (
                    std::net::IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, u16::from(b(1))]),
                    std::net::IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, u16::from(b(2))]),
                )
            } else {
                (
                    std::net::IpAddr::from([10, 0, b(1), b(2)]),
                    std::net::IpAddr::from([10, b(3), 0, b(4)]),
                )
            };
            Packet {
                src,
                dst,
                sport: (b(5) & 1 == 1).then(|| u16::from_be_bytes([b(6), b(7)])),
                dport: (b(5) & 2 == 2).then(|| u16::from_be_bytes([b(8), b(9)])),
                proto: Some(b(10)),
            }
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let text = String::from_utf8_lossy(&data[..split]);
    let probes = packets(&data[split.min(data.len())..]);
    match parse(&text) {
        Ok(None) => {}
        Ok(Some(f)) => {
            let written = f.to_pcap();
            assert!(
                written
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || " ():./-".contains(c)),
                "{written:?}"
            );
            assert!(
                written.len() <= MAX_WRITTEN_FILTER_BYTES,
                "{text:?} wrote {} bytes",
                written.len()
            );
            let back = parse_written(&written)
                .unwrap_or_else(|e| panic!("{text:?} wrote {written:?}, which does not parse: {e}"))
                .expect("a filter");
            assert_eq!(back.to_pcap(), written, "writing is not stable for {text:?}");
            for p in &probes {
                assert_eq!(f.matches(p), back.matches(p), "{text:?} vs {written:?} on {p:?}");
            }
        }
        Err(e) => {
            assert!(
                e.word == "(end)"
                    || e.word == "(the whole expression)"
                    || text.contains(e.word.as_str()),
                "{e} for {text:?}"
            );
        }
    }
});
