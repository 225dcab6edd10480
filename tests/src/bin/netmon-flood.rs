//! A small UDP flood generator for `cargo xtask bench` and the agent's churn test:
//! minimum-size datagrams to `--flows` destination ports in turn, batched with sendmmsg, bounded
//! by `--seconds` and `--max-packets`, and paced to `--pps` when given.
//!
//! Nothing listens on those ports; the receiver drops the datagrams (its ICMP port-unreachable
//! replies are rate-limited by the kernel to a few per second). The socket is unconnected, so
//! those replies never turn into send errors. Prints one JSON line: `{"sent", "elapsed_s",
//! "errors"}`.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Datagrams handed to the kernel per sendmmsg call.
const BATCH: usize = 256;

struct Args {
    dst: IpAddr,
    port_base: u16,
    flows: u32,
    seconds: f64,
    payload: usize,
    max_packets: u64,
    /// Packets per second; 0: as fast as possible.
    pps: u64,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "netmon-flood: {msg}\nusage: netmon-flood --dst ADDR [--port-base 20000] [--flows 1] \
         [--seconds 2] [--payload 22] [--max-packets 100000000] [--pps 0]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        dst: IpAddr::from([127, 0, 0, 1]),
        port_base: 20_000,
        flows: 1,
        seconds: 2.0,
        payload: 22,
        max_packets: 100_000_000,
        pps: 0,
    };
    let mut dst = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        fn num<T: std::str::FromStr>(flag: &str, value: &str) -> T {
            value
                .parse()
                .unwrap_or_else(|_| usage(&format!("bad value {value:?} for {flag}")))
        }
        match flag.as_str() {
            "--dst" => dst = Some(num(&flag, &value)),
            "--port-base" => a.port_base = num(&flag, &value),
            "--flows" => a.flows = num(&flag, &value),
            "--seconds" => a.seconds = num(&flag, &value),
            "--payload" => a.payload = num(&flag, &value),
            "--max-packets" => a.max_packets = num(&flag, &value),
            "--pps" => a.pps = num(&flag, &value),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    a.dst = dst.unwrap_or_else(|| usage("--dst is required"));
    if a.flows == 0 || u32::from(a.port_base) + a.flows > 65_536 {
        usage("--flows must be 1.. and --port-base + --flows at most 65536");
    }
    if !(0.1..=600.0).contains(&a.seconds) {
        usage("--seconds must be within 0.1..=600");
    }
    if a.payload > 1400 {
        usage("--payload must be at most 1400");
    }
    a
}

/// A destination as the raw sockaddr sendmmsg wants.
fn raw_addr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn main() {
    let a = parse_args();
    let bind: SocketAddr = if a.dst.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let sock = UdpSocket::bind(bind).unwrap_or_else(|e| {
        eprintln!("netmon-flood: binding a UDP socket: {e}");
        std::process::exit(1)
    });
    let mut addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)> = (0..a.flows)
        .map(|i| raw_addr(SocketAddr::new(a.dst, a.port_base + i as u16)))
        .collect();
    let payload = vec![0x5au8; a.payload];
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    let deadline = Instant::now() + Duration::from_secs_f64(a.seconds);
    let start = Instant::now();
    let (mut sent, mut errors, mut next_flow) = (0u64, 0u64, 0usize);
    // SAFETY: mmsghdr is plain data; every pointer in it is set below before use.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    while sent < a.max_packets && Instant::now() < deadline {
        let mut n = BATCH.min((a.max_packets - sent) as usize);
        if a.pps > 0 {
            let due = (start.elapsed().as_secs_f64() * a.pps as f64) as u64;
            if due <= sent {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            n = n.min((due - sent) as usize);
        }
        for m in msgs.iter_mut().take(n) {
            let flows = addrs.len();
            let (ss, len) = &mut addrs[next_flow];
            next_flow = (next_flow + 1) % flows;
            m.msg_hdr.msg_name = ss as *mut _ as *mut libc::c_void;
            m.msg_hdr.msg_namelen = *len;
            m.msg_hdr.msg_iov = &mut iov;
            m.msg_hdr.msg_iovlen = 1;
            m.msg_len = 0;
        }
        // SAFETY: `msgs[..n]` point at live sockaddrs and one live iovec over `payload`.
        let r = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
        if r < 0 {
            errors += 1;
            if errors > 1_000_000 {
                eprintln!(
                    "netmon-flood: sendmmsg keeps failing: {}",
                    std::io::Error::last_os_error()
                );
                std::process::exit(1);
            }
        } else {
            sent += r as u64;
        }
    }
    println!(
        "{{\"sent\": {sent}, \"elapsed_s\": {}, \"errors\": {errors}}}",
        start.elapsed().as_secs_f64()
    );
}
