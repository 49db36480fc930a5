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

/// The names of the payloads that started, in order (each appends its name to `file`).
fn started(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A payload that appends its config's name to `order`, then sleeps.
fn naming(order: &Path) -> String {
    ini(
        &format!("sh -c 'echo %n >> {}; exec sleep 1000'", order.display()),
        &["loyal-after = 0.1"],
    )
}

/// Tenant B's loyal vassal runs; tenant A drops 30 configs at once under a budget of 4
/// spawns a second; then B drops a new config and B's loyal payload is killed. Both of B's
/// spawns come within a turn or two of A's, not behind A's whole flood.
fn a_flood_waits_behind_itself(
    emperor: &Emperor,
    order: &Path,
    drop_a: impl Fn(&str, &str),
    drop_b: impl Fn(&str, &str),
) {
    drop_b("b-loyal.ini", &naming(order));
    let (_, loyal_payload) = emperor.running("b-loyal.ini");
    emperor.wait_until("b-loyal is loyal", || {
        emperor
            .vassal("b-loyal.ini")
            .is_some_and(|v| v["loyal"] == 1)
    });
    // A loyal vassal dying within its first second is still floored (QUICK_DEATH).
    std::thread::sleep(std::time::Duration::from_millis(1100));

    for i in 0..30 {
        drop_a(&format!("a{i:02}.ini"), &naming(order));
    }
    emperor.wait_until("A's flood is under way", || {
        started(order).iter().filter(|n| n.starts_with('a')).count() >= 3
    });
    let a_before = started(order).iter().filter(|n| n.starts_with('a')).count();
    drop_b("b-new.ini", &naming(order));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(loyal_payload),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    emperor.wait_until("B's new config and B's respawn start", || {
        let names = started(order);
        names.iter().any(|n| n == "b-new") && names.iter().filter(|n| *n == "b-loyal").count() == 2
    });
    let names = started(order);
    let last_b = names.iter().rposition(|n| n.starts_with('b')).unwrap();
    let a_until_b = names[..last_b]
        .iter()
        .filter(|n| n.starts_with('a'))
        .count();
    eprintln!(
        "A had {a_before} starts when B dropped its config, {a_until_b} by B's last: {names:?}"
    );
    assert!(
        a_until_b <= a_before + 4,
        "B waited behind A's flood: {a_until_b} of A's spawns by B's last, {a_before} when B asked"
    );
    assert!(a_until_b < 30, "A's flood was still queued: {names:?}");
    let tenants = emperor.stats()["tenants"].clone();
    assert_eq!(tenants.as_array().map(Vec::len), Some(2), "{tenants}");
    emperor.wait_until("A's flood is all started", || {
        started(order).iter().filter(|n| n.starts_with('a')).count() == 30
    });
}

#[test]
fn a_tenants_flood_waits_behind_itself_not_another_monitors_spawns() {
    let _turn = timing_lock();
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let staging = tmp.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let order = tmp.path().join("order");
    let emperor = Emperor::start(
        tmp.path(),
        &[
            "--emperor",
            other.to_str().unwrap(),
            "--emperor-spawn-burst",
            "2",
            "--emperor-spawn-rate",
            "4",
        ],
    );
    let drop_in = |dir: &Path, name: &str, text: &str| {
        write(&staging.join(name), text);
        std::fs::rename(staging.join(name), dir.join(name)).unwrap();
    };
    a_flood_waits_behind_itself(
        &emperor,
        &order,
        |name, text| drop_in(&emperor.vassals, name, text),
        |name, text| drop_in(&other, name, text),
    );
}

#[test]
fn in_tyrant_mode_a_tenants_flood_waits_behind_itself_not_another_owners_spawns() {
    if !have_root("in_tyrant_mode_a_tenants_flood_waits_behind_itself") {
        return;
    }
    let _turn = timing_lock();
    let tmp = open_tempdir();
    let staging = tmp.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let orders = tmp.path().join("orders");
    std::fs::create_dir(&orders).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&orders, std::fs::Permissions::from_mode(0o777)).unwrap();
    // Both tenants append to it.
    let order = write(&orders.join("order"), "");
    std::fs::set_permissions(&order, std::fs::Permissions::from_mode(0o666)).unwrap();
    let emperor = Emperor::start(
        tmp.path(),
        &[
            "--emperor-tyrant",
            "--emperor-spawn-burst",
            "2",
            "--emperor-spawn-rate",
            "4",
        ],
    );
    let drop_as = |uid: u32, name: &str, text: &str| {
        emperor.drop_as(uid, name, text);
    };
    a_flood_waits_behind_itself(
        &emperor,
        &order,
        |name, text| drop_as(20001, name, text),
        |name, text| drop_as(20002, name, text),
    );
    let tenants = emperor.stats()["tenants"].clone();
    assert_eq!(tenants[0]["tenant"], "uid 20001", "{tenants}");
    assert_eq!(tenants[0]["vassals"], 30, "{tenants}");
    assert_eq!(tenants[1]["tenant"], "uid 20002", "{tenants}");
    assert_eq!(tenants[1]["running"], 2, "{tenants}");
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

#[test]
fn the_initial_scan_starts_runtimes_while_it_still_reads_configs() {
    // 150 configs are three batches of the emperor's judging (64 a loop turn): the first
    // batch's runtimes start before the last config is read, and the scan as a whole still
    // takes no token (one a second would leave most of them queued for minutes).
    let tmp = tempfile::tempdir().unwrap();
    let vassals = tmp.path().join("vassals");
    std::fs::create_dir(&vassals).unwrap();
    for i in 0..150 {
        write(
            &vassals.join(format!("v{i:03}.ini")),
            &ini("sleep 1000", &[]),
        );
    }
    let emperor = Emperor::start(
        tmp.path(),
        &["--emperor-spawn-burst", "1", "--emperor-spawn-rate", "1"],
    );
    emperor.wait_until("150 vassals running", || {
        emperor.stats()["vassals"]
            .as_array()
            .is_some_and(|all| all.iter().filter(|v| v["pid"].as_i64() > Some(0)).count() == 150)
    });
    let log = emperor.log();
    let lines: Vec<&str> = log.lines().collect();
    let first_spawn = lines.iter().position(|l| l.contains("INFO spawned "));
    let last_read = lines.iter().rposition(|l| l.contains("INFO new config "));
    assert!(
        first_spawn < last_read,
        "the first spawn (line {first_spawn:?}) came after the last config read (line {last_read:?})"
    );
    assert_eq!(emperor.stats()["throttle_level_ms"], 0);
}
