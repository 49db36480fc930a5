//! The vassal runtime: `emperor vassal CONFIG`. The first process of a vassal: it reads the
//! config, starts the payload and stays as its supervisor (reaps, forwards signals, turns the
//! emperor's stop and reload bytes into signals for the payload, takes the payload's whole
//! process tree with it when it goes).

mod emperor_link;
mod fifo;
mod hooks;
pub mod payload;
pub mod policy;
mod supervise;

use crate::config::{self, Config, LoadOptions};
use emperor_link::EmperorLink;
use jail::signals::{Sig, SignalEvents};
use std::path::PathBuf;
use std::time::Duration;
use supervise::{Outcome, Supervisor};
use tracing::{error, info};

/// Exit status for "the config is unusable" (uWSGI's, which also triggers fallback-config).
pub const EXIT_CONFIG_ERROR: i32 = 1;
/// Default time a payload gets between SIGTERM and SIGKILL (uWSGI's 30 s is far too long).
pub const DEFAULT_MERCY: Duration = Duration::from_secs(5);
/// Default time a payload must stay up before the vassal counts as loyal.
pub const DEFAULT_LOYAL_AFTER: Duration = Duration::from_secs(5);

/// What the emperor (or a user on the command line) asks the runtime to run.
#[derive(Debug, Clone)]
pub struct VassalArgs {
    pub config: PathBuf,
    pub load: LoadOptions,
    pub jail: policy::JailContext,
}

/// Exit status asking the emperor to start the vassal afresh: a reload changed its jail,
/// which a running runtime cannot redo.
pub const EXIT_RESPAWN: i32 = 75;

/// Timings a vassal's config may set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timings {
    pub mercy: Duration,
    pub loyal_after: Duration,
}

/// Run the vassal until it is stopped; returns the process exit status.
pub fn run(args: VassalArgs) -> i32 {
    let name = args.config.display().to_string();
    let span = tracing::info_span!("vassal", name = %name);
    let _enter = span.enter();
    match run_inner(&args) {
        Ok(code) => code,
        Err(message) => {
            error!("{message}");
            EXIT_CONFIG_ERROR
        }
    }
}

fn run_inner(args: &VassalArgs) -> Result<i32, String> {
    let mut link = EmperorLink::from_env().map_err(|e| e.to_string())?;
    jail::process::become_subreaper().map_err(|e| e.to_string())?;
    let signals = SignalEvents::new(&[
        Sig::SIGTERM,
        Sig::SIGINT,
        Sig::SIGQUIT,
        Sig::SIGHUP,
        Sig::SIGCHLD,
        Sig::SIGUSR1,
        Sig::SIGUSR2,
        Sig::SIGWINCH,
    ])
    .map_err(|e| e.to_string())?;
    let cgroup = args
        .jail
        .cgroup_fd
        .map(jail::fd::adopt_inherited)
        .transpose()
        .map_err(|e| format!("--cgroup-fd: {e}"))?;
    let mut supervisor = Supervisor::new(signals, cgroup);
    let mut jailed: Option<Vec<policy::SetupItem>> = None;
    loop {
        let config = config::load(&args.config, &args.load).map_err(|e| e.to_string())?;
        let plan = policy::plan(&config, &args.jail).map_err(|e| e.to_string())?;
        let timings = timings(&config).map_err(|e| e.to_string())?;
        let payload =
            payload::payload_from_config(&config, &loader_args(args)).map_err(|e| e.to_string())?;
        match &jailed {
            None => {
                set_up_jail(&plan, &payload)
                    .map_err(|e| format!("{}: {e}", config.path.display()))?;
                jailed = Some(plan.setup.clone());
            }
            Some(setup) if *setup != plan.setup => {
                info!("the jail part of the config changed: asking for a fresh vassal");
                return Ok(EXIT_RESPAWN);
            }
            Some(_) => {}
        }
        // After the mounts, so a path in the jail is the jail's view; before the payload.
        bind_fifo(&mut supervisor, &config)?;
        supervisor.pidfile = config_path(&config, "pidfile").pop();
        run_user_hooks(&plan, &payload).map_err(|e| format!("{}: {e}", config.path.display()))?;
        let running = supervisor.start(&payload, &plan, &link).map_err(|e| {
            format!(
                "{}: option \"{}\": {e}",
                config.path.display(),
                payload.option
            )
        })?;
        info!(pid = running.as_raw(), program = %payload.program.display(), "payload started");
        link.send(crate::protocol::Message::Spawned);
        if supervisor.pidfile.is_some() {
            supervisor.write_pidfile();
        }
        match supervisor.supervise(&mut link, timings) {
            Outcome::Reload => info!("reloading"),
            Outcome::Exit(code) => return Ok(code),
        }
    }
}

/// Every value of a path option, relative ones taken from the config's directory.
fn config_path(config: &Config, key: &str) -> Vec<PathBuf> {
    let dir = config.path.parent().unwrap_or(std::path::Path::new("."));
    config.get_all(key).map(|e| dir.join(&e.value)).collect()
}

/// Make the master FIFO the config asks for, unless the same one is already there.
fn bind_fifo(supervisor: &mut Supervisor, config: &Config) -> Result<(), String> {
    let slots = config_path(config, "master-fifo");
    if slots.len() > fifo::MAX_SLOTS {
        return Err(format!(
            "{}: master-fifo: at most {} slots (0-9), {} given",
            config.path.display(),
            fifo::MAX_SLOTS,
            slots.len()
        ));
    }
    if supervisor.fifo.as_ref().map(|f| f.slots()) == Some(&slots[..]) {
        return Ok(());
    }
    supervisor.fifo = None;
    if !slots.is_empty() {
        let fifo =
            fifo::MasterFifo::open(slots).map_err(|e| format!("{}: {e}", config.path.display()))?;
        supervisor.fifo = Some(fifo);
    }
    Ok(())
}

/// The runtime's own jail steps, once: namespaces it enters itself, hooks as root, hostname,
/// mounts. Each failure names its step and syscall.
fn set_up_jail(plan: &policy::VassalPlan, payload: &payload::Payload) -> Result<(), String> {
    for item in &plan.setup {
        match item {
            policy::SetupItem::Jail(step) => {
                let option = policy::option_of(step);
                jail::plan::apply(std::slice::from_ref(step))
                    .map_err(|e| format!("option \"{option}\": {e}"))?;
            }
            policy::SetupItem::HookAsRoot(command) => {
                hooks::run("exec-as-root", command, payload, None).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

fn run_user_hooks(plan: &policy::VassalPlan, payload: &payload::Payload) -> Result<(), String> {
    for command in &plan.user_hooks {
        hooks::run("exec-as-user", command, payload, Some(&plan.drop))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The arguments a plain (non `-arg`) binary patch gets: what uWSGI would get, `--ini FILE`.
fn loader_args(args: &VassalArgs) -> Vec<String> {
    let path = args.config.display().to_string();
    let flag = match args.config.extension().and_then(|e| e.to_str()) {
        Some("xml") => "--xml",
        Some("yml") | Some("yaml") => "--yaml",
        Some("json") | Some("js") => "--json",
        _ => "--ini",
    };
    vec![flag.to_string(), path]
}

/// The vassal's timing options (`reload-mercy`, `loyal-after`), or the first invalid one.
pub fn timings(config: &Config) -> Result<Timings, config::ConfigError> {
    let seconds = |key: &str, default: Duration| -> Result<Duration, config::ConfigError> {
        Ok(config
            .get_parsed::<f64>(key)?
            .map(Duration::from_secs_f64)
            .unwrap_or(default))
    };
    Ok(Timings {
        mercy: seconds("reload-mercy", DEFAULT_MERCY)?,
        loyal_after: seconds("loyal-after", DEFAULT_LOYAL_AFTER)?,
    })
}
