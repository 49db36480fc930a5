//! Which program a vassal runs (its payload): the program a binary-patch option names, else
//! (a uWSGI application) the uWSGI binary.

use crate::config::{Config, Entry};
use std::path::{Path, PathBuf};

/// The options that name a payload, in the order uWSGI would exec them: the privileged patch
/// runs before the privilege drop, so it wins when both are set.
pub const PAYLOAD_OPTIONS: [&str; 4] = [
    "privileged-binary-patch-arg",
    "privileged-binary-patch",
    "unprivileged-binary-patch-arg",
    "unprivileged-binary-patch",
];

/// The PATH a payload gets unless its config sets one (the environment is cleaned).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// A uWSGI application whose uWSGI binary is missing, or whose config uWSGI cannot get.
    #[error("{}: a uWSGI application (it names no binary patch): {source}", file.display())]
    Uwsgi {
        file: PathBuf,
        source: super::uwsgi::UwsgiError,
    },
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

/// What kind of program the payload is: it decides how the runtime talks to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// A binary patch: any program; stopped and reloaded with signals.
    Patch,
    /// The uWSGI binary: it gets its config over the channel and obeys the protocol's stop
    /// and reload bytes (never SIGTERM: uWSGI 2.0 takes it as a brutal reload).
    Uwsgi,
}

/// A payload ready to launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub kind: PayloadKind,
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

/// Whether the config names a binary patch (else it is a uWSGI application).
pub fn has_binary_patch(config: &Config) -> bool {
    PAYLOAD_OPTIONS
        .iter()
        .any(|name| config.get(name).is_some())
}

/// Read the payload from `config`. `vassal_args` are the arguments the plain (non `-arg`)
/// patches get, as uWSGI passes its own arguments to the patched binary; `uwsgi_binary` is
/// the `--binary-path` a uWSGI application runs (None: `uwsgi` on the payload's PATH).
pub fn payload_from_config(
    config: &Config,
    vassal_args: &[String],
    uwsgi_binary: Option<&Path>,
) -> Result<Payload, PayloadError> {
    let Some((option, entry)) = PAYLOAD_OPTIONS
        .iter()
        .find_map(|&name| config.get(name).map(|entry| (name, entry)))
    else {
        return uwsgi_payload(config, uwsgi_binary);
    };
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
    let path = search_path(&env);
    let program = jail::launch::find_program(&argv[0], path)
        .filter(|p| p.is_file())
        .ok_or_else(|| {
            PayloadError::invalid(
                entry,
                format!("program {:?} not found (PATH={path})", argv[0]),
            )
        })?;
    Ok(Payload {
        kind: PayloadKind::Patch,
        program,
        argv,
        env,
        cwd: working_dir(config),
        option: option.to_string(),
    })
}

/// A uWSGI application: the uWSGI binary, reading its config from the channel.
fn uwsgi_payload(config: &Config, binary: Option<&Path>) -> Result<Payload, PayloadError> {
    let env = environment(config)?;
    let path = search_path(&env);
    let program =
        super::uwsgi::find_binary(binary, path).map_err(|source| PayloadError::Uwsgi {
            file: config.path.clone(),
            source,
        })?;
    Ok(Payload {
        kind: PayloadKind::Uwsgi,
        argv: super::uwsgi::argv(&program, &config.path),
        program,
        env,
        cwd: working_dir(config),
        option: "binary-path".to_string(),
    })
}

/// Where the payload's programs are looked up: its own PATH (always set by [`environment`]).
fn search_path(env: &[(String, String)]) -> &str {
    env.iter()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str())
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
