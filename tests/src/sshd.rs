//! A real OpenSSH server for the remote-host tests: Debian's sshd started inside a namespace the
//! test created, with its own host key, and the test users it logs in.

use crate::mcp::{Log, drain_pipe, read_log};
use crate::{Spawned, TempDir, in_ns, sh};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Users the tests log in as. Created once on the machine (idempotently) and kept.
pub const PW_USER: &str = "nmtest-pw";
/// Logs in with a key; has no sudo, so it cannot capture.
pub const NOSUDO_USER: &str = "nmtest-nosudo";
/// The password user's password; the tests check it never shows up in logs or messages.
pub const PW: &str = "Nm-t3st-Pw-5f1c9a";

/// The sudoers rule README documents for `sudo = true`, for `user`: read from README itself, so
/// the tests install exactly what a reader is told to.
pub fn documented_sudo_rule(user: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let line = readme
        .lines()
        .find(|l| l.starts_with("USER ALL=(root) NOPASSWD:"))
        .expect("README documents a sudoers rule starting `USER ALL=(root) NOPASSWD:`");
    assert_eq!(
        line,
        netmon::source::ssh::SUDO_RULE,
        "README's rule and the one netmon's remote command is written for differ"
    );
    line.replacen("USER", user, 1)
}

/// Creates the test users if missing: the password user may run iftop through `sudo -n` by
/// README's rule, the other has no password and no sudo.
pub fn ensure_users() {
    for user in [PW_USER, NOSUDO_USER] {
        let exists = Command::new("id")
            .arg(user)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !exists {
            sh(Command::new("useradd").args(["-m", "-s", "/bin/sh", user]));
        }
    }
    let mut chpasswd = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .expect("chpasswd");
    use std::io::Write;
    writeln!(chpasswd.stdin.take().expect("stdin"), "{PW_USER}:{PW}").expect("chpasswd input");
    assert!(chpasswd.wait().expect("chpasswd").success());
    // '*': no password, but not locked (sshd refuses locked accounts even with a key).
    sh(Command::new("usermod").args(["-p", "*", NOSUDO_USER]));
    let rule = format!("{}\n", documented_sudo_rule(PW_USER));
    let path = Path::new("/etc/sudoers.d/netmon-test");
    if std::fs::read_to_string(path).ok().as_deref() != Some(rule.as_str()) {
        std::fs::write(path, &rule).expect("sudoers drop-in");
        sh(Command::new("chmod").args(["0440", path.to_str().unwrap()]));
    }
}

/// An ed25519 key pair in `dir`: (private key path, public key line).
pub fn keypair(dir: &TempDir, name: &str) -> (PathBuf, String) {
    let key = dir.path(name);
    sh(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key));
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    (key, public.trim().to_string())
}

/// What /usr/sbin/iftop is on a test host.
pub enum Iftop<'a> {
    /// Debian's iftop.
    Real,
    /// Not there (an empty file that cannot run).
    Missing,
    /// This executable instead: a broken or hostile host.
    Replaced(&'a Path),
}

/// sshd running in the foreground inside a namespace; stopped on drop.
pub struct Sshd {
    pub child: Spawned,
    pub log: Log,
    /// The host's public key line (`ssh-ed25519 AAAA... comment`).
    pub host_key: String,
}

impl Sshd {
    /// Starts sshd on `addr:port` in `ns`, with `authorized` (user, public key) logins, and
    /// `iftop` as the host's /usr/sbin/iftop (in a mount namespace of the server's own).
    pub fn start(
        ns: &str,
        addr: &str,
        port: u16,
        dir: &TempDir,
        host_key: &Path,
        authorized: &[(&str, &str)],
        iftop: Iftop,
    ) -> Self {
        let keys = dir.path(&format!("authorized-{port}"));
        std::fs::create_dir_all(&keys).expect("keys dir");
        for (user, key) in authorized {
            std::fs::write(keys.join(user), format!("{key}\n")).expect("authorized key");
        }
        let config = dir.path(&format!("sshd-{port}.conf"));
        std::fs::write(
            &config,
            format!(
                "ListenAddress {addr}:{port}\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}/%u\n\
                 StrictModes no\nUsePAM no\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nLogLevel VERBOSE\nSubsystem sftp internal-sftp\n",
                host_key.display(),
                dir.path(&format!("sshd-{port}.pid")).display(),
                keys.display(),
            ),
        )
        .expect("sshd config");
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let sshd = format!("/usr/sbin/sshd -D -e -f {}", config.display());
        let script = match iftop {
            Iftop::Real => format!("exec {sshd}"),
            Iftop::Missing => format!("mount --bind /dev/null /usr/sbin/iftop && exec {sshd}"),
            Iftop::Replaced(by) => {
                format!(
                    "mount --bind {} /usr/sbin/iftop && exec {sshd}",
                    by.display()
                )
            }
        };
        let mut cmd = in_ns(ns, "unshare");
        cmd.args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = Spawned(cmd.spawn().expect("starting sshd"));
        let log = drain_pipe(child.0.stderr.take().expect("stderr"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let listening = in_ns(ns, "ss")
                .args(["-Hltn", &format!("sport = :{port}")])
                .output()
                .expect("ss");
            if !listening.stdout.is_empty() {
                break;
            }
            if let Some(s) = child.0.try_wait().expect("wait") {
                panic!("sshd exited with {s}:\n{}", read_log(&log));
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen within 10 s:\n{}",
                read_log(&log)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let host_key = std::fs::read_to_string(host_key.with_extension("pub"))
            .expect("host public key")
            .trim()
            .to_string();
        Self {
            child,
            log,
            host_key,
        }
    }
}
