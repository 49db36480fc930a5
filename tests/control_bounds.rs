//! The emperor's control surfaces hold within bounds a client cannot push: stats clients that
//! never read pin no thread and no copy of the document each, a flood that exhausts the
//! emperor's fds pauses its listener instead of spinning its loop, a control client that never
//! reads its answers cannot grow the emperor, and idle control connections never lock
//! `emperor reload` out.

mod common;

use common::*;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// The emperor's resident memory, KiB.
fn rss_kib(pid: i32) -> u64 {
    let value = status(pid, "VmRSS");
    value.trim_end_matches(" kB").parse().unwrap()
}

/// The CPU time the emperor has used, in clock ticks (utime + stime).
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(") ").unwrap();
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse().unwrap())
        .collect();
    fields.iter().sum()
}

/// An emperor with `n` on-demand vassals (no processes, a stats entry each), all waiting.
fn emperor_with_waiting_vassals(tmp: &tempfile::TempDir, n: usize, extra: &[&str]) -> Emperor {
    let emperor = Emperor::start(tmp.path(), extra);
    for i in 0..n {
        let socket = tmp.path().join(format!("s{i}.sock"));
        let config = format!(
            "[uwsgi]\non-demand-socket = {}\nunprivileged-binary-patch-arg = sleep 1000\n",
            socket.display()
        );
        emperor.write(&format!("app{i:04}.ini"), &config);
    }
    emperor.wait_until("every vassal waits on demand", || {
        emperor.try_stats().is_some_and(|s| {
            s["vassals"]
                .as_array()
                .is_some_and(|v| v.len() == n && v.iter().all(|v| v["state"] == "on-demand"))
        })
    });
    emperor
}

#[test]
fn stats_clients_that_never_read_pin_no_thread_and_no_document_each() {
    let tmp = open_tempdir();
    let emperor = emperor_with_waiting_vassals(&tmp, 1000, &[]);
    let document = serde_json::to_vec(&emperor.stats()).unwrap().len();
    assert!(
        document > 300_000,
        "a document larger than a socket buffer: {document} bytes"
    );
    let before = rss_kib(emperor.pid);

    let stuck: Vec<UnixStream> = (0..200)
        .map(|_| UnixStream::connect(&emperor.stats_addr).unwrap())
        .collect();
    // Every one of them is being written to: the emperor has accepted them all.
    emperor.wait_until("the emperor has accepted the 200 clients", || {
        std::fs::read_dir(format!("/proc/{}/fd", emperor.pid))
            .unwrap()
            .count()
            > 200
    });
    let started = Instant::now();
    let stats = emperor.stats();
    assert_eq!(stats["vassals"].as_array().unwrap().len(), 1000);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a reader is served at once beside the stuck clients: {:?}",
        started.elapsed()
    );
    assert_eq!(status(emperor.pid, "Threads"), "1", "no thread per client");
    let grown = rss_kib(emperor.pid).saturating_sub(before);
    let per_client_copies = 200 * document as u64 / 1024;
    assert!(
        grown < per_client_copies / 10,
        "the emperor grew by {grown} KiB for 200 stuck clients (a copy each: {per_client_copies} KiB)"
    );
    drop(stuck);
}

#[test]
fn running_out_of_fds_pauses_the_stats_listener_instead_of_spinning() {
    let tmp = open_tempdir();
    // A document larger than a socket buffer: the clients that do not read keep their fds.
    let emperor = emperor_with_waiting_vassals(&tmp, 1000, &[]);
    // A new fd takes the lowest free number below the limit: the limit leaves four free.
    let used: Vec<u32> = std::fs::read_dir(format!("/proc/{}/fd", emperor.pid))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let fifth_free = (0..).filter(|fd| !used.contains(fd)).nth(4).unwrap();
    let limit = format!("--nofile={fifth_free}:{fifth_free}");
    let lowered = Command::new("prlimit")
        .args(["--pid", &emperor.pid.to_string(), &limit])
        .status()
        .unwrap();
    assert!(lowered.success(), "prlimit {limit}");

    let flood: Vec<UnixStream> = (0..40)
        .map(|_| UnixStream::connect(&emperor.stats_addr).unwrap())
        .collect();
    emperor.wait_until("the emperor says it is out of fds", || {
        emperor.log().contains("stats server: accept")
    });
    let before = cpu_ticks(emperor.pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(emperor.pid) - before;
    assert!(used < 50, "{used} ticks of CPU in 2 s: the loop spins");
    assert_eq!(
        emperor.log().matches("stats server: accept").count(),
        1,
        "said once"
    );

    drop(flood);
    emperor.wait_until("stats are served again once the clients are gone", || {
        emperor.try_stats().is_some()
    });
    assert!(alive(emperor.pid));
}

#[test]
fn a_control_client_that_never_reads_cannot_grow_the_emperor() {
    let tmp = open_tempdir();
    let control = tmp.path().join("control.sock");
    let control_arg = control.display().to_string();
    let emperor = emperor_with_waiting_vassals(&tmp, 300, &["--emperor-control", &control_arg]);
    let before = rss_kib(emperor.pid);

    let mut client = UnixStream::connect(&control).unwrap();
    client
        .set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let burst = "status\n".repeat(1000);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        // Blocks (then times out) once the emperor stops reading: that is the point.
        let _ = client.write_all(burst.as_bytes());
    }
    let grown = rss_kib(emperor.pid).saturating_sub(before);
    assert!(grown < 8 * 1024, "the emperor grew by {grown} KiB");
    // The emperor goes on serving others meanwhile.
    assert!(emperor.try_stats().is_some());
    drop(client);
}

#[test]
fn idle_control_connections_never_lock_emperor_reload_out() {
    let tmp = open_tempdir();
    let control = tmp.path().join("control.sock");
    let control_arg = control.display().to_string();
    let emperor = Emperor::start(tmp.path(), &["--emperor-control", &control_arg]);
    emperor.write("app.ini", &ini("sleep 1000", &[]));
    let (_, payload) = emperor.running("app.ini");

    let idle: Vec<UnixStream> = (0..80)
        .map(|_| UnixStream::connect(&control).unwrap())
        .collect();
    let output = Command::new(BIN)
        .args(["reload", "--timeout", "20", "--minimum-active-vassals", "0"])
        .args(["--control", &control_arg])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "emperor reload: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    emperor.running_other_than("app.ini", payload);
    drop(idle);
}
