//! The feed's table of configs turning updates into events as for files, and the checks of
//! a store's fields.

use std::time::{Duration, SystemTime};

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
