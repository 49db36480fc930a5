//! Each vassal's logs: every line its payload writes reaches the emperor's log tagged with the
//! vassal; `logto` sends them to the vassal's own file instead, opened with the jail's
//! identity, rotated past `log-maxsize`, reopened and rotated from the master FIFO.

mod common;

use common::*;
use std::path::Path;

fn lines_of(dir: &Path, prefix: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(prefix)
        {
            lines.extend(
                std::fs::read_to_string(&path)
                    .unwrap()
                    .lines()
                    .map(str::to_string),
            );
        }
    }
    lines
}

#[test]
fn every_line_a_payload_writes_is_in_the_emperors_log_tagged_with_its_vassal() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    emperor.write(
        "chatty.ini",
        &ini(
            "sh -c 'echo out-line; echo err-line >&2; sh -c \"echo child-line\"; printf partial; exec sleep 1000'",
            &[],
        ),
    );
    emperor.running("chatty.ini");
    emperor.wait_until("the payload's lines are logged", || {
        let log = emperor.log();
        ["out-line", "err-line", "child-line"]
            .iter()
            .all(|l| log.contains(&format!("chatty.ini}}:payload: {l}")))
    });
    // A line without its newline is logged once the payload is gone.
    std::fs::remove_file(emperor.vassals.join("chatty.ini")).unwrap();
    emperor.wait_until("the partial line is logged", || {
        emperor.log().contains("chatty.ini}:payload: partial")
    });
}

#[test]
fn logto_writes_the_vassals_own_file_rotated_by_size_and_by_the_master_fifo() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("app.log");
    let fifo = tmp.path().join("app.fifo");
    let emperor = Emperor::start(tmp.path(), &[]);
    emperor.write(
        "app.ini",
        &ini(
            "sh -c 'seq 200 | sed s/^/line-/; exec sleep 1000'",
            &[
                &format!("logto = {}", log.display()),
                "log-maxsize = 1000",
                &format!("master-fifo = {}", fifo.display()),
            ],
        ),
    );
    emperor.running("app.ini");
    emperor.wait_until("all 200 lines are in the log files", || {
        lines_of(&logs, "app.log").len() == 200
    });
    let files = std::fs::read_dir(&logs).unwrap().count();
    assert!(files >= 2, "rotated past 1000 bytes: {files} file(s)");
    for entry in std::fs::read_dir(&logs).unwrap() {
        let len = entry.unwrap().metadata().unwrap().len();
        assert!(len <= 1000, "a file of {len} bytes");
    }
    assert!(
        !emperor.log().contains("line-1"),
        "logto keeps the lines out of the emperor's log"
    );

    // logrotate moves the file away; `l` reopens it at its path.
    std::fs::rename(&log, logs.join("moved")).unwrap();
    std::fs::write(&fifo, "l").unwrap();
    emperor.wait_until("the log is reopened", || log.exists());
    // `L` rotates it now.
    let before = std::fs::read_dir(&logs).unwrap().count();
    std::fs::write(&fifo, "L").unwrap();
    emperor.wait_until("the log is rotated", || {
        std::fs::read_dir(&logs).unwrap().count() == before + 1
    });
    assert!(
        emperor.log().contains("master FIFO: log"),
        "{}",
        emperor.log()
    );
}

#[test]
fn a_tenants_logto_is_opened_as_the_tenant() {
    if !have_root("a_tenants_logto_is_opened_as_the_tenant") {
        return;
    }
    let tmp = open_tempdir();
    // Root's directory, which the tenant may not write.
    let forbidden = tmp.path().join("root-only");
    std::fs::create_dir(&forbidden).unwrap();
    let emperor = Emperor::start(tmp.path(), &["--emperor-tyrant"]);
    emperor.drop_as(
        20001,
        "app.ini",
        &ini(
            "sh -c 'echo hello; exec sleep 1000'",
            &[&format!("logto = {}/app.log", forbidden.display())],
        ),
    );
    emperor.wait_until("the open is refused, naming logto", || {
        emperor.log().contains("option \"logto\": open ")
    });
    assert!(
        !forbidden.join("app.log").exists(),
        "nothing written where the tenant may not"
    );
}
