//! jail: every syscall the emperor and its vassal runtimes make to start, watch, confine and
//! stop processes. This is the only crate of the workspace with `unsafe`, and within it only
//! the modules that must hold it say so (`#[allow(unsafe_code)]`): `sys` (the raw calls),
//! `vfork` (a clone on a stack of its own), `alloc_meter` (a global allocator), `fd` (taking
//! ownership of fds the kernel hands over), `title` (rewriting a copied process's command line),
//! and the two functions that clone a launch's child.
//! Each block says why it is sound. Nothing here knows about configs: callers hand in plain
//! values. `keeper/` beside this source is `emperor-keeper` (see `keeper`), a no-std package
//! of its own whose raw calls are its `sys.rs`, each block with its SAFETY comment too.
#![deny(unsafe_code)]

pub mod ahead;
#[allow(unsafe_code)]
pub mod alloc_meter;
pub mod caps;
pub mod cgroup;
pub mod creds;
pub mod error;
#[allow(unsafe_code)]
pub mod fd;
pub mod fsid;
pub mod keeper;
pub mod launch;
pub mod memfd;
pub mod mount;
pub mod ns;
pub mod plan;
pub mod process;
pub mod reexec;
pub mod seccomp;
pub mod signals;
#[allow(unsafe_code)]
mod sys;
#[cfg(test)]
mod testing;
#[allow(unsafe_code)]
pub mod title;
pub mod userns;
#[allow(unsafe_code)]
mod vfork;
pub mod worker;

pub use error::SysError;
pub use launch::{ChildStep, Launch, LaunchError, Launched, Running};
