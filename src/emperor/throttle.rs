//! Throttling and blacklist arithmetic, pure and unit-tested; the loop turns the answers into
//! timers (never into a blocking sleep, as uWSGI's usleep did).
//!
//! - Spawn throttle: whenever a spawn follows the previous one within a second, the level grows
//!   by the delta (`--emperor-throttle`, ms) up to `--emperor-max-throttle`; a spawn that does
//!   not trigger throttling halves it. The next spawn waits `level` after the previous one.
//!   Spawns of the initial scan (warming up) neither wait nor raise the level.
//! - Blacklist: a vassal that dies before it became loyal is blacklisted with a throttle of one
//!   delta; each further unloyal death adds a delta, up to the maximum. Its respawn waits that
//!   long. Loyalty (byte 17) or SIGURG forgives.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

/// Two spawns closer than this count as "in the same second".
const SAME_SECOND: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct SpawnThrottle {
    delta: Duration,
    max: Duration,
    level: Duration,
    last_spawn: Option<Instant>,
}

impl SpawnThrottle {
    pub fn new(delta: Duration, max: Duration) -> Self {
        SpawnThrottle {
            delta,
            max,
            level: Duration::ZERO,
            last_spawn: None,
        }
    }

    /// The current throttle level (what the stats call `throttle_level`).
    pub fn level(&self) -> Duration {
        self.level
    }

    /// When the next spawn may happen.
    pub fn next_allowed(&self, now: Instant) -> Instant {
        match self.last_spawn {
            Some(last) => (last + self.level).max(now),
            None => now,
        }
    }

    /// Account for a spawn that happens now.
    pub fn record_spawn(&mut self, now: Instant, warming_up: bool) {
        if !warming_up {
            let same_second = self
                .last_spawn
                .is_some_and(|last| now.duration_since(last) < SAME_SECOND);
            self.level = if same_second {
                (self.level + self.delta).min(self.max)
            } else {
                self.level / 2
            };
        }
        self.last_spawn = Some(now);
    }
}

/// One blacklisted vassal.
#[derive(Debug, Clone, PartialEq)]
pub struct Punishment {
    pub throttle: Duration,
    pub attempts: u32,
    pub first_attempt: SystemTime,
    pub last_attempt: SystemTime,
}

#[derive(Debug, Clone)]
pub struct Blacklist {
    delta: Duration,
    max: Duration,
    entries: HashMap<String, Punishment>,
}

impl Blacklist {
    pub fn new(delta: Duration, max: Duration) -> Self {
        Blacklist {
            delta,
            max,
            entries: HashMap::new(),
        }
    }

    /// An unloyal vassal died: (re)blacklist it; returns how long its respawn must wait.
    pub fn punish(&mut self, id: &str, now: SystemTime) -> Duration {
        let (delta, max) = (self.delta, self.max);
        let entry = self
            .entries
            .entry(id.to_string())
            .and_modify(|p| {
                p.throttle = (p.throttle + delta).min(max);
                p.attempts += 1;
                p.last_attempt = now;
            })
            .or_insert(Punishment {
                throttle: delta.min(max),
                attempts: 1,
                first_attempt: now,
                last_attempt: now,
            });
        entry.throttle
    }

    pub fn forgive(&mut self, id: &str) -> bool {
        self.entries.remove(id).is_some()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn get(&self, id: &str) -> Option<&Punishment> {
        self.entries.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Punishment)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_lone_spawn_is_not_throttled() {
        let mut throttle = SpawnThrottle::new(1000 * MS, 180_000 * MS);
        let t0 = Instant::now();
        assert_eq!(throttle.next_allowed(t0), t0);
        throttle.record_spawn(t0, false);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(throttle.next_allowed(later), later);
    }

    #[test]
    fn spawns_in_the_same_second_add_a_delta_each_and_a_calm_spawn_halves_it() {
        let mut throttle = SpawnThrottle::new(1000 * MS, 180_000 * MS);
        let t0 = Instant::now();
        throttle.record_spawn(t0, false);
        throttle.record_spawn(t0 + 10 * MS, false);
        assert_eq!(throttle.level(), 1000 * MS);
        assert_eq!(throttle.next_allowed(t0 + 20 * MS), t0 + 1010 * MS);
        throttle.record_spawn(t0 + 500 * MS, false);
        assert_eq!(throttle.level(), 2000 * MS);
        throttle.record_spawn(t0 + 5000 * MS, false);
        assert_eq!(throttle.level(), 1000 * MS);
    }

    #[test]
    fn the_level_never_exceeds_the_maximum() {
        let mut throttle = SpawnThrottle::new(1000 * MS, 2500 * MS);
        let t0 = Instant::now();
        for i in 0..10 {
            throttle.record_spawn(t0 + i * MS, false);
        }
        assert_eq!(throttle.level(), 2500 * MS);
    }

    #[test]
    fn warming_up_spawns_do_not_raise_the_level() {
        let mut throttle = SpawnThrottle::new(1000 * MS, 180_000 * MS);
        let t0 = Instant::now();
        for i in 0..100 {
            throttle.record_spawn(t0 + i * MS, true);
        }
        assert_eq!(throttle.level(), Duration::ZERO);
    }

    #[test]
    fn blacklist_grows_by_delta_up_to_the_maximum_and_is_forgiven() {
        let mut blacklist = Blacklist::new(1000 * MS, 2500 * MS);
        let now = SystemTime::now();
        assert_eq!(blacklist.punish("a.ini", now), 1000 * MS);
        assert_eq!(blacklist.punish("a.ini", now), 2000 * MS);
        assert_eq!(blacklist.punish("a.ini", now), 2500 * MS);
        assert_eq!(blacklist.get("a.ini").unwrap().attempts, 3);
        assert!(blacklist.forgive("a.ini"));
        assert_eq!(blacklist.punish("a.ini", now), 1000 * MS);
        blacklist.clear();
        assert_eq!(blacklist.len(), 0);
    }
}
