//! `exec-as-root` and `exec-as-user` hooks: shell commands the runtime runs, and waits for,
//! before the payload. A hook that fails stops the vassal from starting (uWSGI: fatal).

use crate::policy::payload::Payload;
use jail::creds::PrivilegeDrop;
use jail::launch::{Launch, LaunchError};
use nix::sys::wait::{waitpid, WaitStatus};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{option} {command:?}: {source}")]
    Launch {
        option: &'static str,
        command: String,
        source: LaunchError,
    },
    #[error("{option} {command:?}: exited with status {status}")]
    Failed {
        option: &'static str,
        command: String,
        status: i32,
    },
}

/// Run `/bin/sh -c COMMAND` with the payload's environment, as the jail's root (no drop) or
/// dropped like the payload, and wait for it.
pub fn run(
    option: &'static str,
    command: &str,
    payload: &Payload,
    drop: Option<&PrivilegeDrop>,
) -> Result<(), HookError> {
    let launch_error = |source| HookError::Launch {
        option,
        command: command.to_string(),
        source,
    };
    let mut launch =
        Launch::new(Path::new("/bin/sh"), &["sh", "-c", command]).map_err(launch_error)?;
    for (key, value) in &payload.env {
        launch.env(key, value).map_err(launch_error)?;
    }
    launch.parent_death_signal(libc::SIGKILL);
    if let Some(drop) = drop {
        launch.drop_privileges(drop.clone());
    }
    let child = launch
        .start()
        .and_then(|l| l.release())
        .map_err(launch_error)?;
    let status = loop {
        match waitpid(child.pid, None) {
            Ok(WaitStatus::Exited(_, code)) => break code,
            Ok(WaitStatus::Signaled(_, signal, _)) => break 128 + signal as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break 127,
        }
    };
    if status != 0 {
        return Err(HookError::Failed {
            option,
            command: command.to_string(),
            status,
        });
    }
    Ok(())
}
