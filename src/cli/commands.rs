//! The clap definitions of `emperor` and its subcommands (what `--help` and the man pages
//! show); their decoding into the project's types is in `decode.rs`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

use super::{EmperorArgs, VERSION};

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
    CloneServer(CloneServerArgs),
    /// The emperor's config reader (started by the emperor, on its socket at fd 3).
    #[command(hide = true)]
    ConfigReader(ConfigReaderCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Write the man pages (emperor.1 and one per subcommand) into DIR.
    Manpages { dir: PathBuf },
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

/// `clone-server [--in-process] [--uid U --gid G --keep-caps BITS]`: what the emperor starts
/// it with.
#[derive(Debug, Args)]
pub struct CloneServerArgs {
    /// Start every runtime, each in a copy of the server (the root emperor's server).
    #[arg(long)]
    pub in_process: bool,
    #[command(flatten)]
    pub identity: CloneServerCommand,
}

/// `--uid U --gid G --keep-caps BITS`: the identity a helper takes.
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
    /// The keeper's image, sealed by the emperor and shared by its runtimes.
    #[arg(long = "keeper-fd", hide = true)]
    pub keeper_fd: Option<i32>,
    /// The vassal's config file.
    pub config: PathBuf,
}
