//! The jail as a user checks it: namespaces, identity, capabilities, seccomp, limits, tyrant
//! mode and the unprivileged emperor, read from /proc of the real processes.
//! These need root (they create namespaces and change uids); without it they say so and skip,
//! and under CI they fail instead.

mod common;

use common::*;
use std::path::Path;

/// `Key:\tvalue` from /proc/PID/status.
fn namespace(pid: &str, name: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{name}"))
        .unwrap()
        .display()
        .to_string()
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

#[test]
fn each_namespace_of_emperor_use_clone_really_differs() {
    if !have_root("each_namespace_of_emperor_use_clone_really_differs") {
        return;
    }
    let tmp = open_tempdir();
    let emperor = Emperor::start(tmp.path(), &["--emperor-use-clone", "fs,net,ipc,pid,uts"]);
    emperor.write("app.ini", &ini("sleep 1000", &[]));
    let (runtime, payload) = emperor.running("app.ini");
    for ns in ["mnt", "net", "ipc", "pid", "uts"] {
        assert_ne!(
            namespace(&payload.to_string(), ns),
            namespace("self", ns),
            "{ns} namespace of the payload"
        );
        assert_eq!(
            namespace(&payload.to_string(), ns),
            namespace(&runtime.to_string(), ns),
            "{ns}: payload and runtime share the jail"
        );
    }
    assert_eq!(
        namespace(&payload.to_string(), "user"),
        namespace("self", "user"),
        "no user namespace was asked for"
    );
    assert_eq!(
        status(runtime, "NSpid").split(' ').next_back(),
        Some("1"),
        "the runtime is pid 1 of the vassal"
    );
}

#[test]
fn a_vassals_own_unshare_adds_to_the_emperors_namespaces() {
    if !have_root("a_vassals_own_unshare_adds_to_the_emperors_namespaces") {
        return;
    }
    let tmp = open_tempdir();
    let emperor = Emperor::start(tmp.path(), &["--emperor-use-clone", "uts"]);
    emperor.write("app.ini", &ini("sleep 1000", &["unshare = fs,net,pid"]));
    let (_, payload) = emperor.running("app.ini");
    for ns in ["uts", "mnt", "net", "pid"] {
        assert_ne!(
            namespace(&payload.to_string(), ns),
            namespace("self", ns),
            "{ns} namespace of the payload"
        );
    }
    assert_eq!(
        namespace(&payload.to_string(), "ipc"),
        namespace("self", "ipc")
    );
    assert_eq!(
        status(payload, "NSpid").split(' ').next_back(),
        Some("1"),
        "unshare = pid makes the payload pid 1 of its own namespace"
    );
}

#[test]
fn hostname_set_by_a_hook_is_seen_in_the_jail_and_not_on_the_host() {
    if !have_root("hostname_set_by_a_hook_is_seen_in_the_jail_and_not_on_the_host") {
        return;
    }
    let tmp = open_tempdir();
    let host_before = nix::unistd::gethostname().unwrap();
    let seen = tmp.path().join("seen-hostname");
    let emperor = Emperor::start(tmp.path(), &["--emperor-use-clone", "fs,uts"]);
    let command = format!("sh -c 'hostname > {}; exec sleep 1000'", seen.display());
    emperor.write(
        "app.ini",
        &ini(&command, &["exec-as-root = hostname jailed-by-hook"]),
    );
    emperor.running("app.ini");
    wait_until("the payload wrote its hostname", PATIENCE, || {
        std::fs::read_to_string(&seen).is_ok_and(|s| !s.is_empty())
    });
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap().trim(),
        "jailed-by-hook"
    );
    assert_eq!(
        nix::unistd::gethostname().unwrap(),
        host_before,
        "the host keeps its name"
    );
}

#[test]
fn payload_runs_with_exactly_the_identity_and_privileges_configured() {
    if !have_root("payload_runs_with_exactly_the_identity_and_privileges_configured") {
        return;
    }
    let tmp = open_tempdir();
    let emperor = Emperor::start(tmp.path(), &[]);
    emperor.write(
        "plain.ini",
        &ini("sleep 1000", &["uid = 20001", "gid = 20002"]),
    );
    emperor.write(
        "binder.ini",
        &ini(
            "sleep 1000",
            &["uid = 20001", "gid = 20001", "cap = net_bind_service"],
        ),
    );
    let (_, plain) = emperor.running("plain.ini");
    assert_eq!(status(plain, "Uid"), "20001 20001 20001 20001");
    assert_eq!(status(plain, "Gid"), "20002 20002 20002 20002");
    assert_eq!(status(plain, "Groups"), "", "no supplementary groups");
    for caps in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status(plain, caps), "0000000000000000", "{caps}");
    }
    assert_eq!(status(plain, "NoNewPrivs"), "1");
    assert_eq!(
        status(plain, "Seccomp"),
        "2",
        "the default seccomp filter is on"
    );

    let (_, binder) = emperor.running("binder.ini");
    let net_bind_service = "0000000000000400";
    for caps in ["CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(
            status(binder, caps),
            net_bind_service,
            "{caps} keeps only cap = net_bind_service"
        );
    }
    assert_eq!(status(binder, "Uid"), "20001 20001 20001 20001");
}

#[test]
fn seccomp_none_leaves_a_classic_payload_unfiltered() {
    if !have_root("seccomp_none_leaves_a_classic_payload_unfiltered") {
        return;
    }
    let tmp = open_tempdir();
    let emperor = Emperor::start(tmp.path(), &[]);
    emperor.write("app.ini", &ini("sleep 1000", &["seccomp = none"]));
    let (_, payload) = emperor.running("app.ini");
    assert_eq!(
        status(payload, "Seccomp"),
        "0",
        "the control: no filter when the admin says none"
    );
    assert_eq!(
        status(payload, "NoNewPrivs"),
        "1",
        "no_new_privs has no switch"
    );
}

#[test]
fn zombies_are_reaped_inside_a_pid_namespace() {
    if !have_root("zombies_are_reaped_inside_a_pid_namespace") {
        return;
    }
    let tmp = open_tempdir();
    let emperor = Emperor::start(tmp.path(), &["--emperor-use-clone", "fs,pid"]);
    // The subshell forks a sleep and exits: the sleep is orphaned to the jail's pid 1.
    emperor.write("app.ini", &ini("sh -c '(sleep 1 &); exec sleep 1000'", &[]));
    let (runtime, payload) = emperor.running("app.ini");
    let orphan = emperor.wait_for("the orphaned sleep is reparented to the runtime", || {
        children(runtime)
            .into_iter()
            .find(|&c| c != payload && cmdline(c) == "sleep 1")
    });
    wait_until(
        "the orphan has exited and been reaped by the runtime",
        PATIENCE,
        || !Path::new(&format!("/proc/{orphan}")).exists(),
    );
    assert!(alive(payload), "the payload is untouched");
}

/// nginx installed, or a skip message (a failure under CI, which installs it).
fn have_nginx(test: &str) -> bool {
    if Path::new("/usr/sbin/nginx").exists() {
        return true;
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI installs nginx (tests/run-all.sh)"
    );
    eprintln!("skipping {test}: nginx is not installed");
    false
}

/// A site for nginx under `root` (config, pages, temp dirs) on a free port; returns the
/// `privileged-binary-patch-arg` line and the port.
fn nginx_site(root: &Path, page: &str, user_line: &str) -> (String, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::create_dir_all(root.join("nginx-tmp")).unwrap();
    std::fs::write(root.join("www/index.html"), page).unwrap();
    let conf = root.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\n{user_line}\nerror_log stderr;\npid {r}/nginx.pid;\nevents {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {r}/nginx-tmp; proxy_temp_path {r}/nginx-tmp; \
             fastcgi_temp_path {r}/nginx-tmp; uwsgi_temp_path {r}/nginx-tmp; scgi_temp_path {r}/nginx-tmp; \
             server {{ listen 127.0.0.1:{port}; root {r}/www; }} }}\n",
            r = root.display()
        ),
    )
    .unwrap();
    (
        format!(
            "privileged-binary-patch-arg = nginx -g \"daemon off;\" -c {}",
            conf.display()
        ),
        port,
    )
}

#[test]
fn nginx_serves_a_page_as_a_classic_vassal() {
    let test = "nginx_serves_a_page_as_a_classic_vassal";
    if !have_root(test) || !have_nginx(test) {
        return;
    }
    let tmp = open_tempdir();
    let (patch, port) = nginx_site(tmp.path(), "hello from a jailed nginx\n", "");
    let emperor = Emperor::start(tmp.path(), &["--emperor-use-clone", "fs,ipc,pid,uts"]);
    emperor.write("nginx.ini", &format!("[uwsgi]\n{patch}\n"));
    let (_, master) = emperor.running("nginx.ini");
    let body = emperor.wait_for("nginx answers", || http_get(port));
    assert!(body.contains("200 OK"), "{body}");
    assert!(body.contains("hello from a jailed nginx"), "{body}");
    assert_ne!(
        namespace(&master.to_string(), "pid"),
        namespace("self", "pid")
    );

    std::fs::remove_file(emperor.vassals.join("nginx.ini")).unwrap();
    wait_until("every nginx process is gone", PATIENCE, || !alive(master));
    assert!(
        http_get(port).is_none(),
        "nobody listens after the vassal is removed"
    );
}

#[test]
fn nginx_serves_a_page_as_a_tyrant_vassal_owned_by_its_tenant() {
    let test = "nginx_serves_a_page_as_a_tyrant_vassal_owned_by_its_tenant";
    if !have_root(test) || !have_nginx(test) {
        return;
    }
    let tmp = open_tempdir();
    let site = tmp.path().join("alice-site");
    // Workers stay the jail's root: the tenant has no subuid range on this host to map others.
    let (patch, port) = nginx_site(&site, "hello from alice's nginx\n", "user root root;");
    let chown_tree = std::process::Command::new("chown")
        .args(["-R", "20001:20001"])
        .arg(&site)
        .status()
        .unwrap();
    assert!(chown_tree.success());
    let emperor = Emperor::start(
        tmp.path(),
        &["--emperor-tyrant", "--emperor-use-clone", "fs,ipc,pid,uts"],
    );
    let staged = tmp.path().join("alice.ini");
    write(&staged, &format!("[uwsgi]\n{patch}\n"));
    chown(&staged, 20001, 20001);
    std::fs::rename(&staged, emperor.vassals.join("alice.ini")).unwrap();
    let (_, master) = emperor.running("alice.ini");
    let body = emperor.wait_for("alice's nginx answers", || http_get(port));
    assert!(body.contains("hello from alice's nginx"), "{body}");
    for pid in std::iter::once(master).chain(children(master)) {
        assert_eq!(
            status(pid, "Uid"),
            "20001 20001 20001 20001",
            "nginx process {pid} is alice outside its jail"
        );
    }
}

#[test]
fn tyrant_mode_runs_each_vassal_as_its_owner_and_refuses_root_and_owner_changes() {
    if !have_root("tyrant_mode_runs_each_vassal_as_its_owner_and_refuses_root_and_owner_changes") {
        return;
    }
    let tmp = open_tempdir();
    let emperor = Emperor::start(
        tmp.path(),
        &["--emperor-tyrant", "--emperor-use-clone", "fs,ipc,pid,uts"],
    );
    let alice = tmp.path().join("alice.ini");
    write(&alice, &ini("sleep 1000", &[]));
    chown(&alice, 20001, 20001);
    std::fs::rename(&alice, emperor.vassals.join("alice.ini")).unwrap();
    let rooted = tmp.path().join("rooted.ini");
    write(&rooted, &ini("sleep 1000", &[]));
    std::fs::rename(&rooted, emperor.vassals.join("rooted.ini")).unwrap();

    let (runtime, payload) = emperor.running("alice.ini");
    for pid in [runtime, payload] {
        assert_eq!(
            status(pid, "Uid"),
            "20001 20001 20001 20001",
            "outside its jail, the vassal is its owner"
        );
        assert_eq!(status(pid, "Gid"), "20001 20001 20001 20001");
    }
    assert_ne!(
        namespace(&runtime.to_string(), "user"),
        namespace("self", "user"),
        "a user namespace of its own"
    );
    let uid_map = std::fs::read_to_string(format!("/proc/{runtime}/uid_map")).unwrap();
    assert_eq!(
        uid_map.split_whitespace().take(3).collect::<Vec<_>>(),
        ["0", "20001", "1"],
        "jail root is the owner"
    );
    let v = emperor.vassal("alice.ini").unwrap();
    assert_eq!(
        (v["uid"].as_u64(), v["gid"].as_u64()),
        (Some(20001), Some(20001))
    );
    assert_eq!(emperor.stats()["emperor_tyrant"], 1);

    emperor.wait_until("the root-owned config is refused", || {
        emperor
            .log()
            .contains("rooted.ini: refused: owned by uid 0")
    });
    assert!(
        emperor.vassal("rooted.ini").is_none(),
        "a refused config never becomes a vassal"
    );

    chown(&emperor.vassals.join("alice.ini"), 20002, 20002);
    emperor.wait_until("the owner change is refused", || {
        emperor
            .log()
            .contains("owner changed from 20001:20001 to 20002:20002: refused and stopped")
    });
    wait_until("alice's payload is stopped", PATIENCE, || !alive(payload));
    emperor.wait_until("alice's vassal is gone", || {
        emperor.vassal("alice.ini").is_none()
    });
}

#[test]
fn unprivileged_emperor_keeps_only_setuid_setgid_and_runs_a_tyrant_vassal_in_namespaces() {
    if !have_root(
        "unprivileged_emperor_keeps_only_setuid_setgid_and_runs_a_tyrant_vassal_in_namespaces",
    ) {
        return;
    }
    let tmp = open_tempdir();
    let args = [
        &UNPRIVILEGED[..],
        &["--emperor-tyrant", "--emperor-use-clone", "fs,ipc,pid,uts"],
    ];
    let emperor = Emperor::start(tmp.path(), &args.concat());
    assert_eq!(status(emperor.pid, "Uid"), "10000 10000 10000 10000");
    assert_eq!(status(emperor.pid, "Gid"), "10000 10000 10000 10000");
    let setuid_setgid = "00000000000000c0";
    for caps in ["CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(
            status(emperor.pid, caps),
            setuid_setgid,
            "{caps} of the emperor"
        );
    }
    assert_eq!(status(emperor.pid, "CapInh"), "0000000000000000");
    assert_eq!(status(emperor.pid, "CapAmb"), "0000000000000000");

    let config = tmp.path().join("alice.ini");
    write(&config, &ini("sleep 1000", &[]));
    chown(&config, 20001, 20001);
    std::fs::rename(&config, emperor.vassals.join("alice.ini")).unwrap();
    let (runtime, payload) = emperor.running("alice.ini");
    assert_eq!(status(runtime, "Uid"), "20001 20001 20001 20001");
    assert_eq!(status(payload, "Uid"), "20001 20001 20001 20001");
    for ns in ["user", "mnt", "pid", "uts", "ipc"] {
        assert_ne!(
            namespace(&payload.to_string(), ns),
            namespace("self", ns),
            "{ns} namespace"
        );
    }
    assert_eq!(status(payload, "CapEff"), "0000000000000000");

    // The clone server that cloned it runs as the emperor runs, and the runtime is the
    // emperor's child all the same.
    let server = clone_server_of(&emperor);
    assert_eq!(status(server, "Uid"), "10000 10000 10000 10000");
    for caps in ["CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(
            status(server, caps),
            setuid_setgid,
            "{caps} of the clone server"
        );
    }
    assert_eq!(parent(runtime), Some(emperor.pid));
}

/// The emperor's clone server: its one child that is not a runtime.
fn clone_server_of(emperor: &Emperor) -> i32 {
    let servers: Vec<i32> = children(emperor.pid)
        .into_iter()
        .filter(|&pid| cmdline(pid).contains(" clone-server"))
        .collect();
    assert_eq!(servers.len(), 1, "one clone server: {servers:?}");
    servers[0]
}

/// SIGKILL the emperor's clone server and wait until the emperor has reaped it.
fn kill_clone_server(emperor: &Emperor, server: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    emperor.wait_until("the clone server is reaped", || !alive(server));
}

#[test]
fn a_clone_server_clones_user_namespaced_runtimes_and_its_loss_loses_no_vassal() {
    if !have_root("a_clone_server_clones_user_namespaced_runtimes_and_its_loss_loses_no_vassal") {
        return;
    }
    let tmp = open_tempdir();
    let mut emperor = Emperor::start(
        tmp.path(),
        &["--emperor-tyrant", "--emperor-use-clone", "fs,pid"],
    );
    let drop_in = |name: &str| {
        let staged = tmp.path().join(name);
        write(&staged, &ini("sleep 1000", &[]));
        chown(&staged, 20001, 20001);
        std::fs::rename(&staged, emperor.vassals.join(name)).unwrap();
    };
    let server = clone_server_of(&emperor);
    drop_in("first.ini");
    let (first, _) = emperor.running("first.ini");
    assert_eq!(
        parent(first),
        Some(emperor.pid),
        "the runtime is the emperor's child"
    );
    assert_ne!(
        namespace(&first.to_string(), "user"),
        namespace("self", "user")
    );

    // Without its server the emperor clones the runtimes itself.
    kill_clone_server(&emperor, server);
    drop_in("second.ini");
    let (second, payload) = emperor.running("second.ini");
    assert_eq!(parent(second), Some(emperor.pid));
    assert_eq!(status(payload, "Uid"), "20001 20001 20001 20001");
    assert!(
        emperor.log().contains("the clone server is gone"),
        "{}",
        emperor.log()
    );
    assert!(alive(first), "the first vassal was not taken for a stray");

    emperor.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(emperor.wait_exit().success());
    assert!(!alive(first) && !alive(second));
}

/// The scheduler autogroup a process is in ("/autogroup-N nice 0"), when the kernel has them.
fn autogroup(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/autogroup")).ok()
}

#[test]
fn runtimes_stay_in_the_clone_servers_session_and_payloads_lead_their_own() {
    if !have_root("runtimes_stay_in_the_clone_servers_session_and_payloads_lead_their_own") {
        return;
    }
    let tmp = open_tempdir();
    let mut emperor = Emperor::start(tmp.path(), &["--emperor-use-clone", "fs,pid"]);
    let server = clone_server_of(&emperor);
    assert_eq!(
        grouping(server),
        (server, server, 0),
        "the server leads a session with no controlling terminal"
    );
    let mut vassals = Vec::new();
    for name in ["a.ini", "b.ini"] {
        emperor.write(name, &ini("sleep 1000", &[]));
        vassals.push(emperor.running(name));
    }
    for &(runtime, payload) in &vassals {
        // Out of reach of the emperor's terminal (a group of its own in a session without
        // one), and no session of its own: no scheduler autogroup per runtime.
        assert_eq!(grouping(runtime), (runtime, server, 0), "runtime {runtime}");
        assert_eq!(autogroup(runtime), autogroup(server), "runtime {runtime}");
        // The payload still leads a session of its own (DESIGN: no controlling terminal).
        assert_eq!(
            grouping(payload),
            (payload, payload, 0),
            "payload {payload}"
        );
    }

    // Without its server the emperor starts a runtime itself: out of its own session.
    kill_clone_server(&emperor, server);
    emperor.write("c.ini", &ini("sleep 1000", &[]));
    let (runtime, payload) = emperor.running("c.ini");
    assert_eq!(grouping(runtime), (runtime, runtime, 0));
    assert_ne!(grouping(emperor.pid).1, runtime);
    assert_eq!(grouping(payload), (payload, payload, 0));

    emperor.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(emperor.wait_exit().success());
    for (runtime, payload) in vassals.into_iter().chain([(runtime, payload)]) {
        assert!(!alive(runtime) && !alive(payload));
    }
}

#[test]
fn an_emperor_leaves_no_clone_server_behind() {
    if !have_root("an_emperor_leaves_no_clone_server_behind") {
        return;
    }
    let tmp = open_tempdir();
    let mut emperor = Emperor::start(tmp.path(), &["--emperor-use-clone", "fs,pid,user"]);
    let server = clone_server_of(&emperor);
    emperor.write("app.ini", &ini("sleep 1000", &[]));
    let (runtime, _) = emperor.running("app.ini");
    assert_eq!(parent(runtime), Some(emperor.pid));
    emperor.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(emperor.wait_exit().success());
    assert!(!alive(server), "the clone server outlived its emperor");
    assert!(
        !emperor.log().contains("stray"),
        "the server went with its socket, not as a stray: {}",
        emperor.log()
    );
}

#[test]
fn refusals_and_failed_jail_steps_name_the_option_or_syscall_and_leave_others_running() {
    if !have_root(
        "refusals_and_failed_jail_steps_name_the_option_or_syscall_and_leave_others_running",
    ) {
        return;
    }
    let tmp = open_tempdir();
    let emperor = Emperor::start(
        tmp.path(),
        &["--emperor-tyrant", "--emperor-use-clone", "fs,pid"],
    );
    let drop_in = |name: &str, text: &str| {
        let staged = tmp.path().join(name);
        write(&staged, text);
        chown(&staged, 20001, 20001);
        std::fs::rename(&staged, emperor.vassals.join(name)).unwrap();
    };
    drop_in("good.ini", &ini("sleep 1000", &[]));
    let (_, good) = emperor.running("good.ini");

    drop_in("unfiltered.ini", &ini("sleep 1000", &["seccomp = none"]));
    drop_in(
        "escaper.ini",
        &ini("sleep 1000", &["exec-as-emperor = touch /tmp/owned"]),
    );
    drop_in("renamer.ini", &ini("sleep 1000", &["hostname = mine"]));
    let missing = tmp.path().join("no-such-dir");
    drop_in(
        "binder.ini",
        &ini(
            "sleep 1000",
            &[&format!("bind-mount = {}:/mnt", missing.display())],
        ),
    );

    for (file, expected) in [
        (
            "unfiltered.ini",
            "option \"seccomp\": a tenant cannot turn the seccomp filter off",
        ),
        (
            "escaper.ini",
            "option \"exec-as-emperor\": not allowed in tyrant mode",
        ),
        ("renamer.ini", "option \"hostname\": needs a uts namespace"),
        ("binder.ini", "option \"bind-mount\": jail step \"bind "),
    ] {
        emperor.wait_until(&format!("{file} is refused with {expected:?}"), || {
            emperor
                .log()
                .lines()
                .any(|l| l.contains(file) && l.contains(expected))
        });
    }
    assert!(
        emperor.log().contains("mount(MS_BIND)"),
        "the failed syscall is named:\n{}",
        emperor.log()
    );
    for name in ["unfiltered.ini", "escaper.ini", "renamer.ini", "binder.ini"] {
        assert!(
            emperor
                .vassal(name)
                .is_some_and(|v| v["state"] != "running"),
            "{name} never runs"
        );
    }
    assert!(alive(good), "the good vassal's payload is untouched");
    assert_eq!(emperor.running("good.ini").1, good);
}

#[test]
fn tenant_rlimits_are_clamped_to_the_admins_ceilings() {
    if !have_root("tenant_rlimits_are_clamped_to_the_admins_ceilings") {
        return;
    }
    let tmp = open_tempdir();
    let emperor = Emperor::start(
        tmp.path(),
        &[
            "--emperor-tyrant",
            "--vassal-limit-nproc",
            "100",
            "--vassal-max-fd",
            "512",
        ],
    );
    let staged = tmp.path().join("greedy.ini");
    write(
        &staged,
        &ini("sleep 1000", &["limit-nproc = 100000", "max-fd = 64"]),
    );
    chown(&staged, 20001, 20001);
    std::fs::rename(&staged, emperor.vassals.join("greedy.ini")).unwrap();
    let (_, payload) = emperor.running("greedy.ini");
    let limits = std::fs::read_to_string(format!("/proc/{payload}/limits")).unwrap();
    let limit = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().rev().nth(2).unwrap().to_string())
            .unwrap()
    };
    assert_eq!(
        limit("Max processes"),
        "100",
        "the admin's ceiling wins over a higher request:\n{limits}"
    );
    assert_eq!(
        limit("Max open files"),
        "64",
        "a lower request is honoured:\n{limits}"
    );
    assert_eq!(
        limit("Max core file size"),
        "0",
        "tenants dump no cores by default:\n{limits}"
    );
}

#[test]
fn a_planted_symlink_fails_the_mount_instead_of_redirecting_it() {
    if !have_root("a_planted_symlink_fails_the_mount_instead_of_redirecting_it") {
        return;
    }
    let tmp = open_tempdir();
    let source = tmp.path().join("source");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(source.join("marker"), "x").unwrap();
    let planted = tmp.path().join("target");
    std::os::unix::fs::symlink(&elsewhere, &planted).unwrap();
    let emperor = Emperor::start(tmp.path(), &["--emperor-use-clone", "fs"]);
    emperor.write(
        "app.ini",
        &ini(
            "sleep 1000",
            &[&format!(
                "bind-mount = {}:{}",
                source.display(),
                planted.display()
            )],
        ),
    );
    emperor.wait_until("the vassal fails on the symlink", || {
        emperor.log().contains("openat2(RESOLVE_NO_SYMLINKS)")
    });
    assert!(emperor.log().contains("ELOOP"), "{}", emperor.log());
    assert!(
        !elsewhere.join("marker").exists(),
        "nothing was mounted through the link"
    );
}

#[test]
fn check_shows_the_jail_and_refuses_what_tyrant_mode_refuses() {
    let tmp = open_tempdir();
    let config = write(
        &tmp.path().join("app.ini"),
        &ini(
            "sleep 1000",
            &["uid = 20001", "cap = net_bind_service", "hostname = h"],
        ),
    );
    let out = std::process::Command::new(BIN)
        .args(["check", "--emperor-use-clone", "fs,pid,uts"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "namespaces: fs,pid,uts",
        "set hostname h",
        "mount proc at /proc",
        "drop: uid 20001",
        "caps net_bind_service",
        "seccomp: default",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }
    let unfiltered = write(
        &tmp.path().join("unfiltered.ini"),
        &ini("sleep 1000", &["seccomp = none"]),
    );
    let out = std::process::Command::new(BIN)
        .args(["check", "--emperor-tyrant"])
        .arg(&unfiltered)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "unfiltered.ini:2: option \"seccomp\": a tenant cannot turn the seccomp filter off"
        ),
        "{err}"
    );
}
