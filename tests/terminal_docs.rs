//! Docs in the terminal: `--version` names the commit, the completion scripts complete, the man
//! pages are written.

mod common;

use common::BIN;
use std::process::Command;

fn run(args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).output().unwrap();
    assert!(output.status.success(), "emperor {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn version_names_the_package_version_and_the_commit() {
    let version = run(&["--version"]);
    let expected = format!("emperor {} (", env!("CARGO_PKG_VERSION"));
    let revision = version
        .trim_end()
        .strip_prefix(&expected)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{version}"));
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    if git(&["rev-parse", "HEAD"]).is_none() {
        assert_eq!(revision, "unknown", "built outside a git checkout");
        return;
    }
    // Built from this checkout: a commit of it (HEAD when the build was made), "-dirty"
    // when the tree had changes then.
    let commit = revision.strip_suffix("-dirty").unwrap_or(revision);
    assert_eq!(commit.len(), 12, "{version}");
    assert!(
        git(&["rev-parse", "--verify", &format!("{commit}^{{commit}}")]).is_some(),
        "{commit} is not a commit of this repository"
    );
}

#[test]
fn the_bash_completion_completes_an_option() {
    let script = run(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("emperor.bash");
    std::fs::write(&file, script).unwrap();
    let completed = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(emperor --emperor-ty); COMP_CWORD=1; \
             _emperor emperor --emperor-ty emperor; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display()
        ))
        .output()
        .unwrap();
    let words = String::from_utf8_lossy(&completed.stdout);
    assert!(
        words.lines().any(|w| w == "--emperor-tyrant"),
        "completions of --emperor-ty: {words:?} {completed:?}"
    );
    for shell in ["zsh", "fish"] {
        assert!(
            run(&["completions", shell]).contains("emperor-tyrant"),
            "{shell}"
        );
    }
}

#[test]
fn man_pages_are_written_for_the_emperor_and_each_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let listed = run(&["manpages", dir.path().to_str().unwrap()]);
    for name in [
        "emperor",
        "emperor-check",
        "emperor-stats",
        "emperor-top",
        "emperor-reload",
    ] {
        let path = dir.path().join(format!("{name}.1"));
        assert!(listed.contains(&path.display().to_string()), "{listed}");
        let page = std::fs::read_to_string(&path).unwrap();
        assert!(page.contains(&format!(".TH {name} 1")), "{name}: {page}");
    }
    let main = std::fs::read_to_string(dir.path().join("emperor.1")).unwrap();
    assert!(main.contains("\\-\\-emperor\\-tyrant"), "{main}");
    assert!(
        !dir.path().join("emperor-config-reader.1").exists(),
        "no page for the emperor's own helpers"
    );
}
