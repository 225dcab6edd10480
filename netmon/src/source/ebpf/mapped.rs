//! A `BPF_F_MMAPABLE` array mapped into this process, read in place: reading every flow's
//! counters is a memory read, not a syscall per entry or a walk of the hash's buckets.
//!
//! The classifier writes these arrays while we read them, so every read is a volatile (or
//! atomic) load of one element; nothing here hands out a reference into the mapping.

use crate::error::BpfError;
use aya::maps::MapData;
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;

/// An array map's values, mapped read-only.
pub struct Mapped<T> {
    ptr: NonNull<T>,
    len: u32,
    bytes: usize,
    // The mapping keeps the map alive by itself; the handle is kept for symmetry with the
    // other maps (and for `bpftool map show` to name it as ours while we run).
    _map: MapData,
}

// SAFETY: the mapping is only read, by volatile or atomic loads of `T: Pod` values, which any
// thread may do at any time; the kernel is the only writer.
unsafe impl<T: Send> Send for Mapped<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Mapped<T> {}

impl<T: aya::Pod> Mapped<T> {
    /// Maps the `len` values of `map` (an array created with `BPF_F_MMAPABLE`). An array's
    /// elements are `T`'s size rounded up to 8 bytes apart, so `T` must already be a multiple
    /// of 8 (asserted in netmon-common for the types used here).
    pub fn new(map: MapData, len: u32, what: &'static str) -> Result<Self, BpfError> {
        if !size_of::<T>().is_multiple_of(8) || len == 0 {
            return Err(BpfError::Missing {
                what: format!("{what}: elements of {} bytes", size_of::<T>()),
            });
        }
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let bytes = (size_of::<T>() * len as usize).div_ceil(page) * page;
        // SAFETY: a fresh shared read-only mapping of the map's fd; the kernel checks the length
        // against the array's and refuses maps created without BPF_F_MMAPABLE.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(BpfError::Failed {
                action: what,
                source: Box::new(std::io::Error::last_os_error()),
            });
        }
        let ptr = NonNull::new(p.cast::<T>()).ok_or_else(|| BpfError::Missing {
            what: format!("{what}: a mapping"),
        })?;
        Ok(Self {
            ptr,
            len,
            bytes,
            _map: map,
        })
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    /// Element `i`, or `None` past the end.
    fn at(&self, i: u32) -> Option<*const T> {
        // SAFETY: in bounds of the mapping (i < len, len elements were mapped).
        (i < self.len).then(|| unsafe { self.ptr.as_ptr().add(i as usize) }.cast_const())
    }

    /// A copy of element `i`, or `None` past the end. Fields the kernel is writing may be
    /// caught between two of its stores; callers read counters with [`Self::u64_at`] instead.
    pub fn get(&self, i: u32) -> Option<T> {
        // SAFETY: a valid, aligned element of a live mapping; T is Pod, so any bytes are valid.
        self.at(i).map(|p| unsafe { std::ptr::read_volatile(p) })
    }

    /// The `u64` at byte `offset` of element `i`, loaded atomically (the classifier adds to it
    /// with atomic adds), or `None` past the end.
    pub fn u64_at(&self, i: u32, offset: usize) -> Option<u64> {
        debug_assert!(offset.is_multiple_of(8) && offset + 8 <= size_of::<T>());
        let p = self.at(i)?;
        // SAFETY: an 8-aligned u64 inside a live element (offsets are fields' offsets).
        let a = unsafe {
            &*p.cast::<u8>()
                .add(offset)
                .cast::<std::sync::atomic::AtomicU64>()
        };
        Some(a.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The `u32` at byte `offset` of element `i`, loaded with acquire ordering: the classifier
    /// moves a slot's generation after writing its key, so a reader that sees the new
    /// generation then reads the new key. `None` past the end.
    pub fn u32_acquire_at(&self, i: u32, offset: usize) -> Option<u32> {
        debug_assert!(offset.is_multiple_of(4) && offset + 4 <= size_of::<T>());
        let p = self.at(i)?;
        // SAFETY: a 4-aligned u32 inside a live element.
        let a = unsafe {
            &*p.cast::<u8>()
                .add(offset)
                .cast::<std::sync::atomic::AtomicU32>()
        };
        Some(a.load(std::sync::atomic::Ordering::Acquire))
    }
}

impl<T> Drop for Mapped<T> {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped; no reference into it outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.bytes) };
    }
}
