//! iftop's text output, as a remote host (compromised or broken) may send it: whole tables,
//! truncated, interleaved, huge numbers, unknown units, invalid UTF-8. Parsing must end in a
//! table or an error; a table must turn into a measurement.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(Some(table)) = netmon::iftop::parse(&text) {
        let own = ["10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()];
        let m = netmon::iftop::measurement(&table, 2_000_000_000, &own);
        // Every row is one of the table's.
        assert!(m.rows.len() <= table.pairs.len());
    }
    let _ = netmon::iftop::parse_size(&text);
});
