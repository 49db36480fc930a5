//! Hibernation: a runtime with nothing to do (its payload running, loyal and ready, no stop
//! under way, no timer armed, no master FIFO) for `--hibernate-after` executes
//! `emperor-keeper` (jail/keeper/) in its own process. The process keeps what makes it the
//! vassal's runtime: its pid, namespaces, credentials, its child the payload and the fds
//! listed here; it gives up its image, heap and stacks, a few hundred KiB, for the keeper's
//! few pages. The keeper executes this binary again, from an fd opened before the jail, when
//! the runtime is needed (a signal, the payload's exit, a byte or a hang-up from the emperor,
//! the payload's channel or its output), with `--resume-fd` naming a sealed memfd that holds
//! [`Asleep`]: the runtime takes its work up where it left it. A runtime whose privileges an
//! execve would change does not hibernate (`jail::keeper::exec_keeps_privileges`).

use super::channel::ChannelAsleep;
use super::output::OutputAsleep;
use super::VassalArgs;
use crate::policy::timings::Timings;
use crate::sockets::Bound;
use jail::SysError;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// The longest a runtime woken again and again waits before it sleeps: a vassal whose payload
/// writes a line every few seconds keeps its runtime awake rather than pay two execves a line.
pub const LONGEST_QUIET: Duration = Duration::from_secs(64);

/// A sleep shorter than this many quiet periods makes the next quiet period twice as long.
const SHORT_SLEEP: u32 = 10;

/// What lets this runtime hibernate: how long it waits first, its own binary (opened before
/// the jail) and the keeper's image (sealed once, when first needed).
#[derive(Debug)]
pub struct Hibernator {
    /// The quiet time before the next sleep: `--hibernate-after`, doubled after each short
    /// sleep.
    pub quiet: Duration,
    runtime: OwnedFd,
    image: Option<OwnedFd>,
    /// How long this sleep was put off because the machine was busy, and until when.
    put_off: Duration,
    pub not_before: Option<Instant>,
    /// How long this sleep waited for the clone server's starts ([`WHILE_STARTS_GO_ON`]).
    waited_for_starts: Duration,
}

impl Hibernator {
    /// Put the sleep that is due at `now` off when the machine has more tasks ready to run
    /// than CPUs (a mass start): falling asleep costs CPU (an execve, the runtime's pages
    /// freed) that starting vassals need now, and only saves memory, which can wait. Each
    /// time twice as long as the time before (a quiet period first), so a runtime asks the
    /// machine a few times in a long start, not twice a second; not past [`LONGEST_PUT_OFF`]
    /// in all, so a machine that stays busy still gets its memory back soon.
    ///
    /// First, while the clone server that copied this runtime still starts others (the
    /// word it shares with its copies: `clone_server::starts_go_on`), the sleep waits for
    /// those starts ([`WHILE_STARTS_GO_ON`]): the runtimes of a mass start then fall asleep
    /// after it, not during it.
    pub fn put_off_while_busy(&mut self, now: Instant) -> bool {
        let reasons = [
            (&mut self.waited_for_starts, WHILE_STARTS_GO_ON),
            (&mut self.put_off, WHILE_BUSY),
        ];
        for (so_far, patience) in reasons {
            if let Some(more) = wait_more(*so_far, self.quiet, patience) {
                self.not_before = Some(now + (more - *so_far));
                *so_far = more;
                debug!(waited = ?more, "{}: hibernating later", patience.why);
                return true;
            }
        }
        false
    }

    /// For a runtime asked to hibernate (`--hibernate-after`), where it can: the keeper is
    /// built for this architecture and an execve keeps this process's privileges as they are.
    /// `image` is the keeper's image the emperor shared (`--keeper-fd`), if it did.
    pub fn new(args: &VassalArgs, image: Option<OwnedFd>) -> Option<Self> {
        let quiet = args.hibernate_after?;
        jail::keeper::image()?;
        if !jail::keeper::exec_keeps_privileges() {
            debug!("no hibernation: an execve would change this runtime's privileges");
            return None;
        }
        match jail::keeper::open_own_binary() {
            Ok(runtime) => Some(Hibernator {
                quiet,
                runtime,
                image,
                put_off: Duration::ZERO,
                not_before: None,
                waited_for_starts: Duration::ZERO,
            }),
            Err(e) => {
                warn!("no hibernation: {e}");
                None
            }
        }
    }
}

/// What the runtime's parts keep while it sleeps: fds by number (kept open across both
/// execves), everything else by value.
#[derive(Debug, Serialize, Deserialize)]
pub struct Asleep {
    pub serve: ServeAsleep,
    pub supervisor: SupervisorAsleep,
    runtime: RawFd,
    image: RawFd,
    quiet: Duration,
    /// CLOCK_MONOTONIC when it fell asleep (an Instant cannot cross an execve).
    asleep_at: Duration,
}

/// The serving loop's part: the jail it set up (as text: see `serve::JailPrint`), the
/// sockets it bound, the fallback, and what the end of the current run needs.
#[derive(Debug, Serialize, Deserialize)]
pub struct ServeAsleep {
    pub jail: String,
    pub bound: Vec<(crate::policy::SocketSpec, RawFd)>,
    pub fallback: Option<PathBuf>,
    pub started: super::serve::Started,
    pub timings: TimingsAsleep,
}

/// The supervisor's part, with its running payload.
#[derive(Debug, Serialize, Deserialize)]
pub struct SupervisorAsleep {
    pub payload: i32,
    pub uwsgi: bool,
    pub channel: Option<ChannelAsleep>,
    pub output: Option<OutputAsleep>,
    pub config_frame: Option<Vec<u8>>,
    pub said_ready: bool,
    /// How long the payload had run when the runtime fell asleep (its start time is kept as
    /// an age: Instant cannot cross an execve).
    pub running_for: Duration,
    pub pidfile: Option<PathBuf>,
}

/// [`Timings`] with the stop signal as its number.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct TimingsAsleep {
    mercy: Duration,
    loyal_after: Duration,
    stop_signal: i32,
    graceful_reload: Duration,
}

impl From<Timings> for TimingsAsleep {
    fn from(t: Timings) -> Self {
        TimingsAsleep {
            mercy: t.mercy,
            loyal_after: t.loyal_after,
            stop_signal: t.stop_signal as i32,
            graceful_reload: t.graceful_reload,
        }
    }
}

impl TimingsAsleep {
    pub fn timings(self) -> Timings {
        Timings {
            mercy: self.mercy,
            loyal_after: self.loyal_after,
            stop_signal: jail::signals::Sig::try_from(self.stop_signal)
                .unwrap_or(jail::signals::Sig::SIGTERM),
            graceful_reload: self.graceful_reload,
        }
    }
}

/// Why this runtime stays awake after all (it then never tries again).
#[derive(Debug, thiserror::Error)]
pub enum HibernateError {
    #[error("the keeper's image: {0}")]
    Image(SysError),
    #[error("the state to wake up with: {0}")]
    State(SysError),
    #[error("keeping fd {fd} across execve: {source}")]
    Keep { fd: RawFd, source: SysError },
    #[error("executing the keeper: {0}")]
    Execute(SysError),
}

/// Everything [`sleep`] needs: the state and the fds it names.
pub struct Bedtime<'a> {
    pub args: &'a VassalArgs,
    pub hibernator: &'a mut Hibernator,
    pub serve: ServeAsleep,
    pub supervisor: SupervisorAsleep,
    /// The payload's fds the keeper watches (the emperor's link, the payload's channel and
    /// output), and the others that must stay open.
    pub watched: Vec<RawFd>,
    pub kept: Vec<RawFd>,
    /// The config memfd this runtime reloads from, if any (`--config-fd` when it wakes).
    pub config_fd: Option<RawFd>,
}

/// Become the keeper. Returns only when that could not be done; this process is then as it
/// was, with every fd close-on-exec again.
pub fn sleep(bed: Bedtime<'_>) -> HibernateError {
    let Bedtime {
        args,
        hibernator,
        serve,
        supervisor,
        watched,
        mut kept,
        config_fd,
    } = bed;
    if hibernator.image.is_none() {
        match jail::keeper::sealed_image() {
            Ok(image) => hibernator.image = Some(image),
            Err(e) => return HibernateError::Image(e),
        }
    }
    let image = hibernator.image.as_ref().map_or(-1, AsRawFd::as_raw_fd);
    let payload = supervisor.payload;
    let asleep = Asleep {
        serve,
        supervisor,
        runtime: hibernator.runtime.as_raw_fd(),
        image,
        quiet: hibernator.quiet,
        asleep_at: jail::process::monotonic_now(),
    };
    let json = serde_json::to_vec(&asleep).expect("plain data serializes");
    let state = match jail::memfd::sealed("emperor-vassal asleep", &json) {
        Ok(state) => state,
        Err(e) => return HibernateError::State(e),
    };
    let mut wake_args = args.clone();
    wake_args.config_fd = config_fd;
    wake_args.resume_fd = Some(state.as_raw_fd());
    // The image is in the state: named once.
    wake_args.keeper_fd = None;
    kept.extend(&watched);
    kept.extend([asleep.runtime, image, state.as_raw_fd()]);
    if let Some(error) = keep_all(&kept) {
        return error;
    }
    let argv = keeper_argv(payload, asleep.runtime, &watched, &wake_args);
    let env: Vec<OsString> = std::env::vars_os().map(jail::reexec::env_entry).collect();
    debug!(after = ?asleep.quiet, "hibernating");
    let error = jail::reexec::execute_fd(image, &argv, &env);
    for &fd in &kept {
        let _ = jail::reexec::close_raw_on_exec(fd);
    }
    HibernateError::Execute(error)
}

/// `emperor-keeper PAYLOAD_PID RUNTIME_FD WATCH_FDS RUNTIME_ARGV...` (jail/keeper/src/main.rs),
/// the runtime's argv being this program's with `wake_args`.
fn keeper_argv(
    payload: i32,
    runtime: RawFd,
    watched: &[RawFd],
    wake_args: &VassalArgs,
) -> Vec<OsString> {
    let program = super::program();
    let watch_list = match watched.is_empty() {
        true => "-".to_string(),
        false => watched
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(","),
    };
    let mut argv: Vec<OsString> = vec![
        "emperor-keeper".into(),
        payload.to_string().into(),
        runtime.to_string().into(),
        watch_list.into(),
        program,
    ];
    argv.extend(wake_args.to_argv().into_iter().map(OsString::from));
    argv
}

/// Clear close-on-exec on every fd in `fds`; on a failure, set it again on those done.
fn keep_all(fds: &[RawFd]) -> Option<HibernateError> {
    for (i, &fd) in fds.iter().enumerate() {
        if let Err(source) = jail::reexec::keep_raw(fd) {
            for &done in &fds[..i] {
                let _ = jail::reexec::close_raw_on_exec(done);
            }
            return Some(HibernateError::Keep { fd, source });
        }
    }
    None
}

/// Why a woken runtime cannot take its work up.
#[derive(Debug, thiserror::Error)]
pub enum WakeError {
    #[error("--resume-fd: {0}")]
    Fd(SysError),
    #[error("--resume-fd: the state is not what this runtime wrote: {0}")]
    State(String),
}

/// The longest a sleep is put off in all while the machine is busy: a mass start of thousands
/// takes seconds, and the sleeps of thousands keep a machine busy a while themselves, which
/// must not put them off again and again.
pub const LONGEST_PUT_OFF: Duration = Duration::from_secs(8);

/// How long a sleep waits while `still` holds (`why`, for the log): a quiet period the first
/// time, at least `then` each time after, at most `step` at a time, `total` in all.
#[derive(Debug, Clone, Copy)]
struct Patience {
    still: fn() -> bool,
    then: Duration,
    step: Duration,
    total: Duration,
    why: &'static str,
}

/// While the machine is busy: the wait doubles up to [`LONGEST_PUT_OFF`].
const WHILE_BUSY: Patience = Patience {
    still: jail::process::machine_is_busy,
    then: Duration::ZERO,
    step: LONGEST_PUT_OFF,
    total: LONGEST_PUT_OFF,
    why: "the machine is busy",
};

/// The longest a sleep waits in all for starts under way: an emperor that keeps starting
/// runtimes (the respawns of a large host) must not keep every runtime awake.
pub const LONGEST_WAIT_FOR_STARTS: Duration = Duration::from_secs(60);

/// The longest single wait for starts: how long after a mass start its runtimes may still be
/// awake.
const LONGEST_STARTS_STEP: Duration = Duration::from_secs(4);

/// While the clone server still starts runtimes: a quiet period (a lone start is over by
/// then), then the longest step at once, since each look wakes every runtime of a mass
/// start, thousands of wakeups a second on the CPUs the starts need (doubling from a quiet
/// period, each runtime of a start of 5000 woke 3.4 times more than without hibernation and
/// used 80 µs more CPU before the start was over).
const WHILE_STARTS_GO_ON: Patience = Patience {
    still: crate::clone_server::starts_go_on,
    then: LONGEST_STARTS_STEP,
    step: LONGEST_STARTS_STEP,
    total: LONGEST_WAIT_FOR_STARTS,
    why: "runtimes are starting",
};

/// The time a sleep has waited in all once more while `patience.still` holds: a quiet
/// period the first time, then as long as it waited so far (the wait doubles) or
/// `patience.then` if longer, at most `patience.step` at a time; None: the reason is gone,
/// or it waited `patience.total` (asked only within it).
fn wait_more(so_far: Duration, quiet: Duration, patience: Patience) -> Option<Duration> {
    let wait = match so_far.is_zero() {
        true => quiet,
        false => so_far.max(quiet).max(patience.then),
    };
    let more = so_far + wait.min(patience.step);
    (more <= patience.total && (patience.still)()).then_some(more)
}

/// The quiet time before the next sleep, after a sleep of `slept` that followed `quiet`: twice
/// as long after a short sleep (up to [`LONGEST_QUIET`]), `base` again after a long one.
fn next_quiet(quiet: Duration, base: Duration, slept: Duration) -> Duration {
    if slept < quiet * SHORT_SLEEP {
        (quiet * 2).min(LONGEST_QUIET.max(base))
    } else {
        base
    }
}

/// The state named by `--resume-fd`, and the hibernator it was written with.
pub fn wake(fd: RawFd, args: &VassalArgs) -> Result<(Asleep, Hibernator), WakeError> {
    let state = jail::fd::adopt_inherited(fd).map_err(WakeError::Fd)?;
    let bytes = jail::memfd::read_sealed(state.as_fd()).map_err(WakeError::Fd)?;
    drop(state);
    let asleep: Asleep =
        serde_json::from_slice(&bytes).map_err(|e| WakeError::State(e.to_string()))?;
    let runtime = jail::fd::adopt_inherited(asleep.runtime).map_err(WakeError::Fd)?;
    let image = jail::fd::adopt_inherited(asleep.image).map_err(WakeError::Fd)?;
    let base = args.hibernate_after.unwrap_or(asleep.quiet);
    let slept = jail::process::monotonic_now().saturating_sub(asleep.asleep_at);
    let hibernator = Hibernator {
        quiet: next_quiet(asleep.quiet, base, slept),
        runtime,
        image: Some(image),
        put_off: Duration::ZERO,
        not_before: None,
        waited_for_starts: Duration::ZERO,
    };
    debug!(?slept, quiet = ?hibernator.quiet, "woken");
    Ok((asleep, hibernator))
}

/// The sockets the runtime bound, back from their numbers.
pub fn bound_again(
    bound: Vec<(crate::policy::SocketSpec, RawFd)>,
) -> Result<Vec<Bound>, WakeError> {
    bound
        .into_iter()
        .map(|(spec, fd)| {
            let fd = jail::fd::adopt_inherited(fd).map_err(WakeError::Fd)?;
            Ok(Bound { spec, fd })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `patience` with its reason always there, or never.
    fn always(patience: Patience) -> Patience {
        Patience {
            still: || true,
            ..patience
        }
    }

    fn never(patience: Patience) -> Patience {
        Patience {
            still: || false,
            ..patience
        }
    }

    /// The waits (in ms) `next` grants from nothing until it says no more, and their sum.
    fn steps(next: impl Fn(Duration) -> Option<Duration>) -> (Vec<u128>, Duration) {
        let mut so_far = Duration::ZERO;
        let mut waits = Vec::new();
        while let Some(more) = next(so_far) {
            waits.push((more - so_far).as_millis());
            so_far = more;
        }
        (waits, so_far)
    }

    #[test]
    fn a_sleep_is_put_off_while_the_machine_is_busy_doubling_up_to_its_ceiling() {
        let quiet = Duration::from_millis(500);
        let (waits, put_off) = steps(|so_far| wait_more(so_far, quiet, always(WHILE_BUSY)));
        assert_eq!(waits, [500, 500, 1000, 2000, 4000], "doubling");
        assert_eq!(put_off, LONGEST_PUT_OFF);
        assert_eq!(
            wait_more(Duration::ZERO, quiet, never(WHILE_BUSY)),
            None,
            "idle: sleep now"
        );
    }

    #[test]
    fn a_sleep_waits_for_starts_a_quiet_time_then_in_steps_of_four_seconds_up_to_a_minute() {
        let quiet = Duration::from_millis(500);
        let (waits, waited) = steps(|so_far| wait_more(so_far, quiet, always(WHILE_STARTS_GO_ON)));
        assert_eq!(waits[0], 500, "a lone start is over after a quiet time");
        assert!(waits[1..].iter().all(|&w| w == 4000), "{waits:?}");
        assert!(waited <= LONGEST_WAIT_FOR_STARTS, "{waited:?}");
        assert!(
            waited + LONGEST_STARTS_STEP > LONGEST_WAIT_FOR_STARTS,
            "{waited:?}"
        );
        assert_eq!(
            wait_more(Duration::ZERO, quiet, never(WHILE_STARTS_GO_ON)),
            None,
            "no starts: on to the machine's load"
        );
    }

    #[test]
    fn short_sleeps_double_the_quiet_time_up_to_its_ceiling_and_a_long_one_resets_it() {
        let base = Duration::from_millis(500);
        let short = Duration::from_secs(1);
        let mut quiet = base;
        let mut seen = Vec::new();
        for _ in 0..9 {
            quiet = next_quiet(quiet, base, short);
            seen.push(quiet.as_millis());
        }
        assert_eq!(
            seen,
            [1000, 2000, 4000, 8000, 16000, 32000, 64000, 64000, 64000]
        );
        assert_eq!(next_quiet(quiet, base, Duration::from_secs(641)), base);
        assert_eq!(
            next_quiet(base, base, Duration::from_secs(5)),
            base,
            "ten quiets"
        );
        let slow = Duration::from_secs(100);
        assert_eq!(
            next_quiet(slow, slow, Duration::ZERO),
            slow,
            "never below the base"
        );
    }
}
