//! Running on-demand vassals with an `idle` time: their held sockets are sampled (one read
//! of each kernel socket table per sample, see activity.rs) and those unused for their whole
//! `idle` time are named for a stop. A component of its own: it keeps its watched set and
//! next sample time, and is handed the table it looks at.

use super::activity::Snapshot;
use super::parts::OnDemandVassal;
use super::table::Table;
use crate::policy::SocketAddress;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The longest time between two samples of a running on-demand vassal's socket.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Running on-demand vassals with an `idle` time, and when their sockets are sampled next.
/// Empty (and no deadline) when there is none: the loop then never wakes for them.
#[derive(Debug, Default)]
pub struct IdleWatch {
    slots: BTreeSet<usize>,
    next: Option<Instant>,
}

impl IdleWatch {
    pub fn deadline(&self) -> Option<Instant> {
        self.next
    }

    /// A vassal that is gone is sampled no more (the last one takes the deadline with it).
    pub fn slots_remove(&mut self, slot: usize) {
        self.slots.remove(&slot);
        if self.slots.is_empty() {
            self.next = None;
        }
    }

    /// A spawned on-demand vassal: its idle clock starts again, and with an `idle` time it
    /// joins the sampled set.
    pub fn watch(&mut self, slot: usize, od: &mut OnDemandVassal, now: Instant) {
        od.idle_since = None;
        let Some(idle) = od.idle else {
            return;
        };
        self.slots.insert(slot);
        let next = now + sample_period(idle);
        self.next = Some(self.next.map_or(next, |at| at.min(next)));
    }

    /// When a sample is due: the watched vassals idle for their whole `idle` time, no longer
    /// watched (the others' idle clocks run on or start again).
    pub fn idle_out(&mut self, table: &mut Table, now: Instant) -> Vec<usize> {
        if self.next.is_none_or(|at| at > now) {
            return Vec::new();
        }
        let mut snapshot = Snapshot::default();
        let mut period: Option<Duration> = None;
        let mut idle_out = Vec::new();
        for slot in self.slots.clone() {
            let Some(v) = table.get_mut(slot) else {
                self.slots_remove(slot);
                continue;
            };
            let Some(od) = v.on_demand.as_mut() else {
                self.slots_remove(slot);
                continue;
            };
            let Some(idle) = od.idle else {
                continue;
            };
            // Not one already stopping (for idleness or otherwise).
            if !v.state.is_live() {
                continue;
            }
            let busy = match &od.socket.address {
                SocketAddress::Tcp(addr) => snapshot.tcp_busy(*addr),
                SocketAddress::Unix(path) => snapshot.unix_busy(&path.to_string_lossy()),
                SocketAddress::Abstract(name) => snapshot.unix_busy(&format!("@{name}")),
            };
            if busy {
                od.idle_since = None;
            } else if now.duration_since(*od.idle_since.get_or_insert(now)) >= idle {
                idle_out.push(slot);
                continue;
            }
            let p = sample_period(idle);
            period = Some(period.map_or(p, |q| q.min(p)));
        }
        for &slot in &idle_out {
            self.slots_remove(slot);
        }
        self.next = match (self.slots.is_empty(), period) {
            (true, _) => None,
            (false, Some(p)) => Some(now + p),
            (false, None) => Some(now + SAMPLE_EVERY),
        };
        idle_out
    }
}

/// Once a second, or four times per `idle` when that is shorter.
fn sample_period(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(50), SAMPLE_EVERY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_sampled_once_a_second_or_four_times_per_idle_time() {
        assert_eq!(sample_period(Duration::from_secs(60)), SAMPLE_EVERY);
        assert_eq!(
            sample_period(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(
            sample_period(Duration::from_millis(10)),
            Duration::from_millis(50)
        );
    }
}
