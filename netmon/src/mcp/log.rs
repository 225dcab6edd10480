//! MCP log messages (`notifications/message`): what a model should know while a call runs, at or
//! above the level the client set with `logging/setLevel` (warning until it sets one). Over HTTP,
//! rmcp sends them on the session's GET stream.

#![allow(deprecated)] // logging: still in the 2025-11-25 protocol, which clients speak

use crate::report::TrafficData;
use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam};
use rmcp::{Peer, RoleServer};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// A call that takes this much longer than its window is slow enough to mention (an SSH login,
/// a remote agent).
const SLOW_BEYOND_WINDOW: Duration = Duration::from_secs(3);

/// Until the client sets a level: warnings and worse.
const DEFAULT_LEVEL: LoggingLevel = LoggingLevel::Warning;

/// One session's level (each session's handler has its own).
#[derive(Clone, Debug)]
pub struct SessionLog {
    level: Arc<AtomicU8>,
}

impl Default for SessionLog {
    fn default() -> Self {
        Self {
            level: Arc::new(AtomicU8::new(DEFAULT_LEVEL as u8)),
        }
    }
}

/// What a message is about, as its `data`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notice {
    pub message: String,
    pub host: String,
    pub interface: String,
}

/// The messages a finished sample deserves, by level. Pure.
pub fn notices(d: &TrafficData, took: Duration) -> Vec<(LoggingLevel, Notice)> {
    let t = &d.total_stats;
    let notice = |message: String| Notice {
        message,
        host: d.host.clone(),
        interface: t.interface.clone(),
    };
    let mut out = Vec::new();
    let (rx, tx) = (
        t.rx.clone().unwrap_or_default(),
        t.tx.clone().unwrap_or_default(),
    );
    let unattributed = rx.unattributed_bytes + tx.unattributed_bytes;
    if unattributed > 0 {
        out.push((
            LoggingLevel::Warning,
            notice(format!(
                "the flow table was full: {unattributed} bytes ({} table-full and {} failed inserts) are in the totals but in no connection; restart netmon with a larger --table-capacity",
                rx.table_full_events + tx.table_full_events,
                rx.insert_failed_events + tx.insert_failed_events
            )),
        ));
    }
    if t.rx_bytes == 0 && t.tx_bytes == 0 {
        out.push((
            LoggingLevel::Info,
            notice(format!(
                "{} carried no IP traffic in {:.1} s; is it the interface you meant?",
                t.interface, t.window_seconds
            )),
        ));
    }
    let window = Duration::from_nanos(t.window_ns);
    if took > window + SLOW_BEYOND_WINDOW {
        out.push((
            LoggingLevel::Warning,
            notice(format!(
                "{} was slow to answer: the call took {:.1} s for a {:.1} s window",
                d.host,
                took.as_secs_f64(),
                window.as_secs_f64()
            )),
        ));
    }
    out
}

impl SessionLog {
    pub fn set(&self, level: LoggingLevel) {
        self.level.store(level as u8, Ordering::Relaxed);
    }

    fn wants(&self, level: LoggingLevel) -> bool {
        level as u8 >= self.level.load(Ordering::Relaxed)
    }

    /// Sends what the client wants to know of a finished sample.
    pub async fn after_sample(&self, peer: &Peer<RoleServer>, d: &TrafficData, took: Duration) {
        for (level, n) in notices(d, took) {
            if !self.wants(level) {
                continue;
            }
            let data = serde_json::to_value(&n).unwrap_or_default();
            let param = LoggingMessageNotificationParam::new(level, data).with_logger("netmon");
            if let Err(e) = peer.notify_logging_message(param).await {
                log::debug!("log message not sent: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measurement::{DirectionDetail, Measurement, Totals};
    use crate::rank::{GroupBy, SortKey};
    use crate::report::{SourceKind, View};

    fn data(rx: u64, unattributed: u64) -> TrafficData {
        let m = Measurement {
            window_ns: 5_000_000_000,
            totals: Totals {
                rx_bytes: rx,
                rx: Some(DirectionDetail {
                    unattributed_bytes: unattributed,
                    table_full_events: unattributed.min(3),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let view = View::all(SortKey::Rx, GroupBy::Connection, 10);
        TrafficData::new("localhost", SourceKind::Ebpf, "eth0", m, &view)
    }

    #[test]
    fn pressure_idleness_and_slowness_are_told() {
        let quiet = notices(&data(1000, 0), Duration::from_secs(5));
        assert!(quiet.is_empty(), "{quiet:?}");
        let full = notices(&data(1000, 640), Duration::from_secs(5));
        assert_eq!(full.len(), 1);
        assert_eq!(full[0].0, LoggingLevel::Warning);
        assert!(full[0].1.message.contains("640 bytes"), "{:?}", full[0]);
        let idle = notices(&data(0, 0), Duration::from_secs(5));
        assert_eq!(idle[0].0, LoggingLevel::Info);
        assert!(idle[0].1.message.contains("no IP traffic"));
        let slow = notices(&data(1000, 0), Duration::from_secs(9));
        assert!(slow[0].1.message.contains("slow to answer"), "{slow:?}");
    }

    #[test]
    fn the_level_filters() {
        let l = SessionLog::default();
        assert!(l.wants(LoggingLevel::Warning) && !l.wants(LoggingLevel::Info));
        l.set(LoggingLevel::Debug);
        assert!(l.wants(LoggingLevel::Info));
    }
}
