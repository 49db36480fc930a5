//! On-demand vassals (socket activation): a vassal whose config names an `on-demand-socket`
//! is not started with its config. The emperor binds and holds that socket, waits for a
//! connection on it in its loop, and only then spawns the vassal, whose runtime hands the held
//! socket to the payload (connections wait in the backlog meanwhile, so none is refused). With
//! `idle = S`, the emperor samples the socket's use about once a second and stops the vassal
//! after S seconds without a connection; the socket stays held and the next connection starts
//! the vassal again.
//!
//! [`OnDemand`] is a component: it owns the idle sampling of running on-demand vassals, and is
//! handed the vassal it acts on (its entry's on-demand part), its slot (which names it in
//! epoll tokens), the held sockets and the epoll set.

use super::held::{HeldError, HeldSockets, Identity};
use super::idle_watch::IdleWatch;
use super::machine::Park;
use super::parts::OnDemandVassal;
use super::pool;
use super::table::{Table, Vassal};
use super::wishes::HeldWishes;
use super::TOKEN_ON_DEMAND;
use crate::policy::SocketSpec;
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use std::time::Instant;
use tracing::{error, info};

/// On-demand vassals: the running ones sampled for idleness.
#[derive(Debug, Default)]
pub struct OnDemand {
    idle: IdleWatch,
}

impl OnDemand {
    /// When the next idle sample is due (None while no running vassal has an `idle` time).
    pub fn deadline(&self) -> Option<Instant> {
        self.idle.deadline()
    }

    /// The held sockets a start needs: an on-demand vassal gets its socket held (it then
    /// waits for a connection), a pool member joins its pool's socket, any other is queued
    /// for a spawn. Err: why it may not start (a refused setting, or a uWSGI application with
    /// no uWSGI binary); the caller lets go of its sockets and logs it.
    pub fn prepare(
        &mut self,
        slot: usize,
        v: &mut Vassal,
        wishes: HeldWishes,
        held: &mut HeldSockets,
        epoll: &Epoll,
        identity: Identity,
    ) -> Result<Park, String> {
        if let Some(message) = wishes.missing_uwsgi {
            // Not a respawn loop: it waits, idle, until its config or the emperor changes.
            return Err(message);
        }
        let Some(wanted) = wishes.on_demand? else {
            self.let_go(slot, v, held, epoll);
            wishes
                .pool
                .and_then(|pool| pool::join(v, pool, held, identity))?;
            return Ok(Park::Queue);
        };
        let same = v
            .on_demand
            .as_ref()
            .is_some_and(|od| od.socket.address == wanted.socket.address);
        if !same {
            self.let_go(slot, v, held, epoll);
            hold(held, &wanted.socket, identity).map_err(|e| e.to_string())?;
        }
        match &mut v.on_demand {
            Some(od) => {
                od.idle = wanted.idle;
                od.socket = wanted.socket;
            }
            None => v.on_demand = Some(Box::new(OnDemandVassal::new(wanted.socket, wanted.idle))),
        }
        Ok(Park::Hold)
    }

    /// Back to waiting: the held socket goes into the epoll set.
    pub fn wait_for_connection(
        &mut self,
        slot: usize,
        v: &mut Vassal,
        held: &HeldSockets,
        epoll: &Epoll,
    ) {
        let Some(od) = v.on_demand.as_mut() else {
            return;
        };
        od.idle_since = None;
        self.idle.slots_remove(slot);
        if od.armed {
            return;
        }
        let fd = held.fd(&od.socket.address).expect("held while on demand");
        let token = TOKEN_ON_DEMAND + slot as u64;
        match epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token)) {
            Ok(()) => {
                od.armed = true;
                info!(vassal = %v.name, socket = %od.socket.value, "waiting for a connection");
            }
            Err(e) => error!(vassal = %v.name, "epoll_ctl(ADD) for its on-demand socket: {e}"),
        }
    }

    /// A connection arrived (or the vassal lets go): its socket leaves the epoll set.
    pub fn disarm(v: &mut Vassal, held: &HeldSockets, epoll: &Epoll) {
        let Some(od) = v.on_demand.as_mut() else {
            return;
        };
        if std::mem::take(&mut od.armed) {
            if let Some(fd) = held.fd(&od.socket.address) {
                let _ = epoll.delete(fd);
            }
        }
    }

    /// The vassal no longer uses its held sockets (removed, refused, or no longer on demand
    /// or in a pool).
    pub fn let_go(&mut self, slot: usize, v: &mut Vassal, held: &mut HeldSockets, epoll: &Epoll) {
        pool::leave(v, held);
        Self::disarm(v, held, epoll);
        self.idle.slots_remove(slot);
        if let Some(od) = v.on_demand.take() {
            held.release(&od.socket.address);
        }
    }

    /// Whether a config change moves a running vassal to or from on-demand or to another
    /// socket: then it is stopped and started afresh rather than reloaded. A changed `idle`
    /// alone takes effect at once.
    pub fn changed(v: &mut Vassal, wishes: &HeldWishes) -> bool {
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

    /// A spawned on-demand vassal with an `idle` time joins the sampled set.
    pub fn watch_idle(&mut self, slot: usize, v: &mut Vassal, now: Instant) {
        if let Some(od) = v.on_demand.as_mut() {
            self.idle.watch(slot, od, now);
        }
    }

    /// Its runtime is gone: its socket is sampled no more.
    pub fn stopped(&mut self, slot: usize) {
        self.idle.slots_remove(slot);
    }

    /// The vassals whose sockets were idle for their whole `idle` time (sampled when due).
    pub fn idle_out(&mut self, table: &mut Table, now: Instant) -> Vec<usize> {
        self.idle.idle_out(table, now)
    }
}

/// Hold an on-demand socket: one held socket wakes one vassal (until pools share one).
fn hold(held: &mut HeldSockets, socket: &SocketSpec, identity: Identity) -> Result<(), HeldError> {
    if held.is_held(&socket.address) {
        return Err(HeldError::InUse {
            place: socket.place.clone(),
            option: socket.option.clone(),
            address: socket.value.clone(),
        });
    }
    held.acquire(socket, identity)
}
