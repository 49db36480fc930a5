//! On-demand vassals (socket activation): the emperor holds the vassal's `on-demand-socket`,
//! starts the vassal on the first connection (which is served, not refused), stops it after
//! `idle` seconds without connections, and starts it again on the next one.

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A tiny HTTP server on the inherited fd 3 (the on-demand socket comes first), after an
/// optional delay that keeps it from accepting while a test piles connections up.
const SERVER: &str = r#"import os, socket, sys, time
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0)
s = socket.socket(fileno=3)
while True:
    c, _ = s.accept()
    c.recv(4096)
    body = "pid=%d LISTEN_FDNAMES=%s\n" % (os.getpid(), os.environ.get("LISTEN_FDNAMES"))
    c.sendall(("HTTP/1.0 200 OK\r\n\r\n" + body).encode())
    c.close()
"#;

fn config(socket: &str, idle: Option<u32>, server: &Path, delay: f32) -> String {
    let idle = idle.map_or(String::new(), |s| format!("idle = {s}\n"));
    format!(
        "[uwsgi]\non-demand-socket = {socket}\n{idle}unprivileged-binary-patch-arg = /usr/bin/python3 {} {delay}\n",
        server.display()
    )
}

/// Wait until the vassal waits for a connection: no runtime, its socket named in the stats.
fn wait_on_demand(emperor: &Emperor, name: &str, socket: &str) {
    emperor.wait_until(&format!("{name} waits for a connection"), || {
        emperor.vassal(name).is_some_and(|v| {
            v["state"] == "on-demand" && v["pid"] == -1 && v["on_demand"] == socket
        })
    });
}

/// An emperor with `app.ini` waiting for a connection on a free port, its payload SERVER.
fn waiting_app(idle: Option<u32>, delay: f32) -> (tempfile::TempDir, Emperor, u16) {
    let (tmp, server) = site(SERVER);
    let port = free_port();
    let socket = format!("127.0.0.1:{port}");
    let emperor = Emperor::start(tmp.path(), &[]);
    emperor.write("app.ini", &config(&socket, idle, &server, delay));
    wait_on_demand(&emperor, "app.ini", &socket);
    (tmp, emperor, port)
}

/// Send a GET on an already connected stream and read the whole answer.
fn get_on(mut stream: std::net::TcpStream) -> String {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body
}

fn pid_in(body: &str) -> i32 {
    body.split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {body:?}"))
}

#[test]
fn an_on_demand_vassal_starts_on_the_first_request_serves_it_and_stops_when_idle() {
    let _lock = timing_lock();
    let (_tmp, emperor, port) = waiting_app(Some(2), 0.0);
    assert!(
        runtimes_of(emperor.pid).is_empty(),
        "no vassal runs before the first connection: {:?}",
        children(emperor.pid)
    );

    // The first connection is made while nothing serves: it waits in the held socket's
    // backlog and is answered by the vassal it starts.
    let stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("the emperor holds the socket");
    let body = get_on(stream);
    assert!(body.contains("200 OK"), "{body}");
    assert!(body.contains("LISTEN_FDNAMES=on-demand-socket"), "{body}");
    let first = pid_in(&body);
    assert_eq!(emperor.vassal("app.ini").unwrap()["state"], "running");

    // idle = 2: stopped once nobody has used it for two seconds, its socket still held.
    let waited = emperor.wait_until("the idle vassal is stopped", || {
        emperor
            .vassal("app.ini")
            .is_some_and(|v| v["state"] == "on-demand" && v["pid"] == -1)
    });
    assert!(!alive(first), "its payload is gone");
    assert!(
        waited >= std::time::Duration::from_millis(1500),
        "stopped after {waited:?}, before its idle time"
    );

    // The next request starts it again.
    let body = get_on(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
    assert!(body.contains("200 OK"), "{body}");
    assert_ne!(pid_in(&body), first, "a new payload");
}

#[test]
fn connections_that_arrive_while_it_starts_are_all_served() {
    let _lock = timing_lock();
    // The payload waits a second before it accepts: every connection below is made first.
    let (_tmp, emperor, port) = waiting_app(None, 1.0);
    let streams: Vec<_> = (0..8)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).expect("held socket"))
        .collect();
    let (runtime, payload) = emperor.running("app.ini");
    assert!(
        cmdline(payload).contains("server.py"),
        "{runtime}: {}",
        cmdline(payload)
    );
    let answers: Vec<_> = streams
        .into_iter()
        .map(|s| std::thread::spawn(move || get_on(s)))
        .collect();
    for answer in answers {
        let body = answer.join().unwrap();
        assert!(body.contains("200 OK"), "{body}");
        assert_eq!(pid_in(&body), payload);
    }
    assert_eq!(
        emperor.runtime_pid("app.ini"),
        Some(runtime),
        "one start served them all"
    );

    // A running on-demand vassal whose config is touched reloads like any other.
    touch(&emperor.vassals.join("app.ini"));
    let (same, _) = emperor.running_other_than("app.ini", payload);
    assert_eq!(same, runtime, "reloaded in place");
}

#[test]
fn a_waiting_vassal_whose_address_changes_moves_to_the_new_socket() {
    let (tmp, server) = site(SERVER);
    let (old, new) = (free_port(), free_port());
    let emperor = Emperor::start(tmp.path(), &[]);
    emperor.write(
        "app.ini",
        &config(&format!("127.0.0.1:{old}"), None, &server, 0.0),
    );
    wait_on_demand(&emperor, "app.ini", &format!("127.0.0.1:{old}"));
    emperor.write(
        "app.ini",
        &config(&format!("127.0.0.1:{new}"), None, &server, 0.0),
    );
    wait_on_demand(&emperor, "app.ini", &format!("127.0.0.1:{new}"));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", old)).is_err(),
        "the old socket is closed"
    );
    let body = get_on(std::net::TcpStream::connect(("127.0.0.1", new)).unwrap());
    assert!(body.contains("200 OK"), "{body}");
}

#[test]
fn removing_a_waiting_vassals_config_closes_its_socket() {
    let (tmp, server) = site(SERVER);
    let port = free_port();
    let path = tmp.path().join("od.sock");
    let emperor = Emperor::start(tmp.path(), &[]);
    let tcp = emperor.write(
        "tcp.ini",
        &config(&format!("127.0.0.1:{port}"), None, &server, 0.0),
    );
    let unix = emperor.write(
        "unix.ini",
        &config(&path.display().to_string(), None, &server, 0.0),
    );
    wait_on_demand(&emperor, "tcp.ini", &format!("127.0.0.1:{port}"));
    wait_on_demand(&emperor, "unix.ini", &path.display().to_string());
    // Control: both are held, so a connection would be accepted.
    assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    // (The TCP connection above started tcp.ini: wait for it to run, then remove both.)
    emperor.running("tcp.ini");
    std::fs::remove_file(&tcp).unwrap();
    std::fs::remove_file(&unix).unwrap();
    emperor.wait_until("both vassals are gone", || {
        emperor.stats()["vassals"]
            .as_array()
            .is_some_and(|v| v.is_empty())
    });
    emperor.wait_until("the TCP socket is closed", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    assert!(!path.exists(), "the UNIX socket file is removed");
    assert!(std::os::unix::net::UnixStream::connect(&path).is_err());
}

#[test]
fn a_vassal_whose_payload_exits_0_waits_for_its_next_connection() {
    let (tmp, _) = site(SERVER);
    let port = free_port();
    let socket = format!("127.0.0.1:{port}");
    // A payload that answers one request and exits 0.
    let once = write(
        &tmp.path().join("once.py"),
        "import socket\ns = socket.socket(fileno=3)\nc, _ = s.accept()\nc.recv(4096)\nc.sendall(b'HTTP/1.0 200 OK\\r\\n\\r\\nonce\\n')\nc.close()\n",
    );
    let emperor = Emperor::start(tmp.path(), &[]);
    emperor.write(
        "once.ini",
        &format!(
            "[uwsgi]\non-demand-socket = {socket}\nunprivileged-binary-patch-arg = /usr/bin/python3 {}\n",
            once.display()
        ),
    );
    for round in 0..2 {
        wait_on_demand(&emperor, "once.ini", &socket);
        let body = get_on(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
        assert!(body.contains("once"), "round {round}: {body}");
    }
    wait_on_demand(&emperor, "once.ini", &socket);
    assert_eq!(
        emperor.vassal("once.ini").unwrap()["respawns"],
        0,
        "not a crash"
    );
}

/// Tyrant mode: the on-demand port must be one the admin allows, and a UNIX path is bound
/// with the tenant's identity, so a tenant cannot make the root emperor create or replace a
/// socket file where the tenant could not.
#[test]
fn a_tenant_gets_only_allowed_ports_and_paths_of_its_own() {
    let test = "a_tenant_gets_only_allowed_ports_and_paths_of_its_own";
    if !have_root(test) {
        return;
    }
    let (tmp, server) = site(SERVER);
    let (allowed, denied) = (free_port(), free_port());
    let root = tmp.path();
    // A root-owned directory with a root service's socket in it, and a directory of the tenant.
    let host = root.join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o755)).unwrap();
    let victim_path = host.join("service.sock");
    let _victim = std::os::unix::net::UnixListener::bind(&victim_path).unwrap();
    let own = root.join("tenant");
    std::fs::create_dir(&own).unwrap();
    std::os::unix::fs::chown(&own, Some(20001), Some(20001)).unwrap();

    let emperor = Emperor::start(
        root,
        &[
            "--emperor-tyrant",
            "--emperor-tyrant-ports",
            &allowed.to_string(),
        ],
    );
    let drop_in = |name: &str, socket: &str| {
        let staged = root.join(name);
        write(&staged, &config(socket, None, &server, 0.0));
        std::os::unix::fs::chown(&staged, Some(20001), Some(20001)).unwrap();
        std::fs::rename(&staged, emperor.vassals.join(name)).unwrap();
    };
    let own_socket = own.join("app.sock").display().to_string();
    drop_in("ok.ini", &format!("127.0.0.1:{allowed}"));
    drop_in("own.ini", &own_socket);
    drop_in("port.ini", &format!("127.0.0.1:{denied}"));
    drop_in("replace.ini", &victim_path.display().to_string());
    drop_in("create.ini", &host.join("new.sock").display().to_string());

    // Controls: an allowed port and a path in the tenant's own directory are held.
    wait_on_demand(&emperor, "ok.ini", &format!("127.0.0.1:{allowed}"));
    wait_on_demand(&emperor, "own.ini", &own_socket);
    let meta = std::fs::symlink_metadata(&own_socket).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        20001,
        "the tenant's socket file is the tenant's"
    );
    let body = get_on(std::net::TcpStream::connect(("127.0.0.1", allowed)).unwrap());
    assert!(body.contains("200 OK"), "{body}");

    emperor.wait_until("the denied port is refused", || {
        emperor.log().contains(&format!(
            "port.ini:2: option \"on-demand-socket\": port {denied} is not allowed in tyrant mode"
        ))
    });
    emperor.wait_until("a root service's socket is not replaced", || {
        emperor.log().contains(&format!(
            "replace.ini:2: option \"on-demand-socket\": bind {}: Permission denied",
            victim_path.display()
        ))
    });
    emperor.wait_until("no socket is made in root's directory", || {
        emperor
            .log()
            .contains("create.ini:2: option \"on-demand-socket\": bind")
    });
    for name in ["port.ini", "replace.ini", "create.ini"] {
        assert_eq!(emperor.vassal(name).unwrap()["state"], "idle", "{name}");
    }
    assert!(std::net::TcpStream::connect(("127.0.0.1", denied)).is_err());
    assert!(
        std::os::unix::net::UnixStream::connect(&victim_path).is_ok(),
        "the root service still listens"
    );
    assert!(!host.join("new.sock").exists());
}
