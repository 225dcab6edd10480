//! A source that replays prepared snapshots: for tests of everything above the seam. It reports
//! itself as the classifier (the contract has no "test" source) and says in a note that it is
//! scripted.

use super::{BoxFuture, Progress, ProgressFn, TrafficSource};
use crate::error::Result;
use crate::interface::InterfaceInfo;
use crate::measurement::Measurement;
use crate::report::{SourceKind, View};
use crate::snapshot::{Snapshot, diff};
use std::time::Duration;

pub struct ScriptedSource {
    pub host: String,
    pub interfaces: Vec<InterfaceInfo>,
    /// The snapshots taken at the start and the end of every window.
    pub before: Snapshot,
    pub after: Snapshot,
}

/// The note every scripted result carries.
pub const NOTE: &str = "replayed by netmon's scripted test source, not measured";

impl TrafficSource for ScriptedSource {
    fn host(&self) -> &str {
        &self.host
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Ebpf
    }

    fn interfaces(&self) -> BoxFuture<'_, Result<Vec<InterfaceInfo>>> {
        Box::pin(async { Ok(self.interfaces.clone()) })
    }

    /// Reports the start of the window and returns at once: the window is in the snapshots.
    fn sample<'a>(
        &'a self,
        _iface: &'a InterfaceInfo,
        window: Duration,
        _view: &'a View,
        progress: ProgressFn<'a>,
    ) -> BoxFuture<'a, Result<Measurement>> {
        Box::pin(async move {
            progress(Progress::Started { window });
            Ok(Measurement::from_sample(&diff(&self.before, &self.after)).with_note(NOTE))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ArgNames, Error, RequestError};
    use crate::flow::{FlowCounters, FlowId};
    use crate::interface::InterfaceKind;
    use crate::names::Namer;
    use crate::rank::{GroupBy, SortKey};
    use crate::request::{Naming, SampleWindow, TrafficRequest};
    use crate::source::collect;
    use netmon_common::DirTotals;

    fn iface(name: &str, index: u32) -> InterfaceInfo {
        InterfaceInfo {
            name: name.into(),
            index,
            up: true,
            operstate: "up".into(),
            mac: None,
            mtu: 1500,
            kind: InterfaceKind::Ethernet,
            addresses: vec![],
        }
    }

    fn source() -> ScriptedSource {
        let id = FlowId {
            local: [10, 0, 0, 1].into(),
            remote: [10, 0, 0, 2].into(),
            local_port: 22,
            remote_port: 50000,
            protocol: 6,
        };
        ScriptedSource {
            host: "localhost".into(),
            interfaces: vec![iface("lo", 1), iface("eth0", 2)],
            before: Snapshot::default(),
            after: Snapshot {
                slots: Vec::new(),
                taken_ns: 5_000_000_000,
                // 10 frames received and 5 sent; the IP totals are the flows' sum.
                rx: DirTotals {
                    frames: 10,
                    frame_bytes: 1140,
                    ..Default::default()
                },
                tx: DirTotals {
                    frames: 5,
                    frame_bytes: 570,
                    ..Default::default()
                },
                flows: [(
                    id,
                    FlowCounters {
                        rx_bytes: 1000,
                        rx_packets: 10,
                        tx_bytes: 500,
                        tx_packets: 5,
                    },
                )]
                .into_iter()
                .collect(),
                sockets: Default::default(),
            },
        }
    }

    fn req(iface: Option<&str>) -> TrafficRequest {
        TrafficRequest::new(
            iface,
            5.0,
            SampleWindow::CLI_RANGE,
            10,
            SortKey::Rx,
            GroupBy::Connection,
            ArgNames::CLI,
        )
        .unwrap()
        .with_naming(Naming::NONE)
    }

    /// Names from files in a directory of the test's own: no DNS server is asked.
    fn etc(hosts: &str, services: &str) -> (tempdir::Dir, Namer) {
        let dir = tempdir::Dir::new();
        std::fs::write(dir.0.join("hosts"), hosts).unwrap();
        std::fs::write(dir.0.join("services"), services).unwrap();
        let namer = Namer::at(&dir.0);
        (dir, namer)
    }

    mod tempdir {
        /// A directory under the system's temporary one, removed on drop.
        pub struct Dir(pub std::path::PathBuf);

        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "netmon-unit-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Self(p)
            }
        }

        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    async fn named(naming: Naming, namer: &Namer) -> crate::report::TrafficData {
        let req = req(Some("eth0")).with_naming(naming);
        collect(&source(), &req, None, &|_| {}, namer)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn names_come_from_the_files_and_a_missing_resolver_is_told() {
        let (_dir, namer) = etc(
            "10.0.0.1 here.example here\n10.0.0.2 there.example\n",
            "ssh 22/tcp\nssh-udp 22/udp\n",
        );
        let d = named(Naming::ALL, &namer).await;
        let c = &d.top_connections[0];
        assert_eq!(c.local_name.as_deref(), Some("here.example"));
        assert_eq!(c.remote_name.as_deref(), Some("there.example"));
        assert_eq!(
            c.local_service.as_deref(),
            Some("ssh"),
            "22/tcp, not 22/udp"
        );
        assert_eq!(c.remote_service, None);
        assert_eq!(
            c.local_addr.as_deref(),
            Some("10.0.0.1"),
            "the numbers stay"
        );
        assert!(
            d.notes
                .iter()
                .any(|n| n.contains("2 of 2 addresses named (2 from")),
            "{:?}",
            d.notes
        );
        assert!(
            !d.notes.iter().any(|n| n.contains("reverse DNS off")),
            "no lookup was needed: {:?}",
            d.notes
        );

        // One address the hosts file lacks, and no resolv.conf: told, not hidden.
        let (_dir, namer) = etc("10.0.0.1 here\n", "");
        let services_off = Naming {
            hosts: true,
            services: false,
        };
        let d = named(services_off, &namer).await;
        let c = &d.top_connections[0];
        assert_eq!(
            (c.local_name.as_deref(), c.remote_name.as_deref()),
            (Some("here"), None)
        );
        assert_eq!(c.local_service, None);
        assert!(
            d.notes
                .iter()
                .any(|n| n.contains("reverse DNS off") && n.contains("resolv.conf")),
            "{:?}",
            d.notes
        );
        // Names off: nothing is read, nothing is noted.
        let d = collect(&source(), &req(Some("eth0")), None, &|_| {}, &namer)
            .await
            .unwrap();
        assert_eq!(d.top_connections[0].local_name, None);
        assert_eq!(d.notes, [NOTE]);
    }

    #[tokio::test]
    async fn a_filter_narrows_the_totals_and_keeps_the_interfaces_beside_them() {
        let r = req(Some("eth0"))
            .with_selection(Some("src port 50000"), None, None)
            .unwrap();
        let d = collect(&source(), &r, None, &|_| {}, &Namer::at("/nonexistent"))
            .await
            .unwrap();
        assert_eq!(d.filter.as_deref(), Some("src port 50000"));
        assert_eq!((d.total_stats.rx_bytes, d.total_stats.tx_bytes), (1000, 0));
        let all = d.interface_totals.as_ref().unwrap();
        assert_eq!((all.rx_bytes, all.tx_bytes), (1000, 500));
        assert_eq!(d.top_connections[0].tx_bytes, 0);
        assert!(
            d.summary().contains("(filter `src port 50000`)"),
            "{}",
            d.summary()
        );
    }

    #[tokio::test]
    async fn collect_builds_the_result_for_the_named_interface() {
        let seen = std::sync::Mutex::new(Vec::new());
        let d = collect(
            &source(),
            &req(Some("eth0")),
            None,
            &|p| seen.lock().unwrap().push(p),
            &Namer::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [Progress::Started {
                window: Duration::from_secs(5)
            }]
        );
        assert_eq!(d.total_stats.interface, "eth0");
        assert_eq!(d.notes, [NOTE]);
        assert_eq!(d.total_stats.rx_bytes, 1000);
        assert_eq!(d.total_stats.rx_bps, 1600);
        assert_eq!(d.top_connections.len(), 1);
    }

    #[tokio::test]
    async fn without_iface_the_default_route_interface_is_used() {
        let d = collect(
            &source(),
            &req(None),
            Some("eth0".into()),
            &|_| {},
            &Namer::default(),
        )
        .await
        .unwrap();
        assert_eq!(d.total_stats.interface, "eth0");
        let e = collect(&source(), &req(None), None, &|_| {}, &Namer::default())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("--iface (lo, eth0)"), "{e}");
    }

    #[tokio::test]
    async fn an_unknown_interface_lists_the_existing_ones() {
        let e = collect(
            &source(),
            &req(Some("wlan9")),
            None,
            &|_| {},
            &Namer::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(
            e,
            Error::Request(RequestError::UnknownInterface { .. })
        ));
        let msg = e.to_string();
        assert!(
            msg.contains("\"wlan9\" does not exist on localhost"),
            "{msg}"
        );
        assert!(msg.contains("lo, eth0"), "{msg}");
        assert!(msg.contains("`netmon interfaces` shows them"), "{msg}");
    }
}
