//! Which source a request goes to: this machine, a remote agent's `/mcp`, or SSH and iftop, by
//! the config file's reach policy. [`route`] decides (pure, unit-tested); [`open`] reads the
//! secrets the decision names and builds the source.

use super::TrafficSource;
use super::agent::AgentClient;
use super::ssh::SshSource;
use crate::config::{Auth, Config, HostKeyPolicy, TokenFrom, load};
use crate::error::{ConfigError, Result};
use crate::request::{Remote, Target};
use crate::secret::Secret;
use crate::ssh::{Credential, Login};
use std::path::PathBuf;
use std::time::Duration;

/// How a remote host logs netmon in, before any secret is read.
#[derive(Debug, PartialEq)]
pub enum LoginWith {
    /// The password the call passed.
    CallPassword,
    PasswordEnv(String),
    PasswordFile(PathBuf),
    KeyFile(PathBuf),
    Agent,
}

/// Where a request goes.
#[derive(Debug, PartialEq)]
pub enum Route {
    /// This machine.
    Local,
    /// The host's netmon agent, at its `/mcp`.
    Agent {
        label: String,
        url: String,
        token: Option<TokenFrom>,
        /// The CA an `https://` agent's certificate is checked against.
        ca_file: Option<std::path::PathBuf>,
    },
    /// SSH, running iftop there.
    Ssh {
        /// What `data.host` says: the configured name, or the host as the caller gave it.
        label: String,
        host: String,
        port: u16,
        user: String,
        with: LoginWith,
        sudo: bool,
        policy: HostKeyPolicy,
    },
}

/// Decides where `target` goes. A configured host (by name, then by address) is reached as
/// configured; a password passed by the call takes precedence over its `auth`. An unlisted host
/// is refused unless the config allows it, and is then reached with the call's own port, user
/// and password, so a model cannot make a privileged server dial anywhere by default.
pub fn route(target: &Target, config: &Config) -> Result<Route, ConfigError> {
    let Target::Remote(r) = target else {
        return Ok(Route::Local);
    };
    let call_password = r.password.is_some();
    match config.find(&r.host) {
        Some(h) if h.agent_url.is_some() => Ok(Route::Agent {
            label: h.name.clone(),
            url: h.agent_url.clone().unwrap_or_default(),
            token: h.agent_token.clone(),
            ca_file: h.agent_ca_file.clone(),
        }),
        Some(h) => {
            let with = match (&h.auth, call_password) {
                (_, true) => LoginWith::CallPassword,
                (Some(Auth::PasswordEnv(v)), false) => LoginWith::PasswordEnv(v.clone()),
                (Some(Auth::PasswordFile(p)), false) => LoginWith::PasswordFile(p.clone()),
                (Some(Auth::KeyFile(p)), false) => LoginWith::KeyFile(p.clone()),
                (Some(Auth::Agent), false) => LoginWith::Agent,
                (None, false) => {
                    return Err(ConfigError::NoCredential {
                        host: h.name.clone(),
                    });
                }
            };
            Ok(Route::Ssh {
                label: h.name.clone(),
                host: h.host.clone(),
                port: h.port,
                user: h.username.clone(),
                with,
                sudo: h.sudo,
                policy: h.host_key_policy.unwrap_or(config.host_key_policy),
            })
        }
        None if config.allow_unlisted_hosts => {
            if !call_password {
                return Err(ConfigError::NoCredential {
                    host: r.host.clone(),
                });
            }
            Ok(Route::Ssh {
                label: r.host.clone(),
                host: r.host.clone(),
                port: r.port,
                user: r.username.clone(),
                with: LoginWith::CallPassword,
                sudo: false,
                policy: config.host_key_policy,
            })
        }
        None => Err(ConfigError::HostNotAllowed {
            host: r.host.clone(),
            names: config.names(),
        }),
    }
}

/// The source for a remote route, with its secrets read now (they are not kept beyond the call
/// that needs them).
pub fn open(route: Route, remote: Remote, config: &Config) -> Result<Box<dyn TrafficSource>> {
    match route {
        // The caller serves this machine with its own source.
        Route::Local => Err(ConfigError::Other {
            what: "internal: the local route has no remote source".into(),
            source: None,
        }
        .into()),
        Route::Agent {
            label,
            url,
            token,
            ca_file,
        } => {
            let token = token
                .as_ref()
                .map(|t| load::agent_token(t, &label))
                .transpose()?;
            Ok(Box::new(AgentClient {
                label,
                url,
                token,
                ca_file,
            }))
        }
        Route::Ssh {
            label,
            host,
            port,
            user,
            with,
            sudo,
            policy,
        } => {
            let credential = match with {
                LoginWith::CallPassword => Credential::Password(
                    remote
                        .password
                        .unwrap_or_else(|| Secret::new(String::new())),
                ),
                LoginWith::PasswordEnv(var) => Credential::Password(Secret::new(load::env(
                    &var,
                    &format!("the password of {label}"),
                )?)),
                LoginWith::PasswordFile(path) => Credential::Password(load::password_file(&path)?),
                LoginWith::KeyFile(path) => Credential::KeyFile(path),
                LoginWith::Agent => Credential::Agent,
            };
            let login = Login {
                host,
                port,
                user,
                credential,
                policy,
                known_hosts: load::known_hosts(config),
                connect_timeout: Duration::from_secs(config.connect_timeout_seconds),
            };
            Ok(Box::new(SshSource::new(label, login, sudo)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("test.toml")).unwrap()
    }

    fn remote(host: &str, password: bool) -> Target {
        Target::new(
            host,
            2222,
            "alice".into(),
            password.then(|| Secret::new("pw".into())),
        )
    }

    const HOSTS: &str = r#"
[[remote_hosts]]
name = "web1"
host = "10.0.0.5"
auth = { key_file = "/etc/netmon/id" }
sudo = true

[[remote_hosts]]
name = "db1"
host = "10.0.0.6"
username = "ops"
host_key_policy = "accept-new"

[[remote_hosts]]
name = "node7"
host = "10.0.0.7"
agent_url = "http://10.0.0.7:9465/mcp"
agent_token = { env = "NODE7_TOKEN" }
"#;

    #[test]
    fn local_names_go_local() {
        let c = config(HOSTS);
        for h in ["", "localhost", "127.0.0.1", "::1"] {
            assert_eq!(route(&remote(h, false), &c).unwrap(), Route::Local);
        }
    }

    #[test]
    fn a_configured_host_is_reached_as_configured() {
        let c = config(HOSTS);
        let r = route(&remote("web1", false), &c).unwrap();
        assert_eq!(
            r,
            Route::Ssh {
                label: "web1".into(),
                host: "10.0.0.5".into(),
                port: 22,
                user: "root".into(),
                with: LoginWith::KeyFile("/etc/netmon/id".into()),
                sudo: true,
                policy: HostKeyPolicy::Strict,
            }
        );
        // By address too; and the call's password wins over the configured auth.
        let Route::Ssh { label, with, .. } = route(&remote("10.0.0.5", true), &c).unwrap() else {
            panic!("not ssh")
        };
        assert_eq!((label.as_str(), with), ("web1", LoginWith::CallPassword));
    }

    #[test]
    fn a_host_with_an_agent_is_asked_through_it() {
        let c = config(HOSTS);
        assert_eq!(
            route(&remote("node7", true), &c).unwrap(),
            Route::Agent {
                label: "node7".into(),
                url: "http://10.0.0.7:9465/mcp".into(),
                token: Some(TokenFrom::Env("NODE7_TOKEN".into())),
                ca_file: None,
            }
        );
    }

    #[test]
    fn without_a_credential_or_permission_the_request_is_refused() {
        let c = config(HOSTS);
        let e = route(&remote("db1", false), &c).unwrap_err();
        assert!(
            matches!(e, ConfigError::NoCredential { ref host } if host == "db1"),
            "{e}"
        );
        let Route::Ssh { policy, user, .. } = route(&remote("db1", true), &c).unwrap() else {
            panic!("not ssh")
        };
        assert_eq!((policy, user.as_str()), (HostKeyPolicy::AcceptNew, "ops"));
        let e = route(&remote("10.9.9.9", true), &c)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("web1, db1, node7") && e.contains("allow_unlisted_hosts"),
            "{e}"
        );
    }

    #[test]
    fn an_unlisted_host_when_allowed_uses_the_calls_own_login() {
        let c = config(&format!("allow_unlisted_hosts = true\n{HOSTS}"));
        assert_eq!(
            route(&remote("10.9.9.9", true), &c).unwrap(),
            Route::Ssh {
                label: "10.9.9.9".into(),
                host: "10.9.9.9".into(),
                port: 2222,
                user: "alice".into(),
                with: LoginWith::CallPassword,
                sudo: false,
                policy: HostKeyPolicy::Strict,
            }
        );
        assert!(route(&remote("10.9.9.9", false), &c).is_err());
    }
}
