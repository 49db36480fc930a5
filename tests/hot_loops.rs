//! No hot loops, quiet logs: a tenant's broken config, a flooded master FIFO or a special file
//! with a config name cost the emperor's log a few lines, not one per attempt or per byte.

mod common;

use common::*;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// The vassal's respawns so far (0 while it is not listed).
fn respawns(emperor: &Emperor, name: &str) -> u64 {
    emperor
        .vassal(name)
        .and_then(|v| v["respawns"].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_vassal_failing_at_once_respawns_no_faster_than_the_floor_even_unthrottled() {
    let _turn = timing_lock();
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &["--emperor-throttle", "0"]);
    emperor.write("good.ini", &ini("sleep 1000", &[]));
    let (good_runtime, good_payload) = emperor.running("good.ini");

    // The runtime refuses the value and exits 1 at once, on every attempt.
    emperor.write(
        "bad.ini",
        "[uwsgi]\nreload-mercy = soon\nunprivileged-binary-patch-arg = sleep 1000\n",
    );
    emperor.wait_until("the broken vassal died once", || {
        respawns(&emperor, "bad.ini") >= 1
    });
    let log_before = std::fs::metadata(&emperor.log).unwrap().len();
    let before = respawns(&emperor, "bad.ini");
    // A measurement window, not a wait for a condition: the emperor is watched throughout.
    let window = Duration::from_secs(3);
    let start = Instant::now();
    while start.elapsed() < window {
        assert!(alive(emperor.pid), "the emperor survives");
        std::thread::sleep(Duration::from_millis(100));
    }
    let attempts = respawns(&emperor, "bad.ini") - before;
    let log_growth = std::fs::metadata(&emperor.log).unwrap().len() - log_before;
    let log = emperor.log();

    // 100 ms doubling: 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s covers the window in about five.
    assert!(
        (2..=10).contains(&attempts),
        "{attempts} respawns in {window:?} (hundreds without the floor):\n{log}"
    );
    assert!(
        log_growth < 20_000,
        "{log_growth} bytes of log in {window:?}:\n{log}"
    );
    assert_eq!(
        count(&log, "died vassal=bad.ini status=1 loyal=false"),
        1,
        "identical deaths are collapsed:\n{log}"
    );
    assert!(log.contains("blacklisted: respawn delayed vassal=bad.ini throttle_ms=100"));
    // The stats show the wait the floor set, not the zero throttle.
    emperor.wait_until("the broken vassal waits, its floor shown", || {
        emperor.vassal("bad.ini").is_some_and(|v| {
            v["state"] == "waiting"
                && v["blacklisted"] == true
                && v["throttle"].as_u64() >= Some(100)
        })
    });
    // Fixed, it runs, and what was held back is told.
    emperor.write("bad.ini", &ini("sleep 1000", &[]));
    emperor.running("bad.ini");
    let log = emperor.log();
    assert!(
        log.contains("died status=1 loyal=false: … repeated"),
        "the held-back deaths are counted:\n{log}"
    );
    assert_eq!(count(&log, "spawned vassal=bad.ini"), 2, "{log}");
    assert_eq!(emperor.runtime_pid("good.ini"), Some(good_runtime));
    assert_eq!(payload_pid(good_runtime), Some(good_payload));
    assert_eq!(emperor.vassal("good.ini").unwrap()["respawns"], 0);
}

#[test]
fn a_mebibyte_into_the_master_fifo_gives_a_handful_of_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    let fifo = tmp.path().join("app.fifo");
    let line = format!("master-fifo = {}", fifo.display());
    emperor.write("app.ini", &ini("sleep 1000", &[&line]));
    let (runtime, payload) = emperor.running("app.ini");

    // Stats and refused commands, each a line of its own before; then a reload, in the same
    // stream, to know the flood was read through.
    let mut flood: Vec<u8> = b"s+".iter().copied().cycle().take(1 << 20).collect();
    flood.push(b'r');
    let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    writer.write_all(&flood).unwrap();
    drop(writer);
    let (same, _) = emperor.running_other_than("app.ini", payload);
    assert_eq!(same, runtime);

    let log = emperor.log();
    let lines = count(&log, "master FIFO");
    assert!(
        lines <= 15,
        "{lines} lines about the master FIFO for a 1 MiB flood:\n{log}"
    );
    assert_eq!(count(&log, "master FIFO: a flood of commands"), 1, "{log}");
}

/// Warnings naming `file` as skipped.
fn skipped_warnings(log: &str, file: &Path) -> usize {
    count(log, &format!("{}: not a regular file (", file.display()))
}

#[test]
fn a_special_file_with_a_config_name_is_warned_about_once() {
    let tmp = tempfile::tempdir().unwrap();
    let vassals = tmp.path().join("vassals");
    std::fs::create_dir(&vassals).unwrap();
    let (x, y, z) = (
        vassals.join("x.ini"),
        vassals.join("y.ini"),
        vassals.join("z.ini"),
    );
    std::fs::create_dir(&x).unwrap();
    nix::unistd::mkfifo(&y, nix::sys::stat::Mode::S_IRWXU).unwrap();
    std::os::unix::fs::symlink(&z, &z).unwrap();
    let emperor = Emperor::start(tmp.path(), &["--emperor-freq", "1"]);
    // A followed symlink makes the emperor rescan every second; its target changing is seen
    // only by a rescan, so each new payload proves one more.
    let target = write(&tmp.path().join("app.ini"), &ini("sleep 1000", &[]));
    std::os::unix::fs::symlink(&target, vassals.join("app.ini")).unwrap();
    let (_, mut payload) = emperor.running("app.ini");
    for seconds in 1001..1004 {
        write(&target, &ini(&format!("sleep {seconds}"), &[]));
        payload = emperor.running_other_than("app.ini", payload).1;
    }

    let log = emperor.log();
    for (file, why) in [(&x, "a directory"), (&y, "a FIFO"), (&z, "a symlink loop")] {
        assert_eq!(skipped_warnings(&log, file), 1, "{}\n{log}", file.display());
        assert!(
            log.contains(&format!(
                "{}: not a regular file ({why}): skipped",
                file.display()
            )),
            "{log}"
        );
    }

    // Gone and back as something else: warned about again, once.
    std::fs::remove_file(&y).unwrap();
    std::fs::create_dir(&y).unwrap();
    emperor.wait_until("the new directory is warned about", || {
        skipped_warnings(&emperor.log(), &y) == 2
    });
    write(&target, &ini("sleep 1004", &[]));
    emperor.running_other_than("app.ini", payload);
    let log = emperor.log();
    assert_eq!(skipped_warnings(&log, &y), 2, "{log}");
    assert_eq!(skipped_warnings(&log, &x), 1, "{log}");
    assert!(emperor.vassal("x.ini").is_none() && emperor.vassal("y.ini").is_none());
}
