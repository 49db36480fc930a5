//! The emperor binary under test: `EMPEROR_BIN` if set, else a release build of this workspace.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `cargo build --release -p emperor -p jail --bins` (the emperor and the jail-probe the
/// escape scenario runs) into `target_dir`. A target directory of its own
/// means this build never waits on the lock held by the `cargo test` that runs us.
pub fn binary(workspace: &Path, target_dir: &Path) -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("EMPEROR_BIN") {
        let bin = PathBuf::from(bin);
        return match bin.is_file() {
            true => Ok(bin),
            false => Err(format!("EMPEROR_BIN={}: no such file", bin.display())),
        };
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "emperor",
            "-p",
            "jail",
            "--bins",
        ])
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .map_err(|e| format!("run cargo build: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "cargo build --release -p emperor -p jail --bins: {}\n{stderr}",
            output.status
        ));
    }
    Ok(target_dir.join("release/emperor"))
}
