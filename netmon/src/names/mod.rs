//! Names beside the numbers, as iftop shows them: host names from /etc/hosts, then reverse DNS
//! (hickory, with the servers of /etc/resolv.conf), and service names from /etc/services. An
//! edge: it reads files and sends DNS queries.
//!
//! A sample waits at most [`BUDGET`] for names. Lookups still running then carry on in the
//! background and fill the cache for the next sample (`netmon top` refreshes), as iftop's
//! resolver threads do; an address without a name stays a number.

mod files;

pub use files::{Services, parse_hosts};

use crate::report::TrafficData;
use crate::request::Naming;
use hickory_resolver::config::ResolveHosts;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver, system_conf};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, Semaphore};

/// Longest a sample waits for names after its window.
pub const BUDGET: Duration = Duration::from_millis(500);
/// One lookup's bound, in the background: hickory's own timeout is 2 s and one attempt.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(4);
/// Lookups in flight at once; more addresses wait for a later sample.
const MAX_IN_FLIGHT: usize = 32;
/// How long an address whose lookup failed (timeout, SERVFAIL) is not asked again.
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(30);
/// Shortest time a name, or the absence of one, is kept: dnsmasq and /etc/hosts-backed servers
/// answer with TTL 0, and a live view must not query every refresh.
const MIN_KEEP: Duration = Duration::from_secs(60);
/// Most addresses remembered; beyond it, expired entries go, then all settled ones.
const MAX_CACHE: usize = 8192;

enum Entry {
    Pending,
    Named(String, Instant),
    /// No PTR record (kept until the instant), or a failed lookup (retried after it).
    Unnamed(Instant),
}

/// The resolver built from one version of resolv.conf.
struct Dns {
    /// resolv.conf's modification time and length when it was read.
    stamp: Option<(SystemTime, u64)>,
    built: Result<(TokioResolver, Vec<IpAddr>), String>,
}

/// Host and service names for results. One per server, so its cache serves every call.
pub struct Namer {
    etc: PathBuf,
    dns: Mutex<Option<Dns>>,
    cache: Arc<Mutex<HashMap<IpAddr, Entry>>>,
    changed: Arc<Notify>,
    in_flight: Arc<Semaphore>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for Namer {
    fn default() -> Self {
        Self::at("/etc")
    }
}

/// What one call found, for its note.
#[derive(Default)]
struct Count {
    addresses: usize,
    from_hosts: usize,
    by_dns: usize,
    unanswered: usize,
}

impl Namer {
    /// Names from `etc`'s hosts, services and resolv.conf (this host's: `/etc`).
    pub fn at(etc: impl AsRef<Path>) -> Self {
        Self {
            etc: etc.as_ref().to_path_buf(),
            dns: Mutex::new(None),
            cache: Arc::default(),
            changed: Arc::default(),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Adds the names `naming` asks for to `data`'s connections, and a note on how they were
    /// found. Waits at most [`BUDGET`].
    pub async fn label(&self, data: &mut TrafficData, naming: Naming) {
        let deadline = tokio::time::Instant::now() + BUDGET;
        if naming.services {
            self.services(data);
        }
        if naming.hosts {
            self.hosts(data, deadline).await;
        }
    }

    /// The names known now for `addrs`, from the hosts file and the cache, without waiting;
    /// lookups start for the others, for a later call. A live view asks this every refresh.
    pub fn names_now(&self, addrs: &[IpAddr]) -> HashMap<IpAddr, String> {
        let hosts = std::fs::read_to_string(self.etc.join("hosts"))
            .map(|t| parse_hosts(&t))
            .unwrap_or_default();
        let mut names = HashMap::new();
        let mut rest = Vec::new();
        for a in addrs {
            match hosts.get(a) {
                Some(n) => {
                    names.insert(*a, n.clone());
                }
                None => rest.push(*a),
            }
        }
        if rest.is_empty() {
            return names;
        }
        if let Ok((resolver, _)) = self.resolver() {
            self.start(&resolver, &rest);
        }
        let cache = lock(&self.cache);
        for a in rest {
            if let Some(Entry::Named(n, _)) = cache.get(&a) {
                names.insert(a, n.clone());
            }
        }
        names
    }

    /// This host's service names, or why there are none.
    pub fn service_table(&self) -> Result<Services, String> {
        let path = self.etc.join("services");
        std::fs::read_to_string(&path)
            .map(|t| Services::parse(&t))
            .map_err(|e| format!("reading {}: {e}", path.display()))
    }

    fn services(&self, data: &mut TrafficData) {
        let services = match self.service_table() {
            Ok(s) => s,
            Err(e) => {
                data.notes.push(format!(
                    "service names off: {e} (Debian and Ubuntu ship it in the netbase package)"
                ));
                return;
            }
        };
        for c in &mut data.top_connections {
            let Some(proto) = c.ip_protocol else { continue };
            let name = |port: Option<u16>| {
                port.and_then(|p| services.name(p, proto))
                    .map(str::to_string)
            };
            c.local_service = name(c.local_port);
            c.remote_service = name(c.remote_port);
        }
    }

    async fn hosts(&self, data: &mut TrafficData, deadline: tokio::time::Instant) {
        let addrs: BTreeSet<IpAddr> = data
            .top_connections
            .iter()
            .flat_map(|c| [&c.local_addr, &c.remote_addr])
            .filter_map(|a| a.as_deref()?.parse().ok())
            .collect();
        if addrs.is_empty() {
            return;
        }
        let hosts_path = self.etc.join("hosts");
        let hosts = match std::fs::read_to_string(&hosts_path) {
            Ok(t) => parse_hosts(&t),
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    data.notes
                        .push(format!("{} not read: {e}", hosts_path.display()));
                }
                HashMap::new()
            }
        };
        let mut count = Count {
            addresses: addrs.len(),
            ..Count::default()
        };
        let mut names: HashMap<IpAddr, String> = HashMap::new();
        let mut rest = Vec::new();
        for a in addrs {
            match hosts.get(&a) {
                Some(n) => {
                    names.insert(a, n.clone());
                    count.from_hosts += 1;
                }
                None => rest.push(a),
            }
        }
        let mut servers = Vec::new();
        if !rest.is_empty() {
            match self.resolver() {
                Err(why) => data.notes.push(format!(
                    "reverse DNS off: {why}; host names come from {} only",
                    hosts_path.display()
                )),
                Ok((resolver, s)) => {
                    servers = s;
                    self.start(&resolver, &rest);
                    self.wait(&rest, deadline).await;
                    let cache = lock(&self.cache);
                    for a in &rest {
                        match cache.get(a) {
                            Some(Entry::Named(n, _)) => {
                                names.insert(*a, n.clone());
                                count.by_dns += 1;
                            }
                            Some(Entry::Pending) => count.unanswered += 1,
                            _ => {}
                        }
                    }
                }
            }
        }
        for c in &mut data.top_connections {
            let name = |a: &Option<String>| {
                a.as_deref()?
                    .parse()
                    .ok()
                    .and_then(|a: IpAddr| names.get(&a).cloned())
            };
            c.local_name = name(&c.local_addr);
            c.remote_name = name(&c.remote_addr);
        }
        data.notes.push(note(&count, &servers, &hosts_path));
    }

    /// The resolver for the current resolv.conf, rebuilt when the file changes.
    fn resolver(&self) -> Result<(TokioResolver, Vec<IpAddr>), String> {
        let path = self.etc.join("resolv.conf");
        let stamp = std::fs::metadata(&path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        let mut dns = lock(&self.dns);
        if let Some(d) = dns.as_ref()
            && d.stamp == stamp
        {
            return d.built.clone();
        }
        let built = build(&path);
        *dns = Some(Dns {
            stamp,
            built: built.clone(),
        });
        built
    }

    /// Starts a background lookup for each address that has no fresh entry and none running.
    fn start(&self, resolver: &TokioResolver, addrs: &[IpAddr]) {
        let now = Instant::now();
        let mut cache = lock(&self.cache);
        if cache.len() > MAX_CACHE {
            cache.retain(|_, e| match e {
                Entry::Pending => true,
                Entry::Named(_, until) | Entry::Unnamed(until) => *until > now,
            });
            if cache.len() > MAX_CACHE {
                cache.retain(|_, e| matches!(e, Entry::Pending));
            }
        }
        for &a in addrs {
            let fresh = match cache.get(&a) {
                Some(Entry::Pending) => true,
                Some(Entry::Named(_, until) | Entry::Unnamed(until)) => *until > now,
                None => false,
            };
            if fresh {
                continue;
            }
            let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                // Enough queries are out; this address waits for a later sample.
                continue;
            };
            cache.insert(a, Entry::Pending);
            let (resolver, cache, changed) =
                (resolver.clone(), self.cache.clone(), self.changed.clone());
            tokio::spawn(async move {
                let entry = lookup(&resolver, a).await;
                lock(&cache).insert(a, entry);
                changed.notify_waiters();
                drop(permit);
            });
        }
    }

    /// Until no address of `addrs` has a lookup running, or the deadline.
    async fn wait(&self, addrs: &[IpAddr], deadline: tokio::time::Instant) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so an answer between the look and the wait wakes it.
            changed.as_mut().enable();
            let running = {
                let cache = lock(&self.cache);
                addrs
                    .iter()
                    .any(|a| matches!(cache.get(a), Some(Entry::Pending)))
            };
            if !running || tokio::time::timeout_at(deadline, changed).await.is_err() {
                return;
            }
        }
    }
}

fn build(path: &Path) -> Result<(TokioResolver, Vec<IpAddr>), String> {
    let text = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let (config, mut opts) = system_conf::parse_resolv_conf(text)
        .map_err(|e| format!("{} has no usable nameserver ({e})", path.display()))?;
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 1;
    // netmon reads the hosts file itself, first line first, as getnameinfo does.
    opts.use_hosts_file = ResolveHosts::Never;
    opts.positive_min_ttl = Some(MIN_KEEP);
    opts.negative_min_ttl = Some(MIN_KEEP);
    opts.cache_size = 4096;
    let servers = config.name_servers().iter().map(|s| s.ip).collect();
    let resolver = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .build()
        .map_err(|e| format!("the resolver for {} failed to start: {e}", path.display()))?;
    Ok((resolver, servers))
}

async fn lookup(resolver: &TokioResolver, a: IpAddr) -> Entry {
    let now = Instant::now();
    match tokio::time::timeout(LOOKUP_TIMEOUT, resolver.reverse_lookup(a)).await {
        Ok(Ok(found)) => {
            let name = found.answers().iter().find_map(|r| match &r.data {
                RData::PTR(ptr) => {
                    let s = ptr.0.to_utf8();
                    Some(s.strip_suffix('.').unwrap_or(&s).to_string())
                }
                _ => None,
            });
            let until = found.valid_until().max(now + MIN_KEEP);
            match name {
                Some(n) => Entry::Named(n, until),
                None => Entry::Unnamed(until),
            }
        }
        Ok(Err(e)) if e.is_no_records_found() => Entry::Unnamed(now + MIN_KEEP),
        Ok(Err(e)) => {
            log::debug!("reverse lookup of {a}: {e}");
            Entry::Unnamed(now + RETRY_FAILED_AFTER)
        }
        Err(_) => Entry::Unnamed(now + RETRY_FAILED_AFTER),
    }
}

fn note(c: &Count, servers: &[IpAddr], hosts: &Path) -> String {
    let named = c.from_hosts + c.by_dns;
    let mut s = format!(
        "host names: {named} of {} addresses named ({} from {}, {} by reverse DNS)",
        c.addresses,
        c.from_hosts,
        hosts.display(),
        c.by_dns
    );
    if c.unanswered > 0 {
        s += &format!(
            "; {} not answered within {} ms are shown as numbers (their lookups go on, for later samples)",
            c.unanswered,
            BUDGET.as_millis()
        );
    }
    if !servers.is_empty() {
        let list: Vec<String> = servers.iter().map(IpAddr::to_string).collect();
        s += &format!(
            "; the reverse-DNS queries (to {}) are traffic themselves and can show up in the figures, as iftop's man page warns; -n / resolve_names=false turns them off",
            list.join(", ")
        );
    }
    s
}
