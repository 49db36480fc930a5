//! The config reader: the emperor never parses a tenant's config itself. A throwaway worker of
//! its config reader loads each config; a worker that runs out of memory (or crashes, or runs
//! out of time) costs that one vassal, and the emperor, its reader and every other vassal go on.

mod common;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The emperor's config reader: its one child whose command line says so.
fn reader_of(emperor: &Emperor) -> i32 {
    emperor.wait_for("the config reader runs", || {
        children(emperor.pid)
            .into_iter()
            .find(|&pid| cmdline(pid).contains(" config-reader"))
    })
}

/// An on-demand config on a free port, so the emperor must learn its socket.
fn on_demand(extra: &str) -> String {
    format!(
        "[uwsgi]\non-demand-socket = 127.0.0.1:{}\n{extra}unprivileged-binary-patch-arg = sleep 1000\n",
        free_port()
    )
}

fn wait_waiting(emperor: &Emperor, name: &str) {
    emperor.wait_until(&format!("{name} waits for a connection"), || {
        emperor
            .vassal(name)
            .is_some_and(|v| v["state"] == "on-demand")
    });
}

#[test]
fn a_worker_out_of_memory_costs_only_its_vassal() {
    let tmp = open_tempdir();
    // Each worker may map 4 MiB more than the reader: 60,000 options (within the config
    // language's limits), each entry remembering its file and line, do not fit.
    let emperor = Emperor::start(tmp.path(), &["--emperor-reader-memory", "4"]);
    emperor.write("neighbour.ini", &ini("sleep 1000", &[]));
    let (runtime, payload) = emperor.running("neighbour.ini");
    let reader = reader_of(&emperor);

    let many: String = (0..60_000).map(|i| format!("o{i} = v\n")).collect();
    emperor.write("hostile.ini", &on_demand(&many));
    emperor.wait_until("the hostile config is refused with its reason", || {
        emperor.log().lines().any(|line| {
            line.contains("hostile.ini")
                && line.contains("out of memory: over its 4 MiB")
                && line.contains("not started")
        })
    });

    assert!(alive(emperor.pid), "the emperor is up");
    assert_eq!(reader_of(&emperor), reader, "the reader itself did not die");
    assert_eq!(emperor.running("neighbour.ini"), (runtime, payload));
    assert!(
        emperor.runtime_pid("hostile.ini").is_none(),
        "nothing runs for the hostile config"
    );
    // The reader goes on judging configs.
    emperor.write("fine.ini", &on_demand(""));
    wait_waiting(&emperor, "fine.ini");
}

#[test]
fn a_reader_killed_from_outside_is_started_again_and_dies_with_the_emperor() {
    let tmp = open_tempdir();
    let mut emperor = Emperor::start(tmp.path(), &[]);
    let first = reader_of(&emperor);
    kill(Pid::from_raw(first), Signal::SIGKILL).unwrap();
    wait_until("the killed reader is collected", PATIENCE, || !alive(first));

    emperor.write("app.ini", &on_demand(""));
    wait_waiting(&emperor, "app.ini");
    let second = reader_of(&emperor);
    assert_ne!(second, first);
    assert!(
        emperor.runtime_pid("app.ini").is_none() && emperor.log().contains("starting it again"),
        "the config was judged by a new reader"
    );

    emperor.signal(Signal::SIGKILL);
    emperor.wait_exit();
    wait_until("the reader dies with the emperor", PATIENCE, || {
        !alive(second)
    });
    reap(&[second]);
}

#[test]
fn the_unprivileged_emperors_reader_reads_a_tenants_config_as_the_tenant() {
    if !have_root("the_unprivileged_emperors_reader_reads_a_tenants_config_as_the_tenant") {
        return;
    }
    use std::os::unix::fs::{chown, PermissionsExt};
    let tmp = open_tempdir();
    let args = [
        &UNPRIVILEGED[..],
        &["--emperor-tyrant", "--emperor-tyrant-ports", "1024-65535"],
    ];
    let emperor = Emperor::start(tmp.path(), &args.concat());
    let reader = reader_of(&emperor);
    assert_eq!(status(reader, "Uid"), "10000 10000 10000 10000");
    assert_eq!(status(reader, "CapEff"), "00000000000000c0");
    assert_eq!(status(reader, "CapBnd"), "00000000000000c0");

    // Only the tenant may read the file its config takes its idle time from.
    let secret = tmp.path().join("idle.txt");
    std::fs::write(&secret, "7").unwrap();
    chown(&secret, Some(20001), Some(20001)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let staged = tmp.path().join("alice.ini");
    write(
        &staged,
        &on_demand(&format!("idle = @({})\n", secret.display())),
    );
    chown(&staged, Some(20001), Some(20001)).unwrap();
    std::fs::rename(&staged, emperor.vassals.join("alice.ini")).unwrap();
    // It loads (so it waits on demand) only if the file was read as uid 20001: the emperor's
    // own uid 10000 may not read it.
    wait_waiting(&emperor, "alice.ini");
}

#[test]
fn configs_read_ahead_in_a_batch_each_get_their_own_answer() {
    // The initial scan has the reader load 64 configs at a time, their answers read after
    // all are asked: each of 100 on-demand vassals must hold its own socket, and a worker
    // dying of the hostile one between them costs only that one.
    let tmp = open_tempdir();
    let vassals = tmp.path().join("vassals");
    let sockets = tmp.path().join("sockets");
    std::fs::create_dir_all(&vassals).unwrap();
    std::fs::create_dir_all(&sockets).unwrap();
    let socket_of = |i: usize| sockets.join(format!("v{i:03}.sock")).display().to_string();
    for i in 0..100 {
        let text = format!(
            "[uwsgi]\non-demand-socket = {}\nunprivileged-binary-patch-arg = sleep 1000\n",
            socket_of(i)
        );
        write(&vassals.join(format!("v{i:03}.ini")), &text);
    }
    let many: String = (0..60_000).map(|i| format!("o{i} = v\n")).collect();
    write(&vassals.join("v040-hostile.ini"), &on_demand(&many));

    let emperor = Emperor::start(tmp.path(), &["--emperor-reader-memory", "4"]);
    for i in 0..100 {
        let name = format!("v{i:03}.ini");
        wait_waiting(&emperor, &name);
        let vassal = emperor.vassal(&name).unwrap();
        assert_eq!(vassal["on_demand"], socket_of(i), "{vassal}");
    }
    emperor.wait_until("the hostile config is refused with its reason", || {
        emperor.log().lines().any(|line| {
            line.contains("v040-hostile.ini")
                && line.contains("out of memory: over its 4 MiB")
                && line.contains("not started")
        })
    });
}

#[test]
fn configs_read_ahead_from_a_dead_reader_are_read_again_one_at_a_time() {
    let tmp = open_tempdir();
    let emperor = Emperor::start(tmp.path(), &[]);
    let first = reader_of(&emperor);
    kill(Pid::from_raw(first), Signal::SIGKILL).unwrap();
    wait_until("the killed reader is collected", PATIENCE, || !alive(first));

    // Written while the emperor is stopped, the five configs are one batch of events when
    // it goes on: read ahead together, from the dead reader.
    let sockets = tmp.path().join("sockets");
    std::fs::create_dir_all(&sockets).unwrap();
    let socket_of = |i: usize| sockets.join(format!("v{i}.sock")).display().to_string();
    kill(Pid::from_raw(emperor.pid), Signal::SIGSTOP).unwrap();
    for i in 0..5 {
        emperor.write(
            &format!("v{i}.ini"),
            &format!(
                "[uwsgi]\non-demand-socket = {}\nunprivileged-binary-patch-arg = sleep 1000\n",
                socket_of(i)
            ),
        );
    }
    kill(Pid::from_raw(emperor.pid), Signal::SIGCONT).unwrap();
    for i in 0..5 {
        let name = format!("v{i}.ini");
        wait_waiting(&emperor, &name);
        assert_eq!(emperor.vassal(&name).unwrap()["on_demand"], socket_of(i));
    }
    assert!(
        emperor.log().contains("reading ahead stopped"),
        "the batch was read ahead from the dead reader"
    );
    assert_ne!(reader_of(&emperor), first, "a new reader read them");
}
