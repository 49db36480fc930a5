//! zmq://: touch and destroy commands pushed by a real ZeroMQ PUSH client (libzmq, through
//! python3-zmq) start, reload and stop vassals.

mod common;

use common::*;
use std::process::Command;

/// Debian's python3, where apt puts python3-zmq (not a python of PATH's choosing).
const PYTHON: &str = "/usr/bin/python3";

/// python3 with its zmq module (libzmq), or a skip (a failure under CI).
fn have_pyzmq(test: &str) -> bool {
    let found = Command::new(PYTHON)
        .args(["-c", "import zmq"])
        .status()
        .is_ok_and(|s| s.success());
    have(test, found, "python3-zmq (apt-get install python3-zmq)")
}

/// Push one multipart message with libzmq, waiting until it is delivered.
fn push(endpoint: &str, parts: &[&str]) {
    let script = "import sys, zmq\n\
        c = zmq.Context(); s = c.socket(zmq.PUSH); s.setsockopt(zmq.LINGER, 10000)\n\
        s.connect(sys.argv[1]); s.send_multipart([p.encode() for p in sys.argv[2:]])\n\
        s.close(); c.term()\n";
    let status = Command::new(PYTHON)
        .args(["-c", script, endpoint])
        .args(parts)
        .status()
        .unwrap();
    assert!(status.success(), "the PUSH client failed");
}

/// An emperor (run in its temp dir) on `zmq://tcp://127.0.0.1:PORT`: the dir, the endpoint,
/// the emperor; or None when python3-zmq is missing.
fn emperor_on_pull_socket(test: &str) -> Option<(tempfile::TempDir, String, Emperor)> {
    if !have_pyzmq(test) {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let emperor = Emperor::launch(
        tmp.path(),
        Options {
            args: vec!["--emperor".into(), format!("zmq://{endpoint}")],
            ..Options::default()
        },
    );
    Some((tmp, endpoint, emperor))
}

#[test]
fn touch_with_a_config_spawns_and_reloads_and_destroy_stops() {
    let Some((_tmp, endpoint, emperor)) = emperor_on_pull_socket("zmq touch") else {
        return;
    };

    push(&endpoint, &["touch", "foo.ini", &ini("sleep 1000", &[])]);
    let (runtime, payload) = emperor.running("foo.ini");
    emperor.wait_exec(payload, "sleep 1000");
    assert!(cmdline(runtime).contains(&format!("--config-fd 6 zmq://{endpoint}/foo.ini")));

    push(&endpoint, &["touch", "foo.ini", &ini("sleep 2000", &[])]);
    let (runtime_after, new) = emperor.running_other_than("foo.ini", payload);
    assert_eq!(runtime_after, runtime, "a reload keeps the runtime");
    emperor.wait_exec(new, "sleep 2000");

    push(&endpoint, &["destroy", "foo.ini"]);
    emperor.wait_until("foo.ini is gone", || emperor.vassal("foo.ini").is_none());
    wait_until("its payload is dead", PATIENCE, || !alive(new));
}

#[test]
fn touch_without_a_config_runs_the_file_of_that_name_in_the_emperor_directory() {
    let Some((tmp, endpoint, emperor)) = emperor_on_pull_socket("zmq file") else {
        return;
    };
    // The harness runs the emperor in tmp.
    let file = write(&tmp.path().join("bar.ini"), &ini("sleep 1000", &[]));
    let name = file.display().to_string();

    push(&endpoint, &["touch", "bar.ini"]);
    let (_, payload) = emperor.running(&name);
    push(&endpoint, &["touch", "bar.ini"]);
    emperor.running_other_than(&name, payload);

    push(&endpoint, &["touch", "bad/../name.ini"]);
    push(&endpoint, &["reboot", "bar.ini"]);
    emperor.wait_until("bad commands are logged", || {
        let log = emperor.log();
        log.contains("command ignored: vassal name \"bad/../name.ini\"")
            && log.contains("command ignored: unknown command \"reboot\"")
    });
    push(&endpoint, &["destroy", "bar.ini"]);
    emperor.wait_until("bar.ini is gone", || emperor.vassal(&name).is_none());
}

#[test]
fn a_taken_port_is_an_error_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("tcp://{}", taken.local_addr().unwrap());
    let output = Command::new(BIN)
        .args(["--emperor", &format!("zmq://{endpoint}")])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("zmq://{endpoint}: bind {endpoint}")),
        "{stderr}"
    );
}
