//! What the network monitors (pg://, amqp://, zmq://) share: a worker thread of their own that
//! talks to the store (a blocking client), and on the loop's side the table of configs last
//! reported, which turns what the worker learns into add / change / remove events.
//!
//! The worker sends [`Update`]s through a channel and wakes the loop through a socket whose
//! read end is the monitor's `watch_fd`: the loop never blocks on a store, and an idle store
//! costs the emperor no wake-up at all.
//!
//! `record.rs` is what a store says and the worker hands over, `worker.rs` the worker's side
//! (its end of the feed, its backoff), `fields.rs` the checks of a store's fields,
//! `redact.rs` the specs as logs show them; the monitor itself is here.

mod fields;
mod record;
mod redact;
mod worker;

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info, warn};

use super::{Event, EventKind, Monitor, MonitorError};

pub(crate) use fields::{check_name, id_field, owner_of, unix_time};
pub(crate) use record::{Record, Source, Update};
pub use redact::shown;
pub(crate) use worker::{Backoff, FeedSender};

type Worker = Box<dyn FnOnce(FeedSender) + Send>;

/// A monitor fed by a worker thread.
pub(crate) struct FeedMonitor {
    spec: String,
    /// The store as logs and config names show it, without credentials (`pg://host/db`).
    label: String,
    rx: Receiver<Update>,
    wake: UnixStream,
    known: BTreeMap<String, Record>,
    /// Started at the first rescan, so that it runs with the identity the emperor ends up with
    /// (an unprivileged emperor drops privileges after opening its monitors).
    worker: Option<(Worker, FeedSender)>,
}

impl FeedMonitor {
    pub fn new(
        spec: &str,
        label: String,
        worker: impl FnOnce(FeedSender) + Send + 'static,
    ) -> Result<Self, MonitorError> {
        let sys = |source: std::io::Error| MonitorError::Feed {
            spec: shown(spec),
            what: "socketpair for the monitor's wake-ups",
            source,
        };
        let (wake_rx, wake_tx) = UnixStream::pair().map_err(sys)?;
        wake_rx.set_nonblocking(true).map_err(sys)?;
        wake_tx.set_nonblocking(true).map_err(sys)?;
        let (tx, rx) = mpsc::channel();
        let sender = FeedSender {
            tx,
            wake: Arc::new(wake_tx),
        };
        Ok(FeedMonitor {
            spec: spec.to_owned(),
            label,
            rx,
            wake: wake_rx,
            known: BTreeMap::new(),
            worker: Some((Box::new(worker), sender)),
        })
    }

    fn start_worker(&mut self) {
        let Some((worker, sender)) = self.worker.take() else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name(format!("monitor {}", self.label))
            .spawn(move || worker(sender));
        match spawned {
            Ok(_) => info!("{}: watching", self.label),
            Err(e) => warn!("{}: cannot start its thread: {e}", self.label),
        }
    }

    fn apply(&mut self, update: Update, events: &mut Vec<Event>) {
        match update {
            Update::Snapshot { records, keep } => {
                let present: HashSet<&str> = records
                    .iter()
                    .map(|r| r.name.as_str())
                    .chain(keep.iter().map(String::as_str))
                    .collect();
                let gone: Vec<String> = self
                    .known
                    .keys()
                    .filter(|name| !present.contains(name.as_str()))
                    .cloned()
                    .collect();
                for name in gone {
                    self.forget(&name, events);
                }
                for record in records {
                    self.upsert(record, events);
                }
            }
            Update::Upsert(record) => self.upsert(record, events),
            Update::Remove(name) => self.forget(&name, events),
        }
    }

    fn upsert(&mut self, record: Record, events: &mut Vec<Event>) {
        if let Some(old) = self.known.get(&record.name) {
            if self.id_of(old) != self.id_of(&record) {
                // Text where there was a file (or another file): another vassal.
                self.forget(&record.name.clone(), events);
            } else if !record.differs_from(old) {
                return;
            }
        }
        let kind = match self.known.contains_key(&record.name) {
            true => EventKind::Change,
            false => EventKind::Add,
        };
        events.push(self.event(kind, &record));
        self.known.insert(record.name.clone(), record);
    }

    /// Unique across monitors: `LABEL/NAME` for a text, the absolute path for a file.
    fn id_of(&self, record: &Record) -> String {
        match &record.source {
            Source::Text(_) => format!("{}/{}", self.label, record.name),
            Source::File(path) => path.display().to_string(),
        }
    }

    fn forget(&mut self, name: &str, events: &mut Vec<Event>) {
        if let Some(record) = self.known.remove(name) {
            events.push(self.event(EventKind::Remove, &record));
        }
    }

    fn event(&self, kind: EventKind, record: &Record) -> Event {
        let id = self.id_of(record);
        debug!(monitor = %self.label, ?kind, %id, "monitor event");
        let present = kind != EventKind::Remove;
        let (name, config) = match &record.source {
            Source::Text(text) => (record.name.clone(), Some(text.clone())),
            Source::File(_) => (id.clone(), None),
        };
        Event {
            kind,
            name,
            path: PathBuf::from(&id),
            id,
            owner: record.owner.filter(|_| present),
            mtime: present.then_some(record.version),
            monitor: shown(&self.spec),
            config: config.filter(|_| present),
            socket: record.socket.clone().filter(|_| present),
        }
    }

    /// Everything the worker sent since the last call.
    fn drain(&mut self) -> Vec<Event> {
        let mut buf = [0u8; 256];
        while matches!((&self.wake).read(&mut buf), Ok(n) if n > 0) {}
        let mut events = Vec::new();
        while let Ok(update) = self.rx.try_recv() {
            self.apply(update, &mut events);
        }
        events
    }
}

impl Monitor for FeedMonitor {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn watch_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.wake.as_fd())
    }

    fn poll(&mut self, _now: Instant) -> Vec<Event> {
        self.drain()
    }

    /// Starts the worker the first time; then what it sent, and the configs named by a path
    /// whose file is gone (removed, as uWSGI's amqp:// does).
    fn rescan(&mut self) -> Vec<Event> {
        self.start_worker();
        let mut events = self.drain();
        let gone: Vec<String> = self
            .known
            .values()
            .filter(|r| matches!(&r.source, Source::File(path) if !path.is_file()))
            .map(|r| r.name.clone())
            .collect();
        for name in gone {
            self.forget(&name, &mut events);
        }
        events
    }

    fn deadline(&self) -> Option<Instant> {
        None
    }

    fn known(&self) -> serde_json::Value {
        let known: Vec<&Record> = self.known.values().collect();
        serde_json::to_value(known).unwrap_or_default()
    }

    fn adopt_known(&mut self, known: serde_json::Value) {
        let Ok(known) = serde_json::from_value::<Vec<Record>>(known) else {
            return;
        };
        for record in known {
            self.known.insert(record.name.clone(), record);
        }
    }
}

#[cfg(test)]
mod tests;
