//! The vassals' one-shot timers (respawn after a throttle, SIGKILL after the curse tolerance,
//! heartbeat due), ordered by deadline. A timer is cancelled as soon as what it guards is
//! over: a lazily cleaned heap kept every stopped vassal's kill timer and woke a quiet emperor
//! once per stop, 30 s later, with nothing to do. Every operation is O(log n).

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum TimerKind {
    /// A waiting (throttled) vassal may start again.
    Respawn,
    /// A stopping vassal did not stop within the curse tolerance.
    Kill,
    /// A running vassal's next heartbeat is late.
    Heartbeat,
}

#[derive(Default)]
pub struct Timers {
    by_deadline: BTreeSet<(Instant, usize, TimerKind)>,
    armed: HashMap<(usize, TimerKind), Instant>,
}

impl Timers {
    /// Arm (or move) the slot's timer of this kind.
    pub fn arm(&mut self, slot: usize, kind: TimerKind, at: Instant) {
        self.cancel(slot, kind);
        self.armed.insert((slot, kind), at);
        self.by_deadline.insert((at, slot, kind));
    }

    pub fn cancel(&mut self, slot: usize, kind: TimerKind) {
        if let Some(at) = self.armed.remove(&(slot, kind)) {
            self.by_deadline.remove(&(at, slot, kind));
        }
    }

    /// Every timer of a slot that is going away.
    pub fn cancel_all(&mut self, slot: usize) {
        for kind in [TimerKind::Respawn, TimerKind::Kill, TimerKind::Heartbeat] {
            self.cancel(slot, kind);
        }
    }

    /// The slot's armed timers.
    pub fn armed_for(&self, slot: usize) -> Vec<(TimerKind, Instant)> {
        [TimerKind::Respawn, TimerKind::Kill, TimerKind::Heartbeat]
            .into_iter()
            .filter_map(|kind| self.armed.get(&(slot, kind)).map(|&at| (kind, at)))
            .collect()
    }

    /// The earliest deadline, if any timer is armed.
    pub fn next(&self) -> Option<Instant> {
        self.by_deadline.first().map(|&(at, _, _)| at)
    }

    /// Disarm and return one timer that is due at `now`, earliest first.
    pub fn pop_due(&mut self, now: Instant) -> Option<(usize, TimerKind)> {
        let &(at, slot, kind) = self.by_deadline.first().filter(|(at, _, _)| *at <= now)?;
        self.by_deadline.remove(&(at, slot, kind));
        self.armed.remove(&(slot, kind));
        Some((slot, kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_cancelled_timer_never_comes_due() {
        let now = Instant::now();
        let mut timers = Timers::default();
        timers.arm(1, TimerKind::Kill, now + Duration::from_secs(30));
        timers.arm(2, TimerKind::Respawn, now + Duration::from_secs(60));
        timers.cancel(1, TimerKind::Kill);
        assert_eq!(timers.next(), Some(now + Duration::from_secs(60)));
        assert_eq!(timers.pop_due(now + Duration::from_secs(45)), None);
        timers.cancel_all(2);
        assert_eq!(timers.next(), None);
        assert!(timers.armed.is_empty());
    }

    #[test]
    fn arming_again_moves_the_timer() {
        let now = Instant::now();
        let mut timers = Timers::default();
        timers.arm(3, TimerKind::Heartbeat, now + Duration::from_secs(1));
        timers.arm(3, TimerKind::Heartbeat, now + Duration::from_secs(5));
        assert_eq!(timers.armed.len(), 1);
        assert_eq!(timers.pop_due(now + Duration::from_secs(2)), None);
        assert_eq!(
            timers.pop_due(now + Duration::from_secs(5)),
            Some((3, TimerKind::Heartbeat))
        );
        assert!(timers.armed.is_empty() && timers.by_deadline.is_empty());
    }

    #[test]
    fn due_timers_come_earliest_first() {
        let now = Instant::now();
        let mut timers = Timers::default();
        timers.arm(7, TimerKind::Respawn, now + Duration::from_millis(20));
        timers.arm(8, TimerKind::Kill, now + Duration::from_millis(10));
        let later = now + Duration::from_secs(1);
        assert_eq!(timers.pop_due(later), Some((8, TimerKind::Kill)));
        assert_eq!(timers.pop_due(later), Some((7, TimerKind::Respawn)));
        assert_eq!(timers.pop_due(later), None);
    }
}
