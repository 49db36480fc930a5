//! Docs in the terminal: shell completion scripts and man pages, made from the command line's
//! own definition so they never drift from it.

use std::path::{Path, PathBuf};

/// Print the completion script for `shell` on stdout.
pub fn print_completions(shell: clap_complete::Shell) {
    let mut command = crate::cli::command();
    clap_complete::generate(shell, &mut command, "emperor", &mut std::io::stdout());
}

/// Write `emperor.1` and `emperor-SUB.1` for each visible subcommand into `dir`; the files
/// written.
pub fn write_manpages(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let command = crate::cli::command();
    let mut written = vec![write_page(dir, "emperor", command.clone())?];
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("emperor-{}", sub.get_name());
        let page = sub.clone().name(name.clone());
        written.push(write_page(dir, &name, page)?);
    }
    Ok(written)
}

fn write_page(dir: &Path, name: &str, command: clap::Command) -> std::io::Result<PathBuf> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page)?;
    Ok(path)
}
