//! What a store says and a worker hands the loop: a vassal's record and the updates.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// Where a config's text is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Source {
    /// Given by the store itself: it reaches the runtime as a sealed memfd.
    Text(Arc<str>),
    /// A config file on this host (an amqp:// path message, a zmq:// touch without config).
    File(PathBuf),
}

/// One vassal as a store describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Record {
    /// The vassal's name, with a config extension (`app.ini`).
    pub name: String,
    pub source: Source,
    /// A different version reloads the vassal (a row's time; a message's arrival).
    pub version: SystemTime,
    /// uid and gid the store gives (required in tyrant mode).
    pub owner: Option<(u32, u32)>,
    /// On-demand socket, if the store gives one.
    pub socket: Option<String>,
}

impl Record {
    /// Whether `self`, replacing `old`, is a change the vassal must hear of. As for files, a
    /// new text under the same version is not (uWSGI's rule: the time field decides).
    pub(super) fn differs_from(&self, old: &Record) -> bool {
        self.version != old.version || self.owner != old.owner || self.socket != old.socket
    }
}

/// What a worker learned.
#[derive(Debug)]
pub(crate) enum Update {
    /// The whole set (a query's result): what is neither in `records` nor in `keep` (rows that
    /// could not be read this time) is removed.
    Snapshot {
        records: Vec<Record>,
        keep: Vec<String>,
    },
    /// One config added or changed.
    Upsert(Record),
    /// One config gone, by name.
    Remove(String),
}
