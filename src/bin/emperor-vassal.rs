//! `emperor-vassal`: the vassal runtime alone (`emperor-vassal vassal CONFIG`, as `emperor
//! vassal CONFIG`). Every vassal has one runtime process; linking only the runtime's code
//! (no monitors, no PostgreSQL, AMQP or ZeroMQ clients) keeps the memory each one dirties
//! small: the loader relocates every pointer in a binary's read-only data in each process.

use clap::Parser;
use emperor::cli::{CloneServerArgs, ConfigReaderCommand, VassalCommand};
use emperor::protocol::{SOURCE_STAMP, SOURCE_STAMP_FLAG};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "emperor-vassal", version = emperor::cli::VERSION)]
struct Cli {
    #[command(subcommand)]
    command: Runtime,
}

#[derive(Debug, clap::Subcommand)]
// Parsed once at start: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Runtime {
    /// Run one vassal in the foreground (what the emperor runs for each config).
    Vassal(VassalCommand),
    /// The emperor's clone server (started by the emperor, on its socket at fd 3).
    #[command(hide = true)]
    CloneServer(CloneServerArgs),
    /// The emperor's config reader (started by the emperor, on its socket at fd 3).
    #[command(hide = true)]
    ConfigReader(ConfigReaderCommand),
}

fn main() -> ExitCode {
    // The emperor asks which sources this binary was built from before it uses it.
    if std::env::args().nth(1).as_deref() == Some(SOURCE_STAMP_FLAG) {
        println!("{SOURCE_STAMP}");
        return ExitCode::SUCCESS;
    }
    emperor::logging::init();
    match Cli::parse().command {
        Runtime::Vassal(args) => match args.into_vassal_args() {
            Ok(args) => ExitCode::from(emperor::vassal::run(args) as u8),
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::FAILURE
            }
        },
        Runtime::CloneServer(args) => {
            emperor::clone_server::serve(args.identity.identity(), args.in_process)
        }
        Runtime::ConfigReader(args) => {
            emperor::config_reader::serve(args.identity.identity(), args.memory_mib)
        }
    }
}
