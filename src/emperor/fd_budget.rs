//! The emperor's open files: how many vassals its RLIMIT_NOFILE can hold, and the vassals
//! waiting for fds to free up. Each vassal costs the emperor [`PER_VASSAL`] fd for as long as
//! its runtime lives (its protocol link: the runtime is its child, named by its pid until it is
//! reaped, so no pidfd is kept), plus one per socket held for it (on
//! demand, pools); the emperor keeps what it opened at start (monitors, stats and control
//! listeners, the clone server's socket and pidfd, /dev/null, epoll, signalfd) and a
//! [`RESERVE`] for what it opens on the way (a spawn's transient socketpair, pipes, cgroup
//! directories and memfd; stats and control clients).
//!
//! [`FdBudget`] is a component: it keeps the limit and the vassals waiting for fds, and is
//! handed the counts it judges by and the vassal it tells to wait. A vassal that cannot start
//! for want of fds is told once in the log, shown in the stats with the limit the emperor
//! would need, retried with backoff, and woken as soon as another vassal's fds are freed.

use super::table::Vassal;
use std::collections::VecDeque;
use std::time::Duration;
use tracing::{debug, error, info, warn};

/// The emperor keeps each vassal's protocol socket (and the sockets it holds for
/// on-demand vassals and pools) at or above this fd number, so the few fds a spawn creates
/// are low and its runtime starts from a copy of just those ([`jail::Launch::fresh_fd_table`]):
/// with 5000 vassals, copying and closing 10,000 fds made every spawn cost milliseconds more
/// than the first.
pub(super) const PARK_FLOOR: i32 = 1024;

/// The fds the emperor holds per running vassal: its link.
pub const PER_VASSAL: u64 = 1;
/// Fds kept free for what the emperor opens while it runs: a spawn takes up to 8 at once,
/// and the stats and control servers need one per client they answer.
pub const RESERVE: u64 = 24;
/// The first retry of a vassal that found no fds; each further retry waits twice as long.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between retries (a vassal is also woken when another's fds are freed).
const LAST_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct FdBudget {
    /// The soft limit the emperor runs with (raised to its hard limit).
    limit: u64,
    /// Fds open once the emperor was set up, before any vassal.
    base: u64,
    /// Vassals waiting for fds (slots), woken one per freed vassal, oldest first.
    waiters: VecDeque<usize>,
    /// The warning that the configs approach the capacity was given.
    warned: bool,
}

impl FdBudget {
    pub fn new(limit: u64, base: u64) -> Self {
        FdBudget {
            limit,
            base,
            waiters: VecDeque::new(),
            warned: false,
        }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// How many vassals the limit holds (with no held sockets).
    pub fn capacity(&self) -> u64 {
        self.limit.saturating_sub(self.base + RESERVE) / PER_VASSAL
    }

    /// The limit `vassals` vassals (and `held` held sockets) need.
    pub fn needed(&self, vassals: u64, held: u64) -> u64 {
        self.base + RESERVE + PER_VASSAL * vassals + held
    }

    /// Whether one more runtime fits next to `running` ones (and `held` held sockets).
    pub fn room_for_one_more(&self, running: u64, held: u64) -> bool {
        self.needed(running + 1, held) <= self.limit
    }

    /// True once, when `configs` first reaches nine tenths of the capacity.
    pub fn should_warn(&mut self, configs: u64) -> bool {
        let near = configs * 10 >= self.capacity() * 9;
        let warn = near && !self.warned;
        self.warned |= warn;
        warn
    }

    /// A vassal found no fds: it waits to be woken, or for its retry after `attempt` tries.
    pub fn wait(&mut self, slot: usize, attempt: u32) -> Duration {
        if !self.waiters.contains(&slot) {
            self.waiters.push_back(slot);
        }
        retry_after(attempt)
    }

    /// A vassal's fds were freed: the oldest waiter, to try again now.
    pub fn wake_one(&mut self) -> Option<usize> {
        self.waiters.pop_front()
    }

    /// The slot is gone or started: it waits no more.
    pub fn forget(&mut self, slot: usize) {
        self.waiters.retain(|&s| s != slot);
    }

    /// Log the open-files limit and the vassals it holds (at start).
    pub fn log_capacity(&self, was: u64) {
        info!(
            limit = self.limit(),
            raised_from = was,
            vassals = self.capacity(),
            per_vassal = PER_VASSAL,
            "open files: room for about {} vassals",
            self.capacity()
        );
    }

    /// A new config, `configs` in all (and `held` held sockets): warn once when the configs
    /// approach what the limit holds.
    pub fn warn_near_capacity(&mut self, configs: u64, held: u64) {
        if self.should_warn(configs) {
            warn!(
                configs,
                limit = self.limit(),
                "{configs} configs: the emperor has file descriptors for about {} vassals (needs about {} per vassal: raise LimitNOFILE / ulimit -n to {} or more)",
                self.capacity(),
                PER_VASSAL,
                self.needed(configs, held)
            );
        }
    }

    /// The vassal in `slot` found no fds (every config would need a limit of `needed`): said
    /// once in the log and shown in its stats; the wait before its retry, which backs off
    /// (it is woken sooner when another vassal frees its fds).
    pub fn wait_for(&mut self, slot: usize, v: &mut Vassal, needed: u64) -> Duration {
        let limit = self.limit;
        if v.waiting_for_fds.is_none() {
            error!(
                vassal = %v.name,
                "cannot start: the emperor is out of file descriptors (limit {limit}, needs about {} per vassal: raise LimitNOFILE / ulimit -n to {needed} or more)",
                PER_VASSAL
            );
        }
        v.waiting_for_fds = Some(needed);
        v.fd_attempts = v.fd_attempts.saturating_add(1);
        let delay = self.wait(slot, v.fd_attempts);
        debug!(vassal = %v.name, attempt = v.fd_attempts, retry_ms = delay.as_millis() as u64, "still no file descriptors");
        delay
    }

    /// The vassal in `slot` started: it waits for fds no more.
    pub fn started(&mut self, slot: usize, v: &mut Vassal) {
        if v.waiting_for_fds.take().is_some() {
            info!(vassal = %v.name, "got its file descriptors");
            self.forget(slot);
        }
        v.fd_attempts = 0;
    }
}

/// The wait before retry number `attempt` (1 for the first): doubling, capped.
fn retry_after(attempt: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(LAST_RETRY)
}

/// Fds this process has open now (its /proc/self/fd, less the one reading it).
pub fn open_now() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.count().saturating_sub(1) as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_one_fd_per_vassal_after_the_emperors_own() {
        let budget = FdBudget::new(20_000, 16);
        assert_eq!(budget.capacity(), 20_000 - 16 - RESERVE);
        assert_eq!(budget.needed(10_000, 0), 16 + RESERVE + 10_000);
        assert!(
            budget.needed(10_000, 0) <= budget.limit(),
            "10,000 fit in 20,000"
        );
        assert!(budget.needed(20_000, 0) > budget.limit());
        assert_eq!(FdBudget::new(10, 16).capacity(), 0);
    }

    #[test]
    fn room_counts_held_sockets() {
        let budget = FdBudget::new(100, 10);
        let fit = budget.capacity();
        assert!(budget.room_for_one_more(fit - 1, 0));
        assert!(!budget.room_for_one_more(fit, 0));
        assert!(!budget.room_for_one_more(fit - 1, 2));
    }

    #[test]
    fn warns_once_near_capacity() {
        let mut budget = FdBudget::new(124, 0);
        assert_eq!(budget.capacity(), 100);
        assert!(!budget.should_warn(89));
        assert!(budget.should_warn(90));
        assert!(!budget.should_warn(91));
        assert!(!budget.should_warn(200));
    }

    #[test]
    fn retries_back_off_to_a_cap() {
        assert_eq!(retry_after(1), Duration::from_secs(1));
        assert_eq!(retry_after(2), Duration::from_secs(2));
        assert_eq!(retry_after(5), Duration::from_secs(16));
        assert_eq!(retry_after(6), LAST_RETRY);
        assert_eq!(retry_after(u32::MAX), LAST_RETRY);
    }

    #[test]
    fn waiters_wake_oldest_first_once_each() {
        let mut budget = FdBudget::new(100, 0);
        budget.wait(3, 1);
        budget.wait(1, 1);
        budget.wait(3, 2);
        budget.forget(7);
        assert_eq!(budget.wake_one(), Some(3));
        budget.forget(1);
        assert_eq!(budget.wake_one(), None);
    }
}
