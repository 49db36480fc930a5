//! Which program a vassal runs (its payload), read from the binary-patch options.

use crate::config::{Config, Entry};
use std::path::{Path, PathBuf};

/// The options that name a payload, in the order uWSGI would exec them: the privileged patch
/// runs before the privilege drop, so it wins when both are set.
const PAYLOAD_OPTIONS: [&str; 4] = [
    "privileged-binary-patch-arg",
    "privileged-binary-patch",
    "unprivileged-binary-patch-arg",
    "unprivileged-binary-patch",
];

/// The PATH a payload gets unless its config sets one (the environment is cleaned).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("{}: no payload: set unprivileged-binary-patch-arg (or one of {})", file.display(), PAYLOAD_OPTIONS.join(", "))]
    Missing { file: PathBuf },
    #[error("{}: option \"{option}\": {reason}", where_(file, *line))]
    Invalid {
        file: PathBuf,
        line: Option<usize>,
        option: String,
        reason: String,
    },
}

fn where_(file: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", file.display()),
        None => file.display().to_string(),
    }
}

/// A payload ready to launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Resolved program path.
    pub program: PathBuf,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// The option that named it, for error messages.
    pub option: String,
}

impl PayloadError {
    fn invalid(entry: &Entry, reason: impl Into<String>) -> Self {
        PayloadError::Invalid {
            file: entry.origin.file.clone(),
            line: entry.origin.line,
            option: entry.key.clone(),
            reason: reason.into(),
        }
    }
}

/// Read the payload from `config`. `vassal_args` are the arguments the plain (non `-arg`)
/// patches get, as uWSGI passes its own arguments to the patched binary.
pub fn payload_from_config(
    config: &Config,
    vassal_args: &[String],
) -> Result<Payload, PayloadError> {
    let (option, entry) = PAYLOAD_OPTIONS
        .iter()
        .find_map(|&name| config.get(name).map(|entry| (name, entry)))
        .ok_or_else(|| PayloadError::Missing {
            file: config.path.clone(),
        })?;
    let argv = if option.ends_with("-arg") {
        shell_words::split(&entry.value).map_err(|e| {
            PayloadError::invalid(entry, format!("cannot split {:?}: {e}", entry.value))
        })?
    } else {
        let mut argv = vec![entry.value.trim().to_string()];
        argv.extend(vassal_args.iter().cloned());
        argv
    };
    if argv.first().is_none_or(|a| a.is_empty()) {
        return Err(PayloadError::invalid(entry, "empty command"));
    }
    let env = environment(config)?;
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(DEFAULT_PATH);
    let program = jail::launch::find_program(&argv[0], path)
        .filter(|p| p.is_file())
        .ok_or_else(|| {
            PayloadError::invalid(
                entry,
                format!("program {:?} not found (PATH={path})", argv[0]),
            )
        })?;
    Ok(Payload {
        program,
        argv,
        env,
        cwd: working_dir(config),
        option: option.to_string(),
    })
}

/// `env = KEY=VALUE` entries, in order; a later one replaces an earlier one of the same key.
fn environment(config: &Config) -> Result<Vec<(String, String)>, PayloadError> {
    let mut env: Vec<(String, String)> = Vec::new();
    for entry in config.get_all("env") {
        let (key, value) = entry.value.split_once('=').ok_or_else(|| {
            PayloadError::invalid(entry, format!("expected KEY=VALUE, got {:?}", entry.value))
        })?;
        env.retain(|(k, _)| k != key);
        env.push((key.to_string(), value.to_string()));
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    Ok(env)
}

/// `chdir = DIR`, else the config file's directory (uWSGI starts vassals in the vassal dir).
fn working_dir(config: &Config) -> PathBuf {
    match config.get("chdir") {
        Some(entry) => PathBuf::from(&entry.value),
        // A config from a store has no directory: the emperor's own, as uWSGI does.
        None => config.dir().unwrap_or(Path::new(".")).to_path_buf(),
    }
}
