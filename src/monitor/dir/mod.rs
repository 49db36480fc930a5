//! dir:// — the config files directly inside one directory, driven by inotify, with `rescan`
//! as the safety net for anything inotify cannot see: a symlink's target outside the
//! directory changing in follow mode, a directory that went away, changes other hosts make on
//! a network filesystem. Without any of those, inotify sees everything and no periodic
//! rescan is asked for.

use std::collections::HashSet;
use std::io::ErrorKind;

use std::path::PathBuf;
use std::time::Instant;

use nix::sys::inotify::{Inotify, InotifyEvent, WatchDescriptor};
use tracing::{debug, warn};

use super::local_fs::inotify_sees_every_change;
use super::stat::FileState;
use super::tracker::{Candidate, Tracker};
use super::watch::{
    classify, config_name, new_inotify, watched_by_fields, watched_monitor_methods, Happening,
    DIR_EVENTS,
};
use super::{Event, Monitor, MonitorError, MonitorOptions};
use crate::config::is_config_name;

pub struct DirMonitor {
    spec: String,
    dir: PathBuf,
    inotify: Inotify,
    /// None once the directory went away; rescan puts it back when it reappears.
    watch: Option<WatchDescriptor>,
    /// Whether the directory is on a filesystem of this machine (see [`inotify_sees_every_change`]).
    local: bool,
    /// Follow mode: the configs that are symlinks, whose targets may change unseen.
    followed_symlinks: HashSet<String>,
    tracker: Tracker,
}

impl DirMonitor {
    /// `dir` must be absolute and an existing directory.
    pub fn open(spec: &str, dir: PathBuf, opts: &MonitorOptions) -> Result<Self, MonitorError> {
        let inotify = new_inotify().map_err(|source| MonitorError::Sys {
            spec: spec.to_owned(),
            syscall: "inotify_init1",
            source,
        })?;
        let watch = inotify
            .add_watch(&dir, DIR_EVENTS)
            .map_err(|source| MonitorError::Watch {
                spec: spec.to_owned(),
                path: dir.clone(),
                source,
            })?;
        Ok(DirMonitor {
            spec: spec.to_owned(),
            local: inotify_sees_every_change(&dir),
            dir,
            inotify,
            watch: Some(watch),
            followed_symlinks: HashSet::new(),
            tracker: Tracker::new(spec, opts),
        })
    }

    fn candidate(&self, name: &str) -> Candidate {
        let path = self.dir.join(name);
        Candidate {
            id: path.to_string_lossy().into_owned(),
            name: name.to_owned(),
            path,
        }
    }

    /// Returns true on queue overflow.
    fn handle_event(&mut self, event: InotifyEvent, now: Instant, events: &mut Vec<Event>) -> bool {
        match classify(event.mask) {
            Happening::Overflow => return true,
            Happening::WatchGone => self.drop_watch(event.wd),
            Happening::Ignore => {}
            what => {
                if let Some(name) = config_name(&event.name) {
                    let cand = self.candidate(name);
                    // Under nofollow a symlink is judged by itself: no need to know.
                    if !self.tracker.nofollow() {
                        let is_symlink = std::fs::symlink_metadata(&cand.path)
                            .is_ok_and(|meta| meta.file_type().is_symlink());
                        self.note_followed_symlink(name, is_symlink);
                    }
                    self.tracker.react(what, cand, now, events);
                }
            }
        }
        false
    }

    fn note_followed_symlink(&mut self, name: &str, is_symlink: bool) {
        if is_symlink {
            self.followed_symlinks.insert(name.to_owned());
        } else {
            self.followed_symlinks.remove(name);
        }
    }

    fn drop_watch(&mut self, wd: WatchDescriptor) {
        if self.watch != Some(wd) {
            return; // a stale notice about a watch already replaced
        }
        warn!("{}: directory {} went away", self.spec, self.dir.display());
        self.watch = None;
        // Already gone after IN_IGNORED; after IN_MOVE_SELF it would follow the renamed dir.
        let _ = self.inotify.rm_watch(wd);
    }

    fn ensure_watch(&mut self) {
        if self.watch.is_some() {
            return;
        }
        match self.inotify.add_watch(&self.dir, DIR_EVENTS) {
            Ok(wd) => {
                warn!("{}: watching {} again", self.spec, self.dir.display());
                self.watch = Some(wd);
                self.local = inotify_sees_every_change(&self.dir);
            }
            Err(err) => debug!("{}: inotify_add_watch: {err}", self.spec),
        }
    }

    /// Every config in the directory; None if it cannot be read (then nothing is removed).
    /// Notes which are symlinks on the way (the directory entry says, no extra syscall).
    fn list(&mut self) -> Option<Vec<(Candidate, FileState)>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == ErrorKind::NotFound => return Some(Vec::new()),
            Err(err) => {
                warn!("{}: opendir {}: {err}", self.spec, self.dir.display());
                return None;
            }
        };
        let mut symlinks = HashSet::new();
        let listed = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                if entry.file_type().is_ok_and(|t| t.is_symlink()) {
                    symlinks.insert(name.clone());
                }
                Some(name)
            })
            .filter(|name| is_config_name(name))
            .map(|name| self.candidate(&name))
            .collect();
        let found = self.tracker.stat_listed(listed);
        if self.tracker.nofollow() {
            symlinks.clear();
        }
        // Only the symlinks that are configs: a target changing unseen matters for them.
        symlinks.retain(|name| found.iter().any(|(cand, _)| &cand.name == name));
        self.followed_symlinks = symlinks;
        Some(found)
    }
}

watched_by_fields!(DirMonitor);

impl Monitor for DirMonitor {
    watched_monitor_methods!();

    fn rescan(&mut self) -> Vec<Event> {
        self.ensure_watch();
        match self.list() {
            Some(found) => self.tracker.diff(found),
            None => Vec::new(),
        }
    }

    fn needs_periodic_rescan(&self) -> bool {
        self.watch.is_none() || !self.local || !self.followed_symlinks.is_empty()
    }
}

#[cfg(test)]
mod tests;
