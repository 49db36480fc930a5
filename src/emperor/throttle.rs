//! Throttling and blacklist arithmetic, pure and unit-tested; the loop turns the answers into
//! timers (never into a blocking sleep, as uWSGI's usleep did).
//!
//! - Spawn budget: the emperor's guard against a spawn storm, shared by every tenant and
//!   served round-robin across them (see `fair_queue`): a token bucket (`--emperor-spawn-burst`
//!   spawns at full speed, then `--emperor-spawn-rate` per second). Spawns of the initial scan
//!   (warming up) take no token. It replaces uWSGI's global throttle, which grew by a delta for
//!   every spawn in the same second and so made every tenant wait behind one tenant's flood.
//! - Blacklist: a vassal that dies before it became loyal is blacklisted with a throttle of one
//!   delta; each further unloyal death adds a delta, up to the maximum. Its respawn waits that
//!   long. Loyalty (byte 17) or SIGURG forgives.
//! - Respawn floor: whatever `--emperor-throttle` says (even 0), a vassal that died unloyal, or
//!   loyal but within [`QUICK_DEATH`] of its start, waits at least [`RESPAWN_FLOOR`], doubling
//!   per consecutive such death up to [`RESPAWN_FLOOR_CAP`] (or `--emperor-max-throttle` if
//!   lower). A loyal death after a real run, or any death after [`SETTLED_RUN`], ends the streak.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

/// A token bucket as a single instant (GCRA): each spawn pushes `paid_until` one token
/// interval further, and a spawn may go when `paid_until` is at most `burst` intervals ahead.
#[derive(Debug, Clone)]
pub struct SpawnBudget {
    /// One token's worth of time; zero means no cap.
    interval: Duration,
    burst: u32,
    paid_until: Option<Instant>,
}

impl SpawnBudget {
    /// `rate` spawns a second after a burst of `burst`; a rate of 0 caps nothing.
    pub fn new(rate: u32, burst: u32) -> Self {
        SpawnBudget {
            interval: match rate {
                0 => Duration::ZERO,
                rate => Duration::from_secs(1) / rate,
            },
            burst: burst.max(1),
            paid_until: None,
        }
    }

    /// How far ahead of now `paid_until` may be for one more spawn to go.
    fn allowance(&self) -> Duration {
        self.interval * (self.burst - 1)
    }

    /// When the next spawn may happen (`now` if a token is there).
    pub fn next_allowed(&self, now: Instant) -> Instant {
        match self.paid_until {
            Some(paid) if !self.interval.is_zero() => paid
                .checked_sub(self.allowance())
                .map_or(now, |at| at.max(now)),
            _ => now,
        }
    }

    /// Take a token for a spawn that happens now (call when [`Self::next_allowed`] allows).
    pub fn take(&mut self, now: Instant) {
        let from = self.paid_until.map_or(now, |paid| paid.max(now));
        self.paid_until = Some(from + self.interval);
    }

    /// Tokens left now (what the stats show).
    pub fn tokens(&self, now: Instant) -> u32 {
        if self.interval.is_zero() {
            return self.burst;
        }
        let owed = self
            .paid_until
            .map_or(Duration::ZERO, |paid| paid.saturating_duration_since(now));
        let spent = owed.as_nanos().div_ceil(self.interval.as_nanos());
        self.burst
            .saturating_sub(spent.min(u128::from(u32::MAX)) as u32)
    }

    pub fn rate_and_burst(&self) -> (u32, u32) {
        let rate = match self.interval.as_nanos() {
            0 => 0,
            nanos => (1_000_000_000 / nanos) as u32,
        };
        (rate, self.burst)
    }
}

/// The least a failing vassal waits before it respawns: without it `--emperor-throttle 0`
/// let a broken config respawn hundreds of times a second.
pub const RESPAWN_FLOOR: Duration = Duration::from_millis(100);
/// Where the floor's doubling stops (unless `--emperor-max-throttle` is lower).
pub const RESPAWN_FLOOR_CAP: Duration = Duration::from_secs(30);
/// A loyal vassal dying sooner than this after its start still counts as failing: a tenant
/// may set `loyal-after = 0`.
pub const QUICK_DEATH: Duration = Duration::from_secs(1);
/// A run at least this long ends a failure streak, loyal or not.
pub const SETTLED_RUN: Duration = Duration::from_secs(10);

/// One vassal's streak of failing runs, and the floor it sets under its next respawn.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RespawnFloor {
    streak: u32,
}

impl RespawnFloor {
    /// The vassal died after running `ran_for`: the least its respawn must wait (zero when
    /// the run counts as a success).
    pub fn after_death(&mut self, ran_for: Duration, loyal: bool, max: Duration) -> Duration {
        if ran_for >= SETTLED_RUN {
            self.streak = 0;
        }
        if loyal && ran_for >= QUICK_DEATH {
            self.streak = 0;
            return Duration::ZERO;
        }
        self.streak = self.streak.saturating_add(1);
        let cap = RESPAWN_FLOOR_CAP.min(max).max(RESPAWN_FLOOR);
        let doublings = (self.streak - 1).min(16);
        (RESPAWN_FLOOR * (1u32 << doublings)).min(cap)
    }
}

/// One blacklisted vassal.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Punishment {
    /// How long its respawn waits: the grown delta, or more where a floor asked for more.
    pub throttle: Duration,
    /// One delta per unloyal death, up to the maximum.
    grown: Duration,
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

    /// An unloyal vassal died: (re)blacklist it; returns how long its respawn must wait, at
    /// least `at_least` (the respawn floor, a failed spawn's retry), which the stats then show.
    pub fn punish(&mut self, id: &str, now: SystemTime, at_least: Duration) -> Duration {
        let (delta, max) = (self.delta, self.max);
        let entry = self
            .entries
            .entry(id.to_string())
            .and_modify(|p| {
                p.grown = (p.grown + delta).min(max);
                p.throttle = p.grown.max(at_least);
                p.attempts += 1;
                p.last_attempt = now;
            })
            .or_insert(Punishment {
                throttle: delta.min(max).max(at_least),
                grown: delta.min(max),
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

    /// Entries handed over by the emperor this one replaces (an upgrade).
    pub fn restore(&mut self, entries: Vec<(String, Punishment)>) {
        self.entries.extend(entries);
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
    fn a_burst_goes_at_once_then_spawns_come_at_the_rate() {
        let mut budget = SpawnBudget::new(10, 3);
        let t0 = Instant::now();
        assert_eq!(budget.tokens(t0), 3);
        for _ in 0..3 {
            assert_eq!(budget.next_allowed(t0), t0);
            budget.take(t0);
        }
        assert_eq!(budget.tokens(t0), 0);
        assert_eq!(budget.next_allowed(t0), t0 + 100 * MS);
        budget.take(t0 + 100 * MS);
        assert_eq!(budget.next_allowed(t0 + 100 * MS), t0 + 200 * MS);
        // A calm second refills the bucket, never above the burst.
        let later = t0 + Duration::from_secs(5);
        assert_eq!(budget.tokens(later), 3);
        assert_eq!(budget.next_allowed(later), later);
    }

    #[test]
    fn a_lone_spawn_never_waits_and_a_rate_of_zero_caps_nothing() {
        let mut budget = SpawnBudget::new(1000, 500);
        let t0 = Instant::now();
        budget.take(t0);
        assert_eq!(budget.next_allowed(t0 + MS), t0 + MS);
        let mut free = SpawnBudget::new(0, 1);
        for _ in 0..10_000 {
            free.take(t0);
        }
        assert_eq!(free.next_allowed(t0), t0);
        assert_eq!(free.rate_and_burst(), (0, 1));
        assert_eq!(budget.rate_and_burst(), (1000, 500));
    }

    #[test]
    fn the_floor_doubles_per_quick_death_up_to_its_cap() {
        let mut floor = RespawnFloor::default();
        let waits: Vec<_> = (0..12)
            .map(|_| floor.after_death(10 * MS, false, 180_000 * MS))
            .collect();
        assert_eq!(waits[..4], [100 * MS, 200 * MS, 400 * MS, 800 * MS]);
        assert_eq!(waits[11], RESPAWN_FLOOR_CAP);
    }

    #[test]
    fn a_lower_max_throttle_caps_the_floor_but_never_below_it() {
        let mut floor = RespawnFloor::default();
        for _ in 0..5 {
            floor.after_death(Duration::ZERO, false, 250 * MS);
        }
        assert_eq!(floor.after_death(Duration::ZERO, false, 250 * MS), 250 * MS);
        let mut floor = RespawnFloor::default();
        assert_eq!(
            floor.after_death(Duration::ZERO, false, Duration::ZERO),
            RESPAWN_FLOOR
        );
    }

    #[test]
    fn a_real_loyal_run_or_a_settled_one_ends_the_streak() {
        let mut floor = RespawnFloor::default();
        floor.after_death(Duration::ZERO, false, RESPAWN_FLOOR_CAP);
        floor.after_death(Duration::ZERO, false, RESPAWN_FLOOR_CAP);
        assert_eq!(
            floor.after_death(QUICK_DEATH, true, RESPAWN_FLOOR_CAP),
            Duration::ZERO
        );
        assert_eq!(
            floor.after_death(Duration::ZERO, false, RESPAWN_FLOOR_CAP),
            RESPAWN_FLOOR
        );
        floor.after_death(Duration::ZERO, false, RESPAWN_FLOOR_CAP);
        assert_eq!(
            floor.after_death(SETTLED_RUN, false, RESPAWN_FLOOR_CAP),
            RESPAWN_FLOOR
        );
    }

    #[test]
    fn a_loyal_vassal_dying_at_once_is_still_floored() {
        let mut floor = RespawnFloor::default();
        assert_eq!(
            floor.after_death(10 * MS, true, RESPAWN_FLOOR_CAP),
            RESPAWN_FLOOR
        );
        assert_eq!(
            floor.after_death(10 * MS, true, RESPAWN_FLOOR_CAP),
            2 * RESPAWN_FLOOR
        );
    }

    #[test]
    fn a_floor_above_the_grown_delta_is_what_the_punishment_shows_and_does_not_grow_it() {
        let mut blacklist = Blacklist::new(Duration::ZERO, 180_000 * MS);
        let now = SystemTime::now();
        assert_eq!(blacklist.punish("a.ini", now, 400 * MS), 400 * MS);
        assert_eq!(blacklist.get("a.ini").unwrap().throttle, 400 * MS);
        assert_eq!(blacklist.punish("a.ini", now, 100 * MS), 100 * MS);
        let mut blacklist = Blacklist::new(1000 * MS, 180_000 * MS);
        assert_eq!(blacklist.punish("a.ini", now, 5000 * MS), 5000 * MS);
        assert_eq!(blacklist.punish("a.ini", now, Duration::ZERO), 2000 * MS);
    }

    #[test]
    fn blacklist_grows_by_delta_up_to_the_maximum_and_is_forgiven() {
        let mut blacklist = Blacklist::new(1000 * MS, 2500 * MS);
        let now = SystemTime::now();
        let none = Duration::ZERO;
        assert_eq!(blacklist.punish("a.ini", now, none), 1000 * MS);
        assert_eq!(blacklist.punish("a.ini", now, none), 2000 * MS);
        assert_eq!(blacklist.punish("a.ini", now, none), 2500 * MS);
        assert_eq!(blacklist.get("a.ini").unwrap().attempts, 3);
        assert!(blacklist.forgive("a.ini"));
        assert_eq!(blacklist.punish("a.ini", now, none), 1000 * MS);
        blacklist.clear();
        assert_eq!(blacklist.len(), 0);
    }
}
