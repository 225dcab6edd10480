//! Reaching a host over SSH and running iftop there.

use super::Cause;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error(
        "cannot reach {host}:{port} over SSH (check the address, the port, and that sshd runs there)"
    )]
    Connect {
        host: String,
        port: u16,
        #[source]
        source: Cause,
    },

    #[error(
        "no SSH login to {host}:{port} within {secs} s: the host does not answer, or answers too slowly (check the address and any firewall)"
    )]
    Timeout { host: String, port: u16, secs: u64 },

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

    #[error("checking the host key of {host}:{port}: {problem}")]
    HostKey {
        host: String,
        port: u16,
        problem: String,
        #[source]
        source: Option<Cause>,
    },

    #[error(
        "login as {user} on {host} by {method} failed: {problem} (check the username and the password or key)"
    )]
    Auth {
        host: String,
        user: String,
        method: &'static str,
        problem: String,
        #[source]
        source: Option<Cause>,
    },

    #[error(
        "iftop is not installed on {host}: install it there (`apt install iftop`, or `yum install iftop`)"
    )]
    IftopMissing { host: String },

    #[error(
        "user {user} on {host} may not capture with iftop ({said}): log in as root, or set sudo = true for this host in the config file with a NOPASSWD sudo rule for iftop"
    )]
    IftopDenied {
        host: String,
        user: String,
        said: String,
    },

    #[error(
        "iftop on {host} printed no table for {iface} within {waited} s of starting a {window} s window: iftop reports only when a packet crosses the interface after the window, so on an idle link (or one too slow to deliver the table) it never does. No figures rather than a wrong zero: try again, sample a busier interface, or run `netmon agent` on {host} and set its agent_url"
    )]
    NoTable {
        host: String,
        iface: String,
        window: u64,
        waited: u64,
    },

    #[error("on {host}: {problem}")]
    Remote {
        host: String,
        problem: String,
        #[source]
        source: Option<Cause>,
    },
}
