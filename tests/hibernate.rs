//! Hibernation (`--emperor-hibernate-after`): an idle runtime becomes `emperor-keeper` in its
//! own pid, and every event that needs the runtime wakes it with nothing lost: the payload's
//! output, a signal to forward, a reload (in place for uWSGI), the payload's death, a removal,
//! the emperor's death. In the plain, the full (pid namespace) and the tyrant's user
//! namespace jails.

mod common;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Runtimes hibernate 50 ms after their last event.
const QUICK: [&str; 2] = ["--emperor-hibernate-after", "50"];

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Wait until `runtime` sleeps as the keeper.
fn asleep(emperor: &Emperor, runtime: i32) {
    emperor.wait_until(&format!("runtime {runtime} hibernates"), || {
        comm(runtime) == "emperor-keeper"
    });
}

/// Every child of `pid`, zombies included (`common::children` lists the living only).
fn all_children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// A payload that says so on SIGUSR1, and on SIGUSR2 leaves a silent orphan behind that exits
/// a moment later (reparented to the runtime: its subreaper, or its pid namespace's init).
const PAYLOAD: &str = "/bin/sh -c 'echo payload up; \
    trap \"echo got usr1\" USR1; trap \"( (sleep 0.5) & )\" USR2; \
    while :; do sleep 0.05; done'";

fn sleeper_ini() -> String {
    format!("[uwsgi]\nunprivileged-binary-patch-arg = {PAYLOAD}\nloyal-after = 0.1\n")
}

fn log_count(emperor: &Emperor, line: &str) -> usize {
    emperor.log().matches(line).count()
}

/// The wake-ups one vassal meets, checked each time against a runtime that is asleep again.
fn every_wake_up(emperor: &Emperor, name: &str) {
    let (runtime, payload) = emperor.running(name);
    asleep(emperor, runtime);

    // Its output: the keeper wakes the runtime, which relays the line.
    kill(Pid::from_raw(payload), Signal::SIGUSR1).unwrap();
    emperor.wait_until("the payload's line relayed", || {
        log_count(emperor, "got usr1") == 1
    });
    asleep(emperor, runtime);

    // A signal to the runtime itself, pending across both execves, forwarded.
    kill(Pid::from_raw(runtime), Signal::SIGUSR1).unwrap();
    emperor.wait_until("the runtime's signal forwarded", || {
        log_count(emperor, "got usr1") == 2
    });
    asleep(emperor, runtime);

    // An orphan that exits while the runtime sleeps is reaped by the keeper, which stays
    // the keeper (nothing needs the runtime).
    kill(Pid::from_raw(payload), Signal::SIGUSR2).unwrap();
    let orphan = emperor.wait_for("the orphan reparented to the runtime", || {
        children(runtime).into_iter().find(|&c| c != payload)
    });
    emperor.wait_until("the orphan reaped", || {
        !all_children(runtime).contains(&orphan)
    });
    assert_eq!(
        comm(runtime),
        "emperor-keeper",
        "reaped by the keeper itself"
    );

    // A reload: the same runtime (its jail kept) starts a new payload.
    touch(&emperor.vassals.join(name));
    let (same, reloaded) = emperor.running_other_than(name, payload);
    assert_eq!(same, runtime, "a reload keeps the runtime");
    asleep(emperor, runtime);

    // The payload's death: seen by the woken runtime, which exits; a new one takes over.
    kill(Pid::from_raw(reloaded), Signal::SIGKILL).unwrap();
    let (respawned, _) = emperor.running_other_than(name, reloaded);
    assert_ne!(respawned, runtime, "a death is a new runtime");
    emperor.wait_until("the dead payload's runtime gone", || !alive(runtime));
    asleep(emperor, respawned);
}

/// Removing the config: the sleeping runtime and its payload go.
fn removal(emperor: &Emperor, name: &str) {
    let (runtime, payload) = emperor.running(name);
    asleep(emperor, runtime);
    std::fs::remove_file(emperor.vassals.join(name)).unwrap();
    emperor.wait_until("runtime and payload gone", || {
        !alive(runtime) && !alive(payload)
    });
}

#[test]
fn a_plain_runtime_sleeps_and_wakes_for_everything_it_must_do() {
    let tmp = open_tempdir();
    let emperor = Emperor::start(tmp.path(), &QUICK);
    emperor.write("a.ini", &sleeper_ini());
    every_wake_up(&emperor, "a.ini");
    removal(&emperor, "a.ini");
}

#[test]
fn a_payload_that_closed_its_output_and_channel_is_still_seen_dying() {
    let tmp = open_tempdir();
    let emperor = Emperor::start(tmp.path(), &QUICK);
    // Its exit is then only a SIGCHLD, which the keeper takes before it wakes the runtime.
    emperor.write(
        "quiet.ini",
        "[uwsgi]\nunprivileged-binary-patch-arg = /bin/sh -c 'exec sleep 1000 >/dev/null 2>&1 3>&-'\n\
         loyal-after = 0.1\n",
    );
    let (runtime, payload) = emperor.running("quiet.ini");
    emperor.wait_exec(payload, "sleep 1000");
    asleep(&emperor, runtime);
    kill(Pid::from_raw(payload), Signal::SIGKILL).unwrap();
    let (respawned, _) = emperor.running_other_than("quiet.ini", payload);
    assert_ne!(respawned, runtime);
    removal(&emperor, "quiet.ini");
}

#[test]
fn a_pid_namespace_init_sleeps_and_wakes_for_everything_it_must_do() {
    if !have_root("a_pid_namespace_init_sleeps") {
        return;
    }
    let tmp = open_tempdir();
    let mut args = QUICK.to_vec();
    args.extend(["--emperor-use-clone", "fs,net,ipc,pid,uts"]);
    let mut emperor = Emperor::start(tmp.path(), &args);
    emperor.write("a.ini", &sleeper_ini());
    every_wake_up(&emperor, "a.ini");
    // The emperor's death: the link hangs up, the keeper wakes the runtime, which takes its
    // payload down.
    let (runtime, payload) = emperor.running("a.ini");
    asleep(&emperor, runtime);
    emperor.signal(Signal::SIGKILL);
    emperor.wait_exit();
    wait_until("nothing left", PATIENCE, || {
        !alive(runtime) && !alive(payload)
    });
}

#[test]
fn a_tyrant_runtime_in_its_user_namespace_keeps_what_it_needs_to_start_again() {
    if !have_root("a_tyrant_runtime_sleeps") {
        return;
    }
    let tmp = open_tempdir();
    let mut args = QUICK.to_vec();
    args.extend(["--emperor-tyrant", "--emperor-use-clone", "fs,ipc,pid,uts"]);
    let emperor = Emperor::start(tmp.path(), &args);
    emperor.drop_as(20001, "t.ini", &sleeper_ini());
    let (runtime, payload) = emperor.running("t.ini");
    asleep(&emperor, runtime);
    let caps = status(runtime, "CapEff");
    // The reload sets the payload up again: as the owner, with the runtime's capabilities.
    touch(&emperor.vassals.join("t.ini"));
    let (same, reloaded) = emperor.running_other_than("t.ini", payload);
    assert_eq!(same, runtime);
    assert!(status(reloaded, "Uid").starts_with("20001"), "as its owner");
    asleep(&emperor, runtime);
    assert_eq!(
        status(runtime, "CapEff"),
        caps,
        "the same capabilities asleep"
    );
    removal(&emperor, "t.ini");
}

#[test]
fn a_hibernated_uwsgi_app_reloads_in_place_and_keeps_serving() {
    const UWSGI: &str = "/usr/bin/uwsgi";
    const PLUGIN: &str = "/usr/lib/uwsgi/plugins/python3_plugin.so";
    if !have_root("a_hibernated_uwsgi_app")
        || !have_tools("a_hibernated_uwsgi_app", &[UWSGI, PLUGIN])
    {
        return;
    }
    let tmp = open_tempdir();
    let app = tmp.path().join("app.py");
    let port = free_port();
    let ini = |greeting: &str| {
        std::fs::write(
            &app,
            format!(
                "def application(env, start_response):\n    \
                 start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
                 return [b'{greeting}']\n"
            ),
        )
        .unwrap();
        format!(
            "[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:{port}\nwsgi-file = {}\n\
             master = true\nprocesses = 1\ndisable-logging = true\n",
            app.display()
        )
    };
    let emperor = Emperor::start(tmp.path(), &QUICK);
    emperor.write("app.ini", &ini("one"));
    let (runtime, master) = emperor.running("app.ini");
    emperor.wait_until("the app answers", || {
        http_get(port).is_some_and(|b| b.ends_with("one"))
    });
    asleep(&emperor, runtime);
    // The new config is handed over the channel the woken runtime took back.
    emperor.write("app.ini", &ini("two"));
    emperor.wait_until("the new app answers", || {
        http_get(port).is_some_and(|b| b.ends_with("two"))
    });
    assert_eq!(emperor.running("app.ini"), (runtime, master), "in place");
    asleep(&emperor, runtime);
    assert!(http_get(port).is_some_and(|b| b.ends_with("two")));
}

#[test]
fn hibernation_off_keeps_the_runtime_awake() {
    let off_dir = open_tempdir();
    let off = Emperor::start(off_dir.path(), &["--emperor-hibernate-after", "0"]);
    off.write("a.ini", &sleeper_ini());
    let (awake, _) = off.running("a.ini");
    // The same vassal started after it under hibernation falls asleep; the first, with
    // longer to do so, has not.
    let on_dir = open_tempdir();
    let on = Emperor::start(on_dir.path(), &QUICK);
    on.write("a.ini", &sleeper_ini());
    let (runtime, _) = on.running("a.ini");
    asleep(&on, runtime);
    assert_eq!(comm(awake), "emperor-vassal");
}

#[test]
fn a_privileged_payload_keeps_its_runtime_awake() {
    if !have_root("a_privileged_payload_keeps_its_runtime_awake") {
        return;
    }
    // It holds the runtime's capabilities: only the dumpable flag, which an execve resets
    // for a moment, would keep it from the runtime's memory.
    let tmp = open_tempdir();
    let emperor = Emperor::start(tmp.path(), &QUICK);
    emperor.write(
        "root.ini",
        "[uwsgi]\nprivileged-binary-patch-arg = /bin/sleep 1000\nloyal-after = 0.1\n",
    );
    let (awake, _) = emperor.running("root.ini");
    emperor.write("a.ini", &sleeper_ini());
    let (runtime, _) = emperor.running("a.ini");
    asleep(&emperor, runtime);
    assert_eq!(comm(awake), "emperor-vassal");
}

#[test]
fn a_payload_cannot_read_its_runtime_while_it_falls_asleep_and_wakes() {
    if !have_root("a_payload_cannot_read_its_runtime") {
        return;
    }
    // Each line wakes the runtime; a pause lets it fall asleep again (until its quiet time,
    // doubled by each short sleep, outgrows the pause); every open of its
    // memory, environment and fds meanwhile must be refused (two execves a round, each
    // leaving the process dumpable until its first instruction). These are the files a
    // ptrace access check guards; the dumpable flag is part of that check.
    let tmp = open_tempdir();
    let emperor = Emperor::start(tmp.path(), &QUICK);
    // A script of its own: the config language would expand `$(...)`.
    let probe = write(
        &tmp.path().join("probe.sh"),
        "cat /proc/self/environ >/dev/null && echo self readable\n\
         i=0\n\
         while [ $i -lt 60 ]; do\n\
           i=$((i+1)); echo round $i\n\
           for f in environ mem fd/0; do\n\
             (exec 9</proc/$PPID/$f) 2>/dev/null && echo ALLOWED $f\n\
           done\n\
           sleep 0.07\n\
         done\n\
         echo probe done\n\
         exec sleep 1000\n",
    );
    emperor.write(
        "probe.ini",
        &format!(
            "[uwsgi]\nunprivileged-binary-patch-arg = /bin/sh {}\nloyal-after = 0.05\n",
            probe.display()
        ),
    );
    emperor.wait_until_for(
        "the probe's rounds",
        std::time::Duration::from_secs(60),
        || emperor.log().contains("probe done"),
    );
    let log = emperor.log();
    assert!(log.contains("self readable"), "the probe can tell: {log}");
    assert!(
        !log.contains("ALLOWED"),
        "the payload reached its runtime:\n{log}"
    );
    let (runtime, _) = emperor.running("probe.ini");
    asleep(&emperor, runtime);
}
