//! This host's interfaces (if_nameindex, interface ioctls, ethtool, getifaddrs and
//! /sys/class/net) and its default-route interface (from /proc/net/route and
//! /proc/net/ipv6_route), which is the one iftop picks too.
//!
//! The list comes from calls that answer for the caller's network namespace. /sys/class/net
//! answers for the namespace sysfs was mounted in, which is another one under `nsenter --net`,
//! so it is read only for interfaces whose index it confirms.

use crate::error::Error;
use crate::interface::{InterfaceInfo, InterfaceKind, default_route_v4, default_route_v6};
use std::net::IpAddr;
use std::path::Path;

const SYS_CLASS_NET: &str = "/sys/class/net";

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// ARPHRD_* from `type`, refined by DEVTYPE from `uevent` and the presence of a veth peer.
fn kind_of(dir: &Path) -> InterfaceKind {
    let arphrd: u32 = read_trimmed(&dir.join("type"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let devtype = read_trimmed(&dir.join("uevent")).and_then(|u| {
        u.lines()
            .find_map(|l| l.strip_prefix("DEVTYPE=").map(str::to_string))
    });
    match (arphrd, devtype.as_deref()) {
        (772, _) => InterfaceKind::Loopback,
        (_, Some("bridge")) => InterfaceKind::Bridge,
        (_, Some("vlan")) => InterfaceKind::Vlan,
        (_, Some("bond")) => InterfaceKind::Bond,
        (_, Some("wlan")) => InterfaceKind::Wireless,
        (_, Some("wireguard")) => InterfaceKind::Tunnel,
        // ARPHRD_NONE (tun), RAWIP, PPP, TUNNEL, TUNNEL6, SIT, IPGRE, IP6GRE.
        (65534 | 519 | 512 | 768 | 769 | 776 | 778 | 823, _) => InterfaceKind::Tunnel,
        (1, _) if is_veth(dir) => InterfaceKind::Veth,
        (1, _) => InterfaceKind::Ethernet,
        _ => InterfaceKind::Other,
    }
}

/// `struct ethtool_drvinfo` from linux/ethtool.h.
#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;

/// The driver behind `name` (what `ethtool -i` prints), asked of the kernel with
/// ETHTOOL_GDRVINFO; needs no privileges.
fn driver_name(name: &str) -> Option<String> {
    if name.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: a plain socket call; the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: both structs are plain old data, valid when zeroed.
    let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    // SAFETY: as above.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_data = (&mut info as *mut EthtoolDrvinfo).cast();
    // The request's type differs between glibc (c_ulong) and musl (c_int).
    // SAFETY: SIOCETHTOOL reads the name and writes at most size_of::<EthtoolDrvinfo>() bytes
    // through ifru_data, which points at `info`; both outlive the call.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCETHTOOL as libc::Ioctl, &mut req) };
    // SAFETY: fd is ours and still open.
    unsafe { libc::close(fd) };
    if rc != 0 {
        return None;
    }
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Some(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// veth has no DEVTYPE in uevent; its driver name says what it is. When ethtool cannot be
/// asked, a peer index different from its own and no backing device is the best guess (wrong
/// when both ends sit in fresh namespaces with the same index).
fn is_veth(dir: &Path) -> bool {
    if let Some(name) = dir.file_name().and_then(|n| n.to_str())
        && let Some(driver) = driver_name(name)
    {
        return driver == "veth";
    }
    let idx = read_trimmed(&dir.join("ifindex"));
    let link = read_trimmed(&dir.join("iflink"));
    idx.is_some() && link.is_some() && idx != link && !dir.join("device").exists()
}

/// (index, name) of every interface of this network namespace (if_nameindex(3): netlink in
/// glibc, /proc/net/dev in musl; both follow the caller's namespace).
fn names() -> Result<Vec<(u32, String)>, Error> {
    let mut out = Vec::new();
    // SAFETY: if_nameindex returns an array ended by a zero entry, freed below; we only read it
    // in between.
    unsafe {
        let head = libc::if_nameindex();
        if head.is_null() {
            return Err(Error::Interfaces(std::io::Error::last_os_error()));
        }
        let mut cur = head;
        while (*cur).if_index != 0 && !(*cur).if_name.is_null() {
            let name = std::ffi::CStr::from_ptr((*cur).if_name)
                .to_string_lossy()
                .into_owned();
            out.push(((*cur).if_index, name));
            cur = cur.add(1);
        }
        libc::if_freenameindex(head);
    }
    Ok(out)
}

/// What the interface ioctls say of one interface: flags, MTU, hardware address and its
/// ARPHRD_* type. They answer for the caller's namespace.
struct Ioctls {
    flags: u32,
    mtu: u32,
    arphrd: u32,
    mac: Option<String>,
}

fn ioctls(fd: i32, name: &str) -> Option<Ioctls> {
    if name.len() >= libc::IFNAMSIZ {
        return None;
    }
    let ask = |request: libc::c_ulong| {
        // SAFETY: plain old data, valid when zeroed.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        // SAFETY: these requests read the name and write into the request itself.
        let rc = unsafe { libc::ioctl(fd, request as libc::Ioctl, &mut req) };
        (rc == 0).then_some(req)
    };
    let flags = ask(libc::SIOCGIFFLAGS as libc::c_ulong)?;
    // SAFETY: SIOCGIFFLAGS wrote the flags member.
    let flags = u32::from(unsafe { flags.ifr_ifru.ifru_flags } as u16);
    // SAFETY: SIOCGIFMTU wrote the mtu member.
    let mtu =
        ask(libc::SIOCGIFMTU as libc::c_ulong).map_or(0, |r| unsafe { r.ifr_ifru.ifru_mtu } as u32);
    let (arphrd, mac) = match ask(libc::SIOCGIFHWADDR as libc::c_ulong) {
        Some(r) => {
            // SAFETY: SIOCGIFHWADDR wrote the hwaddr member.
            let sa = unsafe { r.ifr_ifru.ifru_hwaddr };
            let bytes: Vec<String> = sa.sa_data[..6]
                .iter()
                .map(|b| format!("{:02x}", *b as u8))
                .collect();
            (u32::from(sa.sa_family), Some(bytes.join(":")))
        }
        None => (0, None),
    };
    Some(Ioctls {
        flags,
        mtu,
        arphrd,
        mac,
    })
}

/// The kind from ARPHRD_* and the driver's name, for an interface whose sysfs directory is not
/// this namespace's.
fn kind_without_sysfs(arphrd: u32, name: &str) -> InterfaceKind {
    match (arphrd, driver_name(name).as_deref()) {
        (772, _) => InterfaceKind::Loopback,
        (_, Some("bridge")) => InterfaceKind::Bridge,
        (_, Some("802.1Q VLAN Support")) => InterfaceKind::Vlan,
        (_, Some("bonding")) => InterfaceKind::Bond,
        (_, Some("wireguard" | "tun")) => InterfaceKind::Tunnel,
        (65534 | 519 | 512 | 768 | 769 | 776 | 778 | 823, _) => InterfaceKind::Tunnel,
        (1, Some("veth")) => InterfaceKind::Veth,
        (1, _) => InterfaceKind::Ethernet,
        _ => InterfaceKind::Other,
    }
}

/// All interfaces of this host (this network namespace), sorted by index.
/// [`list`] on tokio's blocking threads: it reads /sys and makes ioctls, which an async
/// caller must not do on the runtime's own threads.
pub async fn list_blocking() -> Result<Vec<InterfaceInfo>, Error> {
    tokio::task::spawn_blocking(list)
        .await
        .unwrap_or_else(|e| Err(Error::Interfaces(std::io::Error::other(e))))
}

pub fn list() -> Result<Vec<InterfaceInfo>, Error> {
    let addrs = addresses();
    // SAFETY: a plain socket call; the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::Interfaces(std::io::Error::last_os_error()));
    }
    let names = names();
    let mut out = Vec::new();
    for (index, name) in names.iter().flatten() {
        let Some(io) = ioctls(fd, name) else {
            continue;
        };
        let dir = Path::new(SYS_CLASS_NET).join(name);
        let sysfs_is_ours = read_trimmed(&dir.join("ifindex")) == Some(index.to_string());
        let (kind, operstate, mac) = if sysfs_is_ours {
            (
                kind_of(&dir),
                read_trimmed(&dir.join("operstate")).unwrap_or_else(|| "unknown".into()),
                read_trimmed(&dir.join("address")).filter(|m| !m.is_empty()),
            )
        } else {
            let running = io.flags & libc::IFF_RUNNING as u32 != 0;
            (
                kind_without_sysfs(io.arphrd, name),
                if running { "up" } else { "down" }.to_string(),
                io.mac.filter(|_| io.arphrd == 1 || io.arphrd == 772),
            )
        };
        out.push(InterfaceInfo {
            index: *index,
            up: io.flags & libc::IFF_UP as u32 != 0,
            operstate,
            mac,
            mtu: io.mtu,
            kind,
            addresses: addrs
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, a)| *a)
                .collect(),
            name: name.clone(),
        });
    }
    // SAFETY: fd is ours and still open.
    unsafe { libc::close(fd) };
    names?;
    out.sort_by_key(|i| i.index);
    Ok(out)
}

/// Whether `iface` still exists: its name still names its index (in this namespace).
pub fn present(iface: &InterfaceInfo) -> bool {
    let Ok(name) = std::ffi::CString::new(iface.name.as_str()) else {
        return false;
    };
    // SAFETY: a NUL-terminated name; if_nametoindex only reads it.
    unsafe { libc::if_nametoindex(name.as_ptr()) == iface.index }
}

/// Calls `f` with every entry getifaddrs(3) lists (the caller's namespace); nothing when it
/// fails.
fn each_ifaddr(mut f: impl FnMut(&libc::ifaddrs)) {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list freed below; `f` only borrows each entry
    // in between.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return;
        }
        let mut cur = head;
        while !cur.is_null() {
            f(&*cur);
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(head);
    }
}

/// An IPv4 or IPv6 address out of a sockaddr.
///
/// # Safety
/// `sa` is null or points at a sockaddr of the size its family says.
unsafe fn ip_of(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: the caller's promise; the family says which struct it is.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let v4 = &*(sa as *const libc::sockaddr_in);
                Some(IpAddr::from(u32::from_be(v4.sin_addr.s_addr).to_be_bytes()))
            }
            libc::AF_INET6 => {
                let v6 = &*(sa as *const libc::sockaddr_in6);
                Some(IpAddr::from(v6.sin6_addr.s6_addr))
            }
            _ => None,
        }
    }
}

/// Every address of this namespace, with the IPv4 broadcast address of each subnet (the
/// kernel routes `addr | !mask` as broadcast for prefixes shorter than /31, `brd` or not): the
/// addresses a packet for this host carries.
pub fn local_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    each_ifaddr(|ifa| {
        // SAFETY: getifaddrs' sockaddrs are sized by their family.
        let (addr, mask) = unsafe { (ip_of(ifa.ifa_addr), ip_of(ifa.ifa_netmask)) };
        let Some(addr) = addr else {
            return;
        };
        out.push(addr);
        if let (IpAddr::V4(a), Some(IpAddr::V4(m))) = (addr, mask) {
            let (a, m) = (u32::from(a), u32::from(m));
            if m.count_ones() < 31 {
                out.push(IpAddr::from((a | !m).to_be_bytes()));
            }
        }
    });
    out
}

/// (interface name, address) for every IP address, via getifaddrs(3).
fn addresses() -> Vec<(String, IpAddr)> {
    let mut out = Vec::new();
    each_ifaddr(|ifa| {
        if ifa.ifa_name.is_null() {
            return;
        }
        // SAFETY: getifaddrs' sockaddrs are sized by their family; the name is a C string.
        let (addr, name) = unsafe {
            (
                ip_of(ifa.ifa_addr),
                std::ffi::CStr::from_ptr(ifa.ifa_name).to_string_lossy(),
            )
        };
        if let Some(a) = addr {
            out.push((name.into_owned(), a));
        }
    });
    out
}

/// The interface iftop would pick: the default route's.
pub fn default_interface() -> Option<String> {
    std::fs::read_to_string("/proc/net/route")
        .ok()
        .and_then(|r| default_route_v4(&r))
        .or_else(|| {
            std::fs::read_to_string("/proc/net/ipv6_route")
                .ok()
                .and_then(|r| default_route_v6(&r))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_host_has_a_loopback() {
        let l = list().unwrap();
        let lo = l.iter().find(|i| i.name == "lo").expect("lo listed");
        assert_eq!(lo.kind, InterfaceKind::Loopback);
        assert_eq!(lo.index, 1);
        assert!(lo.up);
        assert_eq!(lo.mtu, 65536);
        assert!(present(lo));
        assert!(local_addresses().contains(&IpAddr::from([127, 0, 0, 1])));
    }
}
