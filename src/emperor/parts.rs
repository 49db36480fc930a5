//! Parts of a vassal's table entry that one component each reads and writes: the on-demand
//! socket and idle state (on_demand.rs), what the stats last read from /proc (stats.rs). Here,
//! below the table and every component, so none of them imports another to know a vassal.

use crate::policy::SocketSpec;
use std::time::{Duration, Instant, SystemTime};

/// The on-demand part of a vassal's entry.
#[derive(Debug)]
pub struct OnDemandVassal {
    /// The socket the emperor holds for it.
    pub socket: SocketSpec,
    /// Stop it after this long without a connection; None: never.
    pub idle: Option<Duration>,
    /// The held socket is in the epoll set: the vassal waits for a connection.
    pub(super) armed: bool,
    /// Since when its socket has been seen unused (while it runs).
    pub(super) idle_since: Option<Instant>,
}

impl OnDemandVassal {
    /// Its socket held (not yet watched) and its idle time.
    pub fn new(socket: SocketSpec, idle: Option<Duration>) -> Self {
        OnDemandVassal {
            socket,
            idle,
            armed: false,
            idle_since: None,
        }
    }
}

/// What the stats read from /proc about a vassal's runtime (the config it runs on, its
/// payload), kept while the same runtime runs the same payload: two /proc reads per vassal
/// made every stats answer cost the emperor's loop tens of milliseconds at 5000 vassals.
#[derive(Debug, Default)]
pub struct SeenInProc {
    /// The runtime pid and payload start count it was read for.
    pub(super) read_for: Option<(i32, u64)>,
    pub(super) running_config: String,
    pub(super) payload: Option<i32>,
}

/// A vassal's history: its runs, loyalty, readiness and counters (what the stats show, and
/// what an upgrade hands to the next emperor as it is).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct History {
    pub born: Option<SystemTime>,
    pub first_run: Option<SystemTime>,
    pub last_run: Option<SystemTime>,
    pub loyal: bool,
    pub last_loyal: Option<SystemTime>,
    pub ready: bool,
    pub last_ready: Option<SystemTime>,
    pub accepting: bool,
    pub last_accepting: Option<SystemTime>,
    pub last_heartbeat: Option<SystemTime>,
    pub respawns: u64,
    pub last_exit: Option<i32>,
    /// Fallback levels the next runtime goes down at once (`--fall-back`).
    pub fall_back: u32,
    /// Payloads started (byte 1) over its life: a reload is done when this grows.
    pub starts: u64,
}
