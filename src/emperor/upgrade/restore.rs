//! The emperor made from a snapshot, in the process that took over: every fd the snapshot
//! names is adopted, every vassal entered in the table and watched again, its timers armed
//! again; monitors start from the view the old emperor had, so their first rescan reports
//! only what changed meanwhile.

use super::super::assemble;
use super::super::notify;
use super::super::parts::OnDemandVassal;
use super::super::spawn::{CloneServerSource, Spawner};
use super::super::table::{Process, Vassal};
use super::super::TOKEN_VASSAL;
use super::super::{Emperor, EmperorError, Settings};
use super::snapshot::{Helper, Snapshot, VassalSnapshot};
use super::Life;
use crate::config_reader::ConfigReader;
use jail::launch::Running;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::unistd::Pid;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant, SystemTime};
use tracing::{info, warn};

fn adopt(fd: i32) -> Result<OwnedFd, EmperorError> {
    Ok(jail::fd::adopt_inherited(fd)?)
}

fn adopt_helper(helper: &Helper) -> Result<(Running, OwnedFd), EmperorError> {
    let running = Running {
        pid: Pid::from_raw(helper.pid),
        pidfd: adopt(helper.pidfd)?,
    };
    Ok((running, adopt(helper.socket)?))
}

impl Emperor {
    /// The emperor the snapshot describes, in this process. `rollback`: why the upgrade
    /// that wrote it failed, when this is the old binary taking its snapshot back.
    pub(super) fn take_over(
        settings: Settings,
        snapshot: &Snapshot,
        rollback: Option<String>,
    ) -> Result<Self, EmperorError> {
        // systemd's variables, back where the notifier reads them.
        for (key, value) in &snapshot.notify {
            std::env::set_var(key, value);
        }
        let notify = notify::Notifier::from_env();
        let signals = super::super::emperor_signals()?;
        jail::process::become_subreaper()?;
        let mut monitors = assemble::open_monitors(&settings)?;
        for (monitor, known) in monitors.iter_mut().zip(&snapshot.monitors) {
            monitor.adopt_known(known.clone());
        }
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
            .map_err(|e| jail::SysError::new("epoll_create1", e))?;
        // The root emperor starts its own clone server (the old one ran the old binary's code
        // in its copies); the unprivileged emperor adopts the old one's below.
        let clone_server = match settings.identity {
            None => CloneServerSource::Start,
            Some(_) => CloneServerSource::HandedOver(None),
        };
        let mut spawner =
            Spawner::new(&settings, clone_server).map_err(|source| EmperorError::Io {
                what: "preparing spawns",
                source,
            })?;
        let open_files = jail::process::raise_open_files_limit()?;
        // Before anything is started: the capabilities the execve carried leave the ambient
        // and inheritable sets.
        if let Some(identity) = settings.identity {
            jail::reexec::settle_caps(identity.uid, identity.gid, identity.keep)?;
        }
        // Everything fallible without the snapshot's fds is behind us: from here on they are
        // adopted (a failure before this point leaves them for a rollback).
        if let Some(helper) = &snapshot.clone_server {
            let (running, socket) = adopt_helper(helper)?;
            spawner.adopt_clone_server(crate::clone_server::CloneServer::adopt(running, socket));
        }
        spawner.give_back_open_files_limit(snapshot.open_files.unwrap_or(open_files.was));
        let reader = match &snapshot.reader {
            Some(helper) => {
                let (running, socket) = adopt_helper(helper)?;
                Some((running, UnixStream::from(socket)))
            }
            None => None,
        };
        let reader = ConfigReader::adopt(
            spawner.binary(),
            settings.identity,
            spawner.runtime_env(),
            settings.reader_memory_mib,
            reader,
        );
        let handed = assemble::HandedListeners {
            stats: snapshot.stats,
            metrics: snapshot.metrics,
            control: snapshot.control,
        };
        let listeners = assemble::Listeners::open(&settings, handed, adopt)?;
        let now = SystemTime::now();
        let life = Life {
            started: snapshot.started,
            upgrades: snapshot.upgrades + u32::from(rollback.is_none()),
            upgraded: if rollback.is_none() {
                Some(now)
            } else {
                snapshot.upgraded
            },
            binary_path: snapshot.binary_path.clone(),
            argv: snapshot.argv(),
            last_failure: rollback.clone().map(|reason| (now, reason)),
        };
        let parts = assemble::Parts {
            notify,
            signals,
            monitors,
            epoll,
            listeners,
            spawner,
            reader,
            open_files: open_files.now,
            life,
        };
        let mut emperor = Emperor::assemble(settings, parts);
        emperor.blacklist.restore(snapshot.blacklist.clone());
        emperor.refused = snapshot.refused.iter().cloned().collect();
        if let Err(e) = emperor.restore(snapshot) {
            // Its fds stay open and its sockets' files in place for the rollback: nothing of
            // this half-made emperor is dropped.
            std::mem::forget(emperor);
            return Err(e);
        }
        match rollback {
            Some(reason) => warn!(
                "the upgrade failed ({reason}): this binary took its emperor back, every vassal untouched"
            ),
            None => info!(
                from = %snapshot.version,
                to = crate::cli::VERSION,
                vassals = emperor.table.len(),
                upgrades = emperor.life.upgrades,
                "took over from the previous binary"
            ),
        }
        Ok(emperor)
    }

    /// Watch what the emperor holds, and enter every held socket and vassal.
    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), EmperorError> {
        self.register_sources()?;
        for held in &snapshot.held {
            let fd = adopt(held.fd)?;
            self.held.adopt(held.clone(), fd);
        }
        for vassal in &snapshot.vassals {
            self.restore_vassal(vassal)?;
        }
        Ok(())
    }

    fn restore_vassal(&mut self, snap: &VassalSnapshot) -> Result<(), EmperorError> {
        let mut v = Vassal::new(
            snap.id.clone(),
            snap.name.clone(),
            snap.path.clone(),
            snap.monitor.clone(),
        );
        v.owner = snap.owner;
        v.config = snap.config.as_deref().map(std::sync::Arc::from);
        v.last_mod = snap.last_mod;
        v.state = snap.state;
        v.history = snap.history.clone();
        v.cgroup = snap
            .cgroup
            .clone()
            .map(|dir| jail::cgroup::VassalCgroup { dir });
        v.respawn_floor = snap.respawn_floor.clone();
        v.on_demand = snap.on_demand.as_ref().map(|od| {
            Box::new(OnDemandVassal::new(
                od.socket.clone(),
                od.idle_ms.map(Duration::from_millis),
            ))
        });
        v.pool = snap.pool.clone().map(Box::new);
        v.store_socket = snap.store_socket.clone();
        let slot = self.table.insert(v);
        if let Some(runtime) = &snap.runtime {
            if let Some(pidfd) = runtime.pidfd {
                drop(adopt(pidfd)?);
            }
            let running = super::super::table::Runtime {
                pid: Pid::from_raw(runtime.pid),
            };
            let link = UnixStream::from(adopt(runtime.link)?);
            let outbox = super::super::outbox::Outbox::from_bytes(&runtime.outbox);
            let mut flags = EpollFlags::EPOLLIN;
            if !outbox.is_empty() {
                flags |= EpollFlags::EPOLLOUT;
            }
            if !runtime.link_closed {
                let token = TOKEN_VASSAL + slot as u64;
                if let Err(e) = self.epoll.add(&link, EpollEvent::new(flags, token)) {
                    warn!(vassal = %snap.name, "epoll_ctl(ADD) for its link: {e}");
                }
            }
            self.table.set_pid(slot, Some(running.pid), None);
            let v = self.table.get_mut(slot).expect("inserted");
            v.process = Some(Process {
                running,
                link,
                link_closed: runtime.link_closed,
                watching_out: !outbox.is_empty(),
                outbox,
            });
            self.on_demand.watch_idle(slot, v, Instant::now());
        }
        let now = Instant::now();
        for &(kind, ms) in &snap.timers {
            self.timers.arm(slot, kind, now + Duration::from_millis(ms));
        }
        match snap.state {
            super::super::machine::State::Queued => self.enqueue(slot),
            super::super::machine::State::OnDemand => self.wait_for_connection(slot),
            _ => {}
        }
        Ok(())
    }
}
