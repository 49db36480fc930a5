//! Pools: vassals whose configs name the same `pool-socket` share one listening socket the
//! emperor binds and holds (the held-socket table counts them). Each runtime hands it to its
//! payload like a socket of its own, so while one vassal reloads, a connection waiting in the
//! backlog is taken by whichever other vassal accepts first: what a rolling reload needs.
//!
//! A pool keeps nothing of its own: a vassal's seat in one is its entry's `pool` part, and
//! the socket's users are counted by the held sockets; these are handed to it.

use super::held::{HeldSockets, Identity};
use super::table::Vassal;
use super::wishes::HeldWishes;
use crate::policy::SocketSpec;
use tracing::info;

/// Hold the pool socket the vassal's config names (binding it for the first vassal), or the
/// reason it may not have it.
pub fn join(
    v: &mut Vassal,
    wanted: Option<SocketSpec>,
    held: &mut HeldSockets,
    identity: Identity,
) -> Result<(), String> {
    let current = v.pool.as_ref().map(|s| &s.address);
    if current == wanted.as_ref().map(|s| &s.address) {
        return Ok(());
    }
    leave(v, held);
    let Some(socket) = wanted else {
        return Ok(());
    };
    held.acquire(&socket, identity).map_err(|e| e.to_string())?;
    info!(vassal = %v.name, socket = %socket.value, "in the pool of its socket");
    v.pool = Some(Box::new(socket));
    Ok(())
}

/// Give the pool socket back (closed when its last vassal leaves).
pub fn leave(v: &mut Vassal, held: &mut HeldSockets) {
    if let Some(socket) = v.pool.take() {
        held.release(&socket.address);
    }
}

/// Whether a config change moves a running vassal to another pool (or in or out of one):
/// then it is started afresh, as its runtime cannot swap the socket under its payload.
pub fn changed(v: &Vassal, wishes: &HeldWishes) -> bool {
    let current = v.pool.as_ref();
    match &wishes.pool {
        Ok(wanted) => wanted.as_ref().map(|s| &s.address) != current.map(|s| &s.address),
        Err(_) => true,
    }
}
