//! Which interfaces the classifier is attached to, and for how many callers. The first caller of
//! an interface claims its totals and attaches the program pair of its link kind; the last one
//! to leave detaches it and gives its totals and flows back.
//!
//! Attachments go through TCX links on kernels that have them (6.6+): they belong to this
//! process and vanish when it exits, even on `kill -9`, and they never touch qdiscs or other
//! programs' filters. Older kernels get cls_bpf filters of netmon's own on a clsact qdisc
//! ([`super::tc`]): netmon removes its filters on every exit it sees, the filters a netmon
//! that was killed left behind before it attaches, and the clsact qdisc when it added it and
//! nothing else hangs off it. `NETMON_TC_ATTACH=netlink` takes the clsact path on any kernel
//! (the tests use it to exercise that path here).

use super::loader::{Program, Programs};
use super::tc;
use crate::error::BpfError;
use crate::interface::InterfaceInfo;
use aya::programs::TcAttachType;
use aya::programs::links::Link as _;
use aya::programs::links::LinkOrder;
use aya::programs::tc::{
    self as aya_tc, NlOptions, SchedClassifierLink, SchedClassifierLinkId, TcAttachOptions,
    TcHandle,
};
use aya::util::KernelVersion;
use netmon_common::{Direction, LinkKind};
use std::collections::BTreeMap;

/// Environment variable that picks the attach path: `netlink` for clsact filters on any kernel.
pub const ATTACH_ENV: &str = "NETMON_TC_ATTACH";

struct Attached {
    users: usize,
    name: String,
    /// The ingress and egress programs attached.
    programs: [Program; 2],
    ingress: SchedClassifierLinkId,
    egress: SchedClassifierLinkId,
    /// netmon added the interface's clsact qdisc (netlink path): it removes it when nothing is
    /// left on it.
    added_clsact: bool,
}

/// The counting programs for an interface of `link` kind.
pub fn counting(link: LinkKind) -> [Program; 2] {
    [Direction::Ingress, Direction::Egress].map(|direction| Program::Classifier { direction, link })
}

/// The programs and what they are attached to.
pub struct Attachments {
    pub programs: Programs,
    attached: BTreeMap<u32, Attached>,
}

/// Whether attachments go through TCX links: the kernel has them and the environment does not
/// ask for netlink.
pub fn uses_tcx() -> bool {
    if std::env::var(ATTACH_ENV).is_ok_and(|v| v == "netlink") {
        return false;
    }
    KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0))
}

/// Removes the netmon filters on `hook` of `iface` whose makers are gone.
fn remove_stale(iface: &InterfaceInfo, hook: TcAttachType) {
    let Ok(list) = tc::filters(iface.index, hook) else {
        return;
    };
    for f in list.iter().filter(|f| tc::is_stale(f)) {
        let removed = SchedClassifierLink::attached(
            &iface.name,
            hook,
            f.priority,
            TcHandle::from(f.handle),
            None,
        )
        .map_err(|e| e.to_string())
        .and_then(|l| l.detach().map_err(|e| e.to_string()));
        match removed {
            Ok(()) => log::warn!(
                "removed a {} filter from {} that a netmon (pid {}) left when it was killed",
                f.name,
                iface.name,
                f.handle & 0x3f_ffff
            ),
            Err(e) => log::warn!(
                "a {} filter on {} was left by a netmon that is gone; removing it failed: {e}",
                f.name,
                iface.name
            ),
        }
    }
}

fn attach_one(
    programs: &mut Programs,
    which: Program,
    iface: &InterfaceInfo,
    hook: TcAttachType,
) -> Result<SchedClassifierLinkId, BpfError> {
    let program = programs.get(which)?;
    let attached = if uses_tcx() {
        program.attach_with_options(
            &iface.name,
            hook,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
    } else {
        remove_stale(iface, hook);
        let marked = NlOptions {
            handle: TcHandle::from(tc::own_handle()),
            ..Default::default()
        };
        // The mark may be taken by a netmon of another pid namespace with the same pid and tag:
        // then the kernel picks a handle, and this filter cannot be judged stale later.
        program
            .attach_with_options(&iface.name, hook, TcAttachOptions::Netlink(marked))
            .or_else(|_| {
                program.attach_with_options(
                    &iface.name,
                    hook,
                    TcAttachOptions::Netlink(NlOptions::default()),
                )
            })
    };
    attached.map_err(|e| BpfError::from_aya("attach the classifier", e))
}

/// Adds a clsact qdisc to `iface` if it has none; true when netmon added it.
fn ensure_clsact(iface: &InterfaceInfo) -> bool {
    if tc::has_clsact(iface.index).unwrap_or(true) {
        return false;
    }
    match aya_tc::qdisc_add_clsact(&iface.name) {
        Ok(()) => true,
        Err(e) => {
            log::debug!("clsact on {}: {e} (already present is fine)", iface.name);
            false
        }
    }
}

impl Attachments {
    pub fn new(programs: Programs) -> Self {
        Self {
            programs,
            attached: BTreeMap::new(),
        }
    }

    /// Whether `iface` is attached already.
    pub fn contains(&self, ifindex: u32) -> bool {
        self.attached.contains_key(&ifindex)
    }

    /// Adds a caller of `iface`, attaching `programs` (ingress, egress) if it is the first.
    pub fn add(&mut self, iface: &InterfaceInfo, programs: [Program; 2]) -> Result<(), BpfError> {
        if let Some(a) = self.attached.get_mut(&iface.index) {
            a.users += 1;
            return Ok(());
        }
        let [in_prog, eg_prog] = programs;
        let added_clsact = !uses_tcx() && ensure_clsact(iface);
        let undo_clsact = || {
            if added_clsact {
                remove_clsact_if_bare(iface.index, &iface.name);
            }
        };
        let ingress = match attach_one(&mut self.programs, in_prog, iface, TcAttachType::Ingress) {
            Ok(l) => l,
            Err(e) => {
                undo_clsact();
                return Err(e);
            }
        };
        let egress = match attach_one(&mut self.programs, eg_prog, iface, TcAttachType::Egress) {
            Ok(l) => l,
            Err(e) => {
                if let Ok(p) = self.programs.get(in_prog) {
                    let _ = p.detach(ingress);
                }
                undo_clsact();
                return Err(e);
            }
        };
        log::info!(
            "attached {} and {} to {} (ifindex {})",
            in_prog.name(),
            eg_prog.name(),
            iface.name,
            iface.index
        );
        self.attached.insert(
            iface.index,
            Attached {
                users: 1,
                name: iface.name.clone(),
                programs,
                ingress,
                egress,
                added_clsact,
            },
        );
        Ok(())
    }

    /// Detaches from every interface now, whoever still uses them: the process is about to
    /// exit, and on the clsact path a filter left attached would outlive it.
    pub fn remove_all(&mut self) -> Vec<u32> {
        let all: Vec<u32> = self.attached.keys().copied().collect();
        for ifindex in &all {
            if let Some(a) = self.attached.get_mut(ifindex) {
                a.users = 1;
            }
            self.remove(*ifindex);
        }
        all
    }

    /// Removes a caller of `ifindex`; true when it was the last, and the programs are detached.
    pub fn remove(&mut self, ifindex: u32) -> bool {
        let Some(a) = self.attached.get_mut(&ifindex) else {
            return false;
        };
        a.users -= 1;
        if a.users > 0 {
            return false;
        }
        let Some(a) = self.attached.remove(&ifindex) else {
            return false;
        };
        for (which, id) in a.programs.into_iter().zip([a.ingress, a.egress]) {
            if let Err(e) = self.programs.get(which).and_then(|p| {
                p.detach(id)
                    .map_err(|e| BpfError::from_aya("detach the classifier", e))
            }) {
                log::warn!("detaching {} from {}: {e}", which.name(), a.name);
            }
        }
        if a.added_clsact {
            remove_clsact_if_bare(ifindex, &a.name);
        }
        log::info!("detached from {} (ifindex {ifindex})", a.name);
        true
    }
}

/// Removes the clsact qdisc netmon added to an interface, unless filters (another tool's, or
/// another netmon's) still hang off it.
fn remove_clsact_if_bare(ifindex: u32, name: &str) {
    let bare = [TcAttachType::Ingress, TcAttachType::Egress]
        .into_iter()
        .all(|hook| tc::filters(ifindex, hook).is_ok_and(|f| f.is_empty()));
    if !bare {
        log::info!("leaving the clsact qdisc netmon added on {name}: other filters use it");
        return;
    }
    if let Err(e) = tc::remove_clsact(ifindex) {
        log::warn!("removing the clsact qdisc netmon added on {name}: {e}");
    }
}
