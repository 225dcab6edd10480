//! Crafted frames through the real, verifier-accepted classifier with BPF_PROG_TEST_RUN. The
//! kernel runs them on its loopback device (ifindex 1); each test loads its own copy of the
//! program, so its maps hold only that test's frames.

use aya::programs::{TestRun, TestRunOptions};
use netmon::flow::FlowId;
use netmon::snapshot::{Sample, Snapshot};
use netmon::source::ebpf::loader::Program;
use netmon::source::ebpf::{EbpfOptions, EbpfSource};
use netmon_common::{Direction, LinkKind};
use netmon_tests::require_root;
use std::net::IpAddr;
use std::ops::Deref;

const LO: u32 = 1;
const TC_ACT_UNSPEC: u32 = u32::MAX;

/// A loaded classifier and the kind of link its test frames have.
struct Classifier {
    source: EbpfSource,
    link: LinkKind,
}

impl Deref for Classifier {
    type Target = EbpfSource;
    fn deref(&self) -> &EbpfSource {
        &self.source
    }
}

fn source(link: LinkKind, capacity: u32) -> Classifier {
    let c = Classifier {
        link,
        ..source_unprepared(capacity)
    };
    c.prepare(LO).expect("prepare");
    c
}

/// A loaded Ethernet classifier whose maps have no totals for lo yet.
fn source_unprepared(capacity: u32) -> Classifier {
    require_root();
    let source = EbpfSource::load(EbpfOptions {
        flow_capacity: capacity,
    })
    .expect("load");
    Classifier {
        source,
        link: LinkKind::Ethernet,
    }
}

fn run(s: &Classifier, direction: Direction, frame: &[u8]) {
    let which = Program::Classifier {
        direction,
        link: s.link,
    };
    let ret = s
        .with_program(which, |p| {
            p.test_run(TestRunOptions {
                data_in: Some(frame),
                ..Default::default()
            })
        })
        .expect("program")
        .expect("BPF_PROG_TEST_RUN");
    assert_eq!(
        ret.return_value, TC_ACT_UNSPEC,
        "the classifier must always return TC_ACT_UNSPEC"
    );
}

/// Runs `frame` as a GSO super-packet of `segs` segments of `size` payload bytes: the
/// `__sk_buff` handed in sets `gso_segs` and `gso_size` (bytes 164 and 176 of its 192, as this
/// kernel's BTF has them; BPF_PROG_TEST_RUN takes those two and no other field here).
fn run_gso(s: &Classifier, direction: Direction, frame: &[u8], segs: u32, size: u32) {
    let mut ctx = [0u8; 192];
    ctx[164..168].copy_from_slice(&segs.to_ne_bytes());
    ctx[176..180].copy_from_slice(&size.to_ne_bytes());
    let which = Program::Classifier {
        direction,
        link: s.link,
    };
    let ret = s
        .with_program(which, |p| {
            p.test_run(TestRunOptions {
                data_in: Some(frame),
                ctx_in: Some(&ctx),
                ..Default::default()
            })
        })
        .expect("program")
        .expect("BPF_PROG_TEST_RUN with a GSO context");
    assert_eq!(ret.return_value, TC_ACT_UNSPEC);
}

fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    f.extend(ethertype.to_be_bytes());
    f
}

fn vlan(mut f: Vec<u8>, tpid: u16, inner: u16) -> Vec<u8> {
    // Replace the ethertype with the tag's TPID, then TCI and the inner ethertype.
    f.truncate(12);
    f.extend(tpid.to_be_bytes());
    f.extend([0x00, 0x64]);
    f.extend(inner.to_be_bytes());
    f
}

/// IPv4 header: 10.0.0.1 → 10.0.0.2, `options` extra bytes, total length `l4_len` + header.
fn ipv4(proto: u8, options: usize, l4_len: usize, frag_offset_units: u16) -> Vec<u8> {
    let ihl = 20 + options;
    let total = (ihl + l4_len) as u16;
    let mut h = vec![0x40 | (ihl / 4) as u8, 0];
    h.extend(total.to_be_bytes());
    h.extend([0, 1]);
    h.extend(frag_offset_units.to_be_bytes());
    h.extend([64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    h.extend(std::iter::repeat_n(1u8, options));
    h
}

/// IPv6 header fd00::1 → fd00::2 with `next` and `payload_len`.
fn ipv6(next: u8, payload_len: usize) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend((payload_len as u16).to_be_bytes());
    h.extend([next, 64]);
    let a: std::net::Ipv6Addr = "fd00::1".parse().unwrap();
    let b: std::net::Ipv6Addr = "fd00::2".parse().unwrap();
    h.extend(a.octets());
    h.extend(b.octets());
    h
}

fn ports(src: u16, dst: u16, rest: usize) -> Vec<u8> {
    let mut p = src.to_be_bytes().to_vec();
    p.extend(dst.to_be_bytes());
    p.extend(std::iter::repeat_n(0u8, rest));
    p
}

fn tcp(src: u16, dst: u16, payload: usize) -> Vec<u8> {
    let mut t = ports(src, dst, 16 + payload);
    t[12] = 5 << 4; // data offset: 20 bytes
    t
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn flow(
    s: &Snapshot,
    local: &str,
    lport: u16,
    remote: &str,
    rport: u16,
    proto: u8,
) -> netmon::flow::FlowCounters {
    let id = FlowId {
        local: local.parse::<IpAddr>().unwrap(),
        remote: remote.parse::<IpAddr>().unwrap(),
        local_port: lport,
        remote_port: rport,
        protocol: proto,
    };
    *s.flows
        .get(&id)
        .unwrap_or_else(|| panic!("no flow {id:?} in {:#?}", s.flows))
}

/// Everything counted since the classifier was prepared: its IP totals are the flows' sum plus
/// the overflow.
fn window(snap: &Snapshot) -> Sample {
    netmon::snapshot::diff(&Snapshot::default(), snap)
}

#[test]
fn ipv4_tcp_with_and_without_options_and_both_directions() {
    let s = source(LinkKind::Ethernet, 1024);
    let plain = concat(&[&eth(0x0800), &ipv4(6, 0, 30, 0), &tcp(1234, 80, 10)]);
    let opts = concat(&[&eth(0x0800), &ipv4(17, 8, 12, 0), &ports(5353, 53, 8)]);
    run(&s, Direction::Ingress, &plain);
    run(&s, Direction::Ingress, &plain);
    run(&s, Direction::Ingress, &opts);
    run(&s, Direction::Egress, &plain);
    let snap = s.snapshot(LO);

    // Ingress: local is the destination. Egress: local is the source.
    let rx = flow(&snap, "10.0.0.2", 80, "10.0.0.1", 1234, 6);
    assert_eq!((rx.rx_packets, rx.rx_bytes, rx.tx_packets), (2, 100, 0));
    let tx = flow(&snap, "10.0.0.1", 1234, "10.0.0.2", 80, 6);
    assert_eq!((tx.tx_packets, tx.tx_bytes, tx.rx_packets), (1, 50, 0));
    // 8 bytes of IPv4 options: the ports are read after them.
    let udp = flow(&snap, "10.0.0.2", 53, "10.0.0.1", 5353, 17);
    assert_eq!((udp.rx_packets, udp.rx_bytes), (1, 40));

    assert_eq!(snap.rx.frames, 3);
    assert_eq!(snap.rx.frame_bytes, 64 * 2 + 54);
    let w = window(&snap);
    assert_eq!((w.rx.ip_packets, w.rx.ip_bytes), (3, 140));
    assert_eq!((snap.tx.frames, w.tx.ip_bytes), (1, 50));
    assert_eq!(snap.rx.other_frames + snap.tx.other_frames, 0);
}

#[test]
fn ipv6_extension_headers_and_fragments() {
    let s = source(LinkKind::Ethernet, 1024);
    // Hop-by-hop (8 bytes) → destination options (16 bytes) → UDP.
    let hbh = [60u8, 0, 0, 0, 0, 0, 0, 0];
    let dst = [17u8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let udp = ports(4000, 4001, 4 + 6);
    let ext = concat(&[&eth(0x86DD), &ipv6(0, 8 + 16 + udp.len()), &hbh, &dst, &udp]);
    // First fragment (offset 0) has the UDP header; a later one (offset 1448) has none.
    let first = concat(&[
        &eth(0x86DD),
        &ipv6(44, 8 + udp.len()),
        &[17, 0, 0, 1, 0, 0, 0, 7],
        &udp,
    ]);
    let later_off = (1448u16 << 3).to_be_bytes();
    let later = concat(&[
        &eth(0x86DD),
        &ipv6(44, 8 + 20),
        &[17, 0, later_off[0], later_off[1], 0, 0, 0, 7],
        &[9u8; 20],
    ]);
    let icmp6 = concat(&[&eth(0x86DD), &ipv6(58, 8), &[128, 0, 0, 0, 0, 1, 0, 1]]);
    for f in [&ext, &first, &later, &icmp6] {
        run(&s, Direction::Ingress, f);
    }
    let snap = s.snapshot(LO);
    let e = flow(&snap, "fd00::2", 4001, "fd00::1", 4000, 17);
    // The extension-header packet and the first fragment share the ports.
    assert_eq!(
        (e.rx_packets, e.rx_bytes),
        (2, (40 + 24 + 14) + (40 + 8 + 14))
    );
    let l = flow(&snap, "fd00::2", 0, "fd00::1", 0, 17);
    assert_eq!((l.rx_packets, l.rx_bytes), (1, 68));
    let i = flow(&snap, "fd00::2", 0, "fd00::1", 0, 58);
    assert_eq!((i.rx_packets, i.rx_bytes), (1, 48));
    assert_eq!(window(&snap).rx.ip_bytes, 78 + 62 + 68 + 48);
    assert_eq!(snap.rx.other_frames, 0);
}

#[test]
fn ipv4_fragments_vlan_qinq_and_icmp() {
    let s = source(LinkKind::Ethernet, 1024);
    let later_frag = concat(&[&eth(0x0800), &ipv4(17, 0, 16, 185), &[7u8; 16]]);
    let first_frag = concat(&[&eth(0x0800), &ipv4(17, 0, 16, 0x2000), &ports(999, 53, 12)]);
    let dot1q = concat(&[
        &vlan(eth(0), 0x8100, 0x0800),
        &ipv4(1, 0, 8, 0),
        &[8, 0, 0, 0, 0, 1, 0, 1],
    ]);
    let mut qinq = vlan(eth(0), 0x88A8, 0x8100);
    qinq.extend([0x00, 0x0A, 0x08, 0x00]); // inner 802.1Q tag, then IPv4
    let qinq = concat(&[&qinq, &ipv4(6, 0, 20, 0), &tcp(40000, 443, 0)]);
    for f in [&later_frag, &first_frag, &dot1q, &qinq] {
        run(&s, Direction::Ingress, f);
    }
    let snap = s.snapshot(LO);
    // Only the first fragment (MF set, offset 0) has ports.
    assert_eq!(
        flow(&snap, "10.0.0.2", 53, "10.0.0.1", 999, 17).rx_bytes,
        36
    );
    assert_eq!(flow(&snap, "10.0.0.2", 0, "10.0.0.1", 0, 17).rx_bytes, 36);
    assert_eq!(flow(&snap, "10.0.0.2", 0, "10.0.0.1", 0, 1).rx_bytes, 28);
    assert_eq!(
        flow(&snap, "10.0.0.2", 443, "10.0.0.1", 40000, 6).rx_bytes,
        40
    );
    assert_eq!(snap.rx.frames, 4);
    assert_eq!(window(&snap).rx.ip_bytes, 36 + 36 + 28 + 40);
}

#[test]
fn truncated_garbage_and_non_ip_frames_are_other_and_never_dropped() {
    let s = source(LinkKind::Ethernet, 1024);
    // BPF_PROG_TEST_RUN itself refuses an IP ethertype with less than a full IP header, so
    // truncated headers hide behind a VLAN tag, which it does not look into.
    let truncated = concat(&[&vlan(eth(0), 0x8100, 0x0800), &ipv4(6, 0, 20, 0)[..10]]);
    let v6_short = concat(&[&vlan(eth(0), 0x8100, 0x86DD), &ipv6(6, 20)[..30]]);
    let cut_in_tag = concat(&[&eth(0x8100), &[0u8, 1]]);
    let bad_version = concat(&[&eth(0x0800), &[0x75u8; 20]]);
    let arp = concat(&[&eth(0x0806), &[1u8; 28]]);
    // A full IPv4 header whose TCP header is missing: still IP, with no ports.
    let tcp_cut = concat(&[&eth(0x0800), &ipv4(6, 0, 20, 0)]);
    let frames = [
        &truncated,
        &v6_short,
        &cut_in_tag,
        &bad_version,
        &arp,
        &tcp_cut,
    ];
    for f in frames {
        run(&s, Direction::Ingress, f);
    }
    let snap = s.snapshot(LO);
    let total: u64 = frames.iter().map(|f| f.len() as u64).sum();
    assert_eq!(snap.rx.frames, 6);
    assert_eq!(snap.rx.frame_bytes, total);
    let w = window(&snap);
    assert_eq!((snap.rx.other_frames, w.rx.ip_packets), (5, 1));
    assert_eq!(snap.rx.other_bytes + w.rx.ip_bytes + 14, total);
    assert_eq!(flow(&snap, "10.0.0.2", 0, "10.0.0.1", 0, 6).rx_bytes, 20);
}

#[test]
fn ethernet_padding_is_not_counted_as_ip_bytes() {
    let s = source(LinkKind::Ethernet, 1024);
    let mut f = concat(&[&eth(0x0800), &ipv4(1, 0, 8, 0), &[8, 0, 0, 0, 0, 1, 0, 1]]);
    f.resize(60, 0); // minimum Ethernet frame
    run(&s, Direction::Ingress, &f);
    let snap = s.snapshot(LO);
    assert_eq!((snap.rx.frame_bytes, window(&snap).rx.ip_bytes), (60, 28));
}

#[test]
fn devices_without_an_ethernet_header() {
    let s = source(LinkKind::RawIp, 1024);
    let v4 = concat(&[&ipv4(17, 0, 8 + 12, 0), &ports(51820, 51821, 4 + 12)]);
    let v6 = concat(&[&ipv6(6, 20), &tcp(22, 50000, 0)]);
    run(&s, Direction::Egress, &v4);
    run(&s, Direction::Egress, &v6);
    let snap = s.snapshot(LO);
    assert_eq!(
        flow(&snap, "10.0.0.1", 51820, "10.0.0.2", 51821, 17).tx_bytes,
        40
    );
    assert_eq!(flow(&snap, "fd00::1", 22, "fd00::2", 50000, 6).tx_bytes, 60);
    assert_eq!((snap.tx.other_frames, window(&snap).tx.ip_bytes), (0, 100));
}

#[test]
fn a_full_table_keeps_totals_exact_and_counts_the_overflow() {
    let capacity = 64;
    let s = source(LinkKind::Ethernet, capacity);
    let flows = 2_000u16;
    for port in 0..flows {
        run(
            &s,
            Direction::Ingress,
            &concat(&[
                &eth(0x0800),
                &ipv4(17, 0, 8, 0),
                &ports(10_000 + port, 53, 4),
            ]),
        );
    }
    let snap = s.snapshot(LO);
    assert_eq!(snap.flows.len(), capacity as usize);
    let in_flows: u64 = snap.flows.values().map(|c| c.rx_bytes).sum();
    let overflow = u64::from(flows) - u64::from(capacity);
    assert_eq!(in_flows, u64::from(capacity) * 28);
    assert_eq!(snap.rx.overflow_packets, overflow);
    assert_eq!(snap.rx.overflow_bytes, overflow * 28);
    assert_eq!(snap.rx.overflow_table_full, overflow);
    // The frames, counted apart from the flows, hold every IP byte: each is in a flow or in
    // the overflow.
    let w = window(&snap);
    assert_eq!(
        (w.rx.ip_packets, w.rx.ip_bytes),
        (u64::from(flows), u64::from(flows) * 28)
    );
    assert_eq!(snap.rx.frames, u64::from(flows));
    assert_eq!(
        w.rx.ip_bytes + 14 * w.rx.ip_packets,
        snap.rx.frame_bytes,
        "every byte is in a flow or in the overflow"
    );
}

#[test]
fn the_streamed_window_end_equals_the_diff_of_two_snapshots() {
    let s = source(LinkKind::Ethernet, 1024);
    let udp = |port: u16| concat(&[&eth(0x0800), &ipv4(17, 0, 12, 0), &ports(port, 53, 8)]);
    for port in 1000..1050 {
        run(&s, Direction::Ingress, &udp(port));
    }
    let before = s.snapshot(LO);
    // 25 flows that had an entry get more traffic, 30 are new, 25 stay idle.
    for port in 1025..1080 {
        run(&s, Direction::Egress, &udp(port));
    }
    let (mut streamed, _) = s.sample_since(LO, &before);
    let mut tables = netmon::snapshot::diff(&before, &s.snapshot(LO));
    streamed.flows.sort_by_key(|(id, _)| *id);
    tables.flows.sort_by_key(|(id, _)| *id);
    assert_eq!(streamed.flows.len(), 55);
    assert_eq!(streamed.flows, tables.flows);
    assert_eq!((streamed.rx, streamed.tx), (tables.rx, tables.tx));
    assert_eq!(streamed.tx.ip_packets, 55);
    assert_eq!(streamed.rx.ip_packets, 0);
    // Each egress frame is one 32-byte IP packet on an old or a new flow.
    assert!(
        streamed
            .flows
            .iter()
            .all(|(_, c)| c.tx_packets == 1 && c.tx_bytes == 32)
    );
}

#[test]
fn idle_flows_leave_the_table_and_every_byte_stays_counted() {
    use netmon::source::ebpf::monotonic_ns;
    use netmon::tick::{Tracked, tick};
    let s = source(LinkKind::Ethernet, 1024);
    let udp = |port: u16| concat(&[&eth(0x0800), &ipv4(17, 0, 12, 0), &ports(port, 53, 8)]);
    let start = Tracked::start(s.snapshot(LO));
    let mut counted = 0u64;
    let mut add = |sample: &netmon::snapshot::Sample| {
        counted += sample
            .flows
            .iter()
            .map(|(_, c)| c.rx_bytes + c.tx_bytes)
            .sum::<u64>();
    };
    // One tick: a reading, the idle flows removed, their late bytes added.
    let round = |prev: &Tracked, idle_before: u64| {
        let mut t = tick(prev, s.snapshot(LO), idle_before);
        s.evict(LO, &mut t);
        let evicted = t.evicted;
        let (next, sample) = t.finish();
        (next, sample, evicted)
    };
    // 50 flows, then quiet.
    for port in 1000..1050 {
        run(&s, Direction::Ingress, &udp(port));
    }
    let (first, sample, evicted) = round(&start, 0);
    assert_eq!((evicted, sample.flows.len()), (0, 50));
    add(&sample);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let quiet_before = monotonic_ns();
    std::thread::sleep(std::time::Duration::from_millis(5));
    // 10 of them move again, after the cutoff (ingress again: an egress frame with the same
    // addresses would be another connection, its local and remote ends swapped). Their counters
    // moved since the first reading; the other 40 did not, so they are idle.
    for port in 1000..1010 {
        run(&s, Direction::Ingress, &udp(port));
    }
    let (second, sample, evicted) = round(&first, quiet_before);
    assert_eq!(evicted, 40, "the 40 quiet flows leave the table");
    assert_eq!(second.snapshot.flows.len(), 10);
    assert_eq!(
        s.snapshot(LO).flows.len(),
        10,
        "the kernel table holds only the flows that moved"
    );
    assert_eq!(sample.flows.len(), 10);
    add(&sample);
    // Evicted flows that come back are new entries, counted from zero: once, not twice.
    for port in 1040..1045 {
        run(&s, Direction::Ingress, &udp(port));
        run(&s, Direction::Ingress, &udp(port));
    }
    let (_, sample, evicted) = round(&second, 0);
    assert_eq!(evicted, 0);
    assert_eq!(sample.flows.len(), 5);
    assert!(
        sample
            .flows
            .iter()
            .all(|(_, c)| c.rx_packets == 2 && c.rx_bytes == 64)
    );
    add(&sample);
    // Counted apart from the flows: 70 frames of 14 + 32 bytes.
    let totals = s.snapshot(LO);
    assert_eq!(totals.rx.frames + totals.tx.frames, 50 + 10 + 10);
    let ip_bytes = totals.rx.frame_bytes + totals.tx.frame_bytes - 14 * 70;
    assert_eq!(ip_bytes, (50 + 10 + 10) * 32);
    assert_eq!(
        counted, ip_bytes,
        "every byte is in exactly one tick's flows"
    );
}

#[test]
fn the_fixed_block_path_and_the_general_path_count_the_same() {
    // Each packet untagged (read with one fixed block) and behind an 802.1Q tag (read header by
    // header): the same flow, the same IP bytes; only the frame is 4 bytes longer.
    let plain = [
        concat(&[
            &eth(0x0800),
            &ipv4(17, 0, 8 + 12, 0),
            &ports(5353, 53, 4 + 12),
        ]),
        concat(&[&eth(0x0800), &ipv4(6, 0, 20 + 5, 0), &tcp(40000, 443, 5)]),
        concat(&[&eth(0x86DD), &ipv6(17, 8 + 10), &ports(4000, 4001, 4 + 10)]),
        concat(&[&eth(0x86DD), &ipv6(6, 20 + 3), &tcp(50000, 22, 3)]),
    ];
    let fast = source(LinkKind::Ethernet, 1024);
    let general = source(LinkKind::Ethernet, 1024);
    for f in &plain {
        run(&fast, Direction::Egress, f);
        let tagged = concat(&[
            &vlan(f[..14].to_vec(), 0x8100, u16::from_be_bytes([f[12], f[13]])),
            &f[14..],
        ]);
        run(&general, Direction::Egress, &tagged);
    }
    let (a, b) = (fast.snapshot(LO), general.snapshot(LO));
    assert_eq!(a.flows.len(), 4);
    assert_eq!(
        a.flows, b.flows,
        "both paths must give the same flows and counts"
    );
    assert_eq!(window(&a).tx.ip_bytes, window(&b).tx.ip_bytes);
    assert_eq!(a.tx.frame_bytes + 4 * 4, b.tx.frame_bytes);
    let t = flow(&a, "fd00::1", 50000, "fd00::2", 22, 6);
    assert_eq!((t.tx_packets, t.tx_bytes), (1, 40 + 23));
    let u = flow(&a, "10.0.0.1", 5353, "10.0.0.2", 53, 17);
    assert_eq!(u.tx_bytes, 40);
}

#[test]
fn a_frame_shorter_than_the_fixed_block_is_read_the_general_way() {
    // Ethernet + a bare 20-byte IPv4 header (protocol 59, nothing after it): 34 bytes, fewer
    // than the 38 the fixed block needs.
    let s = source(LinkKind::Ethernet, 1024);
    let bare = concat(&[&eth(0x0800), &ipv4(59, 0, 0, 0)]);
    assert_eq!(bare.len(), 34);
    run(&s, Direction::Ingress, &bare);
    let snap = s.snapshot(LO);
    let f = flow(&snap, "10.0.0.2", 0, "10.0.0.1", 0, 59);
    assert_eq!((f.rx_packets, f.rx_bytes), (1, 20));
    assert_eq!(snap.rx.other_frames, 0);
}

#[test]
fn an_interface_whose_totals_slot_is_taken_counts_in_the_spill_map() {
    // Another interface holds lo's slot (same ifindex modulo the slot count): lo's totals go to
    // the spill hash, and nothing of lo's lands in the other's slot.
    let s = source_unprepared(1024);
    let other = LO + netmon_common::TOTALS_SLOTS;
    s.prepare(other).expect("prepare the slot holder");
    s.prepare(LO).expect("prepare lo");
    let f = concat(&[
        &eth(0x0800),
        &ipv4(17, 0, 8 + 12, 0),
        &ports(5353, 53, 4 + 12),
    ]);
    run(&s, Direction::Ingress, &f);
    run(&s, Direction::Egress, &f);
    let snap = s.snapshot(LO);
    let w = window(&snap);
    assert_eq!((snap.rx.frames, w.rx.ip_bytes), (1, 40));
    assert_eq!((snap.tx.frames, w.tx.ip_bytes), (1, 40));
    let held = s.snapshot(other);
    assert_eq!((held.rx.frames, held.tx.frames), (0, 0));
}

/// Each direction's socket is looked at once, on its first packet. BPF_PROG_TEST_RUN gives each
/// run a socket of its own (a new cookie), so a second look would show as a changed cookie.
#[test]
fn each_directions_socket_is_looked_at_once() {
    let s = source(LinkKind::Ethernet, 1024);
    let received = concat(&[&eth(0x0800), &ipv4(17, 0, 12, 0), &ports(5000, 6000, 4)]);
    // The same flow sent: addresses and ports the other way round.
    let mut sent = received.clone();
    sent[26..30].copy_from_slice(&[10, 0, 0, 2]);
    sent[30..34].copy_from_slice(&[10, 0, 0, 1]);
    sent[34..38].copy_from_slice(&[0x17, 0x70, 0x13, 0x88]);
    let id = FlowId {
        local: "10.0.0.2".parse().unwrap(),
        remote: "10.0.0.1".parse().unwrap(),
        local_port: 6000,
        remote_port: 5000,
        protocol: 17,
    };
    run(&s, Direction::Ingress, &received);
    let first = *s
        .snapshot(LO)
        .sockets
        .get(&id)
        .expect("a received flow's sockets");
    assert!(first.pending, "its sent side is still to be looked at");
    assert_eq!(first.cookie, 0);
    assert_ne!(first.peer_cookie, 0, "the received packet's socket");
    run(&s, Direction::Ingress, &received);
    let again = s.snapshot(LO).sockets[&id];
    assert_eq!(again, first, "a second received packet is not looked at");
    run(&s, Direction::Egress, &sent);
    let sent_once = s.snapshot(LO).sockets[&id];
    assert!(!sent_once.pending);
    assert_ne!(sent_once.cookie, 0, "the sent packet's socket");
    assert_eq!(sent_once.peer_cookie, first.peer_cookie);
    run(&s, Direction::Egress, &sent);
    let snap = s.snapshot(LO);
    assert_eq!(
        snap.sockets[&id], sent_once,
        "a second sent packet is not looked at"
    );
    let c = flow(&snap, "10.0.0.2", 6000, "10.0.0.1", 5000, 17);
    assert_eq!((c.rx_packets, c.tx_packets), (2, 2));
}

/// GSO super-packets: each segment the kernel cuts repeats every header up to the payload. For
/// a UDP tunnel (VXLAN, Geneve) that is the outer IP and UDP headers, the tunnel header, and the
/// inner Ethernet, IP and TCP headers; for plain TCP or UDP, IP and L4. Four segments of 500
/// payload bytes each, egress.
#[test]
fn gso_segments_repeat_every_header_tunnels_included() {
    let payload = 2_000;
    let inner_tcp = |payload: usize| {
        let mut t = tcp(40000, 5201, 12 + payload);
        t[12] = 8 << 4; // 32-byte TCP header (timestamps)
        t
    };
    let inner = |payload: usize| {
        concat(&[
            &eth(0x0800),
            &ipv4(6, 0, 32 + payload, 0),
            &inner_tcp(payload),
        ])
    };
    let vxlan = |port: u16| {
        let body = concat(&[&[0x08, 0, 0, 0, 0, 0, 42, 0], &inner(payload)]);
        concat(&[
            &eth(0x0800),
            &ipv4(17, 0, 8 + body.len(), 0),
            &ports(33333, port, 4),
            &body,
        ])
    };
    // Geneve: 2 words of options, protocol type 0x6558 (an inner Ethernet frame).
    let geneve = {
        let mut g = vec![0x02, 0, 0x65, 0x58, 0, 0, 42, 0];
        g.extend([0u8; 8]);
        let body = concat(&[&g, &inner(payload)]);
        concat(&[
            &eth(0x0800),
            &ipv4(17, 0, 8 + body.len(), 0),
            &ports(33333, 6081, 4),
            &body,
        ])
    };
    let plain_tcp = concat(&[
        &eth(0x0800),
        &ipv4(6, 0, 32 + payload, 0),
        &inner_tcp(payload),
    ]);
    let plain_udp = concat(&[
        &eth(0x0800),
        &ipv4(17, 0, 8 + payload, 0),
        &ports(33334, 443, payload),
    ]);
    let cases: [(&str, &Vec<u8>, u16, u64); 5] = [
        // outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14 + IP 20 + TCP 32
        ("vxlan 4789", &vxlan(4789), 4789, 102),
        ("vxlan 8472", &vxlan(8472), 8472, 102),
        // ... + Geneve 8 + 8 of options instead of VXLAN's 8
        ("geneve", &geneve, 6081, 110),
        ("tcp", &plain_tcp, 5201, 52),
        ("udp", &plain_udp, 443, 28),
    ];
    for (what, frame, port, hdr) in cases {
        let s = source(LinkKind::Ethernet, 1024);
        run_gso(&s, Direction::Egress, frame, 4, 500);
        let snap = s.snapshot(LO);
        let (_, c) = snap
            .flows
            .iter()
            .find(|(id, _)| id.remote_port == port)
            .unwrap_or_else(|| panic!("{what}: no flow in {:#?}", snap.flows));
        let l3 = frame.len() as u64 - 14;
        assert_eq!(
            (c.tx_packets, c.tx_bytes),
            (4, l3 + 3 * hdr),
            "{what}: 4 segments, each after the first repeating {hdr} header bytes"
        );
    }
}
