//! Where a vassal's events come from: its config (the monitors), the bytes its runtime
//! sends, its runtime's exit, its timers, and the emperor's own stop. Each becomes one event
//! for the lifecycle table (machine.rs), carried out by the executor (executor.rs). Every
//! handler touches one vassal (O(1)).

use super::link;
use super::machine::{Event as LifeEvent, ExitKind, State};
use super::on_demand::OnDemand;
use super::table::Vassal;
use super::timers::TimerKind;
use super::wishes::Judge;
use super::Emperor;
use crate::monitor::{Event, EventKind};
use crate::protocol::Message;
use jail::process::{self, Exit};
use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, error, info, warn};

/// Bytes read from one vassal per wake-up: a vassal flooding its socket gets its turn like
/// everyone else, and the loop goes on.
const READ_BUDGET: usize = 256;
/// At most one log line per this long about a vassal's unknown protocol bytes.
const UNKNOWN_BYTES_QUIET: Duration = Duration::from_secs(10);

/// Config events judged per loop turn. Judging one is a round trip to the config reader
/// (about 0.2 ms), so an initial scan of thousands is judged a batch at a time, each batch's
/// runtimes starting (`process_queue`) while the next is judged, and signals, stats and
/// stops wait for one batch, never for the whole scan.
const JUDGE_BATCH: usize = 64;

impl Emperor {
    /// Queue the monitors' events behind those still waiting: they are judged in the order
    /// they came (a config's removal never before its addition), a batch per loop turn.
    pub(super) fn on_monitor_events(&mut self, events: Vec<Event>) {
        if self.ragnarok.is_none() {
            self.monitor_backlog.extend(events);
        }
    }

    /// Judge the next batch of waiting config events, their configs read ahead at once.
    pub(super) fn judge_backlog(&mut self) {
        let take = self.monitor_backlog.len().min(JUDGE_BATCH);
        let batch: Vec<Event> = self.monitor_backlog.drain(..take).collect();
        self.scan_left = self.scan_left.saturating_sub(take);
        self.read_ahead(&batch);
        for event in batch {
            if self.ragnarok.is_some() {
                self.monitor_backlog.clear();
                self.scan_left = 0;
                break;
            }
            match event.kind {
                EventKind::Add | EventKind::Change => self.config_seen(event),
                EventKind::Remove => self.config_removed(&event.id),
            }
        }
        self.reader.borrow_mut().forget_ahead();
    }

    /// Have the config reader load a batch's configs in one go, as the judging of each will
    /// ask (see [`Judge::wishes`]): the reader and its worker go from one config to the next
    /// without waiting for this loop. A config judged otherwise (its owner changed meanwhile)
    /// is read again when judged; one not judged (a vassal not acting on its change now)
    /// cost a read.
    fn read_ahead(&self, batch: &[Event]) {
        let judge = Judge::new(&self.settings, &self.spawner, &self.reader);
        let requests: Vec<_> = batch
            .iter()
            .filter(|event| event.kind != EventKind::Remove)
            .filter_map(|event| {
                let owner = match self.settings.tyrant {
                    true => Some(self.owner_of(event).ok()?),
                    false => None,
                };
                Some(judge.request(
                    &event.path,
                    event.config.as_deref(),
                    event.socket.as_deref(),
                    owner,
                ))
            })
            .collect();
        // One config is read when judged, as always.
        if requests.len() > 1 {
            self.reader.borrow_mut().read_ahead(&requests);
        }
    }

    /// Tyrant mode: whose the config is (a store's row names it, a file's owner is it).
    fn owner_of(&self, event: &Event) -> Result<(u32, u32), super::identity::OwnerError> {
        let min_id = self.settings.tyrant_min_id;
        match &event.config {
            Some(_) => super::identity::tyrant_given_owner(event.owner, min_id),
            None => super::identity::tyrant_owner(&event.path, min_id),
        }
    }

    fn config_seen(&mut self, mut event: Event) {
        if self.settings.tyrant {
            match self.tyrant_check(&event) {
                Some(owner) => event.owner = Some(owner),
                None => return,
            }
        }
        let slot = match self.table.slot_of(&event.id) {
            Some(slot) => slot,
            None => {
                // A new config: an idle vassal whose config just changed.
                let mut vassal =
                    Vassal::new(event.id.clone(), event.name, event.path, event.monitor);
                vassal.state = State::Idle;
                info!(vassal = %vassal.name, "new config");
                let slot = self.table.insert(vassal);
                let (configs, held) = (self.table.len(), self.held.count());
                self.fd_budget
                    .warn_near_capacity(configs as u64, held as u64);
                slot
            }
        };
        // Every event is news: the monitors report only differences (a file rewritten within
        // one tick of a coarse clock keeps its mtime and is still a change; churn.rs lost
        // such updates when this compared mtimes).
        let Some(v) = self.table.get_mut(slot) else {
            return;
        };
        v.last_mod = event.mtime;
        // A changed config's first lines are news, not repeats of the old one's.
        v.repeats.flush_all(&v.name);
        v.owner = event.owner;
        v.config = event.config;
        v.store_socket = event.socket;
        let changed = self.config_changed_event(slot);
        self.handle(slot, changed);
    }

    /// Tyrant mode: the config's owner, or None when it is refused (and, if it was running
    /// as someone else, stopped).
    fn tyrant_check(&mut self, event: &Event) -> Option<(u32, u32)> {
        let owner = match self.owner_of(event) {
            Ok(owner) => owner,
            Err(e) => {
                error!(vassal = %event.name, "{}: refused: {e}", event.path.display());
                if let Some(slot) = self.table.slot_of(&event.id) {
                    self.config_removed_slot(slot);
                }
                return None;
            }
        };
        if let Some(&original) = self.refused.get(&event.id) {
            if owner != original {
                return None;
            }
            info!(vassal = %event.name, "owner is {}:{} again: accepted", owner.0, owner.1);
            self.refused.remove(&event.id);
        }
        let Some(slot) = self.table.slot_of(&event.id) else {
            return Some(owner);
        };
        let Some(v) = self.table.get(slot) else {
            return Some(owner);
        };
        match v.owner {
            Some(previous) if previous != owner => {
                error!(
                    vassal = %v.name,
                    "{}: owner changed from {}:{} to {}:{}: refused and stopped",
                    v.path.display(), previous.0, previous.1, owner.0, owner.1
                );
                self.refused.insert(event.id.clone(), previous);
                self.config_removed_slot(slot);
                None
            }
            _ => Some(owner),
        }
    }

    fn config_removed(&mut self, id: &str) {
        self.refused.remove(id);
        if let Some(slot) = self.table.slot_of(id) {
            self.config_removed_slot(slot);
        }
    }

    fn config_removed_slot(&mut self, slot: usize) {
        self.handle(slot, LifeEvent::ConfigRemoved);
    }

    pub(super) fn reload_all(&mut self) {
        info!("SIGHUP: reloading every vassal");
        for slot in self.table.slots() {
            self.handle(slot, LifeEvent::ReloadAsked);
        }
    }

    pub(super) fn clear_blacklist(&mut self) {
        info!(
            "SIGURG: clearing the blacklist ({} vassals)",
            self.blacklist.len()
        );
        self.blacklist.clear();
        for slot in self.table.slots() {
            if self.table.get(slot).map(|v| v.state) == Some(State::Waiting) {
                self.timers.cancel(slot, TimerKind::Respawn);
                self.handle(slot, LifeEvent::RespawnDue);
            }
        }
    }

    /// Its link is readable or writable: write what its outbox holds, then read what the
    /// vassal sent, at most READ_BUDGET bytes per wake-up.
    pub(super) fn on_vassal_link(&mut self, slot: usize) {
        let Some(v) = self.table.get_mut(slot) else {
            return;
        };
        if v.process.as_ref().is_some_and(|p| !p.outbox.is_empty()) {
            link::flush(slot, v, &self.epoll);
        }
        let mut buf = [0u8; READ_BUDGET];
        let Some(process) = v.process.as_mut() else {
            return;
        };
        if process.link_closed {
            return;
        }
        match process.link.read(&mut buf) {
            Ok(0) => {
                // The runtime is exiting; its exit status arrives with SIGCHLD.
                let _ = self.epoll.delete(&process.link);
                process.link_closed = true;
            }
            Ok(n) => {
                for &byte in &buf[..n] {
                    self.on_message(slot, Message::from_byte(byte));
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(_) => {
                let _ = self.epoll.delete(&process.link);
                process.link_closed = true;
            }
        }
    }

    fn on_message(&mut self, slot: usize, message: Message) {
        let Some(v) = self.table.get_mut(slot) else {
            return;
        };
        let now = SystemTime::now();
        let event = match message {
            Message::Spawned => {
                // A new payload: not accepting until it says so (or its check passes).
                v.history.starts += 1;
                v.history.accepting = false;
                v.history.ready = true;
                v.history.last_ready = Some(now);
                if let Some(started) = v.spawn_started.take() {
                    self.spawn_latency.observe(started.elapsed());
                }
                if let Some(repeated) =
                    v.repeats
                        .admit(&v.name, "running", String::new(), Instant::now())
                {
                    info!(vassal = %v.name, "running{repeated}");
                }
                Some(LifeEvent::PayloadStarted)
            }
            Message::Ready => {
                v.history.accepting = true;
                v.history.last_accepting = Some(now);
                None
            }
            Message::Loyal => {
                if !v.history.loyal {
                    info!(vassal = %v.name, "loyal");
                }
                v.history.loyal = true;
                v.history.last_loyal = Some(now);
                self.blacklist.forgive(&v.id);
                None
            }
            Message::Heartbeat => {
                v.history.last_heartbeat = Some(now);
                let due = Instant::now() + self.settings.required_heartbeat;
                self.timers.arm(slot, TimerKind::Heartbeat, due);
                None
            }
            Message::VoluntaryShutdown => Some(LifeEvent::AsksToStop),
            Message::FallBack => Some(LifeEvent::FallBackAsked),
            Message::ConfigRequest | Message::Broodlord => {
                debug!(vassal = %v.name, "{message:?}: not supported for file configs");
                None
            }
            Message::Unknown(byte) => {
                note_unknown_byte(v, byte);
                None
            }
        };
        if let Some(event) = event {
            self.handle(slot, event);
        }
    }

    /// Collect every exited child: vassal runtimes and strays alike.
    pub(super) fn reap(&mut self) {
        let mut stray_died = false;
        while let Some(exit) = process::reap_one() {
            if let Some(slot) = self.table.slot_of_pid(exit.pid) {
                self.on_vassal_exit(slot, exit);
            } else {
                stray_died = true;
            }
        }
        if stray_died {
            // A stray's children were reparented to us when it exited (before we heard of
            // it): the sweep made when its runtime died may have come too early for them.
            self.kill_strays();
        }
    }

    fn on_vassal_exit(&mut self, slot: usize, exit: Exit) {
        self.table.set_pid(slot, None, Some(exit.pid));
        let Some(v) = self.table.get_mut(slot) else {
            return;
        };
        let mut last_words = Vec::new();
        if let Some(mut process) = v.process.take() {
            if !process.link_closed {
                // A shutdown request (22) or fallback (40) sent just before the runtime went
                // still counts.
                let mut buf = [0u8; READ_BUDGET];
                let n = process.link.read(&mut buf).unwrap_or(0);
                last_words.extend_from_slice(&buf[..n]);
                let _ = self.epoll.delete(&process.link);
            }
            // Its link closes here: room for a vassal waiting for fds.
            drop(process);
            self.wake_fd_waiter();
        }
        for byte in last_words {
            match Message::from_byte(byte) {
                Message::VoluntaryShutdown => self.handle(slot, LifeEvent::AsksToStop),
                Message::FallBack => self.handle(slot, LifeEvent::FallBackAsked),
                _ => {}
            }
        }
        let Some(v) = self.table.get_mut(slot) else {
            return;
        };
        v.history.last_exit = Some(exit.status);
        v.history.ready = false;
        v.history.accepting = false;
        debug!(vassal = %v.name, status = exit.status, signal = ?exit.signal, "runtime exited");
        if exit.signal.is_some() {
            // A runtime killed by a signal could not take its payload's tree with it: whatever
            // it left was reparented to us, or is still in its cgroup.
            if let Some(cgroup) = &v.cgroup {
                cgroup.kill_all();
            }
            self.kill_strays();
        }
        self.on_demand.stopped(slot);
        // Its process is gone: nothing left to kill, no heartbeat to wait for.
        self.timers.cancel(slot, TimerKind::Kill);
        self.timers.cancel(slot, TimerKind::Heartbeat);
        if self.ragnarok.is_some() {
            self.stop_waves.exited();
        }
        let kind = match (exit.status, exit.signal) {
            (crate::protocol::EXIT_RESPAWN, None) => ExitKind::FreshJail,
            (0, None) => ExitKind::Clean,
            _ => ExitKind::Died,
        };
        self.handle(slot, LifeEvent::Exited(kind));
        // Loyalty is a run's: the next one earns its own (a death's backoff has read it).
        if let Some(v) = self.table.get_mut(slot) {
            v.history.loyal = false;
        }
    }

    /// A connection arrived on a waiting on-demand vassal's socket: stop watching it and
    /// start the vassal; the connection waits in the backlog until the payload accepts it.
    pub(super) fn on_connection(&mut self, slot: usize) {
        if let Some(v) = self.table.get_mut(slot) {
            OnDemand::disarm(v, &self.held, &self.epoll);
        }
        self.handle(slot, LifeEvent::Connection);
    }

    /// Stop the on-demand vassals whose sockets were idle for their whole `idle` time
    /// (sampled when due).
    pub(super) fn sample_idle(&mut self, now: Instant) {
        for slot in self.on_demand.idle_out(&mut self.table, now) {
            self.handle(slot, LifeEvent::IdleTimeout);
        }
    }

    /// Vassal timers that are due: respawns, kills after the curse tolerance, heartbeats.
    pub(super) fn fire_timers(&mut self, now: Instant) {
        while let Some((slot, kind)) = self.timers.pop_due(now) {
            let Some(v) = self.table.get_mut(slot) else {
                continue;
            };
            match kind {
                TimerKind::Respawn => self.handle(slot, LifeEvent::RespawnDue),
                TimerKind::Kill => {
                    if let Some(process) = &v.process {
                        warn!(vassal = %v.name, "did not stop within the curse tolerance: SIGKILL");
                        force_stop(process);
                    }
                }
                TimerKind::Heartbeat => self.handle(slot, LifeEvent::HeartbeatMissed),
            }
        }
    }
}

/// A vassal flooding its socket must not flood the log too: one line per
/// UNKNOWN_BYTES_QUIET, with the count since the last one.
fn note_unknown_byte(v: &mut Vassal, byte: u8) {
    v.unknown_bytes += 1;
    let now = Instant::now();
    if v.unknown_warned
        .is_none_or(|at| now.duration_since(at) >= UNKNOWN_BYTES_QUIET)
    {
        warn!(vassal = %v.name, count = v.unknown_bytes, "ignoring unknown protocol bytes (last: {byte})");
        v.unknown_warned = Some(now);
        v.unknown_bytes = 0;
    }
}

/// SIGKILL a runtime, and close its protocol socket: an unprivileged emperor may not signal a
/// tenant's runtime, but every runtime kills its payload's tree and exits when the socket
/// closes.
pub(super) fn force_stop(process: &super::table::Process) {
    let _ = process.running.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = process.link.shutdown(std::net::Shutdown::Both);
}
