//! Containers and pods from cgroup v2 paths, as each runtime lays them out with the cgroupfs and
//! the systemd drivers. Pure.

use super::{Container, Pod, Runtime};

fn hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The container id and runtime one path segment names (`parent` is the segment above it).
fn segment(seg: &str, parent: Option<&str>, kubernetes: bool) -> Option<(Runtime, String)> {
    let scoped = seg.strip_suffix(".scope").unwrap_or(seg);
    for (prefix, runtime) in [
        ("libpod-", Runtime::Podman),
        ("docker-", Runtime::Docker),
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::CriO),
    ] {
        if let Some(id) = scoped.strip_prefix(prefix)
            && hex64(id)
        {
            return Some((runtime, id.to_string()));
        }
    }
    // cgroupfs drivers put the bare id under docker/, or under kubepods/<qos>/pod<uid>/ (where
    // the path does not say whether containerd or CRI-O made it).
    if hex64(seg) {
        if kubernetes {
            return Some((Runtime::Cri, seg.to_string()));
        }
        if parent == Some("docker") {
            return Some((Runtime::Docker, seg.to_string()));
        }
    }
    None
}

/// A pod uid from a `pod<uid>` segment (`pod<uid_with_underscores>.slice` with systemd).
fn pod_uid(seg: &str) -> Option<String> {
    let s = seg.strip_suffix(".slice").unwrap_or(seg);
    let at = s.rfind("pod")?;
    let uid = &s[at + 3..];
    let uid = uid.replace('_', "-");
    let ok = uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    ok.then_some(uid)
}

/// The container a process in cgroup `path` runs in, if any. Runtime helpers (conmon, the
/// shims) are not containers.
pub fn container(path: &str) -> Option<Container> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let kubernetes = segs.iter().any(|s| s.starts_with("kubepods"));
    let (at, (runtime, id)) = (0..segs.len()).rev().find_map(|i| {
        let parent = i.checked_sub(1).map(|p| segs[p]);
        segment(segs[i], parent, kubernetes).map(|c| (i, c))
    })?;
    let pod = segs[..at]
        .iter()
        .rev()
        .find_map(|s| pod_uid(s))
        .map(|uid| Pod {
            uid,
            namespace: None,
            name: None,
        });
    Some(Container { runtime, id, pod })
}

/// Fills a pod's namespace and name from the names of the node's `/var/log/pods` entries
/// (`<namespace>_<name>_<uid>`).
pub fn name_pod(pod: &mut Pod, log_dirs: &[String]) {
    let suffix = format!("_{}", pod.uid);
    if let Some(d) = log_dirs.iter().find(|d| d.ends_with(&suffix)) {
        let head = &d[..d.len() - suffix.len()];
        if let Some((ns, name)) = head.split_once('_') {
            pod.namespace = Some(ns.to_string());
            pod.name = Some(name.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a9c1b7e4d5a6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7";
    const UID: &str = "8d6f7c1e-2b3a-4c5d-9e8f-0a1b2c3d4e5f";

    fn c(path: &str) -> Option<(Runtime, String, Option<String>)> {
        container(path).map(|c| (c.runtime, c.id, c.pod.map(|p| p.uid)))
    }

    #[test]
    fn each_runtime_with_each_driver() {
        let podman = |p: &str| assert_eq!(c(p), Some((Runtime::Podman, ID.into(), None)), "{p}");
        // podman, cgroupfs manager (as on this machine) and systemd manager.
        podman(&format!("/libpod_parent/libpod-{ID}"));
        podman(&format!("/machine.slice/libpod-{ID}.scope"));
        podman(&format!("/machine.slice/libpod-{ID}.scope/container"));
        // docker, both drivers.
        let docker = Some((Runtime::Docker, ID.to_string(), None));
        assert_eq!(c(&format!("/docker/{ID}")), docker);
        assert_eq!(c(&format!("/system.slice/docker-{ID}.scope")), docker);
    }

    #[test]
    fn kubernetes_pods_and_qos_slices() {
        let underscored = UID.replace('-', "_");
        assert_eq!(
            c(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{underscored}.slice/cri-containerd-{ID}.scope"
            )),
            Some((Runtime::Containerd, ID.into(), Some(UID.into())))
        );
        assert_eq!(
            c(&format!(
                "/kubepods.slice/kubepods-pod{underscored}.slice/crio-{ID}.scope"
            )),
            Some((Runtime::CriO, ID.into(), Some(UID.into()))),
            "guaranteed QoS has no QoS slice"
        );
        assert_eq!(
            c(&format!("/kubepods/besteffort/pod{UID}/{ID}")),
            Some((Runtime::Cri, ID.into(), Some(UID.into()))),
            "cgroupfs driver"
        );
    }

    #[test]
    fn helpers_and_host_processes_are_no_container() {
        assert_eq!(c("/"), None);
        assert_eq!(c("/user.slice/user-1000.slice/session-2.scope"), None);
        assert_eq!(c(&format!("/machine.slice/libpod-conmon-{ID}.scope")), None);
        assert_eq!(c(&format!("/system.slice/crio-conmon-{ID}.scope")), None);
        assert_eq!(c("/system.slice/docker.service"), None);
        assert_eq!(
            c(&format!("/some/{ID}")),
            None,
            "a bare id outside a runtime's tree"
        );
    }

    #[test]
    fn pods_are_named_from_their_log_directories() {
        let mut pod = Pod {
            uid: UID.into(),
            namespace: None,
            name: None,
        };
        name_pod(
            &mut pod,
            &[
                "kube-system_coredns-5d78c9869d-x7k2p_11111111-2222-3333-4444-555555555555".into(),
                format!("default_web-7f9c_{UID}"),
            ],
        );
        assert_eq!(pod.namespace.as_deref(), Some("default"));
        assert_eq!(pod.name.as_deref(), Some("web-7f9c"));
    }
}
