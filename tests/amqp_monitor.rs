//! amqp://: two emperors consume the `uwsgi.emperor` fanout exchange of a real RabbitMQ
//! broker; messages of all three kinds (a path, an http:// URL, a config under its name)
//! drive both; a broker restart loses and duplicates nothing.

mod common;
#[path = "common/rabbitmq.rs"]
mod rabbitmq;

use common::*;
use rabbitmq::Broker;
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, Mutex};

/// A tiny HTTP server for configs: path -> (status, body), changeable while it runs.
#[derive(Clone)]
struct ConfigServer {
    port: u16,
    pages: Arc<Mutex<HashMap<String, (u16, String)>>>,
}

impl ConfigServer {
    fn start() -> ConfigServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = ConfigServer {
            port: listener.local_addr().unwrap().port(),
            pages: Arc::default(),
        };
        let pages = server.pages.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut request = String::new();
                let mut reader = BufReader::new(&stream);
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                let path = request.split_whitespace().nth(1).unwrap_or("").to_owned();
                let (status, body) = pages
                    .lock()
                    .unwrap()
                    .get(&path)
                    .cloned()
                    .unwrap_or((404, String::new()));
                let _ = write!(
                    &stream,
                    "HTTP/1.0 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        server
    }

    fn serve(&self, path: &str, status: u16, body: &str) {
        self.pages
            .lock()
            .unwrap()
            .insert(path.to_owned(), (status, body.to_owned()));
    }
}

fn connected(emperor: &Emperor, times: usize) {
    emperor.wait_until("the emperor consumes the exchange", || {
        emperor
            .log()
            .matches("connected, consuming uwsgi.emperor")
            .count()
            >= times
    });
}

#[test]
fn messages_of_every_kind_drive_two_emperors_and_a_broker_restart_loses_nothing() {
    let Some(mut broker) = Broker::start("amqp") else {
        return;
    };
    let http = ConfigServer::start();
    let shared = tempfile::tempdir().unwrap();
    let (tmp1, tmp2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let spec = format!("amqp://guest:guest@127.0.0.1:{}", broker.port);
    let fleet: Vec<Emperor> = [&tmp1, &tmp2]
        .iter()
        .map(|tmp| {
            Emperor::launch(
                tmp.path(),
                Options {
                    args: vec![
                        "--emperor".into(),
                        spec.clone(),
                        "--emperor-freq".into(),
                        "1".into(),
                    ],
                    ..Options::default()
                },
            )
        })
        .collect();
    // A fanout exchange keeps nothing for a queue not bound yet.
    for emperor in &fleet {
        connected(emperor, 1);
        assert!(
            !emperor.log().contains("guest:guest"),
            "the password is shown"
        );
    }

    // 1. A path: spawn, and every new message reloads.
    let file = write(&shared.path().join("path.ini"), &ini("sleep 1000", &[]));
    let path = file.display().to_string();
    broker.publish("", &path);
    let first: Vec<i32> = fleet.iter().map(|e| e.running(&path).1).collect();
    broker.publish("", &path);
    for (emperor, old) in fleet.iter().zip(&first) {
        emperor.running_other_than(&path, *old);
    }

    // 2. A config under its name: spawn, reload on the new text, empty body removes.
    broker.publish("direct.ini", &ini("sleep 1000", &[]));
    let old: Vec<i32> = fleet.iter().map(|e| e.running("direct.ini").1).collect();
    broker.publish("direct.ini", &ini("sleep 2000", &[]));
    for (emperor, old) in fleet.iter().zip(&old) {
        let (_, new) = emperor.running_other_than("direct.ini", *old);
        emperor.wait_exec(new, "sleep 2000");
    }
    broker.publish("direct.ini", "");
    for emperor in &fleet {
        emperor.wait_until("direct.ini is removed", || {
            emperor.vassal("direct.ini").is_none()
        });
    }

    // 3. An http:// URL: 200 spawns its text, any other status removes.
    http.serve("/confs/web.ini", 200, &ini("sleep 1000", &[]));
    let url = format!("http://127.0.0.1:{}/confs/web.ini", http.port);
    broker.publish("", &url);
    for emperor in &fleet {
        emperor.running("web.ini");
    }
    http.serve("/confs/web.ini", 404, "");
    broker.publish("", &url);
    for emperor in &fleet {
        emperor.wait_until("a 404 removes web.ini", || {
            emperor.vassal("web.ini").is_none()
        });
    }

    // 4. The broker restarts: nothing stops, nothing is duplicated, messages flow again.
    let before: Vec<(BTreeSet<String>, i32)> = fleet
        .iter()
        .map(|e| (e.vassal_names(), e.running(&path).1))
        .collect();
    broker.stop();
    for emperor in &fleet {
        emperor.wait_until("the emperor notices the broker is gone", || {
            emperor.log().contains("the vassals keep running")
        });
    }
    broker.restart();
    for emperor in &fleet {
        connected(emperor, 2);
    }
    broker.publish("after.ini", &ini("sleep 1000", &[]));
    for (emperor, (names, payload)) in fleet.iter().zip(&before) {
        emperor.running("after.ini");
        let mut expected = names.clone();
        expected.insert("after.ini".into());
        assert_eq!(emperor.vassal_names(), expected);
        assert_eq!(
            emperor.running(&path).1,
            *payload,
            "the restart touched a vassal"
        );
    }
}

/// Not a test of behaviour: how many vassals and messages per second one broker serves, for
/// docs/fleet.md. `cargo test --release --test amqp_monitor -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_vassals_and_messages_per_second() {
    let Some(broker) = Broker::start("amqp measure") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let spec = format!("amqp://guest:guest@127.0.0.1:{}", broker.port);
    let emperor = Emperor::launch(
        tmp.path(),
        Options {
            args: vec![
                "--emperor".into(),
                spec,
                "--emperor-throttle".into(),
                "0".into(),
            ],
            ..Options::default()
        },
    );
    connected(&emperor, 1);
    let count = 200;
    let names: Vec<String> = (0..count).map(|i| format!("m{i}.ini")).collect();
    let config = ini("sleep 1000", &[]);
    let messages: Vec<(&str, &str)> = names
        .iter()
        .map(|n| (n.as_str(), config.as_str()))
        .collect();
    let count_where = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        emperor.stats()["vassals"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| pred(v))
            .count()
    };
    let start = std::time::Instant::now();
    broker.publish_all(&messages);
    emperor.wait_until_for(
        "every vassal runs",
        std::time::Duration::from_secs(300),
        || count_where(&|v| v["state"] == "running") == count,
    );
    let spawned = start.elapsed();
    let start = std::time::Instant::now();
    broker.publish_all(&messages);
    emperor.wait_until_for(
        "every vassal reloaded",
        std::time::Duration::from_secs(300),
        || count_where(&|v| v["state"] == "running" && v["respawns"] == 1) == count,
    );
    let reloaded = start.elapsed();
    eprintln!(
        "{count} messages: all running after {spawned:?} ({:.0}/s); all reloaded after {reloaded:?} ({:.0}/s)",
        count as f64 / spawned.as_secs_f64(),
        count as f64 / reloaded.as_secs_f64()
    );
}
