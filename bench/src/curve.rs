//! The start-all curve: per supervisor (and the machine baseline), jail and size, start-all
//! time, time per vassal, growth from the previous size against linear, the supervisor's
//! time over the machine's at the same size, and where the CPU went; then the linearity
//! verdicts, raw and over the machine baseline.

use crate::cpu::CpuSplit;
use crate::report::verdict;
use crate::start_runs;
use std::time::Duration;

/// How the machine baseline's rows are named.
pub const MACHINE: &str = "machine baseline";
/// Per-vassal start-all at the largest size may be at most this many times that at the
/// reference size.
const LINEAR_SLACK: f64 = 1.25;
/// The reference size of the linearity check (else the smallest size above it).
const LINEAR_FROM: usize = 1000;

/// One size of one curve.
#[derive(Debug, Clone)]
pub struct Point {
    pub n: usize,
    /// Err: why there is no figure. Ok: the median run's.
    pub start_all: Result<Duration, String>,
    /// Every run's start-all (`--start-runs`), in the order measured.
    pub runs: Vec<Duration>,
    pub cpu: Option<CpuSplit>,
    /// The machine baseline's start-all at the same jail and size (None for its own rows).
    pub machine: Option<Duration>,
}

/// The points of one supervisor (or of the baseline) in one jail, by growing size.
#[derive(Debug, Clone)]
pub struct Curve {
    pub who: String,
    pub jail: String,
    pub points: Vec<Point>,
}

impl Point {
    fn time(&self) -> Option<Duration> {
        self.start_all.as_ref().ok().copied()
    }

    /// Start-all per vassal, in ms.
    fn per_vassal_ms(&self) -> Option<f64> {
        Some(per_vassal_ms(self.time()?, self.n))
    }

    /// Start-all over the machine baseline's.
    fn normalized(&self) -> Option<f64> {
        normalized(self.time()?, self.machine?)
    }
}

fn per_vassal_ms(start_all: Duration, n: usize) -> f64 {
    start_all.as_secs_f64() * 1000.0 / n.max(1) as f64
}

/// (time ratio) / (size ratio) from `previous` to `current`: 1.00 is linear growth, above
/// it faster than linear.
fn growth(previous: (usize, Duration), current: (usize, Duration)) -> Option<f64> {
    let (n0, t0) = previous;
    let (n1, t1) = current;
    if n0 == 0 || t0.is_zero() {
        return None;
    }
    Some((t1.as_secs_f64() / t0.as_secs_f64()) / (n1 as f64 / n0 as f64))
}

/// A supervisor's start-all over the machine baseline's at the same size.
fn normalized(supervisor: Duration, machine: Duration) -> Option<f64> {
    (!machine.is_zero()).then(|| supervisor.as_secs_f64() / machine.as_secs_f64())
}

pub const CURVE_HEADER: [&str; 13] = [
    "curve",
    "jail",
    "N",
    "start all",
    "per vassal",
    "growth (1.00 = linear)",
    "/ machine baseline",
    "machine busy CPU",
    "steal",
    "started tree CPU",
    "benchmark CPU",
    "elsewhere",
    "largest elsewhere",
];

/// One row per curve and size.
pub fn curve_cells(curves: &[Curve]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for curve in curves {
        let mut previous: Option<(usize, Duration)> = None;
        for point in &curve.points {
            let time = point.time();
            let growth = match (previous, time) {
                (Some(p), Some(t)) => growth(p, (point.n, t)),
                _ => None,
            };
            previous = time.map(|t| (point.n, t));
            let start = match &point.start_all {
                Ok(t) => start_runs::describe(*t, &point.runs),
                Err(e) => e.clone(),
            };
            let mut row = vec![
                curve.who.clone(),
                curve.jail.clone(),
                point.n.to_string(),
                start,
                or_dash(point.per_vassal_ms().map(|ms| format!("{ms:.2} ms"))),
                or_dash(growth.map(|g| format!("{g:.2}"))),
                or_dash(point.normalized().map(|r| format!("{r:.2}x"))),
            ];
            row.extend(cpu_cells(point.cpu.as_ref()));
            rows.push(row);
        }
    }
    rows
}

fn or_dash(cell: Option<String>) -> String {
    cell.unwrap_or_else(|| "-".into())
}

/// Busy, steal, tree, benchmark and elsewhere, in seconds; then who used most of the rest.
fn cpu_cells(cpu: Option<&CpuSplit>) -> Vec<String> {
    let secs = |ns: i64| format!("{:.2} s", ns as f64 / 1e9);
    match cpu {
        Some(c) => vec![
            secs(c.busy as i64),
            secs(c.steal as i64),
            secs(c.tree as i64),
            secs(c.bench as i64),
            secs(c.elsewhere()),
            or_dash((!c.others.is_empty()).then(|| {
                c.others
                    .iter()
                    .map(|(name, ns)| format!("{name} {}", secs(*ns as i64)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })),
        ],
        None => vec!["-".into(); 6],
    }
}

/// The reference size and the largest, when the largest is above a reference of at least
/// `LINEAR_FROM` (1000 itself when measured).
fn judged_sizes(sizes: &[usize]) -> Option<(usize, usize)> {
    let largest = sizes.iter().copied().max()?;
    let reference = if sizes.contains(&LINEAR_FROM) {
        LINEAR_FROM
    } else {
        sizes.iter().copied().filter(|&n| n >= LINEAR_FROM).min()?
    };
    (largest > reference).then_some((reference, largest))
}

/// `at_largest` over `at_reference`, and whether that is within `LINEAR_SLACK`.
fn linear_verdict(at_reference: f64, at_largest: f64) -> Option<(f64, bool)> {
    (at_reference > 0.0).then(|| {
        let ratio = at_largest / at_reference;
        (ratio, ratio <= LINEAR_SLACK)
    })
}

pub const LINEARITY_HEADER: [&str; 7] = [
    "check",
    "jail",
    "at reference size",
    "at largest size",
    "largest / reference",
    "target",
    "result",
];

/// The linearity check of each emperor curve: per-vassal start-all, raw and over the
/// machine baseline, at the largest size against the reference size.
pub fn linearity_cells(curves: &[Curve]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for curve in curves.iter().filter(|c| c.who == "emperor") {
        let sizes: Vec<usize> = curve.points.iter().map(|p| p.n).collect();
        let Some((reference, largest)) = judged_sizes(&sizes) else {
            rows.push(vec![
                "per-vassal start-all".into(),
                curve.jail.clone(),
                format!("not checked: no size of {LINEAR_FROM} or more below the largest"),
                "-".into(),
                "-".into(),
                format!("<= {LINEAR_SLACK:.2}x"),
                "not checked".into(),
            ]);
            continue;
        };
        let at = |n: usize| curve.points.iter().find(|p| p.n == n);
        let (r, l) = (at(reference), at(largest));
        let raw = (
            r.and_then(Point::per_vassal_ms),
            l.and_then(Point::per_vassal_ms),
        );
        let over_machine = (r.and_then(Point::normalized), l.and_then(Point::normalized));
        rows.push(linearity_row(
            format!("per-vassal start-all, {largest} vs {reference}"),
            &curve.jail,
            raw,
            |ms| format!("{ms:.2} ms"),
        ));
        rows.push(linearity_row(
            format!("start-all / machine baseline, {largest} vs {reference}"),
            &curve.jail,
            over_machine,
            |ratio| format!("{ratio:.2}x"),
        ));
    }
    rows
}

fn linearity_row(
    check: String,
    jail: &str,
    (at_reference, at_largest): (Option<f64>, Option<f64>),
    show: impl Fn(f64) -> String,
) -> Vec<String> {
    let judged = match (at_reference, at_largest) {
        (Some(r), Some(l)) => linear_verdict(r, l),
        _ => None,
    };
    vec![
        check,
        jail.into(),
        or_dash(at_reference.map(&show)),
        or_dash(at_largest.map(&show)),
        or_dash(judged.map(|(ratio, _)| format!("{ratio:.2}x"))),
        format!("<= {LINEAR_SLACK:.2}x"),
        verdict(judged.map(|(_, pass)| pass)).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn point(n: usize, start: f64, machine: Option<f64>) -> Point {
        Point {
            n,
            start_all: Ok(secs(start)),
            runs: vec![secs(start)],
            cpu: None,
            machine: machine.map(secs),
        }
    }

    #[test]
    fn growth_is_the_time_ratio_over_the_size_ratio() {
        let g = growth((1000, secs(1.6)), (5000, secs(12.4))).unwrap();
        assert!((g - 1.55).abs() < 1e-9, "{g}");
        let linear = growth((100, secs(0.3)), (1000, secs(3.0))).unwrap();
        assert!((linear - 1.0).abs() < 1e-9);
        assert_eq!(growth((10, Duration::ZERO), (100, secs(1.0))), None);
    }

    #[test]
    fn normalization_divides_by_the_machine_baseline() {
        assert_eq!(normalized(secs(6.0), secs(2.0)), Some(3.0));
        assert_eq!(normalized(secs(6.0), Duration::ZERO), None);
        assert!((per_vassal_ms(secs(2.5), 1000) - 2.5).abs() < 1e-9);
    }

    #[test]
    fn the_reference_is_1000_or_the_smallest_size_above() {
        assert_eq!(judged_sizes(&[10, 100, 1000, 5000]), Some((1000, 5000)));
        assert_eq!(judged_sizes(&[10, 2000, 5000, 3000]), Some((2000, 5000)));
        assert_eq!(judged_sizes(&[10, 100, 300]), None);
        assert_eq!(judged_sizes(&[100, 1000]), None);
        assert_eq!(judged_sizes(&[]), None);
    }

    #[test]
    fn linear_verdict_allows_a_quarter_more_per_vassal() {
        assert_eq!(linear_verdict(2.0, 2.5), Some((1.25, true)));
        let (ratio, pass) = linear_verdict(2.0, 2.6).unwrap();
        assert!((ratio - 1.3).abs() < 1e-9 && !pass);
        assert_eq!(linear_verdict(0.0, 1.0), None);
    }

    fn emperor_curve() -> Curve {
        Curve {
            who: "emperor".into(),
            jail: "full".into(),
            points: vec![
                point(100, 0.2, Some(0.1)),
                point(1000, 2.0, Some(1.0)),
                point(5000, 15.0, Some(6.5)),
            ],
        }
    }

    #[test]
    fn judges_raw_and_normalized_growth_apart() {
        let rows = linearity_cells(&[emperor_curve()]);
        assert_eq!(rows.len(), 2);
        // 3.00 ms per vassal at 5000 against 2.00 at 1000: 1.50x, a miss.
        assert_eq!(
            rows[0].join(" | "),
            "per-vassal start-all, 5000 vs 1000 | full | 2.00 ms | 3.00 ms | 1.50x | <= 1.25x | MISS"
        );
        // 15.0 / 6.5 = 2.31x at 5000 against 2.00x at 1000: 1.15x, a pass.
        assert_eq!(
            rows[1].join(" | "),
            "start-all / machine baseline, 5000 vs 1000 | full | 2.00x | 2.31x | 1.15x | <= 1.25x | pass"
        );
    }

    #[test]
    fn without_a_reference_size_the_check_says_so() {
        let mut curve = emperor_curve();
        curve.points.truncate(2);
        let rows = linearity_cells(&[curve]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].last().unwrap(), "not checked");
        let uwsgi = Curve {
            who: "uWSGI".into(),
            ..emperor_curve()
        };
        assert!(linearity_cells(&[uwsgi]).is_empty());
    }

    #[test]
    fn without_a_machine_baseline_the_normalized_check_has_no_verdict() {
        let mut curve = emperor_curve();
        curve.points[2].machine = None;
        let rows = linearity_cells(&[curve]);
        assert_eq!(rows[1][4], "-");
        assert_eq!(rows[1][6], "-");
    }

    #[test]
    fn curve_rows_show_growth_normalization_and_cpu() {
        let mut curve = emperor_curve();
        let ms = |ms: u64| ms * 1_000_000;
        curve.points[1].cpu = Some(CpuSplit {
            busy: ms(3000),
            steal: ms(200),
            tree: ms(1500),
            bench: ms(300),
            others: vec![("process_api".into(), ms(700)), ("kworker".into(), ms(250))],
        });
        let rows = curve_cells(&[curve]);
        assert_eq!(rows[0][3..7].join(" | "), "0.20 s | 2.00 ms | - | 2.00x");
        assert_eq!(rows[1][5], "1.00");
        assert_eq!(
            rows[1][7..].join(" | "),
            "3.00 s | 0.20 s | 1.50 s | 0.30 s | 1.20 s | process_api 0.70 s, kworker 0.25 s"
        );
        assert_eq!(rows[2][5], "1.50");
        assert_eq!(rows[2][7], "-");
        let missing = Curve {
            who: MACHINE.into(),
            jail: "full".into(),
            points: vec![Point {
                n: 10,
                start_all: Err("unshare: not installed".into()),
                runs: Vec::new(),
                cpu: None,
                machine: None,
            }],
        };
        let rows = curve_cells(&[missing]);
        assert_eq!(rows[0][3], "unshare: not installed");
        assert_eq!(rows[0][4], "-");
    }
}
