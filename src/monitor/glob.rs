//! glob:// — the config files matching a shell pattern. The pattern is evaluated at rescan;
//! for quick reaction the directories its directory part matches are watched with inotify
//! (refreshed at rescan, so a directory created later is only noticed by the next rescan).

use std::collections::HashMap;

use std::path::{Path, PathBuf};
use std::time::Instant;

use glob::{MatchOptions, Pattern};
use nix::sys::inotify::{Inotify, InotifyEvent, WatchDescriptor};
use tracing::debug;

use super::stat::FileState;
use super::tracker::{Candidate, Tracker};
use super::watch::{
    classify, config_name, new_inotify, watched_by_fields, watched_monitor_methods, Happening,
    DIR_EVENTS,
};
use super::{Event, Monitor, MonitorError, MonitorOptions};
use crate::config::is_config_name;

/// Like the shell (glob(3) without GLOB_PERIOD): `*` matches neither `/` nor a leading dot.
const SHELL_LIKE: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

pub struct GlobMonitor {
    spec: String,
    /// Absolute.
    pattern: String,
    matcher: Pattern,
    /// The pattern's directory part: which directories to watch.
    dir_pattern: String,
    inotify: Inotify,
    watched_dirs: HashMap<WatchDescriptor, PathBuf>,
    watches: HashMap<PathBuf, WatchDescriptor>,
    tracker: Tracker,
}

impl GlobMonitor {
    /// `pattern` must be absolute.
    pub fn open(spec: &str, pattern: String, opts: &MonitorOptions) -> Result<Self, MonitorError> {
        let matcher = Pattern::new(&pattern).map_err(|source| MonitorError::Pattern {
            spec: spec.to_owned(),
            source,
        })?;
        let inotify = new_inotify().map_err(|source| MonitorError::Sys {
            spec: spec.to_owned(),
            syscall: "inotify_init1",
            source,
        })?;
        let mut monitor = GlobMonitor {
            spec: spec.to_owned(),
            dir_pattern: directory_part(&pattern).to_owned(),
            pattern,
            matcher,
            inotify,
            watched_dirs: HashMap::new(),
            watches: HashMap::new(),
            tracker: Tracker::new(spec, opts),
        };
        monitor.refresh_watches();
        Ok(monitor)
    }

    /// Watch exactly the existing directories the directory part matches.
    fn refresh_watches(&mut self) {
        let dirs: Vec<PathBuf> = match glob::glob_with(&self.dir_pattern, SHELL_LIKE) {
            Ok(paths) => paths
                .filter_map(Result::ok)
                .filter(|p| p.is_dir())
                .collect(),
            Err(_) => Vec::new(), // validated at open; the directory part is a prefix of it
        };
        let stale: Vec<PathBuf> = self
            .watches
            .keys()
            .filter(|dir| !dirs.contains(dir))
            .cloned()
            .collect();
        for dir in stale {
            self.unwatch(&dir);
        }
        for dir in dirs {
            if !self.watches.contains_key(&dir) {
                self.watch(dir);
            }
        }
    }

    fn watch(&mut self, dir: PathBuf) {
        match self.inotify.add_watch(&dir, DIR_EVENTS) {
            Ok(wd) => {
                debug!("{}: watching {}", self.spec, dir.display());
                self.watched_dirs.insert(wd, dir.clone());
                self.watches.insert(dir, wd);
            }
            Err(err) => debug!(
                "{}: inotify_add_watch on {}: {err}",
                self.spec,
                dir.display()
            ),
        }
    }

    fn unwatch(&mut self, dir: &Path) {
        if let Some(wd) = self.watches.remove(dir) {
            self.watched_dirs.remove(&wd);
            let _ = self.inotify.rm_watch(wd); // fails harmlessly if the kernel dropped it
        }
    }

    /// The file an event names, if it matches the pattern and looks like a config.
    fn candidate(&self, wd: WatchDescriptor, name: &str) -> Option<Candidate> {
        let path = self.watched_dirs.get(&wd)?.join(name);
        self.matcher
            .matches_path_with(&path, SHELL_LIKE)
            .then(|| Candidate::from_path(path))
    }

    /// Returns true on queue overflow.
    fn handle_event(&mut self, event: InotifyEvent, now: Instant, events: &mut Vec<Event>) -> bool {
        match classify(event.mask) {
            Happening::Overflow => return true,
            Happening::WatchGone => {
                if let Some(dir) = self.watched_dirs.get(&event.wd).cloned() {
                    self.unwatch(&dir);
                }
            }
            Happening::Ignore => {}
            what => {
                let cand = config_name(&event.name).and_then(|name| self.candidate(event.wd, name));
                if let Some(cand) = cand {
                    self.tracker.react(what, cand, now, events);
                }
            }
        }
        false
    }

    fn list(&mut self) -> Vec<(Candidate, FileState)> {
        let Ok(paths) = glob::glob_with(&self.pattern, SHELL_LIKE) else {
            return Vec::new(); // validated at open
        };
        let listed = paths
            .filter_map(Result::ok)
            .filter(|path| file_name_str(path).is_some_and(is_config_name))
            .map(Candidate::from_path)
            .collect();
        self.tracker.stat_listed(listed)
    }
}

fn file_name_str(path: &Path) -> Option<&str> {
    path.file_name()?.to_str()
}

/// `/opt/apps/app*/app*.*` -> `/opt/apps/app*`; `/x*.ini` -> `/`.
fn directory_part(pattern: &str) -> &str {
    match pattern.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((dir, _)) => dir,
    }
}

watched_by_fields!(GlobMonitor);

impl Monitor for GlobMonitor {
    watched_monitor_methods!();

    fn rescan(&mut self) -> Vec<Event> {
        self.refresh_watches();
        let found = self.list();
        self.tracker.diff(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::testutil::{next_events, opts, summary, wait_readable, write_old};
    use crate::monitor::EventKind::{Add, Change, Remove};

    /// `<tmp>/app*/app*.*` over app1/app1.ini, app2/app2.yaml and some non-matches.
    fn apps() -> (tempfile::TempDir, GlobMonitor) {
        let tmp = tempfile::tempdir().unwrap();
        for (dir, file) in [
            ("app1", "app1.ini"),
            ("app1", "app1.skel"),
            ("app2", "app2.yaml"),
            ("app2", "other.ini"),
            ("lib", "app9.ini"),
        ] {
            std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
            write_old(&tmp.path().join(dir).join(file), "[uwsgi]\n");
        }
        let pattern = format!("{}/app*/app*.*", tmp.path().display());
        let spec = format!("glob://{pattern}");
        let monitor = GlobMonitor::open(&spec, pattern, &opts(false)).unwrap();
        (tmp, monitor)
    }

    fn path_of(tmp: &tempfile::TempDir, rel: &str) -> String {
        tmp.path().join(rel).to_str().unwrap().to_owned()
    }

    #[test]
    fn pattern_matches_configs_in_two_directories() {
        let (tmp, mut monitor) = apps();
        let mut events = monitor.rescan();
        events.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(
            summary(&events),
            [
                (Add, path_of(&tmp, "app1/app1.ini")),
                (Add, path_of(&tmp, "app2/app2.yaml"))
            ]
        );
        assert_eq!(events[0].id, events[0].name);
        assert_eq!(events[0].path, tmp.path().join("app1/app1.ini"));
        assert!(monitor.rescan().is_empty());
        let mut watched: Vec<_> = monitor.watches.keys().cloned().collect();
        watched.sort();
        assert_eq!(watched, [tmp.path().join("app1"), tmp.path().join("app2")]);
    }

    #[test]
    fn new_matching_file_is_found_by_inotify_without_rescan() {
        let (tmp, mut monitor) = apps();
        monitor.rescan();

        std::fs::write(tmp.path().join("app2/nomatch.ini"), "[uwsgi]\n").unwrap();
        wait_readable(&monitor);
        assert!(monitor.poll(Instant::now()).is_empty());

        std::fs::write(tmp.path().join("app2/app2b.ini"), "[uwsgi]\n").unwrap();
        let added = path_of(&tmp, "app2/app2b.ini");
        assert_eq!(summary(&next_events(&mut monitor)), [(Add, added.clone())]);

        std::fs::write(tmp.path().join("app2/app2b.ini"), "[uwsgi]\nx=1\n").unwrap();
        assert_eq!(
            summary(&next_events(&mut monitor)),
            [(Change, added.clone())]
        );

        std::fs::remove_file(tmp.path().join("app2/app2b.ini")).unwrap();
        assert_eq!(summary(&next_events(&mut monitor)), [(Remove, added)]);
    }

    #[test]
    fn new_directory_is_watched_from_the_next_rescan() {
        let (tmp, mut monitor) = apps();
        monitor.rescan();
        std::fs::create_dir(tmp.path().join("app3")).unwrap();
        assert!(monitor.rescan().is_empty());

        std::fs::write(tmp.path().join("app3/app3.xml"), "<uwsgi/>").unwrap();
        let added = path_of(&tmp, "app3/app3.xml");
        assert_eq!(summary(&next_events(&mut monitor)), [(Add, added)]);
    }

    #[test]
    fn removed_directory_is_unwatched_and_its_configs_removed() {
        let (tmp, mut monitor) = apps();
        monitor.rescan();
        std::fs::remove_dir_all(tmp.path().join("app1")).unwrap();
        let removed = path_of(&tmp, "app1/app1.ini");
        assert_eq!(summary(&next_events(&mut monitor)), [(Remove, removed)]);
        assert!(monitor.rescan().is_empty());
        assert!(!monitor.watches.contains_key(&tmp.path().join("app1")));
    }

    #[test]
    fn directory_part_of_patterns() {
        assert_eq!(directory_part("/opt/apps/app*/app*.*"), "/opt/apps/app*");
        assert_eq!(directory_part("/etc/vassals/*.ini"), "/etc/vassals");
        assert_eq!(directory_part("/x*.ini"), "/");
    }

    #[test]
    fn wildcards_skip_dot_files_like_the_shell() {
        let tmp = tempfile::tempdir().unwrap();
        write_old(&tmp.path().join(".hidden.ini"), "");
        write_old(&tmp.path().join("shown.ini"), "");
        let pattern = format!("{}/*.ini", tmp.path().display());
        let mut monitor = GlobMonitor::open("g", pattern, &opts(false)).unwrap();
        let events = monitor.rescan();
        assert_eq!(summary(&events), [(Add, path_of(&tmp, "shown.ini"))]);
    }
}
