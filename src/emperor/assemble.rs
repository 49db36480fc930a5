//! What an emperor is made of, whether it starts afresh (mod.rs) or takes over from the
//! binary it replaces (upgrade/restore.rs): its monitors, its listeners (bound, or adopted
//! from the emperor before it), and the one place its fields are put together.

use super::quota::Quota;
use super::spawn::Spawner;
use super::stats_server::StatsServer;
use super::table::Table;
use super::throttle::{Blacklist, SpawnBudget};
use super::{control, fd_budget, notify, stop_waves, upgrade, Emperor, EmperorError, Settings};
use super::{
    TOKEN_CONTROL, TOKEN_CONTROL_CLIENT, TOKEN_METRICS, TOKEN_METRICS_CLIENT, TOKEN_STATS,
    TOKEN_STATS_CLIENT,
};
use crate::config_reader::ConfigReader;
use crate::monitor::{self, Monitor, MonitorOptions};
use jail::signals::SignalEvents;
use nix::sys::epoll::Epoll;
use std::os::fd::{OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// The settings' monitors, opened.
pub(super) fn open_monitors(settings: &Settings) -> Result<Vec<Box<dyn Monitor>>, EmperorError> {
    let options = MonitorOptions {
        nofollow: settings.nofollow,
        debounce: Duration::from_millis(0),
        freq: settings.freq,
    };
    Ok(settings
        .monitors
        .iter()
        .map(|spec| monitor::open(spec, &options))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Listening sockets the emperor before this one held (an upgrade), by number.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct HandedListeners {
    pub stats: Option<RawFd>,
    pub metrics: Option<RawFd>,
    pub control: Option<RawFd>,
}

/// The stats, metrics and control listeners.
pub(super) struct Listeners {
    pub stats: Option<StatsServer>,
    pub metrics: Option<StatsServer>,
    pub control: Option<control::ControlServer>,
}

impl Listeners {
    /// Each listener the settings ask for: the handed-over one when there is one, else bound
    /// now (the control socket owned by the identity the emperor takes). A handed-over one
    /// the settings no longer ask for is closed.
    pub fn open(
        settings: &Settings,
        handed: HandedListeners,
        adopt: impl Fn(RawFd) -> Result<OwnedFd, EmperorError>,
    ) -> Result<Self, EmperorError> {
        let server = |addr: &Option<String>, fd: Option<RawFd>, token, base, http: bool| {
            let Some(addr) = addr else {
                fd.map(&adopt).transpose()?;
                return Ok::<_, EmperorError>(None);
            };
            Ok(Some(match fd {
                Some(fd) => StatsServer::adopt(addr, adopt(fd)?, token, base, http),
                None if http => StatsServer::bind_http(addr, token, base)?,
                None => StatsServer::bind(addr, token, base)?,
            }))
        };
        let stats = server(
            &settings.stats,
            handed.stats,
            TOKEN_STATS,
            TOKEN_STATS_CLIENT,
            false,
        )?;
        let metrics = server(
            &settings.metrics,
            handed.metrics,
            TOKEN_METRICS,
            TOKEN_METRICS_CLIENT,
            true,
        )?;
        let control = match (&settings.control, handed.control) {
            (Some(path), Some(fd)) => Some(control::ControlServer::adopt(
                path,
                adopt(fd)?,
                TOKEN_CONTROL,
                TOKEN_CONTROL_CLIENT,
            )),
            (Some(path), None) => {
                let owner = settings.identity.map(|id| (id.uid, id.gid));
                Some(control::ControlServer::bind(
                    path,
                    TOKEN_CONTROL,
                    TOKEN_CONTROL_CLIENT,
                    owner,
                )?)
            }
            (None, fd) => {
                fd.map(&adopt).transpose()?;
                None
            }
        };
        Ok(Listeners {
            stats,
            metrics,
            control,
        })
    }
}

/// The parts a fresh start and a takeover each obtain their own way.
pub(super) struct Parts {
    pub notify: notify::Notifier,
    pub signals: SignalEvents,
    pub monitors: Vec<Box<dyn Monitor>>,
    pub epoll: Epoll,
    pub listeners: Listeners,
    pub spawner: Spawner,
    pub reader: ConfigReader,
    /// The open-files limit now.
    pub open_files: u64,
    pub life: upgrade::Life,
}

impl Emperor {
    /// An emperor of `parts` with no vassal yet: every other field starts empty.
    pub(super) fn assemble(settings: Settings, parts: Parts) -> Self {
        Emperor {
            spawn_budget: SpawnBudget::new(settings.spawn_rate, settings.spawn_burst),
            blacklist: Blacklist::new(settings.throttle, settings.max_throttle),
            quota: Quota::new(&settings),
            next_rescan: Instant::now() + settings.freq,
            rescan_all: false,
            settings,
            monitors: parts.monitors,
            signals: parts.signals,
            epoll: parts.epoll,
            stats: parts.listeners.stats,
            metrics: parts.listeners.metrics,
            spawn_latency: Default::default(),
            loop_clock: Default::default(),
            control: parts.listeners.control,
            table: Table::default(),
            queue: Default::default(),
            timers: Default::default(),
            spawner: parts.spawner,
            monitor_backlog: Default::default(),
            scan_left: 0,
            warming_up: true,
            ragnarok: None,
            stop_waves: stop_waves::StopWaves::default(),
            refused: Default::default(),
            held: Default::default(),
            on_demand: Default::default(),
            reader: std::cell::RefCell::new(parts.reader),
            notify: parts.notify,
            fd_budget: fd_budget::FdBudget::new(parts.open_files, fd_budget::open_now()),
            life: parts.life,
            upgrade_asked: false,
        }
    }
}
