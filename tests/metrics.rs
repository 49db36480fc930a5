//! Prometheus metrics (`--emperor-metrics`): the document passes `promtool check metrics`, and
//! a real Prometheus server (Debian's `prometheus`, which tests/run-all.sh installs) scrapes it
//! and answers queries over its series.

mod common;

use common::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

/// `GET path` on 127.0.0.1:`port`: the whole response, or None.
fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(PATIENCE)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

fn body(response: &str) -> &str {
    response.split("\r\n\r\n").nth(1).unwrap_or_default()
}

/// A Prometheus server scraping `target` every second, killed when dropped.
struct Prometheus {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: u16) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = write(
            &dir.path().join("prometheus.yml"),
            &format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: emperor\n    \
                 static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
            ),
        );
        let port = free_port();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    /// The query's result vector, once the API answers.
    fn query(&self, query: &str) -> Option<Vec<serde_json::Value>> {
        let encoded: String = query
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let response = get(self.port, &format!("/api/v1/query?query={encoded}"))?;
        let doc: serde_json::Value = serde_json::from_str(body(&response)).ok()?;
        (doc["status"] == "success").then(|| doc["data"]["result"].as_array().cloned())?
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prometheus_scrapes_the_vassals_their_tenants_and_the_loop() {
    if !have_tools("prometheus_scrapes", &[PROMETHEUS, PROMTOOL]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let emperor = Emperor::start(
        tmp.path(),
        &["--emperor-metrics", &addr, "--emperor-throttle", "100"],
    );
    emperor.write("web.ini", &ini("sleep 1000", &[]));
    emperor.write("crash.ini", &ini("sh -c 'exit 3'", &[]));
    emperor.running("web.ini");
    emperor.wait_until("crash.ini died once", || {
        emperor
            .vassal("crash.ini")
            .is_some_and(|v| v["last_exit_status"] == 3)
    });

    let response = get(port, "/metrics").expect("an answer");
    assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response}");
    let metrics = body(&response);
    for line in [
        "emperor_vassal_up{vassal=\"web.ini\"",
        "emperor_vassal_last_exit_status{vassal=\"crash.ini\"",
        "emperor_spawn_latency_seconds_count ",
        "emperor_event_loop_lag_seconds ",
        "emperor_tenant_vassals{tenant=",
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
    let mut check = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(get(port, "/").unwrap().starts_with("HTTP/1.0 404"));
    // A request that arrives in pieces is answered once its head is complete (the server
    // closed a client whose first read was partial, which reset its connection).
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(b"GET /metr").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    stream.write_all(b"ics HTTP/1.0\r\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    stream.write_all(b"\r\n").unwrap();
    let mut pieces = String::new();
    stream.read_to_string(&mut pieces).unwrap();
    assert!(pieces.starts_with("HTTP/1.0 200 OK\r\n"), "{pieces}");

    let prometheus = Prometheus::start(port);
    let up = emperor.wait_for("Prometheus has scraped web.ini as up", || {
        let result = prometheus.query("emperor_vassal_up{vassal=\"web.ini\"}")?;
        let value = result.first()?["value"][1].as_str()?.to_string();
        (value == "1").then_some(result)
    });
    assert_eq!(up[0]["metric"]["job"], "emperor", "{up:?}");
    emperor.wait_for(
        "Prometheus has the crash's exit status and respawns",
        || {
            let status =
                prometheus.query("emperor_vassal_last_exit_status{vassal=\"crash.ini\"}")?;
            let respawns =
                prometheus.query("emperor_vassal_respawns_total{vassal=\"crash.ini\"}")?;
            (status.first()?["value"][1] == "3"
                && respawns.first()?["value"][1]
                    .as_str()?
                    .parse::<u64>()
                    .ok()?
                    >= 1)
                .then_some(())
        },
    );
    // Every query of the shipped Grafana dashboard is one Prometheus accepts.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/grafana-dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().replace("$tenant", ".*");
            assert!(
                prometheus.query(&expr).is_some(),
                "the dashboard's query {expr:?} ({}) is refused",
                panel["title"]
            );
        }
    }
    emperor.wait_for("Prometheus has the spawn latency histogram", || {
        let result =
            prometheus.query("histogram_quantile(0.5, emperor_spawn_latency_seconds_bucket)")?;
        result.first().map(|_| ())
    });
}
