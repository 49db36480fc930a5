//! Upgrading the emperor in place (SIGUSR2, `emperor upgrade`): the binary installed at its
//! path is executed in its pid and takes over every vassal, which notices nothing; a binary
//! that cannot take over is refused and the old one goes on.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An HTTP server answering `NAME pid=PID`: on the inherited fd 3 when no port is given (an
/// on-demand or pool socket), else on its own port.
const SERVER: &str = r#"import os, socket, sys
name = sys.argv[1]
if len(sys.argv) > 2:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[2])))
    s.listen(64)
else:
    s = socket.socket(fileno=3)
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall(("HTTP/1.0 200 OK\r\n\r\n%s pid=%d\n" % (name, os.getpid())).encode())
    c.close()
"#;

/// The emperor binary as a package would install it: a copy at ROOT/bin/emperor, replaced
/// by a rename (the running binary's inode stays as it was).
fn install(root: &Path, contents: &[u8]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let staged = bin.join(".emperor.new");
    std::fs::write(&staged, contents).unwrap();
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = bin.join("emperor");
    std::fs::rename(&staged, &path).unwrap();
    path
}

fn install_current(root: &Path) -> PathBuf {
    install(root, &std::fs::read(BIN).unwrap())
}

fn start(root: &Path) -> Emperor {
    let binary = install_current(root);
    let control = root.join("control.sock").display().to_string();
    Emperor::launch(
        root,
        Options {
            args: vec!["--emperor-control".into(), control],
            binary: Some(binary),
            ..Options::default()
        },
    )
}

/// `emperor upgrade --control ROOT/control.sock`: (exit code, stdout + stderr).
fn upgrade_command(root: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("upgrade")
        .arg("--control")
        .arg(root.join("control.sock"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn upgrades(emperor: &Emperor) -> u64 {
    emperor.stats()["upgrades"].as_u64().unwrap()
}

/// Each named vassal's (runtime pid, payload pid).
fn pids(emperor: &Emperor, names: &[&str]) -> Vec<(i32, i32)> {
    names.iter().map(|name| emperor.running(name)).collect()
}

#[test]
fn ten_upgrades_under_load_keep_every_vassal_and_honour_a_change_made_meanwhile() {
    let (tmp, server) = site(SERVER);
    let root = tmp.path();
    let emperor = start(root);
    let (own, pool, on_demand) = (free_port(), free_port(), free_port());
    let patch = |name: &str, extra: &str| {
        format!(
            "[uwsgi]\n{extra}unprivileged-binary-patch-arg = /usr/bin/python3 {} {name}\n",
            server.display()
        )
    };
    emperor.write(
        "own.ini",
        &format!(
            "[uwsgi]\nunprivileged-binary-patch-arg = /usr/bin/python3 {} own {own}\n",
            server.display()
        ),
    );
    emperor.write(
        "pool.ini",
        &patch("pool", &format!("pool-socket = 127.0.0.1:{pool}\n")),
    );
    emperor.write(
        "lazy.ini",
        &patch(
            "lazy",
            &format!("on-demand-socket = 127.0.0.1:{on_demand}\n"),
        ),
    );
    let changed_port = free_port();
    emperor.write("changed.ini", &patch(&format!("before {changed_port}"), ""));
    let mut names = vec!["own.ini", "pool.ini", "lazy.ini", "changed.ini"];
    let mut ports = vec![own, pool, on_demand];
    // A uWSGI application too, where the real uWSGI is installed (tests/run-all.sh does).
    let uwsgi_port = free_port();
    let with_uwsgi = have_tools(
        "the uWSGI vassal of an upgrade",
        &["/usr/bin/uwsgi", "/usr/lib/uwsgi/plugins/python3_plugin.so"],
    );
    if with_uwsgi {
        let app = write(
            &root.join("app.py"),
            "def application(env, start_response):\n    start_response('200 OK', [])\n    return [b'uwsgi']\n",
        );
        emperor.write(
            "uwsgi.ini",
            &format!(
                "[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:{uwsgi_port}\nwsgi-file = {}\nmaster = true\nprocesses = 2\n",
                app.display()
            ),
        );
        names.push("uwsgi.ini");
        ports.push(uwsgi_port);
    }
    for &port in &ports {
        emperor.wait_for(&format!("127.0.0.1:{port} serves"), || http_get(port));
    }
    let before = pids(&emperor, &names);
    let changed_before = before[3];
    let requests = RequestLoop::start(ports.clone());
    requests.wait_for_more(20);
    for round in 1..=10u64 {
        // As a package upgrade does: a new file at the emperor's path.
        install_current(root);
        if round % 2 == 0 {
            let (code, said) = upgrade_command(root);
            assert_eq!(code, 0, "round {round}: {said}\n{}", emperor.log());
            assert!(said.contains(&format!("(upgrade {round})")), "{said}");
        } else {
            emperor.signal(Signal::SIGUSR2);
            if round == 5 {
                // A change made while the emperor is being replaced is not lost.
                emperor.write("changed.ini", &patch(&format!("after {changed_port}"), ""));
            }
            emperor.wait_until(&format!("upgrade {round} is done"), || {
                emperor.try_stats().is_some_and(|s| s["upgrades"] == round)
            });
        }
        requests.wait_for_more(ports.len() as u64 * 3);
        let kept: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| *n != "changed.ini")
            .collect();
        let now = pids(&emperor, &kept);
        let then: Vec<(i32, i32)> = names
            .iter()
            .zip(&before)
            .filter(|(n, _)| **n != "changed.ini")
            .map(|(_, p)| *p)
            .collect();
        assert_eq!(
            now,
            then,
            "round {round}: runtime and payload pids\n{}",
            emperor.log()
        );
    }
    let (done, failed) = requests.finish();
    assert_eq!(
        failed,
        0,
        "{failed} of {done} requests failed\n{}",
        emperor.log()
    );
    assert_eq!(upgrades(&emperor), 10);
    // The change made during upgrade 5 runs: its vassal was reloaded on the new text.
    let after = emperor.running_other_than("changed.ini", changed_before.1);
    assert_eq!(
        after.0, changed_before.0,
        "reloaded in its jail, not respawned"
    );
    assert!(cmdline(after.1).contains("after"), "{}", cmdline(after.1));

    // SIGKILL of an upgraded emperor still takes everything with it.
    let tree = emperor.tree();
    emperor.signal(Signal::SIGKILL);
    wait_until("every process of the emperor is gone", PATIENCE, || {
        tree.iter().all(|&pid| !alive(pid))
    });
}

/// An emperor (see [`start`]) with `own.ini` serving on its own port: (its temp dir, the
/// emperor, the port, the vassal's runtime and payload pids).
fn one_serving_vassal() -> (tempfile::TempDir, Emperor, u16, (i32, i32)) {
    let (tmp, server) = site(SERVER);
    let emperor = start(tmp.path());
    let port = free_port();
    emperor.write(
        "own.ini",
        &format!(
            "[uwsgi]\nunprivileged-binary-patch-arg = /usr/bin/python3 {} own {port}\n",
            server.display()
        ),
    );
    emperor.wait_for("it serves", || http_get(port));
    let before = emperor.running("own.ini");
    (tmp, emperor, port, before)
}

#[test]
fn a_binary_that_cannot_take_over_is_refused_and_the_old_one_goes_on() {
    let (tmp, emperor, port, before) = one_serving_vassal();
    let root = tmp.path();
    let refused: [(&str, &[u8], &str); 3] = [
        ("a corrupt binary", b"\x7fELF garbage", "cannot execute it"),
        (
            "a binary that exits at start",
            b"#!/bin/sh\nexit 3\n",
            "exit status: 3",
        ),
        (
            "a binary that does not know the snapshot",
            b"#!/bin/sh\necho 'snapshot format 99 (this binary knows 1)' >&2\nexit 1\n",
            "this binary knows 1",
        ),
    ];
    for (what, contents, reason) in refused {
        install(root, contents);
        let (code, said) = upgrade_command(root);
        assert_eq!(code, 1, "{what}: {said}");
        assert!(said.contains(reason), "{what}: {said}");
        assert_eq!(
            emperor.running("own.ini"),
            before,
            "{what}: the vassal is untouched"
        );
        assert!(http_get(port).is_some(), "{what}: it still serves");
    }
    // SIGUSR2 with a bad binary: the same, told in the log.
    emperor.signal(Signal::SIGUSR2);
    emperor.wait_until("the refusal is logged", || {
        emperor.log().matches("upgrade failed").count() == 4
    });
    assert_eq!(upgrades(&emperor), 0);
    install_current(root);
    let (code, said) = upgrade_command(root);
    assert_eq!(code, 0, "{said}");
    assert_eq!(emperor.running("own.ini"), before);
}

#[test]
fn an_unprivileged_tyrant_emperor_keeps_its_identity_and_only_its_two_capabilities() {
    if !have_root("an_unprivileged_tyrant_emperor_keeps_its_identity") {
        return;
    }
    let tmp = open_tempdir();
    let root = tmp.path();
    let binary = install_current(root);
    let mut args: Vec<String> = UNPRIVILEGED.iter().map(|s| s.to_string()).collect();
    args.extend(["--emperor-tyrant", "--emperor-use-clone", "fs,ipc,pid,uts"].map(String::from));
    let emperor = Emperor::launch(
        root,
        Options {
            args,
            binary: Some(binary),
            ..Options::default()
        },
    );
    emperor.drop_as(20001, "alice.ini", &ini("sleep 1000", &[]));
    let before = emperor.running("alice.ini");
    let identity = |pid: i32| {
        [
            "Uid", "Gid", "CapPrm", "CapEff", "CapInh", "CapAmb", "CapBnd",
        ]
        .map(|key| status(pid, key))
    };
    let expected = [
        "10000 10000 10000 10000",
        "10000 10000 10000 10000",
        "00000000000000c0",
        "00000000000000c0",
        "0000000000000000",
        "0000000000000000",
        "00000000000000c0",
    ];
    assert_eq!(identity(emperor.pid), expected.map(String::from));
    for round in 1..=2u64 {
        install_current(root);
        emperor.signal(Signal::SIGUSR2);
        emperor.wait_until(&format!("upgrade {round} is done"), || {
            emperor.try_stats().is_some_and(|s| s["upgrades"] == round)
        });
        assert_eq!(
            identity(emperor.pid),
            expected.map(String::from),
            "after upgrade {round}"
        );
        assert_eq!(emperor.running("alice.ini"), before);
    }
    // The upgraded emperor still starts a tenant's vassal as its owner, in its namespaces.
    emperor.drop_as(20002, "bob.ini", &ini("sleep 1000", &[]));
    let (runtime, payload) = emperor.running("bob.ini");
    assert_eq!(status(runtime, "Uid"), "20002 20002 20002 20002");
    assert_eq!(status(payload, "Uid"), "20002 20002 20002 20002");
    assert_eq!(status(payload, "CapEff"), "0000000000000000");
}

#[test]
fn a_binary_that_fails_while_taking_over_hands_the_emperor_back_to_the_old_one() {
    let (tmp, emperor, port, before) = one_serving_vassal();
    let root = tmp.path();
    // It passes the probe (as the real binary), then takes over with a monitor it cannot
    // open: the takeover fails after the execve, in the emperor's own pid.
    let wrapper = format!(
        "#!/bin/sh\nif [ -n \"$EMPEROR_UPGRADE_PROBE_FD\" ]; then exec {BIN} \"$@\"; fi\n\
         exec {BIN} \"$@\" --emperor 'glob://['\n"
    );
    install(root, wrapper.as_bytes());
    let (code, said) = upgrade_command(root);
    assert_eq!(code, 1, "{said}\n{}", emperor.log());
    assert!(said.contains("bad glob pattern"), "{said}");
    assert!(
        emperor
            .log()
            .contains("executing the previous binary again"),
        "{}",
        emperor.log()
    );
    assert_eq!(
        emperor.running("own.ini"),
        before,
        "the vassal is untouched"
    );
    assert!(http_get(port).is_some());
    assert_eq!(upgrades(&emperor), 0);
    // The old binary took its emperor back as it was: it upgrades again as usual.
    install_current(root);
    let (code, said) = upgrade_command(root);
    assert_eq!(code, 0, "{said}");
    assert_eq!(emperor.running("own.ini"), before);
}
