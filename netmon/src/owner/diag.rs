//! The kernel's list of TCP and UDP sockets in this network namespace (NETLINK_SOCK_DIAG), with
//! the same cookies the classifier stores, and /proc's map of socket inodes to processes. An
//! edge: netlink and /proc.
//!
//! netmon uses them for what its cgroup hooks cannot have seen: sockets older than netmon, and
//! the socket of a flow nothing was sent on (a receive-only UDP server), found by its address.

use crate::netlink::{self, u32_at};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `inet_diag_req_v2`: family, protocol, ext, pad, states (u32), then a 48-byte sockid.
const REQ: usize = 56;
/// `inet_diag_msg`: family, state, timer, retrans, the sockid, expires, rqueue, wqueue, uid,
/// inode.
const MSG: usize = 72;

/// One socket as sock_diag reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiagSocket {
    pub protocol: u8,
    pub local: IpAddr,
    pub local_port: u16,
    /// Unspecified (0.0.0.0 or ::) for an unconnected socket.
    pub remote: IpAddr,
    pub remote_port: u16,
    pub cookie: u64,
    pub inode: u32,
    pub uid: u32,
}

fn addr(family: u8, words: &[u8]) -> IpAddr {
    if family == libc::AF_INET as u8 {
        IpAddr::V4(Ipv4Addr::new(words[0], words[1], words[2], words[3]))
    } else {
        let mut b = [0u8; 16];
        b.copy_from_slice(&words[..16]);
        IpAddr::V6(Ipv6Addr::from(b))
    }
}

/// Parses one `inet_diag_msg` (fuzzed: the kernel's bytes are checked as anyone's).
pub fn parse_msg(m: &[u8], protocol: u8) -> Option<DiagSocket> {
    if m.len() < MSG {
        return None;
    }
    let family = m[0];
    let id = &m[4..52];
    Some(DiagSocket {
        protocol,
        local_port: u16::from_be_bytes([id[0], id[1]]),
        remote_port: u16::from_be_bytes([id[2], id[3]]),
        local: addr(family, &id[4..20]),
        remote: addr(family, &id[20..36]),
        cookie: u64::from(u32_at(id, 40)) | (u64::from(u32_at(id, 44)) << 32),
        uid: u32_at(m, 64),
        inode: u32_at(m, 68),
    })
}

fn dump_one(family: u8, protocol: u8) -> io::Result<Vec<DiagSocket>> {
    let mut req = [0u8; REQ];
    req[0] = family;
    req[1] = protocol;
    // Every state: listening, established, closing, and UDP's "close" (unconnected).
    req[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
    let replies = netlink::request(
        netlink::NETLINK_SOCK_DIAG,
        SOCK_DIAG_BY_FAMILY,
        netlink::NLM_F_DUMP,
        &req,
    )?;
    Ok(replies
        .iter()
        .filter_map(|m| parse_msg(&m.body, protocol))
        .collect())
}

/// Every TCP and UDP socket of this network namespace, IPv4 and IPv6.
pub fn sockets() -> io::Result<Vec<DiagSocket>> {
    let mut all = Vec::new();
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        for protocol in [libc::IPPROTO_TCP as u8, libc::IPPROTO_UDP as u8] {
            all.extend(dump_one(family, protocol)?);
        }
    }
    Ok(all)
}

/// The socket a packet to `local:local_port` from `remote:remote_port` would reach: a connected
/// socket for exactly that pair first, then one bound to the address, then to any address.
/// Pure.
pub fn receiver(
    all: &[DiagSocket],
    protocol: u8,
    local: IpAddr,
    local_port: u16,
    remote: IpAddr,
    remote_port: u16,
) -> Option<u64> {
    let family = |a: &IpAddr| a.is_ipv4();
    let candidates = all.iter().filter(|s| {
        s.protocol == protocol
            && s.local_port == local_port
            && (s.local == local || s.local.is_unspecified())
            && (s.remote.is_unspecified() || (s.remote == remote && s.remote_port == remote_port))
    });
    candidates
        .max_by_key(|s| {
            (
                !s.remote.is_unspecified(),
                s.local == local,
                family(&s.local) == family(&local),
            )
        })
        .map(|s| s.cookie)
}

/// The TCP socket listening on `local:local_port` (or on any address at that port): the one
/// that accepted a connection there. Pure.
pub fn listener(all: &[DiagSocket], local: IpAddr, local_port: u16) -> Option<u64> {
    all.iter()
        .filter(|s| {
            s.protocol == 6
                && s.local_port == local_port
                && s.remote.is_unspecified()
                && s.remote_port == 0
                && (s.local == local || s.local.is_unspecified())
        })
        .max_by_key(|s| (s.local == local, s.local.is_ipv4() == local.is_ipv4()))
        .map(|s| s.cookie)
}

/// The socket a packet to `local:local_port` would have reached, among the sockets whose bind
/// the kernel recorded in namespace `netns` (`None`: netmon's namespace is unknown, any): for
/// a receive-only server that may have closed since. One bound to the address before one bound
/// to any; an open one before a closed one; then the newest (cookies only grow). Pure.
pub fn bound_receiver<'a>(
    records: impl IntoIterator<Item = (&'a u64, &'a netmon_common::SocketOwner)>,
    netns: Option<u64>,
    protocol: u8,
    local: IpAddr,
    local_port: u16,
) -> Option<u64> {
    records
        .into_iter()
        .filter_map(|(&cookie, r)| {
            if r.bound_port != local_port
                || r.protocol != protocol
                || netns.is_some_and(|n| n != r.netns_cookie)
            {
                return None;
            }
            let bytes: Vec<u8> = r.bound_addr.iter().flat_map(|w| w.to_ne_bytes()).collect();
            let addr = match r.family as i32 {
                libc::AF_INET => IpAddr::from(<[u8; 4]>::try_from(&bytes[..4]).ok()?),
                libc::AF_INET6 => IpAddr::from(<[u8; 16]>::try_from(&bytes[..]).ok()?),
                _ => return None,
            };
            // An IPv6 wildcard socket also receives IPv4 (unless IPV6_V6ONLY, not recorded).
            let wildcard =
                addr.is_unspecified() && (addr.is_ipv4() == local.is_ipv4() || addr.is_ipv6());
            (addr == local || wildcard).then_some((addr == local, r.closed == 0, cookie))
        })
        .max()
        .map(|(_, _, cookie)| cookie)
}

/// Which process holds each socket inode, from /proc/*/fd; also how many processes' fd tables
/// could not be read (another user's, without CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH).
pub fn socket_inodes() -> (HashMap<u32, u32>, usize) {
    let mut map = HashMap::new();
    let mut denied = 0;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return (map, 0);
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let fds = match std::fs::read_dir(p.path().join("fd")) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                denied += 1;
                continue;
            }
            Err(_) => continue,
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if let Some(ino) = super::procfs::socket_inode(&target.to_string_lossy()) {
                map.entry(ino).or_insert(pid);
            }
        }
    }
    (map, denied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, UdpSocket};
    use std::os::fd::AsRawFd;

    fn udp(local: &str, lport: u16, remote: &str, rport: u16, cookie: u64) -> DiagSocket {
        DiagSocket {
            protocol: 17,
            local: local.parse().unwrap(),
            local_port: lport,
            remote: remote.parse().unwrap(),
            remote_port: rport,
            cookie,
            inode: 0,
            uid: 0,
        }
    }

    #[test]
    fn the_most_specific_socket_receives() {
        let all = [
            udp("0.0.0.0", 53, "0.0.0.0", 0, 1),
            udp("10.0.0.1", 53, "0.0.0.0", 0, 2),
            udp("10.0.0.1", 53, "10.0.0.9", 4000, 3),
            udp("::", 5353, "::", 0, 4),
        ];
        let at = |l: &str, lp, r: &str, rp| {
            receiver(&all, 17, l.parse().unwrap(), lp, r.parse().unwrap(), rp)
        };
        assert_eq!(at("10.0.0.1", 53, "10.0.0.9", 4000), Some(3));
        assert_eq!(at("10.0.0.1", 53, "10.0.0.8", 4000), Some(2));
        assert_eq!(at("10.0.0.2", 53, "10.0.0.8", 4000), Some(1));
        assert_eq!(at("fd00::1", 5353, "fd00::2", 1), Some(4));
        assert_eq!(at("10.0.0.1", 54, "10.0.0.8", 1), None);
        assert_eq!(
            receiver(
                &all,
                6,
                "10.0.0.1".parse().unwrap(),
                53,
                "10.0.0.8".parse().unwrap(),
                1
            ),
            None
        );
    }

    #[test]
    fn an_accepted_connection_finds_its_listener() {
        let tcp = |local: &str, lport, remote: &str, rport, cookie| DiagSocket {
            protocol: 6,
            ..udp(local, lport, remote, rport, cookie)
        };
        let all = [
            tcp("::", 80, "::", 0, 1),
            tcp("10.0.0.1", 80, "0.0.0.0", 0, 2),
            tcp("10.0.0.1", 80, "10.0.0.9", 4000, 3),
            udp("10.0.0.1", 81, "0.0.0.0", 0, 4),
        ];
        let at = |l: &str, p| listener(&all, l.parse().unwrap(), p);
        assert_eq!(
            at("10.0.0.1", 80),
            Some(2),
            "not the accepted socket itself"
        );
        assert_eq!(at("10.0.0.2", 80), Some(1), "a dual-stack wildcard");
        assert_eq!(at("fd00::1", 80), Some(1));
        assert_eq!(at("10.0.0.1", 81), None, "UDP does not listen");
    }

    fn bound(addr: &str, port: u16, netns: u64, closed: bool) -> netmon_common::SocketOwner {
        let ip: IpAddr = addr.parse().unwrap();
        let mut words = [0u32; 4];
        let (family, bytes) = match ip {
            IpAddr::V4(a) => (libc::AF_INET, a.octets().to_vec()),
            IpAddr::V6(a) => (libc::AF_INET6, a.octets().to_vec()),
        };
        for (w, c) in words.iter_mut().zip(bytes.chunks(4)) {
            *w = u32::from_ne_bytes(c.try_into().unwrap());
        }
        netmon_common::SocketOwner {
            bound_addr: words,
            bound_port: port,
            protocol: 17,
            family: family as u8,
            netns_cookie: netns,
            closed: u8::from(closed),
            ..Default::default()
        }
    }

    #[test]
    fn a_closed_server_is_found_by_the_address_it_bound() {
        let records: HashMap<u64, netmon_common::SocketOwner> = [
            (10, bound("0.0.0.0", 9999, 1, true)),
            (11, bound("10.0.0.1", 9999, 1, true)),
            (12, bound("10.0.0.1", 9999, 2, false)),
            (13, bound("::", 5353, 1, true)),
            (14, bound("0.0.0.0", 7000, 1, true)),
            (15, bound("0.0.0.0", 7000, 1, true)),
            (16, bound("0.0.0.0", 7001, 1, false)),
            (17, bound("0.0.0.0", 7001, 1, true)),
        ]
        .into_iter()
        .collect();
        let at = |l: &str, port| bound_receiver(&records, Some(1), 17, l.parse().unwrap(), port);
        assert_eq!(
            at("10.0.0.1", 9999),
            Some(11),
            "the address before the wildcard"
        );
        assert_eq!(at("10.0.0.2", 9999), Some(10));
        assert_eq!(
            at("10.0.0.2", 5353),
            Some(13),
            "an IPv6 wildcard takes IPv4"
        );
        assert_eq!(at("fd00::1", 5353), Some(13));
        assert_eq!(at("fd00::1", 9999), None, "an IPv4 socket takes no IPv6");
        assert_eq!(at("10.0.0.2", 7000), Some(15), "the newest");
        assert_eq!(
            at("10.0.0.2", 7001),
            Some(16),
            "an open one before a closed one"
        );
        assert_eq!(
            bound_receiver(&records, Some(2), 17, "10.0.0.2".parse().unwrap(), 9999),
            None,
            "another namespace's wildcard is not ours"
        );
        assert_eq!(
            bound_receiver(&records, Some(1), 6, "10.0.0.1".parse().unwrap(), 9999),
            None
        );
    }

    /// Real sockets of this process, as the kernel lists them: the cookie is SO_COOKIE's, and
    /// the inode is the one /proc/self/fd names.
    #[test]
    fn the_kernel_lists_this_process_sockets_with_their_cookies() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let uport = u.local_addr().unwrap().port();
        let cookie = |fd: i32| {
            let mut c: u64 = 0;
            let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
            // SAFETY: SO_COOKIE (57) writes a u64 into `c`.
            let r = unsafe {
                libc::getsockopt(fd, libc::SOL_SOCKET, 57, (&raw mut c).cast(), &mut len)
            };
            assert_eq!(r, 0);
            c
        };
        let all = sockets().unwrap();
        let tcp = all
            .iter()
            .find(|s| s.protocol == 6 && s.local_port == port)
            .expect("the listener");
        assert_eq!(tcp.cookie, cookie(listener.as_raw_fd()));
        let us = all
            .iter()
            .find(|s| s.protocol == 17 && s.local_port == uport)
            .expect("the UDP socket");
        assert_eq!(us.cookie, cookie(u.as_raw_fd()));
        let (inodes, _) = socket_inodes();
        assert_eq!(inodes.get(&tcp.inode), Some(&std::process::id()));
    }
}
