//! Which interfaces the classifier is attached to, and for how many callers. The first caller of
//! an interface claims its totals and attaches the program pair of its link kind; the last one
//! to leave detaches it and gives its totals and flows back.
//!
//! Attachments go through TCX links on kernels that have them (6.6+): they belong to this
//! process and vanish when it exits, even on `kill -9`, and they never touch qdiscs or other
//! programs' filters. Older kernels get a clsact filter of netmon's own; a clsact qdisc is added
//! only if missing and is never removed, since other tools' filters may hang off it.

use super::loader::{Program, Programs};
use crate::error::BpfError;
use crate::interface::InterfaceInfo;
use aya::programs::TcAttachType;
use aya::programs::tc::{self, SchedClassifierLinkId};
use aya::util::KernelVersion;
use netmon_common::{Direction, LinkKind};
use std::collections::BTreeMap;

struct Attached {
    users: usize,
    name: String,
    /// The ingress and egress programs attached.
    programs: [Program; 2],
    ingress: SchedClassifierLinkId,
    egress: SchedClassifierLinkId,
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

fn attach_one(
    programs: &mut Programs,
    which: Program,
    iface: &str,
    kind: TcAttachType,
) -> Result<SchedClassifierLinkId, BpfError> {
    let tcx = KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0));
    if !tcx {
        // Netlink filters need a clsact qdisc. Add one only if missing (EEXIST is fine), and
        // never remove it: other tools' filters may hang off it.
        if let Err(e) = tc::qdisc_add_clsact(iface) {
            log::debug!("clsact on {iface}: {e} (already present is fine)");
        }
    }
    programs
        .get(which)?
        .attach(iface, kind)
        .map_err(|e| BpfError::from_aya("attach the classifier", e))
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
        let ingress = attach_one(
            &mut self.programs,
            in_prog,
            &iface.name,
            TcAttachType::Ingress,
        )?;
        let egress = match attach_one(
            &mut self.programs,
            eg_prog,
            &iface.name,
            TcAttachType::Egress,
        ) {
            Ok(l) => l,
            Err(e) => {
                if let Ok(p) = self.programs.get(in_prog) {
                    let _ = p.detach(ingress);
                }
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
            },
        );
        Ok(())
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
        log::info!("detached from {} (ifindex {ifindex})", a.name);
        true
    }
}
