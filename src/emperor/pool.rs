//! Pools: vassals whose configs name the same `pool-socket` share one listening socket the
//! emperor binds and holds (the held-socket table counts them). Each runtime hands it to its
//! payload like a socket of its own, so while one vassal reloads, a connection waiting in the
//! backlog is taken by whichever other vassal accepts first: what a rolling reload needs.

use super::on_demand::HeldWishes;
use super::Emperor;
use crate::policy;
use tracing::info;

impl Emperor {
    /// Hold the pool socket the vassal's config names (binding it for the first vassal), or
    /// the reason it may not have it.
    pub(super) fn join_pool(
        &mut self,
        slot: usize,
        wanted: Option<policy::SocketSpec>,
    ) -> Result<(), String> {
        let current = self.table.get(slot).and_then(|v| v.pool.clone());
        if current.as_ref().map(|s| &s.address) == wanted.as_ref().map(|s| &s.address) {
            return Ok(());
        }
        self.leave_pool(slot);
        let Some(socket) = wanted else {
            return Ok(());
        };
        let identity = self.held_identity(slot);
        self.held
            .acquire(&socket, identity)
            .map_err(|e| e.to_string())?;
        let v = self.table.get_mut(slot).expect("slot");
        info!(vassal = %v.name, socket = %socket.value, "in the pool of its socket");
        v.pool = Some(socket);
        Ok(())
    }

    /// Give the pool socket back (closed when its last vassal leaves).
    pub(super) fn leave_pool(&mut self, slot: usize) {
        if let Some(socket) = self.table.get_mut(slot).and_then(|v| v.pool.take()) {
            self.held.release(&socket.address);
        }
    }

    /// Whether a config change moves a running vassal to another pool (or in or out of one):
    /// then it is started afresh, as its runtime cannot swap the socket under its payload.
    pub(super) fn pool_changed(&self, slot: usize, wishes: &HeldWishes) -> bool {
        let current = self.table.get(slot).and_then(|v| v.pool.as_ref());
        match &wishes.pool {
            Ok(wanted) => wanted.as_ref().map(|s| &s.address) != current.map(|s| &s.address),
            Err(_) => true,
        }
    }
}
