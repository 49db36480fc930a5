//! The emperor under systemd: the notify protocol heard on a real NOTIFY_SOCKET datagram
//! socket, in order, and the shipped unit file checked by systemd-analyze.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;

/// Every datagram received so far, in order.
fn heard(socket: &UnixDatagram, messages: &mut Vec<String>) -> Vec<String> {
    let mut buf = [0u8; 1024];
    while let Ok(n) = socket.recv(&mut buf) {
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    messages.clone()
}

/// Index of the first message at or after `from` that starts with `prefix`.
fn position(messages: &[String], from: usize, prefix: &str) -> Option<usize> {
    messages[from..]
        .iter()
        .position(|m| m.starts_with(prefix))
        .map(|i| i + from)
}

#[test]
fn systemd_hears_ready_status_watchdog_reloading_and_stopping_in_order() {
    let tmp = open_tempdir();
    let notify_path = tmp.path().join("notify.sock");
    let socket = UnixDatagram::bind(&notify_path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let vassals = tmp.path().join("vassals");
    write(&vassals.join("a.ini"), &ini("sleep 1000", &[]));
    write(&vassals.join("b.ini"), &ini("sleep 1000", &[]));

    let mut emperor = Emperor::launch(
        tmp.path(),
        Options {
            env: vec![
                ("NOTIFY_SOCKET", notify_path.display().to_string()),
                ("WATCHDOG_USEC", "200000".to_string()),
            ],
            ..Options::default()
        },
    );
    let mut messages = Vec::new();
    emperor.wait_until("READY=1", || {
        position(&heard(&socket, &mut messages), 0, "READY=1").is_some()
    });
    let ready = position(&messages, 0, "READY=1").unwrap();
    assert!(
        messages[ready].contains("STATUS=2 vassals"),
        "ready once the first scan's two vassals are spawned: {messages:?}"
    );
    let (_, payload) = emperor.running("a.ini");
    let environ = std::fs::read(format!("/proc/{payload}/environ")).unwrap();
    assert!(
        !String::from_utf8_lossy(&environ).contains("NOTIFY_SOCKET"),
        "systemd's socket is the emperor's, not a vassal's"
    );

    // Every 100 ms, from the loop: at least three in the next half second and more.
    let before = heard(&socket, &mut messages).len();
    emperor.wait_until("three watchdog pings", || {
        heard(&socket, &mut messages)[before..]
            .iter()
            .filter(|m| *m == "WATCHDOG=1")
            .count()
            >= 3
    });
    emperor.wait_until("a status with both running", || {
        heard(&socket, &mut messages)
            .iter()
            .any(|m| m.contains("STATUS=2 vassals: 2 running"))
    });

    let mark = heard(&socket, &mut messages).len();
    emperor.signal(Signal::SIGHUP);
    emperor.wait_until("RELOADING=1 then READY=1", || {
        let all = heard(&socket, &mut messages);
        position(&all, mark, "RELOADING=1")
            .and_then(|at| position(&all, at, "READY=1"))
            .is_some()
    });

    let mark = heard(&socket, &mut messages).len();
    emperor.signal(Signal::SIGTERM);
    emperor.wait_exit();
    let all = heard(&socket, &mut messages);
    assert!(
        position(&all, mark, "STOPPING=1").is_some(),
        "STOPPING=1 on SIGTERM: {:?}",
        &all[mark..]
    );
}

#[test]
fn the_shipped_unit_file_passes_systemd_analyze_verify() {
    if !have_tools(
        "the_shipped_unit_file_passes_systemd_analyze_verify",
        &["/usr/bin/systemd-analyze"],
    ) {
        return;
    }
    let tmp = open_tempdir();
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/systemd/emperor.service");
    // verify checks that ExecStart's binary exists: point it at the one just built.
    let text = std::fs::read_to_string(&unit)
        .unwrap()
        .replace("/usr/bin/emperor", BIN);
    let copy = tmp.path().join("emperor.service");
    std::fs::write(&copy, text).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}
