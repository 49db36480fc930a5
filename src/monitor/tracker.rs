//! What both monitors share: the table of reported configs, the debounce schedule, and how an
//! inotify happening on one file turns into (maybe later) an event.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::debug;

use super::stat::{complete_on_create, FileState, SkippedFiles};
use super::watch::Happening;
use super::{Event, EventKind, MonitorOptions};

/// A file that may be a config: how events will name it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Candidate {
    pub id: String,
    pub name: String,
    pub path: PathBuf,
}

impl Candidate {
    /// For glob:// the name is the path itself.
    pub fn from_path(path: PathBuf) -> Self {
        let id = path.to_string_lossy().into_owned();
        Candidate {
            name: id.clone(),
            id,
            path,
        }
    }
}

/// The configs last reported, by id. Events are exactly the differences against it.
struct Table {
    monitor: String,
    known: BTreeMap<String, (Candidate, FileState)>,
}

impl Table {
    fn observe(
        &mut self,
        cand: Candidate,
        state: Option<FileState>,
        force_change: bool,
    ) -> Option<Event> {
        let old = self.known.get(&cand.id).map(|(_, old)| *old);
        let kind = match (old, state) {
            (None, None) => return None,
            (Some(_), None) => return self.forget(&cand.id),
            (Some(old), Some(new)) if old == new && !force_change => return None,
            (None, Some(_)) => EventKind::Add,
            (Some(_), Some(_)) => EventKind::Change,
        };
        let state = state?;
        let event = self.event(kind, &cand, Some(state));
        self.known.insert(cand.id.clone(), (cand, state));
        Some(event)
    }

    /// Remove, but only for a config we reported.
    fn forget(&mut self, id: &str) -> Option<Event> {
        let (cand, _) = self.known.remove(id)?;
        Some(self.event(EventKind::Remove, &cand, None))
    }

    /// Differences between a full listing and the table; ids for which `skip` holds are left alone.
    fn diff(
        &mut self,
        found: Vec<(Candidate, FileState)>,
        skip: impl Fn(&str) -> bool,
    ) -> Vec<Event> {
        let found_ids: HashSet<String> = found.iter().map(|(c, _)| c.id.clone()).collect();
        let gone: Vec<String> = self
            .known
            .keys()
            .filter(|id| !found_ids.contains(*id) && !skip(id))
            .cloned()
            .collect();
        let mut events: Vec<Event> = gone.iter().filter_map(|id| self.forget(id)).collect();
        for (cand, state) in found {
            if !skip(&cand.id) {
                events.extend(self.observe(cand, Some(state), false));
            }
        }
        events
    }

    fn event(&self, kind: EventKind, cand: &Candidate, state: Option<FileState>) -> Event {
        debug!(monitor = %self.monitor, ?kind, id = %cand.id, "monitor event");
        Event {
            kind,
            id: cand.id.clone(),
            name: cand.name.clone(),
            path: cand.path.clone(),
            owner: state.map(|s| s.owner),
            mtime: state.map(|s| s.mtime),
            monitor: self.monitor.clone(),
            config: None,
            socket: None,
        }
    }
}

/// Files waiting for quiet before they are stat'ed, and files seen being written.
#[derive(Default)]
struct Pending {
    /// id -> (file, when it may be looked at, whether it was written since last reported)
    due: HashMap<String, (Candidate, Instant, bool)>,
    /// Written (IN_MODIFY) but not closed yet: not to be read half-written.
    writing: HashSet<String>,
}

impl Pending {
    /// (Re)start the quiet period; a file written before counts as changed even if its
    /// mtime did not move (coarse filesystem clocks).
    fn settle(&mut self, cand: Candidate, at: Instant) {
        let written =
            self.writing.remove(&cand.id) || self.due.get(&cand.id).is_some_and(|(_, _, w)| *w);
        self.due.insert(cand.id.clone(), (cand, at, written));
    }

    fn writing(&mut self, id: &str) {
        self.due.remove(id);
        self.writing.insert(id.to_owned());
    }

    fn cancel(&mut self, id: &str) {
        self.due.remove(id);
        self.writing.remove(id);
    }

    fn contains(&self, id: &str) -> bool {
        self.due.contains_key(id)
    }

    fn take_due(&mut self, now: Instant) -> Vec<(Candidate, bool)> {
        let mut ids: Vec<String> = self
            .due
            .iter()
            .filter(|(_, (_, at, _))| *at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids.iter()
            .filter_map(|id| self.due.remove(id))
            .map(|(cand, _, written)| (cand, written))
            .collect()
    }

    fn deadline(&self) -> Option<Instant> {
        self.due.values().map(|(_, at, _)| *at).min()
    }
}

pub(crate) struct Tracker {
    table: Table,
    pending: Pending,
    nofollow: bool,
    debounce: Duration,
    skipped: SkippedFiles,
}

impl Tracker {
    /// The configs it has reported, for the emperor that replaces this one (an upgrade).
    pub fn known(&self) -> serde_json::Value {
        let known: Vec<&(Candidate, FileState)> = self.table.known.values().collect();
        serde_json::to_value(known).unwrap_or_default()
    }

    /// Take the configs the emperor this one replaces had been told of: a rescan reports
    /// only what changed since.
    pub fn adopt_known(&mut self, known: serde_json::Value) {
        let Ok(known) = serde_json::from_value::<Vec<(Candidate, FileState)>>(known) else {
            return;
        };
        for (candidate, state) in known {
            self.table
                .known
                .insert(candidate.id.clone(), (candidate, state));
        }
    }

    pub fn new(spec: &str, opts: &MonitorOptions) -> Self {
        Tracker {
            table: Table {
                monitor: spec.to_owned(),
                known: BTreeMap::new(),
            },
            pending: Pending::default(),
            nofollow: opts.nofollow,
            debounce: opts.debounce,
            skipped: SkippedFiles::default(),
        }
    }

    /// One inotify happening on one candidate file. Removes are reported at once into
    /// `events`; everything else waits for `settle_due`.
    pub fn react(
        &mut self,
        what: Happening,
        cand: Candidate,
        now: Instant,
        events: &mut Vec<Event>,
    ) {
        match what {
            Happening::Settle => self.pending.settle(cand, now + self.debounce),
            Happening::Created if complete_on_create(&cand.path) => {
                self.pending.settle(cand, now + self.debounce)
            }
            Happening::Writing => self.pending.writing(&cand.id),
            Happening::Gone => {
                self.pending.cancel(&cand.id);
                self.skipped.forget(&cand.path);
                events.extend(self.table.forget(&cand.id));
            }
            _ => {}
        }
    }

    /// Stat the files whose quiet period is over (only those: O(1) per filesystem event).
    pub fn settle_due(&mut self, now: Instant) -> Vec<Event> {
        let nofollow = self.nofollow;
        self.pending
            .take_due(now)
            .into_iter()
            .filter_map(|(cand, written)| {
                let state = self.skipped.stat_config(&cand.path, nofollow);
                self.table.observe(cand, state, written)
            })
            .collect()
    }

    /// Full listing against the table. Files still in their quiet period are left to
    /// `settle_due`, which will look at them by `deadline`.
    pub fn diff(&mut self, found: Vec<(Candidate, FileState)>) -> Vec<Event> {
        let pending = &self.pending;
        self.table.diff(found, |id| pending.contains(id))
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.pending.deadline()
    }

    /// Stat every file of a full listing that has a config name: the configs, with their
    /// state; the others are warned about once (see [`SkippedFiles`]).
    pub fn stat_listed(&mut self, listed: Vec<Candidate>) -> Vec<(Candidate, FileState)> {
        let paths = listed.iter().map(|c| c.path.clone()).collect();
        self.skipped.keep_only(&paths);
        let nofollow = self.nofollow;
        listed
            .into_iter()
            .filter_map(|cand| {
                let state = self.skipped.stat_config(&cand.path, nofollow)?;
                Some((cand, state))
            })
            .collect()
    }

    pub fn nofollow(&self) -> bool {
        self.nofollow
    }
}
