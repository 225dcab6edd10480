//! Loading netmon's kernel object: its maps are created at the sizes asked for, the Ethernet pair
//! of classifiers goes through the verifier at once (so a missing privilege shows at start), and
//! the raw-IP pair and the benchmark's floor program only when first needed.

use super::maps::{Maps, OwnerMap};
use crate::error::BpfError;
use aya::programs::{CgroupAttachMode, CgroupSock, SchedClassifier};
use aya::{Ebpf, EbpfLoader};
use netmon_common::{
    COUNTERS_MAP, Direction, EGRESS_PLAIN_PROG, EGRESS_PROG, EGRESS_RAW_PROG, FLOOR_PROG,
    FLOWS4_MAP, FLOWS6_MAP, FREE_MAP, INGRESS_PLAIN_PROG, INGRESS_PROG, INGRESS_RAW_PROG, KEYS_MAP,
    LinkKind, POST_BIND4_PROG, POST_BIND6_PROG, SLOTS_GLOBAL, SOCK_CREATE_PROG, SOCK_RELEASE_PROG,
    SOCKETS_MAP,
};
use std::path::Path;

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
    /// The Ethernet classifier without socket attribution: what the benchmark measures
    /// attribution's cost against.
    Plain(Direction),
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
            Program::Plain(Direction::Ingress) => INGRESS_PLAIN_PROG,
            Program::Plain(Direction::Egress) => EGRESS_PLAIN_PROG,
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

/// Creates the maps (`flow_capacity` slots, shared by both families, and as many entries in
/// each flow table) and verifies the Ethernet pair.
pub fn load(flow_capacity: u32) -> Result<(Programs, Maps, OwnerMap), BpfError> {
    raise_memlock();
    let mut loader = EbpfLoader::new();
    for map in [
        FLOWS4_MAP,
        FLOWS6_MAP,
        COUNTERS_MAP,
        KEYS_MAP,
        SOCKETS_MAP,
        FREE_MAP,
    ] {
        loader.map_max_entries(map, flow_capacity);
    }
    let mut ebpf = loader
        .override_global(SLOTS_GLOBAL, &flow_capacity, true)
        .load(OBJECT)
        .map_err(|e| BpfError::from_aya("load the eBPF program", e))?;
    let maps = Maps::take(&mut ebpf, flow_capacity)?;
    let owners = OwnerMap::take(&mut ebpf)?;
    let mut programs = Programs { ebpf };
    for direction in [Direction::Ingress, Direction::Egress] {
        programs.get(Program::Classifier {
            direction,
            link: LinkKind::Ethernet,
        })?;
    }
    Ok((programs, maps, owners))
}

/// The program `name` of the object, as the kind `T` it must be.
fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, BpfError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| BpfError::Missing {
            what: format!("program {name}"),
        })?
        .try_into()
        .map_err(|e| BpfError::from_aya("find a program", e))
}

impl Programs {
    /// The program, through the verifier the first time it is asked for.
    pub fn get(&mut self, which: Program) -> Result<&mut SchedClassifier, BpfError> {
        let prog: &mut SchedClassifier = program(&mut self.ebpf, which.name())?;
        if prog.fd().is_err() {
            prog.load()
                .map_err(|e| BpfError::from_aya("load the classifier (verifier)", e))?;
        }
        Ok(prog)
    }

    /// Loads the socket-owner programs and attaches them to the cgroup v2 tree at `root`, so
    /// every socket created or released under it is recorded. They stay attached while the
    /// object is loaded (the links close with it, also when the process dies).
    pub fn attach_owners(&mut self, root: &Path) -> Result<(), BpfError> {
        let cgroup = std::fs::File::open(root).map_err(|e| BpfError::Failed {
            action: "open the cgroup v2 root",
            source: Box::new(e),
        })?;
        for name in [
            SOCK_CREATE_PROG,
            SOCK_RELEASE_PROG,
            POST_BIND4_PROG,
            POST_BIND6_PROG,
        ] {
            let prog: &mut CgroupSock = program(&mut self.ebpf, name)?;
            prog.load()
                .map_err(|e| BpfError::from_aya("load the socket-owner program (verifier)", e))?;
            // A link (kernel 5.7+) always sits beside other programs at the root, never instead
            // of them; link_create refuses the ALLOW_MULTI flag itself.
            prog.attach(&cgroup, CgroupAttachMode::Single)
                .map_err(|e| {
                    BpfError::from_aya("attach the socket-owner program to the cgroup root", e)
                })?;
        }
        Ok(())
    }

    /// The kernel's id of a program already loaded (`bpftool prog show id N`).
    pub fn id(&self, which: Program) -> Option<u32> {
        let prog: &SchedClassifier = self.ebpf.program(which.name())?.try_into().ok()?;
        prog.info().ok().map(|i| i.id())
    }
}
