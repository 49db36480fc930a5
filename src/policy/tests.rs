use super::*;
use crate::config::Origin;

fn config(lines: &[(&str, &str)]) -> Config {
    let entries = lines
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Entry {
            key: key.to_string(),
            value: value.to_string(),
            origin: Origin {
                file: PathBuf::from("app.ini"),
                line: Some(i + 2),
            },
        })
        .collect();
    Config {
        path: PathBuf::from("app.ini"),
        entries,
    }
}

fn tyrant() -> JailContext {
    JailContext {
        tyrant: true,
        cloned: Namespaces::USER,
        ..JailContext::default()
    }
}

#[test]
fn options_that_act_as_the_emperor_are_refused_to_tenants_by_name() {
    let err = plan(&config(&[("exec-as-emperor", "touch /x")]), &tyrant()).unwrap_err();
    assert_eq!(err.to_string(), "app.ini:2: option \"exec-as-emperor\": not allowed in tyrant mode: it would act on the host as the emperor");
    assert!(
        plan(
            &config(&[("exec-as-emperor", "touch /x")]),
            &JailContext::default()
        )
        .is_ok(),
        "classic mode trusts its configs"
    );
}

#[test]
fn a_tenant_cannot_turn_seccomp_off_but_an_admin_can() {
    let err = plan(&config(&[("seccomp", "none")]), &tyrant()).unwrap_err();
    assert_eq!(err.option, "seccomp");
    assert_eq!(
        plan(&config(&[("seccomp", "none")]), &JailContext::default())
            .unwrap()
            .seccomp,
        Profile::Unconfined
    );
    assert_eq!(
        plan(&config(&[]), &tyrant()).unwrap().seccomp,
        Profile::Default
    );
}

#[test]
fn hostname_needs_a_uts_namespace() {
    let err = plan(&config(&[("hostname", "h")]), &JailContext::default()).unwrap_err();
    assert!(err.reason.contains("uts namespace"), "{err}");
    let context = JailContext {
        emperor_namespaces: "uts".parse().unwrap(),
        cloned: "uts".parse().unwrap(),
        ..Default::default()
    };
    let steps = plan(&config(&[("hostname", "h")]), &context).unwrap().setup;
    assert!(steps.contains(&SetupItem::Jail(Step::SetHostname("h".into()))));
}

#[test]
fn net_is_entered_by_the_runtime_after_the_clone_and_lo_comes_up() {
    let use_clone: Namespaces = "fs,net,pid".parse().unwrap();
    let context = JailContext {
        emperor_namespaces: use_clone,
        cloned: cloned_namespaces(use_clone, false),
        ..Default::default()
    };
    let steps = plan(&config(&[]), &context).unwrap().setup;
    assert_eq!(steps[0], SetupItem::Jail(Step::Unshare(Namespaces::NET)));
    assert_eq!(steps[1], SetupItem::Jail(Step::LoopbackUp));
    assert!(
        steps.contains(&SetupItem::Jail(Step::MountProc(PathBuf::from("/proc")))),
        "pid 1 of a new pid namespace gets its /proc"
    );
}

#[test]
fn a_vassals_own_pid_namespace_goes_to_its_payload_and_needs_fs() {
    let err = plan(&config(&[("unshare", "pid")]), &JailContext::default()).unwrap_err();
    assert!(err.reason.contains("mount namespace"), "{err}");
    let p = plan(&config(&[("unshare", "fs,pid")]), &JailContext::default()).unwrap();
    assert_eq!(p.payload_namespaces, Namespaces::PID);
    assert!(p.payload_mounts_proc);
}

#[test]
fn mounts_go_under_the_new_root_and_the_pivot_comes_last() {
    let context = JailContext {
        emperor_namespaces: Namespaces::MOUNT,
        cloned: Namespaces::MOUNT,
        ..Default::default()
    };
    let p = plan(
        &config(&[
            ("pivot-root", "/srv/root"),
            ("bind-mount-ro", "/usr"),
            ("tmpfs", "/tmp:16M"),
        ]),
        &context,
    )
    .unwrap();
    let mounts: Vec<Step> = p
        .setup
        .into_iter()
        .filter_map(|i| {
            if let SetupItem::Jail(s) = i {
                Some(s)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        &mounts[mounts.len() - 4..],
        &[
            Step::MakeMountsPrivate,
            Step::BindMount {
                source: "/usr".into(),
                target: "/srv/root/usr".into(),
                read_only: true,
                nosuid_nodev: false
            },
            Step::Tmpfs {
                target: "/srv/root/tmp".into(),
                size: Some(16 << 20)
            },
            Step::PivotRoot("/srv/root".into()),
        ]
    );
}

#[test]
fn tenant_limits_are_the_lower_of_theirs_and_the_admins() {
    let mut context = tyrant();
    context.ceilings.processes = Some(100);
    let p = plan(
        &config(&[("limit-nproc", "5000"), ("max-fd", "64")]),
        &context,
    )
    .unwrap();
    let limit = |r| {
        p.drop
            .rlimits
            .iter()
            .find(|l| l.resource == r)
            .map(|l| l.hard)
    };
    assert_eq!(limit(libc::RLIMIT_NPROC), Some(100));
    assert_eq!(limit(libc::RLIMIT_NOFILE), Some(64));
    assert_eq!(limit(libc::RLIMIT_CORE), Some(0));
}

#[test]
fn cgroup_limits_need_a_cgroup_from_the_emperor() {
    let err = plan(&config(&[("memory-max", "64M")]), &JailContext::default()).unwrap_err();
    assert!(err.reason.contains("cgroup v2"), "{err}");
    let context = JailContext {
        cgroup_fd: Some(4),
        ..Default::default()
    };
    assert_eq!(
        plan(&config(&[("memory-max", "64M")]), &context)
            .unwrap()
            .cgroup
            .memory_max,
        Some(64 << 20)
    );
}

#[test]
fn cloned_namespaces_leave_net_to_the_runtime() {
    let all: Namespaces = "fs,net,ipc,pid,uts".parse().unwrap();
    assert_eq!(cloned_namespaces(all, false).to_string(), "fs,ipc,pid,uts");
    assert_eq!(
        cloned_namespaces(all, true).to_string(),
        "fs,ipc,pid,uts,user"
    );
}

#[test]
fn socket_addresses_parse_as_uwsgi_writes_them() {
    let tcp = |text: &str| SocketAddress::Tcp(text.parse().unwrap());
    assert_eq!(parse_socket_address(":8080"), Ok(tcp("0.0.0.0:8080")));
    assert_eq!(
        parse_socket_address("127.0.0.1:80"),
        Ok(tcp("127.0.0.1:80"))
    );
    assert_eq!(
        parse_socket_address("localhost:81"),
        Ok(tcp("127.0.0.1:81"))
    );
    assert_eq!(parse_socket_address("[::1]:82"), Ok(tcp("[::1]:82")));
    assert_eq!(
        parse_socket_address("/run/app.sock"),
        Ok(SocketAddress::Unix("/run/app.sock".into()))
    );
    assert_eq!(
        parse_socket_address("@app"),
        Ok(SocketAddress::Abstract("app".into()))
    );
    assert!(parse_socket_address("127.0.0.1:http").is_err());
    assert!(parse_socket_address("example.com:80").is_err());
    assert!(parse_socket_address("@").is_err());
}

#[test]
fn tyrant_ports_are_the_admins_list() {
    let list: PortList = "8000-8999, 9090".parse().unwrap();
    assert!(list.contains(8000) && list.contains(8999) && list.contains(9090));
    assert!(!list.contains(7999) && !list.contains(9000) && !list.contains(80));
    assert_eq!(list.to_string(), "8000-8999,9090");
    assert!("9000-8000".parse::<PortList>().is_err());
    assert!("http".parse::<PortList>().is_err());
    assert_eq!("".parse::<PortList>(), Ok(PortList::default()));
}

#[test]
fn a_tyrant_may_bind_only_listed_tcp_ports() {
    let mut context = tyrant();
    context.tyrant_ports = "9000".parse().unwrap();
    let ok = config(&[("socket", "127.0.0.1:9000"), ("http-socket", "/tmp/x.sock")]);
    assert_eq!(sockets(&ok, &context).unwrap().len(), 2);
    let denied = config(&[("shared-socket", ":80")]);
    let error = sockets(&denied, &context).unwrap_err();
    assert_eq!(error.option, "shared-socket");
    assert!(error.reason.contains("port 80"), "{error}");
    assert!(error.reason.contains("--emperor-tyrant-ports"), "{error}");
    // Classic mode: any port.
    assert!(sockets(&denied, &JailContext::default()).is_ok());
}

#[test]
fn the_on_demand_socket_comes_first_and_obeys_the_tyrant_ports() {
    let mut context = tyrant();
    context.tyrant_ports = "9000".parse().unwrap();
    let ok = config(&[
        ("socket", "/tmp/own.sock"),
        ("on-demand-socket", "127.0.0.1:9000"),
        ("idle", "2.5"),
    ]);
    let specs = sockets(&ok, &context).unwrap();
    assert_eq!(specs[0].option, "on-demand-socket");
    assert_eq!(specs[1].option, "socket");
    let od = on_demand(&ok, &context).unwrap().unwrap();
    assert_eq!(od.idle, Some(std::time::Duration::from_millis(2500)));
    assert_eq!(od.socket.value, "127.0.0.1:9000");

    let denied = config(&[("on-demand-socket", ":8080")]);
    let error = on_demand(&denied, &context).unwrap_err();
    assert_eq!(error.option, "on-demand-socket");
    assert!(
        error
            .to_string()
            .starts_with("app.ini:2: option \"on-demand-socket\": port 8080"),
        "{error}"
    );
    assert!(
        on_demand(&denied, &JailContext::default()).is_ok(),
        "classic: any port"
    );
}

#[test]
fn idle_must_be_positive_seconds_and_one_on_demand_socket_is_the_limit() {
    let bad = config(&[("on-demand-socket", "@x"), ("idle", "soon")]);
    assert_eq!(
        on_demand(&bad, &JailContext::default()).unwrap_err().option,
        "idle"
    );
    let zero = config(&[("on-demand-socket", "@x"), ("idle", "0")]);
    assert!(on_demand(&zero, &JailContext::default()).is_err());
    let two = config(&[("on-demand-socket", "@x"), ("on-demand-socket", "@y")]);
    let error = on_demand(&two, &JailContext::default()).unwrap_err();
    assert!(error.reason.contains("one on-demand socket"), "{error}");
    let plain = config(&[("idle", "5")]);
    assert_eq!(on_demand(&plain, &JailContext::default()), Ok(None));
}
