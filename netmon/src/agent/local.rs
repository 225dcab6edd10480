//! The agent's local socket: `netmon traffic` on the same host asks the running agent over a
//! Unix socket instead of loading a classifier of its own. The agent has the programs verified,
//! the interfaces attached and the history recorded, so the answer costs no verifier, no map
//! creation and no attach: a watched interface is answered from the agent's history at once.
//!
//! The protocol is one JSON line each way per connection: a [`LocalRequest`] (a validated
//! [`TrafficRequest`] in words: the filter as netmon writes it back, which reads back as the same
//! filter) and a [`Response`] of [`TrafficData`]. Who may ask is decided by the socket file's
//! permissions, as for other local daemons' sockets: root and the `netmon` group (the group the
//! package creates), no one else. There is no token: whoever can open the file is on this host
//! and in that group.

use super::Agent;
use super::source::AgentSource;
use crate::error::{ArgNames, Error, RequestError};
use crate::names::Namer;
use crate::rank::{GroupBy, SortKey};
use crate::report::{Response, TrafficData};
use crate::request::{Naming, SampleWindow, TrafficRequest};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Where the agent listens, and the CLI looks, unless `NETMON_AGENT_SOCKET` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/netmon/agent.sock";
/// The environment variable naming another socket path (tests, a second agent).
pub const SOCKET_ENV: &str = "NETMON_AGENT_SOCKET";
/// Longest request line read: a request is a few hundred bytes, its filter at most
/// [`crate::filter::MAX_WRITTEN_FILTER_BYTES`].
const MAX_REQUEST: u64 = 128 * 1024;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests answered at once; more wait for a turn.
const CONCURRENT: usize = 8;
/// Longest answer the CLI reads: 1,000 rows of a few hundred bytes, with room.
const MAX_ANSWER: u64 = 16 * 1024 * 1024;

/// The socket path: `NETMON_AGENT_SOCKET`, else [`DEFAULT_SOCKET`].
pub fn socket_path() -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// A [`TrafficRequest`] as it crosses the socket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalRequest {
    /// The interface, resolved by the client (the default route's when it named none).
    pub iface: String,
    pub seconds: f64,
    pub top: usize,
    pub sort: SortKey,
    pub by: GroupBy,
    /// The filter in netmon's words ([`crate::filter::Filter::to_pcap`]).
    pub filter: Option<String>,
    pub net4: Option<String>,
    pub net6: Option<String>,
    pub hosts: bool,
    pub services: bool,
    /// The asker's network namespace (the inode of /proc/self/ns/net): interface names mean
    /// something only inside one, and a socket file under /run is seen from all of them.
    pub netns: u64,
}

/// The agent's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
enum LocalAnswer {
    Traffic(Box<Response<TrafficData>>),
    /// The asker is in another network namespace: it samples by itself.
    OtherNamespace {
        agent_netns: u64,
    },
}

/// This process's network namespace, as the inode of its /proc link (0 if /proc says nothing).
pub fn own_netns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net").map_or(0, |m| m.ino())
}

impl LocalRequest {
    pub fn new(req: &TrafficRequest, iface: &str) -> Self {
        Self {
            netns: own_netns(),
            iface: iface.to_string(),
            seconds: req.window.duration().as_secs_f64(),
            top: req.top,
            sort: req.sort,
            by: req.by,
            filter: req.selection.filter.as_ref().map(|f| f.to_pcap()),
            net4: req.selection.net4.as_ref().map(ToString::to_string),
            net6: req.selection.net6.as_ref().map(ToString::to_string),
            hosts: req.naming.hosts,
            services: req.naming.services,
        }
    }

    /// The request again, checked as the CLI checks its flags. The filter is text netmon
    /// wrote, which may be longer than a person's ([`crate::filter::parse_written`]).
    pub fn request(&self) -> Result<TrafficRequest, RequestError> {
        let mut req = TrafficRequest::new(
            Some(&self.iface),
            self.seconds,
            SampleWindow::CLI_RANGE,
            self.top,
            self.sort,
            self.by,
            ArgNames::CLI,
        )?
        .with_selection(None, self.net4.as_deref(), self.net6.as_deref())?
        .with_naming(Naming {
            hosts: self.hosts,
            services: self.services,
        });
        req.selection.filter = self
            .filter
            .as_deref()
            .map(crate::filter::parse_written)
            .transpose()
            .map_err(|source| RequestError::BadFilter {
                arg: ArgNames::CLI.filter,
                source,
            })?
            .flatten();
        Ok(req)
    }
}

/// Why the local socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(
        "another netmon agent already answers on {path}; stop it, or give this one another socket with {SOCKET_ENV}"
    )]
    InUse { path: PathBuf },
    #[error(
        "could not create the agent's socket {path}: {source}; the agent needs write access to its directory (root, or RuntimeDirectory=netmon under systemd)"
    )]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The `netmon` group's id, if the host has that group.
fn netmon_gid() -> Option<libc::gid_t> {
    let name = c"netmon";
    // SAFETY: getgrnam reads a NUL-terminated name and returns a pointer into static storage
    // (or null), which is read at once; the agent calls this once, before serving.
    let g = unsafe { libc::getgrnam(name.as_ptr()) };
    // SAFETY: non-null: a valid group record.
    (!g.is_null()).then(|| unsafe { (*g).gr_gid })
}

/// Binds the socket: a file left by an agent that died is replaced, one that answers is not.
pub async fn bind(path: &Path) -> Result<UnixListener, LocalError> {
    let create = |source| LocalError::Create {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(create)?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(LocalError::InUse {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(create)?;
    }
    let listener = UnixListener::bind(path).map_err(create)?;
    // Root and the netmon group may ask. The file goes to that group when the agent may give
    // it (root, or a member of the group, as the packaged unit's user is); otherwise only the
    // agent's user and root may ask.
    let grouped =
        netmon_gid().is_some_and(|gid| std::os::unix::fs::chown(path, None, Some(gid)).is_ok());
    let mode = if grouped { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(create)?;
    Ok(listener)
}

/// Answers on `listener` until `shutdown`, then removes the socket file.
pub async fn serve(
    agent: Arc<Agent>,
    listener: UnixListener,
    path: PathBuf,
    shutdown: CancellationToken,
) {
    let turns = Arc::new(Semaphore::new(CONCURRENT));
    let namer = Arc::new(Namer::default());
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    log::warn!("local socket: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (agent, turns, namer, stop) = (
            agent.clone(),
            turns.clone(),
            namer.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            let Ok(_turn) = turns.acquire().await else {
                return;
            };
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = answer(agent, stream, &namer) => {}
            }
        });
    }
    let _ = std::fs::remove_file(&path);
}

async fn answer(agent: Arc<Agent>, stream: UnixStream, namer: &Namer) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    let read = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await;
    let response = match read {
        Err(_) => Response::err(format!("no request within {} s", REQUEST_TIMEOUT.as_secs())),
        Ok(Err(e)) => Response::err(format!("reading the request: {e}")),
        Ok(Ok(_)) if !line.ends_with('\n') => Response::err(format!(
            "the request is not one line of at most {MAX_REQUEST} bytes"
        )),
        Ok(Ok(_)) => match serde_json::from_str::<LocalRequest>(&line) {
            Err(e) => Response::err(format!("not a netmon request: {e}")),
            Ok(r) if r.netns != own_netns() => {
                return send(
                    &mut write,
                    &LocalAnswer::OtherNamespace {
                        agent_netns: own_netns(),
                    },
                )
                .await;
            }
            Ok(r) => match r.request() {
                Err(e) => Response::err(crate::error::chain(&e)),
                Ok(req) => {
                    let source = AgentSource::new(agent);
                    match crate::source::collect(&source, &req, None, &|_| {}, namer).await {
                        Ok(data) => Response::ok(data.summary(), data),
                        Err(e) => Response::err(crate::error::chain(&e)),
                    }
                }
            },
        },
    };
    send(&mut write, &LocalAnswer::Traffic(Box::new(response))).await;
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, answer: &LocalAnswer) {
    let mut out = serde_json::to_vec(answer).unwrap_or_default();
    out.push(b'\n');
    if let Err(e) = write.write_all(&out).await {
        log::debug!("local socket: the client left before its answer: {e}");
    }
}

/// Asks the agent at `path`. `None`: no agent answers there for this network namespace (no
/// socket, a file left by one that died, or an agent of another namespace), so the caller
/// samples by itself.
pub async fn ask(path: &Path, req: &LocalRequest) -> Option<Result<TrafficData, Error>> {
    let mut stream = UnixStream::connect(path).await.ok()?;
    let mut line = serde_json::to_vec(req).unwrap_or_default();
    line.push(b'\n');
    // The window plus naming's budget, and room.
    let limit = Duration::from_secs_f64(req.seconds) + crate::names::BUDGET + REQUEST_TIMEOUT;
    let exchange = async {
        stream.write_all(&line).await?;
        let mut answer = Vec::new();
        stream.take(MAX_ANSWER).read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let failed = |message: String| {
        Some(Err(Error::from(crate::error::AgentError::Failed {
            host: format!("localhost (the agent at {})", path.display()),
            message,
        })))
    };
    let answer = match tokio::time::timeout(limit, exchange).await {
        Err(_) => return failed(format!("no answer within {} s", limit.as_secs())),
        Ok(Err(e)) => return failed(format!("the socket failed: {e}")),
        Ok(Ok(a)) => a,
    };
    match serde_json::from_slice::<LocalAnswer>(&answer) {
        Err(e) => failed(format!("an answer netmon cannot read: {e}")),
        Ok(LocalAnswer::OtherNamespace { agent_netns }) => {
            log::debug!(
                "the agent at {} watches network namespace {agent_netns}, not ours",
                path.display()
            );
            None
        }
        Ok(LocalAnswer::Traffic(r)) => match *r {
            Response {
                success: true,
                data: Some(data),
                ..
            } => Some(Ok(data)),
            r => failed(r.message),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the CLI sends is what the agent rebuilds: the filter as netmon writes it back
    /// reads as the same filter.
    #[test]
    fn a_request_crosses_the_socket_unchanged() {
        let req = TrafficRequest::new(
            Some("eth0"),
            2.0,
            SampleWindow::CLI_RANGE,
            25,
            SortKey::Tx,
            GroupBy::Process,
            ArgNames::CLI,
        )
        .unwrap()
        .with_selection(
            Some("udp and not (port 53 or host 10.0.0.1)"),
            Some("10.0.0.0/8"),
            None,
        )
        .unwrap()
        .with_naming(Naming {
            hosts: false,
            services: true,
        });
        let sent = LocalRequest::new(&req, "eth0");
        let line = serde_json::to_string(&sent).unwrap();
        let got: LocalRequest = serde_json::from_str(&line).unwrap();
        assert_eq!(got, sent);
        let back = got.request().unwrap();
        assert_eq!(back.iface.unwrap().as_str(), "eth0");
        assert_eq!(back.window, req.window);
        assert_eq!(
            (back.top, back.sort, back.by),
            (25, SortKey::Tx, GroupBy::Process)
        );
        assert_eq!(back.selection, req.selection);
        assert_eq!(back.naming, req.naming);
    }

    #[test]
    fn bad_requests_are_refused_with_the_reason() {
        let mut r = LocalRequest::new(
            &TrafficRequest::new(
                Some("eth0"),
                1.0,
                SampleWindow::CLI_RANGE,
                10,
                SortKey::Rx,
                GroupBy::Connection,
                ArgNames::CLI,
            )
            .unwrap(),
            "eth0",
        );
        r.filter = Some("port".into());
        assert!(r.request().is_err());
        r.filter = None;
        r.iface = "eth0;reboot".into();
        assert!(r.request().is_err());
        assert!(serde_json::from_str::<LocalRequest>(r#"{"iface":"eth0","extra":1}"#).is_err());
    }
}
