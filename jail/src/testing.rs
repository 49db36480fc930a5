//! Helpers for unit tests on the real kernel.

pub use crate::sys::in_forked_child;

/// Whether this test may run: it needs root (in the initial user namespace, which the test
/// harness runs in). When not, say why it is skipped.
pub fn root_or_skip(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipping {test}: it needs root (namespaces, mounts, credentials)");
    }
    root
}

/// Enter a mount namespace of our own whose mounts are all private: nothing mounted from
/// here on reaches the host, and it all goes when the (forked) test process exits.
pub fn private_mount_namespace() -> Result<(), String> {
    use nix::mount::{mount, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    let flags = MsFlags::MS_PRIVATE | MsFlags::MS_REC;
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .map_err(|e| format!("mount(MS_PRIVATE|MS_REC) on /: {e}"))
}

/// A directory of a test's own under the temporary directory, removed when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(test: &str) -> Self {
        let path = std::env::temp_dir().join(format!("jail-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create the test's directory");
        TempDir(path)
    }

    /// A directory inside, created (with its parents).
    pub fn dir(&self, name: &str) -> std::path::PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(&path).expect("create a directory");
        path
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `Ok` when `got` is `want`, else an error naming `what`.
pub fn expect_eq<T: PartialEq + std::fmt::Debug>(
    what: &str,
    got: T,
    want: T,
) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

mod tests {
    use super::*;

    /// The helper itself can fail: a body's error, or its panic, fails the test.
    #[test]
    #[should_panic(expected = "the forked test body failed: it went wrong")]
    fn a_body_that_fails_fails_the_test() {
        in_forked_child(|| Err("it went wrong".to_string()));
    }

    /// What the body changes stays in the child.
    #[test]
    fn the_body_runs_in_another_process() {
        let here = std::process::id();
        in_forked_child(move || {
            let there = std::process::id();
            (there != here)
                .then_some(())
                .ok_or(format!("ran in {there}, the test's own"))
        });
    }
}
