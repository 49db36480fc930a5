//! A vassal's life as the emperor sees it: config events, spawns through the throttle, the
//! bytes it sends, its death and respawn or burial. Every handler touches one vassal (O(1)).

use super::fair_queue::tenant_of;
use super::table::{State, Vassal};
use super::timers::TimerKind;
use super::{Emperor, TOKEN_VASSAL};
use crate::monitor::{Event, EventKind};
use crate::protocol::{Command, Message};
use jail::process::{self, Exit};
use nix::sys::epoll::{EpollEvent, EpollFlags};
use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, error, info, warn};

/// Bytes read from one vassal per wake-up: a vassal flooding its socket gets its turn like
/// everyone else, and the loop goes on.
const READ_BUDGET: usize = 256;
/// Spawns per loop turn.
const SPAWN_BATCH: usize = 64;
/// A spawn that failed (cgroup, clone3; a want of fds has its own backoff) is not retried
/// sooner than this, even with throttling off: retrying at once would spin.
const SPAWN_RETRY: Duration = Duration::from_secs(1);
/// At most one log line per this long about a vassal's unknown protocol bytes.
const UNKNOWN_BYTES_QUIET: Duration = Duration::from_secs(10);
/// How long the emperor waits for killed strays before it gives up on them.
const STRAY_PATIENCE: Duration = Duration::from_secs(3);

impl Emperor {
    pub(super) fn on_monitor_events(&mut self, events: Vec<Event>) {
        for event in events {
            if self.ragnarok.is_some() {
                return;
            }
            match event.kind {
                EventKind::Add | EventKind::Change => self.config_seen(event),
                EventKind::Remove => self.config_removed(&event.id),
            }
        }
    }

    fn config_seen(&mut self, mut event: Event) {
        if self.settings.tyrant {
            match self.tyrant_check(&event) {
                Some(owner) => event.owner = Some(owner),
                None => return,
            }
        }
        let Some(slot) = self.table.slot_of(&event.id) else {
            let mut vassal = Vassal::new(event.id, event.name, event.path, event.monitor);
            vassal.owner = event.owner;
            vassal.config = event.config;
            vassal.store_socket = event.socket;
            vassal.last_mod = event.mtime;
            info!(vassal = %vassal.name, "new config");
            let slot = self.table.insert(vassal);
            self.warn_near_fd_capacity();
            self.start_or_wait(slot);
            return;
        };
        // Every event is news: the monitors report only differences (a file rewritten within
        // one tick of a coarse clock keeps its mtime and is still a change; churn.rs lost
        // such updates when this compared mtimes).
        let v = self.table.get_mut(slot).expect("indexed slot");
        v.last_mod = event.mtime;
        // A changed config's first lines are news, not repeats of the old one's.
        v.repeats.flush_all(&v.name);
        v.owner = event.owner;
        v.config = event.config;
        v.store_socket = event.socket;
        match v.state {
            State::Running | State::Starting => self.reload_changed(slot),
            State::Reloading => v.changed_while_reloading = true,
            State::Queued => {}
            State::Stopping => v.readd = true,
            State::Waiting | State::Idle | State::OnDemand | State::OverQuota => {
                info!(vassal = %v.name, "config changed: starting again");
                v.voluntary = false;
                self.timers.cancel(slot, TimerKind::Respawn);
                let id = v.id.clone();
                self.blacklist.forgive(&id);
                self.start_or_wait(slot);
            }
        }
    }

    /// A running vassal's config changed: a graceful reload, or a fresh start when the change
    /// moves its on-demand or pool socket.
    fn reload_changed(&mut self, slot: usize) {
        let wishes = self.read_held_wishes(slot);
        if self.on_demand_changed(slot, &wishes) || self.pool_changed(slot, &wishes) {
            let v = self.table.get_mut(slot).expect("indexed slot");
            info!(vassal = %v.name, "config changed its on-demand or pool socket: starting afresh");
            self.stop(slot);
            self.table.get_mut(slot).expect("indexed slot").readd = true;
        } else {
            self.reload(slot);
        }
    }

    /// Tyrant mode: the config's owner, or None when it is refused (and, if it was running
    /// as someone else, stopped).
    fn tyrant_check(&mut self, event: &Event) -> Option<(u32, u32)> {
        let min_id = self.settings.tyrant_min_id;
        let owner = match &event.config {
            Some(_) => super::identity::tyrant_given_owner(event.owner, min_id),
            None => super::identity::tyrant_owner(&event.path, min_id),
        };
        let owner = match owner {
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
        let v = self.table.get(slot).expect("indexed slot");
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
        let v = self.table.get_mut(slot).expect("indexed slot");
        match v.state {
            State::Queued | State::Waiting | State::Idle | State::OnDemand | State::OverQuota => {
                info!(vassal = %v.name, "config removed");
                self.bury(slot);
            }
            State::Starting | State::Running | State::Reloading => {
                info!(vassal = %v.name, "config removed: stopping");
                self.stop(slot);
            }
            State::Stopping => {
                v.readd = false;
                if let Some(od) = v.on_demand.as_mut() {
                    od.idle_stop = false;
                }
            }
        }
    }

    /// Forget a vassal, letting go of any socket held for it.
    fn bury(&mut self, slot: usize) {
        if let Some(v) = self.table.get_mut(slot) {
            v.repeats.flush_all(&v.name);
        }
        self.let_go(slot);
        self.fd_budget.forget(slot);
        self.timers.cancel_all(slot);
        let tenant = self
            .table
            .get(slot)
            .map(|v| tenant_of(v, self.settings.tyrant));
        self.table.remove(slot);
        if let Some(tenant) = tenant {
            self.admit_one_over_quota(&tenant);
        }
    }

    pub(super) fn enqueue(&mut self, slot: usize) {
        if let Some(v) = self.table.get_mut(slot) {
            v.state = State::Queued;
            let tenant = tenant_of(v, self.settings.tyrant);
            self.queue.push(tenant, slot);
        }
    }

    /// Spawn queued vassals, tenants taking turns, as fast as the spawn budget allows.
    pub(super) fn process_queue(&mut self, now: Instant) {
        // A bounded batch per loop turn: a long queue (the initial scan of thousands of
        // configs, or spawns failing at once) never keeps signals, stats and stops waiting.
        let mut spawned = 0;
        while spawned < SPAWN_BATCH {
            if !self.warming_up && self.spawn_budget.next_allowed(now) > now {
                return;
            }
            let Some(slot) = self.queue.pop() else {
                break;
            };
            // An entry left behind by a vassal that was stopped or removed meanwhile.
            if self.table.get(slot).map(|v| v.state) != Some(State::Queued) {
                continue;
            }
            self.spawn(slot, now);
            spawned += 1;
        }
        if self.queue.is_empty() {
            self.warming_up = false;
        }
    }

    fn spawn(&mut self, slot: usize, now: Instant) {
        let extra = super::spawn::RuntimeExtra {
            fall_back: self.table.get(slot).expect("queued slot").fall_back,
            sets: self.store_sets(slot),
        };
        let (path, owner, text) = {
            let v = self.table.get(slot).expect("queued slot");
            // Outside tyrant mode a vassal is the emperor's: its user namespace maps the
            // emperor's own ids (all an emperor run by an ordinary user may map).
            let owner = v.owner.filter(|_| self.settings.tyrant);
            (v.path.clone(), owner, v.config.clone())
        };
        if !self.room_for_a_runtime() {
            self.wait_for_fds(slot);
            return;
        }
        if !self.warming_up {
            self.spawn_budget.take(now);
        }
        let cgroup = match self.vassal_cgroup(slot) {
            Ok(cgroup) => cgroup,
            Err(e) => {
                let v = self.table.get(slot).expect("queued slot");
                error!(vassal = %v.name, "cannot create its cgroup: {e}");
                self.schedule_respawn_after(slot, false, SPAWN_RETRY);
                return;
            }
        };
        let held = self.held_fd(slot);
        match self
            .spawner
            .spawn(&path, owner, cgroup.as_ref(), held, &extra, text.as_deref())
        {
            Ok(process) => {
                let token = TOKEN_VASSAL + slot as u64;
                if let Err(e) = self
                    .epoll
                    .add(&process.link, EpollEvent::new(EpollFlags::EPOLLIN, token))
                {
                    error!("epoll_ctl(ADD) for a vassal link: {e}");
                }
                let pid = process.running.pid;
                self.table.set_pid(slot, Some(pid), None);
                let v = self.table.get_mut(slot).expect("queued slot");
                v.spawn_started = Some(now);
                let wall = SystemTime::now();
                v.born.get_or_insert(wall);
                v.first_run.get_or_insert(wall);
                v.last_run = Some(wall);
                v.process = Some(process);
                v.state = State::Starting;
                if let Some(repeated) = v.repeats.admit(&v.name, "spawned", String::new(), now) {
                    info!(vassal = %v.name, pid = pid.as_raw(), "spawned{repeated}");
                }
                self.got_fds(slot);
                self.watch_idle(slot);
            }
            Err(e) if e.out_of_fds() => self.wait_for_fds(slot),
            Err(e) => {
                let v = self.table.get_mut(slot).expect("queued slot");
                error!(vassal = %v.name, "cannot spawn: {e}");
                self.schedule_respawn_after(slot, false, SPAWN_RETRY);
            }
        }
    }

    /// The vassal's cgroup (created on its first spawn), when the emperor has a cgroup root.
    fn vassal_cgroup(
        &mut self,
        slot: usize,
    ) -> Result<Option<jail::cgroup::VassalCgroup>, jail::SysError> {
        let Some(root) = &self.settings.cgroup_root else {
            return Ok(None);
        };
        let tyrant = self.settings.tyrant;
        let v = self.table.get_mut(slot).expect("slot");
        if v.cgroup.is_none() {
            let slice = jail::cgroup::prepare_slice(
                root,
                &tenant_of(v, tyrant).cgroup_name(),
                &self.settings.tenant_limits,
            )?;
            let name = jail::cgroup::sanitize(&v.id);
            // Only root can hand the payload's leaf to its owner; an unprivileged emperor
            // keeps runtime and payload under the same ceilings, without the leaf.
            let owner = if nix::unistd::geteuid().is_root() {
                v.owner
            } else {
                None
            };
            let ceilings = &self.settings.cgroup_ceilings;
            v.cgroup = Some(jail::cgroup::VassalCgroup::create(
                &slice, &name, ceilings, owner,
            )?);
        }
        Ok(v.cgroup.clone())
    }

    /// After a death (or failed spawn): respawn at once if it was loyal, else after its
    /// blacklist throttle.
    fn schedule_respawn(&mut self, slot: usize, loyal: bool) {
        self.schedule_respawn_after(slot, loyal, Duration::ZERO);
    }

    /// As [`Self::schedule_respawn`], waiting at least `at_least`.
    fn schedule_respawn_after(&mut self, slot: usize, loyal: bool, at_least: Duration) {
        let v = self.table.get_mut(slot).expect("slot");
        let delay = if loyal {
            Duration::ZERO
        } else {
            self.blacklist.punish(&v.id, SystemTime::now(), at_least)
        }
        .max(at_least);
        if delay.is_zero() {
            self.enqueue(slot);
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
        let at = Instant::now() + delay;
        v.state = State::Waiting;
        self.timers.arm(slot, TimerKind::Respawn, at);
    }

    pub(super) fn reload(&mut self, slot: usize) {
        let Some(v) = self.table.get_mut(slot) else {
            return;
        };
        if v.process.is_none() {
            return;
        }
        info!(vassal = %v.name, "reloading");
        v.state = State::Reloading;
        // A reload tries the watched config again, not the fallback it ended on.
        v.fall_back = 0;
        v.ready = false;
        v.accepting = false;
        v.respawns += 1;
        v.last_run = Some(SystemTime::now());
        // A config from a store travels with the reload byte, as a fresh sealed memfd.
        self.send(slot, Command::Reload);
    }

    pub(super) fn stop(&mut self, slot: usize) {
        let Some(v) = self.table.get_mut(slot) else {
            return;
        };
        v.state = State::Stopping;
        let at = Instant::now() + self.settings.curse_tolerance;
        self.timers.arm(slot, TimerKind::Kill, at);
        self.send(slot, Command::Stop);
    }

    pub(super) fn reload_all(&mut self) {
        info!("SIGHUP: reloading every vassal");
        for slot in self.table.slots() {
            if matches!(
                self.table.get(slot).map(|v| v.state),
                Some(State::Running | State::Starting)
            ) {
                self.reload(slot);
            }
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
                self.enqueue(slot);
            }
        }
    }

    /// Its link is readable or writable: write what its outbox holds, then read what the
    /// vassal sent, at most READ_BUDGET bytes per wake-up.
    pub(super) fn on_vassal_link(&mut self, slot: usize) {
        if self
            .table
            .get(slot)
            .and_then(|v| v.process.as_ref())
            .is_some_and(|p| !p.outbox.is_empty())
        {
            self.flush_link(slot);
        }
        let mut buf = [0u8; READ_BUDGET];
        let Some(process) = self.table.get_mut(slot).and_then(|v| v.process.as_mut()) else {
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
        let required = self.settings.required_heartbeat;
        let v = self.table.get_mut(slot).expect("slot with a link");
        let now = SystemTime::now();
        match message {
            Message::Spawned => {
                // A new payload: not accepting until it says so (or its check passes).
                v.starts += 1;
                v.accepting = false;
                v.ready = true;
                v.last_ready = Some(now);
                if let Some(started) = v.spawn_started.take() {
                    self.spawn_latency.observe(started.elapsed());
                }
                let reloaded = v.state == State::Reloading;
                if matches!(v.state, State::Starting | State::Reloading) {
                    v.state = State::Running;
                }
                if let Some(repeated) =
                    v.repeats
                        .admit(&v.name, "running", String::new(), Instant::now())
                {
                    info!(vassal = %v.name, "running{repeated}");
                }
                if reloaded && std::mem::take(&mut v.changed_while_reloading) {
                    info!(vassal = %v.name, "its config changed during the reload: reloading again");
                    self.reload_changed(slot);
                }
            }
            Message::Ready => {
                v.accepting = true;
                v.last_accepting = Some(now);
            }
            Message::Loyal => {
                if !v.loyal {
                    info!(vassal = %v.name, "loyal");
                }
                v.loyal = true;
                v.last_loyal = Some(now);
                let id = v.id.clone();
                self.blacklist.forgive(&id);
            }
            Message::Heartbeat => {
                v.last_heartbeat = Some(now);
                let due = Instant::now() + required;
                self.timers.arm(slot, TimerKind::Heartbeat, due);
            }
            Message::VoluntaryShutdown => {
                info!(vassal = %v.name, "asks to shut down");
                v.voluntary = true;
                self.send(slot, Command::Stop);
            }
            Message::FallBack => v.fall_back_asked = true,
            Message::ConfigRequest | Message::Broodlord => {
                debug!(vassal = %v.name, "{message:?}: not supported for file configs");
            }
            Message::Unknown(byte) => {
                // A vassal flooding its socket must not flood the log too: one line per
                // UNKNOWN_BYTES_QUIET, with the count since the last one.
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
        let v = self.table.get_mut(slot).expect("slot of a known pid");
        if let Some(mut process) = v.process.take() {
            if !process.link_closed {
                // A shutdown request (22) sent just before the runtime went still counts.
                let mut buf = [0u8; READ_BUDGET];
                let n = process.link.read(&mut buf).unwrap_or(0);
                if buf[..n].contains(&Message::VoluntaryShutdown.byte()) {
                    v.voluntary = true;
                }
                if buf[..n].contains(&Message::FallBack.byte()) {
                    v.fall_back_asked = true;
                }
                let _ = self.epoll.delete(&process.link);
            }
            // Its link and pidfd close here: room for a vassal waiting for fds.
            drop(process);
            self.wake_fd_waiter();
        }
        let v = self.table.get_mut(slot).expect("slot of a known pid");
        v.last_exit = Some(exit.status);
        // Whatever starts next reads the config as it is then.
        v.changed_while_reloading = false;
        v.ready = false;
        v.accepting = false;
        let loyal = std::mem::take(&mut v.loyal);
        let name = v.name.clone();
        if exit.signal.is_some() {
            // A runtime killed by a signal could not take its payload's tree with it: whatever
            // it left was reparented to us, or is still in its cgroup.
            if let Some(cgroup) = &v.cgroup {
                cgroup.kill_all();
            }
            self.kill_strays();
        }
        self.idle.slots_remove(slot);
        // Its process is gone: nothing left to kill, no heartbeat to wait for.
        self.timers.cancel(slot, TimerKind::Kill);
        self.timers.cancel(slot, TimerKind::Heartbeat);
        let v = self.table.get_mut(slot).expect("slot");
        if self.ragnarok.is_some() {
            info!(vassal = %name, status = exit.status, "stopped");
            self.stop_waves.exited();
            self.bury(slot);
            return;
        }
        // An on-demand vassal that ends well (stopped for idleness, exited 0 or asked to stop)
        // waits for its next connection; one that crashed is respawned like any other.
        let on_demand_rests = v.on_demand.as_ref().is_some_and(|od| {
            od.idle_stop
                || (v.state != State::Stopping
                    && (v.voluntary || (exit.status == 0 && exit.signal.is_none())))
        });
        match v.state {
            State::Stopping if v.readd => {
                v.readd = false;
                info!(vassal = %name, "config is back: starting again");
                self.start_or_wait(slot);
            }
            _ if on_demand_rests => {
                info!(vassal = %name, status = exit.status, "stopped: waiting for the next connection");
                self.wait_for_connection(slot);
            }
            State::Stopping => {
                info!(vassal = %name, status = exit.status, "stopped and removed");
                self.bury(slot);
            }
            // Only the runtime's own word means "a new jail": any other exit during a reload
            // is a death like any other, throttled and counted once.
            State::Reloading
                if exit.status == crate::protocol::EXIT_RESPAWN && exit.signal.is_none() =>
            {
                info!(vassal = %name, status = exit.status, "restarting afresh (its reload needs a new jail)");
                v.respawns += 1;
                self.schedule_respawn(slot, true);
            }
            _ if v.voluntary => {
                info!(vassal = %name, "stopped on its own request");
                v.state = State::Idle;
            }
            _ if std::mem::take(&mut v.fall_back_asked) => {
                // Not a crash to throttle: uWSGI would have exec'd the fallback at once.
                v.fall_back += 1;
                info!(vassal = %name, levels = v.fall_back, "its payload failed to start: starting afresh on its fallback-config");
                v.respawns += 1;
                self.enqueue(slot);
            }
            _ => {
                v.fall_back = 0;
                let text = format!("status={} loyal={loyal}", exit.status);
                if let Some(repeated) = v.repeats.admit(&name, "died", text, Instant::now()) {
                    warn!(vassal = %name, status = exit.status, loyal, "died{repeated}");
                }
                v.respawns += 1;
                let ran_for = v
                    .last_run
                    .and_then(|at| at.elapsed().ok())
                    .unwrap_or_default();
                let floor = v
                    .respawn_floor
                    .after_death(ran_for, loyal, self.settings.max_throttle);
                self.schedule_respawn_after(slot, loyal, floor);
            }
        }
    }

    /// SIGKILL every child of ours that is not a vassal runtime, with its whole tree.
    pub(super) fn kill_strays(&mut self) {
        let mut known = self.table.runtime_pids();
        known.extend(self.spawner.clone_server_pid());
        known.extend(self.reader.borrow().pid());
        let me = nix::unistd::getpid();
        for child in process::children_of(me)
            .into_iter()
            .filter(|c| !known.contains(c))
        {
            if process::is_alive(child) {
                warn!(
                    pid = child.as_raw(),
                    "killing a stray process left by a dead vassal"
                );
                for _ in 0..50 {
                    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                    if process::kill_tree_once(child) == 0 {
                        break;
                    }
                }
            }
        }
    }

    /// Vassal timers that are due: respawns, kills after the curse tolerance, heartbeats.
    pub(super) fn fire_timers(&mut self, now: Instant) {
        while let Some((slot, kind)) = self.timers.pop_due(now) {
            let Some(v) = self.table.get_mut(slot) else {
                continue;
            };
            match kind {
                TimerKind::Respawn if v.state == State::Waiting => self.enqueue(slot),
                TimerKind::Kill => {
                    if let Some(process) = &v.process {
                        warn!(vassal = %v.name, "did not stop within the curse tolerance: SIGKILL");
                        force_stop(process);
                    }
                }
                TimerKind::Heartbeat if v.state == State::Running => {
                    warn!(vassal = %v.name, "sent no heartbeat in time: reloading");
                    self.reload(slot);
                }
                TimerKind::Respawn | TimerKind::Heartbeat => {}
            }
        }
    }

    /// SIGINT/SIGTERM/SIGQUIT: stop every vassal gracefully, kill what remains at the end.
    pub(super) fn begin_ragnarok(&mut self, signal: jail::signals::Sig) {
        if self.ragnarok.is_some() {
            info!("{signal} again: already stopping");
            return;
        }
        info!("{signal}: stopping every vassal");
        let now = Instant::now();
        self.ragnarok = Some(now + self.settings.curse_tolerance);
        self.queue.clear();
        let mut running = Vec::new();
        for slot in self.table.slots() {
            if self.table.get(slot).is_some_and(|v| v.process.is_some()) {
                running.push(slot);
            } else {
                self.bury(slot);
            }
        }
        self.stop_waves = super::stop_waves::StopWaves::new(running);
        self.tell_stop_wave(now);
    }

    /// Tell the next wave of vassals to stop, when it is due.
    pub(super) fn tell_stop_wave(&mut self, now: Instant) {
        for slot in self.stop_waves.due(now) {
            if self.table.get(slot).is_some_and(|v| v.process.is_some()) {
                self.send(slot, Command::Stop);
                self.table.get_mut(slot).expect("slot").state = State::Stopping;
            } else {
                // Gone while it waited for its wave: nothing of it is under way.
                self.stop_waves.exited();
            }
        }
    }

    /// Patience is over: SIGKILL every runtime still there.
    pub(super) fn brutal_end(&mut self) {
        for (_, v) in self.table.iter() {
            if let Some(process) = &v.process {
                warn!(vassal = %v.name, "still running at the end: SIGKILL");
                force_stop(process);
            }
        }
    }

    /// Before exiting: no child of ours may outlive us.
    pub(super) fn bury_strays(&mut self) {
        let me = nix::unistd::getpid();
        let deadline = Instant::now() + STRAY_PATIENCE;
        while Instant::now() < deadline {
            process::reap_any();
            let children = process::children_of(me);
            if children.is_empty() {
                return;
            }
            for child in children {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                process::kill_tree_once(child);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        warn!("some processes did not die before the emperor exited");
    }
}

/// SIGKILL a runtime, and close its protocol socket: an unprivileged emperor may not signal a
/// tenant's runtime, but every runtime kills its payload's tree and exits when the socket
/// closes.
fn force_stop(process: &super::table::Process) {
    let _ = process.running.signal(libc::SIGKILL);
    let _ = process.link.shutdown(std::net::Shutdown::Both);
}
