//! The master FIFO as a user drives it: `echo r > FIFO` and friends, against the real binary.

mod common;

use common::*;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A payload that ignores SIGTERM (the sleep inherits the ignored signal).
const STUBBORN: &str = r#"sh -c 'trap "" TERM; sleep 1000'"#;

/// Write `bytes` to the FIFO in one write, then close it.
fn send(fifo: &Path, bytes: &[u8]) {
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(fifo)
        .unwrap_or_else(|e| panic!("open {} for writing: {e}", fifo.display()));
    writer.write_all(bytes).unwrap();
}

fn is_fifo(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// A vassal `app.ini` with a master FIFO at ROOT/app.fifo; (emperor, fifo, runtime, payload).
fn vassal(
    tmp: &tempfile::TempDir,
    command: &str,
    extra: &[&str],
    emperor_env: Vec<(&'static str, String)>,
) -> (Emperor, PathBuf, i32, i32) {
    let emperor = Emperor::launch(
        tmp.path(),
        Options {
            env: emperor_env,
            ..Options::default()
        },
    );
    let fifo = tmp.path().join("app.fifo");
    let line = format!("master-fifo = {}", fifo.display());
    let mut lines = vec![line.as_str()];
    lines.extend_from_slice(extra);
    emperor.write("app.ini", &ini(command, &lines));
    let (runtime, payload) = emperor.running("app.ini");
    (emperor, fifo, runtime, payload)
}

/// The state letter of /proc/PID/stat (R, S, T...).
fn state(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(") ").unwrap();
    rest.chars().next().unwrap()
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn the_fifo_is_private_to_the_runtime_and_r_and_w_reload_the_payload() {
    let tmp = tempfile::tempdir().unwrap();
    let (emperor, fifo, runtime, payload) = vassal(&tmp, "sleep 1000", &[], vec![]);
    let meta = std::fs::metadata(&fifo).unwrap();
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());

    send(&fifo, b"r\n");
    let (same, second) = emperor.running_other_than("app.ini", payload);
    assert_eq!(same, runtime, "a reload keeps the runtime");
    assert!(!alive(payload));

    send(&fifo, b"w");
    let (same, _) = emperor.running_other_than("app.ini", second);
    assert_eq!(same, runtime);
}

#[test]
fn brutal_reloads_do_not_wait_for_a_payload_that_ignores_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let (emperor, fifo, runtime, mut payload) =
        vassal(&tmp, STUBBORN, &["reload-mercy = 30"], vec![]);
    for command in [b"R", b"W"] {
        emperor.wait_until("the shell runs its sleep", || !children(payload).is_empty());
        let sent = Instant::now();
        send(&fifo, command);
        let (same, next) = emperor.running_other_than("app.ini", payload);
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "{} waited {:?}, not the 30 s of mercy",
            command[0] as char,
            sent.elapsed()
        );
        assert_eq!(same, runtime);
        payload = next;
    }
}

#[test]
fn q_stops_the_vassal_for_good() {
    let tmp = tempfile::tempdir().unwrap();
    let (emperor, fifo, runtime, payload) = vassal(&tmp, "sleep 1000", &[], vec![]);
    send(&fifo, b"q");
    emperor.wait_until("the runtime and payload are gone", || {
        !alive(runtime) && !alive(payload)
    });
    emperor.wait_until("the vassal is idle", || {
        emperor
            .vassal("app.ini")
            .is_some_and(|v| v["state"] == "idle")
    });
    let v = emperor.vassal("app.ini").unwrap();
    assert_eq!(v["respawns"], 0, "not respawned");
    assert!(emperor.log().contains("stopped on its own request"));
}

#[test]
fn brutal_q_stops_the_vassal_for_good_without_mercy() {
    let tmp = tempfile::tempdir().unwrap();
    let (emperor, fifo, runtime, payload) = vassal(&tmp, STUBBORN, &["reload-mercy = 30"], vec![]);
    emperor.wait_until("the shell runs its sleep", || !children(payload).is_empty());
    let sent = Instant::now();
    send(&fifo, b"Q");
    emperor.wait_until("the vassal is idle", || {
        emperor
            .vassal("app.ini")
            .is_some_and(|v| v["state"] == "idle")
    });
    assert!(sent.elapsed() < Duration::from_secs(5));
    assert!(!alive(runtime) && !alive(payload));
    assert_eq!(emperor.vassal("app.ini").unwrap()["respawns"], 0);
}

#[test]
fn p_pauses_and_resumes_the_payload_and_several_commands_go_in_one_write() {
    let tmp = tempfile::tempdir().unwrap();
    let (emperor, fifo, runtime, payload) = vassal(&tmp, "sleep 1000", &[], vec![]);

    send(&fifo, b"sp");
    emperor.wait_until("the payload is stopped", || state(payload) == 'T');
    emperor.wait_until("stats are logged", || {
        emperor.log().contains("master FIFO: stats")
    });
    send(&fifo, b"p");
    emperor.wait_until("the payload runs again", || state(payload) != 'T');

    send(&fifo, b"pps");
    emperor.wait_until("a second stats line", || {
        count(&emperor.log(), "master FIFO: stats") == 2
    });
    // Running or asleep, not stopped ('R' for a moment after its SIGCONT).
    assert_ne!(state(payload), 'T', "paused then resumed in one write");
    let log = emperor.log();
    assert_eq!(count(&log, "payload paused (SIGSTOP"), 2, "{log}");
    assert_eq!(count(&log, "payload resumed (SIGCONT"), 2, "{log}");
    assert_eq!(emperor.running("app.ini"), (runtime, payload));
}

#[test]
fn stats_name_the_payload_and_the_fifo() {
    let tmp = tempfile::tempdir().unwrap();
    let (emperor, fifo, _, payload) = vassal(&tmp, "sleep 1000", &[], vec![]);
    send(&fifo, b"s");
    let line = emperor.wait_for("a stats line", || {
        let log = emperor.log();
        log.lines()
            .find(|l| l.contains("master FIFO: stats"))
            .map(str::to_string)
    });
    assert!(line.contains(&format!("payload={payload}")), "{line}");
    assert!(line.contains(&fifo.display().to_string()), "{line}");
}

#[test]
fn big_p_writes_the_pidfile() {
    let tmp = tempfile::tempdir().unwrap();
    let pidfile = tmp.path().join("app.pid");
    let line = format!("pidfile = {}", pidfile.display());
    let (emperor, fifo, _, payload) = vassal(&tmp, "sleep 1000", &[&line], vec![]);
    let read = || std::fs::read_to_string(&pidfile).ok();
    emperor.wait_until("the pidfile is written at start", || {
        read() == Some(format!("{payload}\n"))
    });
    std::fs::remove_file(&pidfile).unwrap();
    send(&fifo, b"P");
    emperor.wait_until("P writes it again", || {
        read() == Some(format!("{payload}\n"))
    });
}

#[test]
fn big_b_reaches_the_emperor() {
    let tmp = tempfile::tempdir().unwrap();
    let env = vec![("EMPEROR_LOG", "debug".to_string())];
    let (emperor, fifo, _, _) = vassal(&tmp, "sleep 1000", &[], env);
    send(&fifo, b"B");
    emperor.wait_until("the emperor hears byte 30", || {
        emperor
            .log()
            .contains("Broodlord: not supported for file configs")
    });
}

#[test]
fn commands_without_a_meaning_are_refused_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let (emperor, fifo, runtime, payload) = vassal(&tmp, "sleep 1000", &[], vec![]);
    send(&fifo, b"+-CcfSE++s");
    emperor.wait_until("the stats after them", || {
        emperor.log().contains("master FIFO: stats")
    });
    let log = emperor.log();
    for byte in "+-CcfSE".chars() {
        assert_eq!(
            count(&log, &format!("command '{byte}' refused: ")),
            1,
            "{byte}\n{log}"
        );
    }
    assert_eq!(emperor.running("app.ini"), (runtime, payload));
}

#[test]
fn a_slot_number_moves_the_fifo_to_that_path_after_the_writer_closes() {
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other.fifo");
    let line = format!("master-fifo = {}", other.display());
    let (emperor, fifo, _, _) = vassal(&tmp, "sleep 1000", &[&line], vec![]);
    assert!(!other.exists(), "only the first slot is bound at start");

    send(&fifo, b"1\n");
    emperor.wait_until("slot 1 is bound", || is_fifo(&other));
    send(&other, b"s");
    emperor.wait_until("stats through slot 1", || {
        let log = emperor.log();
        log.lines()
            .any(|l| l.contains("master FIFO: stats") && l.contains("slot=1"))
    });
    send(&other, b"0");
    // The old FIFO stays behind without a reader (as in uWSGI): wait for the move.
    emperor.wait_until("slot 0 again (made anew)", || {
        count(&emperor.log(), "master FIFO moved") == 2
    });
    send(&fifo, b"s");
    emperor.wait_until("stats through slot 0", || {
        count(&emperor.log(), "master FIFO: stats") == 2
    });

    // Two writers back to back, the second before the runtime has read the first one's end.
    send(&fifo, b"s");
    send(&fifo, b"1");
    emperor.wait_until("both heard, then slot 1 again", || {
        let log = emperor.log();
        count(&log, "master FIFO: stats") == 3 && count(&log, "master FIFO moved") == 3
    });
    send(&other, b"s");
    emperor.wait_until("stats through slot 1", || {
        count(&emperor.log(), "master FIFO: stats") == 4
    });
}

#[test]
fn a_garbage_flood_is_ignored_quietly_and_the_fifo_still_works() {
    let tmp = tempfile::tempdir().unwrap();
    let (emperor, fifo, runtime, payload) = vassal(&tmp, "sleep 1000", &[], vec![]);
    let meaningful = b"0123456789+-BCcEflLpPQqRrSsWw\n";
    let garbage: Vec<u8> = (0..=255u8).filter(|b| !meaningful.contains(b)).collect();
    let flood: Vec<u8> = garbage.iter().copied().cycle().take(1 << 20).collect();

    send(&fifo, &flood);
    send(&fifo, b"s");
    emperor.wait_until("the FIFO still answers", || {
        emperor.log().contains("master FIFO: stats")
    });
    assert_eq!(emperor.running("app.ini"), (runtime, payload));
    let log = emperor.log();
    let lines = count(&log, "unknown command bytes");
    assert!(
        (1..=5).contains(&lines),
        "{lines} lines about garbage:\n{log}"
    );
}

#[test]
fn another_tenant_cannot_write_a_tenants_fifo() {
    use std::os::unix::process::CommandExt;
    if !have_root("another_tenant_cannot_write_a_tenants_fifo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = tmp.path().join("alice");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(20001), Some(20001)).unwrap();
    let emperor = Emperor::start(
        tmp.path(),
        &["--emperor-tyrant", "--emperor-use-clone", "fs,ipc,pid,uts"],
    );
    std::fs::set_permissions(&emperor.vassals, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fifo = home.join("app.fifo");
    let staged = tmp.path().join("alice.ini");
    let line = format!("master-fifo = {}", fifo.display());
    write(&staged, &ini("sleep 1000", &[&line]));
    std::os::unix::fs::chown(&staged, Some(20001), Some(20001)).unwrap();
    std::fs::rename(&staged, emperor.vassals.join("alice.ini")).unwrap();
    let (runtime, payload) = emperor.running("alice.ini");

    let meta = std::fs::metadata(&fifo).unwrap();
    assert!(meta.file_type().is_fifo());
    assert_eq!((meta.uid(), meta.mode() & 0o777), (20001, 0o600));
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("echo q > {}", fifo.display()))
        .uid(20002)
        .gid(20002)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert_eq!(emperor.running("alice.ini"), (runtime, payload));

    let owner = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("echo q > {}", fifo.display()))
        .uid(20001)
        .gid(20001)
        .status()
        .unwrap();
    assert!(owner.success(), "the tenant itself can");
    emperor.wait_until("the tenant's q stops it", || {
        emperor
            .vassal("alice.ini")
            .is_some_and(|v| v["state"] == "idle")
    });
}

#[test]
fn a_fifo_path_is_seen_from_the_jail() {
    if !have_root("a_fifo_path_is_seen_from_the_jail") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &["--emperor-use-clone", "fs,pid"]);
    // Inside the jail this directory is a fresh tmpfs: the FIFO is made there, not on the host.
    let inside = tmp.path().join("run");
    std::fs::create_dir(&inside).unwrap();
    let fifo = inside.join("app.fifo");
    let tmpfs = format!("tmpfs = {}", inside.display());
    let line = format!("master-fifo = {}", fifo.display());
    emperor.write("app.ini", &ini("sleep 1000", &[&tmpfs, &line]));
    let (runtime, _) = emperor.running("app.ini");

    let seen_by_the_jail = PathBuf::from(format!("/proc/{runtime}/root{}", fifo.display()));
    emperor.wait_until("the FIFO exists in the jail", || is_fifo(&seen_by_the_jail));
    assert!(!fifo.exists(), "the host's directory holds no FIFO");
    send(&seen_by_the_jail, b"s");
    emperor.wait_until("stats through the jail's FIFO", || {
        emperor.log().contains("master FIFO: stats")
    });
}
