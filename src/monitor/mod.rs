//! Imperial monitors: where vassal configs live -> a stream of add / change / remove events.
//! A monitor knows nothing of processes.
//!
//! CONTRACT (used by the emperor's event loop; keep these names and signatures):
//! - `open(spec, &MonitorOptions) -> Result<Box<dyn Monitor>, MonitorError>`
//!   spec: `dir://PATH`, `glob://PATTERN`, a bare path (dir://) or a bare pattern with shell
//!   wildcards (glob://).
//! - the loop registers `watch_fd()` (if any) for readability, calls `poll(now)` when it is
//!   readable or when `deadline()` has passed, and `rescan()` at start and every
//!   `--emperor-freq` seconds as a safety net.

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Add,
    Change,
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// Unique across all monitors: the absolute path of the config file.
    pub id: String,
    /// The vassal's name as uWSGI shows it: the file name for dir://, the path for glob://.
    pub name: String,
    /// The config file (absolute).
    pub path: PathBuf,
    /// Owner (uid, gid) of the file (of the link itself under nofollow); None on Remove.
    pub owner: Option<(u32, u32)>,
    /// Modification time seen (of the link itself under nofollow); None on Remove.
    pub mtime: Option<SystemTime>,
    /// The monitor's spec, for the stats.
    pub monitor: String,
}

#[derive(Debug, Clone)]
pub struct MonitorOptions {
    /// `--emperor-nofollow`: use the link's own mtime/owner, accept symlinks (even dangling).
    pub nofollow: bool,
    /// How long a file written in place may stay quiet before it counts as written.
    pub debounce: Duration,
}

pub trait Monitor: Send {
    fn spec(&self) -> &str;
    fn watch_fd(&self) -> Option<RawFd>;
    fn poll(&mut self, now: Instant) -> Vec<Event>;
    fn rescan(&mut self) -> Vec<Event>;
    fn deadline(&self) -> Option<Instant>;
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("todo")]
    Todo,
}

pub fn open(_spec: &str, _opts: &MonitorOptions) -> Result<Box<dyn Monitor>, MonitorError> {
    todo!()
}
