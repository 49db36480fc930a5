//! Thin helpers over nix's inotify: a non-blocking instance, draining it, and what an event
//! mask means for a config file.

use std::ffi::OsString;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent};
use std::time::Instant;
use tracing::warn;

use super::tracker::Tracker;
use super::{Event, Monitor};

use crate::config::is_config_name;

/// What we ask for on a directory holding configs (non-recursive).
pub(crate) const DIR_EVENTS: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_CLOSE_WRITE)
    .union(AddWatchFlags::IN_MODIFY)
    .union(AddWatchFlags::IN_ATTRIB)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_ONLYDIR);

/// What an inotify event means to a monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Happening {
    /// Written and closed, renamed into place, or touched: look at it after the quiet period.
    Settle,
    /// Being written: wait for the close.
    Writing,
    /// A new name: complete at once if it is a symlink or hard link, else wait for the close.
    Created,
    /// Deleted or renamed away.
    Gone,
    /// The watched directory itself went away (or our watch on it).
    WatchGone,
    /// The kernel dropped events: only a rescan can tell what happened.
    Overflow,
    Ignore,
}

pub(crate) fn new_inotify() -> nix::Result<Inotify> {
    Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
}

pub(crate) fn classify(mask: AddWatchFlags) -> Happening {
    use AddWatchFlags as F;
    if mask.contains(F::IN_Q_OVERFLOW) {
        Happening::Overflow
    } else if mask.intersects(F::IN_IGNORED | F::IN_DELETE_SELF | F::IN_MOVE_SELF) {
        Happening::WatchGone
    } else if mask.contains(F::IN_ISDIR) {
        Happening::Ignore
    } else if mask.intersects(F::IN_DELETE | F::IN_MOVED_FROM) {
        Happening::Gone
    } else if mask.intersects(F::IN_CLOSE_WRITE | F::IN_MOVED_TO | F::IN_ATTRIB) {
        Happening::Settle
    } else if mask.contains(F::IN_MODIFY) {
        Happening::Writing
    } else if mask.contains(F::IN_CREATE) {
        Happening::Created
    } else {
        Happening::Ignore
    }
}

/// Everything queued right now (the fd is non-blocking).
pub(crate) fn drain(inotify: &Inotify, spec: &str) -> Vec<InotifyEvent> {
    let mut all = Vec::new();
    loop {
        match inotify.read_events() {
            Ok(events) if events.is_empty() => break,
            Ok(events) => all.extend(events),
            Err(Errno::EAGAIN) => break,
            Err(Errno::EINTR) => continue,
            Err(err) => {
                warn!("{spec}: reading inotify events: {err}");
                break;
            }
        }
    }
    all
}

/// What dir:// and glob:// have in common: an inotify fd whose events each handles its own
/// way, a full rescan, and a tracker that settles what they saw.
pub(crate) trait Watched: Monitor {
    fn inotify(&self) -> &Inotify;
    fn tracker_mut(&mut self) -> &mut Tracker;
    /// Handle one inotify event; true when it says the queue overflowed.
    fn on_inotify(&mut self, event: InotifyEvent, now: Instant, events: &mut Vec<Event>) -> bool;
}

/// `Watched` for a monitor with `inotify` and `tracker` fields and a `handle_event` method.
macro_rules! watched_by_fields {
    ($monitor:ty) => {
        impl $crate::monitor::watch::Watched for $monitor {
            fn inotify(&self) -> &nix::sys::inotify::Inotify {
                &self.inotify
            }

            fn tracker_mut(&mut self) -> &mut $crate::monitor::tracker::Tracker {
                &mut self.tracker
            }

            fn on_inotify(
                &mut self,
                event: nix::sys::inotify::InotifyEvent,
                now: std::time::Instant,
                events: &mut Vec<$crate::monitor::Event>,
            ) -> bool {
                self.handle_event(event, now, events)
            }
        }
    };
}
pub(crate) use watched_by_fields;

/// The [`crate::monitor::Monitor`] methods a watched monitor (dir://, glob://) has from its
/// fields alone (`spec`, `inotify`, `tracker`); each writes its own `rescan`.
macro_rules! watched_monitor_methods {
    () => {
        fn spec(&self) -> &str {
            &self.spec
        }

        fn watch_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
            Some(std::os::fd::AsFd::as_fd(&self.inotify))
        }

        fn poll(&mut self, now: std::time::Instant) -> Vec<$crate::monitor::Event> {
            $crate::monitor::watch::poll_watched(self, now)
        }

        fn deadline(&self) -> Option<std::time::Instant> {
            self.tracker.deadline()
        }

        fn known(&self) -> serde_json::Value {
            self.tracker.known()
        }

        fn adopt_known(&mut self, known: serde_json::Value) {
            self.tracker.adopt_known(known);
        }
    };
}
pub(crate) use watched_monitor_methods;

/// One poll of a watched monitor: every queued event handled, a rescan after an overflow,
/// then the configs that settled.
pub(crate) fn poll_watched(monitor: &mut impl Watched, now: Instant) -> Vec<Event> {
    let mut events = Vec::new();
    let mut overflow = false;
    for event in drain(monitor.inotify(), monitor.spec()) {
        overflow |= monitor.on_inotify(event, now, &mut events);
    }
    if overflow {
        warn!("{}: inotify queue overflowed, rescanning", monitor.spec());
        events.extend(monitor.rescan());
    }
    events.extend(monitor.tracker_mut().settle_due(now));
    events
}

/// The event's file name if it names a config (non-UTF-8 names never do).
pub(crate) fn config_name(name: &Option<OsString>) -> Option<&str> {
    let name = name.as_ref()?.to_str()?;
    is_config_name(name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use AddWatchFlags as F;

    #[test]
    fn masks_mean_what_they_should() {
        assert_eq!(classify(F::IN_Q_OVERFLOW), Happening::Overflow);
        assert_eq!(classify(F::IN_CLOSE_WRITE), Happening::Settle);
        assert_eq!(classify(F::IN_MOVED_TO), Happening::Settle);
        assert_eq!(classify(F::IN_ATTRIB), Happening::Settle);
        assert_eq!(classify(F::IN_MODIFY), Happening::Writing);
        assert_eq!(classify(F::IN_CREATE), Happening::Created);
        assert_eq!(classify(F::IN_DELETE), Happening::Gone);
        assert_eq!(classify(F::IN_MOVED_FROM), Happening::Gone);
        assert_eq!(classify(F::IN_CREATE | F::IN_ISDIR), Happening::Ignore);
        assert_eq!(classify(F::IN_DELETE_SELF), Happening::WatchGone);
        assert_eq!(classify(F::IN_IGNORED), Happening::WatchGone);
    }
}
