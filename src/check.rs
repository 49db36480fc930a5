//! `emperor check CONFIG` and `emperor stats ADDR`: tools for people, not for the loop.

use crate::config::{self, LoadOptions};
use crate::policy::{self, JailContext};
use crate::policy::{payload, uwsgi};
use std::path::Path;
use std::process::ExitCode;

/// Print the resolved options of a config (each with where it came from) and the payload it
/// would run, or the first error with its file, line and option. `uwsgi_binary`: the
/// `--binary-path` a uWSGI application would run.
///
/// Options nobody would carry out (a typo, a uWSGI option beside a binary patch) are warned
/// about; `strict` makes such warnings fail the check (exit 1).
pub fn run(
    path: &Path,
    load: &LoadOptions,
    jail: &JailContext,
    uwsgi_binary: Option<&Path>,
    strict: bool,
) -> ExitCode {
    let config = match config::load(path, load) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!("# {}", config.path.display());
    for entry in &config.entries {
        println!("{} = {}    # {}", entry.key, entry.value, entry.origin);
    }
    // Everything the runtime reads before it starts the payload must be valid.
    if let Err(e) = crate::policy::timings::timings(&config) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let plan = match policy::plan(&config, jail) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!("# jail{}:", if jail.tyrant { " (tyrant mode)" } else { "" });
    for line in plan.to_string().lines() {
        println!("#   {line}");
    }
    let payload = match payload::payload_from_config(&config, &[], uwsgi_binary) {
        Ok(payload) => payload,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let is_uwsgi_app = payload.kind == payload::PayloadKind::Uwsgi;
    if is_uwsgi_app {
        println!(
            "# payload (a uWSGI application): {} {:?}",
            payload.program.display(),
            &payload.argv[1..]
        );
        println!("# working directory: {}", payload.cwd.display());
        match uwsgi::render(&config, &plan.sockets, crate::protocol::VASSAL_FD) {
            Ok(text) => {
                println!("# the config uWSGI gets over {}:", uwsgi::ENV_CONFIG_FD);
                for line in text.lines() {
                    println!("#   {line}");
                }
            }
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        println!(
            "# payload ({}): {} {:?}",
            payload.option,
            payload.program.display(),
            &payload.argv[1..]
        );
        println!("# working directory: {}", payload.cwd.display());
    }
    let warnings = unknown_options(&config, is_uwsgi_app, &payload.program, uwsgi_binary);
    if strict && warnings > 0 {
        eprintln!("{warnings} warning(s), and --strict: the check fails");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Warn about the options nobody will carry out; how many there were.
fn unknown_options(
    config: &config::Config,
    is_uwsgi_app: bool,
    program: &Path,
    uwsgi_binary: Option<&Path>,
) -> usize {
    use crate::policy::known_options;
    let plugins = known_options::plugins_of(config);
    // The uWSGI that runs it, or for a binary patch the one the emperor would use.
    let binary = if is_uwsgi_app {
        Some(program.to_path_buf())
    } else {
        let path = std::env::var("PATH").unwrap_or_else(|_| payload::DEFAULT_PATH.to_string());
        uwsgi::find_binary(uwsgi_binary, &path).ok()
    };
    let names = binary
        .as_deref()
        .and_then(|binary| known_options::uwsgi_options(binary, &plugins));
    if is_uwsgi_app && names.is_none() {
        eprintln!(
            "warning: cannot ask {} which options it knows: uWSGI's options are not checked",
            program.display()
        );
    }
    let unknown = known_options::unknown_options(config, names.as_ref(), is_uwsgi_app);
    for u in &unknown {
        eprintln!("warning: {}: option \"{}\": {}", u.origin, u.key, u.why);
    }
    unknown.len() + usize::from(is_uwsgi_app && names.is_none())
}

/// Connect to a stats server (host:port or UNIX path) and print its JSON, indented.
pub fn print_stats(addr: &str) -> ExitCode {
    let fetched = crate::top::client::StatsAddr::parse(addr).fetch(STATS_TIMEOUT);
    let body = match fetched {
        Ok(fetched) => fetched.body,
        Err(e) => {
            eprintln!("stats {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(value) => {
            println!("{}", serde_json::to_string_pretty(&value).unwrap_or(body));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("stats {addr}: not JSON: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How long `emperor stats` waits to connect and for each read of the answer.
const STATS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
