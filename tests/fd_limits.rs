//! The emperor's file descriptors: it raises its soft limit to the hard one, and a vassal
//! that finds no fds is said so once, shown in the stats, and starts when fds free up.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PRLIMIT: &str = "/usr/bin/prlimit";

/// A copy of the emperor started under `prlimit --nofile=SOFT:HARD` (the same pid: the
/// script and prlimit exec it).
fn under_prlimit(dir: &Path, soft: u64, hard: u64) -> PathBuf {
    let script = dir.join("emperor-under-prlimit");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexec {PRLIMIT} --nofile={soft}:{hard} {BIN} \"$@\"\n"),
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&script, permissions).unwrap();
    script
}

/// The soft and hard "Max open files" of a process.
fn open_files_limits(pid: i32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

#[test]
fn the_emperor_raises_its_soft_limit_to_the_hard_one() {
    if !have_tools(
        "the_emperor_raises_its_soft_limit_to_the_hard_one",
        &[PRLIMIT],
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::launch(
        tmp.path(),
        Options {
            binary: Some(under_prlimit(tmp.path(), 256, 4096)),
            ..Options::default()
        },
    );
    assert_eq!(open_files_limits(emperor.pid), (4096, 4096));
    let log = emperor.log();
    let line = log
        .lines()
        .find(|l| l.contains("open files: room for about"))
        .unwrap_or_else(|| panic!("no capacity line:\n{log}"));
    assert!(
        line.contains("limit=4096") && line.contains("raised_from=256"),
        "{line}"
    );
    // Its runtimes get back the limit it started with.
    emperor.write("app.ini", &ini("sleep 1000", &[]));
    let (runtime, _) = emperor.running("app.ini");
    assert_eq!(open_files_limits(runtime).0, 256);
}

/// Whether a log line is about the vassal `name`.
fn names(line: &str, name: &str) -> bool {
    line.split_whitespace()
        .any(|word| word.strip_prefix("vassal=") == Some(name))
}

const SHORTAGE: &str = "cannot start: the emperor is out of file descriptors";

#[test]
fn vassals_without_fds_are_told_once_shown_in_stats_and_start_when_fds_free_up() {
    if !have_tools(
        "vassals_without_fds_are_told_once_shown_in_stats_and_start_when_fds_free_up",
        &[PRLIMIT],
    ) {
        return;
    }
    const CONFIGS: usize = 40;
    let tmp = tempfile::tempdir().unwrap();
    let vassals = tmp.path().join("vassals");
    std::fs::create_dir_all(&vassals).unwrap();
    for i in 0..CONFIGS {
        write(
            &vassals.join(format!("v{i:02}.ini")),
            &ini("sleep 1000", &[]),
        );
    }
    // 64 fds: the emperor's own, its reserve, and room for about 30 vassals of 1 fd each.
    let emperor = Emperor::launch(
        tmp.path(),
        Options {
            binary: Some(under_prlimit(tmp.path(), 64, 64)),
            args: vec!["--emperor-throttle".into(), "10".into()],
            env: vec![("EMPEROR_LOG", "debug".into())],
            ..Options::default()
        },
    );
    let count = |state: &str| {
        emperor.stats()["vassals"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["state"] == state)
            .count()
    };
    emperor.wait_until("some vassals run, the others wait for fds", || {
        let stats = emperor.stats();
        let vassals = stats["vassals"].as_array().unwrap();
        let waiting = vassals
            .iter()
            .filter(|v| v["waiting_for"] == "file descriptors")
            .count();
        vassals.len() == CONFIGS
            && waiting > 0
            && waiting + vassals.iter().filter(|v| v["ready"] == 1).count() == CONFIGS
    });
    let stats = emperor.stats();
    let waiting: Vec<&serde_json::Value> = stats["vassals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["waiting_for"] == "file descriptors")
        .collect();
    for v in &waiting {
        assert_eq!(v["state"], "waiting", "{v}");
        // The emperor's own fds, its reserve and 1 per config: more than the 64 it has.
        let needed = v["fds_needed"].as_u64().unwrap();
        assert!(needed > 64 && needed >= CONFIGS as u64, "{v}");
    }
    // Each waiting vassal retries (with backoff) but is named in the log once.
    let name = waiting[0]["name"].as_str().unwrap().to_string();
    emperor.wait_until_for(
        &format!("{name} retried twice"),
        Duration::from_secs(20),
        || {
            emperor
                .log()
                .lines()
                .filter(|l| l.contains("still no file descriptors") && names(l, &name))
                .count()
                >= 3
        },
    );
    let log = emperor.log();
    for v in &waiting {
        let name = v["name"].as_str().unwrap();
        let told = log
            .lines()
            .filter(|l| l.contains(SHORTAGE) && names(l, name))
            .count();
        assert_eq!(told, 1, "{name} named once:\n{log}");
        assert!(log.contains("raise LimitNOFILE / ulimit -n"), "{log}");
    }
    assert!(
        log.contains("configs: the emperor has file descriptors for about"),
        "warned that the configs approach the capacity:\n{log}"
    );

    // Half the configs go (every other one): the 20 left fit, and every one of them runs.
    let remove: Vec<String> = (1..CONFIGS)
        .step_by(2)
        .map(|i| format!("v{i:02}.ini"))
        .collect();
    for name in &remove {
        std::fs::remove_file(vassals.join(name)).unwrap();
    }
    emperor.wait_until_for(
        "every remaining vassal runs",
        Duration::from_secs(30),
        || {
            let stats = emperor.stats();
            let vassals = stats["vassals"].as_array().unwrap();
            vassals.len() == CONFIGS - remove.len()
                && vassals
                    .iter()
                    .all(|v| v["ready"] == 1 && v["waiting_for"] == "")
        },
    );
    assert_eq!(count("running"), CONFIGS - remove.len());
    assert!(emperor.log().contains("got its file descriptors"));
}
