//! The emperor's client-facing sockets have bounds (issue 18, item 4): stats clients that never
//! read cost neither a thread nor a copy of the document each; an emperor out of fds does not
//! spin on its listener; a control client that asks and never reads costs a bounded buffer; idle
//! control connections cannot lock `emperor reload` out.

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Vassals in the big-document tests: with their long names the stats document is ~400 KB,
/// well over what a UNIX socket buffers (~200 KB), so a client that never reads holds its
/// connection open instead of having taken its document at once.
const VASSALS: usize = 300;

/// An emperor with a control socket and [`VASSALS`] on-demand vassals (no processes) with
/// 250-character names, its sockets in a second temp dir (a UNIX socket path has 108 bytes).
struct BigDocument {
    emperor: Emperor,
    control: PathBuf,
    /// The stats document's size in bytes.
    size: usize,
    /// Removed after the emperor is gone (fields drop in order).
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn emperor_with_big_document() -> BigDocument {
    let (tmp, short) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let control = short.path().join("control.sock");
    let emperor = Emperor::launch(
        tmp.path(),
        Options {
            args: vec!["--emperor-control".into(), control.display().to_string()],
            stats_addr: Some(short.path().join("stats.sock").display().to_string()),
            ..Options::default()
        },
    );
    for i in 0..VASSALS {
        let name = format!("{i:03}{}.ini", "v".repeat(247));
        let socket = short.path().join(format!("{i}.sock"));
        emperor.write(
            &name,
            &format!(
                "[uwsgi]\non-demand-socket = {}\nunprivileged-binary-patch-arg = sleep 1000\n",
                socket.display()
            ),
        );
    }
    emperor.wait_until("every vassal is known", || {
        emperor.try_stats().is_some_and(|doc| {
            doc["vassals"]
                .as_array()
                .is_some_and(|v| v.len() == VASSALS && v.iter().all(|v| v["state"] == "on-demand"))
        })
    });
    let size = raw_stats(&emperor.stats_addr).expect("a document").len();
    assert!(size > 300_000, "the document is only {size} bytes");
    BigDocument {
        emperor,
        control,
        size,
        _dirs: (tmp, short),
    }
}

/// The whole stats document as bytes, read with a deadline.
fn raw_stats(addr: &str) -> Option<Vec<u8>> {
    let mut stream = UnixStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(PATIENCE)).ok()?;
    let mut body = Vec::new();
    stream.read_to_end(&mut body).ok()?;
    Some(body)
}

/// A field of /proc/PID/status (`VmRSS` in kB, `Threads`).
fn status_field(pid: i32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// The emperor's resident memory in bytes.
fn rss(pid: i32) -> u64 {
    status_field(pid, "VmRSS") * 1024
}

/// user + system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(") ").unwrap();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The numbers of a process's open fds, ceiling first.
fn fd_numbers(pid: i32) -> Vec<usize> {
    let mut fds: Vec<usize> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .filter_map(|fd| fd.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    fds.sort_unstable();
    fds
}

/// How many sockets the emperor has open.
fn open_sockets(pid: i32) -> usize {
    fd_numbers(pid)
        .into_iter()
        .filter(|fd| {
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

/// One request on a control connection, and its answer line.
fn ask(stream: &mut UnixStream, request: &str) -> String {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while answer.last() != Some(&b'\n') && stream.read(&mut byte).unwrap() == 1 {
        answer.push(byte[0]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// `count` connections to a UNIX socket that never read (nor write).
fn silent_clients(addr: &str, count: usize) -> Vec<UnixStream> {
    (0..count)
        .map(|_| UnixStream::connect(addr).expect("connect"))
        .collect()
}

#[test]
fn stats_clients_that_never_read_cost_no_thread_and_no_copy_each() {
    let _timing = timing_lock();
    let BigDocument { emperor, size, .. } = &emperor_with_big_document();
    let size = *size;
    let threads = status_field(emperor.pid, "Threads");
    let sockets = open_sockets(emperor.pid);
    let before = rss(emperor.pid);

    let silent = silent_clients(&emperor.stats_addr, 200);
    let start = Instant::now();
    let body = raw_stats(&emperor.stats_addr).expect("a reader still gets the document");
    let took = start.elapsed();
    serde_json::from_slice::<serde_json::Value>(&body).expect("the whole document");
    assert!(took < Duration::from_secs(2), "the reader waited {took:?}");
    // The silent ones hold slots (their documents did not fit in their sockets).
    assert!(
        open_sockets(emperor.pid) > sockets,
        "no silent client is held"
    );
    let grown = rss(emperor.pid).saturating_sub(before);
    eprintln!("document {size} B, reader served in {took:?}, RSS grew {grown} B");
    assert!(
        status_field(emperor.pid, "Threads") <= threads,
        "threads grew from {threads}"
    );
    // A copy per client would be 200 x the document; a few documents are allowed.
    assert!(
        grown < 16 * size as u64,
        "RSS grew by {grown} bytes for a document of {size}"
    );

    // Nobody reads them: they are closed at the write timeout (10 s).
    emperor.wait_until_for(
        "the silent clients are closed",
        Duration::from_secs(10) + PATIENCE,
        || open_sockets(emperor.pid) <= sockets,
    );
    drop(silent);
}

#[test]
fn an_emperor_out_of_fds_backs_off_instead_of_spinning_and_serves_again() {
    let _timing = timing_lock();
    let BigDocument { emperor, .. } = &emperor_with_big_document();
    // Room for a few more fds only: a new fd takes the lowest free number, which must stay
    // under the limit, and the emperor's fds have holes (configs read and closed).
    let fds = fd_numbers(emperor.pid);
    let room = 4;
    let free_below = |n: usize| n - fds.iter().filter(|&&fd| fd < n).count();
    let ceiling = (0..).find(|&n| free_below(n) == room).unwrap();
    let limit = format!("--nofile={ceiling}:{ceiling}");
    let status = Command::new("prlimit")
        .args(["--pid", &emperor.pid.to_string(), &limit])
        .status()
        .expect("prlimit");
    assert!(status.success());

    let flood = silent_clients(&emperor.stats_addr, 100);
    emperor.wait_until("the emperor runs out of fds", || {
        fd_numbers(emperor.pid)
            .iter()
            .filter(|&&fd| fd < ceiling)
            .count()
            == ceiling
    });
    let ticks = cpu_ticks(emperor.pid);
    std::thread::sleep(Duration::from_secs(2)); // the measured interval, not a wait
    let spent = cpu_ticks(emperor.pid) - ticks;
    eprintln!("out of fds: {spent} ticks of CPU in 2 s");
    assert!(
        spent < 40,
        "the emperor spent {spent} ticks in 2 s out of fds"
    );
    assert_eq!(
        emperor.log().matches("stats server: accept").count(),
        1,
        "one warning per episode"
    );

    drop(flood);
    emperor.wait_for("the stats server serves again", || {
        raw_stats(&emperor.stats_addr)
    });
    emperor.wait_until("the episode ends in the log", || {
        emperor
            .log()
            .contains("stats server: file descriptors free again")
    });
}

#[test]
fn a_control_client_that_asks_and_never_reads_costs_a_bounded_buffer() {
    let _timing = timing_lock();
    let BigDocument {
        emperor, control, ..
    } = &emperor_with_big_document();
    let before = rss(emperor.pid);

    // Each `status` answer is ~90 KB here; unbounded, 2 s of asking buffers gigabytes.
    let mut greedy = UnixStream::connect(control).unwrap();
    greedy.set_nonblocking(true).unwrap();
    let mut asked = 0usize;
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        match greedy.write(b"status\n") {
            Ok(n) => asked += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("the emperor closed the greedy client: {e}"),
        }
    }
    assert!(asked > 7 * 100, "only {asked} bytes of requests were taken");
    let grown = rss(emperor.pid).saturating_sub(before);
    eprintln!("{asked} B of requests taken, RSS grew {grown} B");
    assert!(grown < 16 << 20, "RSS grew by {grown} bytes");

    // The others are still served meanwhile.
    let mut other = UnixStream::connect(control).unwrap();
    let line = ask(&mut other, "status");
    assert!(
        line.starts_with('{') && line.contains("\"ok\":true"),
        "{line}"
    );
}

#[test]
fn idle_control_connections_never_lock_emperor_reload_out() {
    let tmp = tempfile::tempdir().unwrap();
    let control = tmp.path().join("control.sock");
    let emperor = Emperor::start(
        tmp.path(),
        &["--emperor-control", control.to_str().unwrap()],
    );
    emperor.write("app.ini", &ini("sleep 1000", &[]));
    let (_, payload) = emperor.running("app.ini");
    emperor.wait_until("app.ini accepts", || {
        emperor
            .vassal("app.ini")
            .is_some_and(|v| v["accepting"] == 1)
    });

    // The quietest connection of all holds the lock: the newcomers never take its slot.
    let mut holder = UnixStream::connect(&control).unwrap();
    assert!(ask(&mut holder, "lock").contains("\"ok\":true"));
    let idle = silent_clients(control.to_str().unwrap(), 80);
    let mut late = UnixStream::connect(&control).unwrap();
    let busy = ask(&mut late, "lock");
    assert!(
        busy.contains(&format!("(pid {} holds the lock)", std::process::id())),
        "{busy}"
    );
    assert!(ask(&mut holder, "unlock").contains("\"ok\":true"));

    let reload = Command::new(BIN)
        .args(["reload", "--minimum-active-vassals", "0", "--control"])
        .arg(&control)
        .output()
        .unwrap();
    assert!(
        reload.status.success(),
        "{}",
        String::from_utf8_lossy(&reload.stderr)
    );
    emperor.running_other_than("app.ini", payload);
    drop((idle, holder, late));
}
