//! The live connections of one HTTP server, and which to close when a new client needs room.
//!
//! A connection is busy while a response of its is unfinished (an SSE stream counts until it
//! ends) and idle otherwise; idle and half-sent connections are what a careless or hostile client
//! leaves behind. At the limit, the connection idle the longest is told to close, so a new client
//! always gets in; when every connection is busy, the new one is refused instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// One connection's state, shared by its task and the registry.
pub struct Slot {
    epoch: Instant,
    /// Responses not finished.
    busy: AtomicUsize,
    /// Milliseconds after `epoch` at which the connection last became idle.
    idle_since_ms: AtomicU64,
    /// Cancelled to tell the connection to close.
    pub shed: CancellationToken,
}

impl Slot {
    pub fn is_idle(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0
    }

    fn idle_since(&self) -> u64 {
        self.idle_since_ms.load(Ordering::Relaxed)
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.idle_since_ms.store(ms, Ordering::Relaxed);
    }
}

/// A response in flight on a connection; the connection is idle again when the last one drops.
pub struct Busy(Arc<Slot>);

impl Busy {
    pub fn start(slot: &Arc<Slot>) -> Self {
        slot.busy.fetch_add(1, Ordering::AcqRel);
        Self(slot.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every live connection of a server.
pub struct Conns {
    /// Most connections served at once.
    pub max: usize,
    epoch: Instant,
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Arc<Slot>>>,
    emptied: Notify,
}

/// Removes its connection from the registry when the connection's task ends.
pub struct Registration {
    conns: Arc<Conns>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut live = self.conns.lock();
        live.remove(&self.id);
        if live.is_empty() {
            self.conns.emptied.notify_waiters();
        }
    }
}

impl Conns {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
            emptied: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Slot>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A new connection, idle since now.
    pub fn register(self: &Arc<Self>) -> (Arc<Slot>, Registration) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            epoch: self.epoch,
            busy: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            shed: CancellationToken::new(),
        });
        slot.touch();
        self.lock().insert(id, slot.clone());
        (
            slot,
            Registration {
                conns: self.clone(),
                id,
            },
        )
    }

    /// Connections not already told to close, and the one idle the longest among them.
    fn idlest(live: &HashMap<u64, Arc<Slot>>) -> (usize, Option<&Arc<Slot>>) {
        let mut open = 0;
        let mut idlest: Option<&Arc<Slot>> = None;
        for s in live.values().filter(|s| !s.shed.is_cancelled()) {
            open += 1;
            if s.is_idle() && idlest.is_none_or(|b| s.idle_since() < b.idle_since()) {
                idlest = Some(s);
            }
        }
        (open, idlest)
    }

    /// Whether one more connection may be served: below the limit, or the idlest one was told
    /// to close. `false` at the limit with every connection busy.
    pub fn make_room(&self) -> bool {
        let live = self.lock();
        let (open, idlest) = Self::idlest(&live);
        if open < self.max {
            return true;
        }
        match idlest {
            Some(s) => {
                s.shed.cancel();
                true
            }
            None => false,
        }
    }

    /// Tells the idlest connection to close (the process ran out of descriptors); `false` when
    /// none is idle.
    pub fn shed_idlest(&self) -> bool {
        let live = self.lock();
        match Self::idlest(&live).1 {
            Some(s) => {
                s.shed.cancel();
                true
            }
            None => false,
        }
    }

    /// Returns once no connection is left.
    pub async fn wait_empty(&self) {
        loop {
            // Registered before the check, so a connection that ends in between is not missed.
            let emptied = self.emptied.notified();
            if self.is_empty() {
                return;
            }
            emptied.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_limit_the_idlest_goes_and_busy_ones_stay() {
        let c = Conns::new(2);
        let (a, _ra) = c.register();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (b, _rb) = c.register();
        assert!(c.make_room(), "room is made");
        assert!(
            a.shed.is_cancelled(),
            "the one idle the longest is told to close"
        );
        assert!(!b.shed.is_cancelled());
        // b and a third connection busy: nothing may go, the next client is refused.
        let _b_busy = Busy::start(&b);
        let (d, _rd) = c.register();
        let d_busy = Busy::start(&d);
        assert!(!c.make_room(), "at the limit with every connection busy");
        assert!(!c.shed_idlest());
        drop(d_busy);
        assert!(c.make_room(), "d is idle again and can go");
        assert!(d.shed.is_cancelled());
    }

    #[test]
    fn a_connection_leaves_the_registry_when_its_task_ends() {
        let c = Conns::new(4);
        let (_s, r) = c.register();
        assert_eq!(c.len(), 1);
        drop(r);
        assert!(c.is_empty());
    }
}
