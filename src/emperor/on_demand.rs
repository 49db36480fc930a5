//! On-demand vassals (socket activation): a vassal whose config names an `on-demand-socket`
//! is not started with its config. The emperor binds and holds that socket, waits for a
//! connection on it in its loop, and only then spawns the vassal, whose runtime hands the held
//! socket to the payload (connections wait in the backlog meanwhile, so none is refused). With
//! `idle = S`, the emperor samples the socket's use about once a second and stops the vassal
//! after S seconds without a connection; the socket stays held and the next connection starts
//! the vassal again.

use super::held::HeldError;
use super::machine::{Event, Park};
use super::parts::OnDemandVassal;
use super::{Emperor, TOKEN_ON_DEMAND};
use crate::config;
use crate::config_reader::{ReadReply, ReadRequest};
use crate::policy::payload;
use crate::policy::{self, JailContext, SocketSpec};
use nix::sys::epoll::{EpollEvent, EpollFlags};
use std::os::fd::BorrowedFd;
use std::time::Instant;
use tracing::{debug, error, info, warn};

/// The options of a config the emperor itself acts on: all the config reader sends back
/// (its held sockets, and whether it names a binary patch or is a uWSGI application).
const HELD_SOCKET_OPTIONS: [&str; 7] = [
    policy::ON_DEMAND_OPTION,
    policy::IDLE_OPTION,
    policy::POOL_OPTION,
    payload::PAYLOAD_OPTIONS[0],
    payload::PAYLOAD_OPTIONS[1],
    payload::PAYLOAD_OPTIONS[2],
    payload::PAYLOAD_OPTIONS[3],
];

/// What a config asks of the emperor's held sockets (each an error naming the file and
/// option when refused).
pub(super) struct HeldWishes {
    pub on_demand: Result<Option<policy::OnDemand>, String>,
    pub pool: Result<Option<policy::SocketSpec>, String>,
    /// A uWSGI application with no uWSGI binary to run it: why it cannot start.
    pub missing_uwsgi: Option<String>,
}

impl Emperor {
    /// The held sockets a start needs: an on-demand vassal gets its socket held (it then
    /// waits for a connection), a pool member joins its pool's socket, any other is queued
    /// for a spawn. A refused setting (or a uWSGI application with no uWSGI binary) leaves
    /// the vassal idle, with an error naming the file and option, until its config changes.
    pub(super) fn prepare_held_sockets(&mut self, slot: usize) -> Park {
        let wishes = self.read_held_wishes(slot);
        if let Some(message) = &wishes.missing_uwsgi {
            // Not a respawn loop: it waits, idle, until its config or the emperor changes.
            return self.refuse_start(slot, message);
        }
        let wanted = match wishes.on_demand {
            Ok(wanted) => wanted,
            Err(message) => return self.refuse_start(slot, &message),
        };
        let Some(wanted) = wanted else {
            self.let_go(slot);
            if let Err(message) = wishes.pool.and_then(|pool| self.join_pool(slot, pool)) {
                return self.refuse_start(slot, &message);
            }
            return Park::Queue;
        };
        let identity = self.held_identity(slot);
        let v = self.table.get_mut(slot).expect("slot");
        let same = v
            .on_demand
            .as_ref()
            .is_some_and(|od| od.socket.address == wanted.socket.address);
        if !same {
            self.let_go(slot);
            if let Err(e) = self.hold(&wanted.socket, identity) {
                return self.refuse_start(slot, &e.to_string());
            }
        }
        let v = self.table.get_mut(slot).expect("slot");
        match &mut v.on_demand {
            Some(od) => {
                od.idle = wanted.idle;
                od.socket = wanted.socket;
            }
            None => v.on_demand = Some(OnDemandVassal::new(wanted.socket, wanted.idle)),
        }
        Park::Hold
    }

    fn hold(&mut self, socket: &SocketSpec, identity: Option<(u32, u32)>) -> Result<(), HeldError> {
        // One held socket wakes one vassal (until pools share one).
        if self.held.is_held(&socket.address) {
            return Err(HeldError::InUse {
                place: socket.place.clone(),
                option: socket.option.clone(),
                address: socket.value.clone(),
            });
        }
        self.held.acquire(socket, identity)
    }

    fn refuse_start(&mut self, slot: usize, message: &str) -> Park {
        self.let_go(slot);
        let v = self.table.get(slot).expect("slot");
        error!(vassal = %v.name, "{message}: not started");
        Park::Refused
    }

    /// Tyrant mode: the socket is bound with its tenant's filesystem identity.
    pub(super) fn held_identity(&self, slot: usize) -> Option<(u32, u32)> {
        let v = self.table.get(slot).expect("slot");
        if self.settings.tyrant {
            v.owner
        } else {
            None
        }
    }

    /// The config's on-demand and pool sockets, from one load of it per event, read as its
    /// runtime will read it: with the emperor's `vassal-set`s and `vassals-include`s, the
    /// runtime's clean environment, and in tyrant mode the tenant's filesystem identity (so
    /// `@(file)` and includes read only what the tenant may). A config that does not load
    /// asks for neither: its runtime reports why.
    pub(super) fn read_held_wishes(&self, slot: usize) -> HeldWishes {
        let config = match self.load_as_runtime(slot) {
            Ok(Some(config)) => config,
            Ok(None) => {
                return HeldWishes {
                    on_demand: Ok(None),
                    pool: Ok(None),
                    missing_uwsgi: None,
                }
            }
            Err(message) => {
                return HeldWishes {
                    on_demand: Err(message.clone()),
                    pool: Err(message),
                    missing_uwsgi: None,
                }
            }
        };
        let missing_uwsgi = match self.spawner.uwsgi_binary() {
            Err(e) if !payload::has_binary_patch(&config) => Some(format!(
                "{}: a uWSGI application (it names no binary patch): {e}",
                config.path.display()
            )),
            _ => None,
        };
        let v = self.table.get(slot).expect("slot");
        let context = self.held_context();
        let on_demand = policy::on_demand(&config, &context).map_err(|e| e.to_string());
        if matches!(on_demand, Ok(None)) {
            if let Some(entry) = config.get(policy::IDLE_OPTION) {
                warn!(vassal = %v.name, "{}: option \"idle\": ignored without on-demand-socket", entry.origin);
            }
        }
        let pool = policy::pool_socket(&config, &context).map_err(|e| e.to_string());
        HeldWishes {
            on_demand,
            pool,
            missing_uwsgi,
        }
    }

    /// What the emperor judges a held socket's address with (the tyrant port rule).
    pub(super) fn held_context(&self) -> JailContext {
        JailContext {
            tyrant: self.settings.tyrant,
            tyrant_ports: self.settings.tyrant_ports.clone(),
            ..JailContext::default()
        }
    }

    /// The options of the vassal's config that the emperor acts on (its held sockets), as
    /// its runtime will load it (see [`Self::read_held_wishes`]), loaded by the config reader,
    /// never here; None when it does not load (its runtime reports why). Err: the config
    /// could not be judged (its worker died, its owner's identity could not be taken): the
    /// vassal is refused with that reason.
    pub(super) fn load_as_runtime(&self, slot: usize) -> Result<Option<config::Config>, String> {
        let v = self.table.get(slot).expect("slot");
        let mut sets = self.settings.vassal_sets.clone();
        sets.extend(self.store_sets(slot));
        let request = ReadRequest {
            path: v.path.clone(),
            text: v.config.as_deref().map(str::to_owned),
            sets,
            includes: self.settings.vassals_include.clone(),
            environment: self.spawner.runtime_env(),
            owner: self.held_identity(slot),
            keys: HELD_SOCKET_OPTIONS.iter().map(|k| k.to_string()).collect(),
        };
        let reply = self
            .reader
            .borrow_mut()
            .read(&request)
            .map_err(|e| format!("{}: {e}", v.path.display()))?;
        match reply {
            ReadReply::Loaded(entries) => Ok(Some(config::Config {
                path: v.path.clone(),
                entries,
            })),
            ReadReply::DoesNotLoad(e) => {
                debug!(vassal = %v.name, "not judged for held sockets (its runtime will report): {e}");
                Ok(None)
            }
            ReadReply::Unreadable(e) => Err(format!(
                "{}: reading it as its owner: {e}",
                v.path.display()
            )),
            ReadReply::WorkerFailed(e) => Err(format!("{}: {e}", v.path.display())),
        }
    }

    /// The options a store gives besides the config text: its on-demand socket column becomes
    /// `on-demand-socket`, set before the config's own lines (so the runtime sees it too).
    pub(super) fn store_sets(&self, slot: usize) -> Vec<(String, String)> {
        let v = self.table.get(slot).expect("slot");
        v.store_socket
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| (policy::ON_DEMAND_OPTION.to_string(), s.clone()))
            .collect()
    }

    /// Whether a config change moves a running vassal to or from on-demand or to another
    /// socket: then it is stopped and started afresh rather than reloaded. A changed `idle`
    /// alone takes effect at once.
    pub(super) fn on_demand_changed(&mut self, slot: usize, wishes: &HeldWishes) -> bool {
        let v = self.table.get_mut(slot).expect("slot");
        match (wishes.on_demand.clone(), &mut v.on_demand) {
            (Ok(None), None) => false,
            (Ok(Some(wanted)), Some(od)) if wanted.socket.address == od.socket.address => {
                od.idle = wanted.idle;
                od.socket = wanted.socket;
                false
            }
            _ => true,
        }
    }

    /// Back to waiting: the held socket goes into the epoll set.
    pub(super) fn wait_for_connection(&mut self, slot: usize) {
        let Some(v) = self.table.get_mut(slot) else {
            return;
        };
        let Some(od) = v.on_demand.as_mut() else {
            return;
        };
        od.idle_since = None;
        self.idle.slots_remove(slot);
        if od.armed {
            return;
        }
        let fd = self
            .held
            .fd(&od.socket.address)
            .expect("held while on demand");
        let token = TOKEN_ON_DEMAND + slot as u64;
        match self
            .epoll
            .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
        {
            Ok(()) => {
                od.armed = true;
                info!(vassal = %v.name, socket = %od.socket.value, "waiting for a connection");
            }
            Err(e) => error!(vassal = %v.name, "epoll_ctl(ADD) for its on-demand socket: {e}"),
        }
    }

    /// A connection arrived on a waiting vassal's socket: stop watching it and start the
    /// vassal; the connection waits in the backlog until the payload accepts it.
    pub(super) fn on_connection(&mut self, slot: usize) {
        self.disarm(slot);
        self.handle(slot, Event::Connection);
    }

    fn disarm(&mut self, slot: usize) {
        let Some(od) = self.table.get_mut(slot).and_then(|v| v.on_demand.as_mut()) else {
            return;
        };
        if std::mem::take(&mut od.armed) {
            if let Some(fd) = self.held.fd(&od.socket.address) {
                let _ = self.epoll.delete(fd);
            }
        }
    }

    /// The vassal no longer uses its held sockets (removed, or no longer on demand or in a
    /// pool).
    pub(super) fn let_go(&mut self, slot: usize) {
        self.leave_pool(slot);
        self.disarm(slot);
        self.idle.slots_remove(slot);
        if let Some(od) = self.table.get_mut(slot).and_then(|v| v.on_demand.take()) {
            self.held.release(&od.socket.address);
        }
    }

    /// The held socket a spawn hands to the runtime, if the vassal is on demand or in a pool.
    pub(super) fn held_fd(&self, slot: usize) -> Option<BorrowedFd<'_>> {
        let v = self.table.get(slot)?;
        let socket = match (&v.on_demand, &v.pool) {
            (Some(od), _) => &od.socket,
            (None, Some(pool)) => pool,
            (None, None) => return None,
        };
        self.held.fd(&socket.address)
    }

    /// A spawned on-demand vassal with an `idle` time joins the sampled set.
    pub(super) fn watch_idle(&mut self, slot: usize) {
        if let Some(od) = self.table.get_mut(slot).and_then(|v| v.on_demand.as_mut()) {
            self.idle.watch(slot, od, Instant::now());
        }
    }

    /// Stop the vassals whose sockets were idle for their whole `idle` time (sampled when due).
    pub(super) fn sample_idle(&mut self, now: Instant) {
        for slot in self.idle.idle_out(&mut self.table, now) {
            self.handle(slot, Event::IdleTimeout);
        }
    }
}
