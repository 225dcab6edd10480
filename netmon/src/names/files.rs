//! /etc/hosts and /etc/services, read as glibc reads them. Pure.

use std::collections::HashMap;
use std::net::IpAddr;

/// Address → name from a hosts file: the first name (the canonical one) of the first line that
/// has the address, as `getnameinfo` answers.
pub fn parse_hosts(text: &str) -> HashMap<IpAddr, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let (Some(addr), Some(name)) = (words.next(), words.next()) else {
            continue;
        };
        // A zone (`fe80::1%eth0`) names no flow address.
        let Ok(addr) = addr.parse::<IpAddr>() else {
            continue;
        };
        out.entry(addr).or_insert_with(|| name.to_string());
    }
    out
}

/// A port's name for one protocol, from a services file: the first line for the pair wins.
#[derive(Debug, Default)]
pub struct Services(HashMap<(u16, String), String>);

impl Services {
    pub fn parse(text: &str) -> Self {
        let mut map = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace();
            let (Some(name), Some(port_proto)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((port, proto)) = port_proto.split_once('/') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            map.entry((port, proto.to_ascii_lowercase()))
                .or_insert_with(|| name.to_string());
        }
        Self(map)
    }

    /// `443`, IP protocol 6 → `https`. Only TCP, UDP and SCTP have named ports.
    pub fn name(&self, port: u16, ip_protocol: u8) -> Option<&str> {
        let proto = match ip_protocol {
            6 => "tcp",
            17 => "udp",
            132 => "sctp",
            _ => return None,
        };
        self.0.get(&(port, proto.to_string())).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_first_line_first_name() {
        let h = parse_hosts(
            "127.0.0.1\tlocalhost\n# 10.0.0.1 commented\n10.0.0.1 one.example one # alias\n\
             10.0.0.1 again.example\nfd00::1 six\nfe80::1%eth0 zoned\nbroken\n::1 localhost ip6-localhost\n",
        );
        assert_eq!(h[&"10.0.0.1".parse::<IpAddr>().unwrap()], "one.example");
        assert_eq!(h[&"fd00::1".parse::<IpAddr>().unwrap()], "six");
        assert_eq!(h[&"::1".parse::<IpAddr>().unwrap()], "localhost");
        assert_eq!(h.len(), 4);
    }

    // Lines as Debian's netbase ships them.
    const SERVICES: &str = "ssh\t\t22/tcp\t\t\t\t# SSH Remote Login Protocol\n\
        domain\t\t53/tcp\t\t\t\t# Domain Name Server\n\
        domain\t\t53/udp\n\
        https\t\t443/tcp\t\t\t\t# http protocol over TLS/SSL\n\
        https\t\t443/udp\t\t\t\t# HTTP/3\n\
        syslog\t\t514/udp\n\
        shell\t\t514/tcp\t\tcmd\t\t# no passwords used\n\
        sctp-tunneling\t9899/tcp\nsctp-tunneling\t9899/udp\n\
        not-a-port\tx/tcp\n";

    #[test]
    fn services_per_protocol() {
        let s = Services::parse(SERVICES);
        assert_eq!(s.name(443, 6), Some("https"));
        assert_eq!(s.name(22, 6), Some("ssh"));
        assert_eq!(s.name(22, 17), None, "ssh is listed for tcp only");
        assert_eq!(s.name(514, 17), Some("syslog"));
        assert_eq!(s.name(514, 6), Some("shell"), "the protocol decides");
        assert_eq!(s.name(53, 1), None, "icmp has no ports");
        assert_eq!(s.name(5201, 6), None);
        assert!(Services::parse("").is_empty());
    }
}
