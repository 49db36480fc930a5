//! emperor: a sandboxing supervisor in the spirit of the uWSGI Emperor.
#![forbid(unsafe_code)]

pub mod config;
pub mod emperor;
pub mod monitor;
pub mod protocol;
pub mod vassal;
