//! Results as rows with targets and verdicts, printed as a text table or as Markdown, and
//! docs/PERFORMANCE.md rebuilt from its template.

use crate::measure::{Idle, SizeResult};
use crate::samples::Samples;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The targets.
const NEW_CONFIG_MEDIAN: Duration = Duration::from_millis(20);
const REMOVE_P90: Duration = Duration::from_millis(100);
/// 1000 vassals in 10 s: 10 ms per vassal, checked from 1000 vassals up.
const START_PER_VASSAL: Duration = Duration::from_millis(10);
const START_CHECKED_FROM: usize = 1000;
/// 20 MB (decimal), checked up to 1000 vassals.
const SUPERVISOR_RSS_KIB: u64 = 20_000_000 / 1024;
const RSS_CHECKED_UP_TO: usize = 1000;

/// One line of a result table.
#[derive(Debug, Clone)]
pub struct Row {
    pub metric: String,
    pub value: String,
    pub target: String,
    /// None: no target for this metric (at this size).
    pub pass: Option<bool>,
}

impl Row {
    fn info(metric: &str, value: String) -> Row {
        Row {
            metric: metric.into(),
            value,
            target: "-".into(),
            pass: None,
        }
    }

    fn checked(metric: &str, value: String, target: String, pass: bool) -> Row {
        Row {
            metric: metric.into(),
            value,
            target,
            pass: Some(pass),
        }
    }

    fn verdict(&self) -> &'static str {
        match self.pass {
            Some(true) => "pass",
            Some(false) => "MISS",
            None => "-",
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn latency(s: &Samples) -> String {
    format!(
        "median {}, p90 {}, max {} (n={})",
        ms(s.median()),
        ms(s.p90()),
        ms(s.max()),
        s.len()
    )
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The rows for one size. `tick_hz` converts CPU ticks to time.
pub fn rows(r: &SizeResult, tick_hz: u64) -> Vec<Row> {
    let n = r.vassals;
    let per = |kib: u64| kib / n.max(1) as u64;
    let ticks_ms = |t: u64| t * 1000 / tick_hz.max(1);
    let m = &r.memory;
    let idle = &r.idle;
    let start_value = format!("{:.2} s", r.start_all.as_secs_f64());
    vec![
        if n >= START_CHECKED_FROM {
            let limit = START_PER_VASSAL * n as u32;
            let target = format!("< {:.0} s", limit.as_secs_f64());
            Row::checked("start all", start_value, target, r.start_all < limit)
        } else {
            Row::info("start all", start_value)
        },
        Row::checked(
            "new config -> running",
            latency(&r.new_config),
            format!("median < {}", ms(NEW_CONFIG_MEDIAN)),
            r.new_config.median() < NEW_CONFIG_MEDIAN,
        ),
        Row::info(
            "  of which: new config -> runtime forked",
            latency(&r.new_config_forked),
        ),
        Row::info("touch -> reloaded", latency(&r.touch_reload)),
        Row::info("kill payload -> respawned", latency(&r.kill_respawn)),
        Row::checked(
            "remove -> gone",
            latency(&r.remove_gone),
            format!("p90 < {}", ms(REMOVE_P90)),
            r.remove_gone.p90() < REMOVE_P90,
        ),
        {
            let value = format!(
                "{} (peak {})",
                mib(m.supervisor_rss),
                mib(m.supervisor_peak_rss)
            );
            if n <= RSS_CHECKED_UP_TO {
                let pass = m.supervisor_rss < SUPERVISOR_RSS_KIB;
                Row::checked("emperor RSS", value, "< 20 MB".into(), pass)
            } else {
                Row::info("emperor RSS", value)
            }
        },
        Row::info(
            "runtime memory per vassal",
            format!(
                "RSS {} KiB, private {} KiB ({} runtimes: RSS {}, private {})",
                per(m.runtimes_rss),
                per(m.runtimes_private),
                m.runtimes,
                mib(m.runtimes_rss),
                mib(m.runtimes_private)
            ),
        ),
        idle_cpu_row(idle, tick_hz),
        Row::checked(
            "emperor idle wake-ups",
            format!(
                "{} voluntary context switches in {:.0} s ({} preemptions)",
                idle.supervisor_wakeups,
                idle.window.as_secs_f64(),
                idle.supervisor_preemptions
            ),
            "0 (no polling loop)".into(),
            idle.supervisor_wakeups == 0,
        ),
        Row::info(
            "runtimes idle CPU (all)",
            format!(
                "{} ticks ({} ms) in {:.0} s",
                idle.runtimes_ticks,
                ticks_ms(idle.runtimes_ticks),
                idle.window.as_secs_f64()
            ),
        ),
        Row::checked(
            "SIGTERM -> emperor exited",
            format!(
                "{}, {} orphans alive, {} zombies",
                ms(r.stop.elapsed),
                r.stop.orphans,
                r.stop.zombies
            ),
            "0 orphans".into(),
            r.stop.orphans == 0,
        ),
    ]
}

/// Judged on the main thread's exact CPU time: under one clock tick's worth per window (what
/// `ps` or `top` could just see). The ticks themselves are sampled, so they are shown only.
fn idle_cpu_row(idle: &Idle, tick_hz: u64) -> Row {
    let tick_ns = 1_000_000_000 / tick_hz.max(1);
    let ms = |ns: u64| ns as f64 / 1e6;
    Row::checked(
        "emperor idle CPU",
        format!(
            "main thread {:.2} ms in {:.0} s ({} ticks)",
            ms(idle.supervisor_main_thread_ns),
            idle.window.as_secs_f64(),
            idle.supervisor_ticks
        ),
        format!("< 1 tick ({:.0} ms)", ms(tick_ns)),
        idle.supervisor_main_thread_ns < tick_ns && idle.supervisor_ticks == 0,
    )
}

/// A heading line for one (target, size).
pub fn heading(r: &SizeResult) -> String {
    format!("{}, {} vassals", r.target, r.vassals)
}

/// Fixed-width text table for stdout.
pub fn text_table(rows: &[Row]) -> String {
    let width = |f: fn(&Row) -> &str, title: &str| {
        rows.iter()
            .map(|r| f(r).len())
            .chain([title.len()])
            .max()
            .unwrap_or(0)
    };
    let (wm, wv, wt) = (
        width(|r| &r.metric, "metric"),
        width(|r| &r.value, "value"),
        width(|r| &r.target, "target"),
    );
    let line = |m: &str, v: &str, t: &str, p: &str| format!("{m:<wm$}  {v:<wv$}  {t:<wt$}  {p}\n");
    let mut out = line("metric", "value", "target", "result");
    for r in rows {
        out += &line(&r.metric, &r.value, &r.target, r.verdict());
    }
    out
}

pub fn markdown_table(rows: &[Row]) -> String {
    let mut out = String::from("| metric | value | target | result |\n|---|---|---|---|\n");
    for r in rows {
        out += &format!(
            "| {} | {} | {} | {} |\n",
            r.metric,
            r.value,
            r.target,
            r.verdict()
        );
    }
    out
}

/// What docs/PERFORMANCE.md is made from.
pub struct Document<'a> {
    pub command: &'a str,
    pub supervisors: &'a [String],
    pub sections: &'a [(String, Vec<Row>)],
    pub failures: &'a [String],
}

const TEMPLATE: &str = include_str!("../PERFORMANCE.md.in");

impl Document<'_> {
    pub fn render(&self) -> String {
        let mut results = String::new();
        for (title, rows) in self.sections {
            results += &format!("### {title}\n\n{}\n", markdown_table(rows));
        }
        for failure in self.failures {
            results += &format!("**Failed:** {failure}\n\n");
        }
        let supervisors: String = self
            .supervisors
            .iter()
            .map(|s| format!("    {s}\n"))
            .collect();
        TEMPLATE
            .replace("{{command}}", self.command)
            .replace("{{date}}", &utc_now())
            .replace("{{machine}}", &machine())
            .replace("{{commit}}", &git_commit())
            .replace("{{supervisors}}", supervisors.trim_end())
            .replace("{{results}}", results.trim_end())
    }
}

/// nproc, CPU model, kernel, memory.
pub fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown".into(), |(_, m)| m.trim().to_string());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    format!(
        "{cpus} CPUs (nproc), {model}; Linux {}; {:.1} GiB RAM",
        read("/proc/sys/kernel/osrelease").trim(),
        mem_kib as f64 / 1024.0 / 1024.0
    )
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or("unknown".into(), |s| s.trim().to_string())
}

/// The current UTC date and time, "YYYY-MM-DD HH:MM UTC".
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let minutes = secs % 86_400 / 60;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        minutes / 60,
        minutes % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
    }

    #[test]
    fn tables_show_verdicts() {
        let rows = vec![
            Row::checked("a", "1".into(), "< 2".into(), true),
            Row::checked("b", "3".into(), "< 2".into(), false),
            Row::info("c", "4".into()),
        ];
        let text = text_table(&rows);
        assert!(text.contains("pass") && text.contains("MISS"));
        let md = markdown_table(&rows);
        assert!(md.contains("| b | 3 | < 2 | MISS |"));
        assert!(md.contains("| c | 4 | - | - |"));
    }
}
