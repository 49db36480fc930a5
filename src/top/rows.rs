//! The table `emperor top` shows: one row per vassal, filtered by tenant and name, sorted by a
//! column. Pure: the document, the usage read from /proc and the time come in as values.

use super::document::{Document, Vassal};
use super::usage::Usage;
use std::cmp::Ordering;
use std::collections::HashMap;

/// The columns rows can be sorted by, in the order `s` cycles through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SortKey {
    Name,
    Tenant,
    State,
    Uptime,
    Respawns,
    Memory,
    Cpu,
}

impl SortKey {
    const ALL: [SortKey; 7] = [
        SortKey::Name,
        SortKey::Tenant,
        SortKey::State,
        SortKey::Uptime,
        SortKey::Respawns,
        SortKey::Memory,
        SortKey::Cpu,
    ];

    pub fn next(self) -> SortKey {
        let at = SortKey::ALL.iter().position(|&k| k == self).unwrap_or(0);
        SortKey::ALL[(at + 1) % SortKey::ALL.len()]
    }

    pub fn name(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::Tenant => "tenant",
            SortKey::State => "state",
            SortKey::Uptime => "uptime",
            SortKey::Respawns => "respawns",
            SortKey::Memory => "memory",
            SortKey::Cpu => "cpu",
        }
    }

    /// Numbers read biggest first (as in top), words from A.
    fn descending_first(self) -> bool {
        matches!(
            self,
            SortKey::Uptime | SortKey::Respawns | SortKey::Memory | SortKey::Cpu
        )
    }
}

/// A sort column and whether `r` flipped its natural direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub reversed: bool,
}

impl Sort {
    pub fn descending(self) -> bool {
        self.key.descending_first() != self.reversed
    }
}

/// What rows are shown: a tenant (None: all) and a piece of the name (empty: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub tenant: Option<String>,
    pub name: String,
}

impl Filter {
    fn keeps(&self, row: &Row) -> bool {
        self.tenant.as_ref().is_none_or(|t| *t == row.tenant)
            && row.name.to_lowercase().contains(&self.name.to_lowercase())
    }
}

/// The tenant filter after `current`: all, then each tenant in order, then all again. A
/// tenant not (or no longer) in the list goes on to the next one after it.
pub fn next_tenant(current: Option<&str>, tenants: &[String]) -> Option<String> {
    match current {
        None => tenants.first().cloned(),
        Some(current) => tenants.iter().find(|t| t.as_str() > current).cloned(),
    }
}

/// One vassal as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub tenant: String,
    pub state: String,
    pub pid: Option<i32>,
    /// Seconds since its runtime started, while it runs.
    pub uptime: Option<u64>,
    pub respawns: u64,
    pub loyal: bool,
    /// None where /proc cannot tell (a remote emperor, a vassal down or unreadable).
    pub memory: Option<u64>,
    pub cpu: Option<f64>,
}

impl Row {
    fn new(v: &Vassal, usage: Option<&Usage>, now_unix: u64) -> Row {
        let running = v.running();
        Row {
            name: v.name.clone(),
            tenant: v.tenant.clone(),
            state: if v.blacklisted {
                format!("{} (blacklisted)", v.state)
            } else {
                v.state.clone()
            },
            pid: running.then_some(v.pid),
            uptime: (running && v.last_run > 0).then(|| now_unix.saturating_sub(v.last_run)),
            respawns: v.respawns,
            loyal: v.loyal != 0,
            memory: usage.map(|u| u.rss_bytes),
            cpu: usage.and_then(|u| u.cpu_percent),
        }
    }
}

/// The rows `filter` keeps, in `sort`'s order (ties by name). `usage` is keyed by runtime pid.
pub fn rows(
    document: &Document,
    usage: &HashMap<i32, Usage>,
    now_unix: u64,
    filter: &Filter,
    sort: Sort,
) -> Vec<Row> {
    let mut rows: Vec<Row> = document
        .vassals
        .iter()
        .map(|v| {
            let usage = if v.running() { usage.get(&v.pid) } else { None };
            Row::new(v, usage, now_unix)
        })
        .filter(|row| filter.keeps(row))
        .collect();
    rows.sort_by(|a, b| {
        let order = compare(a, b, sort.key);
        let order = if sort.descending() {
            order.reverse()
        } else {
            order
        };
        order.then_with(|| a.name.cmp(&b.name))
    });
    rows
}

/// Ascending order by `key`; an unknown value (None) sorts below every known one.
fn compare(a: &Row, b: &Row, key: SortKey) -> Ordering {
    match key {
        SortKey::Name => a.name.cmp(&b.name),
        SortKey::Tenant => a.tenant.cmp(&b.tenant),
        SortKey::State => a.state.cmp(&b.state),
        SortKey::Uptime => a.uptime.cmp(&b.uptime),
        SortKey::Respawns => a.respawns.cmp(&b.respawns),
        SortKey::Memory => a.memory.cmp(&b.memory),
        SortKey::Cpu => a.cpu.partial_cmp(&b.cpu).unwrap_or(Ordering::Equal),
    }
}

/// `45s`, `3m12s`, `2h05m`, `3d04h`.
pub fn format_uptime(seconds: u64) -> String {
    let (m, s) = (seconds / 60, seconds % 60);
    let (h, m) = (m / 60, m % 60);
    let (d, h) = (h / 24, h % 24);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

/// `812K`, `45.3M`, `1.20G` (powers of 1024, as top).
pub fn format_memory(bytes: u64) -> String {
    const K: f64 = 1024.0;
    let b = bytes as f64;
    if b < K * K {
        format!("{}K", bytes / 1024)
    } else if b < K * K * K {
        format!("{:.1}M", b / (K * K))
    } else {
        format!("{:.2}G", b / (K * K * K))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::document::Vassal;

    const NOW: u64 = 1_000_000;

    fn vassal(name: &str, tenant: &str, pid: i32, respawns: u64, started_ago: u64) -> Vassal {
        Vassal {
            name: name.into(),
            tenant: tenant.into(),
            state: if pid > 0 { "running" } else { "waiting" }.into(),
            pid,
            respawns,
            last_run: NOW - started_ago,
            ..Vassal::default()
        }
    }

    fn document() -> Document {
        Document {
            vassals: vec![
                vassal("web.ini", "alice", 100, 0, 3600),
                vassal("api.ini", "bob", 200, 5, 60),
                vassal("cron.ini", "alice", -1, 2, 10),
                vassal("db.ini", "bob", 300, 1, 7200),
            ],
            ..Document::default()
        }
    }

    fn usage() -> HashMap<i32, Usage> {
        let u = |rss_bytes, cpu| Usage {
            rss_bytes,
            cpu_percent: Some(cpu),
        };
        HashMap::from([
            (100, u(50 << 20, 3.0)),
            (200, u(10 << 20, 40.0)),
            (300, u(900 << 20, 1.5)),
        ])
    }

    fn names(filter: &Filter, key: SortKey, reversed: bool) -> Vec<String> {
        rows(&document(), &usage(), NOW, filter, Sort { key, reversed })
            .into_iter()
            .map(|r| r.name)
            .collect()
    }

    #[test]
    fn a_row_has_uptime_memory_and_cpu_only_while_its_vassal_runs() {
        let all = rows(
            &document(),
            &usage(),
            NOW,
            &Filter::default(),
            Sort {
                key: SortKey::Name,
                reversed: false,
            },
        );
        let web = all.iter().find(|r| r.name == "web.ini").unwrap();
        assert_eq!(
            (web.pid, web.uptime, web.memory, web.cpu),
            (Some(100), Some(3600), Some(50 << 20), Some(3.0))
        );
        let cron = all.iter().find(|r| r.name == "cron.ini").unwrap();
        assert_eq!(
            (cron.pid, cron.uptime, cron.memory, cron.cpu),
            (None, None, None, None)
        );
    }

    #[test]
    fn words_sort_from_a_and_numbers_biggest_first_and_r_reverses() {
        // Ties by name; a vassal that is down has no uptime, memory nor CPU: last.
        let expected = [
            (SortKey::Name, false, ["api", "cron", "db", "web"]),
            (SortKey::Name, true, ["web", "db", "cron", "api"]),
            (SortKey::Tenant, false, ["cron", "web", "api", "db"]),
            (SortKey::State, false, ["api", "db", "web", "cron"]),
            (SortKey::Uptime, false, ["db", "web", "api", "cron"]),
            (SortKey::Respawns, false, ["api", "cron", "db", "web"]),
            (SortKey::Memory, false, ["db", "web", "api", "cron"]),
            (SortKey::Cpu, false, ["api", "web", "db", "cron"]),
            (SortKey::Cpu, true, ["cron", "db", "web", "api"]),
        ];
        for (key, reversed, order) in expected {
            let order: Vec<String> = order.iter().map(|n| format!("{n}.ini")).collect();
            assert_eq!(
                names(&Filter::default(), key, reversed),
                order,
                "{key:?} reversed {reversed}"
            );
        }
    }

    #[test]
    fn filters_keep_one_tenant_and_names_containing_the_text() {
        let alice = Filter {
            tenant: Some("alice".into()),
            name: String::new(),
        };
        assert_eq!(names(&alice, SortKey::Name, false), ["cron.ini", "web.ini"]);
        let named = Filter {
            tenant: None,
            name: "I.IN".into(),
        };
        assert_eq!(names(&named, SortKey::Name, false), ["api.ini"]);
        let nobody = Filter {
            tenant: Some("carol".into()),
            name: String::new(),
        };
        assert!(names(&nobody, SortKey::Name, false).is_empty());
    }

    #[test]
    fn s_cycles_every_column_and_comes_back() {
        let mut key = SortKey::Name;
        let mut seen = vec![key.name()];
        for _ in 0..6 {
            key = key.next();
            seen.push(key.name());
        }
        assert_eq!(
            seen,
            ["name", "tenant", "state", "uptime", "respawns", "memory", "cpu"]
        );
        assert_eq!(key.next(), SortKey::Name);
    }

    #[test]
    fn t_cycles_all_then_each_tenant_then_all() {
        let tenants = ["alice".to_string(), "bob".to_string()];
        assert_eq!(next_tenant(None, &tenants).as_deref(), Some("alice"));
        assert_eq!(next_tenant(Some("alice"), &tenants).as_deref(), Some("bob"));
        assert_eq!(next_tenant(Some("bob"), &tenants), None);
        // A tenant given with --tenant that has no vassal yet goes on to the next one.
        assert_eq!(next_tenant(Some("b"), &tenants).as_deref(), Some("bob"));
        assert_eq!(next_tenant(None, &[]), None);
    }

    #[test]
    fn uptime_and_memory_read_like_top() {
        assert_eq!(format_uptime(0), "0s");
        assert_eq!(format_uptime(45), "45s");
        assert_eq!(format_uptime(192), "3m12s");
        assert_eq!(format_uptime(2 * 3600 + 5 * 60 + 9), "2h05m");
        assert_eq!(format_uptime(3 * 86400 + 4 * 3600 + 59), "3d04h");
        assert_eq!(format_memory(812 * 1024), "812K");
        assert_eq!(format_memory(45 * 1024 * 1024 + 300 * 1024), "45.3M");
        assert_eq!(format_memory(1288490189), "1.20G");
    }
}
