//! The command line: uWSGI-compatible long options for the emperor, plus the `vassal`,
//! `check` and `stats` subcommands. `--ini FILE` reads the emperor's own options from a file.

use crate::config::{self, LoadOptions};
use crate::emperor::Settings;
use crate::helper_identity::EmperorIdentity;
use crate::policy::{Ceilings, JailContext};
use clap::{Args, CommandFactory, Parser, Subcommand};
use jail::caps::CapSet;
use jail::ns::Namespaces;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// `emperor --version`: the package version and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("EMPEROR_GIT_REVISION"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "emperor",
    version = VERSION,
    about = "A sandboxing supervisor in the spirit of the uWSGI Emperor"
)]
#[command(args_conflicts_with_subcommands = true, args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub emperor: EmperorArgs,
}

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one vassal in the foreground (what the emperor runs for each config).
    Vassal(VassalCommand),
    /// Parse and expand a config, print the resolved options or the errors.
    Check(VassalCommand),
    /// Print an emperor's stats JSON.
    Stats {
        /// host:port or a UNIX socket path.
        addr: String,
    },
    /// A live view of an emperor's vassals over its stats socket (as uwsgitop or htop).
    ///
    /// One row per vassal: name, tenant, state, runtime pid, uptime, respawns, loyal, and the
    /// memory (RSS) and CPU of its runtime and every descendant, from /proc when the emperor is
    /// on this host (a UNIX socket, or TCP on 127.0.0.0/8 or ::1). Keys: q quit, s next sort
    /// column, r reverse, t next tenant, / or f type a name filter (Enter keeps it, Esc clears
    /// it), up/down, PgUp/PgDn, Home/End scroll.
    Top(TopCommand),
    /// Reload vassals one wave at a time, keeping a minimum of them ready (seed 003).
    Reload(ReloadCommand),
    /// Replace the running emperor by the binary now installed at its path, in the same pid,
    /// every vassal kept running (as SIGUSR2). Exit 0 once the new binary has taken over, 1
    /// when the upgrade failed (the old binary goes on), 2 when the emperor cannot be asked.
    Upgrade(UpgradeCommand),
    /// The emperor's clone server (started by the emperor, on its socket at fd 3).
    #[command(hide = true)]
    CloneServer(CloneServerCommand),
    /// The emperor's config reader (started by the emperor, on its socket at fd 3).
    #[command(hide = true)]
    ConfigReader(ConfigReaderCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Write the man pages (emperor.1 and one per subcommand) into DIR.
    Manpages { dir: PathBuf },
}

/// The `emperor` command as clap sees it (for completions and man pages).
pub fn command() -> clap::Command {
    Cli::command()
}

/// `top ADDR [--interval S] [--tenant T] [--sort KEY]`.
#[derive(Debug, Args)]
pub struct TopCommand {
    /// The stats server: host:port (TCP) or a UNIX socket path.
    pub addr: String,
    /// Seconds between refreshes.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub interval: f64,
    /// Show only this tenant's vassals at first (`t` cycles the tenants).
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// The column rows are sorted by at first (`s` cycles them, `r` reverses).
    #[arg(long, value_name = "KEY", value_enum, default_value_t = crate::top::SortKey::Name)]
    pub sort: crate::top::SortKey,
}

impl TopCommand {
    pub fn into_top_args(self) -> Result<crate::top::TopArgs, String> {
        let interval = Duration::try_from_secs_f64(self.interval)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                format!(
                    "--interval: {} is not a positive number of seconds",
                    self.interval
                )
            })?;
        Ok(crate::top::TopArgs {
            addr: self.addr,
            interval,
            tenant: self.tenant,
            sort: self.sort,
        })
    }
}

/// `config-reader --memory-mib M [--uid U --gid G --keep-caps BITS]`: what the emperor starts
/// it with.
#[derive(Debug, Args)]
pub struct ConfigReaderCommand {
    /// The memory each worker may use, MiB.
    #[arg(long, default_value_t = crate::config_reader::DEFAULT_WORKER_MEMORY_MIB)]
    pub memory_mib: u64,
    #[command(flatten)]
    pub identity: CloneServerCommand,
}

/// `clone-server [--uid U --gid G --keep-caps BITS]`: what the emperor starts it with.
#[derive(Debug, Args)]
pub struct CloneServerCommand {
    /// The unprivileged emperor's uid, taken at start.
    #[arg(long, requires_all = ["gid", "keep_caps"])]
    pub uid: Option<u32>,
    #[arg(long, requires = "uid")]
    pub gid: Option<u32>,
    /// The capabilities it keeps, as a bit set.
    #[arg(long, requires = "uid")]
    pub keep_caps: Option<u64>,
}

impl CloneServerCommand {
    pub fn identity(&self) -> Option<EmperorIdentity> {
        Some(EmperorIdentity {
            uid: self.uid?,
            gid: self.gid?,
            keep: CapSet(self.keep_caps?),
        })
    }
}

#[derive(Debug, Args)]
pub struct UpgradeCommand {
    /// The emperor's control socket (its --emperor-control).
    #[arg(long, value_name = "PATH")]
    pub control: PathBuf,
    /// Seconds after which it stops waiting for the outcome.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub timeout: f64,
}

#[derive(Debug, Args)]
pub struct ReloadCommand {
    /// The emperor's control socket (its --emperor-control).
    #[arg(long, value_name = "PATH")]
    pub control: PathBuf,
    /// Vassal names or glob patterns (`web*.ini`); none means every vassal.
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Only the vassals of this pool (the value of their `pool-socket`).
    #[arg(long, value_name = "ADDR")]
    pub pool: Option<String>,
    /// Vassals that must be ready (accepting) at every moment of the reload.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub minimum_active_vassals: usize,
    /// Seconds after which the reload gives up and reports what is not done.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub timeout: f64,
    /// Seconds between two looks at the vassals' readiness.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.1)]
    pub check_interval: f64,
    /// No progress lines (they are shown only on a terminal anyway).
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct VassalCommand {
    /// Namespaces the emperor asks for (as its emperor-use-clone).
    #[arg(
        long = "jail-namespaces",
        visible_alias = "emperor-use-clone",
        value_name = "LIST",
        default_value = ""
    )]
    pub jail_namespaces: String,
    /// Namespaces the clone already created (set by the emperor).
    #[arg(
        long = "jail-cloned",
        value_name = "LIST",
        default_value = "",
        hide = true
    )]
    pub jail_cloned: String,
    /// Judge the config as tyrant mode would (a tenant's config).
    #[arg(long = "tyrant", visible_alias = "emperor-tyrant")]
    pub tyrant: bool,
    /// `emperor check`: fail (exit 1) on warnings too, such as an option nobody carries out.
    #[arg(long)]
    pub strict: bool,
    #[arg(long = "ceiling-as", hide = true)]
    pub ceiling_as: Option<u64>,
    #[arg(long = "ceiling-nproc", hide = true)]
    pub ceiling_nproc: Option<u64>,
    #[arg(long = "ceiling-nofile", hide = true)]
    pub ceiling_nofile: Option<u64>,
    /// Host TCP ports a tyrant vassal may bind (from the emperor's --emperor-tyrant-ports).
    #[arg(long = "tyrant-ports", hide = true, default_value = "")]
    pub tyrant_ports: String,
    /// Configs already tried before this fallback config (loop detection). Repeatable.
    #[arg(long = "fallback-tried", hide = true)]
    pub fallback_tried: Vec<PathBuf>,
    /// Fallback levels to go down at once, before the jail: the payload of each config above
    /// failed to start in an earlier runtime (set by the emperor after byte 40).
    #[arg(long = "fall-back", hide = true, default_value_t = 0)]
    pub fall_back: u32,
    /// An fd (passed by the emperor) on the payload's cgroup v2 directory.
    #[arg(long = "cgroup-fd", hide = true)]
    pub cgroup_fd: Option<i32>,
    /// An fd (passed by the emperor) on the listening socket it holds for the config's
    /// `on-demand-socket`: the payload gets it instead of a socket of the runtime's own.
    #[arg(long = "held-fd", hide = true)]
    pub held_fd: Option<i32>,
    /// An fd (passed by the emperor) on a sealed memfd holding the config's text, for configs
    /// that came from a monitor; the config argument is then only its name.
    #[arg(long = "config-fd", hide = true)]
    pub config_fd: Option<i32>,
    /// An option placed before the config's own (KEY=VALUE). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// A file loaded after the config. Repeatable.
    #[arg(long = "include", value_name = "FILE")]
    pub includes: Vec<PathBuf>,
    /// The uWSGI binary a config without a binary patch runs (default: `uwsgi` on PATH).
    #[arg(long = "binary-path", value_name = "PATH")]
    pub binary_path: Option<PathBuf>,
    /// The vassal's name as the emperor knows it (its log records' VASSAL field under
    /// journald; default: the config's file name).
    #[arg(long = "name", hide = true)]
    pub name: Option<String>,
    /// The vassal's tenant as the emperor counts it (its log records' TENANT field).
    #[arg(long = "tenant", hide = true)]
    pub tenant: Option<String>,
    /// Hibernate after this many milliseconds with nothing to do (none: never).
    #[arg(long = "hibernate-after", hide = true, value_name = "MS")]
    pub hibernate_after: Option<u64>,
    /// The state this runtime left when it hibernated (its keeper woke it).
    #[arg(long = "resume-fd", hide = true)]
    pub resume_fd: Option<i32>,
    /// The vassal's config file.
    pub config: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("{origin}: option \"{key}\": not an emperor option")]
    UnknownOption { origin: String, key: String },
    #[error("{what} {value:?}: expected KEY=VALUE")]
    NotKeyValue { what: &'static str, value: String },
    #[error("{option} {value:?}: {reason}")]
    BadValue {
        option: &'static str,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Parse(String),
}

/// Parse the process's arguments, expanding `--ini FILE` into the options it holds (placed
/// before the command line's own, so the command line wins).
pub fn parse() -> Result<Cli, CliError> {
    let args: Vec<OsString> = std::env::args_os().collect();
    Ok(Cli::parse_from(expand_ini(args)?))
}

fn expand_ini(args: Vec<OsString>) -> Result<Vec<OsString>, CliError> {
    let is_subcommand = args
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| ["vassal", "check", "stats", "reload", "help"].contains(&a));
    let position = args.iter().position(|a| a == "--ini");
    let (Some(i), false) = (position, is_subcommand) else {
        return Ok(args);
    };
    let Some(file) = args.get(i + 1) else {
        return Ok(args);
    };
    let config = config::load(std::path::Path::new(file), &LoadOptions::default())?;
    let command = Cli::command();
    let mut from_file = Vec::new();
    for entry in &config.entries {
        let key = config::normalize_key(&entry.key);
        let arg = command
            .get_arguments()
            .find(|a| {
                a.get_long() == Some(key.as_str())
                    || a.get_all_aliases()
                        .is_some_and(|al| al.contains(&key.as_str()))
            })
            .filter(|a| a.get_long() != Some("ini"))
            .ok_or_else(|| CliError::UnknownOption {
                origin: entry.origin.to_string(),
                key: entry.key.clone(),
            })?;
        let long = format!("--{}", arg.get_long().expect("long option"));
        if arg.get_action().takes_values() {
            from_file.push(OsString::from(long));
            from_file.push(OsString::from(&entry.value));
        } else if config::parse_flag(&entry.value) {
            from_file.push(OsString::from(long));
        }
    }
    let mut expanded = vec![args[0].clone()];
    expanded.extend(from_file);
    expanded.extend(args.into_iter().skip(1));
    Ok(expanded)
}

fn key_value(what: &'static str, value: &str) -> Result<(String, String), CliError> {
    value
        .split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| CliError::NotKeyValue {
            what,
            value: value.to_string(),
        })
}

impl EmperorArgs {
    /// The emperor's settings; `UWSGI_VASSAL_*` variables become vassal-set options.
    pub fn settings(&self) -> Result<Settings, CliError> {
        let mut vassal_sets = config::vassal_env_sets(std::env::vars());
        for set in &self.vassal_set {
            vassal_sets.push(key_value("--vassal-set", set)?);
        }
        let monitors = self.monitors.iter().map(|m| monitor_spec(m)).collect();
        let use_clone = match &self.emperor_use_clone {
            Some(list) => list.parse::<Namespaces>().map_err(|e| CliError::BadValue {
                option: "--emperor-use-clone",
                value: list.clone(),
                reason: e.to_string(),
            })?,
            None => Namespaces::NONE,
        };
        Ok(Settings {
            use_clone,
            tyrant: self.emperor_tyrant,
            tyrant_min_id: self.emperor_tyrant_min_id,
            tyrant_ports: match &self.emperor_tyrant_ports {
                Some(list) => list.parse().map_err(|reason| CliError::BadValue {
                    option: "--emperor-tyrant-ports",
                    value: list.clone(),
                    reason,
                })?,
                None => Default::default(),
            },
            identity: self.identity()?,
            cgroup_root: self.cgroup_root()?,
            cgroup_ceilings: self.cgroup_ceilings()?,
            tenant_limits: self.tenant_limits()?,
            ceilings: Ceilings {
                address_space: self.vassal_limit_as,
                processes: self.vassal_limit_nproc,
                open_files: self.vassal_max_fd,
            },
            monitors,
            nofollow: self.emperor_nofollow,
            freq: Duration::from_secs(self.emperor_freq.max(1)),
            throttle: Duration::from_millis(self.emperor_throttle),
            max_throttle: Duration::from_millis(self.emperor_max_throttle),
            hibernate_after: (self.emperor_hibernate_after > 0)
                .then(|| Duration::from_millis(self.emperor_hibernate_after)),
            spawn_rate: self.emperor_spawn_rate,
            spawn_burst: self.emperor_spawn_burst,
            tenant_max_vassals: (self.emperor_tenant_max_vassals > 0)
                .then_some(self.emperor_tenant_max_vassals),
            required_heartbeat: Duration::from_secs(self.emperor_required_heartbeat),
            curse_tolerance: Duration::from_secs(self.emperor_curse_tolerance),
            stats: self.emperor_stats.clone(),
            metrics: self.emperor_metrics.clone(),
            control: self.emperor_control.clone(),
            vassal_sets,
            vassals_include: self.vassals_include.iter().map(|p| absolute(p)).collect(),
            runtime_binary: self.vassal_runtime.clone(),
            uwsgi_binary: self.binary_path.as_deref().map(absolute),
            reader_memory_mib: self.emperor_reader_memory,
        })
    }
}

impl EmperorArgs {
    /// Where vassal cgroups go: the option (`self`: the emperor's own cgroup, delegated to it),
    /// else /sys/fs/cgroup/emperor on a cgroup v2 host when we are root.
    fn cgroup_root(&self) -> Result<Option<PathBuf>, CliError> {
        let root = std::path::Path::new("/sys/fs/cgroup");
        Ok(match self.emperor_cgroup.as_deref() {
            Some("none") => None,
            Some("self") => Some(own_cgroup(root).map_err(|reason| CliError::BadValue {
                option: "--emperor-cgroup",
                value: "self".into(),
                reason,
            })?),
            Some(dir) => Some(PathBuf::from(dir)),
            None => (nix::unistd::geteuid().is_root() && jail::cgroup::is_cgroup2(root))
                .then(|| root.join("emperor")),
        })
    }

    fn cgroup_ceilings(&self) -> Result<jail::cgroup::Limits, CliError> {
        let memory_max = size_option("--vassal-memory-max", &self.vassal_memory_max)?;
        let pids_max = self.vassal_pids_max.or(self
            .emperor_tyrant
            .then_some(crate::policy::TENANT_DEFAULT_PIDS));
        Ok(jail::cgroup::Limits {
            memory_max,
            pids_max,
            cpu_max: None,
            cpu_weight: self.vassal_cpu_weight,
        })
    }

    fn tenant_limits(&self) -> Result<jail::cgroup::Limits, CliError> {
        Ok(jail::cgroup::Limits {
            memory_max: size_option("--tenant-memory-max", &self.tenant_memory_max)?,
            pids_max: self.tenant_pids_max,
            cpu_max: None,
            cpu_weight: self.tenant_cpu_weight,
        })
    }

    /// `uid`, `gid`, `cap`: who the emperor becomes after start-up.
    fn identity(&self) -> Result<Option<EmperorIdentity>, CliError> {
        let Some(uid) = &self.uid else {
            if let Some(gid) = &self.gid {
                return Err(CliError::BadValue {
                    option: "--gid",
                    value: gid.clone(),
                    reason: "needs --uid too".into(),
                });
            }
            return Ok(None);
        };
        let uid_number = resolve_user(uid)?;
        let gid_number = match &self.gid {
            Some(gid) => resolve_group(gid)?,
            None => uid_number,
        };
        let keep = match &self.cap {
            Some(list) => list.parse::<CapSet>().map_err(|e| CliError::BadValue {
                option: "--cap",
                value: list.clone(),
                reason: e.to_string(),
            })?,
            None => CapSet::EMPTY,
        };
        Ok(Some(EmperorIdentity {
            uid: uid_number,
            gid: gid_number,
            keep,
        }))
    }
}

fn resolve_user(name: &str) -> Result<u32, CliError> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
        .ok_or_else(|| CliError::BadValue {
            option: "--uid",
            value: name.to_string(),
            reason: "no such user".into(),
        })
}

fn resolve_group(name: &str) -> Result<u32, CliError> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
        .ok_or_else(|| CliError::BadValue {
            option: "--gid",
            value: name.to_string(),
            reason: "no such group".into(),
        })
}

/// Relative monitor paths are resolved now: the runtimes do not share our working directory.
fn monitor_spec(spec: &str) -> String {
    if spec.contains("://") || spec.starts_with('/') {
        return spec.to_string();
    }
    absolute(std::path::Path::new(spec)).display().to_string()
}

fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

impl VassalCommand {
    pub fn jail_context(&self) -> Result<JailContext, CliError> {
        let namespaces = |option: &'static str, value: &str| {
            value.parse::<Namespaces>().map_err(|e| CliError::BadValue {
                option,
                value: value.to_string(),
                reason: e.to_string(),
            })
        };
        Ok(JailContext {
            emperor_namespaces: namespaces("--jail-namespaces", &self.jail_namespaces)?,
            cloned: namespaces("--jail-cloned", &self.jail_cloned)?,
            tyrant: self.tyrant,
            cgroup_fd: self.cgroup_fd,
            held_fd: self.held_fd,
            tyrant_ports: self
                .tyrant_ports
                .parse()
                .map_err(|reason| CliError::BadValue {
                    option: "--tyrant-ports",
                    value: self.tyrant_ports.clone(),
                    reason,
                })?,
            ceilings: Ceilings {
                address_space: self.ceiling_as,
                processes: self.ceiling_nproc,
                open_files: self.ceiling_nofile,
            },
        })
    }

    /// What `emperor vassal` (or `emperor-vassal vassal`) runs.
    pub fn into_vassal_args(self) -> Result<crate::runtime_args::VassalArgs, CliError> {
        let load = self.load_options()?;
        let jail = self.jail_context()?;
        Ok(crate::runtime_args::VassalArgs {
            config: self.config,
            config_fd: self.config_fd,
            load,
            jail,
            fallback_tried: self.fallback_tried,
            fall_back: self.fall_back,
            uwsgi_binary: self.binary_path,
            name: self.name,
            tenant: self.tenant,
            hibernate_after: self.hibernate_after.map(Duration::from_millis),
            resume_fd: self.resume_fd,
        })
    }

    pub fn load_options(&self) -> Result<LoadOptions, CliError> {
        let sets = self
            .sets
            .iter()
            .map(|s| key_value("--set", s))
            .collect::<Result<_, _>>()?;
        Ok(LoadOptions {
            sets,
            includes: self.includes.clone(),
            environment: None,
        })
    }
}

/// Decode a runtime's command line as [`crate::runtime_args::VassalArgs::to_argv`] made it
/// (without the program name).
pub fn decode_vassal_args(argv: &[String]) -> Result<crate::runtime_args::VassalArgs, CliError> {
    let program = std::iter::once("emperor".to_string());
    let cli = Cli::try_parse_from(program.chain(argv.iter().cloned()))
        .map_err(|e| CliError::Parse(e.to_string()))?;
    match cli.command {
        Some(Command::Vassal(command)) => command.into_vassal_args(),
        _ => Err(CliError::Parse("not a vassal command line".to_string())),
    }
}

/// The cgroup v2 directory this process was started in (`0::/system.slice/emperor.service` in
/// /proc/self/cgroup), which must not be the hierarchy's root.
fn own_cgroup(mount: &std::path::Path) -> Result<PathBuf, String> {
    let text = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("read /proc/self/cgroup: {e}"))?;
    let path = text
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or("no cgroup v2 entry in /proc/self/cgroup")?;
    if path == "/" || !jail::cgroup::is_cgroup2(mount) {
        return Err(format!(
            "the emperor was started in the cgroup v2 root ({path}) or without cgroup v2 on {}: \
             \"self\" needs a cgroup delegated to it (Delegate=yes)",
            mount.display()
        ));
    }
    Ok(mount.join(path.trim_start_matches('/')))
}

/// A size option (`512M`), or the error naming it.
fn size_option(option: &'static str, text: &Option<String>) -> Result<Option<u64>, CliError> {
    text.as_ref()
        .map(|text| {
            crate::policy::parse_size(text).ok_or_else(|| CliError::BadValue {
                option,
                value: text.clone(),
                reason: "expected a size such as 512M".into(),
            })
        })
        .transpose()
}
