//! From the kernel's records to named owners: the cgroup hooks' socket records (by cookie), the
//! sockets older than netmon (sock_diag and /proc/*/fd, read once when netmon starts), /proc for
//! a live process's command line and cgroup, /etc/passwd for user names, the cgroup v2 tree for
//! an exited process's cgroup path, and /var/log/pods for pod names. An edge.

use super::{FlowSockets, Owned, Owner, OwnerRef, Process, SocketRecord, Unattributed};
use super::{Lookup, cgroup, choose, diag, procfs};
use crate::flow::FlowId;
use netmon_common::SocketOwner;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Owners remembered by cookie before the memory starts over.
const NAMED_MAX: usize = 65_536;

/// The cgroup v2 root: this process's mount of it, else (run through `ip netns exec`, which
/// mounts a fresh /sys without it) the one its closest ancestor sees, through that ancestor's
/// root, else one netmon mounts itself. Found once.
pub fn cgroup_root() -> Option<PathBuf> {
    static ROOT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| mounted_cgroup_root().or_else(own_cgroup_mount))
        .clone()
}

/// Mounts cgroup2 on a fresh directory, keeps a descriptor of its root and detaches the mount
/// at once, so no mount is left behind: the tree stays reachable as `/proc/self/fd/N`. Needs
/// CAP_SYS_ADMIN (root); without it there is no root to attach to.
fn own_cgroup_mount() -> Option<PathBuf> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let dir = std::env::temp_dir().join(format!("netmon-cgroup2-{}", std::process::id()));
    std::fs::create_dir(&dir).ok()?;
    let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
    let fstype = c"cgroup2";
    // SAFETY: NUL-terminated strings that outlive the calls; the descriptor is kept for the
    // life of the process on purpose (it is the cgroup tree's handle).
    let fd = unsafe {
        if libc::mount(
            fstype.as_ptr(),
            path.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        ) != 0
        {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
        libc::umount2(path.as_ptr(), libc::MNT_DETACH);
        fd
    };
    let _ = std::fs::remove_dir(&dir);
    (fd >= 0).then(|| PathBuf::from(format!("/proc/self/fd/{fd}")))
}

fn mounted_cgroup_root() -> Option<PathBuf> {
    let ppid = |pid: u32| {
        let status = procfs::read_text(&format!("/proc/{pid}/status"), procfs::SMALL_MAX)?;
        procfs::status_field(&status, "PPid:")
    };
    let mut pid = std::process::id();
    // Bounded: a handful of ancestors, never PID 1's (often unreadable) or the kernel's.
    for hop in 0..8 {
        let prefix = if hop == 0 {
            String::new()
        } else {
            format!("/proc/{pid}/root")
        };
        let text = procfs::read_text(&format!("/proc/{pid}/mountinfo"), procfs::MOUNTINFO_MAX)
            .unwrap_or_default();
        if let Some(p) = procfs::cgroup2_mount(&text).map(|m| format!("{prefix}{m}"))
            && Path::new(&p).is_dir()
        {
            return Some(PathBuf::from(p));
        }
        match ppid(pid) {
            Some(p) if p > 1 => pid = p,
            _ => break,
        }
    }
    None
}

/// This process's network namespace cookie (SO_NETNS_COOKIE, Linux 5.14+), from a socket that
/// is never bound: binding could fail where loopback is down.
fn own_netns_cookie() -> Option<u64> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket(2) returns a new descriptor or -1; the descriptor is owned from here.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut c: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: SO_NETNS_COOKIE (71) writes a u64 into `c`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            71,
            (&raw mut c).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(c)
}

fn passwd() -> HashMap<u32, String> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.get(2)?.parse().ok()?, f.first()?.to_string()))
        })
        .collect()
}

/// The kernel's socket records (the cgroup programs' map), read as little as a result needs:
/// one cookie at a time, and all of them only to find a closed receiver by the address it bound.
pub trait Records {
    /// The record of one socket.
    fn get(&self, cookie: u64) -> Option<SocketOwner>;
    /// Every record.
    fn all(&self) -> &HashMap<u64, SocketOwner>;
}

impl Records for HashMap<u64, SocketOwner> {
    fn get(&self, cookie: u64) -> Option<SocketOwner> {
        HashMap::get(self, &cookie).copied()
    }

    fn all(&self) -> &HashMap<u64, SocketOwner> {
        self
    }
}

/// Turns the kernel's socket records into owners, for the flows of one result.
pub struct Resolver {
    own_netns: Option<u64>,
    cgroup_root: Option<PathBuf>,
    users: HashMap<u32, String>,
    /// cgroup id → path, from walking the cgroup tree (filled on a miss).
    cgroups: HashMap<u64, String>,
    /// cgroup ids no walk found (removed cgroups), so that they are not walked for again.
    gone: std::collections::HashSet<u64>,
    /// Sockets older than netmon: cookie → process.
    older: HashMap<u64, u32>,
    /// Owners already named, by cookie: a socket's owner does not change, and an agent asks
    /// every tick.
    named: HashMap<u64, Owner>,
    /// What the kernel recorded of each socket already looked up (its creator, namespace and
    /// container do not change): an agent's tick reads the kernel only for new sockets.
    recorded: HashMap<u64, SocketRecord>,
    /// What limited the look at older sockets, for a note.
    pub older_note: Option<String>,
}

impl Resolver {
    /// Reads what does not change (users, the cgroup mount, netmon's namespace) and the sockets
    /// that exist now, whose creation netmon's hooks did not see.
    pub fn new() -> Self {
        let mut r = Self {
            own_netns: own_netns_cookie(),
            cgroup_root: cgroup_root(),
            users: passwd(),
            cgroups: HashMap::new(),
            gone: Default::default(),
            older: HashMap::new(),
            named: HashMap::new(),
            recorded: HashMap::new(),
            older_note: None,
        };
        r.scan_older();
        r
    }

    fn scan_older(&mut self) {
        let sockets = match diag::sockets() {
            Ok(s) => s,
            Err(e) => {
                self.older_note = Some(format!(
                    "sockets older than netmon were not listed (sock_diag: {e}); their flows show as unattributed"
                ));
                return;
            }
        };
        let (inodes, denied) = diag::socket_inodes();
        for s in sockets {
            if let Some(pid) = inodes.get(&s.inode) {
                self.older.insert(s.cookie, *pid);
            }
        }
        if denied > 0 {
            self.older_note = Some(format!(
                "the sockets of {denied} processes older than netmon could not be read (another user's /proc/PID/fd needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH); their flows show as unattributed until they open new sockets"
            ));
        }
    }

    /// The record of a cookie: the hooks' first, else the scan of older sockets (which lists
    /// this namespace's only).
    fn record(&mut self, records: &dyn Records, cookie: u64) -> Option<SocketRecord> {
        if let Some(r) = self.recorded.get(&cookie) {
            return Some(*r);
        }
        if let Some(r) = records.get(cookie) {
            let in_container = self
                .cgroup_path(r.cgroup_id)
                .is_some_and(|p| cgroup::container(&p).is_some());
            let record = SocketRecord {
                tgid: r.tgid,
                same_netns: self.own_netns.is_none_or(|n| n == r.netns_cookie),
                in_container,
            };
            if self.recorded.len() >= NAMED_MAX {
                self.recorded.clear();
            }
            self.recorded.insert(cookie, record);
            return Some(record);
        }
        self.older.get(&cookie).map(|&tgid| SocketRecord {
            tgid,
            same_netns: true,
            in_container: false,
        })
    }

    /// The cgroup path of a cgroup id, from walking the cgroup tree once per miss. Each walk
    /// replaces what the last one found, so cgroups removed since (pods come and go) leave the
    /// map, whose size follows the tree's. An id only a complete walk did not find is a cgroup
    /// removed since (ids are not reused) and is not walked for again.
    fn cgroup_path(&mut self, id: u64) -> Option<String> {
        if let Some(p) = self.cgroups.get(&id) {
            return Some(p.clone());
        }
        if self.gone.contains(&id) {
            return None;
        }
        let root = self.cgroup_root.clone()?;
        let (found, complete) = walk_cgroups(&root, CGROUP_WALK_DIRS);
        if !complete {
            log::warn!(
                "the cgroup tree under {} has more than {CGROUP_WALK_DIRS} directories; containers beyond them are not named",
                root.display()
            );
        }
        self.cgroups = found;
        let hit = self.cgroups.get(&id).cloned();
        if hit.is_none() && complete {
            if self.gone.len() >= NAMED_MAX {
                self.gone.clear();
            }
            self.gone.insert(id);
        }
        hit
    }

    /// The owner of a socket record: the process (its command line while it lives), its cgroup
    /// and container.
    fn owner(&mut self, cookie: u64, records: &dyn Records) -> Option<Owner> {
        if let Some(o) = self.named.get(&cookie) {
            return Some(o.clone());
        }
        let o = self.name_owner(cookie, records)?;
        if self.named.len() >= NAMED_MAX {
            self.named.clear();
        }
        self.named.insert(cookie, o.clone());
        Some(o)
    }

    fn name_owner(&mut self, cookie: u64, records: &dyn Records) -> Option<Owner> {
        let (tgid, uid, comm, cgroup_id) = match records.get(cookie) {
            Some(r) => {
                let end = r.comm.iter().position(|&b| b == 0).unwrap_or(r.comm.len());
                let comm = String::from_utf8_lossy(&r.comm[..end]).into_owned();
                (r.tgid, r.uid, comm, Some(r.cgroup_id))
            }
            None => {
                let tgid = *self.older.get(&cookie)?;
                let comm = procfs::read_text(&format!("/proc/{tgid}/comm"), procfs::SMALL_MAX)
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default();
                let uid = procfs::read_text(&format!("/proc/{tgid}/status"), procfs::SMALL_MAX)
                    .and_then(|s| procfs::status_field(&s, "Uid:"))
                    .unwrap_or(0);
                (tgid, uid, comm, None)
            }
        };
        // The live process, if it is still the one that made the socket (same name).
        let alive = procfs::read_text(&format!("/proc/{tgid}/comm"), procfs::SMALL_MAX)
            .is_some_and(|c| c.trim() == comm);
        let cmdline = alive
            .then(|| procfs::read(&format!("/proc/{tgid}/cmdline"), procfs::CMDLINE_MAX))
            .flatten()
            .map(|b| procfs::cmdline(&b));
        let live_cgroup = alive
            .then(|| procfs::read_text(&format!("/proc/{tgid}/cgroup"), procfs::SMALL_MAX))
            .flatten()
            .and_then(|t| procfs::cgroup_v2(&t));
        let cgroup = match cgroup_id {
            Some(id) => self.cgroup_path(id).or(live_cgroup),
            None => live_cgroup,
        };
        let container = cgroup.as_deref().and_then(cgroup::container).map(|mut c| {
            if let Some(pod) = c.pod.as_mut() {
                cgroup::name_pod(pod, &pod_log_dirs());
            }
            c
        });
        Some(Owner {
            process: Some(Process {
                pid: tgid,
                comm,
                cmdline,
                uid,
                user: self.users.get(&uid).cloned(),
            }),
            container,
            cgroup,
        })
    }

    /// The owner of every flow of one result: an index into the returned table (one entry per
    /// process), or the reason it has none. `local` lists this namespace's addresses (with the
    /// IPv4 broadcast addresses).
    pub fn attribute(
        &mut self,
        flows: &[(FlowId, FlowSockets)],
        records: &dyn Records,
        local: &[IpAddr],
    ) -> Owned {
        let mut table: Vec<Owner> = Vec::new();
        let mut by_pid: HashMap<u32, u32> = HashMap::new();
        let mut refs = HashMap::new();
        let mut listed: Option<Vec<diag::DiagSocket>> = None;
        let own_netns = self.own_netns;
        for (id, s) in flows {
            // Multicast and broadcast arrive for this host too; they are not forwarded.
            let ours = local.contains(&id.local)
                || id.local.is_multicast()
                || id.local == IpAddr::V4(std::net::Ipv4Addr::BROADCAST);
            let chosen = choose(
                s,
                ours,
                id.protocol,
                |c| self.record(records, c),
                |lookup| {
                    let all = listed.get_or_insert_with(|| diag::sockets().unwrap_or_default());
                    let live = match lookup {
                        Lookup::Receiver => diag::receiver(
                            all,
                            id.protocol,
                            id.local,
                            id.local_port,
                            id.remote,
                            id.remote_port,
                        ),
                        Lookup::Listener => diag::listener(all, id.local, id.local_port),
                    };
                    live.or_else(|| {
                        diag::bound_receiver(
                            records.all(),
                            own_netns,
                            id.protocol,
                            id.local,
                            id.local_port,
                        )
                    })
                },
            );
            let r = match chosen {
                Err(reason) => OwnerRef::unattributed(reason),
                Ok(cookie) => match self.owner(cookie, records) {
                    None => OwnerRef::unattributed(Unattributed::SocketClosed),
                    Some(o) => {
                        let pid = o.process.as_ref().map_or(0, |p| p.pid);
                        let i = *by_pid.entry(pid).or_insert_with(|| {
                            table.push(o);
                            (table.len() - 1) as u32
                        });
                        OwnerRef::owned(i)
                    }
                },
            };
            refs.insert(*id, r);
        }
        Owned {
            owners: table,
            refs,
            note: self.older_note.clone(),
        }
    }
}

impl Default for Resolver {
    fn default() -> Self {
        Self::new()
    }
}

/// Most cgroup directories one walk reads: a busy node has thousands (a few per container),
/// not a hundred thousand.
const CGROUP_WALK_DIRS: usize = 100_000;

/// The cgroup tree under `root`: each directory's path (from `root`, with a leading `/`) by its
/// inode number, which is its cgroup id; at most `budget` directories, without recursion.
/// Whether every directory was read. Directories that vanish during the walk are skipped.
fn walk_cgroups(root: &Path, budget: usize) -> (HashMap<u64, String>, bool) {
    use std::os::unix::fs::MetadataExt;
    let mut found = HashMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if found.len() >= budget {
            return (found, false);
        }
        let Ok(m) = std::fs::metadata(&dir) else {
            continue;
        };
        let rel = dir
            .strip_prefix(root)
            .map_or(String::new(), |p| p.display().to_string());
        found.insert(m.ino(), format!("/{rel}"));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
        // What is queued is bounded too: a directory of a million entries is not read whole.
        if stack.len() > budget {
            return (found, false);
        }
    }
    (found, true)
}

/// The node's pod log directories (`<namespace>_<name>_<uid>`), when it is a Kubernetes node.
fn pod_log_dirs() -> Vec<String> {
    std::fs::read_dir("/var/log/pods")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod walk_tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn ino(p: &Path) -> u64 {
        std::fs::metadata(p).unwrap().ino()
    }

    /// Pods come and go: each walk holds exactly the tree of that moment (removed cgroups leave
    /// the map), a walk past its budget says it is incomplete, and only a complete walk marks an
    /// id as gone.
    #[test]
    fn walks_follow_the_tree_under_churn_and_stop_at_their_budget() {
        let root = std::env::temp_dir().join(format!("nmcg{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let pods = root.join("kubepods").join("burstable");
        for i in 0..50 {
            std::fs::create_dir_all(pods.join(format!("pod{i}")).join("ctr")).unwrap();
        }
        let (all, complete) = walk_cgroups(&root, 1_000);
        assert!(complete);
        assert_eq!(all.len(), 1 + 2 + 50 * 2);
        assert_eq!(
            all[&ino(&pods.join("pod7").join("ctr"))],
            "/kubepods/burstable/pod7/ctr"
        );
        let (part, complete) = walk_cgroups(&root, 20);
        assert!(!complete && part.len() <= 20);

        // Churn: half the pods go, others come. (New ones are made first: a temp directory's
        // inodes are reused, cgroup ids are not.)
        let mut r = Resolver {
            own_netns: None,
            cgroup_root: Some(root.clone()),
            users: HashMap::new(),
            cgroups: HashMap::new(),
            gone: Default::default(),
            older: HashMap::new(),
            named: HashMap::new(),
            recorded: HashMap::new(),
            older_note: None,
        };
        let old = ino(&pods.join("pod3").join("ctr"));
        assert_eq!(
            r.cgroup_path(old).as_deref(),
            Some("/kubepods/burstable/pod3/ctr")
        );
        let fresh = pods.join("pod99").join("ctr");
        std::fs::create_dir_all(&fresh).unwrap();
        for i in 0..25 {
            std::fs::remove_dir_all(pods.join(format!("pod{i}"))).unwrap();
        }
        assert_eq!(
            r.cgroup_path(ino(&fresh)).as_deref(),
            Some("/kubepods/burstable/pod99/ctr")
        );
        assert_eq!(
            r.cgroups.len(),
            1 + 2 + 26 * 2,
            "the removed pods left the map"
        );
        // An id no complete walk finds is gone; a walk cut short marks nothing.
        assert_eq!(r.cgroup_path(u64::MAX), None);
        assert!(r.gone.contains(&u64::MAX));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
