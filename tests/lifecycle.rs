//! A vassal's life as a user sees it: its config appears, changes, goes; its payload dies.

mod common;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::Write;
use std::time::{Duration, Instant};

#[test]
fn added_config_starts_its_payload() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    assert_eq!(emperor.stats()["vassals"].as_array().unwrap().len(), 0);

    emperor.write("app.ini", &ini("sleep 1000", &[]));
    let (runtime, payload) = emperor.running("app.ini");

    assert_eq!(cmdline(payload), "sleep 1000");
    assert_eq!(
        parent(payload),
        Some(runtime),
        "the runtime supervises the payload"
    );
    assert_eq!(
        parent(runtime),
        Some(emperor.pid),
        "the emperor runs the runtime"
    );
    let sid = nix::unistd::getsid(Some(Pid::from_raw(payload))).unwrap();
    assert_eq!(sid.as_raw(), payload, "the payload leads its own session");
    assert!(emperor.log().contains("new config vassal=app.ini"));
}

#[test]
fn touched_config_reloads_with_a_new_payload_pid_and_same_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    let config = emperor.write("app.ini", &ini("sleep 1000", &["reload-mercy = 5"]));
    let (runtime, old) = emperor.running("app.ini");

    touch(&config);
    let (runtime_after, new) = emperor.running_other_than("app.ini", old);

    assert_eq!(runtime_after, runtime, "a reload keeps the runtime");
    assert!(!alive(old), "the old payload is gone");
    assert_eq!(emperor.vassal("app.ini").unwrap()["respawns"], 1);
    assert_eq!(cmdline(new), "sleep 1000");
}

#[test]
fn changed_config_is_read_again_on_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    emperor.write("app.ini", &ini("sleep 1000", &[]));
    let (runtime, old) = emperor.running("app.ini");

    // Written in place: the emperor may see the file truncated first, reload, see the rest
    // arrive during that reload and reload again; the last payload is the new config's.
    emperor.write("app.ini", &ini("sleep 2000", &[]));
    let runtime_after = emperor.wait_for("the new config's payload", || {
        let (runtime_after, new) = emperor.running_other_than("app.ini", old);
        (cmdline(new) == "sleep 2000").then_some(runtime_after)
    });
    assert_eq!(runtime_after, runtime);
}

#[test]
fn removed_config_stops_its_vassal_and_its_children() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    let config = emperor.write("app.ini", &ini("sh -c 'sleep 1000 & sleep 1000'", &[]));
    let (runtime, _) = emperor.running("app.ini");
    emperor.wait_until("the payload started its background sleep", || {
        descendants(runtime).len() >= 2
    });
    let mut tree = vec![runtime];
    tree.extend(descendants(runtime));
    emperor.tree();

    std::fs::remove_file(&config).unwrap();
    emperor.wait_until("the vassal leaves the table", || {
        emperor.vassal("app.ini").is_none()
    });
    emperor.wait_until("the runtime, its payload and grandchild are gone", || {
        tree.iter().all(|&p| !alive(p))
    });
    assert!(emperor.log().contains("stopped and removed vassal=app.ini"));
}

#[test]
fn killed_payload_is_respawned() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    emperor.write("app.ini", &ini("sleep 1000", &["loyal-after = 0.1"]));
    let (runtime, payload) = emperor.running("app.ini");
    emperor.wait_until("the vassal is loyal", || {
        emperor.vassal("app.ini").unwrap()["loyal"] == 1
    });

    kill(Pid::from_raw(payload), Signal::SIGKILL).unwrap();
    let (new_runtime, new_payload) = emperor.running_other_than("app.ini", payload);

    assert_ne!(
        new_runtime, runtime,
        "the runtime exits with its payload's status"
    );
    assert_ne!(new_payload, payload);
    let v = emperor.vassal("app.ini").unwrap();
    assert_eq!(v["respawns"], 1);
    assert_eq!(v["last_exit_status"], 128 + 9, "killed by SIGKILL");
    assert_eq!(v["blacklisted"], false, "a loyal vassal is not blacklisted");
    assert!(!alive(runtime));
}

#[test]
fn payload_ignoring_sigterm_is_killed_after_the_mercy_time() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    let config = emperor.write(
        "stubborn.ini",
        &ini(r#"sh -c 'trap "" TERM; sleep 1000'"#, &["reload-mercy = 1"]),
    );
    let (runtime, payload) = emperor.running("stubborn.ini");
    // The trap is set once the shell has forked its sleep (which inherits the ignored TERM).
    emperor.wait_until("the shell runs its sleep", || !children(payload).is_empty());
    let mut tree = vec![runtime];
    tree.extend(descendants(runtime));

    let removed = Instant::now();
    std::fs::remove_file(&config).unwrap();
    emperor.wait_until("the stubborn payload is killed", || {
        tree.iter().all(|&p| !alive(p))
    });
    let took = removed.elapsed();

    assert!(
        took >= Duration::from_millis(900),
        "killed after {took:?}, before the 1 s of mercy"
    );
    assert!(took < Duration::from_secs(4), "killed only after {took:?}");
    assert!(
        emperor.log().contains("of mercy: SIGKILL"),
        "{}",
        emperor.log()
    );
}

#[test]
fn payload_honouring_sigterm_stops_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    let config = emperor.write("app.ini", &ini("sleep 1000", &["reload-mercy = 30"]));
    let (runtime, payload) = emperor.running("app.ini");

    let removed = Instant::now();
    std::fs::remove_file(&config).unwrap();
    emperor.wait_until("the payload is gone", || !alive(payload) && !alive(runtime));
    assert!(
        removed.elapsed() < Duration::from_secs(5),
        "a payload that obeys SIGTERM does not wait for the mercy time"
    );
}

#[test]
fn vassal_writing_its_config_in_two_chunks_is_read_once_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &["--emperor-freq", "60"]);
    let text = ini("sleep 1000", &["reload-mercy = 1"]);
    let (first, second) = text.split_at(text.len() - 12);

    let mut file = std::fs::File::create(emperor.vassals.join("app.ini")).unwrap();
    file.write_all(first.as_bytes()).unwrap();
    file.flush().unwrap();
    // Give the emperor every chance to act on the half-written file.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        emperor.vassal("app.ini").is_none(),
        "a file still being written was read: {}",
        emperor.log()
    );
    file.write_all(second.as_bytes()).unwrap();
    drop(file);

    let (_, payload) = emperor.running("app.ini");
    assert_eq!(cmdline(payload), "sleep 1000");
    let v = emperor.vassal("app.ini").unwrap();
    assert_eq!(v["respawns"], 0, "read once, complete");
    assert!(!emperor.log().contains("ERROR"), "{}", emperor.log());
}

#[test]
fn config_renamed_into_place_starts_and_renamed_away_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    let staged = write(&tmp.path().join("app.ini"), &ini("sleep 1000", &[]));

    std::fs::rename(&staged, emperor.vassals.join("app.ini")).unwrap();
    let (runtime, payload) = emperor.running("app.ini");

    std::fs::rename(
        emperor.vassals.join("app.ini"),
        emperor.vassals.join("app.ini.disabled"),
    )
    .unwrap();
    emperor.wait_until("the vassal is stopped", || {
        emperor.vassal("app.ini").is_none() && !alive(payload) && !alive(runtime)
    });
}

#[test]
fn killed_runtime_takes_its_payload_tree_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    emperor.write("app.ini", &ini("sh -c 'sleep 1000 & sleep 1000'", &[]));
    let (runtime, _) = emperor.running("app.ini");
    emperor.wait_until("the payload started its background sleep", || {
        descendants(runtime).len() >= 2
    });
    let tree = descendants(runtime);
    emperor.tree();

    kill(Pid::from_raw(runtime), Signal::SIGKILL).unwrap();
    emperor.wait_until("the payload and its grandchild are gone", || {
        tree.iter().all(|&p| !alive(p))
    });
    // And the vassal comes back (after its blacklist delay: it was not loyal yet).
    emperor.running_other_than("app.ini", tree[0]);
}

#[test]
fn a_config_that_breaks_during_a_reload_is_a_death_counted_once_not_a_fresh_jail() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &["--emperor-throttle", "60000"]);
    let config = emperor.write("app.ini", &ini("sleep 1000", &[]));
    emperor.running("app.ini");
    // The runtime reads the changed config in its reload and cannot go on: status 1, which
    // is not its "give me a new jail" (75).
    write(&config, &ini("sleep 1000", &["chdir = /nonexistent/dir"]));
    emperor.wait_until("the vassal is blacklisted", || {
        emperor
            .vassal("app.ini")
            .is_some_and(|v| v["blacklisted"] == true && v["state"] == "waiting")
    });
    let v = emperor.vassal("app.ini").unwrap();
    // The reload counts one (as in uWSGI), the death one: not a fresh jail besides.
    assert_eq!(v["respawns"], 2, "the reload and one death: {v}");
    assert_eq!(v["last_exit_status"], 1, "{v}");
    assert!(
        !emperor.log().contains("restarting afresh"),
        "{}",
        emperor.log()
    );
}

#[test]
fn a_rewrite_within_one_tick_of_the_clock_is_still_a_change() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    let config = emperor.write("app.ini", &ini("sleep 1001", &[]));
    let (runtime, first) = emperor.running("app.ini");
    let mtime = std::fs::metadata(&config).unwrap().modified().unwrap();
    // Rewritten in place, and its mtime the same as before: what a coarse filesystem clock
    // gives two writes within one tick.
    std::fs::write(&config, ini("sleep 1002", &[])).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&config)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let (_, second) = emperor.running_other_than("app.ini", first);
    emperor.wait_exec(second, "sleep 1002");
    assert_eq!(
        emperor.running("app.ini").0,
        runtime,
        "reloaded, same runtime"
    );
}

#[test]
fn voluntary_shutdown_is_not_respawned_until_the_config_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &["--emperor-throttle", "100"]);
    // Byte 22 (octal 026) asks the emperor to stop this vassal for good.
    let config = emperor.write(
        "quitter.ini",
        &ini(r#"sh -c 'printf "\026" >&3; exec sleep 1000'"#, &[]),
    );
    emperor.wait_until("the vassal is idle", || {
        emperor
            .vassal("quitter.ini")
            .is_some_and(|v| v["state"] == "idle")
    });
    let v = emperor.vassal("quitter.ini").unwrap();
    assert_eq!(v["pid"], -1);
    assert_eq!(v["respawns"], 0, "not respawned");

    write(&config, &ini("sleep 1000", &[]));
    emperor.running("quitter.ini");
}

#[test]
fn vassal_flooding_its_socket_with_garbage_cannot_stall_the_emperor() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    // An endless stream of byte 0 (unknown from a vassal) into the protocol socket.
    emperor.write("flood.ini", &ini("sh -c 'cat /dev/zero >&3'", &[]));
    emperor.write("calm.ini", &ini("sleep 1000", &["reload-mercy = 1"]));
    let (_, flooder) = emperor.running("flood.ini");
    let (_, calm) = emperor.running("calm.ini");

    // While the flood goes on, the emperor still answers and still reloads other vassals.
    for _ in 0..3 {
        let started = Instant::now();
        emperor.stats();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "stats took {:?}",
            started.elapsed()
        );
    }
    touch(&emperor.vassals.join("calm.ini"));
    let (_, reloaded) = emperor.running_other_than("calm.ini", calm);
    assert_ne!(reloaded, calm);
    assert!(
        alive(flooder),
        "the flooder is not punished for garbage: it is ignored"
    );
    let log = emperor.log();
    let warnings = log
        .lines()
        .filter(|l| l.contains("ignoring unknown protocol bytes"))
        .count();
    assert!(warnings >= 1, "the garbage is logged:\n{log}");
    assert!(warnings <= 3, "but not line by line: {warnings} lines");
}

#[test]
fn payload_starts_with_every_signal_default_and_unblocked() {
    let tmp = tempfile::tempdir().unwrap();
    // The emperor blocks its signals (signalfd) and ignores SIGPIPE; none of it may leak.
    let emperor = Emperor::start(tmp.path(), &[]);
    emperor.write("app.ini", &ini("sleep 1000", &[]));
    let (runtime, payload) = emperor.running("app.ini");
    let status = std::fs::read_to_string(format!("/proc/{payload}/status")).unwrap();
    for field in ["SigBlk", "SigIgn"] {
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        assert!(line.ends_with("0000000000000000"), "payload {line}");
    }
    let runtime_status = std::fs::read_to_string(format!("/proc/{runtime}/status")).unwrap();
    let blocked = runtime_status
        .lines()
        .find(|l| l.starts_with("SigBlk"))
        .unwrap();
    assert!(
        !blocked.ends_with("0000000000000000"),
        "control: the runtime itself blocks signals ({blocked})"
    );
}

/// A stopped vassal's SIGKILL timer goes with it: a quiet emperor is not woken when the curse
/// tolerance of a vassal that is long gone runs out (each stale timer was one wake-up, 30 s
/// after every stop, at 5000 vassals a steady trickle).
#[test]
fn a_quiet_emperor_is_not_woken_by_the_timer_of_a_vassal_that_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &["--emperor-curse-tolerance", "1"]);
    emperor.write("stays.ini", &ini("sleep 1000", &[]));
    let config = emperor.write("goes.ini", &ini("sleep 1000", &[]));
    emperor.running("stays.ini");
    let (runtime, payload) = emperor.running("goes.ini");

    std::fs::remove_file(&config).unwrap();
    emperor.wait_until("the removed vassal is gone", || {
        emperor.vassal("goes.ini").is_none() && !alive(runtime) && !alive(payload)
    });
    // The window spans the stopped vassal's curse tolerance (1 s) with a second to spare;
    // nothing else is due in it (no rescan of a local directory, the stats are not asked).
    assert_stays_asleep(&emperor, Duration::from_secs(2));
    assert!(!emperor.log().contains("curse tolerance"));
}

/// inotify sees every change in a local directory of plain files, so the safety-net rescan
/// does not wake a quiet emperor to read them all again (at 5000 vassals, 15-30 ms each time).
#[test]
fn a_quiet_emperor_does_not_rescan_a_local_directory_that_inotify_sees_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &["--emperor-freq", "1"]);
    emperor.write("app.ini", &ini("sleep 1000", &[]));
    emperor.running("app.ini");

    // Two and a half rescan periods; nothing else is due (the stats are not asked).
    assert_stays_asleep(&emperor, Duration::from_millis(2500));
}

/// Where inotify cannot see, the rescan still comes: a config that is a symlink is followed,
/// and its target, outside the watched directory, changes without an event there.
#[test]
fn the_rescan_still_sees_a_followed_symlinks_target_change() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &["--emperor-freq", "1"]);
    let target = write(&tmp.path().join("app.ini"), &ini("sleep 1000", &[]));
    std::os::unix::fs::symlink(&target, emperor.vassals.join("app.ini")).unwrap();
    let (_, first) = emperor.running("app.ini");

    write(&target, &ini("sleep 1001", &[]));
    let (_, second) = emperor.running_other_than("app.ini", first);

    assert!(
        cmdline(second).contains("1001"),
        "the payload of the changed target runs"
    );
}

/// The emperor's loop does not wake up for `window`: it has nothing to do. The window opens
/// once the loop sleeps in epoll_wait, not while it still finishes the test's last request (a
/// stats answer is written from the loop itself, and going to sleep counts as a switch).
fn assert_stays_asleep(emperor: &Emperor, window: Duration) {
    let wchan = format!("/proc/{0}/task/{0}/wchan", emperor.pid);
    emperor.wait_until("the loop sleeps in epoll_wait", || {
        std::fs::read_to_string(&wchan).is_ok_and(|w| w.contains("epoll"))
    });
    let before = main_thread_wakeups(emperor.pid);
    std::thread::sleep(window);
    let after = main_thread_wakeups(emperor.pid);
    assert_eq!(
        after - before,
        0,
        "the emperor's loop woke up with nothing to do; log:\n{}",
        emperor.log()
    );
}

/// Voluntary context switches of a process's main thread: one per return to its epoll wait.
fn main_thread_wakeups(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("voluntary_ctxt_switches in status")
}

#[test]
fn a_change_made_while_a_reload_runs_its_hooks_is_not_lost() {
    let tmp = open_tempdir();
    let emperor = Emperor::start(tmp.path(), &[]);
    // The hook holds each reload for two seconds after its runtime has read the config.
    let config = |n: u32| ini(&format!("sleep {n}"), &["exec-as-user = /bin/sleep 2"]);
    emperor.write("app.ini", &config(1001));
    let (runtime, first) = emperor.running("app.ini");

    emperor.write("app.ini", &config(1002));
    emperor.wait_until("the reload runs its hook", || {
        descendants(runtime)
            .iter()
            .any(|&pid| cmdline(pid) == "/bin/sleep 2")
    });
    emperor.write("app.ini", &config(1003));
    let (_, last) = emperor.wait_for("the vassal runs the last content", || {
        let (runtime, payload) = emperor.running_other_than("app.ini", first);
        (cmdline(payload) == "sleep 1003").then_some((runtime, payload))
    });
    assert!(alive(last));
}
