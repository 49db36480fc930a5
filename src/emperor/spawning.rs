//! Spawning queued vassals: tenants take turns in the fair queue, as fast as the spawn budget
//! allows, each spawn in its own cgroup below its tenant's slice. What a spawn led to goes
//! back to the lifecycle table as an event.

use super::fair_queue::tenant_of;
use super::machine::{Event, State};
use super::{Emperor, TOKEN_VASSAL};
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
        let v = self.table.get(slot).expect("queued slot");
        let extra = super::spawn::RuntimeExtra {
            fall_back: v.history.fall_back,
            name: v.name.clone(),
            tenant: tenant_of(v, self.settings.tyrant).to_string(),
            sets: super::wishes::store_sets(v),
        };
        let (path, owner, text) = {
            let v = self.table.get(slot).expect("queued slot");
            // Outside tyrant mode a vassal is the emperor's: its user namespace maps the
            // emperor's own ids (all an emperor run by an ordinary user may map).
            let owner = v.owner.filter(|_| self.settings.tyrant);
            (v.path.clone(), owner, v.config.clone())
        };
        if !self.room_for_a_runtime() {
            self.handle(slot, Event::NoFds);
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
                self.handle(slot, Event::SpawnFailed);
                return;
            }
        };
        let held = self.table.get(slot).and_then(|v| self.held.fd_for(v));
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
                v.history.born.get_or_insert(wall);
                v.history.first_run.get_or_insert(wall);
                v.history.last_run = Some(wall);
                v.process = Some(process);
                if let Some(repeated) = v.repeats.admit(&v.name, "spawned", String::new(), now) {
                    info!(vassal = %v.name, pid = pid.as_raw(), "spawned{repeated}");
                }
                self.handle(slot, Event::Spawned);
                self.got_fds(slot);
                if let Some(v) = self.table.get_mut(slot) {
                    self.on_demand.watch_idle(slot, v, Instant::now());
                }
            }
            Err(e) if e.out_of_fds() => self.handle(slot, Event::NoFds),
            Err(e) => {
                let v = self.table.get(slot).expect("queued slot");
                error!(vassal = %v.name, "cannot spawn: {e}");
                self.handle(slot, Event::SpawnFailed);
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
}
