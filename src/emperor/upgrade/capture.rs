//! The snapshot of a running emperor (see snapshot.rs): read from its parts, nothing changed.

use super::super::table::Vassal;
use super::super::Emperor;
use super::snapshot::{Helper, OnDemandSnapshot, RuntimeSnapshot, Snapshot, VassalSnapshot};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

impl Emperor {
    pub(super) fn snapshot(&self, old_binary: RawFd) -> Snapshot {
        let now = Instant::now();
        let clone_server = self
            .spawner
            .clone_server_handover()
            .map(|(pid, pidfd, socket)| Helper {
                pid: pid.as_raw(),
                pidfd,
                socket,
            });
        let reader = self
            .reader
            .borrow()
            .handover()
            .map(|(running, socket)| Helper {
                pid: running.pid.as_raw(),
                pidfd: running.pidfd.as_raw_fd(),
                socket: socket.as_raw_fd(),
            });
        Snapshot {
            format: super::snapshot::FORMAT,
            version: crate::cli::VERSION.to_string(),
            protocol: crate::protocol::PROTOCOL_VERSION,
            started: self.life.started,
            upgrades: self.life.upgrades,
            upgraded: self.life.upgraded,
            old_binary,
            binary_path: self.life.binary_path.clone(),
            argv: self
                .life
                .argv
                .iter()
                .map(|a| std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str()).to_vec())
                .collect(),
            open_files: self.spawner.open_files(),
            notify: self.notify.variables().to_vec(),
            stats: self.stats.as_ref().map(|s| s.listener_fd().as_raw_fd()),
            metrics: self.metrics.as_ref().map(|s| s.listener_fd().as_raw_fd()),
            control: self.control.as_ref().map(|c| c.listener_fd().as_raw_fd()),
            clone_server,
            reader,
            held: self.held.handover(),
            monitors: self.monitors.iter().map(|m| m.known()).collect(),
            blacklist: self
                .blacklist
                .iter()
                .map(|(id, p)| (id.clone(), p.clone()))
                .collect(),
            refused: self
                .refused
                .iter()
                .map(|(id, o)| (id.clone(), *o))
                .collect(),
            vassals: self
                .table
                .iter()
                .map(|(slot, v)| self.vassal_snapshot(slot, v, now))
                .collect(),
        }
    }

    fn vassal_snapshot(&self, slot: usize, v: &Vassal, now: Instant) -> VassalSnapshot {
        let runtime = v.process.as_ref().map(|p| RuntimeSnapshot {
            pid: p.running.pid.as_raw(),
            pidfd: None,
            link: p.link.as_raw_fd(),
            link_closed: p.link_closed,
            outbox: p.outbox.bytes(),
        });
        let timers = self
            .timers
            .armed_for(slot)
            .into_iter()
            .map(|(kind, at)| (kind, at.saturating_duration_since(now).as_millis() as u64))
            .collect();
        VassalSnapshot {
            id: v.id.clone(),
            name: v.name.clone(),
            path: v.path.clone(),
            monitor: v.monitor.clone(),
            owner: v.owner,
            config: v.config.as_deref().map(str::to_owned),
            last_mod: v.last_mod,
            state: v.state,
            runtime,
            history: v.history.clone(),
            cgroup: v.cgroup.as_ref().map(|c| c.dir.clone()),
            respawn_floor: v.respawn_floor.clone(),
            on_demand: v.on_demand.as_ref().map(|od| OnDemandSnapshot {
                socket: od.socket.clone(),
                idle_ms: od.idle.map(|d| d.as_millis() as u64),
            }),
            pool: v.pool.as_deref().cloned(),
            store_socket: v.store_socket.clone(),
            timers,
        }
    }
}
