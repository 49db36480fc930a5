//! The lifecycle executor: every event about a vassal goes through [`Emperor::handle`], which
//! asks the table (machine.rs) what comes next and carries its actions out. The decisions are
//! the table's; this file only does what it says (send a byte, queue a spawn, arm a timer,
//! forget a vassal) and feeds back what an action leads to (a start's outcome, a change
//! that waited for a transition to end, a respawn due at once).

use super::fair_queue::tenant_of;
use super::link;
use super::machine::{self, Action, Context, Event, Park, State};
use super::on_demand::OnDemand;
use super::pool;
use super::timers::TimerKind;
use super::wishes::Judge;
use super::Emperor;
use crate::protocol::Command;
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, error, info};

/// A spawn that failed (cgroup, clone3; a want of fds has its own backoff) is not retried
/// sooner than this, even with throttling off: retrying at once would spin.
const SPAWN_RETRY: Duration = Duration::from_secs(1);

impl Emperor {
    /// Feed one event about the vassal in `slot` to the table and carry out its actions.
    pub(super) fn handle(&mut self, slot: usize, event: Event) {
        let shutting_down = self.ragnarok.is_some();
        let Some(v) = self.table.get_mut(slot) else {
            return;
        };
        let context = Context {
            on_demand: v.on_demand.is_some(),
            shutting_down,
        };
        let step = machine::step(v.state, event, context);
        if step.next != v.state {
            debug!(vassal = %v.name, ?event, from = ?v.state, to = ?step.next, "lifecycle");
        }
        v.state = step.next;
        if let Some(note) = step.note {
            info!(vassal = %v.name, "{note}");
        }
        for action in step.actions {
            self.perform(slot, action);
        }
    }

    fn perform(&mut self, slot: usize, action: Action) {
        match action {
            Action::Start => {
                let park = self.judge_start(slot);
                self.handle(slot, Event::Parked(park));
            }
            Action::Enqueue => self.enqueue(slot),
            Action::Rest => self.wait_for_connection(slot),
            Action::Forgive => {
                self.timers.cancel(slot, TimerKind::Respawn);
                if let Some(v) = self.table.get(slot) {
                    let id = v.id.clone();
                    self.blacklist.forgive(&id);
                }
            }
            Action::Reload => self.send_reload(slot),
            Action::Stop => self.send_stop(slot),
            Action::Backoff => self.back_off(slot),
            Action::CountRespawn => self.with_vassal(slot, |v| v.history.respawns += 1),
            Action::FallBackLevel => self.with_vassal(slot, |v| {
                v.history.fall_back += 1;
                info!(vassal = %v.name, levels = v.history.fall_back, "its payload failed to start: starting afresh on its fallback-config");
            }),
            Action::ApplyPendingChange => {
                let moves_socket = self.change_moves_socket(slot);
                self.handle(slot, Event::ConfigChanged { moves_socket });
            }
            Action::RetryLater => self.schedule_respawn_after(slot, false, SPAWN_RETRY),
            Action::WaitForFds => self.wait_for_fds(slot),
            Action::Bury => self.bury(slot),
        }
    }

    fn with_vassal(&mut self, slot: usize, change: impl FnOnce(&mut super::table::Vassal)) {
        if let Some(v) = self.table.get_mut(slot) {
            change(v);
        }
    }

    /// Its config changed: the event the table needs, with whether the change moves the
    /// vassal's held socket judged only when it would act at once (a load of the config).
    pub(super) fn config_changed_event(&mut self, slot: usize) -> Event {
        let live = self
            .table
            .get(slot)
            .is_some_and(|v| v.state.acts_on_change_now());
        let moves_socket = live && self.change_moves_socket(slot);
        Event::ConfigChanged { moves_socket }
    }

    /// Whether the config as it is now moves the running vassal's on-demand or pool socket:
    /// then it starts afresh rather than reloads.
    fn change_moves_socket(&mut self, slot: usize) -> bool {
        let judge = Judge::new(&self.settings, &self.spawner, &self.reader);
        let Some(v) = self.table.get_mut(slot) else {
            return false;
        };
        let wishes = judge.wishes(v);
        OnDemand::changed(v, &wishes) || pool::changed(v, &wishes)
    }

    /// Where a start goes: over quota, refused (logged), held on demand, or queued. A start
    /// tries the watched config, not the fallback a previous run ended on.
    fn judge_start(&mut self, slot: usize) -> Park {
        self.with_vassal(slot, |v| v.history.fall_back = 0);
        if !self.quota.admits(&self.table, slot) {
            return Park::OverQuota;
        }
        self.prepare_held_sockets(slot)
    }

    /// The held sockets a start needs (see [`OnDemand::prepare`]). A refused setting (or a
    /// uWSGI application with no uWSGI binary) leaves the vassal idle, with an error naming
    /// the file and option, until its config changes.
    fn prepare_held_sockets(&mut self, slot: usize) -> Park {
        let judge = Judge::new(&self.settings, &self.spawner, &self.reader);
        let Some(v) = self.table.get_mut(slot) else {
            return Park::Refused;
        };
        let wishes = judge.wishes(v);
        let identity = judge.identity(v);
        let (held, epoll) = (&mut self.held, &self.epoll);
        match self
            .on_demand
            .prepare(slot, v, wishes, held, epoll, identity)
        {
            Ok(park) => park,
            Err(message) => {
                self.on_demand.let_go(slot, v, held, epoll);
                error!(vassal = %v.name, "{message}: not started");
                Park::Refused
            }
        }
    }

    /// An on-demand vassal back to waiting for a connection on its held socket.
    pub(super) fn wait_for_connection(&mut self, slot: usize) {
        if let Some(v) = self.table.get_mut(slot) {
            let (held, epoll) = (&self.held, &self.epoll);
            self.on_demand.wait_for_connection(slot, v, held, epoll);
        }
    }

    pub(super) fn enqueue(&mut self, slot: usize) {
        if let Some(v) = self.table.get_mut(slot) {
            let tenant = tenant_of(v, self.settings.tyrant);
            self.queue.push(tenant, slot);
        }
    }

    fn send_reload(&mut self, slot: usize) {
        let Some(v) = self.table.get_mut(slot) else {
            return;
        };
        if v.process.is_none() {
            return;
        }
        info!(vassal = %v.name, "reloading");
        // A reload tries the watched config again, not the fallback it ended on.
        v.history.fall_back = 0;
        v.history.ready = false;
        v.history.accepting = false;
        v.history.respawns += 1;
        v.history.last_run = Some(SystemTime::now());
        // A config from a store travels with the reload byte, as a fresh sealed memfd.
        link::send(slot, v, &self.epoll, Command::Reload);
    }

    fn send_stop(&mut self, slot: usize) {
        let Some(v) = self.table.get_mut(slot) else {
            return;
        };
        let at = Instant::now() + self.settings.curse_tolerance;
        self.timers.arm(slot, TimerKind::Kill, at);
        link::send(slot, v, &self.epoll, Command::Stop);
    }

    /// Its spawn found no fds: it waits for its retry, or to be woken sooner.
    fn wait_for_fds(&mut self, slot: usize) {
        let needed = self.fds_needed();
        let Some(v) = self.table.get_mut(slot) else {
            return;
        };
        let delay = self.fd_budget.wait_for(slot, v, needed);
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
                self.handle(slot, Event::RespawnDue);
                return;
            }
        }
    }

    /// The limit every config the emperor has (and every socket it holds) would need.
    fn fds_needed(&self) -> u64 {
        let (configs, held) = (self.table.len() as u64, self.held.count() as u64);
        self.fd_budget.needed(configs, held)
    }

    /// A death: logged (repeats collapsed), counted, and its respawn backed off by its own
    /// history (its respawn floor, its blacklist entry unless it was loyal).
    fn back_off(&mut self, slot: usize) {
        let max_throttle = self.settings.max_throttle;
        let Some(v) = self.table.get_mut(slot) else {
            return;
        };
        v.history.fall_back = 0;
        let loyal = std::mem::take(&mut v.history.loyal);
        let status = v.history.last_exit.unwrap_or(-1);
        let text = format!("status={status} loyal={loyal}");
        if let Some(repeated) = v.repeats.admit(&v.name, "died", text, Instant::now()) {
            tracing::warn!(vassal = %v.name, status, loyal, "died{repeated}");
        }
        v.history.respawns += 1;
        let ran_for = v
            .history
            .last_run
            .and_then(|at| at.elapsed().ok())
            .unwrap_or_default();
        let floor = v.respawn_floor.after_death(ran_for, loyal, max_throttle);
        self.schedule_respawn_after(slot, loyal, floor);
    }

    /// Respawn when its wait is over: at once if it was loyal and has no floor, else after
    /// its blacklist throttle, and never sooner than `at_least`.
    pub(super) fn schedule_respawn_after(&mut self, slot: usize, loyal: bool, at_least: Duration) {
        let Some(v) = self.table.get_mut(slot) else {
            return;
        };
        let delay = if loyal {
            Duration::ZERO
        } else {
            self.blacklist.punish(&v.id, SystemTime::now(), at_least)
        }
        .max(at_least);
        if delay.is_zero() {
            self.handle(slot, Event::RespawnDue);
            return;
        }
        let throttle_ms = delay.as_millis() as u64;
        // A loyal vassal is not blacklisted: only the respawn floor holds it back.
        let why = if loyal {
            "died soon after its start"
        } else {
            "blacklisted"
        };
        let text = format!("{why}: throttle_ms={throttle_ms}");
        if let Some(repeated) = v.repeats.admit(&v.name, "respawn", text, Instant::now()) {
            info!(vassal = %v.name, throttle_ms, "{why}: respawn delayed{repeated}");
        }
        self.timers
            .arm(slot, TimerKind::Respawn, Instant::now() + delay);
    }

    /// Forget a vassal, letting go of any socket held for it; a config of its tenant waiting
    /// over quota may start.
    pub(super) fn bury(&mut self, slot: usize) {
        if let Some(v) = self.table.get_mut(slot) {
            v.repeats.flush_all(&v.name);
            self.on_demand.let_go(slot, v, &mut self.held, &self.epoll);
        }
        self.fd_budget.forget(slot);
        self.timers.cancel_all(slot);
        let Some(v) = self.table.remove(slot) else {
            return;
        };
        if self.ragnarok.is_some() {
            return;
        }
        let tenant = tenant_of(&v, self.settings.tyrant);
        if let Some(next) = self.quota.next_admitted(&self.table, &tenant) {
            self.handle(next, Event::QuotaRoom);
        }
    }
}
