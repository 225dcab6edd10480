//! What netmon reads of /proc about other processes: every read bounded (a process writes its
//! own command line, and a hostile one can make it megabytes), and the text parsed by pure
//! functions, fuzzed with everything else a client or another process writes.

use std::io::Read as _;

/// Bytes of a command line kept; the rest is cut.
pub const CMDLINE_MAX: usize = 256;
/// Most bytes read of a small /proc file (`status`, `cgroup`, `comm`).
pub const SMALL_MAX: usize = 64 << 10;
/// Most bytes read of `mountinfo` (thousands of mounts fit).
pub const MOUNTINFO_MAX: usize = 4 << 20;

/// At most `max` bytes of `path`.
pub fn read(path: &str, max: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(max as u64)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// At most `max` bytes of `path`, as text (invalid UTF-8 replaced).
pub fn read_text(path: &str, max: usize) -> Option<String> {
    read(path, max).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// A `/proc/PID/cmdline` (arguments separated by NUL) as one line, arguments joined by
/// spaces, cut at [`CMDLINE_MAX`] bytes.
pub fn cmdline(raw: &[u8]) -> String {
    let b = &raw[..raw.len().min(CMDLINE_MAX)];
    String::from_utf8_lossy(b)
        .split('\0')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The value of `key` (e.g. `Uid:`, `PPid:`) in a `/proc/PID/status`: its first field.
pub fn status_field(status: &str, key: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The cgroup v2 path in a `/proc/PID/cgroup` (its `0::` line).
pub fn cgroup_v2(cgroup: &str) -> Option<String> {
    cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_string))
}

/// The mount point of the first cgroup2 filesystem in a `/proc/PID/mountinfo`.
pub fn cgroup2_mount(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|l| {
        let (mount, rest) = l.split_once(" - ")?;
        rest.starts_with("cgroup2 ")
            .then(|| mount.split_whitespace().nth(4).map(str::to_string))
            .flatten()
    })
}

/// The inode of a `/proc/PID/fd/N` link that names a socket (`socket:[12345]`).
pub fn socket_inode(link: &str) -> Option<u32> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_text_is_parsed_and_bounded() {
        assert_eq!(cmdline(b"iperf3\0-c\x0010.0.0.1\0"), "iperf3 -c 10.0.0.1");
        let long = vec![b'a'; 10_000];
        assert_eq!(cmdline(&long).len(), CMDLINE_MAX);
        assert_eq!(cmdline(&[0xff, 0, b'x']), "\u{fffd} x");
        let status = "Name:\tbash\nPPid:\t42\nUid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(status_field(status, "Uid:"), Some(1000));
        assert_eq!(status_field(status, "PPid:"), Some(42));
        assert_eq!(status_field("Uid:\n", "Uid:"), None);
        assert_eq!(
            cgroup_v2("12:cpu:/x\n0::/system.slice/a.service\n").as_deref(),
            Some("/system.slice/a.service")
        );
        let mountinfo = "29 1 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(mountinfo).as_deref(),
            Some("/sys/fs/cgroup/unified")
        );
        assert_eq!(socket_inode("socket:[12345]"), Some(12345));
        assert_eq!(socket_inode("pipe:[1]"), None);
        assert_eq!(socket_inode("socket:[99999999999]"), None);
        // A /proc file read whole would be megabytes: the read stops at its bound.
        assert_eq!(read("/dev/zero", 1000).map(|b| b.len()), Some(1000));
    }
}
