//! SSH to a remote host with russh: host keys checked against OpenSSH known_hosts, login by
//! password, key file or ssh-agent, and one command run with a deadline.
//!
//! Every step is bounded: connect + handshake + login by the login's timeout, the command by its
//! deadline. Passwords live only in the [`Login`] of one call and are never logged or put in an
//! error.

use crate::config::HostKeyPolicy;
use crate::error::{Cause, SshError};
use crate::secret::Secret;
use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{self, HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How to prove who we are.
#[derive(Debug)]
pub enum Credential {
    Password(Secret),
    KeyFile(PathBuf),
    Agent,
}

impl Credential {
    fn method(&self) -> &'static str {
        match self {
            Credential::Password(_) => "password",
            Credential::KeyFile(_) => "key file",
            Credential::Agent => "ssh-agent",
        }
    }
}

/// Everything needed to log in to one host.
#[derive(Debug)]
pub struct Login {
    /// Address or DNS name to connect to.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub credential: Credential,
    pub policy: HostKeyPolicy,
    pub known_hosts: PathBuf,
    pub connect_timeout: Duration,
}

/// The host key check's verdict, kept for the error message (russh only sees accept/refuse).
type Verdict = Arc<Mutex<Option<SshError>>>;

struct Checker {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    policy: HostKeyPolicy,
    verdict: Verdict,
}

/// known_hosts line numbers as russh counts them (comment lines skipped) → real line numbers.
pub fn real_line(text: &str, russh_line: usize) -> usize {
    let mut counted = 0;
    for (i, l) in text.lines().enumerate() {
        if l.starts_with('#') {
            continue;
        }
        counted += 1;
        if counted == russh_line {
            return i + 1;
        }
    }
    russh_line
}

impl Checker {
    fn refuse(&self, e: SshError) -> Result<bool, russh::Error> {
        *self.verdict.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        Ok(false)
    }
}

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return self.refuse(SshError::HostKey {
                host: self.host.clone(),
                port: self.port,
                problem: "the server offered a certificate; netmon checks plain host keys against known_hosts".into(),
                source: None,
            });
        };
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        match keys::check_known_hosts_path(&self.host, self.port, key, &self.known_hosts) {
            Ok(true) => Ok(true),
            Ok(false) => match self.policy {
                HostKeyPolicy::AcceptNew => {
                    match keys::known_hosts::learn_known_hosts_path(
                        &self.host,
                        self.port,
                        key,
                        &self.known_hosts,
                    ) {
                        Ok(()) => {
                            log::info!(
                                "recorded the host key of {}:{} ({fingerprint}) in {}",
                                self.host,
                                self.port,
                                self.known_hosts.display()
                            );
                            Ok(true)
                        }
                        Err(e) => self.refuse(SshError::HostKey {
                            host: self.host.clone(),
                            port: self.port,
                            problem: format!(
                                "cannot record its key in {}",
                                self.known_hosts.display()
                            ),
                            source: Some(Box::new(e)),
                        }),
                    }
                }
                HostKeyPolicy::Strict => self.refuse(SshError::UnknownHostKey {
                    host: self.host.clone(),
                    port: self.port,
                    fingerprint,
                    path: self.known_hosts.clone(),
                }),
            },
            Err(keys::Error::KeyChanged { line }) => {
                let text = std::fs::read_to_string(&self.known_hosts).unwrap_or_default();
                self.refuse(SshError::HostKeyChanged {
                    host: self.host.clone(),
                    port: self.port,
                    fingerprint,
                    path: self.known_hosts.clone(),
                    line: real_line(&text, line),
                })
            }
            Err(e) => self.refuse(SshError::HostKey {
                host: self.host.clone(),
                port: self.port,
                problem: format!("reading {}", self.known_hosts.display()),
                source: Some(Box::new(e)),
            }),
        }
    }
}

/// An open, logged-in SSH connection.
pub struct Session {
    handle: Handle<Checker>,
    host: String,
}

/// Most stdout kept of one remote command. iftop's table of 500 rows is about 60 KB and `ip`'s
/// listing of a thousand interfaces under 1 MB; a host that sends more is broken or hostile, and
/// what it sends must not pile up in the server's memory.
pub const MAX_STDOUT: usize = 4 << 20;
/// Most stderr kept: error messages are lines.
pub const MAX_STDERR: usize = 64 << 10;

/// What a command printed and how it ended.
#[derive(Debug, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    /// `None` when the deadline came first (the channel was closed) or no status was sent.
    pub status: Option<u32>,
    pub timed_out: bool,
}

impl Session {
    /// Connects, checks the host key and logs in, all within `login.connect_timeout`.
    pub async fn open(login: &Login) -> Result<Self, SshError> {
        let secs = login.connect_timeout.as_secs();
        match tokio::time::timeout(login.connect_timeout, Self::open_unbounded(login)).await {
            Ok(r) => r,
            Err(_) => Err(SshError::Timeout {
                host: login.host.clone(),
                port: login.port,
                secs,
            }),
        }
    }

    async fn open_unbounded(login: &Login) -> Result<Self, SshError> {
        let verdict: Verdict = Arc::default();
        let checker = Checker {
            host: login.host.clone(),
            port: login.port,
            known_hosts: login.known_hosts.clone(),
            policy: login.policy,
            verdict: verdict.clone(),
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        });
        let mut handle =
            match client::connect(config, (login.host.as_str(), login.port), checker).await {
                Ok(h) => h,
                Err(e) => {
                    if let Some(v) = verdict.lock().unwrap_or_else(|p| p.into_inner()).take() {
                        return Err(v);
                    }
                    return Err(SshError::Connect {
                        host: login.host.clone(),
                        port: login.port,
                        source: Box::new(e),
                    });
                }
            };
        let auth_failed = |problem: &str, source: Option<Cause>| SshError::Auth {
            host: login.host.clone(),
            user: login.user.clone(),
            method: login.credential.method(),
            problem: problem.to_string(),
            source,
        };
        let failed =
            |problem: &'static str| move |e: russh::Error| auth_failed(problem, Some(Box::new(e)));
        let result = match &login.credential {
            Credential::Password(p) => handle
                .authenticate_password(login.user.clone(), p.expose().to_string())
                .await
                .map_err(failed("the exchange failed"))?,
            Credential::KeyFile(path) => {
                let key = keys::load_secret_key(path, None).map_err(|e| {
                    auth_failed(
                        &format!("cannot read the key {}", path.display()),
                        Some(Box::new(e)),
                    )
                })?;
                let hash = handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(failed("the exchange failed"))?
                    .flatten();
                handle
                    .authenticate_publickey(
                        login.user.clone(),
                        PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                    )
                    .await
                    .map_err(failed("the exchange failed"))?
            }
            Credential::Agent => {
                let mut agent = keys::agent::client::AgentClient::connect_env()
                    .await
                    .map_err(|e| auth_failed("no ssh-agent ($SSH_AUTH_SOCK)", Some(Box::new(e))))?;
                let ids = agent
                    .request_identities()
                    .await
                    .map_err(|e| auth_failed("asking the ssh-agent failed", Some(Box::new(e))))?;
                let mut result = None;
                for id in ids {
                    let key = id.public_key().into_owned();
                    let r = handle
                        .authenticate_publickey_with(login.user.clone(), key, None, &mut agent)
                        .await
                        .map_err(|e| auth_failed("the exchange failed", Some(Box::new(e))))?;
                    if r.success() {
                        result = Some(r);
                        break;
                    }
                }
                result
                    .ok_or_else(|| auth_failed("the ssh-agent has no key the host accepts", None))?
            }
        };
        if !result.success() {
            return Err(auth_failed("the host refused it", None));
        }
        Ok(Self {
            handle,
            host: login.host.clone(),
        })
    }

    /// Runs `command` until it exits or `deadline` passes. `on_stdout` sees stdout as it
    /// arrives, with the time it arrived.
    ///
    /// `terminal`: run it on a pseudo-terminal, so that its stdout is line-buffered as on a
    /// terminal (a program's stdio buffers a pipe in 4 KB blocks, and a killed one loses them).
    /// Its stderr then arrives on stdout too. Output processing is off, so lines end in `\n`
    /// as the program wrote them. A host that refuses terminals (`PermitTTY no`) runs the
    /// command on pipes instead.
    pub async fn exec(
        &self,
        command: &str,
        deadline: Instant,
        terminal: bool,
        mut on_stdout: impl FnMut(&str, Instant),
    ) -> Result<Output, SshError> {
        let remote = |problem: &str, e: russh::Error| SshError::Remote {
            host: self.host.clone(),
            problem: problem.to_string(),
            source: Some(Box::new(e)),
        };
        let mut channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| remote("opening a session channel failed", e))?;
        if terminal {
            // No reply asked: a refusal leaves the channel usable, on pipes.
            channel
                .request_pty(
                    false,
                    "dumb",
                    200,
                    50,
                    0,
                    0,
                    &[(russh::Pty::OPOST, 0), (russh::Pty::ECHO, 0)],
                )
                .await
                .map_err(|e| remote("asking for a pseudo-terminal failed", e))?;
        }
        channel
            .exec(true, command)
            .await
            .map_err(|e| remote("starting the command failed", e))?;
        let mut out = Output::default();
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let too_much = |stream: &str| SshError::Remote {
            host: self.host.clone(),
            problem: format!(
                "the command printed more than {} bytes on {stream}, far more than iftop's table or `ip`'s listing: netmon stopped reading and closed the session (is the host's iftop or shell profile printing something else?)",
                match stream {
                    "stdout" => MAX_STDOUT,
                    _ => MAX_STDERR,
                }
            ),
            source: None,
        };
        loop {
            let msg = tokio::select! {
                m = channel.wait() => m,
                _ = tokio::time::sleep_until(deadline) => {
                    out.timed_out = true;
                    let _ = channel.close().await;
                    break;
                }
            };
            match msg {
                Some(ChannelMsg::Data { data }) => {
                    if stdout.len() + data.len() > MAX_STDOUT {
                        let _ = channel.close().await;
                        return Err(too_much("stdout"));
                    }
                    stdout.extend_from_slice(&data);
                    on_stdout(&String::from_utf8_lossy(&data), Instant::now());
                }
                Some(ChannelMsg::ExtendedData { data, .. }) => {
                    if stderr.len() + data.len() > MAX_STDERR {
                        let _ = channel.close().await;
                        return Err(too_much("stderr"));
                    }
                    stderr.extend_from_slice(&data);
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => out.status = Some(exit_status),
                Some(ChannelMsg::Close) | None => break,
                Some(_) => {}
            }
        }
        out.stdout = String::from_utf8_lossy(&stdout).into_owned();
        out.stderr = String::from_utf8_lossy(&stderr).into_owned();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_lines_count_comments() {
        let text = "# a comment\nhost1 ssh-ed25519 AAAA\n# another\nhost2 ssh-ed25519 BBBB\n";
        assert_eq!(real_line(text, 1), 2);
        assert_eq!(real_line(text, 2), 4);
    }

    #[test]
    fn passwords_do_not_print() {
        let c = Credential::Password(Secret::new("hunter2".into()));
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
