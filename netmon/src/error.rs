//! netmon's errors. Each message says what to do next.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("interface name {name:?} is not valid: {reason}")]
    InvalidInterfaceName { name: String, reason: &'static str },

    #[error(
        "interface {name:?} does not exist on {host}; interfaces there: {available} (list_network_interfaces or `netmon interfaces` shows them)"
    )]
    UnknownInterface {
        name: String,
        host: String,
        available: String,
    },

    #[error(
        "no default route found to pick an interface from; choose one with --iface ({available})"
    )]
    NoDefaultInterface { available: String },

    #[error("sample window {got} is out of range: use {min}–{max} seconds")]
    BadWindow { got: String, min: u64, max: u64 },

    #[error("top (--top) must be at least 1 (got {0})")]
    BadTop(usize),

    #[error("flow table capacity (--table-capacity) {got} is out of range: use 1–{max}")]
    BadCapacity { got: u32, max: u32 },

    #[error("invalid arguments for {tool}: {detail}; {usage}")]
    BadArguments {
        tool: &'static str,
        detail: String,
        usage: &'static str,
    },

    #[error("the call was cancelled before its sample finished; nothing was kept")]
    Cancelled,

    #[error(
        "netmon is already running {limit} samples at once; retry when some have finished (each takes sample_seconds)"
    )]
    Busy { limit: usize },

    #[error(
        "netmon needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON to {action} (run it as root, or grant them: `sudo setcap cap_bpf,cap_net_admin,cap_perfmon+ep {exe}`): {detail}"
    )]
    NeedsPrivileges {
        action: &'static str,
        exe: String,
        detail: String,
    },

    #[error(
        "this kernel cannot {action} ({detail}); netmon needs eBPF (CONFIG_BPF_SYSCALL, BPF JIT) and TC classifiers (TCX on kernel 6.6+, or clsact with cls_bpf)"
    )]
    Unsupported {
        action: &'static str,
        detail: String,
    },

    #[error("eBPF {action} failed: {detail}")]
    Ebpf {
        action: &'static str,
        detail: String,
    },

    #[error(
        "refusing to serve MCP on {addr} without a bearer token: anything but loopback needs one (set {env} or pass --token-file; make one with `openssl rand -hex 32`), or bind 127.0.0.1",
        env = crate::mcp::http::TOKEN_ENV
    )]
    HttpNeedsToken { addr: std::net::SocketAddr },

    #[error(
        "the agent could not answer for {iface}: {reason}; retry, or check `journalctl`/the agent's stderr"
    )]
    AgentStalled { iface: String, reason: String },

    #[error(
        "the netmon agent of {host} ({url}) could not be reached: {detail}; check that `netmon agent` runs there and listens on that address (`curl {url}/../health`)"
    )]
    AgentUnreachable {
        host: String,
        url: String,
        detail: String,
    },

    #[error(
        "the netmon agent of {host} ({url}) refused the request (HTTP 401): {detail}; give the host `agent_token` in the config with the token the agent was started with (its --token-file or NETMON_MCP_TOKEN)"
    )]
    AgentRefused {
        host: String,
        url: String,
        detail: String,
    },

    #[error("the netmon agent of {host} answered: {message}")]
    AgentFailed { host: String, message: String },

    #[error("the bearer token from {origin} is not usable: {reason}")]
    BadToken { origin: String, reason: String },

    #[error(
        "serving HTTP on {addr}: {source} (is another process using the port? pick another with --http ADDR:PORT)"
    )]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "host {host:?} is not one netmon may reach: it is not in the config file's remote_hosts ({names}); add it there, or set allow_unlisted_hosts = true"
    )]
    HostNotAllowed { host: String, names: String },

    #[error(
        "no way to log in to {host}: pass password, or give the host an auth entry (key_file, password_env, password_file or agent) in the config file"
    )]
    NoCredential { host: String },

    #[error(
        "cannot reach {host}:{port} over SSH: {detail} (check the address, the port, and that sshd runs there)"
    )]
    SshConnect {
        host: String,
        port: u16,
        detail: String,
    },

    #[error(
        "no SSH login to {host}:{port} within {secs} s: the host does not answer, or answers too slowly (check the address and any firewall)"
    )]
    SshTimeout { host: String, port: u16, secs: u64 },

    #[error(
        "the host key of {host}:{port} ({fingerprint}) is not in {path}: check the fingerprint, then add it with `ssh-keyscan -p {port} {host} >> {path}`, or set host_key_policy = \"accept-new\"", path = path.display()
    )]
    UnknownHostKey {
        host: String,
        port: u16,
        fingerprint: String,
        path: PathBuf,
    },

    #[error(
        "the host key of {host}:{port} ({fingerprint}) differs from the one in {path} line {line}: the host was reinstalled, or someone is in between; if the change is expected, delete that line (`ssh-keygen -R` does) and add the new key", path = path.display()
    )]
    HostKeyChanged {
        host: String,
        port: u16,
        fingerprint: String,
        path: PathBuf,
        line: usize,
    },

    #[error("checking the host key of {host}:{port}: {detail}")]
    SshHostKey {
        host: String,
        port: u16,
        detail: String,
    },

    #[error(
        "login as {user} on {host} by {method} failed: {detail} (check the username and the password or key)"
    )]
    SshAuth {
        host: String,
        user: String,
        method: &'static str,
        detail: String,
    },

    #[error(
        "iftop is not installed on {host}: install it there (`apt install iftop`, or `yum install iftop`)"
    )]
    IftopMissing { host: String },

    #[error(
        "user {user} on {host} may not capture with iftop ({detail}): log in as root, or set sudo = true for this host in the config file with a NOPASSWD sudo rule for iftop"
    )]
    IftopDenied {
        host: String,
        user: String,
        detail: String,
    },

    #[error("on {host}: {detail}")]
    Remote { host: String, detail: String },

    #[error("config file {path}: {reason}")]
    BadConfig { path: PathBuf, reason: String },

    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Classifies an error from aya: permission and missing-feature errors get their own variant
    /// so the message can name the fix.
    pub fn from_ebpf(action: &'static str, err: &(dyn std::error::Error + 'static)) -> Self {
        let detail = chain(err);
        let errno = io_errno(err);
        match errno {
            Some(libc::EPERM) | Some(libc::EACCES) => Self::NeedsPrivileges {
                action,
                exe: std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "netmon".into()),
                detail,
            },
            Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => Self::Unsupported { action, detail },
            _ => Self::Ebpf { action, detail },
        }
    }
}

/// The whole `source()` chain as one line.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let m = e.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = e.source();
    }
    s
}

fn io_errno(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(n) = io.raw_os_error()
        {
            return Some(n);
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("bpf_map_create failed")]
    struct Wrapped(#[source] std::io::Error);

    #[test]
    fn eperm_anywhere_in_the_chain_names_the_capabilities() {
        let e = Wrapped(std::io::Error::from_raw_os_error(libc::EPERM));
        let msg = Error::from_ebpf("load the eBPF program", &e).to_string();
        assert!(
            msg.contains("CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"),
            "{msg}"
        );
        assert!(msg.contains("run it as root"), "{msg}");
        assert!(msg.contains("bpf_map_create failed"), "{msg}");
    }

    #[test]
    fn enosys_says_the_kernel_lacks_bpf() {
        let e = Wrapped(std::io::Error::from_raw_os_error(libc::ENOSYS));
        assert!(matches!(
            Error::from_ebpf("load the eBPF program", &e),
            Error::Unsupported { .. }
        ));
    }
}
