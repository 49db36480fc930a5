//! Thin helpers over nix's inotify: a non-blocking instance, draining it, and what an event
//! mask means for a config file.

use std::ffi::OsString;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent};
use tracing::warn;

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
