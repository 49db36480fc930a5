//! Prometheus metrics (`--emperor-metrics ADDR`, `GET /metrics`): the text exposition format,
//! made in the loop from the vassal table, each tenant, the spawn budget, the loop's own lag
//! and a histogram of spawn latency (config seen to payload started).

use super::fair_queue::{count_by_tenant, tenant_of, TenantCounts};
use super::table::{Table, Vassal};
use super::throttle::Blacklist;
use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// Spawn latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A Prometheus histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, took: Duration) {
        let seconds = took.as_secs_f64();
        for (bucket, count) in BUCKETS.iter().zip(&mut self.counts) {
            if seconds <= *bucket {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// What the loop measures of itself between two scrapes.
#[derive(Debug, Default)]
pub struct LoopClock {
    /// The longest turn since the last scrape.
    longest_turn: Duration,
}

impl LoopClock {
    pub fn turn_took(&mut self, took: Duration) {
        self.longest_turn = self.longest_turn.max(took);
    }

    /// The longest turn since the last scrape, and a new window.
    fn take(&mut self) -> Duration {
        std::mem::take(&mut self.longest_turn)
    }
}

/// Everything the metrics are made of.
pub struct MetricsView<'a> {
    pub table: &'a Table,
    pub tyrant: bool,
    pub tenant_max_vassals: Option<usize>,
    pub blacklist: &'a Blacklist,
    pub spawn_tokens: u32,
    pub spawn_latency: &'a Histogram,
    pub clock: &'a mut LoopClock,
}

/// A label value, escaped as the text format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A vassal cgroup's memory (bytes) and CPU (seconds).
type Usage = (u64, f64);

/// A vassal with its metric labels and its cgroup's usage.
type Labelled<'v> = (String, &'v Vassal, Option<Usage>);

/// CPU and memory of a vassal's cgroup, when it has one.
fn cgroup_usage(v: &Vassal) -> Option<Usage> {
    let dir = &v.cgroup.as_ref()?.dir;
    let memory = std::fs::read_to_string(dir.join("memory.current")).ok()?;
    let cpu = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
    let usec = cpu
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|n| n.trim().parse::<u64>().ok())?;
    Some((memory.trim().parse().ok()?, usec as f64 / 1e6))
}

impl MetricsView<'_> {
    pub fn document(&mut self) -> String {
        let mut out = String::new();
        self.emperor(&mut out);
        self.vassals(&mut out);
        self.tenants(&mut out);
        out
    }

    fn emperor(&mut self, out: &mut String) {
        header(out, "emperor_vassals", "gauge", "Vassals by state.");
        for (name, n) in self.table.counts_by_state() {
            let _ = writeln!(out, "emperor_vassals{{state=\"{name}\"}} {n}");
        }
        header(
            out,
            "emperor_spawn_budget_tokens",
            "gauge",
            "Spawns the budget allows at full speed now.",
        );
        let _ = writeln!(out, "emperor_spawn_budget_tokens {}", self.spawn_tokens);
        header(
            out,
            "emperor_event_loop_lag_seconds",
            "gauge",
            "The longest turn of the event loop since the last scrape: how long an event could wait behind others.",
        );
        let _ = writeln!(
            out,
            "emperor_event_loop_lag_seconds {}",
            self.clock.take().as_secs_f64()
        );
        header(
            out,
            "emperor_spawn_latency_seconds",
            "histogram",
            "From a vassal's spawn to its payload's start.",
        );
        let h = self.spawn_latency;
        for (bucket, count) in BUCKETS.iter().zip(h.counts) {
            let _ = writeln!(
                out,
                "emperor_spawn_latency_seconds_bucket{{le=\"{bucket}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "emperor_spawn_latency_seconds_bucket{{le=\"+Inf\"}} {}\n\
             emperor_spawn_latency_seconds_sum {}\nemperor_spawn_latency_seconds_count {}",
            h.count, h.sum, h.count
        );
    }

    fn vassals(&self, out: &mut String) {
        let now = SystemTime::now();
        // Each vassal's cgroup files are read once per scrape, for both gauges.
        let labelled: Vec<Labelled> = self
            .table
            .iter()
            .map(|(_, v)| {
                let tenant = tenant_of(v, self.tyrant).to_string();
                let labels = format!(
                    "vassal=\"{}\",tenant=\"{}\"",
                    label(&v.name),
                    label(&tenant)
                );
                (labels, v, cgroup_usage(v))
            })
            .collect();
        let gauge = |out: &mut String,
                     name: &str,
                     kind: &str,
                     help: &str,
                     value: &dyn Fn(&Vassal, Option<Usage>) -> Option<f64>| {
            header(out, name, kind, help);
            for (labels, v, usage) in &labelled {
                if let Some(value) = value(v, *usage) {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            }
        };
        gauge(
            out,
            "emperor_vassal_up",
            "gauge",
            "Whether the vassal's runtime runs (1) or not (0).",
            &|v, _| Some(if v.pid().is_some() { 1.0 } else { 0.0 }),
        );
        header(
            out,
            "emperor_vassal_state",
            "gauge",
            "The vassal's state (1 for the one it is in).",
        );
        for (labels, v, _) in &labelled {
            let _ = writeln!(
                out,
                "emperor_vassal_state{{{labels},state=\"{}\"}} 1",
                v.state.name()
            );
        }
        gauge(
            out,
            "emperor_vassal_respawns_total",
            "counter",
            "Respawns and reloads of the vassal.",
            &|v, _| Some(v.history.respawns as f64),
        );
        gauge(
            out,
            "emperor_vassal_last_exit_status",
            "gauge",
            "The status its runtime last exited with.",
            &|v, _| v.history.last_exit.map(f64::from),
        );
        gauge(
            out,
            "emperor_vassal_loyal",
            "gauge",
            "Whether the vassal is loyal (1) or not (0).",
            &|v, _| Some(if v.history.loyal { 1.0 } else { 0.0 }),
        );
        gauge(
            out,
            "emperor_vassal_uptime_seconds",
            "gauge",
            "How long its payload has run.",
            &|v, _| {
                v.pid()?;
                Some(now.duration_since(v.history.last_run?).ok()?.as_secs_f64())
            },
        );
        gauge(
            out,
            "emperor_vassal_memory_bytes",
            "gauge",
            "Memory of the vassal's cgroup (memory.current).",
            &|_, usage| usage.map(|(bytes, _)| bytes as f64),
        );
        gauge(
            out,
            "emperor_vassal_cpu_seconds_total",
            "counter",
            "CPU time of the vassal's cgroup (cpu.stat usage_usec).",
            &|_, usage| usage.map(|(_, seconds)| seconds),
        );
    }

    fn tenants(&self, out: &mut String) {
        let tenants = count_by_tenant(self.table, self.tyrant, self.blacklist);
        let each =
            |out: &mut String, name: &str, help: &str, value: &dyn Fn(&TenantCounts) -> usize| {
                header(out, name, "gauge", help);
                for (tenant, counts) in &tenants {
                    let _ = writeln!(
                        out,
                        "{name}{{tenant=\"{}\"}} {}",
                        label(&tenant.to_string()),
                        value(counts)
                    );
                }
            };
        each(
            out,
            "emperor_tenant_vassals",
            "The tenant's configs.",
            &|c| c.vassals,
        );
        each(
            out,
            "emperor_tenant_running",
            "The tenant's vassals whose runtime runs.",
            &|c| c.running,
        );
        each(
            out,
            "emperor_tenant_over_quota",
            "The tenant's configs waiting over its quota.",
            &|c| c.over_quota,
        );
        if let Some(max) = self.tenant_max_vassals {
            header(
                out,
                "emperor_tenant_max_vassals",
                "gauge",
                "The most vassals a tenant may have (--emperor-tenant-max-vassals).",
            );
            let _ = writeln!(out, "emperor_tenant_max_vassals {max}");
        }
    }
}

/// The HTTP answer to a request for `target`.
pub fn http_answer(target: &str, document: impl FnOnce() -> String) -> String {
    let path = target.split('?').next().unwrap_or_default();
    let (status, kind, body) = if path == "/metrics" {
        (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            document(),
        )
    } else {
        (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: try /metrics\n".to_string(),
        )
    };
    format!(
        "HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_each_observation_in_every_bucket_at_or_above_it() {
        let mut h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(30));
        assert_eq!(h.counts[0], 0);
        assert_eq!(h.counts[2], 1, "le 0.005");
        assert_eq!(h.counts[5], 2, "le 0.05");
        assert_eq!(h.count, 2);
    }

    #[test]
    fn labels_are_escaped_and_only_metrics_is_served() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert!(http_answer("/metrics?x=1", || "m 1\n".into()).starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(http_answer("/", String::new).starts_with("HTTP/1.0 404"));
    }
}
