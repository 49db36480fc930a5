//! Spawning queued vassals: tenants take turns in the fair queue, as fast as the spawn budget
//! allows, each spawn in its own cgroup below its tenant's slice. What a spawn led to goes
//! back to the lifecycle table as an event.

use super::fair_queue::tenant_of;
use super::held::HeldSockets;
use super::machine::{Event, State};
use super::spawn::{Begun, RuntimeExtra, SentSpawn, Spawner};
use super::table::{Process, Vassal};
use super::wishes::store_sets;
use super::{Emperor, Settings, TOKEN_VASSAL};
use nix::sys::epoll::{EpollEvent, EpollFlags};
use std::time::{Instant, SystemTime};
use tracing::{error, info};

/// Spawns per loop turn.
const SPAWN_BATCH: usize = 64;

impl Emperor {
    /// Spawn queued vassals, tenants taking turns, as fast as the spawn budget allows.
    pub(super) fn process_queue(&mut self, now: Instant) {
        // A bounded batch per loop turn: a long queue (the initial scan of thousands of
        // configs, or spawns failing at once) never keeps signals, stats and stops waiting.
        let mut spawned = 0;
        // Starts sent to the clone server, answered after the batch (see `Spawner::begin`).
        let mut sent: Vec<(usize, SentSpawn)> = Vec::new();
        while spawned < SPAWN_BATCH {
            if !self.warming_up && self.spawn_budget.next_allowed(now) > now {
                break;
            }
            let Some(slot) = self.queue.pop() else {
                break;
            };
            // An entry left behind by a vassal that was stopped or removed meanwhile, or one
            // whose start is on its way already.
            if self.table.get(slot).map(|v| v.state) != Some(State::Queued)
                || sent.iter().any(|&(s, _)| s == slot)
            {
                continue;
            }
            if let Some(waiting) = self.begin_spawn(slot, now, sent.len()) {
                sent.push((slot, waiting));
            }
            spawned += 1;
        }
        for (slot, waiting) in sent {
            match self.spawner.finish(waiting) {
                Ok(process) => self.spawned(slot, process, now),
                Err(e) => {
                    if let Some(v) = self.table.get(slot) {
                        error!(vassal = %v.name, "cannot spawn: {e}");
                    }
                    self.handle(slot, Event::SpawnFailed);
                }
            }
        }
        if self.queue.is_empty() && self.scan_left == 0 {
            self.warming_up = false;
        }
    }

    /// Begin the spawn of one queued vassal (when one more runtime fits in the emperor's fds,
    /// `in_flight` being the starts sent and not yet answered): what it led to goes to the
    /// table, unless its start went to the clone server, whose answer is returned for.
    fn begin_spawn(&mut self, slot: usize, now: Instant, in_flight: usize) -> Option<SentSpawn> {
        let (running, held) = (self.table.running_count() + in_flight, self.held.count());
        if !self
            .fd_budget
            .room_for_one_more(running as u64, held as u64)
        {
            self.handle(slot, Event::NoFds);
            return None;
        }
        if !self.warming_up {
            self.spawn_budget.take(now);
        }
        let v = self.table.get_mut(slot)?;
        match start_runtime(v, &self.settings, &self.spawner, &self.held) {
            Ok(Begun::Started(process)) => self.spawned(slot, process, now),
            Ok(Begun::Sent(waiting)) => return Some(waiting),
            Err(failed) => self.handle(slot, failed),
        }
        None
    }

    /// A runtime started for `slot`: watched, recorded, and told to the table.
    fn spawned(&mut self, slot: usize, process: Process, now: Instant) {
        let Some(v) = self.table.get_mut(slot) else {
            return;
        };
        let token = TOKEN_VASSAL + slot as u64;
        if let Err(e) = self
            .epoll
            .add(&process.link, EpollEvent::new(EpollFlags::EPOLLIN, token))
        {
            error!("epoll_ctl(ADD) for a vassal link: {e}");
        }
        let pid = process.running.pid;
        record_spawn(v, process, now);
        self.table.set_pid(slot, Some(pid), None);
        self.handle(slot, Event::Spawned);
        if let Some(v) = self.table.get_mut(slot) {
            self.fd_budget.started(slot, v);
            self.on_demand.watch_idle(slot, v, Instant::now());
        }
    }
}

/// Start the vassal's runtime in its cgroup, with its held socket (on demand, pool). Err:
/// the event a failed start is for the table (a want of fds, or a failure, logged).
fn start_runtime(
    v: &mut Vassal,
    settings: &Settings,
    spawner: &Spawner,
    held: &HeldSockets,
) -> Result<Begun, Event> {
    let extra = RuntimeExtra {
        fall_back: v.history.fall_back,
        name: v.name.clone(),
        tenant: tenant_of(v, settings.tyrant).to_string(),
        sets: store_sets(v),
    };
    // Outside tyrant mode a vassal is the emperor's: its user namespace maps the emperor's
    // own ids (all an emperor run by an ordinary user may map).
    let owner = v.owner.filter(|_| settings.tyrant);
    let cgroup = vassal_cgroup(v, settings).map_err(|e| {
        error!(vassal = %v.name, "cannot create its cgroup: {e}");
        Event::SpawnFailed
    })?;
    let held = held.fd_for(v);
    let text = v.config.as_deref();
    spawner
        .begin(&v.path, owner, cgroup.as_ref(), held, &extra, text)
        .map_err(|e| {
            if e.out_of_fds() {
                return Event::NoFds;
            }
            error!(vassal = %v.name, "cannot spawn: {e}");
            Event::SpawnFailed
        })
}

/// A runtime started: its process, its history's times, and a log line (repeats collapsed).
fn record_spawn(v: &mut Vassal, process: Process, now: Instant) {
    let pid = process.running.pid;
    v.spawn_started = Some(now);
    let wall = SystemTime::now();
    v.history.born.get_or_insert(wall);
    v.history.first_run.get_or_insert(wall);
    v.history.last_run = Some(wall);
    v.process = Some(process);
    if let Some(repeated) = v.repeats.admit(&v.name, "spawned", String::new(), now) {
        info!(vassal = %v.name, pid = pid.as_raw(), "spawned{repeated}");
    }
}

/// The vassal's cgroup (created on its first spawn), when the emperor has a cgroup root.
fn vassal_cgroup(
    v: &mut Vassal,
    settings: &Settings,
) -> Result<Option<jail::cgroup::VassalCgroup>, jail::SysError> {
    let Some(root) = &settings.cgroup_root else {
        return Ok(None);
    };
    if v.cgroup.is_none() {
        let slice = jail::cgroup::prepare_slice(
            root,
            &tenant_of(v, settings.tyrant).cgroup_name(),
            &settings.tenant_limits,
        )?;
        let name = jail::cgroup::sanitize(&v.id);
        // Only root can hand the payload's leaf to its owner; an unprivileged emperor keeps
        // runtime and payload under the same ceilings, without the leaf.
        let owner = if nix::unistd::geteuid().is_root() {
            v.owner
        } else {
            None
        };
        let ceilings = &settings.cgroup_ceilings;
        v.cgroup = Some(jail::cgroup::VassalCgroup::create(
            &slice, &name, ceilings, owner,
        )?);
    }
    Ok(v.cgroup.clone())
}
