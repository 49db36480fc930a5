//! Jail steps as plain values (bubblewrap's setup ops, with types): decided first, shown by
//! `emperor check`, then run one by one by a dumb executor that names the step that failed.

use crate::error::SysError;
use crate::ns::{self, Namespaces};
use crate::{mount, sys};
use std::fmt;
use std::path::PathBuf;

/// One step the vassal runtime runs on itself, in plan order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Enter namespaces the clone did not create (net comes after sockets are bound).
    Unshare(Namespaces),
    LoopbackUp,
    SetHostname(String),
    MakeMountsPrivate,
    BindMount {
        source: PathBuf,
        target: PathBuf,
        read_only: bool,
        nosuid_nodev: bool,
    },
    Tmpfs {
        target: PathBuf,
        size: Option<u64>,
    },
    PivotRoot(PathBuf),
    MountProc(PathBuf),
    /// No core dumps, no ptrace by the payload, /proc/PID owned by root (runc CVE-2016-9962).
    NotDumpable,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Unshare(ns) => write!(f, "unshare {ns}"),
            Step::LoopbackUp => write!(f, "bring lo up"),
            Step::SetHostname(name) => write!(f, "set hostname {name}"),
            Step::MakeMountsPrivate => write!(f, "make mounts private (rslave /)"),
            Step::BindMount {
                source,
                target,
                read_only,
                nosuid_nodev,
            } => {
                let mode = if *read_only {
                    "read-only"
                } else {
                    "read-write"
                };
                let extra = if *nosuid_nodev { ",nosuid,nodev" } else { "" };
                write!(
                    f,
                    "bind {} on {} ({mode}{extra})",
                    source.display(),
                    target.display()
                )
            }
            Step::Tmpfs {
                target,
                size: Some(size),
            } => write!(f, "tmpfs on {} (size {size})", target.display()),
            Step::Tmpfs { target, size: None } => write!(f, "tmpfs on {}", target.display()),
            Step::PivotRoot(root) => write!(f, "pivot_root into {}", root.display()),
            Step::MountProc(target) => write!(f, "mount proc at {}", target.display()),
            Step::NotDumpable => write!(f, "make the runtime non-dumpable"),
        }
    }
}

/// A step that failed: `jail step "mount proc at /proc": mount(proc) on /proc: EPERM: ...`.
#[derive(Debug, thiserror::Error)]
#[error("jail step \"{step}\": {source}")]
pub struct StepError {
    pub step: Step,
    #[source]
    pub source: SysError,
}

impl Step {
    pub fn run(&self) -> Result<(), SysError> {
        match self {
            Step::Unshare(namespaces) => ns::unshare(*namespaces),
            Step::LoopbackUp => ns::loopback_up(),
            Step::SetHostname(name) => ns::set_hostname(name),
            Step::MakeMountsPrivate => mount::make_mounts_private(),
            Step::BindMount {
                source,
                target,
                read_only,
                nosuid_nodev,
            } => mount::bind(source, target, *read_only, *nosuid_nodev),
            Step::Tmpfs { target, size } => mount::tmpfs(target, *size),
            Step::PivotRoot(root) => mount::pivot_root(root),
            Step::MountProc(target) => mount::mount_proc(target),
            Step::NotDumpable => sys::prctl(libc::PR_SET_DUMPABLE, 0, 0)
                .map(drop)
                .map_err(|e| SysError::new("prctl(PR_SET_DUMPABLE)", e)),
        }
    }
}

/// Run steps in order; stop at the first failure.
pub fn apply(steps: &[Step]) -> Result<(), StepError> {
    for step in steps {
        step.run().map_err(|source| StepError {
            step: step.clone(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;
    use crate::testing::{expect_eq, in_forked_child, private_mount_namespace, root_or_skip};

    fn tmpfs(target: &std::path::Path) -> Step {
        Step::Tmpfs {
            target: target.to_path_buf(),
            size: None,
        }
    }

    fn bind(source: &std::path::Path, target: &std::path::Path) -> Step {
        Step::BindMount {
            source: source.to_path_buf(),
            target: target.to_path_buf(),
            read_only: true,
            nosuid_nodev: true,
        }
    }

    /// A tmpfs then a bind over it shows the bound tree; the other way round the tmpfs hides
    /// it. So what a directory shows after `apply` tells which step ran last.
    #[test]
    fn steps_run_in_plan_order_and_stop_at_the_first_failure() {
        if !root_or_skip("steps_run_in_plan_order_and_stop_at_the_first_failure") {
            return;
        }
        let tmp = TempDir::new("plan-order");
        let (source, first, second, untouched) = (
            tmp.dir("source"),
            tmp.dir("first"),
            tmp.dir("second"),
            tmp.dir("untouched"),
        );
        std::fs::write(source.join("marker"), "").unwrap();
        std::fs::write(untouched.join("marker"), "").unwrap();
        let missing = tmp.path().join("missing");
        in_forked_child(|| {
            private_mount_namespace()?;
            apply(&[tmpfs(&first), bind(&source, &first)]).map_err(|e| e.to_string())?;
            expect_eq("bind last shows", first.join("marker").exists(), true)?;
            apply(&[bind(&source, &second), tmpfs(&second)]).map_err(|e| e.to_string())?;
            expect_eq("tmpfs last shows", second.join("marker").exists(), false)?;

            let failed = apply(&[tmpfs(&missing), tmpfs(&untouched)]).unwrap_err();
            expect_eq("the failed step", &failed.step, &tmpfs(&missing))?;
            expect_eq(
                "the failed call",
                failed.source.call,
                "openat2(RESOLVE_NO_SYMLINKS)",
            )?;
            expect_eq(
                "the step after it ran",
                untouched.join("marker").exists(),
                true,
            )
        });
    }
}
