//! The runtime's loop: load the config, plan, jail (once), start the payload and supervise
//! it, then again on every reload, until told to stop.

use super::emperor_link::EmperorLink;
use super::error::RuntimeError;
use super::fallback::{fallback_of, is_start_failure};
use super::hibernate::{self, ServeAsleep};
use super::ready::ReadyCheck;
use super::start::{self, Start};
use super::supervise::{Outcome, Supervisor};
use super::VassalArgs;
use crate::config::{self, Config};
use crate::policy::timings::{timings, Timings};
use crate::policy::{self, payload};
use crate::protocol::{EXIT_CONFIG_ERROR, EXIT_RESPAWN};
use crate::sockets;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use tracing::{info, warn};

/// Where the config's text comes from: its file, or a sealed memfd from the emperor (a config
/// from a monitor), replaced by the one a reload brings.
pub struct ConfigSource {
    pub memfd: Option<OwnedFd>,
}

impl ConfigSource {
    fn load(&self, args: &VassalArgs) -> Result<Config, RuntimeError> {
        let Some(memfd) = &self.memfd else {
            return Ok(config::load(&args.config, &args.load)?);
        };
        let file = || args.config.clone();
        let bytes = jail::memfd::read_sealed(memfd.as_fd()).map_err(|source| {
            RuntimeError::ConfigFromEmperor {
                file: file(),
                source,
            }
        })?;
        let text = String::from_utf8(bytes).map_err(|_| RuntimeError::NotText { file: file() })?;
        Ok(config::load_text(&args.config, &text, &args.load)?)
    }
}

/// One runtime serving its vassal: what it was asked, where it reports, and what it keeps
/// across reloads (the jail it set up and the sockets it bound, both once).
pub struct Serve<'a> {
    pub args: &'a VassalArgs,
    /// The emperor's on-demand or pool socket (`--held-fd`).
    pub held: Option<BorrowedFd<'a>>,
    pub source: ConfigSource,
    pub link: &'a mut EmperorLink,
    pub supervisor: &'a mut Supervisor,
    /// The first config's `fallback-config`, once it is known (for the caller to run).
    pub fallback: Option<PathBuf>,
    /// The jail's set-up steps, once they ran (see [`jail_print`]).
    jailed: Option<String>,
    /// Set just before the jail is touched: from then on no failure can fall back here.
    jail_touched: bool,
    bound: Vec<sockets::Bound>,
    /// A uWSGI payload is running and reloads itself on the config read next.
    in_place: bool,
}

impl<'a> Serve<'a> {
    pub fn new(
        args: &'a VassalArgs,
        held: Option<BorrowedFd<'a>>,
        source: ConfigSource,
        link: &'a mut EmperorLink,
        supervisor: &'a mut Supervisor,
    ) -> Self {
        Serve {
            args,
            held,
            source,
            link,
            supervisor,
            fallback: None,
            jailed: None,
            jail_touched: false,
            bound: Vec::new(),
            in_place: false,
        }
    }

    /// Run payloads until told to stop; the runtime's exit status, or why it cannot go on.
    pub fn run(&mut self) -> Result<i32, RuntimeError> {
        loop {
            match self.round() {
                Ok(Some(code)) => return Ok(code),
                Ok(None) => {}
                Err(e) if self.jail_touched => return Err(e.after_jail()),
                Err(e) => return Err(e),
            }
        }
    }

    /// One config: load, plan, jail (the first time), start or reload the payload, supervise
    /// it; `Some` status when the runtime is done.
    fn round(&mut self) -> Result<Option<i32>, RuntimeError> {
        let config = self.load()?;
        let plan = policy::plan(&config, &self.args.jail)?;
        let timings = timings(&config)?;
        let ready_check = ReadyCheck::from_config(&config)?;
        let payload = payload::payload_from_config(
            &config,
            &loader_args(self.args),
            self.args.uwsgi_binary.as_deref(),
        )?;
        let start = Start {
            config: &config,
            plan: &plan,
            payload: &payload,
        };
        if self.jailed.is_none() {
            self.enter_jail(&start)?;
        } else if self.jail_changed(&plan) {
            info!("the jail or the sockets of the config changed: asking for a fresh vassal");
            if self.in_place {
                self.supervisor.stop_and_wait(self.link, timings);
            }
            return Ok(Some(EXIT_RESPAWN));
        }
        self.start_payload(&start, ready_check, timings)?;
        // What the end of this run may need of the config; the rest of it, the plan and the
        // payload's description are not kept while the payload runs (for days, in the idle
        // case), nor is the memory the set-up dirtied.
        let started = Started {
            uwsgi: payload.kind == payload::PayloadKind::Uwsgi,
            fallback: fallback_of(&self.args.config, Some(&config)),
        };
        drop((payload, plan, config));
        if self.supervisor.hibernator.is_none() {
            // A runtime that hibernates gives its whole image back soon: trimming the heap
            // first would be work for nothing.
            jail::process::shed_set_up_memory();
        }
        Ok(self.supervise(started, timings))
    }

    /// Supervise the running payload until its run ends, hibernating whenever the supervisor
    /// has nothing to do; `Some` status when the runtime is done.
    fn supervise(&mut self, started: Started, timings: Timings) -> Option<i32> {
        loop {
            match self.supervisor.supervise(self.link, timings) {
                Outcome::Hibernate => self.hibernate(&started, timings),
                outcome => return self.after(outcome, started, timings),
            }
        }
    }

    /// Become the keeper until this runtime is needed (this process executes this binary
    /// again then, and [`Self::run_woken`] goes on). Returns when it could not; this runtime
    /// then stays awake for good.
    fn hibernate(&mut self, started: &Started, timings: Timings) {
        let Some(mut hibernator) = self.supervisor.hibernator.take() else {
            return;
        };
        let (Some(jail), Some(supervisor)) = (self.jailed.clone(), self.supervisor.asleep()) else {
            self.supervisor.hibernator = Some(hibernator);
            return;
        };
        let (mut watched, mut kept) = self.supervisor.sleeping_fds();
        watched.extend(self.link.fd());
        kept.extend(self.held.map(|fd| fd.as_raw_fd()));
        let config_fd = self.source.memfd.as_ref().map(AsRawFd::as_raw_fd);
        kept.extend(config_fd);
        kept.extend(self.bound.iter().map(|b| b.fd.as_raw_fd()));
        let serve = ServeAsleep {
            jail,
            bound: self
                .bound
                .iter()
                .map(|b| (b.spec.clone(), b.fd.as_raw_fd()))
                .collect(),
            fallback: self.fallback.clone(),
            started: started.clone(),
            timings: timings.into(),
        };
        let error = hibernate::sleep(hibernate::Bedtime {
            args: self.args,
            hibernator: &mut hibernator,
            serve,
            supervisor,
            watched,
            kept,
            config_fd,
        });
        warn!("cannot hibernate, staying awake: {error}");
    }

    /// Go on where a hibernated runtime left off: supervise the payload it left, then serve
    /// as ever.
    pub fn run_woken(&mut self, asleep: ServeAsleep) -> Result<i32, RuntimeError> {
        self.jailed = Some(asleep.jail);
        self.jail_touched = true;
        self.fallback = asleep.fallback;
        self.bound = hibernate::bound_again(asleep.bound)?;
        match self.supervise(asleep.started, asleep.timings.timings()) {
            Some(code) => Ok(code),
            None => self.run(),
        }
    }

    /// The config, and (the first time) its fallback; a config already failed in a runtime
    /// before this one (`--fall-back`) goes straight to its fallback.
    fn load(&mut self) -> Result<Config, RuntimeError> {
        let first = self.jailed.is_none();
        let config = match self.source.load(self.args) {
            Ok(config) => config,
            Err(e) => {
                if first {
                    self.fallback = fallback_of(&self.args.config, None);
                }
                return Err(e);
            }
        };
        if first {
            self.fallback = fallback_of(&self.args.config, Some(&config));
            if self.args.fall_back > 0 && self.fallback.is_some() {
                return Err(RuntimeError::FailedBefore {
                    file: self.args.config.clone(),
                });
            }
        }
        Ok(config)
    }

    /// Bind the sockets (still in the host network namespace, before the drop), then run the
    /// runtime's own jail steps.
    fn enter_jail(&mut self, start: &Start<'_>) -> Result<(), RuntimeError> {
        self.bound = sockets::bind_all(&start.plan.sockets, self.held)?;
        self.jail_touched = true;
        start::set_up_jail(start.config, start.plan, start.payload)?;
        self.jailed = Some(jail_print(&start.plan.setup));
        Ok(())
    }

    /// Whether a reloaded config asks for another jail or other sockets than this runtime has.
    fn jail_changed(&self, plan: &policy::VassalPlan) -> bool {
        self.jailed.as_deref() != Some(jail_print(&plan.setup).as_str())
            || !self.bound.iter().map(|b| &b.spec).eq(plan.sockets.iter())
    }

    /// Start the payload, or hand a running uWSGI its new config (uWSGI's config: resolved
    /// here, handed over its channel, without the jail's options).
    fn start_payload(
        &mut self,
        start: &Start<'_>,
        ready_check: ReadyCheck,
        timings: Timings,
    ) -> Result<(), RuntimeError> {
        let frame = match start.payload.kind == payload::PayloadKind::Uwsgi {
            true => Some(start::uwsgi_frame(start.config, start.plan)?),
            false => None,
        };
        match frame {
            Some(frame) if self.in_place => {
                self.supervisor.reload_in_place(frame, ready_check, timings)
            }
            frame => {
                if self.in_place {
                    // It names a binary patch now: uWSGI stops before that starts.
                    self.supervisor.stop_and_wait(self.link, timings);
                }
                start.run(frame, &self.bound, ready_check, self.link, self.supervisor)?;
            }
        }
        self.in_place = false;
        Ok(())
    }

    /// What a supervised run's end means: `Some` status to exit with, or `None` to read the
    /// config again (a reload).
    fn after(&mut self, outcome: Outcome, started: Started, timings: Timings) -> Option<i32> {
        match outcome {
            Outcome::Exit(code) if self.supervisor.failed_to_start => {
                Some(self.failed_to_start(code, started))
            }
            Outcome::Exit(code) => Some(code),
            Outcome::Reload => self.reload(false, timings),
            Outcome::ReloadInPlace => self.reload(true, timings),
            Outcome::Hibernate => unreachable!("Self::supervise hibernates, never passes it on"),
        }
    }

    /// A reload: read the config again, and hand it to uWSGI `in_place`. On a fallback config,
    /// a reload is a new try of the watched config, in a jail built for it.
    fn reload(&mut self, in_place: bool, timings: Timings) -> Option<i32> {
        if let Some(watched) = self.args.fallback_tried.first() {
            info!(
                "reloading while on a fallback config: asking for a fresh vassal on {}",
                watched.display()
            );
            if in_place {
                self.supervisor.stop_and_wait(self.link, timings);
            }
            return Some(EXIT_RESPAWN);
        }
        if in_place {
            info!("reloading (uWSGI reloads itself gracefully)");
        } else {
            info!("reloading");
        }
        self.in_place = in_place;
        if let Some(memfd) = self.link.take_config() {
            self.source.memfd = Some(memfd);
        }
        None
    }

    /// The payload exited before it was ready (uWSGI) or loyal (a binary patch). uWSGI's
    /// need-app: the payload could not start. Its jail cannot be set up again in this runtime,
    /// so the emperor starts a fresh one on the fallback.
    fn failed_to_start(&mut self, code: i32, started: Started) -> i32 {
        let Started { uwsgi, fallback } = started;
        if !is_start_failure(uwsgi, code) {
            return code;
        }
        if let Some(file) = fallback {
            warn!(
                "payload exited with status {code} before it {}: asking the emperor \
                 for a fresh vassal on fallback-config {}",
                if uwsgi { "was ready" } else { "was loyal" },
                file.display()
            );
            self.link.send(crate::protocol::Message::FallBack);
        }
        EXIT_CONFIG_ERROR
    }
}

/// The jail's set-up steps as their derived Debug text, which prints every field: two plans
/// print the same text exactly when their steps are equal, and the text crosses a
/// hibernation as it is.
fn jail_print(setup: &[policy::SetupItem]) -> String {
    format!("{setup:?}")
}

/// What a supervised run's end needs to know of the config it started from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Started {
    /// The payload is uWSGI (else a binary patch).
    uwsgi: bool,
    /// The config's `fallback-config`.
    fallback: Option<PathBuf>,
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
