//! The kernel side: loading, verifying and attaching the classifier, and its maps.

use super::{Cause, errno};

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error(
        "netmon needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON to {action} (run it as root, or grant them: `sudo setcap cap_bpf,cap_net_admin,cap_perfmon+ep {exe}`)"
    )]
    NeedsPrivileges {
        action: &'static str,
        exe: String,
        #[source]
        source: Cause,
    },

    #[error(
        "this kernel cannot {action}; netmon needs eBPF (CONFIG_BPF_SYSCALL, BPF JIT) and TC classifiers (TCX on kernel 6.6+, or clsact with cls_bpf)"
    )]
    Unsupported {
        action: &'static str,
        #[source]
        source: Cause,
    },

    #[error("eBPF: could not {action}")]
    Failed {
        action: &'static str,
        #[source]
        source: Cause,
    },

    #[error(
        "eBPF: {what} is missing from netmon's kernel object; the build is broken (rebuild with `cargo xtask build`)"
    )]
    Missing { what: String },
}

impl BpfError {
    /// Classifies an error from aya: permission and missing-feature errors get their own variant
    /// so the message can name the fix.
    pub fn from_aya<E: std::error::Error + Send + Sync + 'static>(
        action: &'static str,
        err: E,
    ) -> Self {
        let source: Cause = Box::new(err);
        match errno(source.as_ref()) {
            Some(libc::EPERM) | Some(libc::EACCES) => Self::NeedsPrivileges {
                action,
                exe: std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "netmon".into()),
                source,
            },
            Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => Self::Unsupported { action, source },
            _ => Self::Failed { action, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("bpf_map_create failed")]
    struct Wrapped(#[source] std::io::Error);

    #[test]
    fn eperm_anywhere_in_the_chain_names_the_capabilities() {
        let e = BpfError::from_aya(
            "load the eBPF program",
            Wrapped(std::io::Error::from_raw_os_error(libc::EPERM)),
        );
        let msg = chain(&e);
        assert!(
            msg.contains("CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"),
            "{msg}"
        );
        assert!(msg.contains("run it as root"), "{msg}");
        assert!(msg.contains("bpf_map_create failed"), "{msg}");
    }

    #[test]
    fn enosys_says_the_kernel_lacks_bpf() {
        let e = BpfError::from_aya(
            "load the eBPF program",
            Wrapped(std::io::Error::from_raw_os_error(libc::ENOSYS)),
        );
        assert!(matches!(e, BpfError::Unsupported { .. }));
    }
}
