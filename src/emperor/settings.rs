//! The emperor's settings (from its command line or its --ini file) and its errors.

use super::{control, stats_server};
use crate::helper_identity::EmperorIdentity;
use crate::monitor;
use crate::policy::Ceilings;
use jail::ns::Namespaces;
use std::path::PathBuf;
use std::time::Duration;

/// The emperor's settings (from its command line or its --ini file).
#[derive(Debug, Clone)]
pub struct Settings {
    pub monitors: Vec<String>,
    pub nofollow: bool,
    /// Safety-net rescan period (`--emperor-freq`).
    pub freq: Duration,
    pub throttle: Duration,
    pub max_throttle: Duration,
    /// How long a runtime waits with nothing to do before it hibernates (None: never).
    pub hibernate_after: Option<Duration>,
    /// The spawn budget: spawns a second after a burst (0: no cap).
    pub spawn_rate: u32,
    pub spawn_burst: u32,
    /// The most vassals one tenant may have (`--emperor-tenant-max-vassals`).
    pub tenant_max_vassals: Option<usize>,
    pub required_heartbeat: Duration,
    /// How long a vassal asked to stop may take before its runtime is killed.
    pub curse_tolerance: Duration,
    pub stats: Option<String>,
    /// Where Prometheus metrics are served over HTTP (`--emperor-metrics`).
    pub metrics: Option<String>,
    /// The control socket (`--emperor-control`).
    pub control: Option<PathBuf>,
    pub vassal_sets: Vec<(String, String)>,
    pub vassals_include: Vec<PathBuf>,
    /// `--vassal-runtime`: the binary that runs each vassal's runtime.
    pub runtime_binary: Option<PathBuf>,
    /// `--binary-path`: the uWSGI binary uWSGI applications run (None: `uwsgi` on PATH).
    pub uwsgi_binary: Option<PathBuf>,
    /// Namespaces for every vassal (`emperor-use-clone`).
    pub use_clone: Namespaces,
    pub tyrant: bool,
    /// Lowest uid/gid tyrant mode accepts as a config owner (0 is always refused).
    pub tyrant_min_id: u32,
    /// Who the emperor becomes after start-up (the unprivileged emperor).
    pub identity: Option<EmperorIdentity>,
    pub ceilings: Ceilings,
    /// Host TCP ports tyrant vassals may bind (`--emperor-tyrant-ports`).
    pub tyrant_ports: crate::policy::PortList,
    /// cgroup v2 directory under which each vassal gets its cgroup.
    pub cgroup_root: Option<PathBuf>,
    /// The admin's cgroup limits for every vassal.
    pub cgroup_ceilings: jail::cgroup::Limits,
    /// Each tenant's slice limits (`--tenant-memory-max`, `--tenant-pids-max`,
    /// `--tenant-cpu-weight`).
    pub tenant_limits: jail::cgroup::Limits,
    /// What a config reader's worker may map to load one config, MiB.
    pub reader_memory_mib: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum EmperorError {
    #[error("no imperial monitor: give at least one --emperor DIR")]
    NoMonitor,
    #[error("{0}")]
    Monitor(#[from] monitor::MonitorError),
    #[error("{0}")]
    Stats(#[from] stats_server::StatsError),
    #[error("{0}")]
    Control(#[from] control::ControlError),
    #[error("{0}")]
    Sys(#[from] jail::SysError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{0}")]
    Reader(#[from] crate::config_reader::ReaderError),
    #[error("dropping the emperor to uid {uid}: {reason}")]
    Drop { uid: u32, reason: String },
    #[error("taking over from the previous emperor: {0}")]
    Takeover(String),
}
