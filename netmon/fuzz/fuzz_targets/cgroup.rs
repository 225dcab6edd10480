//! cgroup paths (from /proc and the cgroup tree, which containers name) and the pod log
//! directories of a node, read into containers and pods.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netmon::owner::cgroup;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\n');
    let path = parts.next().unwrap_or_default();
    let dirs: Vec<String> = parts.map(str::to_string).collect();
    if let Some(mut c) = cgroup::container(path) {
        if let Some(pod) = c.pod.as_mut() {
            cgroup::name_pod(pod, &dirs);
        }
    }
});
