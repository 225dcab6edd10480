//! Units. JSON uses SI (MB = 10^6 bytes, Mbps = 10^6 bit/s) plus exact integers; the text view
//! uses iftop's own notation so it reads like `iftop -t`.

/// Bytes → MB (10^6 bytes).
pub fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Average bits per second over `window_ns`, rounded to the nearest integer; 0 for an empty window.
pub fn bits_per_second(bytes: u64, window_ns: u64) -> u64 {
    if window_ns == 0 {
        return 0;
    }
    let bits = u128::from(bytes) * 8 * 1_000_000_000;
    let w = u128::from(window_ns);
    u64::try_from((bits + w / 2) / w).unwrap_or(u64::MAX)
}

/// bit/s → Mbps (10^6 bit/s).
pub fn megabits(bps: u64) -> f64 {
    bps as f64 / 1e6
}

/// iftop's notation: 1024-based units that step up once the value reaches 1000 (so 1000 B prints
/// as `0.98KB`), two decimals below 10, one below 100, none above. `bits` picks b/Kb/Mb/Gb/Tb
/// instead of B/KB/MB/GB/TB.
pub fn iftop_size(value: f64, bits: bool) -> String {
    const BYTE_UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    const BIT_UNITS: [&str; 5] = ["b", "Kb", "Mb", "Gb", "Tb"];
    let units = if bits { BIT_UNITS } else { BYTE_UNITS };
    let mut v = value.max(0.0);
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        return format!("{}{}", v.round() as u64, units[0]);
    }
    let decimals = if v < 10.0 {
        2
    } else if v < 100.0 {
        1
    } else {
        0
    };
    format!("{v:.decimals$}{}", units[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_units() {
        assert_eq!(megabytes(10_865_894), 10.865894);
        assert_eq!(bits_per_second(1_000_000, 1_000_000_000), 8_000_000);
        assert_eq!(bits_per_second(1_000_000, 2_000_000_000), 4_000_000);
        assert_eq!(bits_per_second(1, 3_000_000_000), 3); // 2.67 rounds to 3
        assert_eq!(bits_per_second(5, 0), 0);
        assert_eq!(megabits(26_600_000), 26.6);
    }

    #[test]
    fn iftop_notation_matches_real_iftop_output() {
        // Figures from iftop 1.0~pre4 (shared/reference/iftop-text-output.md).
        assert_eq!(iftop_size(10_865_894.0, false), "10.4MB");
        assert_eq!(iftop_size(1000.0, false), "0.98KB");
        assert_eq!(iftop_size(338.0, false), "338B");
        assert_eq!(iftop_size(0.0, false), "0B");
        assert_eq!(iftop_size(3.66 * 1024.0, false), "3.66KB");
        assert_eq!(iftop_size(104.0 * 1024.0, true), "104Kb");
        assert_eq!(iftop_size(26.6 * 1024.0 * 1024.0, true), "26.6Mb");
        assert_eq!(iftop_size(999.0, true), "999b");
    }
}
