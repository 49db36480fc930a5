//! pg://: a fleet's vassal table in a real PostgreSQL server (a throwaway cluster per test).
//! Rows added, changed and deleted start, reload and stop vassals; a database that goes away
//! stops nothing; two emperors on one table run the same vassals.

mod common;
#[path = "common/postgres.rs"]
mod pg;

use common::*;
use pg::PgServer;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const TABLE: &str = "
    CREATE TABLE vassals (name text PRIMARY KEY, config text, ts bigint, uid int, gid int);
    CREATE FUNCTION vassals_notify() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN PERFORM pg_notify('vassals_changed', ''); RETURN NULL; END $$;
    CREATE TRIGGER vassals_changed AFTER INSERT OR UPDATE OR DELETE ON vassals
        FOR EACH STATEMENT EXECUTE FUNCTION vassals_notify();";

/// `pg://CONNINFO;QUERY[;CHANNEL]` over the test table.
fn spec(server: &PgServer, listen: bool) -> String {
    let channel = if listen { ";vassals_changed" } else { "" };
    format!(
        "pg://{};SELECT name, config, ts, uid, gid FROM vassals{channel}",
        server.conninfo()
    )
}

/// A throwaway server with the test table, and an emperor following it.
fn server_and_emperor(
    test: &str,
    listen: bool,
    freq: &str,
) -> Option<(PgServer, tempfile::TempDir, Emperor)> {
    let server = PgServer::start(test)?;
    server.sql(TABLE);
    let tmp = tempfile::tempdir().unwrap();
    let emperor = emperor_on(tmp.path(), &spec(&server, listen), freq);
    Some((server, tmp, emperor))
}

fn emperor_on(root: &std::path::Path, spec: &str, freq: &str) -> Emperor {
    emperor_with(root, spec, freq, &[])
}

fn emperor_with(root: &std::path::Path, spec: &str, freq: &str, extra: &[&str]) -> Emperor {
    let mut args = vec![
        "--emperor".into(),
        spec.into(),
        "--emperor-freq".into(),
        freq.into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Emperor::launch(
        root,
        Options {
            args,
            ..Options::default()
        },
    )
}

fn upsert(server: &PgServer, name: &str, command: &str, ts: i64) {
    let mut client = server.client();
    client
        .execute(
            "INSERT INTO vassals (name, config, ts) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET config = $2, ts = $3",
            &[&name, &ini(command, &[]), &ts],
        )
        .unwrap();
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn rows_inserted_updated_and_deleted_start_reload_and_stop_vassals() {
    // A long period: only LISTEN/NOTIFY can make the emperor see the changes in time.
    let Some((server, _tmp, emperor)) = server_and_emperor("pg rows", true, "3600") else {
        return;
    };

    let inserted = Instant::now();
    upsert(&server, "app.ini", "sleep 1000", 100);
    let (runtime, payload) = emperor.running("app.ini");
    eprintln!("insert -> payload running: {:?}", inserted.elapsed());
    emperor.wait_exec(payload, "sleep 1000");
    // The config came through a sealed memfd, named after the monitor and the row.
    let runtime_cmdline = cmdline(runtime);
    assert!(
        runtime_cmdline.contains(&format!(
            "--config-fd 6 pg://127.0.0.1:{}/postgres/app.ini",
            server.port
        )),
        "{runtime_cmdline}"
    );
    let fd6 = std::fs::read_link(format!("/proc/{runtime}/fd/6")).unwrap();
    assert!(
        fd6.to_string_lossy().starts_with("/memfd:app.ini"),
        "{fd6:?}"
    );

    // A new time with a new config: reloaded in place, on the new text.
    upsert(&server, "app.ini", "sleep 2000", 200);
    let (runtime_after, new_payload) = emperor.running_other_than("app.ini", payload);
    assert_eq!(runtime_after, runtime, "a reload keeps the runtime");
    emperor.wait_exec(new_payload, "sleep 2000");
    assert!(!alive(payload));

    server.sql("DELETE FROM vassals WHERE name = 'app.ini'");
    emperor.wait_until("the deleted row's vassal is gone", || {
        emperor.vassal("app.ini").is_none()
    });
    wait_until("the payload is dead", PATIENCE, || !alive(new_payload));
    assert!(!alive(runtime));
}

#[test]
fn rows_that_cannot_be_read_are_reported_and_change_nothing() {
    let Some((server, _tmp, emperor)) = server_and_emperor("pg bad rows", true, "3600") else {
        return;
    };
    upsert(&server, "good.ini", "sleep 1000", 1);
    let (_, good) = emperor.running("good.ini");

    server.sql(
        "INSERT INTO vassals VALUES ('../escape.ini', '[uwsgi]', 1, NULL, NULL);
         UPDATE vassals SET ts = NULL WHERE name = 'good.ini';",
    );
    emperor.wait_until("the bad rows are reported", || {
        let log = emperor.log();
        log.contains("row \"../escape.ini\": vassal name \"../escape.ini\": must not contain '/'")
            && log.contains("row \"good.ini\": the modification time is NULL: left as it was")
    });
    assert_eq!(emperor.vassal_names(), names(&["good.ini"]));
    assert!(alive(good), "an unreadable row leaves its vassal running");
}

#[test]
fn a_database_that_goes_away_stops_nothing_and_changes_apply_when_it_is_back() {
    let Some((mut server, _tmp, emperor)) = server_and_emperor("pg away", true, "1") else {
        return;
    };
    upsert(&server, "a.ini", "sleep 1000", 1);
    upsert(&server, "b.ini", "sleep 1000", 1);
    let (_, a) = emperor.running("a.ini");
    let (_, b) = emperor.running("b.ini");

    server.stop();
    emperor.wait_until("the emperor retried the database twice", || {
        emperor.log().matches("the vassals keep running").count() >= 2
    });
    assert!(alive(a) && alive(b), "a failed query stopped a vassal");
    assert_eq!(emperor.vassal_names(), names(&["a.ini", "b.ini"]));

    server.restart();
    server.sql("DELETE FROM vassals WHERE name = 'a.ini'");
    upsert(&server, "c.ini", "sleep 1000", 1);
    emperor.wait_until("the emperor resynchronised", || {
        emperor.vassal_names() == names(&["b.ini", "c.ini"])
    });
    emperor.running("c.ini");
    wait_until("a's payload is gone", PATIENCE, || !alive(a));
    assert!(alive(b), "b was never touched");
    assert_eq!(emperor.running("b.ini").1, b);
}

#[test]
fn two_emperors_on_one_table_run_the_same_vassals() {
    let Some(server) = PgServer::start("pg fleet") else {
        return;
    };
    server.sql(TABLE);
    let (tmp1, tmp2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let spec = spec(&server, true);
    let first = emperor_on(tmp1.path(), &spec, "2");
    let second = emperor_on(tmp2.path(), &spec, "2");

    for (i, name) in ["w1.ini", "w2.ini", "w3.ini", "w4.ini"].iter().enumerate() {
        upsert(&server, name, "sleep 1000", i as i64);
    }
    server.sql("DELETE FROM vassals WHERE name = 'w2.ini'");
    upsert(&server, "w3.ini", "sleep 2000", 99);
    let expected = names(&["w1.ini", "w3.ini", "w4.ini"]);
    for emperor in [&first, &second] {
        emperor.wait_until("the emperor follows the table", || {
            emperor.vassal_names() == expected
        });
        let (_, payload) = emperor.wait_for("w3 runs its new config", || {
            let (runtime, payload) = emperor.running("w3.ini");
            (cmdline(payload) == "sleep 2000").then_some((runtime, payload))
        });
        assert_ne!(payload, 0);
        for name in &expected {
            emperor.running(name);
        }
    }
}

#[test]
fn polling_without_notifications_follows_the_table_too() {
    let Some((server, _tmp, emperor)) = server_and_emperor("pg poll", false, "1") else {
        return;
    };
    upsert(&server, "p.ini", "sleep 1000", 1);
    let (_, payload) = emperor.running("p.ini");
    upsert(&server, "p.ini", "sleep 2000", 2);
    let (_, new) = emperor.running_other_than("p.ini", payload);
    emperor.wait_exec(new, "sleep 2000");
}

#[test]
fn tyrant_mode_runs_a_row_as_its_uid_and_refuses_root_and_missing_ids() {
    if !have_root("pg tyrant") {
        return;
    }
    let Some(server) = PgServer::start("pg tyrant") else {
        return;
    };
    server.sql(TABLE);
    let tmp = open_tempdir();
    let emperor = Emperor::launch(
        tmp.path(),
        Options {
            args: vec![
                "--emperor".into(),
                spec(&server, true),
                "--emperor-tyrant".into(),
            ],
            ..Options::default()
        },
    );
    let config = ini("sleep 1000", &[]).replace('\'', "''");
    server.sql(&format!(
        "INSERT INTO vassals VALUES ('tenant.ini', '{config}', 1, 3001, 3001),
                                    ('root.ini', '{config}', 1, 0, 0),
                                    ('nobody.ini', '{config}', 1, NULL, NULL);"
    ));
    let (runtime, payload) = emperor.running("tenant.ini");
    let uid_line = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned()
    };
    assert_eq!(uid_line(runtime), "3001");
    assert_eq!(uid_line(payload), "3001");
    emperor.wait_until("root and missing ids are refused", || {
        let log = emperor.log();
        log.contains("root.ini: refused: owned by uid 0 gid 0: tyrant mode refuses root (0)")
            && log.contains("nobody.ini: refused: no uid and gid")
    });
    assert_eq!(emperor.vassal_names(), names(&["tenant.ini"]));
}

/// Not a test of behaviour: how many vassals and changes per second one server serves, for
/// docs/fleet.md. `cargo test --release --test pg_monitor -- --ignored --nocapture`.
/// "seen": the emperor has every row in its table (adds) or has sent every reload (changes),
/// which is the store's and the monitor's part; "running": every payload runs again, which
/// adds the spawns and payload restarts.
#[test]
#[ignore]
fn measure_vassals_and_changes_per_second() {
    let Some(server) = PgServer::start("pg measure") else {
        return;
    };
    server.sql(TABLE);
    let tmp = tempfile::tempdir().unwrap();
    // Spawns unthrottled: the store's pace is measured, not the throttle's.
    let emperor = emperor_with(
        tmp.path(),
        &spec(&server, true),
        "60",
        &["--emperor-throttle", "0"],
    );
    let count: usize = std::env::var("PG_MEASURE_VASSALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let patience = Duration::from_secs(300);
    let counted = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        let stats = emperor.stats();
        stats["vassals"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| pred(v))
            .count()
    };
    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    let start = Instant::now();
    server.sql(&format!(
        "INSERT INTO vassals SELECT 'v' || i || '.ini', '{}', 1 FROM generate_series(1, {count}) i",
        ini("sleep 1000", &[])
    ));
    emperor.wait_until_for("every row is seen", patience, || {
        counted(&|_| true) == count
    });
    let seen = start.elapsed();
    emperor.wait_until_for("every row runs", patience, || {
        counted(&|v| v["state"] == "running") == count
    });
    let running = start.elapsed();
    eprintln!(
        "{count} rows inserted: seen after {seen:?} ({:.0}/s), running after {running:?} ({:.0}/s)",
        rate(seen),
        rate(running)
    );
    let start = Instant::now();
    server.sql("UPDATE vassals SET ts = 2");
    emperor.wait_until_for("every change is seen", patience, || {
        counted(&|v| v["respawns"] == 1) == count
    });
    let seen = start.elapsed();
    emperor.wait_until_for("every row reloaded", patience, || {
        counted(&|v| v["state"] == "running" && v["respawns"] == 1) == count
    });
    let running = start.elapsed();
    eprintln!(
        "{count} rows updated: seen after {seen:?} ({:.0}/s), running after {running:?} ({:.0}/s)",
        rate(seen),
        rate(running)
    );
}

/// Column 6: the row's on-demand socket. The emperor holds it and starts the vassal on the
/// first connection, which its payload serves from the inherited socket.
#[test]
fn a_rows_socket_column_makes_an_on_demand_vassal() {
    let Some(server) = PgServer::start("pg on demand") else {
        return;
    };
    server.sql(
        "CREATE TABLE od (name text PRIMARY KEY, config text, ts bigint, uid int, gid int, socket text);",
    );
    let (tmp, script) = site(
        "import socket\ns = socket.socket(fileno=3)\nwhile True:\n    c, _ = s.accept()\n    c.recv(4096)\n    c.sendall(b'HTTP/1.0 200 OK\\r\\n\\r\\nfrom the table\\n')\n    c.close()\n",
    );
    let port = free_port();
    let spec = format!(
        "pg://{};SELECT name, config, ts, uid, gid, socket FROM od",
        server.conninfo()
    );
    let emperor = emperor_on(tmp.path(), &spec, "1");
    let config = ini(&format!("/usr/bin/python3 {}", script.display()), &[]);
    let socket = format!("127.0.0.1:{port}");
    server
        .client()
        .execute(
            "INSERT INTO od VALUES ('web.ini', $1, 1, NULL, NULL, $2)",
            &[&config, &socket],
        )
        .unwrap();
    emperor.wait_until("web.ini waits for a connection", || {
        emperor
            .vassal("web.ini")
            .is_some_and(|v| v["state"] == "on-demand" && v["on_demand"] == socket.as_str())
    });
    assert_eq!(
        emperor.vassal("web.ini").unwrap()["pid"],
        -1,
        "not started yet"
    );
    let body = http_get(port).expect("the first request is served");
    assert!(body.contains("from the table"), "{body}");
    emperor.running("web.ini");
}

#[test]
fn an_upgrade_in_place_keeps_the_fleets_vassals_and_misses_no_row_change() {
    // A long period: only the new emperor's first look at the table can find a row changed
    // while the old one was being replaced (its NOTIFY may reach neither).
    let Some((server, _tmp, emperor)) = server_and_emperor("pg upgrade", true, "3600") else {
        return;
    };
    upsert(&server, "kept.ini", "sleep 1000", 100);
    upsert(&server, "changed.ini", "sleep 1000", 100);
    let kept = emperor.running("kept.ini");
    let changed = emperor.running("changed.ini");
    emperor.signal(nix::sys::signal::Signal::SIGUSR2);
    upsert(&server, "changed.ini", "sleep 2000", 200);
    upsert(&server, "new.ini", "sleep 1000", 100);
    emperor.wait_until("the upgrade is done", || {
        emperor.try_stats().is_some_and(|s| s["upgrades"] == 1)
    });
    let (runtime, payload) = emperor.running_other_than("changed.ini", changed.1);
    assert_eq!(runtime, changed.0, "reloaded in its jail");
    emperor.wait_exec(payload, "sleep 2000");
    emperor.running("new.ini");
    assert_eq!(
        emperor.running("kept.ini"),
        kept,
        "an unchanged row's vassal is untouched"
    );
    // The new emperor's monitor started from the old one's view: no row was news to it.
    let log = emperor.log();
    assert_eq!(
        log.matches("new config vassal=kept.ini").count(),
        1,
        "{log}"
    );
}
