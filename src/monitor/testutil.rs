//! Test helpers: wait for inotify instead of sleeping, and set mtimes explicitly (filesystem
//! clocks are coarse, so two writes in a row may share an mtime).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::{Event, EventKind, Monitor, MonitorOptions};

pub(crate) fn opts(nofollow: bool) -> MonitorOptions {
    MonitorOptions {
        freq: std::time::Duration::from_secs(60),
        nofollow,
        debounce: Duration::ZERO,
    }
}

/// Block (at most 10 s) until the monitor's inotify fd is readable.
pub(crate) fn wait_readable(monitor: &dyn Monitor) {
    let fd = monitor.watch_fd().expect("an inotify fd");
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    let ready = poll(&mut fds, PollTimeout::from(10_000u16)).expect("poll");
    assert_eq!(ready, 1, "no inotify event within 10 s");
}

/// What the emperor loop would get: wait for the fd, poll, and poll again at the deadline.
pub(crate) fn next_events(monitor: &mut dyn Monitor) -> Vec<Event> {
    wait_readable(monitor);
    let mut events = monitor.poll(Instant::now());
    if let Some(deadline) = monitor.deadline() {
        events.extend(monitor.poll(deadline));
    }
    events
}

/// (kind, name) pairs, for compact assertions.
pub(crate) fn summary(events: &[Event]) -> Vec<(EventKind, String)> {
    events.iter().map(|e| (e.kind, e.name.clone())).collect()
}

pub(crate) fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Set mtime to `secs` after the epoch; `link_itself` for a symlink's own time.
pub(crate) fn set_mtime(path: &Path, secs: u64, link_itself: bool) {
    let time = TimeSpec::new(secs as _, 0);
    let flag = if link_itself {
        UtimensatFlags::NoFollowSymlink
    } else {
        UtimensatFlags::FollowSymlink
    };
    utimensat(None, path, &time, &time, flag).expect("utimensat");
}

/// A config written long ago: any later write gives it a different mtime.
pub(crate) fn write_old(path: &Path, content: &str) {
    std::fs::write(path, content).expect("write");
    set_mtime(path, 1_000_000_000, false);
}
