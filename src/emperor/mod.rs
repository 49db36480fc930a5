//! The emperor: one thread, one epoll over signals, monitors, vassal protocol sockets, the
//! stats server and the control socket; every timer is a deadline in that loop, never a sleep or a thread.

mod accept_gate;
mod activity;
mod assemble;
mod commands;
mod control;
mod executor;
pub mod fair_queue;
mod fd_budget;
mod held;
mod http_request;
mod identity;
mod idle_watch;
mod inline;
mod lifecycle;
mod link;
mod machine;
pub mod metrics;
mod notify;
mod on_demand;
mod outbox;
mod parts;
mod pool;
mod quota;
mod repeats;
mod runtime_binary;
mod settings;
mod shutdown;
mod spawn;
mod spawning;
pub mod stats;
mod stats_server;
mod stop_waves;
mod surfaces;
mod table;
pub mod throttle;
mod timers;
pub mod upgrade;
mod wishes;

pub use settings::{EmperorError, Settings};

use crate::config_reader::ConfigReader;
use crate::monitor::Monitor;
use fair_queue::FairQueue;
use jail::signals::{Sig, SignalEvents};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use spawn::Spawner;
use stats_server::StatsServer;
use std::time::{Duration, Instant};
use table::Table;
use throttle::{Blacklist, SpawnBudget};
use timers::Timers;
use tracing::info;

const TOKEN_SIGNALS: u64 = 0;
const TOKEN_STATS: u64 = 1;
const TOKEN_CONTROL: u64 = 2;
const TOKEN_METRICS: u64 = 3;
/// Control connections: this plus their slot (fewer than 256 of them).
const TOKEN_CONTROL_CLIENT: u64 = 1 << 8;
/// Stats clients being written to: this plus their slot.
const TOKEN_STATS_CLIENT: u64 = 1 << 12;
/// Metrics clients being read from or written to: this plus their slot.
const TOKEN_METRICS_CLIENT: u64 = 1 << 14;
const TOKEN_MONITOR: u64 = 1 << 16;
const TOKEN_VASSAL: u64 = 1 << 32;
/// A waiting on-demand vassal's held socket (+ its slot).
const TOKEN_ON_DEMAND: u64 = 1 << 48;
/// How long the loop may sleep with nothing due (it still wakes for every event).
const IDLE_WAKE: Duration = Duration::from_secs(3600);

pub struct Emperor {
    settings: Settings,
    monitors: Vec<Box<dyn Monitor>>,
    signals: SignalEvents,
    epoll: Epoll,
    stats: Option<StatsServer>,
    metrics: Option<StatsServer>,
    spawn_latency: metrics::Histogram,
    loop_clock: metrics::LoopClock,
    control: Option<control::ControlServer>,
    table: Table,
    queue: FairQueue,
    spawn_budget: SpawnBudget,
    blacklist: Blacklist,
    /// Tenant quotas (`--emperor-tenant-max-vassals`).
    quota: quota::Quota,
    /// Per-vassal wake-ups (respawn, kill, heartbeat); the handler checks what is due.
    timers: Timers,
    spawner: Spawner,
    next_rescan: Instant,
    /// SIGWINCH asked for a rescan of every monitor, needed or not.
    rescan_all: bool,
    /// Config events not judged yet, in the order the monitors gave them (see
    /// `judge_backlog`).
    monitor_backlog: std::collections::VecDeque<crate::monitor::Event>,
    /// How many of them, at the front, are the initial scan's.
    scan_left: usize,
    /// The initial scan's spawns take no token: true until its events are all judged and the
    /// queue is empty.
    warming_up: bool,
    /// Set when the emperor is stopping: the moment patience ends.
    ragnarok: Option<Instant>,
    /// While stopping: the vassals still to be told, a wave at a time.
    stop_waves: stop_waves::StopWaves,
    /// Tyrant mode: configs whose owner changed while running, with the owner they had.
    refused: std::collections::HashMap<String, (u32, u32)>,
    /// Sockets the emperor binds and holds for its vassals (on-demand and pool sockets).
    held: held::HeldSockets,
    /// On-demand vassals: the running ones' sockets sampled for idleness.
    on_demand: on_demand::OnDemand,
    /// Loads tenants' configs for the emperor, in throwaway workers (see
    /// [`crate::config_reader`]).
    reader: std::cell::RefCell<ConfigReader>,
    /// systemd's notify socket, when it started the emperor.
    notify: notify::Notifier,
    /// The open-files limit, what it holds, and the vassals waiting for fds.
    fd_budget: fd_budget::FdBudget,
    /// Its start, upgrades and binary (see [`upgrade`]).
    life: upgrade::Life,
    /// SIGUSR2 or `emperor upgrade` asked for an upgrade, done at the end of the loop turn.
    upgrade_asked: bool,
}

/// The signals the emperor handles, blocked and read from a signalfd.
fn emperor_signals() -> Result<SignalEvents, EmperorError> {
    Ok(SignalEvents::new(&[
        Sig::SIGINT,
        Sig::SIGTERM,
        Sig::SIGQUIT,
        Sig::SIGHUP,
        Sig::SIGUSR1,
        Sig::SIGUSR2,
        Sig::SIGURG,
        Sig::SIGWINCH,
        Sig::SIGCHLD,
    ])?)
}

/// Run an emperor until it is told to stop.
pub fn run(settings: Settings) -> Result<(), EmperorError> {
    match upgrade::take_over_if_asked(&settings) {
        Some(emperor) => emperor?.run(),
        None => Emperor::new(settings)?.run(),
    }
}

impl Emperor {
    pub fn new(settings: Settings) -> Result<Self, EmperorError> {
        if settings.monitors.is_empty() {
            return Err(EmperorError::NoMonitor);
        }
        // Before any thread exists: it takes systemd's variables out of the environment.
        let notify = notify::Notifier::from_env();
        // Signals are blocked before any thread exists, so every thread inherits the mask.
        let signals = emperor_signals()?;
        jail::process::become_subreaper()?;
        let monitors = assemble::open_monitors(&settings)?;
        // Bound before the emperor drops to its identity, the control socket handed to it.
        let listeners =
            assemble::Listeners::open(&settings, assemble::HandedListeners::default(), |fd| {
                Ok(jail::fd::adopt_inherited(fd)?)
            })?;
        if let Some(root) = &settings.cgroup_root {
            let delegate = settings.identity.map(|id| (id.uid, id.gid));
            jail::cgroup::prepare_root(root, delegate)?;
            info!(root = %root.display(), "vassal cgroups");
        }
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
            .map_err(|e| jail::SysError::new("epoll_create1", e))?;
        let mut spawner =
            Spawner::new(&settings, spawn::CloneServerSource::Start).map_err(|source| {
                EmperorError::Io {
                    what: "preparing spawns",
                    source,
                }
            })?;
        // Two fds per vassal: thousands of vassals need more than the usual 1024.
        let open_files = jail::process::raise_open_files_limit()?;
        spawner.give_back_open_files_limit(open_files.was);
        // Started now, with the emperor's full privileges, which it takes on as the emperor's.
        let reader = ConfigReader::start(
            spawner.binary(),
            settings.identity,
            spawner.runtime_env(),
            settings.reader_memory_mib,
        )?;
        let parts = assemble::Parts {
            notify,
            signals,
            monitors,
            epoll,
            listeners,
            spawner,
            reader,
            open_files: open_files.now,
            life: upgrade::Life::begin(),
        };
        let emperor = Emperor::assemble(settings, parts);
        emperor.fd_budget.log_capacity(open_files.was);
        if let Some(identity) = emperor.settings.identity {
            jail::creds::become_unprivileged(
                identity.uid,
                identity.gid,
                identity.keep,
                jail::caps::last_cap(),
            )
            .map_err(|e| EmperorError::Drop {
                uid: identity.uid,
                reason: e.to_string(),
            })?;
            info!(uid = identity.uid, gid = identity.gid, caps = %identity.keep, "dropped privileges");
        }
        emperor.register_sources()?;
        Ok(emperor)
    }

    fn register_sources(&self) -> Result<(), EmperorError> {
        let add = |fd: std::os::fd::BorrowedFd<'_>, token: u64| {
            self.epoll
                .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
                .map_err(|e| jail::SysError::new("epoll_ctl(ADD)", e))
        };
        add(std::os::fd::AsFd::as_fd(&self.signals), TOKEN_SIGNALS)?;
        let listeners = [
            self.stats.as_ref().map(|s| s.register(&self.epoll)),
            self.metrics.as_ref().map(|s| s.register(&self.epoll)),
            self.control.as_ref().map(|c| c.register(&self.epoll)),
        ];
        for registered in listeners.into_iter().flatten() {
            registered.map_err(|e| jail::SysError::new("epoll_ctl(ADD)", e))?;
        }
        for (i, monitor) in self.monitors.iter().enumerate() {
            if let Some(fd) = monitor.watch_fd() {
                add(fd, TOKEN_MONITOR + i as u64)?;
            }
        }
        Ok(())
    }

    /// The loop: initial scan, then events and deadlines until the last vassal is buried.
    pub fn run(mut self) -> Result<(), EmperorError> {
        info!(monitors = ?self.shown_monitors(), pid = std::process::id(), "emperor started");
        for i in 0..self.monitors.len() {
            let events = self.monitors[i].rescan();
            self.on_monitor_events(events);
        }
        self.scan_left = self.monitor_backlog.len();
        self.judge_backlog();
        self.process_queue(Instant::now());

        let mut events = vec![EpollEvent::empty(); 256];
        loop {
            if self.ragnarok.is_some() && !self.table.has_processes() {
                break;
            }
            let timeout = self
                .next_deadline()
                .map(|at| at.saturating_duration_since(Instant::now()));
            let timeout =
                EpollTimeout::try_from(timeout.unwrap_or(IDLE_WAKE) + Duration::from_micros(999))
                    .unwrap_or(EpollTimeout::MAX);
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(e) => return Err(jail::SysError::new("epoll_wait", e).into()),
            };
            let turn = Instant::now();
            for event in &events[..n] {
                self.dispatch(event.data());
            }
            let now = Instant::now();
            if self.ragnarok.is_some_and(|at| now >= at) {
                self.brutal_end();
                break;
            }
            self.fire_timers(now);
            self.surfaces_tick(now);
            if self.ragnarok.is_some() {
                self.tell_stop_wave(now);
            }
            self.sample_idle(now);
            self.poll_monitors(now);
            self.judge_backlog();
            self.process_queue(now);
            let ready = !self.warming_up && self.ragnarok.is_none();
            let table = &self.table;
            self.notify.tick(now, ready, || table.status_line());
            self.loop_clock.turn_took(turn.elapsed());
            if std::mem::take(&mut self.upgrade_asked) {
                self.upgrade();
            }
        }
        // Its socket closes: it exits, and is collected before the strays are.
        self.spawner.stop_clone_server();
        self.bury_strays();
        info!("the emperor is buried");
        Ok(())
    }

    fn dispatch(&mut self, token: u64) {
        match token {
            TOKEN_SIGNALS => self.on_signals(),
            TOKEN_STATS => self.answer_stats(),
            TOKEN_CONTROL => self.on_control_listener(),
            TOKEN_METRICS => self.answer_metrics(),
            t if (TOKEN_CONTROL_CLIENT..TOKEN_STATS_CLIENT).contains(&t) => {
                self.on_control_client(t)
            }
            t if (TOKEN_STATS_CLIENT..TOKEN_METRICS_CLIENT).contains(&t) => self.on_stats_client(t),
            t if (TOKEN_METRICS_CLIENT..TOKEN_MONITOR).contains(&t) => self.on_metrics_client(t),
            t if t >= TOKEN_ON_DEMAND => self.on_connection((t - TOKEN_ON_DEMAND) as usize),
            t if t >= TOKEN_VASSAL => self.on_vassal_link((t - TOKEN_VASSAL) as usize),
            t if t >= TOKEN_MONITOR => {
                let i = (t - TOKEN_MONITOR) as usize;
                let events = self.monitors[i].poll(Instant::now());
                self.on_monitor_events(events);
            }
            _ => {}
        }
    }

    /// The earliest moment something is due: a vassal timer, a monitor's debounce, config
    /// events waiting to be judged, the rescan, the spawn queue, an idle sample, the next wave
    /// of stops, the end of Ragnarok, a stats or control client's timeout.
    fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.next();
        let monitors = self.monitors.iter().filter_map(|m| m.deadline()).min();
        let now = Instant::now();
        let queue = (!self.queue.is_empty()).then(|| {
            if self.warming_up {
                now
            } else {
                self.spawn_budget.next_allowed(now)
            }
        });
        let rescan = (self.rescan_all || self.monitors.iter().any(|m| m.needs_periodic_rescan()))
            .then_some(self.next_rescan);
        let backlog = (!self.monitor_backlog.is_empty()).then_some(now);
        [
            timer,
            backlog,
            monitors,
            queue,
            rescan,
            self.on_demand.deadline(),
            self.notify.deadline(),
            self.ragnarok,
            self.stop_waves.deadline(),
            self.surfaces_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn poll_monitors(&mut self, now: Instant) {
        let rescan = now >= self.next_rescan;
        let rescan_all = rescan && std::mem::take(&mut self.rescan_all);
        if rescan {
            self.next_rescan = now + self.settings.freq;
        }
        for i in 0..self.monitors.len() {
            let events = if rescan && (rescan_all || self.monitors[i].needs_periodic_rescan()) {
                self.monitors[i].rescan()
            } else if self.monitors[i].deadline().is_some_and(|at| now >= at) {
                self.monitors[i].poll(now)
            } else {
                continue;
            };
            self.on_monitor_events(events);
        }
    }

    fn on_signals(&mut self) {
        while let Some(signal) = self.signals.next_pending() {
            match signal {
                Sig::SIGCHLD => self.reap(),
                Sig::SIGINT | Sig::SIGTERM | Sig::SIGQUIT => {
                    self.notify.stopping();
                    self.begin_ragnarok(signal)
                }
                Sig::SIGHUP => {
                    self.notify.reloading();
                    self.reload_all()
                }
                Sig::SIGUSR1 => self.log_table(),
                Sig::SIGUSR2 => self.upgrade_asked = true,
                Sig::SIGURG => self.clear_blacklist(),
                Sig::SIGWINCH => {
                    self.next_rescan = Instant::now();
                    self.rescan_all = true;
                }
                _ => {}
            }
        }
    }
}
