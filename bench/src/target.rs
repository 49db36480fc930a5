//! A supervisor under test. Today only this project's emperor; uWSGI 2.0 in emperor mode can
//! be added as a second implementation (its stats server has the same shape: a UNIX socket,
//! one JSON document per connection, a `vassals` array).

use crate::procfs::Pid;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where a supervisor runs: its vassal directory, its stats socket, its log file.
#[derive(Debug, Clone)]
pub struct Layout {
    pub vassals: PathBuf,
    pub stats: PathBuf,
    pub log: PathBuf,
}

/// One vassal as the stats document shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VassalView {
    /// The runtime (the process the supervisor started for this config); None when down.
    pub pid: Option<Pid>,
    pub running: bool,
    pub loyal: bool,
}

pub trait Target {
    /// Short name for tables ("emperor").
    fn name(&self) -> &str;
    /// The command line that supervises `layout` (stdout and stderr are set by the caller).
    fn command(&self, layout: &Layout) -> Command;
    /// The same, as text for the report.
    fn describe(&self, layout: &Layout) -> String {
        let command = self.command(layout);
        std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
    /// A vassal config file's name for vassal `name`.
    fn config_file(&self, name: &str) -> String;
    /// The config every benchmark vassal gets.
    fn config_text(&self) -> String;
    /// The payload's command name once exec'd (/proc/PID/comm).
    fn payload_comm(&self) -> &str;
    /// The vassals of a stats document, by config file name.
    fn vassals(&self, stats: &Value) -> HashMap<String, VassalView>;
}

/// This project's emperor, with the spawn throttle off (`--emperor-throttle 0`).
#[derive(Debug, Clone)]
pub struct Emperor {
    pub binary: PathBuf,
}

/// The payload: obeys SIGTERM, costs nothing while it waits.
pub const PAYLOAD: &str = "/bin/sleep 100000";

impl Emperor {
    pub fn new(binary: &Path) -> Self {
        Emperor {
            binary: binary.to_path_buf(),
        }
    }
}

impl Target for Emperor {
    fn name(&self) -> &str {
        "emperor"
    }

    fn command(&self, layout: &Layout) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--emperor")
            .arg(&layout.vassals)
            .arg("--emperor-stats")
            .arg(&layout.stats)
            .args(["--emperor-throttle", "0"]);
        command
    }

    fn config_file(&self, name: &str) -> String {
        format!("{name}.ini")
    }

    fn config_text(&self) -> String {
        format!("[uwsgi]\nunprivileged-binary-patch-arg = {PAYLOAD}\nloyal-after = 0.1\n")
    }

    fn payload_comm(&self) -> &str {
        "sleep"
    }

    fn vassals(&self, stats: &Value) -> HashMap<String, VassalView> {
        let Some(list) = stats["vassals"].as_array() else {
            return HashMap::new();
        };
        list.iter()
            .filter_map(|v| {
                let name = v["name"].as_str()?.to_string();
                let pid = v["pid"].as_i64().filter(|&p| p > 0).map(|p| p as Pid);
                let view = VassalView {
                    pid,
                    running: v["state"] == "running",
                    loyal: v["loyal"] == true,
                };
                Some((name, view))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_emperor_stats_shape() {
        let doc = json!({"vassals": [
            {"name": "a.ini", "pid": 12, "state": "running", "loyal": true},
            {"name": "b.ini", "pid": -1, "state": "queued", "loyal": false},
        ]});
        let vassals = Emperor::new(Path::new("/x")).vassals(&doc);
        assert_eq!(
            vassals["a.ini"],
            VassalView {
                pid: Some(12),
                running: true,
                loyal: true
            }
        );
        assert_eq!(vassals["b.ini"].pid, None);
        assert!(!vassals["b.ini"].running);
    }
}
