//! The clone server as the emperor uses it: started from this test process, it starts
//! user-namespaced programs that are this process's children (it can wait for them), in
//! their namespaces with their maps and fds, reports a failed start as a local start would,
//! takes an unprivileged emperor's identity, and exits when its socket closes. In process
//! (the root emperor's server), it runs a vassal runtime in a copy of itself that holds only
//! the fds, environment and command line its start gives.

mod common;

use common::{have_root, status, timing_lock};
use emperor::clone_server::{CloneServer, Failure, RuntimeStart, WireMaps};
use emperor::helper_identity::EmperorIdentity;
use jail::caps::CapSet;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::io::Read;
use std::os::fd::AsFd;
use std::sync::MutexGuard;

const RUNTIME_BINARY: &str = env!("CARGO_BIN_EXE_emperor-vassal");

fn server(identity: Option<EmperorIdentity>) -> CloneServer {
    let dev_null = std::fs::File::open("/dev/null").unwrap();
    CloneServer::start(
        RUNTIME_BINARY.as_ref(),
        identity,
        &[],
        dev_null.as_fd(),
        false,
    )
    .expect("the clone server starts")
}

/// Root and this file's turn (a test here collects a child it cannot name, which must be its
/// own), with a server running as root; None, having said why, without root.
fn root_server(test: &str) -> Option<(MutexGuard<'static, ()>, CloneServer)> {
    if !have_root(test) {
        return None;
    }
    let turn = timing_lock();
    Some((turn, server(None)))
}

/// `sh -c SCRIPT` in a user and mount namespace, owned by uid/gid 20001, stdout on fd 1.
fn shell(script: &str) -> RuntimeStart {
    RuntimeStart {
        program: "/bin/sh".into(),
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![("GREETING".into(), "hello".into())],
        fd_targets: vec![1],
        into_cgroup: false,
        namespaces: (libc::CLONE_NEWUSER | libc::CLONE_NEWNS) as u64,
        open_files: None,
        maps: Some(WireMaps {
            uids: vec![(0, 20001, 1)],
            gids: vec![(0, 20001, 1)],
        }),
    }
}

fn status_field(pid: Pid, key: &str) -> String {
    status(pid.as_raw(), key)
}

/// Run `script` through `server`; what it printed and how it exited, waited for here.
fn run(server: &CloneServer, script: &str) -> (String, WaitStatus) {
    let (mut output, output_write) = std::io::pipe().unwrap();
    let running = server
        .start_runtime(&shell(script), &[output_write.as_fd()])
        .unwrap_or_else(|failure| panic!("{failure:?}"));
    drop(output_write);
    let mut said = String::new();
    output.read_to_string(&mut said).unwrap();
    // Only a parent can wait: the program is this process's child, not the server's.
    let status = waitpid(running.pid, None).expect("the program is our child");
    (said, status)
}

#[test]
fn a_started_program_is_our_child_in_its_user_namespace_with_its_maps_and_fds() {
    let Some((_turn, server)) =
        root_server("a_started_program_is_our_child_in_its_user_namespace_with_its_maps_and_fds")
    else {
        return;
    };
    let (said, status) = run(
        &server,
        "echo $PPID $(id -u) $GREETING; cat /proc/self/uid_map /proc/self/gid_map; \
         readlink /proc/self/ns/user",
    );
    let lines: Vec<&str> = said.lines().map(str::trim).collect();
    let ours = std::process::id();
    assert_eq!(
        lines[0],
        format!("{ours} 0 hello"),
        "parent, uid inside, env"
    );
    let maps: Vec<String> = lines[1..3]
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(maps, ["0 20001 1", "0 20001 1"]);
    let our_user_ns = std::fs::read_link("/proc/self/ns/user").unwrap();
    assert_ne!(
        lines[3],
        our_user_ns.to_str().unwrap(),
        "a user namespace of its own"
    );
    assert_eq!(status, WaitStatus::Exited(status.pid().unwrap(), 0));
}

#[test]
fn a_failed_start_is_refused_with_its_step_and_the_server_serves_on() {
    let Some((_turn, server)) =
        root_server("a_failed_start_is_refused_with_its_step_and_the_server_serves_on")
    else {
        return;
    };
    let mut missing = shell("true");
    missing.program = "/nonexistent/runtime".into();
    let (_output, output_write) = std::io::pipe().unwrap();
    match server.start_runtime(&missing, &[output_write.as_fd()]) {
        Err(Failure::Refused(reason)) => assert!(
            reason.starts_with("execve(\"/nonexistent/runtime\"): ENOENT"),
            "{reason}"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Wrong fd count and no user namespace: refused before any clone.
    match server.start_runtime(&shell("true"), &[]) {
        Err(Failure::Refused(reason)) => {
            assert_eq!(reason, "0 fds handed with the start of /bin/sh, 1 expected")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut plain = shell("true");
    plain.namespaces = 0;
    plain.maps = None;
    match server.start_runtime(&plain, &[output_write.as_fd()]) {
        Err(Failure::Refused(reason)) => assert!(
            reason.ends_with("the clone server starts only runtimes with a user namespace"),
            "{reason}"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The failed clone is our child too (the server does not know its pid): collect it.
    let _ = nix::sys::wait::waitid(
        nix::sys::wait::Id::All,
        nix::sys::wait::WaitPidFlag::WEXITED | nix::sys::wait::WaitPidFlag::WNOHANG,
    );
    drop(output_write);
    let (said, _) = run(&server, "echo still serving");
    assert_eq!(said, "still serving\n");
}

#[test]
fn an_unprivileged_server_keeps_only_its_identity_and_still_writes_maps() {
    if !have_root("an_unprivileged_server_keeps_only_its_identity_and_still_writes_maps") {
        return;
    }
    let _turn = timing_lock();
    // CAP_SETUID (7) and CAP_SETGID (6).
    let setuid_setgid = CapSet(0xc0);
    let server = server(Some(EmperorIdentity {
        uid: 10000,
        gid: 10000,
        keep: setuid_setgid,
    }));
    assert_eq!(status_field(server.pid(), "Uid"), "10000 10000 10000 10000");
    assert_eq!(status_field(server.pid(), "Gid"), "10000 10000 10000 10000");
    for caps in ["CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(
            status_field(server.pid(), caps),
            "00000000000000c0",
            "{caps}"
        );
    }
    assert_eq!(status_field(server.pid(), "CapAmb"), "0000000000000000");
    let (said, status) = run(&server, "cat /proc/self/uid_map");
    assert_eq!(
        said.split_whitespace().collect::<Vec<_>>(),
        ["0", "20001", "1"]
    );
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
}

#[test]
fn the_server_exits_when_its_socket_closes() {
    let Some((_turn, server)) = root_server("the_server_exits_when_its_socket_closes") else {
        return;
    };
    let pid = server.pid();
    let socket_count = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    assert!(
        socket_count <= 4,
        "the server holds only its stdio and socket"
    );
    // Dropping it closes its socket; it exits, and the drop collects it.
    drop(server);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the server is gone and collected, not a zombie"
    );
}

/// `emperor-vassal vassal --name NAME CONFIG`, as the emperor starts a runtime: stdin and its
/// link to the emperor (fd 3), in no namespace.
fn runtime_start(config: &std::path::Path) -> RuntimeStart {
    RuntimeStart {
        program: RUNTIME_BINARY.into(),
        argv: [RUNTIME_BINARY, "vassal", "--name", "copied.ini"]
            .map(String::from)
            .into_iter()
            .chain([config.display().to_string()])
            .collect(),
        env: vec![
            ("UWSGI_EMPEROR_FD".into(), "3".into()),
            ("GREETING".into(), "hello".into()),
        ],
        fd_targets: vec![0, 3],
        into_cgroup: false,
        namespaces: 0,
        open_files: None,
        maps: None,
    }
}

/// The targets of a process's fds (`socket:[INODE]`, paths).
fn fd_targets(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .map(|target| target.display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The word a runtime holds from its clone server (jail::ahead), which it must hold once
/// and read-only: its value.
fn held_word(pid: i32) -> u64 {
    let fd_dir = format!("/proc/{pid}/fd");
    let words: Vec<String> = std::fs::read_dir(&fd_dir)
        .unwrap()
        .flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|t| t.display().to_string().starts_with("/memfd:emperor word"))
        })
        .map(|fd| fd.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(words.len(), 1, "{words:?}");
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", words[0])).unwrap();
    let flags = info
        .lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .map(|octal| u32::from_str_radix(octal.trim(), 8).unwrap())
        .unwrap();
    assert_eq!(flags & 3, 0, "opened O_RDONLY: {info}");
    let mut bytes = [0u8; 8];
    let file = std::fs::File::open(format!("{fd_dir}/{}", words[0])).unwrap();
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut bytes, 0).unwrap();
    u64::from_ne_bytes(bytes)
}

#[test]
fn an_in_process_server_runs_a_runtime_in_a_copy_of_itself_with_only_what_its_start_gives() {
    if !have_root(
        "an_in_process_server_runs_a_runtime_in_a_copy_of_itself_with_only_what_its_start_gives",
    ) {
        return;
    }
    let _turn = timing_lock();
    let dev_null = std::fs::File::open("/dev/null").unwrap();
    let server = CloneServer::start(RUNTIME_BINARY.as_ref(), None, &[], dev_null.as_fd(), true)
        .expect("the clone server starts");
    assert!(server.starts_every_runtime());
    let tmp = common::open_tempdir();
    let said = tmp.path().join("said");
    // The config reads the runtime's environment ($(VAR)) and hands it to the payload.
    let config = common::write(
        &tmp.path().join("copied.ini"),
        &format!(
            "[uwsgi]\nenv = SEEN=$(GREETING) $(UWSGI_EMPEROR_FD) $(EMPEROR_TITLE_ROOM:-none)\n\
             unprivileged-binary-patch-arg = /bin/sh -c 'echo $SEEN > {}; exec sleep 1000'\n",
            said.display()
        ),
    );
    let (link, their_link) = std::os::unix::net::UnixStream::pair().unwrap();
    let before_start = jail::process::monotonic_now();
    let running = server
        .start_runtime(
            &runtime_start(&config),
            &[dev_null.as_fd(), their_link.as_fd()],
        )
        .unwrap_or_else(|failure| panic!("{failure:?}"));
    drop(their_link);
    let runtime = running.pid.as_raw();
    common::wait_until(
        "the payload says what it saw",
        std::time::Duration::from_secs(10),
        || std::fs::read_to_string(&said).is_ok_and(|s| s.ends_with('\n')),
    );
    assert_eq!(
        std::fs::read_to_string(&said).unwrap(),
        "hello 3 none\n",
        "exactly the start's environment: the server's own variables are gone"
    );
    assert_eq!(
        common::parent(runtime),
        Some(std::process::id() as i32),
        "our child"
    );
    assert_eq!(
        common::cmdline(runtime),
        format!(
            "{RUNTIME_BINARY} vassal --name copied.ini {}",
            config.display()
        ),
        "its own command line"
    );
    assert_eq!(status_field(running.pid, "Threads"), "1");
    // None of the server's fds: its socket to us is not among the runtime's.
    let server_socket = std::fs::read_link(format!("/proc/{}/fd/3", server.pid()))
        .unwrap()
        .display()
        .to_string();
    let held = fd_targets(runtime);
    assert!(
        !held.contains(&server_socket),
        "{server_socket} in {held:?}"
    );
    // Of the server's files only the three it opened for every copy (jail::ahead): its
    // binary, to hibernate with, /proc/loadavg, and the word (below).
    let binary = std::fs::canonicalize(RUNTIME_BINARY).unwrap();
    let of_the_server: Vec<&String> = held
        .iter()
        .filter(|t| t.contains("emperor-vassal") && !t.starts_with("/memfd:"))
        .collect();
    assert_eq!(of_the_server, [&binary.display().to_string()], "{held:?}");
    assert_eq!(
        held.iter().filter(|t| *t == "/proc/loadavg").count(),
        1,
        "{held:?}"
    );
    // And, read-only, the word in which the server said before this start until when its
    // starts go on: a second after it.
    let word = held_word(runtime);
    let said_until = std::time::Duration::from_nanos(word);
    let hold = std::time::Duration::from_secs(1);
    assert!(
        before_start + hold <= said_until && said_until <= jail::process::monotonic_now() + hold,
        "{said_until:?} after a start at {before_start:?}"
    );
    // Its link closes: it stops its payload and exits, collected here.
    let payload = common::payload_pid(runtime).expect("the payload runs");
    drop(link);
    let status = waitpid(running.pid, None).expect("the runtime is our child");
    assert!(matches!(status, WaitStatus::Exited(..)), "{status:?}");
    common::wait_until(
        "the payload is gone",
        std::time::Duration::from_secs(5),
        || !common::alive(payload),
    );
}
