//! Two operations on a hash map that aya 0.14 does not wrap: reading it whole with
//! BPF_MAP_LOOKUP_BATCH (Linux 5.6+), and BPF_MAP_LOOKUP_AND_DELETE_ELEM (5.14+ for hash maps).
//! Key-by-key iteration costs two syscalls per entry (get-next-key, then lookup): ~95 ms for
//! 65,536 flows here. A batch copies thousands of entries per syscall.
//!
//! Both take aya's typed map, whose key and value sizes aya checked against the kernel's when it
//! opened the map, so the buffers handed to the kernel are the sizes it writes.

use aya::Pod;
use aya::maps::{HashMap, IterableMap, MapData};
use std::io;
use std::os::fd::{AsFd, AsRawFd};

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// The `batch` member of `union bpf_attr` (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Entries copied per syscall. A hash map's batch must hold at least one whole bucket; the
/// kernel says ENOSPC otherwise, and the chunk is doubled.
const CHUNK: usize = 4096;
const MAX_CHUNK: usize = 1 << 20;

fn fd(map: &MapData) -> u32 {
    map.fd().as_fd().as_raw_fd() as u32
}

/// Calls `f` with every entry of a (non-per-CPU) hash map. The same two chunk buffers serve
/// every syscall, so a big table costs no big allocation (and no page faults for one). Errors
/// with `EINVAL`/`ENOTSUP` before calling `f` on kernels without batch operations; the caller
/// then falls back to iteration.
pub fn for_each<K: Pod, V: Pod>(
    map: &HashMap<MapData, K, V>,
    mut f: impl FnMut(&K, &V),
) -> io::Result<()> {
    let fd = fd(map.map());
    let mut chunk = CHUNK;
    // SAFETY: K and V are Pod: all-zero bytes are valid values.
    let mut keys: Vec<K> = vec![unsafe { std::mem::zeroed() }; chunk];
    // SAFETY: as above.
    let mut values: Vec<V> = vec![unsafe { std::mem::zeroed() }; chunk];
    // The kernel's position token for hash maps is a bucket index (u32); room for 8 bytes.
    let (mut token_in, mut token_out) = (0u64, 0u64);
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { &raw mut token_in as u64 },
            out_batch: &raw mut token_out as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: fd,
            ..Default::default()
        };
        // SAFETY: attr points at live buffers of `chunk` keys and values of the map's sizes
        // (aya checked K and V against them when it opened the typed map); the kernel writes at
        // most `count` of each and the token.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &raw mut attr,
                std::mem::size_of::<BatchAttr>() as u32,
            )
        };
        let err = (r < 0).then(io::Error::last_os_error);
        let n = (attr.count as usize).min(chunk);
        match err.as_ref().and_then(io::Error::raw_os_error) {
            None | Some(libc::ENOENT) => {
                keys.iter().zip(&values).take(n).for_each(|(k, v)| f(k, v));
                if err.is_some() {
                    return Ok(());
                }
                token_in = token_out;
                first = false;
            }
            Some(libc::ENOSPC) if chunk < MAX_CHUNK => {
                // A bucket larger than the chunk: nothing was copied; retry with more room.
                chunk *= 2;
                // SAFETY: as above.
                keys.resize(chunk, unsafe { std::mem::zeroed() });
                // SAFETY: as above.
                values.resize(chunk, unsafe { std::mem::zeroed() });
            }
            _ => return Err(err.unwrap_or_else(|| io::Error::other("batch lookup failed"))),
        }
    }
}

const BPF_MAP_LOOKUP_AND_DELETE_ELEM: libc::c_long = 21;

/// The element-operation member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Removes `key` from a (non-per-CPU) hash map and returns the value it had at removal, in one
/// syscall under the bucket's lock (Linux 5.14+ for hash maps), so nothing counted before the
/// removal is lost between a read and a delete. `Ok(None)`: no such entry.
pub fn lookup_and_delete<K: Pod, V: Pod>(
    map: &HashMap<MapData, K, V>,
    key: &K,
) -> io::Result<Option<V>> {
    // SAFETY: V is Pod: all-zero bytes are a valid value.
    let mut value: V = unsafe { std::mem::zeroed() };
    let mut attr = ElemAttr {
        map_fd: fd(map.map()),
        key: std::ptr::from_ref(key) as u64,
        value: &raw mut value as u64,
        ..Default::default()
    };
    // SAFETY: key and value point at live Pod values of the map's key and value sizes (checked
    // by aya); the kernel reads the key and writes one value.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_LOOKUP_AND_DELETE_ELEM,
            &raw mut attr,
            std::mem::size_of::<ElemAttr>() as u32,
        )
    };
    if r == 0 {
        return Ok(Some(value));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOENT) => Ok(None),
        _ => Err(e),
    }
}
