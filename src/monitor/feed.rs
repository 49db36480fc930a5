//! What the network monitors (pg://, amqp://, zmq://) share: a worker thread of their own that
//! talks to the store (a blocking client), and on the loop's side the table of configs last
//! reported, which turns what the worker learns into add / change / remove events.
//!
//! The worker sends [`Update`]s through a channel and wakes the loop through a socket whose
//! read end is the monitor's `watch_fd`: the loop never blocks on a store, and an idle store
//! costs the emperor no wake-up at all.

use std::collections::{BTreeMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info, warn};

use super::{Event, EventKind, Monitor, MonitorError};
use crate::config::is_config_name;

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
    fn differs_from(&self, old: &Record) -> bool {
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

/// The worker's end of the feed.
#[derive(Clone)]
pub(crate) struct FeedSender {
    tx: Sender<Update>,
    wake: Arc<UnixStream>,
}

impl FeedSender {
    /// Hand an update to the loop and wake it. False once the emperor's end is gone: the
    /// worker then stops.
    pub fn send(&self, update: Update) -> bool {
        if self.tx.send(update).is_err() {
            return false;
        }
        // A full socket already has a wake-up pending: nothing is lost.
        match (&*self.wake).write_all(&[1]) {
            Ok(()) => true,
            Err(e) => e.kind() == ErrorKind::WouldBlock,
        }
    }
}

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

/// A vassal name a store may give: a config extension, no `/`, not hidden.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.contains('/') || name.starts_with('.') || name.contains('\0') {
        return Err(format!(
            "vassal name {name:?}: must not contain '/' or start with '.'"
        ));
    }
    if !is_config_name(name) {
        return Err(format!(
            "vassal name {name:?}: needs a config extension (.ini, .json, .yml, .yaml, .xml)"
        ));
    }
    Ok(())
}

/// UNIX seconds (fractions allowed) as a time.
pub(crate) fn unix_time(text: &str) -> Result<SystemTime, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("modification time {text:?}: not a number of UNIX seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!(
            "modification time {text:?}: not a number of UNIX seconds"
        ));
    }
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs))
}

/// A uid or gid field: absent or empty is none.
pub(crate) fn id_field(what: &str, text: Option<&str>) -> Result<Option<u32>, String> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| format!("{what} {text:?}: not a number")),
    }
}

/// uid and gid together, or neither.
pub(crate) fn owner_of(uid: Option<u32>, gid: Option<u32>) -> Result<Option<(u32, u32)>, String> {
    match (uid, gid) {
        (Some(uid), Some(gid)) => Ok(Some((uid, gid))),
        (None, None) => Ok(None),
        _ => Err("uid and gid must be given together".into()),
    }
}

/// A spec as logs and the stats may show it: a password in a URL (`amqp://u:PASS@h`) or in
/// a conninfo (`password=PASS`) becomes `***`.
pub fn shown(spec: &str) -> String {
    let mut out = String::with_capacity(spec.len());
    let mut rest = spec;
    while let Some(at) = rest.find("password=") {
        let (head, tail) = rest.split_at(at + "password=".len());
        out.push_str(head);
        out.push_str("***");
        rest = tail.trim_start_matches(|c: char| !c.is_whitespace() && c != ';' && c != '&');
    }
    out.push_str(rest);
    if let Some((scheme, after)) = out.split_once("://") {
        let authority_end = after.find('/').unwrap_or(after.len());
        if let Some(at) = after[..authority_end].rfind('@') {
            if let Some(colon) = after[..at].find(':') {
                return format!("{scheme}://{}:***{}", &after[..colon], &after[at..]);
            }
        }
    }
    out
}

/// Waits between attempts to reach a store that is away: doubling from a quarter second up
/// to `--emperor-freq` (at most 30 s), back to the start once it answers.
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

const FIRST_RETRY: Duration = Duration::from_millis(250);

impl Backoff {
    pub fn new(freq: Duration) -> Self {
        Backoff {
            next: FIRST_RETRY,
            max: freq.clamp(FIRST_RETRY, Duration::from_secs(30)),
        }
    }

    /// The wait before the next attempt (and the one after that doubles).
    pub fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    pub fn reset(&mut self) {
        self.next = FIRST_RETRY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str, version: u64, body: &str) -> Record {
        Record {
            name: name.into(),
            source: Source::Text(body.into()),
            version: SystemTime::UNIX_EPOCH + Duration::from_secs(version),
            owner: None,
            socket: None,
        }
    }

    fn monitor() -> (FeedMonitor, FeedSender) {
        let mut m = FeedMonitor::new("pg://x;q", "pg://h/db".into(), |_| {}).unwrap();
        let (_, sender) = m.worker.take().unwrap();
        (m, sender)
    }

    fn kinds(events: &[Event]) -> Vec<(EventKind, &str)> {
        events.iter().map(|e| (e.kind, e.id.as_str())).collect()
    }

    #[test]
    fn snapshots_add_change_and_remove_like_files() {
        let (mut m, tx) = monitor();
        let snap = |records, keep: &[&str]| Update::Snapshot {
            records,
            keep: keep.iter().map(|s| s.to_string()).collect(),
        };
        tx.send(snap(
            vec![text("a.ini", 1, "A"), text("b.ini", 1, "B")],
            &[],
        ));
        let events = m.poll(Instant::now());
        assert_eq!(
            kinds(&events),
            [
                (EventKind::Add, "pg://h/db/a.ini"),
                (EventKind::Add, "pg://h/db/b.ini")
            ]
        );
        assert_eq!(events[0].config.as_deref(), Some("A"));
        assert_eq!(events[0].path, PathBuf::from("pg://h/db/a.ini"));
        // Same version, new text: no reload (the time decides); new version: change.
        tx.send(snap(
            vec![text("a.ini", 1, "A2"), text("b.ini", 2, "B2")],
            &[],
        ));
        let events = m.poll(Instant::now());
        assert_eq!(kinds(&events), [(EventKind::Change, "pg://h/db/b.ini")]);
        assert_eq!(events[0].config.as_deref(), Some("B2"));
        // An unreadable row keeps its vassal; a missing one removes it.
        tx.send(snap(vec![], &["a.ini"]));
        assert_eq!(
            kinds(&m.poll(Instant::now())),
            [(EventKind::Remove, "pg://h/db/b.ini")]
        );
    }

    #[test]
    fn messages_upsert_and_remove_and_paths_go_with_their_file() {
        let (mut m, tx) = monitor();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.ini");
        std::fs::write(&path, "[uwsgi]\n").unwrap();
        tx.send(Update::Upsert(Record {
            source: Source::File(path.clone()),
            ..text("f.ini", 1, "")
        }));
        tx.send(Update::Upsert(text("t.ini", 1, "T")));
        tx.send(Update::Remove("nothing.ini".into()));
        let events = m.rescan();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id, path.display().to_string());
        assert_eq!(events[0].config, None);
        std::fs::remove_file(&path).unwrap();
        tx.send(Update::Remove("t.ini".into()));
        assert_eq!(
            kinds(&m.rescan()),
            [
                (EventKind::Remove, "pg://h/db/t.ini"),
                (EventKind::Remove, path.to_str().unwrap())
            ]
        );
    }

    #[test]
    fn names_times_and_ids_are_checked() {
        assert!(check_name("app.ini").is_ok());
        assert!(check_name("../x.ini").is_err());
        assert!(check_name(".x.ini").is_err());
        assert!(check_name("app.txt").is_err());
        assert_eq!(
            unix_time("10.5").unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_millis(10_500)
        );
        assert!(unix_time("yesterday").is_err());
        assert_eq!(id_field("uid", Some(" 1001 ")).unwrap(), Some(1001));
        assert_eq!(id_field("uid", Some("")).unwrap(), None);
        assert!(id_field("uid", Some("root")).is_err());
        assert!(owner_of(Some(1), None).is_err());
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            shown("pg://host=h password=s3cret dbname=d;SELECT 1"),
            "pg://host=h password=*** dbname=d;SELECT 1"
        );
        assert_eq!(
            shown("amqp://guest:guest@127.0.0.1:5672/vh"),
            "amqp://guest:***@127.0.0.1:5672/vh"
        );
        assert_eq!(
            shown("zmq://tcp://127.0.0.1:5252"),
            "zmq://tcp://127.0.0.1:5252"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_frequency_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1));
        let waits: Vec<_> = (0..4).map(|_| b.next().as_millis()).collect();
        assert_eq!(waits, [250, 500, 1000, 1000]);
        b.reset();
        assert_eq!(b.next().as_millis(), 250);
    }
}
