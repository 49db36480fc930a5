//! The emperor's log formats: journald's (priority prefixes, no timestamps) when stderr is the
//! journal stream systemd named, and one JSON object per line with `--log-format json`; the
//! runtimes log the same way as the emperor.

mod common;

use common::*;
use emperor::logging::journal;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

/// The emperor's log lines, once `a.ini`'s payload has started (a runtime's line).
fn lines_with_a_running_vassal(emperor: &Emperor) -> Vec<String> {
    emperor.write("a.ini", &ini("sleep 1000", &[]));
    emperor.running("a.ini");
    emperor.wait_until("the runtime's line", || {
        emperor.log().contains("payload started")
    });
    emperor.log().lines().map(str::to_string).collect()
}

/// An emperor in `root` whose stderr is the journal stream (`JOURNAL_STREAM` names it), with
/// journald's socket at `socket`.
fn launch_under_journald(root: &Path, socket: &Path) -> Emperor {
    // The harness's stderr file, made first so its device and inode can be named.
    let log = root.join("emperor.log");
    std::fs::write(&log, "").unwrap();
    let meta = std::fs::metadata(&log).unwrap();
    Emperor::launch(
        root,
        Options {
            env: vec![
                ("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino())),
                (journal::SOCKET_VARIABLE, socket.display().to_string()),
            ],
            ..Options::default()
        },
    )
}

#[test]
fn under_journald_lines_carry_a_priority_and_no_timestamp() {
    let tmp = open_tempdir();
    // No journald socket there: the lines go to stderr, the journal stream.
    let emperor = launch_under_journald(tmp.path(), &tmp.path().join("no-journal.sock"));
    let lines = lines_with_a_running_vassal(&emperor);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("<6>") || l.starts_with("<4>") || l.starts_with("<3>")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.starts_with("<6>emperor started")));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>vassal{config=") && l.contains("payload started")),
        "the runtime logs for the journal too: {lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("Z  INFO")),
        "no timestamps"
    );
}

/// One record journald would have received: its fields by name.
type JournalRecord = std::collections::HashMap<String, String>;

/// Records on `socket` until `done` holds for what was received, for up to 30 s.
fn journal_records(
    socket: &UnixDatagram,
    mut done: impl FnMut(&[JournalRecord]) -> bool,
) -> Vec<JournalRecord> {
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut records = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while !done(&records) {
        assert!(Instant::now() < deadline, "records so far: {records:#?}");
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        let fields = journal::decode_record(&buf[..n]).expect("a well-formed record");
        records.push(
            fields
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect(),
        );
    }
    records
}

/// The record about `vassal` whose message holds `line`.
fn said<'a>(records: &'a [JournalRecord], vassal: &str, line: &str) -> Option<&'a JournalRecord> {
    records.iter().find(|r| {
        r.get("VASSAL").map(String::as_str) == Some(vassal)
            && r.get("MESSAGE").is_some_and(|m| m.contains(line))
    })
}

#[test]
fn under_journald_records_reach_its_socket_with_the_vassal_as_a_field() {
    let tmp = open_tempdir();
    let socket_path = tmp.path().join("journal.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let emperor = launch_under_journald(tmp.path(), &socket_path);
    for name in ["a", "b"] {
        emperor.write(
            &format!("{name}.ini"),
            &ini(
                &format!("sh -c 'echo hello from {name}; exec sleep 1000'"),
                &[],
            ),
        );
    }
    let records = journal_records(&socket, |records| {
        said(records, "a.ini", "payload: hello from a").is_some()
            && said(records, "b.ini", "payload: hello from b").is_some()
    });
    // The payload's line, from its runtime: tagged with its vassal and tenant.
    let line = said(&records, "a.ini", "payload: hello from a").unwrap();
    assert!(
        line["MESSAGE"].starts_with("vassal{config=") && line["PRIORITY"] == "6",
        "{line:#?}"
    );
    assert!(
        line["SYSLOG_IDENTIFIER"].starts_with("emperor"),
        "{line:#?}"
    );
    assert!(
        line.get("TENANT")
            .is_some_and(|t| t.contains(&*emperor.vassals.to_string_lossy())),
        "the tenant is its monitor: {line:#?}"
    );
    // The emperor's own record about the vassal has it as a field too.
    assert!(
        said(&records, "a.ini", "spawned vassal=a.ini")
            .is_some_and(|r| r["SYSLOG_IDENTIFIER"] == "emperor"),
        "{records:#?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["MESSAGE"].starts_with("emperor started") && !r.contains_key("VASSAL")),
        "{records:#?}"
    );
    assert!(
        !records
            .iter()
            .any(|r| r.get("VASSAL").map(String::as_str) == Some("b.ini")
                && r["MESSAGE"].contains("hello from a")),
        "a's line is not b's"
    );
    assert!(
        !emperor.log().contains("hello from"),
        "nothing on stderr: {}",
        emperor.log()
    );
}

#[test]
fn a_journal_stream_that_is_not_stderr_changes_nothing() {
    let tmp = open_tempdir();
    let emperor = Emperor::launch(
        tmp.path(),
        Options {
            env: vec![("JOURNAL_STREAM", "1:1".to_string())],
            ..Options::default()
        },
    );
    let lines = lines_with_a_running_vassal(&emperor);
    assert!(lines.iter().all(|l| l.contains("Z ")), "{lines:#?}");
}

#[test]
fn log_format_json_gives_one_object_per_line_from_emperor_and_runtime() {
    let tmp = open_tempdir();
    let emperor = Emperor::start(tmp.path(), &["--log-format", "json"]);
    let lines = lines_with_a_running_vassal(&emperor);
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(objects
        .iter()
        .any(|o| o["message"] == "spawned" && o["vassal"] == "a.ini" && o["level"] == "INFO"));
    assert!(
        objects.iter().any(|o| o["message"] == "payload started"
            && o["span"]["config"]
                .as_str()
                .is_some_and(|c| c.ends_with("/a.ini"))),
        "{lines:#?}"
    );
}
