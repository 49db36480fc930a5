//! The runtime's jail steps (once) and each payload's start in that jail: master FIFO,
//! pidfile, `exec-as-user` hooks, output, then the payload itself.

use super::emperor_link::EmperorLink;
use super::error::RuntimeError;
use super::supervise::Supervisor;
use super::{fifo, hooks, output, ready};
use crate::config::Config;
use crate::policy::{self, payload, uwsgi};
use crate::sockets;
use std::path::PathBuf;
use tracing::info;

/// The runtime's own jail steps, once: namespaces it enters itself, hooks as root, hostname,
/// mounts. Each failure names its step and syscall.
pub fn set_up_jail(
    config: &Config,
    plan: &policy::VassalPlan,
    payload: &payload::Payload,
) -> Result<(), RuntimeError> {
    for item in &plan.setup {
        match item {
            policy::SetupItem::Jail(step) => {
                jail::plan::apply(std::slice::from_ref(step)).map_err(|source| {
                    RuntimeError::Jail {
                        file: config.path.clone(),
                        option: policy::option_of(step),
                        source: Box::new(source),
                    }
                })?;
            }
            policy::SetupItem::HookAsRoot(command) => {
                hooks::run("exec-as-root", command, payload, None)
                    .map_err(|source| hook_error(config, source))?;
            }
        }
    }
    Ok(())
}

fn hook_error(config: &Config, source: hooks::HookError) -> RuntimeError {
    RuntimeError::Hook {
        file: config.path.clone(),
        source,
    }
}

/// The framed config a uWSGI payload gets: its sockets at the fds the payload finds them.
pub fn uwsgi_frame(config: &Config, plan: &policy::VassalPlan) -> Result<Vec<u8>, RuntimeError> {
    uwsgi::render(config, &plan.sockets, crate::protocol::VASSAL_FD)
        .map(|text| uwsgi::frame(&text))
        .map_err(RuntimeError::UwsgiConfig)
}

/// What a payload is started from: its config, the plan made of it, and the payload it names.
pub struct Start<'a> {
    pub config: &'a Config,
    pub plan: &'a policy::VassalPlan,
    pub payload: &'a payload::Payload,
}

impl Start<'_> {
    /// Start the payload in the jail: its master FIFO and pidfile (a binary patch's; uWSGI
    /// keeps its own), the `exec-as-user` hooks, then the payload itself.
    pub fn run(
        &self,
        frame: Option<Vec<u8>>,
        sockets: &[sockets::Bound],
        ready_check: ready::ReadyCheck,
        link: &mut EmperorLink,
        supervisor: &mut Supervisor,
    ) -> Result<(), RuntimeError> {
        let Start {
            config,
            plan,
            payload,
        } = *self;
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
        for command in &plan.user_hooks {
            hooks::run("exec-as-user", command, payload, Some(&plan.drop))
                .map_err(|source| hook_error(config, source))?;
        }
        // In the jail and with its identity: a tenant's log file is opened as the tenant.
        let output = output::log_target(config, payload.kind)
            .and_then(|target| output::PayloadOutput::new(&target))
            .map_err(|source| RuntimeError::Output {
                file: config.path.clone(),
                source,
            })?;
        let running = supervisor
            .start(payload, plan, frame, sockets, output)
            .map_err(|source| RuntimeError::Start {
                file: config.path.clone(),
                option: payload.option.clone(),
                source,
            })?;
        self.announce(running, link, supervisor);
        Ok(())
    }

    /// Say the payload started: in the log, to the emperor (a binary patch; uWSGI speaks for
    /// itself), and in its pidfile.
    fn announce(
        &self,
        running: nix::unistd::Pid,
        link: &mut EmperorLink,
        supervisor: &mut Supervisor,
    ) {
        // Who it runs as, seen from the host (the jail's ids through its user namespace's map),
        // and in which namespaces: the first thing a newcomer should see of the jail.
        let (uid, gid) = host_ids(&self.plan.drop);
        info!(
            pid = running.as_raw(),
            program = %self.payload.program.display(),
            namespaces = %self.plan.namespaces,
            uid,
            gid,
            "payload started"
        );
        if self.payload.kind != payload::PayloadKind::Uwsgi {
            // uWSGI says it is ready itself (byte 1), and accepting (5) once a worker is.
            link.send(crate::protocol::Message::Spawned);
            if supervisor.ready == ready::ReadyCheck::AtStart {
                link.send(crate::protocol::Message::Ready);
            }
        }
        if supervisor.pidfile.is_some() {
            supervisor.write_pidfile(true);
        }
    }
}

/// The payload's real uid and gid as the host sees them: the ids its privilege drop set (it
/// verified them before its execve, or it would not run), else ours, which it kept; then
/// through our user namespace's maps (-1 when an id is unmapped), as this process read them
/// once (`jail::userns::own_namespace`). Not read back from /proc/PID/status: that file is
/// built afresh on each read, a cost every start would pay.
fn host_ids(drop: &jail::creds::PrivilegeDrop) -> (i64, i64) {
    let own = jail::userns::own_namespace().ok();
    let uid = drop.uid.unwrap_or_else(|| nix::unistd::getuid().as_raw());
    let gid = drop.gid.unwrap_or_else(|| nix::unistd::getgid().as_raw());
    let shown = |id: Option<u32>| id.map_or(-1, i64::from);
    (
        shown(own.as_ref().and_then(|own| own.outside_uid(uid))),
        shown(own.as_ref().and_then(|own| own.outside_gid(gid))),
    )
}

/// Every value of a path option, relative ones taken from the config's directory.
fn config_path(config: &Config, key: &str) -> Vec<PathBuf> {
    let dir = config.dir().unwrap_or(std::path::Path::new("."));
    config.get_all(key).map(|e| dir.join(&e.value)).collect()
}

/// Make the master FIFO the config asks for, unless the same one is already there.
fn bind_fifo(supervisor: &mut Supervisor, config: &Config) -> Result<(), RuntimeError> {
    let slots = config_path(config, "master-fifo");
    if slots.len() > fifo::MAX_SLOTS {
        return Err(RuntimeError::FifoSlots {
            file: config.path.clone(),
            given: slots.len(),
        });
    }
    if supervisor.fifo.as_ref().map(|f| f.slots()) == Some(&slots[..]) {
        return Ok(());
    }
    supervisor.fifo = None;
    if !slots.is_empty() {
        let fifo = fifo::MasterFifo::open(slots).map_err(|source| RuntimeError::Fifo {
            file: config.path.clone(),
            source,
        })?;
        supervisor.fifo = Some(fifo);
    }
    Ok(())
}
