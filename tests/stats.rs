//! The stats server: one JSON document per connection, over a UNIX socket or TCP.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

fn assert_u64(doc: &Value, key: &str) {
    assert!(
        doc[key].is_u64(),
        "{key} should be an unsigned integer: {doc}"
    );
}

#[test]
fn stats_document_has_every_field_with_its_type() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    emperor.write("app.ini", &ini("sleep 1000", &[]));
    let (runtime, _) = emperor.running("app.ini");

    let doc = emperor.stats();
    assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["pid"], emperor.pid);
    assert_eq!(doc["uid"], nix::unistd::getuid().as_raw());
    assert_eq!(doc["gid"], nix::unistd::getgid().as_raw());
    assert_eq!(
        std::fs::canonicalize(doc["cwd"].as_str().unwrap()).unwrap(),
        std::fs::canonicalize(tmp.path()).unwrap()
    );
    assert_eq!(
        doc["emperor"],
        serde_json::json!([emperor.vassals.display().to_string()])
    );
    assert_eq!(doc["emperor_tyrant"], 0);
    assert_u64(&doc, "throttle_level");
    assert_u64(&doc, "throttle_level_ms");
    assert_eq!(doc["blacklist"], serde_json::json!([]));
    assert_eq!(
        doc["totals"],
        serde_json::json!({"vassals": 1, "running": 1, "blacklisted": 0, "respawns": 0})
    );

    let vassals = doc["vassals"].as_array().unwrap();
    assert_eq!(vassals.len(), 1);
    let v = &vassals[0];
    assert_eq!(v["id"], "app.ini");
    assert_eq!(v["name"], "app.ini");
    assert_eq!(
        v["config"],
        emperor.vassals.join("app.ini").display().to_string()
    );
    assert_eq!(v["pid"], runtime);
    assert_eq!(v["state"], "running");
    assert_eq!(v["monitor"], emperor.vassals.display().to_string());
    // uWSGI's fields keep uWSGI's types (0/1); ours are booleans.
    for key in ["loyal", "ready", "accepting"] {
        assert!(v[key] == 0 || v[key] == 1, "{key}: {v}");
    }
    assert!(v["blacklisted"].is_boolean(), "{v}");
    assert_eq!(v["ready"], 1, "the runtime reported its payload started");
    assert_eq!(v["blacklisted"], false);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for key in ["born", "last_mod", "first_run", "last_run", "last_ready"] {
        let t = v[key].as_u64().unwrap_or_else(|| panic!("{key}: {v}"));
        assert!(t + 60 > now && t <= now + 1, "{key} = {t}, now {now}");
    }
    for key in [
        "last_heartbeat",
        "last_loyal",
        "last_accepting",
        "uid",
        "gid",
        "respawns",
        "throttle",
        "cursed",
        "zerg",
    ] {
        assert_u64(v, key);
    }
    assert_eq!(v["uid"], nix::unistd::getuid().as_raw());
    assert_eq!(v["last_exit_status"], Value::Null, "it never exited");
}

#[test]
fn stats_follow_loyalty_and_accepting() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    // Byte 5 (octal 005): "accepting"; loyal after 0.2 s up.
    emperor.write(
        "app.ini",
        &ini(
            r#"sh -c 'printf "\005" >&3; exec sleep 1000'"#,
            &["loyal-after = 0.2"],
        ),
    );
    emperor.running("app.ini");
    emperor.wait_until("accepting and loyal", || {
        emperor
            .vassal("app.ini")
            .is_some_and(|v| v["accepting"] == 1 && v["loyal"] == 1)
    });
    let v = emperor.vassal("app.ini").unwrap();
    assert!(v["last_accepting"].as_u64().unwrap() > 0);
    assert!(v["last_loyal"].as_u64().unwrap() > 0);
}

#[test]
fn stats_are_served_over_tcp_too() {
    let tmp = tempfile::tempdir().unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let emperor = Emperor::launch(
        tmp.path(),
        Options {
            stats_addr: Some(addr.clone()),
            ..Options::default()
        },
    );
    emperor.write("app.ini", &ini("sleep 1000", &[]));
    let (runtime, _) = emperor.running("app.ini");

    let doc = emperor.stats();
    assert_eq!(doc["pid"], emperor.pid);
    assert_eq!(doc["vassals"][0]["pid"], runtime);
}

#[test]
fn stats_command_prints_the_document() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    emperor.write("app.ini", &ini("sleep 1000", &[]));
    emperor.running("app.ini");

    let out = Command::new(BIN)
        .args(["stats", &emperor.stats_addr])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["pid"], emperor.pid);
    assert_eq!(doc["vassals"][0]["name"], "app.ini");

    let out = Command::new(BIN)
        .args([
            "stats",
            &tmp.path().join("nothing.sock").display().to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing.sock"));
}

#[test]
fn unix_stats_socket_is_removed_when_the_emperor_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let mut emperor = Emperor::start(tmp.path(), &[]);
    assert!(std::path::Path::new(&emperor.stats_addr).exists());
    emperor.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(emperor.wait_exit().code(), Some(0));
    assert!(!std::path::Path::new(&emperor.stats_addr).exists());
}
