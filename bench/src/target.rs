//! The supervisors under test: this project's emperor and uWSGI 2.0's emperor, each over the
//! same vassal directory, with the same namespaces (a `Jail`) and the same payload. Both
//! stats servers have the same shape: a UNIX socket, one JSON document per connection, a
//! `vassals` array.

use crate::procfs::{self, Pid};
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

/// The namespaces every vassal gets (`--emperor-use-clone`), by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jail {
    /// `plain`, `full` or `user`.
    pub name: String,
    /// The `--emperor-use-clone` list; empty for none.
    pub clone: String,
}

impl Jail {
    /// `plain` (no namespace), `full` (fs,net,ipc,pid,uts) or `user` (full + user).
    pub fn parse(name: &str) -> Result<Jail, String> {
        let clone = match name {
            "plain" => "",
            "full" => "fs,net,ipc,pid,uts",
            "user" => "fs,net,ipc,pid,uts,user",
            other => return Err(format!("unknown jail {other:?} (plain, full, user)")),
        };
        Ok(Jail {
            name: name.into(),
            clone: clone.into(),
        })
    }

    /// Whether its vassals get a user namespace.
    pub fn has_user_namespace(&self) -> bool {
        self.clone.split(',').any(|namespace| namespace == "user")
    }

    /// How the report names it.
    pub fn describe(&self) -> String {
        if self.clone.is_empty() {
            "no namespaces".into()
        } else {
            format!("--emperor-use-clone {}", self.clone)
        }
    }
}

pub trait Target {
    /// Short name for tables ("emperor", "uWSGI").
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
    fn config_file(&self, name: &str) -> String {
        format!("{name}.ini")
    }
    /// The config of a benchmark vassal that runs `payload` (a command line).
    fn config_text(&self, payload: &str) -> String;
    /// The vassals of a stats document, by config file name.
    fn vassals(&self, stats: &Value) -> HashMap<String, VassalView>;
    /// Whether the supervisor can tell a loyal vassal (uWSGI only learns it from a
    /// uWSGI-aware payload, which `sleep` is not).
    fn knows_loyalty(&self) -> bool;
}

/// The payload: costs nothing while it waits.
pub const PAYLOAD: &str = "/bin/sleep 100000";
/// Its command name once exec'd (/proc/PID/comm).
pub const PAYLOAD_COMM: &str = "sleep";
/// A payload that leaves a child behind when it is killed (the orphan check).
pub const FORKING_PAYLOAD: &str = "/bin/sh -c 'sleep 100000 & exec sleep 100000'";

/// This project's emperor, with the spawn throttle off (`--emperor-throttle 0`).
#[derive(Debug, Clone)]
pub struct Emperor {
    pub binary: PathBuf,
    pub jail: Jail,
}

impl Emperor {
    pub fn new(binary: &Path, jail: &Jail) -> Self {
        Emperor {
            binary: binary.to_path_buf(),
            jail: jail.clone(),
        }
    }
}

impl Target for Emperor {
    fn name(&self) -> &str {
        "emperor"
    }

    fn command(&self, layout: &Layout) -> Command {
        let mut command = emperor_command(&self.binary, layout, &self.jail);
        command.args(["--emperor-throttle", "0"]);
        command
    }

    fn config_text(&self, payload: &str) -> String {
        format!("[uwsgi]\nunprivileged-binary-patch-arg = {payload}\nloyal-after = 0.1\n")
    }

    fn vassals(&self, stats: &Value) -> HashMap<String, VassalView> {
        stats_list(stats, "name", |v| VassalView {
            pid: v["pid"].as_i64().filter(|&p| p > 0).map(|p| p as Pid),
            running: v["state"] == "running",
            loyal: v["loyal"] == 1,
        })
    }

    fn knows_loyalty(&self) -> bool {
        true
    }
}

/// uWSGI 2.0 (Debian's uwsgi-core) in emperor mode. Its vassal is `sh -c PAYLOAD` (how
/// uWSGI runs a binary patch), so the payload is the child of the emperor's child, as ours.
#[derive(Debug, Clone)]
pub struct Uwsgi {
    pub binary: PathBuf,
    pub jail: Jail,
}

/// Where Debian installs it.
pub const UWSGI_BINARY: &str = "/usr/bin/uwsgi-core";

impl Uwsgi {
    /// None when uWSGI is not installed.
    pub fn find(jail: &Jail) -> Option<Self> {
        let binary = PathBuf::from(UWSGI_BINARY);
        binary.is_file().then(|| Uwsgi {
            binary,
            jail: jail.clone(),
        })
    }
}

impl Target for Uwsgi {
    fn name(&self) -> &str {
        "uWSGI"
    }

    fn command(&self, layout: &Layout) -> Command {
        emperor_command(&self.binary, layout, &self.jail)
    }

    fn config_text(&self, payload: &str) -> String {
        format!("[uwsgi]\nunprivileged-binary-patch-arg = {payload}\n")
    }

    /// uWSGI has no state field: a vassal runs when its pid has an exec'd payload child.
    fn vassals(&self, stats: &Value) -> HashMap<String, VassalView> {
        stats_list(stats, "id", |v| {
            let pid = v["pid"].as_i64().filter(|&p| p > 0).map(|p| p as Pid);
            VassalView {
                pid,
                running: pid.is_some_and(|p| procfs::payload_of(p, PAYLOAD_COMM, None).is_some()),
                loyal: v["loyal"].as_i64().unwrap_or(0) > 0,
            }
        })
    }

    fn knows_loyalty(&self) -> bool {
        false
    }
}

/// The flags both emperors share: `--emperor DIR --emperor-stats SOCKET`, and the jail.
pub(crate) fn emperor_command(binary: &Path, layout: &Layout, jail: &Jail) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("--emperor")
        .arg(&layout.vassals)
        .arg("--emperor-stats")
        .arg(&layout.stats);
    if !jail.clone.is_empty() {
        command.args(["--emperor-use-clone", &jail.clone]);
    }
    command
}

/// The `vassals` array as a map from the `key` field (the config file name) to a view.
pub(crate) fn stats_list(
    stats: &Value,
    key: &str,
    view: impl Fn(&Value) -> VassalView,
) -> HashMap<String, VassalView> {
    let Some(list) = stats["vassals"].as_array() else {
        return HashMap::new();
    };
    list.iter()
        .filter_map(|v| Some((v[key].as_str()?.to_string(), view(v))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_emperor_stats_shape() {
        let doc = json!({"vassals": [
            {"name": "a.ini", "pid": 12, "state": "running", "loyal": 1},
            {"name": "b.ini", "pid": -1, "state": "queued", "loyal": 0},
        ]});
        let jail = Jail::parse("plain").unwrap();
        let vassals = Emperor::new(Path::new("/x"), &jail).vassals(&doc);
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

    #[test]
    fn reads_the_uwsgi_stats_shape() {
        let doc = json!({"vassals": [{"id": "a.ini", "pid": 0, "loyal": 1}]});
        let uwsgi = Uwsgi {
            binary: "/x".into(),
            jail: Jail::parse("full").unwrap(),
        };
        let vassals = uwsgi.vassals(&doc);
        assert_eq!(vassals["a.ini"].pid, None);
        assert!(vassals["a.ini"].loyal && !vassals["a.ini"].running);
    }

    #[test]
    fn jails_by_name() {
        assert_eq!(Jail::parse("full").unwrap().clone, "fs,net,ipc,pid,uts");
        assert!(Jail::parse("user").unwrap().clone.ends_with(",user"));
        assert!(Jail::parse("nope").is_err());
        assert!(Jail::parse("user").unwrap().has_user_namespace());
        assert!(!Jail::parse("full").unwrap().has_user_namespace());
        assert!(!Jail::parse("plain").unwrap().has_user_namespace());
    }
}
