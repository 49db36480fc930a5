//! The emperor's own options as clap defines them (uWSGI's names); `settings.rs` decodes them.

use clap::Args;
use std::path::PathBuf;

/// Options of the emperor itself (uWSGI's names).
#[derive(Debug, Args)]
pub struct EmperorArgs {
    /// Where vassal configs live: dir://PATH, glob://PATTERN, a directory or a pattern. Repeatable.
    #[arg(long = "emperor", value_name = "SPEC")]
    pub monitors: Vec<String>,
    /// Use a symlink's own mtime (touch --no-dereference reloads one vassal).
    #[arg(long)]
    pub emperor_nofollow: bool,
    /// Seconds between safety-net rescans where inotify cannot see everything (events come from inotify at once; uWSGI polls every 3).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub emperor_freq: u64,
    /// A vassal's respawn backoff step in milliseconds: each death before it was loyal adds
    /// one (a vassal's own history only; see docs/uwsgi-differences.md).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub emperor_throttle: u64,
    /// The most a vassal's respawn backoff grows to, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 180_000)]
    pub emperor_max_throttle: u64,
    /// A runtime with nothing to do for this many milliseconds hibernates: it becomes a
    /// keeper of a few pages until its vassal needs it (0: never; see docs/PERFORMANCE.md).
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub emperor_hibernate_after: u64,
    /// Spawns at full speed before --emperor-spawn-rate applies: the guard against a spawn
    /// storm, shared round-robin by tenants.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub emperor_spawn_burst: u32,
    /// Spawns a second once the burst is spent (0: no cap).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub emperor_spawn_rate: u32,
    /// The most vassals one tenant (a config owner in tyrant mode, else a monitor) may have;
    /// further configs wait, shown over-quota, until one goes (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub emperor_tenant_max_vassals: usize,
    /// Seconds a vassal that sends heartbeats may stay silent before it is reloaded.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub emperor_required_heartbeat: u64,
    /// Seconds a vassal asked to stop may take before its runtime is killed.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub emperor_curse_tolerance: u64,
    /// Stats server address: host:port (TCP) or a UNIX socket path.
    #[arg(long, visible_alias = "emperor-stats-server", value_name = "ADDR")]
    pub emperor_stats: Option<String>,
    /// Prometheus metrics over HTTP (`GET /metrics`) on host:port (TCP) or a UNIX socket path.
    #[arg(long, value_name = "ADDR")]
    pub emperor_metrics: Option<String>,
    /// Control socket (a UNIX path, mode 0600): reloads and readiness for `emperor reload`,
    /// for the emperor's own uid and root only.
    #[arg(long, value_name = "PATH")]
    pub emperor_control: Option<PathBuf>,
    /// Option given to every vassal, before its own (KEY=VALUE). Repeatable.
    #[arg(long, value_name = "KEY=VALUE", alias = "vassals-set")]
    pub vassal_set: Vec<String>,
    /// File included after every vassal's config. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub vassals_include: Vec<PathBuf>,
    /// The uWSGI binary a vassal config without a binary patch runs (a uWSGI application);
    /// default: `uwsgi` found on PATH.
    #[arg(long, value_name = "PATH")]
    pub binary_path: Option<PathBuf>,
    /// The binary that runs each vassal's runtime (default: `emperor-vassal` beside this
    /// binary, else this one).
    #[arg(long, value_name = "PATH")]
    pub vassal_runtime: Option<PathBuf>,
    /// Read the emperor's options from this config file (section [uwsgi]).
    #[arg(long, value_name = "FILE")]
    pub ini: Option<PathBuf>,
    /// Namespaces for every vassal: fs,net,ipc,pid,uts (and user, cgroup).
    #[arg(long, value_name = "LIST")]
    pub emperor_use_clone: Option<String>,
    /// Tyrant mode: each vassal runs as its config file's owner, in a user namespace.
    #[arg(long)]
    pub emperor_tyrant: bool,
    /// Lowest uid/gid tyrant mode accepts as a config owner.
    #[arg(long, value_name = "ID", default_value_t = 1000)]
    pub emperor_tyrant_min_id: u32,
    /// Run the emperor itself as this uid (after start-up), keeping only the `cap` capabilities.
    #[arg(long, value_name = "UID")]
    pub uid: Option<String>,
    /// Run the emperor itself as this gid.
    #[arg(long, value_name = "GID")]
    pub gid: Option<String>,
    /// Capabilities the emperor keeps after dropping to `uid` (setuid,setgid for tyrant mode).
    #[arg(long, value_name = "LIST")]
    pub cap: Option<String>,
    /// Host TCP ports a tyrant vassal may bind with socket/http-socket/shared-socket, as
    /// `8000-8999,9090` (default: none).
    #[arg(long, value_name = "LIST")]
    pub emperor_tyrant_ports: Option<String>,
    /// Ceiling for every vassal's address space, in MB (a vassal can only go lower).
    #[arg(long, value_name = "MB")]
    pub vassal_limit_as: Option<u64>,
    /// Ceiling for every vassal's process count (RLIMIT_NPROC).
    #[arg(long, value_name = "N")]
    pub vassal_limit_nproc: Option<u64>,
    /// Ceiling for every vassal's open files (RLIMIT_NOFILE).
    #[arg(long, value_name = "N")]
    pub vassal_max_fd: Option<u64>,
    /// cgroup v2 directory for the vassals' cgroups: a path, "self" (the cgroup the emperor was
    /// started in, as systemd delegates it with Delegate=yes), or "none". Default:
    /// /sys/fs/cgroup/emperor when /sys/fs/cgroup is cgroup v2 and we are root.
    #[arg(long, value_name = "DIR")]
    pub emperor_cgroup: Option<String>,
    /// Ceiling for every vassal's memory (cgroup memory.max), e.g. 512M.
    #[arg(long, value_name = "SIZE")]
    pub vassal_memory_max: Option<String>,
    /// Ceiling for every vassal's tasks (cgroup pids.max).
    #[arg(long, value_name = "N")]
    pub vassal_pids_max: Option<u64>,
    /// Every vassal's cpu.weight (1-10000).
    #[arg(long, value_name = "N")]
    pub vassal_cpu_weight: Option<u64>,
    /// Ceiling for all of one tenant's vassals together (its slice's memory.max), e.g. 2G.
    #[arg(long, value_name = "SIZE")]
    pub tenant_memory_max: Option<String>,
    /// Ceiling for all of one tenant's tasks together (its slice's pids.max).
    #[arg(long, value_name = "N")]
    pub tenant_pids_max: Option<u64>,
    /// Each tenant's cpu.weight (1-10000): tenants share the CPU by these weights.
    #[arg(long, value_name = "N")]
    pub tenant_cpu_weight: Option<u64>,
    /// Log format of the emperor and its vassals' runtimes: text, journal (syslog priority
    /// prefixes, no timestamps; the default when stderr is systemd's journal) or json.
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "journal", "json"])]
    pub log_format: Option<String>,
    /// Memory a config reader's worker may use to load one vassal's config, in MiB (the
    /// emperor never parses a tenant's config itself; see docs/security.md).
    #[arg(long, value_name = "MIB", default_value_t = crate::config_reader::DEFAULT_WORKER_MEMORY_MIB)]
    pub emperor_reader_memory: u64,
}
