//! Whose traffic it is: the process, container and pod behind a flow's socket, or why there is
//! none. Pure: the types the results carry, the cgroup-path reading ([`cgroup`]), and the rule
//! that picks a flow's owner from what the kernel recorded ([`choose`]). Finding the records is
//! at the edge: [`diag`] (sock_diag, /proc/*/fd) and [`resolve`] (/proc, the cgroup tree).

pub mod cgroup;
pub mod diag;
pub mod procfs;
pub mod resolve;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A process, as nethogs names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Process {
    /// Thread-group id (the process id).
    pub pid: u32,
    /// Its name (`comm`) when it created the socket.
    pub comm: String,
    /// Its command line (first 256 bytes, arguments joined by spaces); null once it exited.
    pub cmdline: Option<String>,
    pub uid: u32,
    /// The user name of `uid` (/etc/passwd), when it has one.
    pub user: Option<String>,
}

/// Container runtimes netmon recognises in a cgroup path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    Docker,
    Podman,
    Containerd,
    CriO,
    /// A Kubernetes CRI runtime (containerd or CRI-O): the cgroupfs driver's path does not say
    /// which.
    Cri,
}

/// A Kubernetes pod: its uid from the cgroup path, with namespace and name when the node's
/// `/var/log/pods/<namespace>_<name>_<uid>/` has them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Pod {
    pub uid: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Container {
    pub runtime: Runtime,
    /// The 64-hex container id.
    pub id: String,
    pub pod: Option<Pod>,
}

/// Who a flow belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Owner {
    pub process: Option<Process>,
    pub container: Option<Container>,
    /// The cgroup v2 path of the process when it created the socket.
    pub cgroup: Option<String>,
}

/// Whose a flow is, as an always-on sampler keeps it beside the flow's history: its owner
/// (shared by the flows of one process), or why it has none.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FlowOwner {
    Owned(std::sync::Arc<Owner>),
    Unattributed(Unattributed),
}

/// Why a flow has no owner. Every byte is in some owner's row or in one of these.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Unattributed {
    /// Neither end is this network namespace: forwarded, routed or bridged through it. A
    /// socket of another namespace that sent it names it only when it is a container's.
    Forwarded,
    /// Sent by the kernel itself (an RST, an ICMP error or echo reply) from no process's socket.
    KernelSocket,
    /// A socket of this host that closed before netmon saw who owned it (or one it could not
    /// read: older than netmon, and without the privilege to look in /proc).
    SocketClosed,
    /// No socket on this host sent or received it (a port nobody listens on).
    NoSocket,
    /// In the kernel's totals but in no flow: the flow table was full.
    TableFull,
    /// Attribution is off (the cgroup hooks could not be attached); see the notes.
    Off,
}

impl Unattributed {
    /// A few words for a table cell.
    pub fn label(self) -> &'static str {
        match self {
            Unattributed::Forwarded => "forwarded",
            Unattributed::KernelSocket => "the kernel's own",
            Unattributed::SocketClosed => "socket closed unseen",
            Unattributed::NoSocket => "no socket",
            Unattributed::TableFull => "flow table full",
            Unattributed::Off => "attribution off",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Unattributed::Forwarded => {
                "forwarded, routed or bridged: neither end is this network namespace (nor a container's socket)"
            }
            Unattributed::KernelSocket => "sent by the kernel itself (RST, ICMP reply), no process",
            Unattributed::SocketClosed => {
                "a socket that closed before netmon saw its owner, or one netmon may not read"
            }
            Unattributed::NoSocket => "no socket on this host sent or received it",
            Unattributed::TableFull => "in the totals but in no flow: the flow table was full",
            Unattributed::Off => "attribution is off (see the notes)",
        }
    }
}

/// A row's owner: an index into the result's owner table, or why it has none. `None` in both:
/// the source does not attribute (iftop, an older agent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerRef {
    pub owner: Option<u32>,
    pub reason: Option<Unattributed>,
}

impl OwnerRef {
    pub const NONE: Self = Self {
        owner: None,
        reason: None,
    };

    pub fn owned(i: u32) -> Self {
        Self {
            owner: Some(i),
            reason: None,
        }
    }

    pub fn unattributed(r: Unattributed) -> Self {
        Self {
            owner: None,
            reason: Some(r),
        }
    }
}

/// The owners of a set of flows: a table, each flow's place in it (or why it has none), and a
/// note on what limited the search.
#[derive(Clone, Debug, Default)]
pub struct Owned {
    pub owners: Vec<Owner>,
    pub refs: std::collections::HashMap<crate::flow::FlowId, OwnerRef>,
    pub note: Option<String>,
}

/// What the kernel recorded for one socket: its creator (or closer), in which network namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketRecord {
    pub tgid: u32,
    /// Whether the socket lives in netmon's own network namespace.
    pub same_netns: bool,
    /// Whether its process was in a container's (or pod's) cgroup.
    pub in_container: bool,
}

/// What is known of one flow's sockets, for [`choose`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowSockets {
    /// The socket that sent the flow's packets (0: none seen).
    pub cookie: u64,
    /// The socket that sent its first received packet from another namespace of this host.
    pub peer_cookie: u64,
    /// No sent packet was looked at yet.
    pub pending: bool,
}

/// What [`choose`] asks the kernel's socket list for, by the flow's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The socket a packet to the flow's local end reaches (a receive-only UDP server).
    Receiver,
    /// The TCP listener on the flow's local port: an accepted connection's socket is made by
    /// the kernel, not by `socket(2)`, so no hook saw who owns it; its listener's process does.
    Listener,
}

/// Which socket owns a flow, or why none does. In order:
/// 1. the sending socket, when it is in netmon's own namespace (a process of this host);
/// 2. else, for a flow addressed to this namespace: the socket it is addressed to (a
///    receive-only UDP server), or, when an unrecorded socket sent on it, its TCP listener
///    (an accepted connection);
/// 3. else the socket that sent what the flow received, when it is this namespace's (both ends
///    of a veth here) or a container's (the container seen from the host side of its veth);
///    else a container's socket that sent across a bridge;
/// 4. else the flow is forwarded when neither end is this namespace's: a socket of another
///    namespace that is not a container's (a namespace this one routes for) does not name it.
///
/// `record` finds a cookie's record; `find` looks a socket up by the flow's address.
pub fn choose(
    s: &FlowSockets,
    local_is_ours: bool,
    protocol: u8,
    mut record: impl FnMut(u64) -> Option<SocketRecord>,
    mut find: impl FnMut(Lookup) -> Option<u64>,
) -> Result<u64, Unattributed> {
    const TCP: u8 = 6;
    let sent = (s.cookie != 0).then(|| record(s.cookie)).flatten();
    if sent.is_some_and(|r| r.same_netns) {
        return Ok(s.cookie);
    }
    // A socket no process created sent on it: an accepted connection's, or the kernel's own
    // (an RST, an echo reply).
    let unrecorded = s.cookie != 0 && sent.is_none();
    if local_is_ours {
        let lookup = match (unrecorded, protocol) {
            (false, _) => Some(Lookup::Receiver),
            (true, TCP) => Some(Lookup::Listener),
            (true, _) => None,
        };
        match lookup.and_then(&mut find) {
            Some(c) if record(c).is_some() => return Ok(c),
            Some(_) => return Err(Unattributed::SocketClosed),
            None => {}
        }
    }
    let peer = (s.peer_cookie != 0)
        .then(|| record(s.peer_cookie))
        .flatten();
    if peer.is_some_and(|r| r.same_netns || r.in_container) {
        return Ok(s.peer_cookie);
    }
    if sent.is_some_and(|r| r.in_container) {
        return Ok(s.cookie);
    }
    if !local_is_ours {
        return Err(Unattributed::Forwarded);
    }
    if unrecorded {
        return Err(Unattributed::KernelSocket);
    }
    Err(Unattributed::NoSocket)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1: a process of netmon's namespace; 2: a container's, elsewhere; 3: a plain process of
    /// another namespace.
    fn records(c: u64) -> Option<SocketRecord> {
        let r = |tgid, same_netns, in_container| SocketRecord {
            tgid,
            same_netns,
            in_container,
        };
        match c {
            1 => Some(r(100, true, false)),
            2 => Some(r(200, false, true)),
            3 => Some(r(300, false, false)),
            _ => None,
        }
    }

    /// A UDP flow; `receiver` is what the lookup by address finds.
    fn pick(
        cookie: u64,
        peer: u64,
        ours: bool,
        receiver: Option<u64>,
    ) -> Result<u64, Unattributed> {
        let s = FlowSockets {
            cookie,
            peer_cookie: peer,
            pending: false,
        };
        choose(&s, ours, 17, records, |l| {
            assert_eq!(l, Lookup::Receiver);
            receiver
        })
    }

    #[test]
    fn an_accepted_connection_is_its_listeners() {
        let s = FlowSockets {
            cookie: 9,
            peer_cookie: 0,
            pending: false,
        };
        let tcp = |listener: Option<u64>| {
            choose(&s, true, 6, records, |l| {
                assert_eq!(l, Lookup::Listener);
                listener
            })
        };
        assert_eq!(tcp(Some(1)), Ok(1));
        assert_eq!(
            tcp(None),
            Err(Unattributed::KernelSocket),
            "an RST to a closed port"
        );
        assert_eq!(tcp(Some(8)), Err(Unattributed::SocketClosed));
    }

    #[test]
    fn the_owner_is_the_local_socket_then_the_container_end() {
        assert_eq!(pick(1, 0, true, None), Ok(1), "a process of this host");
        assert_eq!(pick(1, 2, true, None), Ok(1), "the local socket wins");
        assert_eq!(pick(2, 1, false, None), Ok(1), "a peer in this namespace");
        assert_eq!(
            pick(0, 2, false, None),
            Ok(2),
            "a container's socket seen on its veth"
        );
        assert_eq!(
            pick(2, 0, false, None),
            Ok(2),
            "a container sending across a bridge"
        );
        assert_eq!(
            pick(0, 3, true, Some(1)),
            Ok(1),
            "a receive-only server of ours, not the sender in another namespace"
        );
        assert_eq!(
            pick(0, 2, true, Some(1)),
            Ok(1),
            "ours first, even when a container sent it"
        );
        assert_eq!(
            pick(0, 2, true, None),
            Ok(2),
            "sent by a container to an address of ours nobody listens on"
        );
    }

    #[test]
    fn every_flow_without_an_owner_has_a_reason() {
        assert_eq!(pick(9, 0, true, None), Err(Unattributed::KernelSocket));
        assert_eq!(pick(0, 0, false, None), Err(Unattributed::Forwarded));
        assert_eq!(
            pick(0, 3, false, None),
            Err(Unattributed::Forwarded),
            "routed for another namespace's process"
        );
        assert_eq!(
            pick(3, 0, false, None),
            Err(Unattributed::Forwarded),
            "bridged for another namespace's process"
        );
        assert_eq!(
            pick(0, 0, true, Some(1)),
            Ok(1),
            "a receive-only server, by address"
        );
        assert_eq!(pick(0, 0, true, Some(7)), Err(Unattributed::SocketClosed));
        assert_eq!(pick(0, 0, true, None), Err(Unattributed::NoSocket));
        assert_eq!(pick(0, 3, true, None), Err(Unattributed::NoSocket));
    }
}
