//! The config reader: where the emperor learns what a tenant's config asks of it (the sockets
//! it holds for on-demand vassals and pools) without parsing the config itself.
//!
//! A config is hostile input. The config language bounds nesting and expansion, but a parser
//! bug, a stack overflow or an exhausted budget on the emperor's main thread would take every
//! vassal on the host down with it. So the emperor hands each config to a small process of its
//! own (`emperor-vassal config-reader`, started with the emperor's identity before it drops
//! privileges), which forks throwaway workers (`jail::worker`): a worker loads each config it
//! is given as its runtime will (as the tenant's filesystem identity in tyrant mode), under a
//! hard address-space and CPU limit, and answers with only the options the emperor asked for.
//! A worker that crashes, runs out of memory or time costs the config at hand: the emperor
//! refuses that vassal with the reason and goes on, and the next config gets a new worker.
//! A worker serves at most 64 configs, or until it has used half a second of CPU, so what one
//! config leaves behind never counts against a later one for long. The reader itself never parses a config,
//! so no config can kill it; if it dies anyway (killed from outside), the emperor starts
//! another one at the next config.

mod client;
mod frame;
mod serve;
mod work;
mod workers;

pub use client::{ConfigReader, ReaderError};
pub use serve::serve;

use crate::config::Entry;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the reader finds its socket to the emperor.
pub const READER_FD: i32 = 3;

/// The address space a worker may use beyond its copy of the reader, MiB, unless the admin
/// says otherwise (`--emperor-reader-memory`): the config language's budgets keep a real load
/// far below it.
pub const DEFAULT_WORKER_MEMORY_MIB: u64 = 256;

/// CPU seconds a worker may use (SIGXCPU, then SIGKILL a second later).
const WORKER_CPU_SECONDS: u64 = 2;

/// Largest request: a store's config text (at most 4 MiB) with the emperor's additions.
const MAX_REQUEST: usize = 16 << 20;
/// Largest reply: the few options asked for.
const MAX_REPLY: usize = 1 << 20;

/// What the reader sends once it has taken its identity and is ready for requests.
const READY: &[u8] = b"ready";

/// Load one config as its runtime will, and give back the options named in `keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRequest {
    /// The config file, or a store's name for it (`pg://db/app.ini`) when `text` is given.
    pub path: PathBuf,
    /// A store's config text (its includes are still files).
    pub text: Option<String>,
    /// The emperor's `vassal-set`s (and a store's socket column), before the file.
    pub sets: Vec<(String, String)>,
    /// The emperor's `vassals-include`s, after the file.
    pub includes: Vec<PathBuf>,
    /// The environment `$(VAR)` sees: the runtime's clean one.
    pub environment: Vec<(String, String)>,
    /// Tyrant mode: the tenant's (uid, gid), whose filesystem identity reads the files.
    pub owner: Option<(u32, u32)>,
    /// The options wanted (`_` and `-` alike).
    pub keys: Vec<String>,
}

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadReply {
    /// The config loaded: the entries of the keys asked for, in order.
    Loaded(Vec<Entry>),
    /// The config does not load (its runtime will report the same error).
    DoesNotLoad(String),
    /// The tenant's identity could not be taken to read it.
    Unreadable(String),
    /// The worker did not answer: it crashed, ran out of memory or time (the reason).
    WorkerFailed(String),
}
