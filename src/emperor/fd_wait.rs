//! Vassals that cannot start for want of file descriptors: told once in the log, shown in the
//! stats with the limit the emperor would need, retried with backoff, and woken as soon as
//! another vassal's fds are freed.

use super::table::State;
use super::timers::TimerKind;
use super::Emperor;
use std::time::Instant;
use tracing::{debug, error, info, warn};

impl Emperor {
    /// Log the open-files limit and the vassals it holds (at start).
    pub(super) fn log_fd_capacity(&self, was: u64) {
        let budget = &self.fd_budget;
        info!(
            limit = budget.limit(),
            raised_from = was,
            vassals = budget.capacity(),
            per_vassal = super::fd_budget::PER_VASSAL,
            "open files: room for about {} vassals",
            budget.capacity()
        );
    }

    /// Whether one more runtime fits in the emperor's fds.
    pub(super) fn room_for_a_runtime(&self) -> bool {
        self.fd_budget
            .room_for_one_more(self.table.running_count() as u64, self.held.count() as u64)
    }

    /// The limit every config the emperor has would need.
    fn fds_needed(&self) -> u64 {
        self.fd_budget
            .needed(self.table.len() as u64, self.held.count() as u64)
    }

    /// A new config: warn once when the configs approach what the limit holds.
    pub(super) fn warn_near_fd_capacity(&mut self) {
        let configs = self.table.len() as u64;
        if self.fd_budget.should_warn(configs) {
            warn!(
                configs,
                limit = self.fd_budget.limit(),
                "{configs} configs: the emperor has file descriptors for about {} vassals (needs about {} per vassal: raise LimitNOFILE / ulimit -n to {} or more)",
                self.fd_budget.capacity(),
                super::fd_budget::PER_VASSAL,
                self.fds_needed()
            );
        }
    }

    /// The vassal's spawn found no fds: say so once, then retry with backoff (or sooner, when
    /// another vassal frees its fds).
    pub(super) fn wait_for_fds(&mut self, slot: usize) {
        let needed = self.fds_needed();
        let limit = self.fd_budget.limit();
        let Some(v) = self.table.get_mut(slot) else {
            return;
        };
        if v.waiting_for_fds.is_none() {
            error!(
                vassal = %v.name,
                "cannot start: the emperor is out of file descriptors (limit {limit}, needs about {} per vassal: raise LimitNOFILE / ulimit -n to {needed} or more)",
                super::fd_budget::PER_VASSAL
            );
        }
        v.waiting_for_fds = Some(needed);
        v.fd_attempts = v.fd_attempts.saturating_add(1);
        let delay = self.fd_budget.wait(slot, v.fd_attempts);
        debug!(vassal = %v.name, attempt = v.fd_attempts, retry_ms = delay.as_millis() as u64, "still no file descriptors");
        self.timers
            .arm(slot, TimerKind::Respawn, Instant::now() + delay);
    }

    /// A runtime's fds were freed: the oldest vassal waiting for fds tries again now.
    pub(super) fn wake_fd_waiter(&mut self) {
        while let Some(slot) = self.fd_budget.wake_one() {
            let waiting = self
                .table
                .get(slot)
                .is_some_and(|v| v.state == State::Waiting && v.waiting_for_fds.is_some());
            if waiting {
                self.timers.cancel(slot, TimerKind::Respawn);
                self.handle(slot, super::machine::Event::RespawnDue);
                return;
            }
        }
    }
}
