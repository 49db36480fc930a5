//! `emperor reload` (seed 003) against the real binary: waves, readiness, the timeout, the lock,
//! and the control socket's access rule.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// An emperor with a control socket at ROOT/control.sock.
fn emperor_with_control(root: &Path) -> (Emperor, PathBuf) {
    let control = root.join("control.sock");
    let emperor = Emperor::start(root, &["--emperor-control", control.to_str().unwrap()]);
    (emperor, control)
}

fn reload(control: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .arg("reload")
        .arg("--control")
        .arg(control)
        .args(extra)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A python HTTP server on `port` that answers only on its first start: after a reload it
/// sleeps and never becomes ready (the marker file remembers).
fn stuck_after_reload(root: &Path, port: u16) -> String {
    let marker = root.join("started-once");
    format!(
        "[uwsgi]\nready-check = http://127.0.0.1:{port}/\nunprivileged-binary-patch-arg = sh -c 'if [ -e {m} ]; then exec sleep 1000; else touch {m}; exec python3 -m http.server --bind 127.0.0.1 {port}; fi'\n",
        m = marker.display()
    )
}

#[test]
fn every_vassal_is_reloaded_in_waves_and_gets_a_new_payload() {
    let tmp = tempfile::tempdir().unwrap();
    let (emperor, control) = emperor_with_control(tmp.path());
    let names = ["a.ini", "b.ini", "c.ini", "d.ini"];
    for name in names {
        emperor.write(name, &ini("sleep 1000", &[]));
    }
    let before: Vec<(i32, i32)> = names.iter().map(|n| emperor.running(n)).collect();
    emperor.wait_until("all accepting", || {
        names
            .iter()
            .all(|n| emperor.vassal(n).is_some_and(|v| v["accepting"] == 1))
    });

    let output = reload(&control, &["--minimum-active-vassals", "2"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).is_empty(), "quiet when not on a terminal");
    for (name, (runtime, payload)) in names.iter().zip(before) {
        let (same, _) = emperor.running_other_than(name, payload);
        assert_eq!(same, runtime, "{name}: a graceful reload keeps the runtime");
    }
    let log = emperor.log();
    assert_eq!(log.matches("reload lock taken").count(), 1, "{log}");
}

#[test]
fn a_glob_selects_vassals_and_the_others_are_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (emperor, control) = emperor_with_control(tmp.path());
    for name in ["web1.ini", "web2.ini", "db.ini"] {
        emperor.write(name, &ini("sleep 1000", &[]));
    }
    let (_, db) = emperor.running("db.ini");
    let (_, web1) = emperor.running("web1.ini");
    emperor.running("web2.ini");
    let output = reload(&control, &["web*"]);
    assert!(output.status.success(), "{}", stderr(&output));
    emperor.running_other_than("web1.ini", web1);
    assert_eq!(
        emperor.running("db.ini").1,
        db,
        "not selected, not reloaded"
    );

    let output = reload(&control, &["mail*"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no vassal matches \"mail*\""),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_vassal_that_never_becomes_ready_stops_the_reload_at_the_timeout_and_the_rest_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (emperor, control) = emperor_with_control(root);
    let (stuck_port, good_port) = (free_port(), free_port());
    emperor.write("stuck.ini", &stuck_after_reload(root, stuck_port));
    emperor.write(
        "good.ini",
        &format!(
            "[uwsgi]\nready-check = http://127.0.0.1:{good_port}/\nunprivileged-binary-patch-arg = python3 -m http.server --bind 127.0.0.1 {good_port}\n"
        ),
    );
    emperor.write("other.ini", &ini("sleep 1000", &[]));
    emperor.wait_until("all three accepting", || {
        ["stuck.ini", "good.ini", "other.ini"]
            .iter()
            .all(|n| emperor.vassal(n).is_some_and(|v| v["accepting"] == 1))
    });
    let (_, good) = emperor.running("good.ini");

    let output = reload(
        &control,
        &["--minimum-active-vassals", "1", "--timeout", "4"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report = stderr(&output);
    assert!(
        report.contains("stuck.ini: reloaded, but not ready within the timeout"),
        "{report}"
    );
    assert!(
        report.contains("good.ini: reloaded, ready after"),
        "{report}"
    );
    assert!(
        report.contains("other.ini: reloaded, ready after"),
        "{report}"
    );
    emperor.running_other_than("good.ini", good);
    assert!(http_get(good_port).is_some(), "the others keep serving");
    assert_eq!(
        emperor.vassal("stuck.ini").unwrap()["state"],
        "running",
        "the stuck one is left as it is"
    );
}

#[test]
fn a_second_reload_while_one_runs_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (emperor, control) = emperor_with_control(root);
    emperor.write("stuck.ini", &stuck_after_reload(root, free_port()));
    emperor.write("other.ini", &ini("sleep 1000", &[]));
    emperor.wait_until("both accepting", || {
        ["stuck.ini", "other.ini"]
            .iter()
            .all(|n| emperor.vassal(n).is_some_and(|v| v["accepting"] == 1))
    });
    let first = Command::new(BIN)
        .args(["reload", "--timeout", "30", "--control"])
        .arg(&control)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first_pid = first.id() as i32;
    let mut first = scopeguard(first);
    emperor.wait_until("the first holds the lock", || {
        emperor.log().contains("reload lock taken")
    });
    let second = reload(&control, &[]);
    assert_eq!(second.status.code(), Some(2));
    assert!(
        stderr(&second).contains(&format!(
            "another reload is in progress (pid {first_pid} holds the lock)"
        )),
        "{}",
        stderr(&second)
    );
    // The first one goes away: its lock goes with its connection.
    first.kill().unwrap();
    first.wait().unwrap();
    emperor.wait_until("the lock is released", || {
        emperor.log().contains("reload lock released")
    });
    let third = reload(&control, &["--minimum-active-vassals", "0", "other.ini"]);
    assert!(third.status.success(), "{}", stderr(&third));
}

#[test]
fn a_minimum_that_cannot_be_kept_is_refused_before_anything_is_reloaded() {
    let tmp = tempfile::tempdir().unwrap();
    let (emperor, control) = emperor_with_control(tmp.path());
    emperor.write("a.ini", &ini("sleep 1000", &[]));
    emperor.write("b.ini", &ini("sleep 1000", &[]));
    let (_, a) = emperor.running("a.ini");
    emperor.running("b.ini");
    emperor.wait_until("both accepting", || {
        ["a.ini", "b.ini"]
            .iter()
            .all(|n| emperor.vassal(n).is_some_and(|v| v["accepting"] == 1))
    });
    let output = reload(&control, &["--minimum-active-vassals", "2"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(
            "cannot keep 2 vassal(s) active while reloading: 2 of the 2 selected are ready"
        ),
        "{}",
        stderr(&output)
    );
    assert_eq!(emperor.running("a.ini").1, a);
}

#[test]
fn only_the_emperors_uid_and_root_may_use_the_control_socket() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !have_root("only_the_emperors_uid_and_root_may_use_the_control_socket") {
        return;
    }
    let tmp = open_tempdir();
    let (emperor, control) = emperor_with_control(tmp.path());
    emperor.write("a.ini", &ini("sleep 1000", &[]));
    let (_, a) = emperor.running("a.ini");
    let meta = std::fs::metadata(&control).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // Even with the file opened up, the peer's uid is checked.
    std::fs::set_permissions(&control, std::fs::Permissions::from_mode(0o666)).unwrap();
    let output = Command::new(BIN)
        .args(["reload", "--control"])
        .arg(&control)
        .uid(20002)
        .gid(20002)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("permission denied"),
        "{}",
        stderr(&output)
    );
    assert!(emperor.log().contains("control socket: refused"));
    assert_eq!(emperor.running("a.ini").1, a);
}

/// Kill the child if the test fails before it does.
fn scopeguard(child: std::process::Child) -> ChildGuard {
    ChildGuard(Some(child))
}

struct ChildGuard(Option<std::process::Child>);

impl ChildGuard {
    fn kill(&mut self) -> std::io::Result<()> {
        self.0.as_mut().unwrap().kill()
    }
    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.0.take().unwrap().wait()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Seed 003's promise under load: four nginx vassals share one emperor-held socket; two
/// rolling reloads with a minimum of two run while wrk hammers it. wrk counts no failed and
/// no non-2xx request; every vassal ends with a new payload; the readiness sampled all along
/// never fell below two.
#[test]
fn a_pool_of_four_nginx_keeps_serving_through_two_rolling_reloads_under_wrk() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let test = "a_pool_of_four_nginx_keeps_serving_through_two_rolling_reloads_under_wrk";
    if !have_root(test) {
        return;
    }
    if !have_tools(test, &["/usr/sbin/nginx", "/usr/bin/wrk"]) {
        return;
    }
    let _lock = timing_lock();
    let tmp = open_tempdir();
    let root = tmp.path();
    let pool = free_port();
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::write(root.join("www/index.html"), "hello from the pool\n").unwrap();
    let (emperor, control) = emperor_with_control(root);
    let names = ["web1.ini", "web2.ini", "web3.ini", "web4.ini"];
    for name in names {
        let own = free_port();
        let listen = [format!("127.0.0.1:{pool}"), format!("127.0.0.1:{own}")];
        let conf = nginx_conf(root, name, &listen);
        emperor.write(
            name,
            &format!(
                "[uwsgi]\npool-socket = 127.0.0.1:{pool}\nsocket = 127.0.0.1:{own}\n\
                 ready-check = http://127.0.0.1:{own}/\nstop-signal = QUIT\n\
                 privileged-binary-patch-arg = nginx -g \"daemon off;\" -c {}\n",
                conf.display()
            ),
        );
    }
    let accepting = |stats: &serde_json::Value| {
        stats["vassals"]
            .as_array()
            .map_or(0, |vs| vs.iter().filter(|v| v["accepting"] == 1).count())
    };
    emperor.wait_until("the four are ready", || accepting(&emperor.stats()) == 4);
    let payloads_before: Vec<i32> = names.iter().map(|n| emperor.running(n).1).collect();
    assert!(http_get(pool).is_some_and(|b| b.contains("hello from the pool")));

    // Readiness sampled from the stats every 10 ms while everything runs.
    let sampling = AtomicBool::new(true);
    let stats_addr = emperor.stats_addr.clone();
    let (least, samples) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let (mut least, mut samples) = (usize::MAX, 0u32);
            while sampling.load(Ordering::Relaxed) {
                let mut text = String::new();
                let read = std::os::unix::net::UnixStream::connect(&stats_addr)
                    .and_then(|mut s| std::io::Read::read_to_string(&mut s, &mut text));
                if let (Ok(_), Ok(stats)) = (read, serde_json::from_str(&text)) {
                    least = least.min(accepting(&stats));
                    samples += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (least, samples)
        });
        let started = Instant::now();
        let wrk = scope.spawn(move || {
            Command::new("/usr/bin/wrk")
                .args([
                    "-c",
                    "20",
                    "-t",
                    "2",
                    "-d",
                    "12s",
                    "-H",
                    "Connection: close",
                ])
                .arg(format!("http://127.0.0.1:{pool}/"))
                .output()
        });
        // The reloads start once wrk is under way (it runs 12 s).
        std::thread::sleep(Duration::from_secs(2));
        for round in 1..=2 {
            let output = reload(
                &control,
                &[
                    "--pool",
                    &format!("127.0.0.1:{pool}"),
                    "--minimum-active-vassals",
                    "2",
                ],
            );
            assert!(
                output.status.success(),
                "reload {round}: {}",
                stderr(&output)
            );
        }
        let reloads_took = started.elapsed();
        let output = wrk.join().unwrap().unwrap();
        sampling.store(false, Ordering::Relaxed);
        assert!(
            reloads_took < Duration::from_secs(11),
            "both reloads ({reloads_took:?}) must happen while wrk runs"
        );
        wrk_clean_report(&output);
        sampler.join().unwrap()
    });
    assert!(samples > 50, "only {samples} readiness samples");
    assert!(
        least >= 2,
        "at one sampled moment only {least} vassal(s) were ready"
    );
    let stats = emperor.stats();
    for (name, before) in names.iter().zip(payloads_before) {
        let v = stats["vassals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == *name)
            .unwrap();
        assert_ne!(v["payload_pid"], before, "{name} has a new payload");
    }
    let log = emperor.log();
    assert_eq!(log.matches("reload lock taken").count(), 2, "{log}");
}

/// A pool socket is shared only among one owner's vassals: in tyrant mode another tenant
/// naming the same address is refused (it would take the first tenant's connections), and the
/// first tenant's pool keeps serving. The same owner may add a second vassal to it.
#[test]
fn a_tenant_cannot_join_another_tenants_pool() {
    if !have_root("a_tenant_cannot_join_another_tenants_pool") {
        return;
    }
    let (tmp, server) = site(
        "import socket\ns = socket.socket(fileno=3)\nwhile True:\n    c, _ = s.accept()\n    c.recv(4096)\n    c.sendall(b'HTTP/1.0 200 OK\\r\\n\\r\\nalice\\n')\n    c.close()\n",
    );
    let root = tmp.path();
    let pool = free_port();
    let emperor = Emperor::start(
        root,
        &[
            "--emperor-tyrant",
            "--emperor-tyrant-ports",
            &pool.to_string(),
        ],
    );
    let drop_in = |name: &str, owner: u32| {
        let staged = root.join(name);
        write(
            &staged,
            &format!(
                "[uwsgi]\npool-socket = 127.0.0.1:{pool}\nunprivileged-binary-patch-arg = /usr/bin/python3 {}\n",
                server.display()
            ),
        );
        std::os::unix::fs::chown(&staged, Some(owner), Some(owner)).unwrap();
        std::fs::rename(&staged, emperor.vassals.join(name)).unwrap();
    };
    drop_in("alice1.ini", 20001);
    emperor.running("alice1.ini");
    drop_in("bob.ini", 20002);
    emperor.wait_until("bob is refused", || {
        emperor.log().contains(&format!(
            "127.0.0.1:{pool} is already held for another vassal"
        ))
    });
    let bob = emperor.vassal("bob.ini").unwrap();
    assert_eq!(bob["state"], "idle", "{bob}");
    assert_eq!(bob["pid"], -1);
    drop_in("alice2.ini", 20001);
    emperor.running("alice2.ini");
    let pools: Vec<_> = ["alice1.ini", "alice2.ini"]
        .iter()
        .map(|n| emperor.vassal(n).unwrap()["pool"].clone())
        .collect();
    assert_eq!(pools[0], format!("127.0.0.1:{pool}"));
    assert_eq!(pools[0], pools[1], "the owner's second vassal shares it");
    for _ in 0..4 {
        let body = http_get(pool).expect("the pool serves");
        assert!(body.contains("alice"), "{body}");
    }
}
