//! jail: every syscall the emperor and its vassal runtimes make to start, watch, confine and
//! stop processes. This is the only crate of the workspace with `unsafe`; each block says why
//! it is sound. Nothing here knows about configs: callers hand in plain values.

pub mod alloc_meter;
pub mod caps;
pub mod cgroup;
pub mod creds;
pub mod error;
pub mod fd;
pub mod fsid;
pub mod launch;
pub mod memfd;
pub mod mount;
pub mod ns;
pub mod plan;
pub mod process;
pub mod reexec;
pub mod seccomp;
pub mod signals;
mod sys;
pub mod userns;
mod vfork;
pub mod worker;

pub use error::SysError;
pub use launch::{Launch, LaunchError, Launched, Running};
