//! The netlink side of attaching on kernels without TCX (before 6.6): the clsact qdisc and
//! cls_bpf filters. A filter there outlives the process that made it (a TCX link does not), so
//! netmon marks its filters with who made them, removes the ones whose maker is gone before it
//! attaches, and removes a clsact qdisc it added once nothing hangs off it. An edge: netlink.
//!
//! The mark is the filter's handle: the process id in the low 22 bits (Linux's `PID_MAX_LIMIT`
//! is 2^22) and ten bits of the pid namespace above them, so a process only judges filters made
//! in its own pid namespace, where their pids mean what it sees.

use crate::netlink::{self, NETLINK_ROUTE, NLM_F_ACK, NLM_F_DUMP, attr_str, attributes, u32_at};
use aya::programs::TcAttachType;
use std::io;

const RTM_DELQDISC: u16 = 37;
const RTM_GETQDISC: u16 = 38;
const RTM_NEWTFILTER: u16 = 44;
const RTM_GETTFILTER: u16 = 46;
/// `struct tcmsg`: family, two pad bytes... ifindex, handle, parent, info.
const TCMSG: usize = 20;
const TC_H_CLSACT: u32 = 0xFFFF_FFF1;
const TC_H_INGRESS_PARENT: u32 = 0xFFFF_FFF2;
const TC_H_EGRESS_PARENT: u32 = 0xFFFF_FFF3;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_NAME: u16 = 7;
const PID_BITS: u32 = 22;

/// Names of netmon's classifier programs start with this; the filters carry them.
pub const NAME_PREFIX: &str = "netmon_";

/// One cls_bpf filter on a clsact hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub priority: u16,
    pub handle: u32,
    /// The program's name (`TCA_BPF_NAME`), empty when it has none.
    pub name: String,
}

fn parent(hook: TcAttachType) -> u32 {
    match hook {
        TcAttachType::Ingress => TC_H_INGRESS_PARENT,
        TcAttachType::Egress => TC_H_EGRESS_PARENT,
        TcAttachType::Custom(p) => p,
    }
}

fn tcmsg(ifindex: u32, handle: u32, parent: u32) -> [u8; TCMSG] {
    let mut m = [0u8; TCMSG];
    m[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    m[8..12].copy_from_slice(&handle.to_ne_bytes());
    m[12..16].copy_from_slice(&parent.to_ne_bytes());
    m
}

/// The filters on one clsact hook of `ifindex` (none when it has no clsact qdisc).
pub fn filters(ifindex: u32, hook: TcAttachType) -> io::Result<Vec<Filter>> {
    let replies = match netlink::request(
        NETLINK_ROUTE,
        RTM_GETTFILTER,
        NLM_F_DUMP,
        &tcmsg(ifindex, 0, parent(hook)),
    ) {
        Ok(r) => r,
        // No clsact qdisc: no hook, no filters.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(parse_filters(&replies))
}

/// The cls_bpf filters in a dump's replies. Pure (and fuzzed).
pub fn parse_filters(replies: &[netlink::Message]) -> Vec<Filter> {
    replies
        .iter()
        .filter(|m| m.kind == RTM_NEWTFILTER && m.body.len() >= TCMSG)
        .filter_map(|m| {
            let handle = u32_at(&m.body, 8);
            // The chain's own entry (handle 0) is no filter.
            if handle == 0 {
                return None;
            }
            let priority = (u32_at(&m.body, 16) >> 16) as u16;
            let attrs = attributes(&m.body[TCMSG..]);
            let bpf = attrs
                .iter()
                .any(|(k, v)| *k == TCA_KIND && attr_str(v) == "bpf");
            let name = attrs
                .iter()
                .filter(|(k, _)| *k == TCA_OPTIONS)
                .flat_map(|(_, v)| attributes(v))
                .find(|(k, _)| *k == TCA_BPF_NAME)
                .map(|(_, v)| attr_str(v))
                .unwrap_or_default();
            bpf.then_some(Filter {
                priority,
                handle,
                name,
            })
        })
        .collect()
}

/// Whether `ifindex` has a clsact qdisc.
pub fn has_clsact(ifindex: u32) -> io::Result<bool> {
    let replies = netlink::request(
        NETLINK_ROUTE,
        RTM_GETQDISC,
        NLM_F_DUMP,
        &tcmsg(ifindex, 0, 0),
    )?;
    Ok(replies.iter().any(|m| {
        m.body.len() >= TCMSG
            && u32_at(&m.body, 4) == ifindex
            && attributes(&m.body[TCMSG..])
                .iter()
                .any(|(k, v)| *k == TCA_KIND && attr_str(v) == "clsact")
    }))
}

/// Removes the clsact qdisc of `ifindex`, and with it whatever filters hang off it.
pub fn remove_clsact(ifindex: u32) -> io::Result<()> {
    netlink::request(
        NETLINK_ROUTE,
        RTM_DELQDISC,
        NLM_F_ACK,
        &tcmsg(ifindex, 0xFFFF_0000, TC_H_CLSACT),
    )
    .map(drop)
}

/// Ten bits of this process's pid namespace, never 0.
fn pidns_tag() -> u32 {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino());
    (ino % 1023) as u32 + 1
}

/// The handle netmon gives its filters: who made them (see the module's notes).
pub fn own_handle() -> u32 {
    (pidns_tag() << PID_BITS) | (std::process::id() & ((1 << PID_BITS) - 1))
}

/// Whether `f` is a netmon filter whose maker is gone: made in this pid namespace by a process
/// that no longer exists. A filter made elsewhere, or without netmon's mark, is not judged.
pub fn is_stale(f: &Filter) -> bool {
    is_stale_with(f, pidns_tag(), |pid| {
        // SAFETY: kill with signal 0 sends nothing; it only checks that the pid exists.
        let r = unsafe { libc::kill(pid as i32, 0) };
        r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    })
}

fn is_stale_with(f: &Filter, tag: u32, alive: impl Fn(u32) -> bool) -> bool {
    let pid = f.handle & ((1 << PID_BITS) - 1);
    f.name.starts_with(NAME_PREFIX) && f.handle >> PID_BITS == tag && pid != 0 && !alive(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, handle: u32) -> Filter {
        Filter {
            priority: 49152,
            handle,
            name: name.into(),
        }
    }

    #[test]
    fn only_netmon_filters_of_this_pid_namespace_whose_process_is_gone_are_stale() {
        let tag = 5;
        let h = |pid: u32| (tag << PID_BITS) | pid;
        let alive = |pid| pid == 4242;
        assert!(is_stale_with(&f("netmon_ingress", h(17)), tag, alive));
        assert!(
            !is_stale_with(&f("netmon_egress", h(4242)), tag, alive),
            "alive"
        );
        assert!(
            !is_stale_with(&f("netmon_ingress", (6 << PID_BITS) | 17), tag, alive),
            "another pid namespace"
        );
        assert!(
            !is_stale_with(&f("cilium_tc", h(17)), tag, alive),
            "not netmon's"
        );
        assert!(
            !is_stale_with(&f("netmon_ingress", 1), tag, alive),
            "no mark"
        );
        assert_eq!(own_handle() >> PID_BITS, pidns_tag());
        assert_eq!(own_handle() & ((1 << PID_BITS) - 1), std::process::id());
    }
}
