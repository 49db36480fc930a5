//! `fallback-config`: where a failing config's fallback is, and uWSGI's way of running it (the
//! runtime execs itself on it, same pid). A payload that fails to start once the jail is set up
//! asks the emperor for a fresh runtime instead (protocol byte 40).

use super::error::RuntimeError;
use super::VassalArgs;
use crate::config::Config;
use crate::policy::uwsgi;
use crate::protocol::EXIT_CONFIG_ERROR;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use tracing::warn;

/// The config's `fallback-config`, resolved against the config's directory. When the config
/// does not even load, its raw text is scanned for an INI-style `fallback-config = FILE`
/// line, so a fallback placed early still works when a later line is broken.
pub fn fallback_of(path: &Path, config: Option<&Config>) -> Option<PathBuf> {
    let value = match config {
        Some(config) => config.get("fallback-config").map(|e| e.value.clone()),
        None => std::fs::read_to_string(path).ok().and_then(|text| {
            text.lines().find_map(|line| {
                let (key, value) = line.trim().split_once('=')?;
                (key.trim().replace('_', "-") == "fallback-config")
                    .then(|| value.trim().to_string())
            })
        }),
    }?;
    if value.is_empty() {
        return None;
    }
    let file = PathBuf::from(value);
    Some(match path.parent() {
        Some(dir) if file.is_relative() => dir.join(file),
        _ => file,
    })
}

/// uWSGI's fallback: exec this runtime again (same pid, protocol and cgroup fds kept) on the
/// fallback config, remembering the configs tried so far. Returns only on failure (a loop,
/// or the exec failing), with the error to exit with.
pub fn fall_back(args: &VassalArgs, file: &Path, keep: &[BorrowedFd<'_>]) -> RuntimeError {
    let mut chain: Vec<PathBuf> = args.fallback_tried.clone();
    chain.push(args.config.clone());
    if chain.iter().any(|tried| tried == file) {
        chain.push(file.to_path_buf());
        return RuntimeError::FallbackLoop { chain };
    }
    warn!(
        "exited with status {EXIT_CONFIG_ERROR}: fallback config to {}",
        file.display()
    );
    for fd in keep {
        if let Err(source) = jail::fd::keep_across_exec(*fd) {
            return RuntimeError::FallbackFd {
                file: file.to_path_buf(),
                source,
            };
        }
    }
    // What we were asked, with the failed config added to the configs tried and the fallback
    // in its place, one fallback level fewer to go down at once. A fallback is a file: the
    // memfd of a config from a monitor is not passed on.
    let mut next = args.clone();
    next.fallback_tried.push(args.config.clone());
    next.config = file.to_path_buf();
    next.config_fd = None;
    next.resume_fd = None;
    // The keeper's image is not kept: the fallback's runtime seals its own if it needs one.
    next.keeper_fd = None;
    next.fall_back = args.fall_back.saturating_sub(1);
    let program = super::program().to_string_lossy().into_owned();
    let argv: Vec<String> = std::iter::once(program).chain(next.to_argv()).collect();
    let env: Vec<(String, String)> = std::env::vars().collect();
    RuntimeError::FallbackExec {
        file: file.to_path_buf(),
        source: jail::launch::reexec_self(&argv, &env),
    }
}

/// uWSGI's need-app: its app did not load (status 22; 1 for a config it could not use, as
/// uWSGI 1.9 did for both); a binary patch says so with 1.
pub fn is_start_failure(uwsgi: bool, code: i32) -> bool {
    code == EXIT_CONFIG_ERROR || (uwsgi && code == uwsgi::EXIT_FAILED_APP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fallback_already_tried_is_a_loop_naming_the_whole_chain() {
        let args = VassalArgs {
            config: "/v/b.ini".into(),
            config_fd: None,
            load: Default::default(),
            jail: Default::default(),
            fallback_tried: vec!["/v/a.ini".into()],
            fall_back: 0,
            uwsgi_binary: None,
            name: None,
            tenant: None,
            hibernate_after: None,
            resume_fd: None,
            keeper_fd: None,
        };
        let error = fall_back(&args, Path::new("/v/a.ini"), &[]);
        assert!(!error.may_fall_back());
        assert_eq!(
            error.to_string(),
            "fallback loop: /v/a.ini -> /v/b.ini -> /v/a.ini"
        );
    }

    #[test]
    fn a_broken_config_still_names_its_fallback_from_its_raw_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.ini");
        std::fs::write(&path, "[uwsgi]\nfallback_config = safe.ini\ninclude = @(\n").unwrap();
        assert_eq!(fallback_of(&path, None), Some(dir.path().join("safe.ini")));
        std::fs::write(&path, "[uwsgi]\nfallback-config =\n").unwrap();
        assert_eq!(fallback_of(&path, None), None);
    }

    #[test]
    fn a_payload_start_failure_is_status_1_or_uwsgis_need_app() {
        assert!(is_start_failure(false, 1));
        assert!(!is_start_failure(false, 22));
        assert!(is_start_failure(true, 22));
        assert!(!is_start_failure(true, 0));
    }
}
