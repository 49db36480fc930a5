//! The emperor's log formats: journald's (priority prefixes, no timestamps) when stderr is the
//! journal stream systemd named, and one JSON object per line with `--log-format json`; the
//! runtimes log the same way as the emperor.

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;

/// The emperor's log lines, once `a.ini`'s payload has started (a runtime's line).
fn lines_with_a_running_vassal(emperor: &Emperor) -> Vec<String> {
    emperor.write("a.ini", &ini("sleep 1000", &[]));
    emperor.running("a.ini");
    emperor.wait_until("the runtime's line", || {
        emperor.log().contains("payload started")
    });
    emperor.log().lines().map(str::to_string).collect()
}

#[test]
fn under_journald_lines_carry_a_priority_and_no_timestamp() {
    let tmp = open_tempdir();
    // The harness's stderr file, made first so its device and inode can be named.
    let log = tmp.path().join("emperor.log");
    std::fs::write(&log, "").unwrap();
    let meta = std::fs::metadata(&log).unwrap();
    let emperor = Emperor::launch(
        tmp.path(),
        Options {
            env: vec![("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))],
            ..Options::default()
        },
    );
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
