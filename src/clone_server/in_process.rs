//! A runtime the clone server runs in a copy of itself (`clone-server --in-process`, the root
//! emperor's): the copy takes the runtime's environment and command line, then runs
//! [`crate::vassal::run`] as `emperor-vassal vassal ...` would after its execve, and exits.
//! No execve and no dynamic loading per vassal: the server's code, libraries and
//! relocations are already in place, shared with every runtime until one writes a page.

use super::RuntimeStart;
use jail::launch::LaunchError;
use jail::title::TitleRoom;
use std::ffi::CString;

/// The variable the server is started with to make room for its copies' titles: argv and the
/// environment strings are one span of memory, rewritten with each runtime's command line
/// (see [`jail::title`]).
pub const TITLE_ROOM_VARIABLE: &str = "EMPEROR_TITLE_ROOM";
/// Bytes of that room: a page, all the kernel shows of a rewritten command line.
pub const TITLE_ROOM_BYTES: usize = 4096;

/// Exit status of a runtime whose steps failed before it ran (as after a failed execve).
const STEPS_FAILED_STATUS: i32 = 127;

/// The child's whole life: become the runtime `start` describes and exit with its status, or
/// say which step failed (nobody waits on its report) and exit 127. Never returns into the
/// server's frames, whose fds are no longer this process's.
pub fn run_runtime(
    start: &RuntimeStart,
    steps: Result<(), LaunchError>,
    room: Option<TitleRoom>,
) -> ! {
    if let Err(e) = steps {
        let config = start.argv.last().map(String::as_str).unwrap_or_default();
        tracing::error!("the runtime of {config}: {e}");
        std::process::exit(STEPS_FAILED_STATUS);
    }
    let status = std::panic::catch_unwind(|| {
        take_environment(&start.env);
        if let Some(room) = room {
            if let Ok(title) = CString::new(start.argv.join(" ")) {
                room.write(&title);
            }
        }
        if let Some(program) = start.argv.first() {
            crate::vassal::set_program(program.into());
        }
        match crate::cli::decode_runtime_argv(&start.argv) {
            Ok(args) => crate::vassal::run(args),
            Err(e) => {
                tracing::error!("{e}");
                crate::protocol::EXIT_CONFIG_ERROR
            }
        }
    });
    // A panic has been reported by the hook; 101 is the status Rust gives it.
    std::process::exit(status.unwrap_or(101))
}

/// Exactly `env`, as an execve with it would give: the server's own variables (its title
/// room among them) go, and the runtime's are copied to the heap by setenv.
fn take_environment(env: &[(String, String)]) {
    for (key, _) in std::env::vars_os() {
        std::env::remove_var(key);
    }
    for (key, value) in env {
        std::env::set_var(key, value);
    }
}
