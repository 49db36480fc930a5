//! Which options a config may hold: the ones this runtime reads (docs/options.md, "A vassal",
//! kept in step by a test), and for a uWSGI application every option its uWSGI binary knows
//! with the config's plugins (asked of the binary itself: `uwsgi --plugins P --help`).
//! `emperor check` warns about the rest: a typo such as `http-sockett`, or a uWSGI option a
//! binary patch's runtime does not carry out (`master` for nginx).

use crate::config::{Config, Entry};
use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};

/// The options this runtime reads itself, for every payload.
pub const OWN_OPTIONS: [&str; 45] = [
    "unprivileged-binary-patch-arg",
    "unprivileged-binary-patch",
    "privileged-binary-patch-arg",
    "privileged-binary-patch",
    "env",
    "chdir",
    "reload-mercy",
    "worker-reload-mercy",
    "stop-signal",
    "socket",
    "http-socket",
    "shared-socket",
    "on-demand-socket",
    "idle",
    "pool-socket",
    "fallback-config",
    "loyal-after",
    "ready-check",
    "master-fifo",
    "pidfile",
    "unshare",
    "exec-as-root",
    "exec-as-user",
    "hostname",
    "bind-mount",
    "bind-mount-ro",
    "tmpfs",
    "pivot-root",
    "chroot",
    "uid",
    "gid",
    "cap",
    "limit-as",
    "limit-nproc",
    "max-fd",
    "limit-fsize",
    "limit-core",
    "memory-max",
    "pids-max",
    "cpu-max",
    "cpu-weight",
    "seccomp",
    "logto",
    "logto2",
    "log-maxsize",
];

/// A config option nobody will carry out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub key: String,
    pub origin: String,
    pub why: String,
}

/// The option names a uWSGI binary knows with `plugins` loaded, from its own `--help`; None
/// when it cannot be asked.
pub fn uwsgi_options(binary: &Path, plugins: &[String]) -> Option<HashSet<String>> {
    let mut command = Command::new(binary);
    if !plugins.is_empty() {
        command.arg("--plugins").arg(plugins.join(","));
    }
    let output = command
        .arg("--help")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let names = parse_help(&String::from_utf8_lossy(&output.stdout));
    (!names.is_empty()).then_some(names)
}

/// `    -s|--socket   bind to ...` and `    --http-socket   ...` lines: the long names.
fn parse_help(help: &str) -> HashSet<String> {
    help.lines()
        .filter_map(|line| {
            let first = line.split_whitespace().next()?;
            let long = first.rsplit('|').next()?;
            long.strip_prefix("--").map(str::to_string)
        })
        .collect()
}

/// The config's `plugins` (comma- or space-separated, repeatable), uWSGI's `plugin` too.
pub fn plugins_of(config: &Config) -> Vec<String> {
    ["plugins", "plugin"]
        .iter()
        .flat_map(|key| config.get_all(key))
        .flat_map(|entry| {
            entry
                .value
                .split([',', ' '])
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The names used as `%(name)` in the files the config came from (their raw text: the
/// loaded values are already expanded).
fn placeholders_used(config: &Config) -> HashSet<String> {
    let files: HashSet<&Path> = config
        .entries
        .iter()
        .map(|e| e.origin.file.as_path())
        .collect();
    let mut names = HashSet::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for piece in text.split("%(").skip(1) {
            if let Some((name, _)) = piece.split_once(')') {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// The options of `config` nobody will carry out. `uwsgi`: the options the uWSGI binary knows
/// with the config's plugins (None: it could not be asked); `is_uwsgi_app`: the config runs
/// uWSGI (else a binary patch, whose runtime carries out only its own options).
pub fn unknown_options(
    config: &Config,
    uwsgi: Option<&HashSet<String>>,
    is_uwsgi_app: bool,
) -> Vec<Unknown> {
    let own = |key: &str| OWN_OPTIONS.contains(&key);
    let placeholders = placeholders_used(config);
    let mut seen = HashSet::new();
    config
        .entries
        .iter()
        .filter(|entry| seen.insert(entry.key.clone()))
        .filter_map(|entry: &Entry| {
            let key = entry.key.replace('_', "-");
            // An option used as a placeholder (`%(project)`) is a variable, as in uWSGI.
            if own(&key) || placeholders.contains(&entry.key) {
                return None;
            }
            let known_to_uwsgi = uwsgi.is_some_and(|names| names.contains(&key));
            let why = match (is_uwsgi_app, known_to_uwsgi, uwsgi.is_some()) {
                (true, true, _) => return None,
                (true, false, true) => "neither an emperor option nor one this uWSGI knows with the config's plugins".to_string(),
                (true, false, false) => return None,
                (false, true, _) => "a uWSGI option: this config runs a binary patch, whose runtime does not carry it out".to_string(),
                (false, false, _) => "not an option of the emperor's runtime (nor of uWSGI)".to_string(),
            };
            Some(Unknown {
                key: entry.key.clone(),
                origin: entry.origin.to_string(),
                why,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uwsgi_help_lines_give_their_long_names() {
        let help = "Usage: uwsgi [options...]\n    -s|--socket                           bind to the specified UNIX/TCP socket\n    --http-socket                         bind to the specified socket using HTTP\n    -M|--master                           enable master process\n";
        let names = parse_help(help);
        assert!(
            names.contains("socket") && names.contains("http-socket") && names.contains("master")
        );
        assert_eq!(names.len(), 3);
    }

    #[test]
    fn every_option_docs_options_md_lists_for_a_vassal_is_known_and_no_other() {
        let doc = include_str!("../../docs/options.md");
        let section = doc
            .split("\n## A vassal")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("docs/options.md has an \"A vassal\" section");
        let mut documented: HashSet<String> = HashSet::new();
        for row in section.lines().filter(|l| l.starts_with("| `")) {
            let first_cell = row.split(" | ").next().unwrap_or_default();
            for quoted in first_cell.split('`').skip(1).step_by(2) {
                let name = quoted.split([' ', '=']).next().unwrap_or_default();
                documented.insert(name.to_string());
            }
        }
        let own: HashSet<String> = OWN_OPTIONS.iter().map(|o| o.to_string()).collect();
        assert_eq!(
            documented, own,
            "docs/options.md's vassal table and OWN_OPTIONS differ"
        );
    }
}
