//! Vassal sockets: bound by the runtime before its jail, passed to the payload systemd-style
//! (LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES) and nginx-style (NGINX), kept open across reloads.

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// A tiny HTTP server on the inherited fd 3, answering with its pid and what it was told.
const SERVER: &str = r#"import os, socket
s = socket.socket(fileno=3)
while True:
    c, _ = s.accept()
    c.recv(4096)
    body = "pid=%d LISTEN_PID=%s LISTEN_FDS=%s LISTEN_FDNAMES=%s UWSGI_EMPEROR_FD=%s\n" % (
        os.getpid(), os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS"),
        os.environ.get("LISTEN_FDNAMES"), os.environ.get("UWSGI_EMPEROR_FD"))
    c.sendall(("HTTP/1.0 200 OK\r\n\r\n" + body).encode())
    c.close()
"#;

fn environ(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|&b| b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fn server_line(server: &Path) -> String {
    format!(
        "unprivileged-binary-patch-arg = /usr/bin/python3 {}",
        server.display()
    )
}

#[test]
fn sockets_reach_the_payload_systemd_style_and_stay_bound_across_reloads() {
    let _lock = timing_lock();
    let (tmp, server) = site(SERVER);
    let port = free_port();
    let unix = tmp.path().join("app.sock");
    let emperor = Emperor::start(tmp.path(), &[]);
    let config = emperor.write(
        "app.ini",
        &format!(
            "[uwsgi]\nsocket = 127.0.0.1:{port}\nhttp-socket = {}\nshared-socket = @emperor-test-{port}\n{}\n",
            unix.display(),
            server_line(&server)
        ),
    );
    let (runtime, payload) = emperor.running("app.ini");
    let body = emperor.wait_for("the payload answers on its socket", || http_get(port));
    assert!(body.contains(&format!("pid={payload} ")), "{body}");

    let env = environ(payload);
    for wanted in [
        format!("LISTEN_PID={payload}"),
        "LISTEN_FDS=3".to_string(),
        "LISTEN_FDNAMES=socket:http-socket:shared-socket".to_string(),
        "NGINX=3;4;5;".to_string(),
        "UWSGI_EMPEROR_FD=6".to_string(),
    ] {
        assert!(env.contains(&wanted), "{wanted} not in {env:?}");
    }
    assert!(
        std::fs::symlink_metadata(&unix).is_ok(),
        "the UNIX socket is bound"
    );

    // Reload while a client keeps connecting: never refused (queued in the backlog). (A
    // connection the old payload had accepted when it was killed may be reset: this toy
    // server has no graceful stop; the nginx test below covers whole requests.)
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let done = done.clone();
        std::thread::spawn(move || {
            let (mut ok, mut refused) = (0, 0);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                match std::net::TcpStream::connect(("127.0.0.1", port)) {
                    Ok(_) => ok += 1,
                    Err(_) => refused += 1,
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            (ok, refused)
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    touch(&config);
    let (runtime_after, payload_after) = emperor.running_other_than("app.ini", payload);
    assert_eq!(runtime, runtime_after, "a reload keeps the runtime");
    let body = emperor.wait_for("the new payload answers", || {
        http_get(port).filter(|b| b.contains(&format!("pid={payload_after} ")))
    });
    assert!(
        body.contains(&format!("LISTEN_PID={payload_after} ")),
        "{body}"
    );
    std::thread::sleep(Duration::from_millis(200));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = prober.join().unwrap();
    assert!(ok > 0);
    assert_eq!(failed, 0, "{failed} connections refused during the reload");
}

#[test]
fn a_tyrant_vassal_in_its_own_net_namespace_serves_on_an_allowed_host_port() {
    let test = "a_tyrant_vassal_in_its_own_net_namespace_serves_on_an_allowed_host_port";
    if !have_root(test) {
        return;
    }
    let (tmp, server) = site(SERVER);
    let (port, other) = (free_port(), free_port());
    let emperor = Emperor::start(
        tmp.path(),
        &[
            "--emperor-use-clone",
            "fs,net,pid,uts",
            "--emperor-tyrant",
            "--emperor-tyrant-ports",
            &port.to_string(),
        ],
    );
    for (name, p) in [("ok.ini", port), ("denied.ini", other)] {
        let staged = tmp.path().join(name);
        write(
            &staged,
            &format!(
                "[uwsgi]\nsocket = 127.0.0.1:{p}\n{}\n",
                server_line(&server)
            ),
        );
        std::os::unix::fs::chown(&staged, Some(20001), Some(20001)).unwrap();
        std::fs::rename(&staged, emperor.vassals.join(name)).unwrap();
    }
    let (_, payload) = emperor.running("ok.ini");
    let body = emperor.wait_for("the tyrant vassal answers on the host port", || {
        http_get(port)
    });
    // LISTEN_PID is the payload's pid as it sees it (in its pid namespace).
    let own = body
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .unwrap();
    assert!(body.contains(&format!("LISTEN_PID={own} ")), "{body}");
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_ne!(ns(&payload.to_string()), ns("self"), "own net namespace");

    emperor.wait_until("the other port is refused", || {
        emperor.log().contains(&format!(
            "option \"socket\": port {other} is not allowed in tyrant mode (the emperor's --emperor-tyrant-ports is \"{port}\")"
        ))
    });
    assert!(http_get(other).is_none());
}

/// nginx behind an inherited socket, reloaded 20 times under wrk: no failed request.
#[test]
fn nginx_on_an_inherited_socket_loses_no_request_over_20_reloads_under_wrk() {
    let test = "nginx_on_an_inherited_socket_loses_no_request_over_20_reloads_under_wrk";
    if !have_root(test) {
        return;
    }
    if !have_tools(test, &["/usr/sbin/nginx", "/usr/bin/wrk"]) {
        return;
    }
    let _lock = timing_lock();
    let (tmp, _) = site(SERVER);
    let root = tmp.path();
    let port = free_port();
    let conf = nginx_conf(root, "nginx", &[format!("127.0.0.1:{port}")]);
    std::fs::write(root.join("www/index.html"), "hello\n").unwrap();
    let emperor = Emperor::start(root, &[]);
    let config = emperor.write(
        "nginx.ini",
        &format!(
            "[uwsgi]\nsocket = 127.0.0.1:{port}\nstop-signal = QUIT\n\
             privileged-binary-patch-arg = nginx -g \"daemon off;\" -c {}\n",
            conf.display()
        ),
    );
    let (_, mut payload) = emperor.running("nginx.ini");
    emperor.wait_for("nginx answers", || {
        http_get(port).filter(|b| b.contains("hello"))
    });

    let wrk = std::process::Command::new("/usr/bin/wrk")
        .args([
            "-c",
            "20",
            "-t",
            "2",
            "-d",
            "20s",
            "-H",
            "Connection: close",
        ])
        .arg(format!("http://127.0.0.1:{port}/"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    for _ in 0..20 {
        touch(&config);
        payload = emperor.running_other_than("nginx.ini", payload).1;
        std::thread::sleep(Duration::from_millis(300));
    }
    let reloads_took = started.elapsed();
    let output = wrk.wait_with_output().unwrap();
    assert!(
        reloads_took < Duration::from_secs(19),
        "the 20 reloads ({reloads_took:?}) must happen while wrk runs"
    );
    wrk_clean_report(&output);
    // nginx adopted the runtime's socket (it could not have bound the port itself).
    assert!(
        emperor.log().contains("using inherited sockets"),
        "{}",
        emperor.log()
    );
}
