//! Which binary runs each vassal's runtime: `--binary-path` if given, else the
//! `emperor-vassal` installed beside this emperor when it was built from the same sources,
//! else this emperor's own binary (`emperor vassal CONFIG` works as well; it only dirties
//! more memory per vassal).

use crate::protocol::{RUNTIME_BINARY, SOURCE_STAMP, SOURCE_STAMP_FLAG};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tracing::{info, warn};

pub fn choose(explicit: Option<&Path>) -> std::io::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let own = std::env::current_exe()?;
    let beside = own.with_file_name(RUNTIME_BINARY);
    if !beside.is_file() {
        info!(
            "runtimes run from {} ({RUNTIME_BINARY} is not installed beside it)",
            own.display()
        );
        return Ok(own);
    }
    match stamp_of(&beside) {
        Ok(stamp) if stamp == SOURCE_STAMP => Ok(beside),
        Ok(stamp) => {
            warn!(
                "{}: built from other sources (stamp {stamp}, this emperor's {SOURCE_STAMP}); \
                 runtimes run from {} instead (build both binaries: cargo build --bins)",
                beside.display(),
                own.display()
            );
            Ok(own)
        }
        Err(reason) => {
            warn!(
                "{} {SOURCE_STAMP_FLAG}: {reason}; runtimes run from {} instead",
                beside.display(),
                own.display()
            );
            Ok(own)
        }
    }
}

/// What `binary --source-stamp` prints, run with an empty environment.
fn stamp_of(binary: &Path) -> Result<String, String> {
    let output = Command::new(binary)
        .arg(SOURCE_STAMP_FLAG)
        .env_clear()
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!("exited with {}", output.status));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}
