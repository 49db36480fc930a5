//! Real uWSGI vassals: configs without a binary patch run the uWSGI binary (Debian's
//! uwsgi-core with its python3 plugin, which tests/run-all.sh installs) in the jail, and the
//! emperor protocol works with the real uWSGI: ready, accepting, loyal; a touched config is a
//! graceful uWSGI reload, a removed one a stop; fallback-config and need-app.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const UWSGI: &str = "/usr/bin/uwsgi";
const PYTHON_PLUGIN: &str = "/usr/lib/uwsgi/plugins/python3_plugin.so";
const WERKZEUG: &str = "/usr/lib/python3/dist-packages/werkzeug/testapp.py";

fn have_uwsgi(test: &str) -> bool {
    have_root(test) && have_tools(test, &[UWSGI, PYTHON_PLUGIN, WERKZEUG])
}

/// A WSGI app that answers with its GREETING, its worker's pid and the uid it runs as.
const APP: &str = r#"import os
def application(env, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    greeting = os.environ.get('GREETING', '-')
    return [('%s pid=%d uid=%d\n' % (greeting, os.getpid(), os.getuid())).encode()]
"#;

/// A dir any tenant can read holding `app.py`.
fn app_dir() -> (tempfile::TempDir, PathBuf) {
    let (tmp, _) = site("");
    let app = write(&tmp.path().join("app.py"), APP);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o644)).unwrap();
    (tmp, app)
}

fn app_ini(port: u16, app: &Path, greeting: &str) -> String {
    format!(
        "[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:{port}\nwsgi-file = {}\n\
         env = GREETING={greeting}\nmaster = true\nprocesses = 2\n",
        app.display()
    )
}

/// `GET /` body, or None when the request failed.
fn body(port: u16) -> Option<String> {
    http_get(port).map(|r| r.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}

/// Every process of a vassal: its runtime and all it started.
fn vassal_tree(emperor: &Emperor, name: &str) -> Vec<i32> {
    let runtime = emperor.runtime_pid(name).expect("running");
    let mut tree = descendants(runtime);
    tree.push(runtime);
    tree
}

fn port_closed(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[test]
fn uwsgi_apps_in_every_format_serve_reload_without_a_failed_request_and_stop() {
    if !have_uwsgi("uwsgi_apps_in_every_format") {
        return;
    }
    let (site, app) = app_dir();
    let emperor = Emperor::start(site.path(), &[]);
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    // Seed 004's werkzeug.xml with an http-socket (and Debian's python3 plugin) added.
    emperor.write(
        "werkzeug.xml",
        &format!(
            "<uwsgi>\n  <plugins>python3</plugins>\n  <module>werkzeug.testapp:test_app</module>\n  \
             <master/>\n  <processes>2</processes>\n  <http-socket>127.0.0.1:{}</http-socket>\n</uwsgi>\n",
            ports[0]
        ),
    );
    emperor.write("app.ini", &app_ini(ports[1], &app, "ini-v1"));
    emperor.write(
        "app.json",
        &format!(
            "{{\"uwsgi\": {{\"plugins\": \"python3\", \"http-socket\": \"127.0.0.1:{}\", \
             \"wsgi-file\": \"{}\", \"env\": \"GREETING=json-v1\", \"master\": true, \"processes\": 1}}}}\n",
            ports[2],
            app.display()
        ),
    );
    emperor.write(
        "app.yaml",
        &format!(
            "uwsgi:\n  plugins: python3\n  http-socket: 127.0.0.1:{}\n  wsgi-file: {}\n  \
             env: GREETING=yaml-v1\n  master: true\n  processes: 1\n",
            ports[3],
            app.display()
        ),
    );
    // A binary patch in the same directory and emperor.
    emperor.write("patch.ini", &ini("sleep 1000", &[]));
    emperor.wait_until("every app serves", || {
        ports.iter().all(|&port| http_get(port).is_some())
    });
    assert!(http_get(ports[0]).unwrap().contains("Werkzeug"));
    assert!(body(ports[1]).unwrap().starts_with("ini-v1 "));
    assert!(body(ports[2]).unwrap().starts_with("json-v1 "));
    assert!(body(ports[3]).unwrap().starts_with("yaml-v1 "));
    emperor.running("patch.ini");
    let masters: Vec<i32> = ["app.ini", "app.json", "app.yaml", "werkzeug.xml"]
        .iter()
        .map(|n| emperor.running(n).1)
        .collect();
    for &master in &masters {
        assert!(
            cmdline(master).contains("emperor://"),
            "{}",
            cmdline(master)
        );
    }

    // Changed configs: graceful uWSGI reloads on the new text, the masters' pids kept, while
    // a request loop runs against every app.
    let requests = RequestLoop::start(ports.clone());
    requests.wait_for_more(8);
    emperor.write("app.ini", &app_ini(ports[1], &app, "ini-v2"));
    let json = std::fs::read_to_string(emperor.vassals.join("app.json")).unwrap();
    emperor.write("app.json", &json.replace("json-v1", "json-v2"));
    let yaml = std::fs::read_to_string(emperor.vassals.join("app.yaml")).unwrap();
    emperor.write("app.yaml", &yaml.replace("yaml-v1", "yaml-v2"));
    touch(&emperor.vassals.join("werkzeug.xml"));
    emperor.wait_until("every app serves its new config", || {
        [(1, "ini-v2 "), (2, "json-v2 "), (3, "yaml-v2 ")]
            .iter()
            .all(|&(i, want)| body(ports[i]).is_some_and(|b| b.starts_with(want)))
    });
    emperor.wait_until("the werkzeug app reloaded", || {
        emperor
            .log()
            .matches("uWSGI reloads on the new config")
            .count()
            >= 4
    });
    requests.wait_for_more(8);
    let (made, failed) = requests.finish();
    eprintln!("{made} requests before, during and after the reloads, {failed} failed");
    assert_eq!(failed, 0, "requests failed during graceful reloads");
    for (name, &master) in ["app.ini", "app.json", "app.yaml", "werkzeug.xml"]
        .iter()
        .zip(&masters)
    {
        assert_eq!(
            emperor.running(name).1,
            master,
            "{name}: uWSGI reloads in place"
        );
    }
    assert!(
        !emperor.log().contains("SIGTERM"),
        "uWSGI is never sent SIGTERM"
    );

    // Removed: the port closes and every process of the vassal goes.
    let tree = vassal_tree(&emperor, "app.ini");
    std::fs::remove_file(emperor.vassals.join("app.ini")).unwrap();
    let took = wait_until("app.ini is gone", PATIENCE, || {
        port_closed(ports[1]) && tree.iter().all(|&pid| !alive(pid))
    });
    eprintln!("removal to gone: {took:?}");
    assert!(took <= Duration::from_secs(2), "removal took {took:?}");
    assert!(
        emperor.log().contains("goodbye to uWSGI"),
        "a clean uWSGI stop"
    );
    assert!(http_get(ports[2]).is_some(), "the others serve on");
}

/// An app whose `/slow` request writes the file STARTED and then takes 3 s.
const SLOW_APP: &str = r#"import os, time
def application(env, start_response):
    if env['PATH_INFO'] == '/slow':
        open(os.environ['STARTED'], 'w').close()
        time.sleep(3)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('done pid=%d\n' % os.getpid()).encode()]
"#;

#[test]
fn a_graceful_reload_waits_for_a_slow_request_longer_than_the_reload_mercy() {
    if !have_uwsgi("a_graceful_reload_waits_for_a_slow_request") {
        return;
    }
    let (site, _) = app_dir();
    let app = write(&site.path().join("slow.py"), SLOW_APP);
    let started = site.path().join("started");
    let emperor = Emperor::start(site.path(), &[]);
    let port = free_port();
    // uWSGI lets a worker finish its request in a graceful reload (worker-reload-mercy,
    // 60 s); reload-mercy (1 s here) bounds a stop, not that.
    let config = format!(
        "[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:{port}\nwsgi-file = {}\n\
         env = STARTED={}\nmaster = true\nprocesses = 1\nreload-mercy = 1\n",
        app.display(),
        started.display()
    );
    emperor.write("app.ini", &config);
    emperor.wait_until("it serves", || http_get(port).is_some());
    let (runtime, master) = emperor.running("app.ini");

    let slow = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream
            .write_all(b"GET /slow HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    });
    wait_until("the slow request is being served", PATIENCE, || {
        started.exists()
    });
    touch(&emperor.vassals.join("app.ini"));
    let answer = slow.join().unwrap();
    assert!(
        answer.contains("200 OK") && answer.contains("done"),
        "the request in flight during the reload is answered: {answer:?}\n{}",
        emperor.log()
    );
    emperor.wait_until("uWSGI reloaded on its config", || {
        emperor.log().contains("uWSGI reloads on the new config")
    });
    assert!(http_get(port).is_some());
    assert_eq!(
        emperor.running("app.ini"),
        (runtime, master),
        "reloaded in place, nothing killed"
    );
    assert!(
        !emperor.log().contains("SIGKILL"),
        "no kill: {}",
        emperor.log()
    );
}

#[test]
fn a_perl_psgi_app_serves_and_reloads_in_place() {
    const PSGI_PLUGIN: &str = "/usr/lib/uwsgi/plugins/psgi_plugin.so";
    if !have_uwsgi("a_perl_psgi_app") || !have_tools("a_perl_psgi_app", &[PSGI_PLUGIN]) {
        return;
    }
    let (site, _) = app_dir();
    let app = write(
        &site.path().join("app.psgi"),
        "my $app = sub {\n  return [200, ['Content-Type' => 'text/plain'], \
         [\"$ENV{GREETING} pid=$$\\n\"]];\n};\n",
    );
    let emperor = Emperor::start(site.path(), &[]);
    let port = free_port();
    let config = |greeting: &str| {
        format!(
            "[uwsgi]\nplugins = psgi\nhttp-socket = 127.0.0.1:{port}\npsgi = {}\n\
             env = GREETING={greeting}\nmaster = true\nprocesses = 1\n",
            app.display()
        )
    };
    emperor.write("perl.ini", &config("perl-v1"));
    emperor.wait_until("the PSGI app serves", || {
        body(port).is_some_and(|b| b.starts_with("perl-v1 "))
    });
    let before = emperor.running("perl.ini");
    emperor.write("perl.ini", &config("perl-v2"));
    emperor.wait_until("it serves its new config", || {
        body(port).is_some_and(|b| b.starts_with("perl-v2 "))
    });
    assert_eq!(emperor.running("perl.ini"), before, "reloaded in place");
}

#[test]
fn a_killed_uwsgi_master_serves_again_and_a_killed_emperor_leaves_no_uwsgi() {
    if !have_uwsgi("a_killed_uwsgi_master") {
        return;
    }
    let (site, app) = app_dir();
    let mut emperor = Emperor::start(site.path(), &[]);
    let port = free_port();
    emperor.write("app.ini", &app_ini(port, &app, "hi"));
    emperor.wait_until("it serves", || http_get(port).is_some());
    let (runtime, master) = emperor.running("app.ini");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(master),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let took = emperor.wait_until("it serves again", || {
        emperor
            .vassal("app.ini")
            .is_some_and(|v| v["payload_pid"] != master && v["payload_pid"].as_i64() > Some(0))
            && http_get(port).is_some()
    });
    eprintln!("SIGKILL of the uWSGI master to serving again: {took:?}");
    assert!(took <= Duration::from_secs(2), "took {took:?}");
    let _ = runtime;

    let tree = vassal_tree(&emperor, "app.ini");
    assert!(tree.len() >= 4, "runtime, master and two workers: {tree:?}");
    emperor.signal(nix::sys::signal::Signal::SIGKILL);
    emperor.wait_exit();
    wait_until("no uWSGI process is left", PATIENCE, || {
        tree.iter().all(|&pid| !alive(pid))
    });
    assert!(port_closed(port));
}

#[test]
fn a_uwsgi_app_is_loyal_after_its_first_request_and_stats_use_uwsgis_types() {
    if !have_uwsgi("loyal_after_first_request") {
        return;
    }
    let (site, app) = app_dir();
    let emperor = Emperor::start(site.path(), &[]);
    let port = free_port();
    emperor.write("app.ini", &app_ini(port, &app, "hi"));
    emperor.wait_until("ready and accepting", || {
        emperor
            .vassal("app.ini")
            .is_some_and(|v| v["ready"] == 1 && v["accepting"] == 1)
    });
    let v = emperor.vassal("app.ini").unwrap();
    assert_eq!(v["loyal"], 0, "no request yet: {v}");
    assert!(v["loyal"].is_u64() && v["ready"].is_u64() && v["accepting"].is_u64());
    assert!(emperor.stats()["emperor_tyrant"].is_u64());
    assert!(http_get(port).is_some());
    emperor.wait_until("loyal after its first request", || {
        emperor.vassal("app.ini").is_some_and(|v| v["loyal"] == 1)
    });
}

#[test]
fn need_app_hands_a_broken_app_over_to_its_fallback_config() {
    if !have_uwsgi("need_app_fallback") {
        return;
    }
    let (site, app) = app_dir();
    let broken = write(
        &site.path().join("broken.py"),
        "raise Exception('broken app')\n",
    );
    let emperor = Emperor::start(site.path(), &[]);
    let port = free_port();
    let safe = write(
        &site.path().join("safe.ini"),
        &app_ini(port, &app, "fallback"),
    );
    emperor.write(
        "app.ini",
        &format!(
            "[uwsgi]\nfallback-config = {}\nplugins = python3\nhttp-socket = 127.0.0.1:{port}\n\
             wsgi-file = {}\nneed-app = true\nmaster = true\n",
            safe.display(),
            broken.display()
        ),
    );
    emperor.wait_until("the fallback app serves", || {
        body(port).is_some_and(|b| b.starts_with("fallback "))
    });
    assert!(
        emperor.log().contains("fallback-config"),
        "the log says why: {}",
        emperor.log()
    );
}

#[test]
fn a_missing_uwsgi_binary_is_a_clear_error_not_a_respawn_loop() {
    if !have_root("a_missing_uwsgi_binary") {
        return;
    }
    let tmp = open_tempdir();
    let missing = tmp.path().join("no-such-uwsgi");
    let emperor = Emperor::start(tmp.path(), &["--binary-path", missing.to_str().unwrap()]);
    emperor.write(
        "app.ini",
        "[uwsgi]\nplugins = python3\nwsgi-file = app.py\nmaster = true\n",
    );
    emperor.write("patch.ini", &ini("sleep 1000", &[]));
    emperor.running("patch.ini");
    emperor.wait_until("the uWSGI app is refused", || {
        emperor
            .vassal("app.ini")
            .is_some_and(|v| v["state"] == "idle")
    });
    let log = emperor.log();
    assert!(
        log.contains("no-such-uwsgi") && log.contains("uwsgi-core") && log.contains("not started"),
        "{log}"
    );
    // Refused once, not retried: no runtime ran for it.
    let v = emperor.vassal("app.ini").unwrap();
    assert_eq!(v["respawns"], 0, "{v}");
    assert_eq!(v["pid"], -1, "{v}");

    let check = std::process::Command::new(BIN)
        .args(["check", "--binary-path", missing.to_str().unwrap()])
        .arg(emperor.vassals.join("app.ini"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success());
    assert!(
        stderr.contains("no-such-uwsgi") && stderr.contains("uwsgi-core"),
        "{stderr}"
    );
}

#[test]
fn in_tyrant_mode_every_uwsgi_process_runs_as_the_config_owner_in_its_jail() {
    if !have_uwsgi("uwsgi_tyrant") {
        return;
    }
    let (site, app) = app_dir();
    let port = free_port();
    let emperor = Emperor::start(
        site.path(),
        &[
            "--emperor-tyrant",
            "--emperor-use-clone",
            "fs,net,ipc,pid,uts",
            "--emperor-tyrant-ports",
            &port.to_string(),
        ],
    );
    let config = emperor.write("app.ini", &app_ini(port, &app, "tenant"));
    std::os::unix::fs::chown(&config, Some(20001), Some(20001)).unwrap();
    emperor.wait_until("the tenant's app serves", || http_get(port).is_some());
    let answer = body(port).unwrap();
    eprintln!("{answer}");
    // The app sees its owner's uid inside the jail too, as under uWSGI's own emperor.
    assert!(answer.contains(" uid=20001"), "{answer}");
    assert!(
        !emperor.log().contains("running as root"),
        "{}",
        emperor.log()
    );
    let tree = vassal_tree(&emperor, "app.ini");
    let uwsgi: Vec<i32> = tree
        .iter()
        .copied()
        .filter(|&pid| cmdline(pid).contains("emperor://app.ini"))
        .collect();
    assert!(uwsgi.len() >= 3, "a master and two workers: {tree:?}");
    for pid in uwsgi {
        assert_eq!(status(pid, "Uid").split_whitespace().next(), Some("20001"));
        assert_eq!(status(pid, "CapEff"), "0000000000000000", "pid {pid}");
        assert_eq!(status(pid, "NoNewPrivs"), "1", "pid {pid}");
        assert_eq!(status(pid, "Seccomp"), "2", "pid {pid}");
    }
    // Its own pid namespace: the worker that answers has a low pid there.
    let pid: i32 = answer
        .split_once(" pid=")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("the app says its pid");
    assert!(pid < 10 && !tree.contains(&pid), "{answer}");
}

#[test]
fn a_tyrant_uwsgi_app_on_a_port_not_allowed_names_the_flag() {
    if !have_root("tyrant_port_flag") {
        return;
    }
    let tmp = open_tempdir();
    let config = write(
        &tmp.path().join("vassals/app.ini"),
        "[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:8080\nwsgi-file = app.py\n",
    );
    let check = std::process::Command::new(BIN)
        .args(["check", "--emperor-tyrant"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success());
    assert!(
        stderr.contains("app.ini:3") && stderr.contains("--emperor-tyrant-ports"),
        "{stderr}"
    );
}
