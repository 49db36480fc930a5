//! A vassal's life as one table, in the manner of s6's supervise: a pure function from its
//! state and what happened to the state it goes to and what the emperor must do. Nothing
//! here touches a process, a socket or a clock; the executor (lifecycle.rs) carries the
//! actions out and feeds back what they lead to. What used to steer behaviour as flags
//! (a config back while its vassal stopped, a change during a reload, a stop the vassal
//! asked for, a fallback it asked for, an idle stop) is part of the state here.

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

/// Where a vassal is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum State {
    /// Waiting in the spawn queue for the spawn budget and its tenant's turn.
    Queued,
    /// Dead or not spawned, waiting for its respawn time (backoff, blacklist, fds).
    Waiting,
    /// The runtime is spawned; its payload has not started yet. `changed`: its config
    /// changed meanwhile (its runtime may have read the old one): reloaded once started.
    Starting { changed: bool },
    /// The payload runs.
    Running,
    /// Asked to reload; `changed` as in Starting.
    Reloading { changed: bool },
    /// Its runtime is going away; `then` is what comes after.
    Stopping { then: Then },
    /// Not running until its config changes: it asked to stop, or it was refused a start.
    Idle,
    /// On demand: the emperor holds its socket and starts it on a connection.
    OnDemand,
    /// Its tenant has as many vassals as `--emperor-tenant-max-vassals` allows.
    OverQuota,
}

/// What comes once a stopping vassal's runtime is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Then {
    /// Its config is gone (or the emperor stops): forget it.
    Bury,
    /// Its config changed or came back: start it again.
    Start,
    /// It asked to stop: idle until its config changes.
    Idle,
    /// On demand, it went idle or asked to stop: wait for the next connection.
    Rest,
    /// Its payload failed to start (byte 40): start again at once, a fallback level down.
    FallBack,
}

/// Where a start ends up, as the emperor's checks (quota, held sockets, the uWSGI binary)
/// decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Park {
    /// Into the spawn queue.
    Queue,
    /// On demand: its socket is held; it waits for a connection.
    Hold,
    /// Its tenant is at its quota.
    OverQuota,
    /// Its config cannot start as it is (the reason is logged).
    Refused,
}

/// How a runtime ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitKind {
    /// Status EXIT_RESPAWN: its reload needs a fresh jail.
    FreshJail,
    /// Status 0, no signal.
    Clean,
    /// Anything else.
    Died,
}

/// What happened to a vassal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// Its config changed or appeared. `moves_socket`: the change moves its on-demand or
    /// pool socket, so a running vassal starts afresh rather than reloads (only judged for
    /// a running vassal; false otherwise).
    ConfigChanged { moves_socket: bool },
    /// Its config is gone.
    ConfigRemoved,
    /// A start was judged (answers [`Action::Start`]).
    Parked(Park),
    /// Its runtime was spawned.
    Spawned,
    /// Its spawn failed (cgroup, clone): retried later.
    SpawnFailed,
    /// The emperor is out of file descriptors for it: retried when some are freed.
    NoFds,
    /// Its respawn time came, the blacklist was cleared, or fds were freed.
    RespawnDue,
    /// A connection on its held on-demand socket.
    Connection,
    /// Its tenant has room again.
    QuotaRoom,
    /// Byte 1: a payload started.
    PayloadStarted,
    /// Byte 22: the vassal asks to stop.
    AsksToStop,
    /// Byte 40: its payload failed to start; the runtime exits for a fallback.
    FallBackAsked,
    /// SIGHUP or the control socket asks for a reload.
    ReloadAsked,
    /// No heartbeat within the required time.
    HeartbeatMissed,
    /// On demand: no connection for its idle time.
    IdleTimeout,
    /// The emperor stops: this vassal's wave came.
    Shutdown,
    /// Its runtime exited.
    Exited(ExitKind),
}

/// What the emperor does for a transition, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Judge a start (quota, held sockets, uWSGI binary) and answer with [`Event::Parked`];
    /// a start tries the watched config, not a fallback.
    Start,
    /// Into the fair spawn queue.
    Enqueue,
    /// Arm its held socket: wait for a connection.
    Rest,
    /// Forgive its blacklist entry and cancel its respawn wait: its config changed.
    Forgive,
    /// Tell the runtime to reload.
    Reload,
    /// Tell the runtime to stop; kill it after the curse tolerance.
    Stop,
    /// A death: counted, logged, backed off (answers RespawnDue when no wait is due).
    Backoff,
    /// Count a respawn that is not a death (a fresh jail it asked for).
    CountRespawn,
    /// Go down one fallback level (not throttled: uWSGI would exec its fallback at once).
    FallBackLevel,
    /// Apply the config change recorded during the transition that just ended.
    ApplyPendingChange,
    /// Retry a failed spawn after a pause.
    RetryLater,
    /// Wait for file descriptors.
    WaitForFds,
    /// Forget it.
    Bury,
}

/// The emperor's circumstances that a cell depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Context {
    /// The vassal runs on demand (it has a held socket).
    pub on_demand: bool,
    /// The emperor is stopping: whatever ends is forgotten.
    pub shutting_down: bool,
}

/// One cell of the table: the next state, what to do, and the line to log (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub next: State,
    pub actions: Vec<Action>,
    pub note: Option<&'static str>,
}

impl Step {
    fn to(next: State) -> Self {
        Step {
            next,
            actions: Vec::new(),
            note: None,
        }
    }

    fn doing(mut self, actions: &[Action]) -> Self {
        self.actions = actions.to_vec();
        self
    }

    fn saying(mut self, note: &'static str) -> Self {
        self.note = Some(note);
        self
    }
}

impl State {
    /// Every state's name, in the order a status line lists them.
    pub const NAMES: [&'static str; 9] = [
        "running",
        "starting",
        "reloading",
        "queued",
        "waiting",
        "on-demand",
        "idle",
        "over-quota",
        "stopping",
    ];

    /// The name the stats, the metrics and the log show.
    pub fn name(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Waiting => "waiting",
            State::Starting { .. } => "starting",
            State::Running => "running",
            State::Reloading { .. } => "reloading",
            State::Stopping { .. } => "stopping",
            State::Idle => "idle",
            State::OnDemand => "on-demand",
            State::OverQuota => "over-quota",
        }
    }

    /// Its runtime is alive and the emperor wants it to be (a payload starting, running or
    /// reloading).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            State::Starting { .. } | State::Running | State::Reloading { .. }
        )
    }

    /// A config change would act at once (so whether it moves a held socket matters).
    pub fn acts_on_change_now(self) -> bool {
        self == State::Running
    }
}

/// The table. Cells not listed leave the state as it is and do nothing (an event that has no
/// meaning there, such as a connection for a running vassal); the unit tests check each.
pub fn step(state: State, event: Event, context: Context) -> Step {
    use Action::*;
    use Event::*;
    let same = Step::to(state);
    if context.shutting_down {
        return match (state, event) {
            (_, Exited(_)) => Step::to(State::Stopping { then: Then::Bury })
                .doing(&[Bury])
                .saying("stopped"),
            (State::Stopping { .. }, Shutdown) => Step::to(State::Stopping { then: Then::Bury }),
            (s, Shutdown) if s.is_live() => {
                Step::to(State::Stopping { then: Then::Bury }).doing(&[Stop])
            }
            (_, Shutdown) => same.doing(&[Bury]),
            _ => same,
        };
    }
    let asked_to_stop = Then::asked_to_stop(context);
    match (state, event) {
        // Not running: a change starts it (again), a removal forgets it.
        (State::Queued, ConfigChanged { .. }) => same,
        (
            State::Waiting | State::Idle | State::OnDemand | State::OverQuota,
            ConfigChanged { .. },
        ) => Step::to(State::Queued)
            .doing(&[Forgive, Start])
            .saying("config changed: starting again"),
        (
            State::Queued | State::Waiting | State::Idle | State::OnDemand | State::OverQuota,
            ConfigRemoved,
        ) => same.doing(&[Bury]).saying("config removed"),
        (State::Queued, Parked(park)) => match park {
            Park::Queue => same.doing(&[Enqueue]),
            Park::Hold => Step::to(State::OnDemand).doing(&[Rest]),
            Park::OverQuota => Step::to(State::OverQuota),
            Park::Refused => Step::to(State::Idle),
        },
        (State::Queued, Spawned) => Step::to(State::Starting { changed: false }),
        (State::Queued, SpawnFailed) => Step::to(State::Waiting).doing(&[RetryLater]),
        (State::Queued, NoFds) => Step::to(State::Waiting).doing(&[WaitForFds]),
        (State::Waiting, RespawnDue) => Step::to(State::Queued).doing(&[Enqueue]),
        (State::OnDemand, Connection) => Step::to(State::Queued)
            .doing(&[Enqueue])
            .saying("connection on its on-demand socket: starting"),
        (State::OverQuota, QuotaRoom) => Step::to(State::Queued)
            .doing(&[Start])
            .saying("its tenant has room again: starting"),

        // Alive: a change during a transition waits for its end.
        (State::Starting { .. }, ConfigChanged { .. }) => {
            Step::to(State::Starting { changed: true })
        }
        (State::Reloading { .. }, ConfigChanged { .. }) => {
            Step::to(State::Reloading { changed: true })
        }
        (
            State::Running,
            ConfigChanged {
                moves_socket: false,
            },
        ) => Step::to(State::Reloading { changed: false }).doing(&[Reload]),
        (State::Running, ConfigChanged { moves_socket: true }) => {
            Step::to(State::Stopping { then: Then::Start })
                .doing(&[Stop])
                .saying("config changed its on-demand or pool socket: starting afresh")
        }
        (s, ConfigRemoved) if s.is_live() => Step::to(State::Stopping { then: Then::Bury })
            .doing(&[Stop])
            .saying("config removed: stopping"),
        (State::Starting { changed } | State::Reloading { changed }, PayloadStarted) => {
            match changed {
                true => Step::to(State::Running)
                    .doing(&[ApplyPendingChange])
                    .saying("its config changed while it started: reloading again"),
                false => Step::to(State::Running),
            }
        }
        (s, AsksToStop) if s.is_live() => Step::to(State::Stopping {
            then: asked_to_stop,
        })
        .doing(&[Stop])
        .saying("asks to shut down"),
        (s, FallBackAsked) if s.is_live() => Step::to(State::Stopping {
            then: Then::FallBack,
        }),
        (State::Starting { changed }, ReloadAsked) => {
            Step::to(State::Reloading { changed }).doing(&[Reload])
        }
        (State::Running, ReloadAsked) => {
            Step::to(State::Reloading { changed: false }).doing(&[Reload])
        }
        (State::Running, HeartbeatMissed) => Step::to(State::Reloading { changed: false })
            .doing(&[Reload])
            .saying("sent no heartbeat in time: reloading"),
        (s, IdleTimeout) if s.is_live() => Step::to(State::Stopping { then: Then::Rest })
            .doing(&[Stop])
            .saying("idle: stopping until the next connection"),
        (State::Reloading { .. }, Exited(ExitKind::FreshJail)) => Step::to(State::Queued)
            .doing(&[CountRespawn, Enqueue])
            .saying("restarting afresh (its reload needs a new jail)"),
        (s, Exited(ExitKind::Clean)) if s.is_live() && context.on_demand => {
            Step::to(State::OnDemand)
                .doing(&[Rest])
                .saying("stopped: waiting for the next connection")
        }
        (s, Exited(_)) if s.is_live() => Step::to(State::Waiting).doing(&[Backoff]),

        // Stopping: the newest wish about what comes next wins; the exit carries it out.
        (State::Stopping { .. }, ConfigChanged { .. }) => {
            Step::to(State::Stopping { then: Then::Start })
        }
        (State::Stopping { .. }, ConfigRemoved) => Step::to(State::Stopping { then: Then::Bury }),
        (State::Stopping { then }, Exited(_)) => after_stop(then),

        // Shutdown is only ever given while the emperor stops (above).
        _ => same,
    }
}

impl Then {
    /// Where a vassal that asked to stop goes: on demand, back to waiting for connections.
    fn asked_to_stop(context: Context) -> Then {
        match context.on_demand {
            true => Then::Rest,
            false => Then::Idle,
        }
    }
}

/// A stopping vassal's runtime is gone.
fn after_stop(then: Then) -> Step {
    use Action::*;
    match then {
        Then::Bury => Step::to(State::Stopping { then })
            .doing(&[Bury])
            .saying("stopped and removed"),
        Then::Start => Step::to(State::Queued)
            .doing(&[Forgive, Start])
            .saying("config is back: starting again"),
        Then::Idle => Step::to(State::Idle).saying("stopped on its own request"),
        Then::Rest => Step::to(State::OnDemand)
            .doing(&[Rest])
            .saying("stopped: waiting for the next connection"),
        // The executor says how many levels down it goes.
        Then::FallBack => Step::to(State::Queued).doing(&[FallBackLevel, CountRespawn, Enqueue]),
    }
}
