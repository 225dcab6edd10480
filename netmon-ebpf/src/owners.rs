//! Who owns each socket: two cgroup socket programs, attached at the cgroup v2 root, record the
//! creating process of every IPv4/IPv6 socket (`socket(2)` in any network namespace, TCP, UDP,
//! ping and raw) and mark it when it is released, by its cookie, the same cookie the classifier
//! stores in a flow. Processes that exit keep their record; sockets netmon first sees closing
//! (accepted connections, sockets older than netmon) are recorded with whoever closes them.
//!
//! Two more, `post_bind4`/`post_bind6`, add the address a socket binds to: a UDP server that only
//! receives sends nothing that would carry its cookie, so it is found by that address.
//!
//! All four return 1 ("allow") on every path: 0 would make `socket()` fail for the host.

use aya_ebpf::{
    EbpfContext as _,
    bindings::BPF_NOEXIST,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{bpf_get_current_cgroup_id, bpf_get_netns_cookie, bpf_get_socket_cookie},
    },
    macros::{cgroup_sock, map},
    maps::LruHashMap,
    programs::SockContext,
};
use netmon_common::{OWNERS_CAPACITY, SocketOwner};

const ALLOW: i32 = 1;

#[map(name = "NETMON_OWNERS")]
static OWNERS: LruHashMap<u64, SocketOwner> = LruHashMap::with_max_entries(OWNERS_CAPACITY, 0);

/// The current process, as the owner of the socket in `ctx`.
#[inline(always)]
fn current(ctx: &SockContext) -> (u64, SocketOwner) {
    // SAFETY: both helpers take the program's context (the socket) and only read it.
    let (cookie, netns_cookie) = unsafe {
        (
            bpf_get_socket_cookie(ctx.as_ptr()),
            bpf_get_netns_cookie(ctx.as_ptr()),
        )
    };
    let owner = SocketOwner {
        tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        uid: bpf_get_current_uid_gid() as u32,
        // SAFETY: no arguments; the current task's v2 cgroup id.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        netns_cookie,
        comm: bpf_get_current_comm().unwrap_or_default(),
        ..SocketOwner::default()
    };
    (cookie, owner)
}

#[cgroup_sock(sock_create)]
pub fn netmon_sock_create(ctx: SockContext) -> i32 {
    let (cookie, owner) = current(&ctx);
    let _ = OWNERS.insert(&cookie, &owner, 0);
    ALLOW
}

#[cgroup_sock(sock_release)]
pub fn netmon_sock_release(ctx: SockContext) -> i32 {
    let (cookie, mut owner) = current(&ctx);
    match OWNERS.get_ptr_mut(&cookie) {
        // SAFETY: a pointer into this key's value, valid for the program's run.
        Some(known) => unsafe { (*known).closed = 1 },
        None => {
            owner.closed = 1;
            owner.seen_at_release = 1;
            let _ = OWNERS.insert(&cookie, &owner, u64::from(BPF_NOEXIST));
        }
    }
    ALLOW
}

/// Adds the bound address to the socket's record (made here if its creation was not seen).
#[inline(always)]
fn bound(ctx: &SockContext, addr: [u32; 4]) -> i32 {
    let (cookie, mut owner) = current(ctx);
    // SAFETY: the context's socket; post_bind programs may read these fields.
    let (port, protocol, family) = unsafe {
        let s = ctx.sock;
        (
            core::ptr::read_volatile(&raw const (*s).src_port) as u16,
            core::ptr::read_volatile(&raw const (*s).protocol) as u8,
            core::ptr::read_volatile(&raw const (*s).family) as u8,
        )
    };
    match OWNERS.get_ptr_mut(&cookie) {
        // SAFETY: a pointer into this key's value, valid for the program's run.
        Some(known) => unsafe {
            (*known).bound_addr = addr;
            (*known).bound_port = port;
            (*known).protocol = protocol;
            (*known).family = family;
        },
        None => {
            owner.bound_addr = addr;
            owner.bound_port = port;
            owner.protocol = protocol;
            owner.family = family;
            let _ = OWNERS.insert(&cookie, &owner, u64::from(BPF_NOEXIST));
        }
    }
    ALLOW
}

#[cgroup_sock(post_bind4)]
pub fn netmon_post_bind4(ctx: SockContext) -> i32 {
    // SAFETY: post_bind4 may read `src_ip4`; a volatile load keeps it one load at a fixed
    // context offset, the only form the verifier accepts.
    let ip4 = unsafe { core::ptr::read_volatile(&raw const (*ctx.sock).src_ip4) };
    bound(&ctx, [ip4, 0, 0, 0])
}

#[cgroup_sock(post_bind6)]
pub fn netmon_post_bind6(ctx: SockContext) -> i32 {
    // SAFETY: post_bind6 may read `src_ip6`, one word at a time at fixed context offsets (a
    // copy of the array would be a loop over a moved context pointer, which the verifier
    // refuses).
    let ip6 = unsafe {
        let w = &raw const (*ctx.sock).src_ip6;
        [
            core::ptr::read_volatile(&raw const (*w)[0]),
            core::ptr::read_volatile(&raw const (*w)[1]),
            core::ptr::read_volatile(&raw const (*w)[2]),
            core::ptr::read_volatile(&raw const (*w)[3]),
        ]
    };
    bound(&ctx, ip6)
}
