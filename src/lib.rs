//! emperor: a sandboxing supervisor in the spirit of the uWSGI Emperor.
#![forbid(unsafe_code)]

pub mod check;
pub mod cli;
pub mod clone_server;
pub mod config;
pub mod config_reader;
pub mod emperor;
pub mod logging;
pub mod monitor;
pub mod protocol;
pub mod reload;
pub mod terminal_docs;
pub mod vassal;
