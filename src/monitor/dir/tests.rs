//! dir:// on real directories of this host: inotify's events, rescans, symlinks followed or not,
//! a directory that goes away.

use crate::monitor::watch::drain;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::monitor::testutil::{
    at, next_events, opts, set_mtime, summary, wait_readable, write_old,
};
use crate::monitor::EventKind::{Add, Change, Remove};

fn open_dir(dir: &Path, nofollow: bool) -> DirMonitor {
    let spec = format!("dir://{}", dir.display());
    DirMonitor::open(&spec, dir.to_path_buf(), &opts(nofollow)).unwrap()
}

/// inotify sees every change in a local directory of plain files: no periodic rescan.
/// A followed symlink's target can change unseen, and so can a directory that went away.
#[test]
fn a_periodic_rescan_is_asked_for_only_where_inotify_cannot_see() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    write_old(&dir.join("plain.ini"), "[uwsgi]\n");
    let target = tmp.path().join("elsewhere.ini");
    write_old(&target, "[uwsgi]\n");
    let mut monitor = open_dir(&dir, false);
    monitor.rescan();
    assert!(
        !monitor.needs_periodic_rescan(),
        "plain files in a local dir"
    );

    symlink(&target, dir.join("linked.ini")).unwrap();
    next_events(&mut monitor);
    assert!(monitor.needs_periodic_rescan(), "a followed symlink");
    std::fs::remove_file(dir.join("linked.ini")).unwrap();
    next_events(&mut monitor);
    assert!(!monitor.needs_periodic_rescan(), "the symlink is gone");

    // Under nofollow a symlink is judged by its own mtime, which inotify sees.
    symlink(&target, dir.join("linked.ini")).unwrap();
    let mut nofollow = open_dir(&dir, true);
    nofollow.rescan();
    assert!(
        !nofollow.needs_periodic_rescan(),
        "a symlink under nofollow"
    );
    // And a rescan finds the symlink too.
    let mut follow = open_dir(&dir, false);
    follow.rescan();
    assert!(
        follow.needs_periodic_rescan(),
        "a followed symlink found by a rescan"
    );

    std::fs::remove_file(dir.join("linked.ini")).unwrap();
    next_events(&mut monitor);
    std::fs::rename(&dir, tmp.path().join("moved")).unwrap();
    next_events(&mut monitor);
    assert!(monitor.needs_periodic_rescan(), "the directory went away");
}

#[test]
fn initial_rescan_lists_configs_only_and_then_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        "a.ini",
        "b.yaml",
        "c.skel",
        ".a.ini.swp",
        "a.ini.socket",
        "README",
    ] {
        write_old(&tmp.path().join(name), "[uwsgi]\n");
    }
    std::fs::create_dir(tmp.path().join("sub.ini")).unwrap();
    let mut monitor = open_dir(tmp.path(), false);

    let mut events = monitor.rescan();
    events.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        summary(&events),
        [(Add, "a.ini".into()), (Add, "b.yaml".into())]
    );
    let a = &events[0];
    let path = tmp.path().join("a.ini");
    assert_eq!(a.id, path.to_str().unwrap());
    assert_eq!(a.path, path);
    assert_eq!(a.monitor, monitor.spec());
    assert_eq!(a.mtime, Some(at(1_000_000_000)));
    let me = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    assert_eq!(a.owner, Some(me));

    assert!(monitor.rescan().is_empty());
    assert!(monitor.poll(Instant::now()).is_empty());
}

#[test]
fn file_written_in_chunks_is_added_once_after_close_and_debounce() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = format!("dir://{}", tmp.path().display());
    let debounce = Duration::from_secs(1);
    let options = MonitorOptions {
        freq: std::time::Duration::from_secs(60),
        nofollow: false,
        debounce,
    };
    let mut monitor = DirMonitor::open(&spec, tmp.path().into(), &options).unwrap();
    assert!(monitor.rescan().is_empty());

    let mut file = std::fs::File::create(tmp.path().join("app.ini")).unwrap();
    file.write_all(b"[uwsgi]\n").unwrap();
    wait_readable(&monitor);
    assert!(monitor.poll(Instant::now()).is_empty());
    file.write_all(b"socket = :3031\n").unwrap();
    assert!(monitor.poll(Instant::now()).is_empty());
    assert_eq!(monitor.deadline(), None);
    drop(file);

    wait_readable(&monitor);
    let now = Instant::now();
    assert!(
        monitor.poll(now).is_empty(),
        "no event before the quiet period"
    );
    assert_eq!(monitor.deadline(), Some(now + debounce));
    assert!(monitor.poll(now + debounce / 2).is_empty());
    let events = monitor.poll(now + debounce);
    assert_eq!(summary(&events), [(Add, "app.ini".into())]);
    assert_eq!(monitor.deadline(), None);
}

#[test]
fn touch_rewrite_remove_and_recreate() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("app.ini");
    write_old(&path, "[uwsgi]\n");
    let mut monitor = open_dir(tmp.path(), false);
    assert_eq!(summary(&monitor.rescan()), [(Add, "app.ini".into())]);

    set_mtime(&path, 1_100_000_000, false);
    let events = next_events(&mut monitor);
    assert_eq!(summary(&events), [(Change, "app.ini".into())]);
    assert_eq!(events[0].mtime, Some(at(1_100_000_000)));

    std::fs::write(&path, "[uwsgi]\nprocesses = 2\n").unwrap();
    assert_eq!(
        summary(&next_events(&mut monitor)),
        [(Change, "app.ini".into())]
    );

    std::fs::remove_file(&path).unwrap();
    let events = next_events(&mut monitor);
    assert_eq!(summary(&events), [(Remove, "app.ini".into())]);
    assert_eq!((events[0].owner, events[0].mtime), (None, None));

    std::fs::write(&path, "[uwsgi]\n").unwrap();
    assert_eq!(
        summary(&next_events(&mut monitor)),
        [(Add, "app.ini".into())]
    );
}

#[test]
fn second_write_with_the_same_mtime_is_still_a_change() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("app.ini");
    write_old(&path, "[uwsgi]\n");
    let mut monitor = open_dir(tmp.path(), false);
    monitor.rescan();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"x = 1\n")
        .unwrap();
    set_mtime(&path, 1_000_000_000, false); // as if the clock had not moved
    assert_eq!(
        summary(&next_events(&mut monitor)),
        [(Change, "app.ini".into())]
    );
}

#[test]
fn rename_into_and_out_of_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let vassals = tmp.path().join("vassals");
    std::fs::create_dir(&vassals).unwrap();
    let outside = tmp.path().join("staging.ini");
    write_old(&outside, "[uwsgi]\n");
    let mut monitor = open_dir(&vassals, false);
    monitor.rescan();

    std::fs::rename(&outside, vassals.join("app.ini")).unwrap();
    assert_eq!(
        summary(&next_events(&mut monitor)),
        [(Add, "app.ini".into())]
    );

    std::fs::rename(vassals.join("app.ini"), vassals.join("app.ini.off")).unwrap();
    assert_eq!(
        summary(&next_events(&mut monitor)),
        [(Remove, "app.ini".into())]
    );

    write_old(&vassals.join("new.tmp"), "[uwsgi]\n");
    std::fs::rename(vassals.join("new.tmp"), vassals.join("new.json")).unwrap();
    assert_eq!(
        summary(&next_events(&mut monitor)),
        [(Add, "new.json".into())]
    );

    std::fs::rename(vassals.join("new.json"), &outside).unwrap();
    assert_eq!(
        summary(&next_events(&mut monitor)),
        [(Remove, "new.json".into())]
    );
}

#[test]
fn links_are_complete_when_created() {
    let tmp = tempfile::tempdir().unwrap();
    let vassals = tmp.path().join("vassals");
    std::fs::create_dir(&vassals).unwrap();
    let target = tmp.path().join("shared.ini");
    write_old(&target, "[uwsgi]\n");
    let mut monitor = open_dir(&vassals, false);
    monitor.rescan();

    symlink(&target, vassals.join("soft.ini")).unwrap();
    assert_eq!(
        summary(&next_events(&mut monitor)),
        [(Add, "soft.ini".into())]
    );
    std::fs::hard_link(&target, vassals.join("hard.ini")).unwrap();
    assert_eq!(
        summary(&next_events(&mut monitor)),
        [(Add, "hard.ini".into())]
    );
}

#[test]
fn symlink_follow_uses_target_nofollow_uses_link() {
    let tmp = tempfile::tempdir().unwrap();
    let vassals = tmp.path().join("vassals");
    std::fs::create_dir(&vassals).unwrap();
    let target = tmp.path().join("shared.ini");
    write_old(&target, "[uwsgi]\n");
    let link = vassals.join("app.ini");
    symlink(&target, &link).unwrap();
    set_mtime(&link, 1_200_000_000, true);

    let mut follow = open_dir(&vassals, false);
    let mut nofollow = open_dir(&vassals, true);
    assert_eq!(follow.rescan()[0].mtime, Some(at(1_000_000_000)));
    assert_eq!(nofollow.rescan()[0].mtime, Some(at(1_200_000_000)));

    // touch --no-dereference: only the nofollow monitor sees a change
    set_mtime(&link, 1_300_000_000, true);
    let events = next_events(&mut nofollow);
    assert_eq!(summary(&events), [(Change, "app.ini".into())]);
    assert_eq!(events[0].mtime, Some(at(1_300_000_000)));
    assert!(next_events(&mut follow).is_empty());

    // the target outside the directory: invisible to inotify, caught by rescan
    set_mtime(&target, 1_400_000_000, false);
    assert!(follow.poll(Instant::now()).is_empty());
    let events = follow.rescan();
    assert_eq!(summary(&events), [(Change, "app.ini".into())]);
    assert_eq!(events[0].mtime, Some(at(1_400_000_000)));
    assert!(nofollow.rescan().is_empty());
}

#[test]
fn dangling_link_is_a_config_only_under_nofollow() {
    let tmp = tempfile::tempdir().unwrap();
    let mut follow = open_dir(tmp.path(), false);
    let mut nofollow = open_dir(tmp.path(), true);
    follow.rescan();
    nofollow.rescan();

    symlink("/no/such/target.ini", tmp.path().join("app.ini")).unwrap();
    assert!(next_events(&mut follow).is_empty());
    assert_eq!(
        summary(&next_events(&mut nofollow)),
        [(Add, "app.ini".into())]
    );
    assert!(follow.rescan().is_empty());
    assert!(nofollow.rescan().is_empty());
}

#[test]
fn rescan_catches_what_unread_events_missed() {
    let tmp = tempfile::tempdir().unwrap();
    write_old(&tmp.path().join("old.ini"), "[uwsgi]\n");
    write_old(&tmp.path().join("kept.ini"), "[uwsgi]\n");
    let mut monitor = open_dir(tmp.path(), false);
    assert_eq!(monitor.rescan().len(), 2);

    std::fs::remove_file(tmp.path().join("old.ini")).unwrap();
    std::fs::write(tmp.path().join("new.ini"), "[uwsgi]\n").unwrap();
    std::fs::write(tmp.path().join("kept.ini"), "[uwsgi]\nx = 1\n").unwrap();
    wait_readable(&monitor);
    drain(&monitor.inotify, "lost"); // as if the queue had overflowed
    assert!(monitor.poll(Instant::now()).is_empty());

    let mut events = monitor.rescan();
    events.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        summary(&events),
        [
            (Change, "kept.ini".into()),
            (Add, "new.ini".into()),
            (Remove, "old.ini".into())
        ]
    );
}

#[test]
fn directory_removed_and_recreated_is_watched_again_after_rescan() {
    let tmp = tempfile::tempdir().unwrap();
    let vassals = tmp.path().join("vassals");
    std::fs::create_dir(&vassals).unwrap();
    write_old(&vassals.join("app.ini"), "[uwsgi]\n");
    let mut monitor = open_dir(&vassals, false);
    monitor.rescan();

    std::fs::remove_dir_all(&vassals).unwrap();
    assert_eq!(
        summary(&next_events(&mut monitor)),
        [(Remove, "app.ini".into())]
    );
    assert_eq!(monitor.watch, None);

    std::fs::create_dir(&vassals).unwrap();
    assert!(monitor.rescan().is_empty());
    std::fs::write(vassals.join("again.ini"), "[uwsgi]\n").unwrap();
    assert_eq!(
        summary(&next_events(&mut monitor)),
        [(Add, "again.ini".into())]
    );
}
