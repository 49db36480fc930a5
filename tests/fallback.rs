//! fallback-config: a vassal that would exit with status 1 execs itself (same pid) on its
//! fallback config; fallbacks chain; loops are stopped.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const SERVER: &str = r#"import os, socket
s = socket.socket(fileno=3)
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall(b"HTTP/1.0 200 OK\r\n\r\nhello from the fallback\n")
    c.close()
"#;

/// A temp dir tenants can traverse, with `server.py` in it.
fn open_site() -> tempfile::TempDir {
    let tmp = open_tempdir();
    let server = write(&tmp.path().join("server.py"), SERVER);
    std::fs::set_permissions(server, std::fs::Permissions::from_mode(0o644)).unwrap();
    tmp
}

/// A config outside the watched directory (a fallback), readable by tenants.
fn side_config(root: &Path, name: &str, text: &str) -> String {
    let path = write(&root.join(name), text);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path.display().to_string()
}

fn serving(root: &Path, port: u16) -> String {
    format!(
        "[uwsgi]\nhttp-socket = 127.0.0.1:{port}\nunprivileged-binary-patch-arg = /usr/bin/python3 {}\n",
        root.join("server.py").display()
    )
}

/// The seed's story: uid 20001 asks for port 80, bind() says EACCES, status 1, the runtime
/// execs itself on safe.ini, which binds another port and serves there.
#[test]
fn a_tenant_denied_a_privileged_port_falls_back_to_a_config_that_serves_elsewhere() {
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var("CI").is_err(), "needs root");
        eprintln!("skipping: needs root (a tenant uid)");
        return;
    }
    let tmp = open_site();
    let root = tmp.path();
    let port = free_port();
    let safe = side_config(root, "safe.ini", &serving(root, port));
    let emperor = Emperor::start(
        root,
        &[
            "--emperor-tyrant",
            "--emperor-tyrant-ports",
            &format!("80,{port}"),
        ],
    );
    let staged = root.join("app.ini");
    write(
        &staged,
        &format!(
            "[uwsgi]\nfallback-config = ../safe.ini\nhttp-socket = 127.0.0.1:80\nunprivileged-binary-patch-arg = /usr/bin/python3 {}\n",
            root.join("server.py").display()
        ),
    );
    std::os::unix::fs::chown(&staged, Some(20001), Some(20001)).unwrap();
    std::fs::rename(&staged, emperor.vassals.join("app.ini")).unwrap();

    let body = emperor.wait_for("the fallback serves on its port", || http_get(port));
    assert!(body.contains("hello from the fallback"), "{body}");
    let log = emperor.log();
    assert!(
        log.contains("option \"http-socket\": bind 127.0.0.1:80: Permission denied"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "fallback config to {}/vassals/../safe.ini",
            root.display()
        )),
        "{log}"
    );
    let (runtime, payload) = emperor.running("app.ini");
    let vassal = emperor.vassal("app.ini").unwrap();
    assert!(
        vassal["running_config"]
            .as_str()
            .unwrap()
            .ends_with("/../safe.ini"),
        "{vassal}"
    );
    assert!(vassal["config"]
        .as_str()
        .unwrap()
        .ends_with("/vassals/app.ini"));
    assert_eq!(vassal["respawns"], 0, "same runtime, no respawn");
    let status = std::fs::read_to_string(format!("/proc/{payload}/status")).unwrap();
    assert!(status.contains("Uid:\t20001"), "{status}");
    assert_eq!(
        parent(payload),
        Some(runtime),
        "the fallback runs in the vassal's first runtime"
    );
    let _ = safe;
}

/// a.ini does not even load (an include is missing: its fallback is found in its raw text),
/// b.ini names a program that does not exist, c.ini serves.
#[test]
fn fallbacks_chain_over_two_levels() {
    let tmp = open_site();
    let root = tmp.path();
    let port = free_port();
    let c = side_config(root, "c.ini", &serving(root, port));
    let b = side_config(
        root,
        "b.ini",
        &format!("[uwsgi]\nfallback-config = {c}\nunprivileged-binary-patch-arg = /nonexistent/program\n"),
    );
    let emperor = Emperor::start(root, &[]);
    emperor.write(
        "a.ini",
        &format!("[uwsgi]\nfallback-config = {b}\ninclude = /nonexistent/part.ini\n"),
    );
    let body = emperor.wait_for("c.ini serves", || http_get(port));
    assert!(body.contains("hello from the fallback"), "{body}");
    let log = emperor.log();
    assert!(log.contains(&format!("fallback config to {b}")), "{log}");
    assert!(log.contains(&format!("fallback config to {c}")), "{log}");
    emperor.running("a.ini");
    assert_eq!(emperor.vassal("a.ini").unwrap()["running_config"], c);
}

#[test]
fn a_fallback_loop_is_stopped_with_a_clear_error() {
    let tmp = open_site();
    let root = tmp.path();
    let emperor = Emperor::start(root, &[]);
    let a = emperor.vassals.join("a.ini").display().to_string();
    let b = side_config(
        root,
        "b.ini",
        &format!("[uwsgi]\nfallback-config = {a}\nsocket = 127.0.0.1:notaport\nunprivileged-binary-patch-arg = sleep 60\n"),
    );
    emperor.write(
        "a.ini",
        &format!("[uwsgi]\nfallback-config = {b}\nsocket = 127.0.0.1:notaport\nunprivileged-binary-patch-arg = sleep 60\n"),
    );
    let wanted = format!("fallback loop: {a} -> {b} -> {a}");
    emperor.wait_until("the loop is reported", || emperor.log().contains(&wanted));
    emperor.wait_until("the vassal died with status 1", || {
        emperor
            .vassal("a.ini")
            .is_some_and(|v| v["last_exit_status"] == 1)
    });
}

/// uWSGI's `need-app` case: the payload starts in its jail and exits 1 at once. The jail cannot
/// be built again in that runtime, so the emperor starts a fresh one on the fallback; a reload
/// of the fixed config goes back to it.
#[test]
fn a_payload_that_fails_to_start_falls_back_in_a_fresh_runtime_and_a_reload_tries_again() {
    let tmp = open_site();
    let root = tmp.path();
    let (port, fixed_port) = (free_port(), free_port());
    let safe = side_config(root, "safe.ini", &serving(root, port));
    let emperor = Emperor::start(root, &[]);
    emperor.write(
        "app.ini",
        &format!(
            "[uwsgi]\nfallback-config = {safe}\nunprivileged-binary-patch-arg = sh -c 'exit 1'\n"
        ),
    );
    let body = emperor.wait_for("the fallback serves", || http_get(port));
    assert!(body.contains("hello from the fallback"), "{body}");
    let log = emperor.log();
    assert!(
        log.contains(&format!(
            "asking the emperor for a fresh vassal on fallback-config {safe}"
        )),
        "{log}"
    );
    assert!(
        log.contains("starting afresh on its fallback-config"),
        "{log}"
    );
    assert!(
        !log.contains("blacklisted"),
        "a fallback is not throttled:\n{log}"
    );
    emperor.running("app.ini");
    let vassal = emperor.vassal("app.ini").unwrap();
    assert_eq!(vassal["running_config"], safe, "{vassal}");

    emperor.write("app.ini", &serving(root, fixed_port));
    let body = emperor.wait_for("the fixed config serves", || http_get(fixed_port));
    assert!(body.contains("hello from the fallback"), "{body}");
    emperor.wait_until("it runs on its own config again", || {
        emperor.vassal("app.ini").is_some_and(|v| {
            v["running_config"]
                .as_str()
                .is_some_and(|c| c.ends_with("/vassals/app.ini"))
        })
    });
}

/// Both a.ini's and b.ini's payloads fail to start; c.ini serves.
#[test]
fn payloads_failing_to_start_fall_back_over_two_levels() {
    let tmp = open_site();
    let root = tmp.path();
    let port = free_port();
    let c = side_config(root, "c.ini", &serving(root, port));
    let b = side_config(
        root,
        "b.ini",
        &format!("[uwsgi]\nfallback-config = {c}\nunprivileged-binary-patch-arg = false\n"),
    );
    let emperor = Emperor::start(root, &[]);
    emperor.write(
        "a.ini",
        &format!("[uwsgi]\nfallback-config = {b}\nunprivileged-binary-patch-arg = false\n"),
    );
    let body = emperor.wait_for("c.ini serves", || http_get(port));
    assert!(body.contains("hello from the fallback"), "{body}");
    emperor.running("a.ini");
    assert_eq!(emperor.vassal("a.ini").unwrap()["running_config"], c);
    assert!(emperor.log().contains("levels=2"), "{}", emperor.log());
}

#[test]
fn a_loop_of_payloads_failing_to_start_is_stopped_with_a_clear_error() {
    let tmp = open_site();
    let root = tmp.path();
    let emperor = Emperor::start(root, &[]);
    let a = emperor.vassals.join("a.ini").display().to_string();
    let b = side_config(
        root,
        "b.ini",
        &format!("[uwsgi]\nfallback-config = {a}\nunprivileged-binary-patch-arg = false\n"),
    );
    emperor.write(
        "a.ini",
        &format!("[uwsgi]\nfallback-config = {b}\nunprivileged-binary-patch-arg = false\n"),
    );
    let wanted = format!("fallback loop: {a} -> {b} -> {a}");
    emperor.wait_until("the loop is reported", || emperor.log().contains(&wanted));
    emperor.wait_until("then it is throttled as a crash", || {
        emperor.log().contains("blacklisted: respawn delayed")
    });
}
