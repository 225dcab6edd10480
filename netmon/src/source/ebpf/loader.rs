//! Loading netmon's kernel object: its maps are created at the sizes asked for, the Ethernet pair
//! of classifiers goes through the verifier at once (so a missing privilege shows at start), and
//! the raw-IP pair and the benchmark's floor program only when first needed.

use super::maps::Maps;
use crate::error::BpfError;
use aya::programs::SchedClassifier;
use aya::{Ebpf, EbpfLoader};
use netmon_common::{
    Direction, EGRESS_PROG, EGRESS_RAW_PROG, FLOOR_PROG, FLOWS4_MAP, FLOWS6_MAP, INGRESS_PROG,
    INGRESS_RAW_PROG, LinkKind,
};

/// The kernel object built from `netmon-ebpf` by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netmon"));

/// One of the object's classifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// The counting program for one hook of one kind of interface.
    Classifier {
        direction: Direction,
        link: LinkKind,
    },
    /// Returns "continue" and nothing else: what the benchmark measures the others against.
    Floor,
}

impl Program {
    pub fn name(self) -> &'static str {
        match self {
            Program::Classifier {
                direction: Direction::Ingress,
                link: LinkKind::Ethernet,
            } => INGRESS_PROG,
            Program::Classifier {
                direction: Direction::Egress,
                link: LinkKind::Ethernet,
            } => EGRESS_PROG,
            Program::Classifier {
                direction: Direction::Ingress,
                link: LinkKind::RawIp,
            } => INGRESS_RAW_PROG,
            Program::Classifier {
                direction: Direction::Egress,
                link: LinkKind::RawIp,
            } => EGRESS_RAW_PROG,
            Program::Floor => FLOOR_PROG,
        }
    }
}

/// The object's programs, after its maps were taken out into [`Maps`].
pub struct Programs {
    ebpf: Ebpf,
}

fn raise_memlock() {
    // Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; newer ones use memcg and ignore it.
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        log::debug!("could not raise RLIMIT_MEMLOCK; fine on kernels 5.11+");
    }
}

/// Creates the maps (`flow_capacity` entries in each flow table) and verifies the Ethernet pair.
pub fn load(flow_capacity: u32) -> Result<(Programs, Maps), BpfError> {
    raise_memlock();
    let mut ebpf = EbpfLoader::new()
        .map_max_entries(FLOWS4_MAP, flow_capacity)
        .map_max_entries(FLOWS6_MAP, flow_capacity)
        .load(OBJECT)
        .map_err(|e| BpfError::from_aya("load the eBPF program", e))?;
    let maps = Maps::take(&mut ebpf)?;
    let mut programs = Programs { ebpf };
    for direction in [Direction::Ingress, Direction::Egress] {
        programs.get(Program::Classifier {
            direction,
            link: LinkKind::Ethernet,
        })?;
    }
    Ok((programs, maps))
}

impl Programs {
    /// The program, through the verifier the first time it is asked for.
    pub fn get(&mut self, which: Program) -> Result<&mut SchedClassifier, BpfError> {
        let name = which.name();
        let prog: &mut SchedClassifier = self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| BpfError::Missing {
                what: format!("program {name}"),
            })?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| BpfError::from_aya("find a program", e))?;
        if prog.fd().is_err() {
            prog.load()
                .map_err(|e| BpfError::from_aya("load the classifier (verifier)", e))?;
        }
        Ok(prog)
    }

    /// The kernel's id of a program already loaded (`bpftool prog show id N`).
    pub fn id(&self, which: Program) -> Option<u32> {
        let prog: &SchedClassifier = self.ebpf.program(which.name())?.try_into().ok()?;
        prog.info().ok().map(|i| i.id())
    }
}
