//! The config file (TOML): which remote hosts the tools may reach, and how. It is the
//! contract's `IftopConfig.remote_hosts`. `netmon serve --config PATH`, or `$NETMON_CONFIG`;
//! `netmon/config/netmon.example.toml` is a commented example.
//!
//! By default only configured hosts can be reached: a model must not be able to make a
//! privileged server dial anywhere.

pub mod load;

use crate::error::ConfigError;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to do with a host key that is not in known_hosts. A changed key is always refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Refuse it, with a message that says how to add it.
    #[default]
    Strict,
    /// Record it in known_hosts and go on (trust on first use).
    AcceptNew,
}

/// How netmon logs in to a host.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// The password is in this environment variable of the netmon process.
    PasswordEnv(String),
    /// The password is the first line of this file.
    PasswordFile(PathBuf),
    /// An OpenSSH private key file (unencrypted).
    KeyFile(PathBuf),
    /// The keys of the ssh-agent at `$SSH_AUTH_SOCK`.
    Agent,
}

/// Where the token for a host's agent is read from.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenFrom {
    /// This environment variable of the netmon process.
    Env(String),
    /// The first line of this file.
    File(PathBuf),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteHost {
    /// What a tool's `host` may say to mean this host.
    pub name: String,
    /// Address or DNS name to connect to.
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_username")]
    pub username: String,
    /// Without it, only a password passed by the tool call can log in.
    pub auth: Option<Auth>,
    /// Run iftop through `sudo -n` (for a user that may, without a password).
    #[serde(default)]
    pub sudo: bool,
    /// Overrides the global policy for this host.
    pub host_key_policy: Option<HostKeyPolicy>,
    /// The `/mcp` URL of a `netmon agent` on the host, e.g. `https://10.0.0.5:9465/mcp`. With
    /// it, the host is asked over HTTP(S) and SSH is not used.
    pub agent_url: Option<String>,
    /// The bearer token that agent was started with.
    pub agent_token: Option<TokenFrom>,
    /// The CA (PEM) an `https://` agent's certificate is checked against; without it, the
    /// system's roots.
    pub agent_ca_file: Option<PathBuf>,
}

fn default_port() -> u16 {
    22
}

fn default_username() -> String {
    "root".into()
}

fn default_connect_timeout() -> u64 {
    10
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Let tools reach hosts that are not in `remote_hosts` (with the tool's own credentials).
    #[serde(default)]
    pub allow_unlisted_hosts: bool,
    /// OpenSSH known_hosts file; default `~/.ssh/known_hosts` of the user netmon runs as.
    pub known_hosts: Option<PathBuf>,
    #[serde(default)]
    pub host_key_policy: HostKeyPolicy,
    /// Bound on TCP connect + SSH handshake + login, in seconds.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u64,
    #[serde(default)]
    pub remote_hosts: Vec<RemoteHost>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            allow_unlisted_hosts: false,
            known_hosts: None,
            host_key_policy: HostKeyPolicy::Strict,
            connect_timeout_seconds: default_connect_timeout(),
            remote_hosts: Vec::new(),
        }
    }
}

/// Line and column (1-based) of a byte offset in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A parser's message with every quoted value taken out: the line it is about may hold a
/// password, and serde quotes the values it could not use (`invalid type: string "…"`).
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match (c, quoted) {
            ('"', false) => {
                quoted = true;
                out.push_str("\"…");
            }
            ('"', true) => {
                quoted = false;
                out.push('"');
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out.lines().next().unwrap_or_default().trim().to_string()
}

impl Config {
    /// Parses and checks the file's text. A mistake names the file, the line, the column and
    /// the key, and never shows the value there.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let bad = |problem: String| ConfigError::Invalid {
            path: origin.to_path_buf(),
            problem,
        };
        let syntax = |span: Option<std::ops::Range<usize>>, key: String, message: &str| {
            // toml says "recursion limit" with no place: the nesting is what is wrong.
            let Some(span) = span else {
                return ConfigError::Invalid {
                    path: origin.to_path_buf(),
                    problem: format!(
                        "{}{key}: arrays or tables nest deeper than netmon's TOML parser reads; netmon's config nests two levels at most",
                        without_values(message)
                    ),
                };
            };
            let (line, column) = position(text, span.start);
            ConfigError::Syntax {
                path: origin.to_path_buf(),
                line,
                column,
                key,
                problem: without_values(message),
            }
        };
        let de = toml::Deserializer::parse(text)
            .map_err(|e| syntax(e.span(), String::new(), e.message()))?;
        let c: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." {
                String::new()
            } else {
                format!(" (key {path})")
            };
            let inner = e.into_inner();
            syntax(inner.span(), key, inner.message())
        })?;
        if !(1..=300).contains(&c.connect_timeout_seconds) {
            return Err(bad("connect_timeout_seconds must be 1–300".into()));
        }
        for (i, h) in c.remote_hosts.iter().enumerate() {
            if h.name.trim().is_empty() || h.host.trim().is_empty() {
                return Err(bad(format!("remote_hosts[{i}] needs a name and a host")));
            }
            if h.port == 0 {
                return Err(bad(format!("remote_hosts[{i}] ({}): port 0", h.name)));
            }
            match (&h.agent_url, &h.agent_token) {
                (Some(url), _) if !url.starts_with("http://") && !url.starts_with("https://") => {
                    // The URL is not repeated: it may carry a user and password.
                    return Err(bad(format!(
                        "remote_hosts[{i}] ({}): agent_url must be an https:// (or http://) URL ending in /mcp",
                        h.name
                    )));
                }
                (None, Some(_)) => {
                    return Err(bad(format!(
                        "remote_hosts[{i}] ({}): agent_token without agent_url",
                        h.name
                    )));
                }
                _ => {}
            }
            if h.agent_ca_file.is_some()
                && !h
                    .agent_url
                    .as_deref()
                    .is_some_and(|u| u.starts_with("https://"))
            {
                return Err(bad(format!(
                    "remote_hosts[{i}] ({}): agent_ca_file is for an https:// agent_url",
                    h.name
                )));
            }
            if c.remote_hosts[..i].iter().any(|o| o.name == h.name) {
                return Err(bad(format!("remote host name {:?} is used twice", h.name)));
            }
        }
        Ok(c)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_seconds)
    }

    /// The configured host a tool's `host` means: by name first, then by address.
    pub fn find(&self, host: &str) -> Option<&RemoteHost> {
        self.remote_hosts
            .iter()
            .find(|h| h.name == host)
            .or_else(|| self.remote_hosts.iter().find(|h| h.host == host))
    }

    pub fn names(&self) -> String {
        if self.remote_hosts.is_empty() {
            return "none are configured".into();
        }
        self.remote_hosts
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../config/netmon.example.toml");

    #[test]
    fn a_mistake_names_its_place_and_key_and_never_shows_the_value() {
        let p = Path::new("/etc/netmon.toml");
        let cases = [
            // A syntax error on a line that holds a password.
            "[[remote_hosts]]\nname = 'a'\nhost = 'h'\npassword = 's3cret' x\n",
            // A value of the wrong type under a key that takes a secret's name.
            "[[remote_hosts]]\nname = 'a'\nhost = 'h'\nauth = { password_env = 's3cret' }\nport = \"s3cret\"\n",
            // An unknown key whose value is a secret.
            "[[remote_hosts]]\nname = 'a'\nhost = 'h'\npassword = \"s3cret\"\n",
            "[[remote_hosts]]\nname = 'a'\nhost = 'h'\nagent_token = { file = 1, env = \"s3cret\" }\n",
        ];
        for text in cases {
            let e = Config::parse(text, p).unwrap_err();
            let msg = crate::error::chain(&e);
            assert!(!msg.contains("s3cret"), "{msg}");
            assert!(msg.contains("/etc/netmon.toml, line "), "{msg}");
        }
        let e = Config::parse(cases[1], p).unwrap_err().to_string();
        assert!(
            e.contains("line 5") && e.contains("key remote_hosts[0].port"),
            "{e}"
        );
        let e = Config::parse(cases[2], p).unwrap_err().to_string();
        assert!(e.contains("password"), "names the key: {e}");
    }

    /// Nesting in a config is refused by the TOML parser's own recursion limit, with the line,
    /// not by a stack overflow.
    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let p = Path::new("/etc/netmon.toml");
        for text in [
            format!("x = {}1{}\n", "[".repeat(100_000), "]".repeat(100_000)),
            format!("x = {}\n", "{ a = ".repeat(50_000)),
            format!("{}\n", "a.".repeat(50_000) + "b = 1"),
        ] {
            let e = Config::parse(&text, p).unwrap_err().to_string();
            assert!(
                e.contains("/etc/netmon.toml, line 1") || e.contains("nest deeper"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_file_too_large_is_refused_without_reading_it_whole() {
        let e = load::file(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("larger than 1048576 bytes"), "{e}");
    }

    #[test]
    fn the_example_parses() {
        let c = Config::parse(EXAMPLE, Path::new("example")).unwrap();
        assert!(!c.allow_unlisted_hosts);
        assert_eq!(c.host_key_policy, HostKeyPolicy::Strict);
        let web = c.find("web1").unwrap();
        assert_eq!(
            web.auth,
            Some(Auth::KeyFile("/etc/netmon/id_ed25519".into()))
        );
        assert_eq!(c.find("10.0.0.6").unwrap().name, "db1");
        assert_eq!(
            c.find("db1").unwrap().auth,
            Some(Auth::PasswordEnv("DB1_PASSWORD".into()))
        );
        assert!(c.find("db1").unwrap().sudo);
        assert_eq!(c.find("edge").unwrap().auth, Some(Auth::Agent));
        assert_eq!(c.find("edge").unwrap().port, 2222);
        let node = c.find("node7").unwrap();
        assert_eq!(node.agent_url.as_deref(), Some("http://10.0.0.7:9465/mcp"));
        assert_eq!(
            node.agent_token,
            Some(TokenFrom::File("/etc/netmon/agent.token".into()))
        );
        assert!(c.find("nowhere").is_none());
    }

    #[test]
    fn mistakes_name_themselves() {
        let p = Path::new("/etc/netmon.toml");
        let e = Config::parse("allow_unlisted = true", p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/etc/netmon.toml") && e.contains("allow_unlisted") && e.contains("line 1"),
            "{e}"
        );
        let dup = "[[remote_hosts]]\nname='a'\nhost='h'\n[[remote_hosts]]\nname='a'\nhost='i'\n";
        assert!(
            Config::parse(dup, p)
                .unwrap_err()
                .to_string()
                .contains("used twice")
        );
        let bad_auth = "[[remote_hosts]]\nname='a'\nhost='h'\nauth={ password='x' }\n";
        assert!(Config::parse(bad_auth, p).is_err());
        let https = "[[remote_hosts]]\nname='a'\nhost='h'\nagent_url='https://h:9465/mcp'\nagent_ca_file='/ca.pem'\n";
        let c = Config::parse(https, p).unwrap();
        assert_eq!(c.remote_hosts[0].agent_ca_file, Some("/ca.pem".into()));
        let other = "[[remote_hosts]]\nname='a'\nhost='h'\nagent_url='ftp://u:pw@h:9465/mcp'\n";
        let e = Config::parse(other, p).unwrap_err().to_string();
        assert!(e.contains("https://") && !e.contains("pw@"), "{e}");
        let ca_for_http = "[[remote_hosts]]\nname='a'\nhost='h'\nagent_url='http://h:9465/mcp'\nagent_ca_file='/ca.pem'\n";
        let e = Config::parse(ca_for_http, p).unwrap_err().to_string();
        assert!(
            e.contains("agent_ca_file is for an https:// agent_url"),
            "{e}"
        );
        let orphan = "[[remote_hosts]]\nname='a'\nhost='h'\nagent_token={ env='T' }\n";
        assert!(
            Config::parse(orphan, p)
                .unwrap_err()
                .to_string()
                .contains("without agent_url")
        );
        let policy = "host_key_policy = 'accept-new'";
        assert_eq!(
            Config::parse(policy, p).unwrap().host_key_policy,
            HostKeyPolicy::AcceptNew
        );
    }
}
