//! Throttling and the blacklist, measured by the payloads themselves: each start appends
//! its time (`date +%s.%N`) to a file outside the watched directory. These tests take turns
//! (timing_lock) so they do not load the machine for each other.

mod common;

use common::*;
use std::path::Path;

/// A payload command that records its start time in `file`, then runs `then`.
fn stamping(file: &Path, then: &str) -> String {
    // `%%` is a literal `%` in the config language.
    format!("sh -c 'date +%%s.%%N >> {}; {then}'", file.display())
}

fn gaps(times: &[f64]) -> Vec<f64> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn unloyal_crashing_vassal_is_blacklisted_with_growing_delay() {
    let _turn = timing_lock();
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(
        tmp.path(),
        &[
            "--emperor-throttle",
            "300",
            "--emperor-max-throttle",
            "1000",
        ],
    );
    let starts = tmp.path().join("starts");
    emperor.write("crash.ini", &ini(&stamping(&starts, "exit 1"), &[]));

    emperor.wait_until("six starts", || stamps(&starts).len() >= 6);
    let gaps = gaps(&stamps(&starts)[..6]);

    // One more delta per unloyal death, capped at the maximum.
    let expected = [0.3, 0.6, 0.9, 1.0, 1.0];
    for (i, (&gap, &want)) in gaps.iter().zip(&expected).enumerate() {
        assert!(
            gap >= want * 0.9,
            "respawn {} came {gap:.3} s after the previous start, before its {want} s throttle; gaps {gaps:?}",
            i + 1
        );
        assert!(
            gap <= want + 0.8,
            "respawn {} came {gap:.3} s after the previous start, expected about {want} s; gaps {gaps:?}",
            i + 1
        );
    }

    let v = emperor.wait_for("the vassal waits for its respawn", || {
        emperor
            .vassal("crash.ini")
            .filter(|v| v["state"] == "waiting")
    });
    assert_eq!(v["blacklisted"], true);
    assert_eq!(v["throttle"], 1000, "capped at --emperor-max-throttle");
    assert_eq!(v["last_exit_status"], 1);
    assert!(v["respawns"].as_u64().unwrap() >= 5);
    let stats = emperor.stats();
    let entry = &stats["blacklist"][0];
    assert!(
        entry["id"].as_str().unwrap().ends_with("crash.ini"),
        "{entry}"
    );
    assert_eq!(entry["throttle_level"], 1000);
    assert!(entry["attempt"].as_u64().unwrap() >= 6, "{entry}");
    assert!(emperor
        .log()
        .contains("blacklisted: respawn delayed vassal=crash.ini throttle_ms=600"));
}

#[test]
fn loyal_vassal_respawns_at_once() {
    let _turn = timing_lock();
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &["--emperor-throttle", "3000"]);
    let starts = tmp.path().join("starts");
    // Byte 17 (octal 021) on fd 3: "loyal". Then it dies.
    emperor.write(
        "loyal.ini",
        &ini(
            &stamping(&starts, r#"printf "\021" >&3; sleep 0.3; exit 3"#),
            &[],
        ),
    );

    emperor.wait_until("a second start", || stamps(&starts).len() >= 2);
    let gap = gaps(&stamps(&starts))[0];

    assert!(
        gap < 1.5,
        "a loyal vassal waited {gap:.3} s, as if blacklisted for 3 s"
    );
    let log = emperor.log();
    assert!(log.contains("loyal vassal=loyal.ini"), "{log}");
    assert!(
        log.contains("died vassal=loyal.ini status=3 loyal=true"),
        "{log}"
    );
    assert!(
        !log.contains("blacklisted: respawn delayed vassal=loyal.ini"),
        "{log}"
    );
}

#[test]
fn spawns_in_the_same_second_are_throttled_and_a_calm_one_halves_the_level() {
    let _turn = timing_lock();
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &["--emperor-throttle", "500"]);
    let starts = tmp.path().join("starts");
    let staging = tmp.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    for name in ["a.ini", "b.ini", "c.ini"] {
        write(
            &staging.join(name),
            &ini(&stamping(&starts, "exec sleep 1000"), &[]),
        );
    }
    for name in ["a.ini", "b.ini", "c.ini"] {
        std::fs::rename(staging.join(name), emperor.vassals.join(name)).unwrap();
    }

    emperor.wait_until("three starts", || stamps(&starts).len() >= 3);
    let mut times = stamps(&starts);
    times.sort_by(f64::total_cmp);
    let gaps = gaps(&times);
    assert!(
        gaps[1] >= 0.45,
        "the third spawn came {:.3} s after the second, not throttled by 0.5 s",
        gaps[1]
    );
    assert!(gaps[1] < 2.0, "third spawn after {:.3} s", gaps[1]);
    emperor.wait_until("the level is two deltas", || {
        emperor.stats()["throttle_level_ms"] == 1000
    });

    // The next spawn waits the whole second: a calm spawn, which halves the level.
    emperor.write("d.ini", &ini(&stamping(&starts, "exec sleep 1000"), &[]));
    emperor.wait_until("a fourth start", || stamps(&starts).len() >= 4);
    let mut times = stamps(&starts);
    times.sort_by(f64::total_cmp);
    assert!(
        times[3] - times[2] >= 0.95,
        "the fourth spawn came {:.3} s after the third",
        times[3] - times[2]
    );
    emperor.wait_until("the level is halved", || {
        emperor.stats()["throttle_level_ms"] == 500
    });
}

#[test]
fn the_initial_scan_is_not_throttled() {
    let _turn = timing_lock();
    let tmp = tempfile::tempdir().unwrap();
    let starts = tmp.path().join("starts");
    let vassals = tmp.path().join("vassals");
    std::fs::create_dir(&vassals).unwrap();
    for name in ["a.ini", "b.ini", "c.ini", "d.ini"] {
        write(
            &vassals.join(name),
            &ini(&stamping(&starts, "exec sleep 1000"), &[]),
        );
    }

    let emperor = Emperor::start(tmp.path(), &["--emperor-throttle", "2000"]);
    emperor.wait_until("four starts", || stamps(&starts).len() >= 4);
    let mut times = stamps(&starts);
    times.sort_by(f64::total_cmp);
    assert!(
        times[3] - times[0] < 1.5,
        "the initial scan's spawns were spread over {:.3} s",
        times[3] - times[0]
    );
    assert_eq!(emperor.stats()["throttle_level_ms"], 0);
}
