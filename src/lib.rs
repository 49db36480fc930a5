//! emperor: a sandboxing supervisor in the spirit of the uWSGI Emperor.
#![forbid(unsafe_code)]

pub mod check;
pub mod cli;
pub mod clone_server;
pub mod config;
pub mod config_reader;
pub mod emperor;
pub mod helper_identity;
pub mod logging;
pub mod monitor;
pub mod policy;
pub mod protocol;
pub mod reload;
pub mod runtime_args;
pub mod sockets;
pub mod terminal_docs;
pub mod top;
pub mod upgrade_command;
pub mod vassal;
