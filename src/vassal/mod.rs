//! The vassal runtime: `emperor vassal CONFIG`. The first process of a vassal: it reads the
//! config, starts the payload and stays as its supervisor (reaps, forwards signals, turns the
//! emperor's stop and reload bytes into signals for the payload, takes the payload's whole
//! process tree with it when it goes).

mod channel;
mod emperor_link;
mod fifo;
mod hooks;
mod line_budget;
mod output;
mod ready;
mod supervise;

use crate::config::{self, Config};
use crate::policy::{self, payload, uwsgi};
use crate::sockets;
use emperor_link::EmperorLink;
use jail::signals::{Sig, SignalEvents};
use std::path::{Path, PathBuf};
use supervise::{Outcome, Supervisor};
use tracing::{error, info, warn};

use crate::policy::timings::timings;
use crate::protocol::{EXIT_CONFIG_ERROR, EXIT_RESPAWN};

pub use crate::runtime_args::VassalArgs;

/// Run the vassal until it is stopped; returns the process exit status.
pub fn run(args: VassalArgs) -> i32 {
    let name = args.config.display().to_string();
    let span = tracing::info_span!("vassal", config = %name);
    let _enter = span.enter();
    match run_inner(&args) {
        Ok(code) => code,
        Err(message) => {
            error!("{message}");
            EXIT_CONFIG_ERROR
        }
    }
}

/// What a failing start leaves for the fallback: the config's `fallback-config`, if it got far
/// enough to name one, and whether the jail was still untouched.
#[derive(Debug, Default)]
struct FallbackState {
    file: Option<PathBuf>,
    jail_set_up: bool,
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
    let held = args
        .jail
        .held_fd
        .map(jail::fd::adopt_inherited)
        .transpose()
        .map_err(|e| format!("--held-fd: {e}"))?;
    let mut supervisor = Supervisor::new(signals, cgroup);
    let mut state = FallbackState::default();
    let held_fd = held.as_ref().map(std::os::fd::AsFd::as_fd);
    let mut source = ConfigSource {
        memfd: args
            .config_fd
            .map(jail::fd::adopt_inherited)
            .transpose()
            .map_err(|e| format!("--config-fd: {e}"))?,
    };
    match serve(
        args,
        held_fd,
        &mut source,
        &mut link,
        &mut supervisor,
        &mut state,
    ) {
        Ok(code) => Ok(code),
        Err(message) => {
            let Some(file) = state.file.clone().filter(|_| !state.jail_set_up) else {
                if state.file.is_some() {
                    warn!("fallback-config ignored: the jail is already set up");
                }
                return Err(message);
            };
            error!("{message}");
            let mut keep = Vec::new();
            keep.extend(link.as_fd());
            keep.extend(supervisor.cgroup_fd());
            keep.extend(held_fd);
            Err(fall_back(args, &file, &keep))
        }
    }
}

/// The config's `fallback-config`, resolved against the config's directory. When the config
/// does not even load, its raw text is scanned for an INI-style `fallback-config = FILE`
/// line, so a fallback placed early still works when a later line is broken.
fn fallback_of(path: &Path, config: Option<&Config>) -> Option<PathBuf> {
    let value = match config {
        Some(config) => config.get("fallback-config").map(|e| e.value.clone()),
        None => std::fs::read_to_string(path).ok().and_then(|text| {
            text.lines().find_map(|line| {
                let (key, value) = line.trim().split_once('=')?;
                (key.trim().replace('_', "-") == "fallback-config")
                    .then(|| value.trim().to_string())
            })
        }),
    }?;
    if value.is_empty() {
        return None;
    }
    let file = PathBuf::from(value);
    Some(match path.parent() {
        Some(dir) if file.is_relative() => dir.join(file),
        _ => file,
    })
}

/// uWSGI's fallback: exec this runtime again (same pid, protocol and cgroup fds kept) on the
/// fallback config, remembering the configs tried so far. Returns only on failure (a loop,
/// or the exec failing) with the message to exit 1 with.
fn fall_back(args: &VassalArgs, file: &Path, keep: &[std::os::fd::BorrowedFd<'_>]) -> String {
    let mut chain: Vec<&Path> = args.fallback_tried.iter().map(PathBuf::as_path).collect();
    chain.push(&args.config);
    if chain.contains(&file) {
        let shown: Vec<String> = chain
            .iter()
            .chain(std::iter::once(&file))
            .map(|p| p.display().to_string())
            .collect();
        return format!("fallback loop: {}", shown.join(" -> "));
    }
    warn!(
        "exited with status {EXIT_CONFIG_ERROR}: fallback config to {}",
        file.display()
    );
    for fd in keep {
        if let Err(e) = jail::fd::keep_across_exec(*fd) {
            return format!("fallback config {}: {e}", file.display());
        }
    }
    // What we were asked, with the failed config added to the configs tried and the fallback
    // in its place, one fallback level fewer to go down at once. A fallback is a file: the
    // memfd of a config from a monitor is not passed on.
    let mut next = args.clone();
    next.fallback_tried.push(args.config.clone());
    next.config = file.to_path_buf();
    next.config_fd = None;
    next.fall_back = args.fall_back.saturating_sub(1);
    let program = std::env::args()
        .next()
        .unwrap_or_else(|| "emperor".to_string());
    let argv: Vec<String> = std::iter::once(program).chain(next.to_argv()).collect();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let e = jail::launch::reexec_self(&argv, &env);
    format!("fallback config {}: {e}", file.display())
}

/// Where the config's text comes from: its file, or a sealed memfd from the emperor (a config
/// from a monitor), replaced by the one a reload brings.
struct ConfigSource {
    memfd: Option<std::os::fd::OwnedFd>,
}

impl ConfigSource {
    fn load(&self, args: &VassalArgs) -> Result<Config, String> {
        let Some(memfd) = &self.memfd else {
            return config::load(&args.config, &args.load).map_err(|e| e.to_string());
        };
        let name = args.config.display();
        let bytes = jail::memfd::read_sealed(std::os::fd::AsFd::as_fd(memfd))
            .map_err(|e| format!("{name}: the config from the emperor: {e}"))?;
        let text = String::from_utf8(bytes).map_err(|_| format!("{name}: not UTF-8 text"))?;
        config::load_text(&args.config, &text, &args.load).map_err(|e| e.to_string())
    }
}

/// Load, plan, jail (once), and run payloads until told to stop.
fn serve(
    args: &VassalArgs,
    held: Option<std::os::fd::BorrowedFd<'_>>,
    source: &mut ConfigSource,
    link: &mut EmperorLink,
    supervisor: &mut Supervisor,
    state: &mut FallbackState,
) -> Result<i32, String> {
    let mut jailed: Option<Vec<policy::SetupItem>> = None;
    let mut bound: Option<Vec<sockets::Bound>> = None;
    // A uWSGI payload is running and reloads itself on the config read next.
    let mut in_place = false;
    loop {
        let config = match source.load(args) {
            Ok(config) => config,
            Err(e) => {
                if jailed.is_none() {
                    state.file = fallback_of(&args.config, None);
                }
                return Err(e);
            }
        };
        if jailed.is_none() {
            state.file = fallback_of(&args.config, Some(&config));
            if args.fall_back > 0 && state.file.is_some() {
                return Err(format!(
                    "{}: its payload failed to start in the runtime before this one",
                    args.config.display()
                ));
            }
        }
        let plan = policy::plan(&config, &args.jail).map_err(|e| e.to_string())?;
        let timings = timings(&config).map_err(|e| e.to_string())?;
        let ready_check = ready::ReadyCheck::from_config(&config).map_err(|e| e.to_string())?;
        let payload =
            payload::payload_from_config(&config, &loader_args(args), args.uwsgi_binary.as_deref())
                .map_err(|e| e.to_string())?;
        let uwsgi = payload.kind == payload::PayloadKind::Uwsgi;
        match &jailed {
            None => {
                // Sockets first: still in the host network namespace, before the drop.
                bound = Some(sockets::bind_all(&plan.sockets, held)?);
                state.jail_set_up = true;
                set_up_jail(&plan, &payload)
                    .map_err(|e| format!("{}: {e}", config.path.display()))?;
                jailed = Some(plan.setup.clone());
            }
            Some(setup)
                if *setup != plan.setup
                    || bound.as_ref().map(|b| b.iter().map(|b| &b.spec).collect())
                        != Some(plan.sockets.iter().collect::<Vec<_>>()) =>
            {
                info!("the jail or the sockets of the config changed: asking for a fresh vassal");
                if in_place {
                    supervisor.stop_and_wait(link, timings);
                }
                return Ok(EXIT_RESPAWN);
            }
            Some(_) => {}
        }
        // uWSGI's config: resolved here, handed over its channel, without the jail's options.
        let frame = match uwsgi {
            true => Some(uwsgi_frame(&config, &plan)?),
            false => None,
        };
        match frame {
            Some(frame) if in_place => supervisor.reload_in_place(frame, ready_check, timings),
            frame => {
                if in_place {
                    // It names a binary patch now: uWSGI stops before that starts.
                    supervisor.stop_and_wait(link, timings);
                }
                start_payload(
                    &config,
                    &plan,
                    &payload,
                    frame,
                    bound.as_deref().unwrap_or_default(),
                    ready_check,
                    link,
                    supervisor,
                )?
            }
        }
        in_place = false;
        match supervisor.supervise(link, timings) {
            Outcome::ReloadInPlace if !args.fallback_tried.is_empty() => {
                info!(
                    "reloading while on a fallback config: asking for a fresh vassal on {}",
                    args.fallback_tried[0].display()
                );
                supervisor.stop_and_wait(link, timings);
                return Ok(EXIT_RESPAWN);
            }
            Outcome::ReloadInPlace => {
                info!("reloading (uWSGI reloads itself gracefully)");
                in_place = true;
                if let Some(memfd) = link.take_config() {
                    source.memfd = Some(memfd);
                }
            }
            Outcome::Reload if !args.fallback_tried.is_empty() => {
                // A reload is a new try of the watched config, in a jail built for it.
                info!(
                    "reloading while on a fallback config: asking for a fresh vassal on {}",
                    args.fallback_tried[0].display()
                );
                return Ok(EXIT_RESPAWN);
            }
            Outcome::Reload => {
                info!("reloading");
                if let Some(memfd) = link.take_config() {
                    source.memfd = Some(memfd);
                }
            }
            Outcome::Exit(code) if supervisor.failed_to_start && is_start_failure(uwsgi, code) => {
                // uWSGI's need-app: the payload could not start. Its jail cannot be set up
                // again in this runtime, so the emperor starts a fresh one on the fallback.
                if let Some(file) = fallback_of(&args.config, Some(&config)) {
                    warn!(
                        "payload exited with status {code} before it {}: asking the emperor \
                         for a fresh vassal on fallback-config {}",
                        if uwsgi { "was ready" } else { "was loyal" },
                        file.display()
                    );
                    link.send(crate::protocol::Message::FallBack);
                }
                return Ok(EXIT_CONFIG_ERROR);
            }
            Outcome::Exit(code) => return Ok(code),
        }
    }
}

/// uWSGI's need-app: its app did not load (status 22; 1 for a config it could not use, as
/// uWSGI 1.9 did for both); a binary patch says so with 1.
fn is_start_failure(uwsgi: bool, code: i32) -> bool {
    code == EXIT_CONFIG_ERROR || (uwsgi && code == uwsgi::EXIT_FAILED_APP)
}

/// The framed config a uWSGI payload gets: its sockets at the fds the payload finds them.
fn uwsgi_frame(config: &Config, plan: &policy::VassalPlan) -> Result<Vec<u8>, String> {
    uwsgi::render(config, &plan.sockets, crate::protocol::VASSAL_FD)
        .map(|text| uwsgi::frame(&text))
        .map_err(|e| e.to_string())
}

/// Start a payload in the jail: its master FIFO and pidfile (a binary patch's; uWSGI keeps
/// its own), the `exec-as-user` hooks, then the payload itself.
#[allow(clippy::too_many_arguments)]
fn start_payload(
    config: &Config,
    plan: &policy::VassalPlan,
    payload: &payload::Payload,
    frame: Option<Vec<u8>>,
    sockets: &[sockets::Bound],
    ready_check: ready::ReadyCheck,
    link: &mut EmperorLink,
    supervisor: &mut Supervisor,
) -> Result<(), String> {
    let uwsgi = payload.kind == payload::PayloadKind::Uwsgi;
    if uwsgi {
        supervisor.fifo = None;
        supervisor.pidfile = None;
    } else {
        // After the mounts, so a path in the jail is the jail's view; before the payload.
        bind_fifo(supervisor, config)?;
        supervisor.pidfile = config_path(config, "pidfile").pop();
    }
    supervisor.ready = ready_check;
    run_user_hooks(plan, payload).map_err(|e| format!("{}: {e}", config.path.display()))?;
    // In the jail and with its identity: a tenant's log file is opened as the tenant.
    let output = output::log_target(config, payload.kind)
        .and_then(|target| output::PayloadOutput::new(&target))
        .map_err(|e| format!("{}: {e}", config.path.display()))?;
    let running = supervisor
        .start(payload, plan, frame, sockets, output)
        .map_err(|e| {
            format!(
                "{}: option \"{}\": {e}",
                config.path.display(),
                payload.option
            )
        })?;
    // Who it runs as, seen from the host (the jail's ids through its user namespace's map),
    // and in which namespaces: the first thing a newcomer should see of the jail.
    let (uid, gid) = host_ids(running);
    info!(
        pid = running.as_raw(),
        program = %payload.program.display(),
        namespaces = %plan.namespaces,
        uid,
        gid,
        "payload started"
    );
    if !uwsgi {
        // uWSGI says it is ready itself (byte 1), and accepting (5) once a worker is.
        link.send(crate::protocol::Message::Spawned);
        if supervisor.ready == ready::ReadyCheck::AtStart {
            link.send(crate::protocol::Message::Ready);
        }
    }
    if supervisor.pidfile.is_some() {
        supervisor.write_pidfile(true);
    }
    Ok(())
}

/// A process's real uid and gid as the host sees them: read in our (the jail's) view, then
/// through our user namespace's maps (-1 when it is gone or an id is unmapped).
fn host_ids(pid: nix::unistd::Pid) -> (i64, i64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let first = |key: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
    };
    let outside = |id: Option<u64>, map: &str| -> i64 {
        let map = std::fs::read_to_string(format!("/proc/self/{map}")).unwrap_or_default();
        id.and_then(|id| {
            map.lines().find_map(|line| {
                let n: Vec<u64> = line
                    .split_whitespace()
                    .filter_map(|f| f.parse().ok())
                    .collect();
                let &[inside, outside, count] = n.as_slice() else {
                    return None;
                };
                (id >= inside && id - inside < count).then(|| outside + (id - inside))
            })
        })
        .map_or(-1, |id| id as i64)
    };
    (
        outside(first("Uid:"), "uid_map"),
        outside(first("Gid:"), "gid_map"),
    )
}

/// Every value of a path option, relative ones taken from the config's directory.
fn config_path(config: &Config, key: &str) -> Vec<PathBuf> {
    let dir = config.dir().unwrap_or(std::path::Path::new("."));
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
