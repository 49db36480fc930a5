//! Heartbeats (byte 26): once a vassal sent one, it must keep sending them every
//! --emperor-required-heartbeat seconds or be reloaded.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn vassal_that_stops_sending_heartbeats_is_reloaded() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(
        tmp.path(),
        &[
            "--emperor-required-heartbeat",
            "1",
            "--emperor-throttle",
            "10",
        ],
    );
    // One heartbeat (octal 032), then silence.
    emperor.write(
        "silent.ini",
        &ini(r#"sh -c 'printf "\032" >&3; exec sleep 1000'"#, &[]),
    );
    // Never sends one: never expected to.
    emperor.write("quiet.ini", &ini("sleep 1000", &[]));
    let (quiet_runtime, quiet_payload) = emperor.running("quiet.ini");
    let (runtime, payload) = emperor.running("silent.ini");
    emperor.wait_until("the heartbeat is recorded", || {
        emperor.vassal("silent.ini").unwrap()["last_heartbeat"]
            .as_u64()
            .unwrap()
            > 0
    });
    let beat = Instant::now();

    let (runtime_after, _) = emperor.running_other_than("silent.ini", payload);
    let took = beat.elapsed();

    assert_eq!(runtime_after, runtime, "a reload, not a respawn");
    assert!(
        took >= Duration::from_millis(800),
        "reloaded {took:?} after its heartbeat, before the 1 s allowed"
    );
    assert!(emperor
        .log()
        .contains("sent no heartbeat in time: reloading vassal=silent.ini"));
    assert_eq!(emperor.runtime_pid("quiet.ini"), Some(quiet_runtime));
    assert_eq!(payload_pid(quiet_runtime), Some(quiet_payload));
}

#[test]
fn vassal_sending_heartbeats_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &["--emperor-required-heartbeat", "1"]);
    emperor.write(
        "alive.ini",
        &ini(
            r#"sh -c 'while :; do printf "\032" >&3; sleep 0.2; done'"#,
            &[],
        ),
    );
    let (runtime, payload) = emperor.running("alive.ini");
    emperor.wait_until("heartbeats are recorded", || {
        emperor.vassal("alive.ini").unwrap()["last_heartbeat"]
            .as_u64()
            .unwrap()
            > 0
    });
    // Three times the required interval.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(payload_pid(runtime), Some(payload), "{}", emperor.log());
    assert!(!emperor.log().contains("sent no heartbeat"));
}
