//! `emperor check CONFIG` and `emperor stats ADDR`: tools for people, not for the loop.

use crate::config::{self, LoadOptions};
use crate::policy::{self, JailContext};
use crate::policy::{payload, uwsgi};
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

/// Print the resolved options of a config (each with where it came from) and the payload it
/// would run, or the first error with its file, line and option. `uwsgi_binary`: the
/// `--binary-path` a uWSGI application would run.
pub fn run(
    path: &Path,
    load: &LoadOptions,
    jail: &JailContext,
    uwsgi_binary: Option<&Path>,
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
    match payload::payload_from_config(&config, &[], uwsgi_binary) {
        Ok(p) if p.kind == payload::PayloadKind::Uwsgi => {
            println!(
                "# payload (a uWSGI application): {} {:?}",
                p.program.display(),
                &p.argv[1..]
            );
            println!("# working directory: {}", p.cwd.display());
            match uwsgi::render(&config, &plan.sockets, crate::protocol::VASSAL_FD) {
                Ok(text) => {
                    println!("# the config uWSGI gets over {}:", uwsgi::ENV_CONFIG_FD);
                    for line in text.lines() {
                        println!("#   {line}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Ok(p) => {
            println!(
                "# payload ({}): {} {:?}",
                p.option,
                p.program.display(),
                &p.argv[1..]
            );
            println!("# working directory: {}", p.cwd.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Connect to a stats server (host:port or UNIX path) and print its JSON, indented.
pub fn print_stats(addr: &str) -> ExitCode {
    let mut body = String::new();
    let read = if addr.contains(':') && !addr.starts_with('/') {
        std::net::TcpStream::connect(addr).and_then(|mut s| s.read_to_string(&mut body))
    } else {
        std::os::unix::net::UnixStream::connect(addr).and_then(|mut s| s.read_to_string(&mut body))
    };
    if let Err(e) = read {
        eprintln!("stats {addr}: {e}");
        return ExitCode::FAILURE;
    }
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
