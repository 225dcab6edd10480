//! A minimal netlink client: one request, its replies, and the attributes inside them. Shared
//! by sock_diag (the socket list) and rtnetlink (tc filters and qdiscs). An edge: sockets.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub const NETLINK_ROUTE: i32 = 0;
pub const NETLINK_SOCK_DIAG: i32 = 4;
pub const NLM_F_REQUEST: u16 = 1;
pub const NLM_F_ACK: u16 = 4;
pub const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `struct nlmsghdr`.
pub const HDR: usize = 16;
/// Replies read for one request at most: a dump of every socket of a busy host is thousands of
/// messages in a few hundred datagrams; this bounds a kernel that never says "done".
const MAX_DATAGRAMS: usize = 1 << 16;

pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

/// One message as the kernel sent it: its type and what follows its header.
pub struct Message {
    pub kind: u16,
    pub body: Vec<u8>,
}

/// Sends one request of `kind` with `flags` and `body` to the kernel on `protocol`, and
/// returns the replies. A dump ends at "done"; a plain request with [`NLM_F_ACK`] ends at its
/// acknowledgement. An error reply is the error.
pub fn request(protocol: i32, kind: u16, flags: u16, body: &[u8]) -> io::Result<Vec<Message>> {
    // SAFETY: a plain socket(2); the fd is owned at once.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = vec![0u8; HDR];
    req[0..4].copy_from_slice(&((HDR + body.len()) as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&kind.to_ne_bytes());
    req[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(body);
    // SAFETY: `req` is a valid buffer for its length; the kernel is the default destination.
    if unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..MAX_DATAGRAMS {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        match replies(&buf[..n as usize], dump, &mut out)? {
            Reply::Ended => return Ok(out),
            Reply::More => {}
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "the kernel's netlink reply did not end",
    ))
}

/// Whether a reply goes on after a datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// More datagrams follow.
    More,
    /// "Done" (a dump), or the acknowledgement or the message a plain request waited for.
    Ended,
}

/// The messages of one datagram of replies, added to `out`. Pure: what the kernel sends is
/// checked here (lengths, alignment) as if anyone could have written it.
pub fn replies(buf: &[u8], dump: bool, out: &mut Vec<Message>) -> io::Result<Reply> {
    let mut at = 0;
    while at + HDR <= buf.len() {
        let len = u32_at(buf, at) as usize;
        let kind = u16_at(buf, at + 4);
        if len < HDR || len > buf.len() - at {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "short netlink message",
            ));
        }
        match kind {
            NLMSG_DONE => return Ok(Reply::Ended),
            NLMSG_ERROR => {
                let code = if len >= HDR + 4 {
                    u32_at(buf, at + HDR) as i32
                } else {
                    0
                };
                // Code 0 is the acknowledgement of a request that asked for one.
                if code == 0 && !dump {
                    return Ok(Reply::Ended);
                }
                return Err(io::Error::from_raw_os_error(code.saturating_neg()));
            }
            _ => out.push(Message {
                kind,
                body: buf[at + HDR..at + len].to_vec(),
            }),
        }
        // Messages are 4-byte aligned.
        at = at.saturating_add((len + 3) & !3);
    }
    Ok(if !dump && !out.is_empty() {
        Reply::Ended
    } else {
        Reply::More
    })
}

/// The attributes (`struct rtattr`/`nlattr`: length, type, value) in `b`, with their types
/// (nested and byte-order flags cleared). Stops at the first malformed one.
pub fn attributes(b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= b.len() {
        let len = usize::from(u16_at(b, at));
        let kind = u16_at(b, at + 2) & 0x3fff;
        if len < 4 || at + len > b.len() {
            break;
        }
        out.push((kind, &b[at + 4..at + len]));
        at += (len + 3) & !3;
    }
    out
}

/// An attribute's value as a string (NUL-terminated on the wire).
pub fn attr_str(v: &[u8]) -> String {
    let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_read_until_one_is_malformed() {
        let mut b = Vec::new();
        // kind 1, "bpf\0"
        b.extend(8u16.to_ne_bytes());
        b.extend(1u16.to_ne_bytes());
        b.extend(b"bpf\0");
        // kind 2 | NLA_F_NESTED, 4 bytes of value
        b.extend(8u16.to_ne_bytes());
        b.extend((2u16 | 0x8000).to_ne_bytes());
        b.extend(7u32.to_ne_bytes());
        // a length past the end
        b.extend(200u16.to_ne_bytes());
        b.extend(3u16.to_ne_bytes());
        let a = attributes(&b);
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].0, attr_str(a[0].1).as_str()), (1, "bpf"));
        assert_eq!((a[1].0, u32_at(a[1].1, 0)), (2, 7));
        assert!(attributes(&[1, 0]).is_empty());
    }
}
