//! What the emperor does when it is signalled.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

/// Two vassals whose payloads each run a shell with a background grandchild.
fn two_families(emperor: &Emperor) -> Vec<i32> {
    for name in ["a.ini", "b.ini"] {
        emperor.write(name, &ini("sh -c 'sleep 1000 & sleep 1000'", &[]));
    }
    for name in ["a.ini", "b.ini"] {
        let (runtime, _) = emperor.running(name);
        emperor.wait_until("the shell started both sleeps", || {
            descendants(runtime).len() >= 3
        });
    }
    let tree = emperor.tree();
    assert!(
        tree.len() >= 9,
        "emperor, 2 runtimes, 2 shells, 4 sleeps: {tree:?}"
    );
    tree
}

#[test]
fn sigterm_stops_every_vassal_and_grandchild() {
    let tmp = tempfile::tempdir().unwrap();
    let mut emperor = Emperor::start(tmp.path(), &[]);
    let tree = two_families(&emperor);

    emperor.signal(Signal::SIGTERM);
    let status = emperor.wait_exit();

    assert_eq!(status.code(), Some(0), "{}", emperor.log());
    emperor.wait_until("no process of the tree is left", || {
        tree.iter().all(|&p| !alive(p))
    });
    let log = emperor.log();
    assert!(log.contains("the emperor is buried"), "{log}");
    assert!(log.contains("stopped vassal=a.ini"), "{log}");
    assert!(log.contains("stopped vassal=b.ini"), "{log}");
}

#[test]
fn sigint_and_sigquit_stop_the_emperor_too() {
    for signal in [Signal::SIGINT, Signal::SIGQUIT] {
        let tmp = tempfile::tempdir().unwrap();
        let mut emperor = Emperor::start(tmp.path(), &[]);
        emperor.write("app.ini", &ini("sleep 1000", &[]));
        emperor.running("app.ini");
        let tree = emperor.tree();

        emperor.signal(signal);
        assert_eq!(emperor.wait_exit().code(), Some(0), "{signal}");
        emperor.wait_until("no process of the tree is left", || {
            tree.iter().all(|&p| !alive(p))
        });
    }
}

#[test]
fn sigterm_waits_for_a_stubborn_payload_then_kills_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut emperor = Emperor::start(tmp.path(), &[]);
    emperor.write(
        "stubborn.ini",
        &ini(r#"sh -c 'trap "" TERM; sleep 1000'"#, &["reload-mercy = 1"]),
    );
    let (_, payload) = emperor.running("stubborn.ini");
    emperor.wait_until("the shell runs its sleep", || !children(payload).is_empty());
    let tree = emperor.tree();

    let signalled = Instant::now();
    emperor.signal(Signal::SIGTERM);
    assert_eq!(emperor.wait_exit().code(), Some(0));
    let took = signalled.elapsed();

    assert!(tree.iter().all(|&p| !alive(p)), "{}", emperor.log());
    assert!(took >= Duration::from_millis(900), "exited after {took:?}");
}

#[test]
fn sigkill_of_the_emperor_leaves_no_payload_within_a_second() {
    let tmp = tempfile::tempdir().unwrap();
    let mut emperor = Emperor::start(tmp.path(), &[]);
    let tree = two_families(&emperor);

    let killed = Instant::now();
    emperor.signal(Signal::SIGKILL);
    let status = emperor.wait_exit();
    assert_eq!(status.signal(), Some(9));

    let left = || -> Vec<(i32, String)> {
        tree.iter()
            .filter(|&&p| alive(p))
            .map(|&p| (p, cmdline(p)))
            .collect()
    };
    let deadline = Duration::from_millis(1500);
    while !left().is_empty() && killed.elapsed() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        left().is_empty(),
        "still alive {:?} after the emperor was killed: {:?}\n{}",
        killed.elapsed(),
        left(),
        emperor.log()
    );
    // The orphans came to the test process (a subreaper): collect them.
    reap(&tree);
}

#[test]
fn sighup_reloads_every_vassal() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    emperor.write("a.ini", &ini("sleep 1000", &[]));
    emperor.write("b.ini", &ini("sleep 1000", &[]));
    let (runtime_a, payload_a) = emperor.running("a.ini");
    let (runtime_b, payload_b) = emperor.running("b.ini");

    emperor.signal(Signal::SIGHUP);

    assert_eq!(emperor.running_other_than("a.ini", payload_a).0, runtime_a);
    assert_eq!(emperor.running_other_than("b.ini", payload_b).0, runtime_b);
    assert!(!alive(payload_a) && !alive(payload_b));
    assert!(emperor.log().contains("SIGHUP: reloading every vassal"));
}

#[test]
fn sigurg_clears_the_blacklist() {
    let tmp = tempfile::tempdir().unwrap();
    // A crashing vassal waits 5 s before each respawn.
    let emperor = Emperor::start(tmp.path(), &["--emperor-throttle", "5000"]);
    let starts = tmp.path().join("starts");
    emperor.write(
        "crash.ini",
        &ini(
            &format!("sh -c 'echo start >> {}; exit 1'", starts.display()),
            &[],
        ),
    );
    emperor.wait_until("the crashing vassal is blacklisted", || {
        emperor.vassal("crash.ini").is_some_and(|v| {
            v["state"] == "waiting" && v["blacklisted"] == true && v["throttle"] == 5000
        })
    });
    assert_eq!(emperor.stats()["totals"]["blacklisted"], 1);
    assert_eq!(stamps_count(&starts), 1);

    let signalled = Instant::now();
    emperor.signal(Signal::SIGURG);
    emperor.wait_until("the vassal is respawned at once", || {
        stamps_count(&starts) >= 2
    });
    let took = signalled.elapsed();

    assert!(
        took < Duration::from_millis(2500),
        "respawned {took:?} after SIGURG, as if still blacklisted"
    );
    assert!(emperor.log().contains("SIGURG: clearing the blacklist"));
}

#[test]
fn sigusr1_logs_the_vassal_table() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    emperor.write("app.ini", &ini("sleep 1000", &[]));
    let (runtime, _) = emperor.running("app.ini");

    emperor.signal(Signal::SIGUSR1);
    let line = format!("vassal=app.ini state=\"running\" pid={runtime}");
    emperor.wait_until("the table is logged", || emperor.log().contains(&line));
}

fn stamps_count(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// More vassals than one wave of stops (128): every one is stopped gracefully, the later waves
/// without waiting for the emperor's patience to run out, and nothing is left.
#[test]
fn sigterm_stops_vassals_in_waves_and_every_wave_is_told() {
    const VASSALS: usize = 300;
    let tmp = tempfile::tempdir().unwrap();
    let vassals = tmp.path().join("vassals");
    std::fs::create_dir_all(&vassals).unwrap();
    for i in 0..VASSALS {
        write(
            &vassals.join(format!("v{i:03}.ini")),
            &ini("sleep 1000", &[]),
        );
    }
    // The initial scan starts them all; a 30 s patience a stuck wave would run into.
    let mut emperor = Emperor::start(
        tmp.path(),
        &["--emperor-throttle", "0", "--emperor-curse-tolerance", "30"],
    );
    emperor.wait_until_for(
        "every vassal runs its payload",
        Duration::from_secs(60),
        || {
            let stats = emperor.stats();
            let vassals = stats["vassals"].as_array().cloned().unwrap_or_default();
            vassals.len() == VASSALS && vassals.iter().all(|v| v["state"] == "running")
        },
    );
    let tree = emperor.tree();
    assert!(tree.len() > 2 * VASSALS, "{} processes", tree.len());

    let signalled = Instant::now();
    emperor.signal(Signal::SIGTERM);
    assert_eq!(emperor.wait_exit().code(), Some(0), "{}", emperor.log());
    let took = signalled.elapsed();

    let log = emperor.log();
    assert_eq!(log.matches(" stopped vassal=").count(), VASSALS, "{log}");
    assert!(!log.contains("SIGKILL"), "a vassal was killed: {log}");
    assert!(took < Duration::from_secs(20), "the stop took {took:?}");
    emperor.wait_until("no process of the tree is left", || {
        tree.iter().all(|&p| !alive(p))
    });
}
