//! The stats document: one JSON document per connection, uWSGI's field names where uWSGI has
//! them (so existing tools keep working), plus ours. Read-only. Served by stats_server.rs.

use super::fair_queue::{count_by_tenant, tenant_owner, FairQueue, Tenant};
use super::parts::SeenInProc;
use super::table::{Table, Vassal};
use super::throttle::{Blacklist, SpawnBudget};
use serde::{Serialize, Serializer};
use std::cell::Ref;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The vassal's running config and payload pid (-1: none), from /proc when its runtime or
/// payload changed since the last look (a payload that died without a respawn yet, too).
/// The config is lent, not copied: 10,000 vassals were 10,000 strings per answer.
fn seen_in_proc(v: &Vassal) -> (Lent<'_>, i32) {
    let Some(runtime) = v.pid().map(|p| p.as_raw()) else {
        return (Lent(None), -1);
    };
    {
        let mut seen = v.seen_in_proc.borrow_mut();
        let read_for = Some((runtime, v.history.starts));
        if seen.read_for != read_for {
            *seen = SeenInProc {
                read_for,
                running_config: running_config(runtime).unwrap_or_default(),
                payload: payload_of(runtime),
            };
        } else if !seen.payload.is_some_and(pid_exists) {
            seen.payload = payload_of(runtime);
        }
    }
    let seen = v.seen_in_proc.borrow();
    let payload = seen.payload.unwrap_or(-1);
    (
        Lent(Some(Ref::map(seen, |s| s.running_config.as_str()))),
        payload,
    )
}

/// Text lent by a vassal's entry for as long as its stats are written ("" for none).
struct Lent<'v>(Option<Ref<'v, str>>);

impl Serialize for Lent<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_deref().unwrap_or(""))
    }
}

/// A vassal's tenant as [`super::fair_queue::Tenant`] shows it, written without making one
/// (which copies the monitor's name) per vassal.
struct TenantName<'v> {
    vassal: &'v Vassal,
    tyrant: bool,
}

impl Serialize for TenantName<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match tenant_owner(self.vassal, self.tyrant) {
            Some(uid) => serializer.collect_str(&Tenant::Owner(uid)),
            None => serializer.serialize_str(&self.vassal.monitor),
        }
    }
}

/// A syscall, not jail::process::is_alive's /proc read: this runs for every vassal of every
/// stats answer. A zombie payload still counts: its runtime reaps it and starts the next.
fn pid_exists(pid: i32) -> bool {
    // Signal 0 checks the pid exists; EPERM (another uid's process) still means it does.
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// The config a runtime runs on now: the last argument of its command line, which a
/// fallback-config re-exec replaces (same pid) with the fallback file.
fn running_config(pid: i32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let last = cmdline
        .strip_suffix(&[0])
        .unwrap_or(&cmdline)
        .rsplit(|&b| b == 0)
        .next()?;
    Some(String::from_utf8_lossy(last).into_owned())
}

/// The payload of a runtime: its first child (a graceful reload changes it, not the runtime).
fn payload_of(runtime: i32) -> Option<i32> {
    let children =
        std::fs::read_to_string(format!("/proc/{runtime}/task/{runtime}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

fn unix_time(t: Option<SystemTime>) -> u64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Everything the stats document is made of.
#[derive(Debug)]
pub struct StatsView<'a> {
    pub monitors: Vec<String>,
    pub tyrant: bool,
    pub table: &'a Table,
    pub spawn_budget: &'a SpawnBudget,
    pub queue: &'a FairQueue,
    pub tenant_max_vassals: Option<usize>,
    pub blacklist: &'a Blacklist,
    /// When this emperor's pid started, and its upgrades in place (count, last one).
    pub started: std::time::SystemTime,
    pub upgrades: u32,
    pub upgraded: Option<std::time::SystemTime>,
}

// The document is serialized straight from these borrowed structs: a serde_json::Value tree
// cost 5000 maps of 33 owned keys per answer at 5000 vassals, and the allocator's churn.
// Fields are in alphabetical order, the order the Value maps gave them. uWSGI's own fields
// keep uWSGI's types: loyal, ready, accepting and emperor_tyrant are 0/1 integers.

#[derive(Serialize)]
struct Document<'a> {
    blacklist: Vec<Punished<'a>>,
    cwd: String,
    emperor: &'a [String],
    emperor_tyrant: u8,
    gid: u32,
    pid: u32,
    spawn_budget: Budget,
    /// Unix time the emperor (this pid) started; upgrades in place keep it.
    started: u64,
    tenants: Vec<TenantStats>,
    /// How long the next spawn waits for the spawn budget (uWSGI's name).
    throttle_level: u64,
    throttle_level_ms: u64,
    totals: Totals,
    uid: u32,
    /// Upgrades in place of this pid, and the Unix time of the last one (0: none).
    upgraded: u64,
    upgrades: u32,
    vassals: Vassals<'a>,
    version: &'static str,
}

/// The vassals, each written as it is made: no list of 10,000 entries is built first.
struct Vassals<'a> {
    view: &'a StatsView<'a>,
    uid: u32,
    gid: u32,
}

impl Serialize for Vassals<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let view = self.view;
        serializer.collect_seq(
            view.table
                .iter()
                .map(|(_, v)| view.vassal(v, self.uid, self.gid)),
        )
    }
}

/// Room made for the document before it is written, per vassal: the document is about 700
/// bytes per vassal with the benchmark's paths. Made at once, it grows no copy after copy (a
/// document of 10,000 vassals is 7 MB); what is not written is never touched.
const BYTES_PER_VASSAL: usize = 1024;

#[derive(Serialize)]
struct Punished<'a> {
    attempt: u32,
    first_attempt: u64,
    id: &'a str,
    last_attempt: u64,
    throttle_level: u64,
}

#[derive(Serialize)]
struct Budget {
    burst: u32,
    rate: u32,
    tokens: u32,
}

/// One tenant: the config owner in tyrant mode, else a monitor.
#[derive(Serialize)]
struct TenantStats {
    blacklisted: usize,
    /// `--emperor-tenant-max-vassals` (0: no limit).
    max_vassals: usize,
    /// Its configs waiting for room under that quota.
    over_quota: usize,
    queued: usize,
    running: usize,
    tenant: String,
    vassals: usize,
}

#[derive(Serialize)]
struct Totals {
    blacklisted: usize,
    respawns: u64,
    running: usize,
    vassals: usize,
}

#[derive(Serialize)]
struct VassalStats<'a> {
    accepting: u8,
    blacklisted: bool,
    born: u64,
    config: std::borrow::Cow<'a, str>,
    cursed: u32,
    /// While it waits for file descriptors: the limit the emperor needs for all its configs.
    fds_needed: u64,
    first_run: u64,
    gid: u32,
    id: &'a str,
    last_accepting: u64,
    last_exit_status: &'a Option<i32>,
    last_heartbeat: u64,
    last_loyal: u64,
    last_mod: u64,
    last_ready: u64,
    last_run: u64,
    loyal: u8,
    monitor: &'a str,
    name: &'a str,
    on_demand: &'a str,
    payload_pid: i32,
    pid: i32,
    pool: &'a str,
    ready: u8,
    respawns: u64,
    running_config: Lent<'a>,
    state: &'static str,
    tenant: TenantName<'a>,
    throttle: u64,
    uid: u32,
    /// What keeps it from starting ("file descriptors"), or "".
    waiting_for: &'static str,
    zerg: u32,
}

impl<'a> StatsView<'a> {
    /// The document as text (tests, and what is not served).
    pub fn document(&self) -> String {
        String::from_utf8(self.document_bytes()).expect("JSON is UTF-8")
    }

    /// The document, written once into room made for it.
    pub fn document_bytes(&self) -> Vec<u8> {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let now = std::time::Instant::now();
        let wait = self.spawn_budget.next_allowed(now).duration_since(now);
        let document = Document {
            blacklist: self
                .blacklist
                .iter()
                .map(|(id, p)| Punished {
                    attempt: p.attempts,
                    first_attempt: unix_time(Some(p.first_attempt)),
                    id,
                    last_attempt: unix_time(Some(p.last_attempt)),
                    throttle_level: millis(p.throttle),
                })
                .collect(),
            cwd: std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            emperor: &self.monitors,
            emperor_tyrant: self.tyrant.into(),
            gid,
            pid: std::process::id(),
            spawn_budget: {
                let (rate, burst) = self.spawn_budget.rate_and_burst();
                let tokens = self.spawn_budget.tokens(now);
                Budget {
                    burst,
                    rate,
                    tokens,
                }
            },
            started: unix_time(Some(self.started)),
            tenants: self.tenants(),
            throttle_level: wait.as_secs(),
            throttle_level_ms: millis(wait),
            totals: Totals {
                blacklisted: self.blacklist.len(),
                respawns: self.table.iter().map(|(_, v)| v.history.respawns).sum(),
                running: self.table.iter().filter(|(_, v)| v.pid().is_some()).count(),
                vassals: self.table.len(),
            },
            uid,
            upgraded: unix_time(self.upgraded),
            upgrades: self.upgrades,
            vassals: Vassals {
                view: self,
                uid,
                gid,
            },
            version: env!("CARGO_PKG_VERSION"),
        };
        let mut out = Vec::with_capacity((self.table.len() + 16) * BYTES_PER_VASSAL);
        serde_json::to_writer(&mut out, &document).expect("plain structs serialize");
        out
    }

    /// Each tenant's vassals, in the tenants' order.
    fn tenants(&self) -> Vec<TenantStats> {
        count_by_tenant(self.table, self.tyrant, self.blacklist)
            .into_iter()
            .map(|(tenant, counts)| TenantStats {
                blacklisted: counts.blacklisted,
                max_vassals: self.tenant_max_vassals.unwrap_or(0),
                over_quota: counts.over_quota,
                queued: self.queue.queued_for(&tenant),
                running: counts.running,
                tenant: tenant.to_string(),
                vassals: counts.vassals,
            })
            .collect()
    }

    fn vassal(&self, v: &'a Vassal, uid: u32, gid: u32) -> VassalStats<'a> {
        let (vuid, vgid) = v.owner.unwrap_or((uid, gid));
        let punishment = self.blacklist.get(&v.id);
        let (running_config, payload_pid) = seen_in_proc(v);
        VassalStats {
            accepting: v.history.accepting.into(),
            blacklisted: punishment.is_some(),
            born: unix_time(v.history.born),
            config: v.path.to_string_lossy(),
            cursed: 0,
            fds_needed: v.waiting_for_fds.unwrap_or(0),
            first_run: unix_time(v.history.first_run),
            gid: vgid,
            id: &v.name,
            last_accepting: unix_time(v.history.last_accepting),
            last_exit_status: &v.history.last_exit,
            last_heartbeat: unix_time(v.history.last_heartbeat),
            last_loyal: unix_time(v.history.last_loyal),
            last_mod: unix_time(v.last_mod),
            last_ready: unix_time(v.history.last_ready),
            last_run: unix_time(v.history.last_run),
            loyal: v.history.loyal.into(),
            monitor: &v.monitor,
            name: &v.name,
            on_demand: v
                .on_demand
                .as_ref()
                .map_or("", |od| od.socket.value.as_str()),
            payload_pid,
            pid: v.pid().map_or(-1, |p| p.as_raw()),
            pool: v.pool.as_ref().map_or("", |s| s.value.as_str()),
            ready: v.history.ready.into(),
            respawns: v.history.respawns,
            running_config,
            state: v.state.name(),
            tenant: TenantName {
                vassal: v,
                tyrant: self.tyrant,
            },
            throttle: punishment.map_or(0, |p| millis(p.throttle)),
            uid: vuid,
            waiting_for: if v.waiting_for_fds.is_some() {
                "file descriptors"
            } else {
                ""
            },
            zerg: 0,
        }
    }
}
