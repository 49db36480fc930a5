//! The `emperor` binary: parse the command line, set up logging, run what was asked.

use emperor::cli::{self, Command};
use emperor::policy;
use emperor::{check, emperor as supervisor, reload, vassal};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    // The format is needed before the command line is parsed (parsing may log): read it
    // first, and hand it to the runtimes through the environment.
    if let Some(format) = log_format_argument() {
        std::env::set_var(emperor::logging::FORMAT_VARIABLE, format);
    }
    emperor::logging::init();
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(e) => return fail(&e),
    };
    match cli.command {
        Some(Command::Vassal(args)) => match args.into_vassal_args() {
            Ok(args) => ExitCode::from(vassal::run(args) as u8),
            Err(e) => fail(&e),
        },
        Some(Command::Check(args)) => match (args.load_options(), args.jail_context()) {
            (Ok(load), Ok(mut jail)) => {
                // As the emperor would spawn it.
                jail.cloned = policy::cloned_namespaces(jail.emperor_namespaces, jail.tyrant);
                check::run(
                    &args.config,
                    &load,
                    &jail,
                    args.binary_path.as_deref(),
                    args.strict,
                )
            }
            (Err(e), _) | (_, Err(e)) => fail(&e),
        },
        Some(Command::Stats { addr }) => check::print_stats(&addr),
        Some(Command::Top(args)) => match args.into_top_args() {
            Ok(args) => emperor::top::run(args),
            Err(e) => fail(&e),
        },
        Some(Command::CloneServer(args)) => {
            emperor::clone_server::serve(args.identity.identity(), args.in_process)
        }
        Some(Command::Completions { shell }) => {
            emperor::terminal_docs::print_completions(shell);
            ExitCode::SUCCESS
        }
        Some(Command::Manpages { dir }) => match emperor::terminal_docs::write_manpages(&dir) {
            Ok(pages) => {
                for page in pages {
                    println!("{}", page.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("writing man pages into {}: {e}", dir.display())),
        },
        Some(Command::ConfigReader(args)) => {
            emperor::config_reader::serve(args.identity.identity(), args.memory_mib)
        }
        Some(Command::Upgrade(args)) => match Duration::try_from_secs_f64(args.timeout) {
            Ok(timeout) => ExitCode::from(emperor::upgrade_command::run(&args.control, timeout)),
            Err(_) => fail(&format!(
                "--timeout: {} is not a number of seconds",
                args.timeout
            )),
        },
        Some(Command::Reload(args)) => {
            let seconds = |s: f64, what: &str| {
                Duration::try_from_secs_f64(s)
                    .map_err(|_| format!("--{what}: {s} is not a number of seconds"))
            };
            match (
                seconds(args.timeout, "timeout"),
                seconds(args.check_interval, "check-interval"),
            ) {
                (Ok(timeout), Ok(check_interval)) => {
                    ExitCode::from(reload::run(&reload::ReloadArgs {
                        control: args.control,
                        names: args.names,
                        pool: args.pool,
                        minimum_active: args.minimum_active_vassals,
                        timeout,
                        check_interval,
                        quiet: args.quiet,
                    }))
                }
                (Err(e), _) | (_, Err(e)) => fail(&e),
            }
        }
        None => match cli.emperor.settings() {
            Ok(_) if supervisor::upgrade::is_probe() => supervisor::upgrade::answer_probe(),
            Ok(settings) => match supervisor::run(settings) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            },
            Err(e) => fail(&e),
        },
    }
}

/// The value of `--log-format FORMAT` or `--log-format=FORMAT`, when it is a known format
/// (clap reports a bad one).
fn log_format_argument() -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("--log-format") {
            Some("") => args.next(),
            Some(rest) => rest.strip_prefix('=').map(str::to_string),
            None => continue,
        };
        return value.filter(|v| emperor::logging::Format::parse(v).is_some());
    }
    None
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    tracing::error!("{error}");
    ExitCode::FAILURE
}
