//! The expansion passes that follow the magic variables, in uWSGI's order:
//! `$(VAR)` environment, then `@(file)` contents, then `%(name)` placeholders.
//! Each pass scans the text once and does not rescan what it inserted; errors are plain messages
//! that the loader prefixes with file, line and option.

use std::path::Path;

use super::limits::{Budget, Overrun, MAX_VALUE_BYTES};
use super::math;

/// Why a pass could not expand a value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ExpandError {
    /// What went wrong, for the loader to prefix with file, line and option.
    Failed(String),
    /// The value (or the files it reads) would go over a limit; nothing larger was built.
    Over(Overrun),
}

impl From<Overrun> for ExpandError {
    fn from(overrun: Overrun) -> Self {
        ExpandError::Over(overrun)
    }
}

/// `$(VAR)`: the variable's value, empty when unset; `$(VAR:-default)` when unset or empty.
pub(crate) fn environment(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    replace_calls(text, "$(", |inner| Ok(env_value(inner, &lookup)))
}

fn env_value(inner: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    match inner.split_once(":-") {
        Some((name, default)) => lookup(name)
            .filter(|value| !value.is_empty())
            .unwrap_or_else(|| default.to_string()),
        None => lookup(inner).unwrap_or_default(),
    }
}

/// `@(file)`: the file's content without one trailing newline; relative to `dir`. Each read
/// counts against the config's `budget` of included files.
pub(crate) fn file_contents(
    text: &str,
    dir: &Path,
    budget: &mut Budget,
) -> Result<String, ExpandError> {
    replace_calls(text, "@(", |name| {
        budget.open_file()?;
        let path = dir.join(name);
        let mut content = super::file::read_text(&path).map_err(|error| {
            ExpandError::Failed(format!(
                "cannot read @({name}) at {}: {error}",
                path.display()
            ))
        })?;
        budget.read(content.len())?;
        if content.ends_with('\n') {
            content.pop();
        }
        Ok(content)
    })
}

/// `%(name)`: an earlier option's value; `%(a + 1)` is integer arithmetic (see `math`).
pub(crate) fn placeholders(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    replace_calls(text, "%(", |inner| {
        let inner = inner.trim();
        if inner.contains(char::is_whitespace) {
            return math::evaluate(inner, &lookup).map_err(ExpandError::Failed);
        }
        lookup(inner)
            .ok_or_else(|| ExpandError::Failed(format!("placeholder %({inner}) is not defined")))
    })
}

/// Replaces every `<opener>inner)` with `replace(inner)`. An opener without a closing `)`
/// is kept as written. The result is built piece by piece and refused before it would grow
/// past [`MAX_VALUE_BYTES`], so a value that doubles at every level costs no more than that.
fn replace_calls(
    text: &str,
    opener: &str,
    mut replace: impl FnMut(&str) -> Result<String, ExpandError>,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len().min(MAX_VALUE_BYTES));
    let mut rest = text;
    while let Some(start) = rest.find(opener) {
        let after_opener = &rest[start + opener.len()..];
        let Some(close) = after_opener.find(')') else {
            break;
        };
        push_bounded(&mut out, &rest[..start])?;
        push_bounded(&mut out, &replace(&after_opener[..close])?)?;
        rest = &after_opener[close + 1..];
    }
    push_bounded(&mut out, rest)?;
    Ok(out)
}

/// Appends `piece` unless the value would then be longer than [`MAX_VALUE_BYTES`].
pub(crate) fn push_bounded(out: &mut String, piece: &str) -> Result<(), Overrun> {
    if out.len() + piece.len() > MAX_VALUE_BYTES {
        return Err(Overrun::Value);
    }
    out.push_str(piece);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::limits::MAX_INCLUDED_FILES;
    use super::*;

    #[test]
    fn environment_values_and_defaults() {
        let lookup = |name: &str| match name {
            "SET" => Some("v".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(env_value("SET", lookup), "v");
        assert_eq!(env_value("UNSET", lookup), "");
        assert_eq!(env_value("UNSET:-d", lookup), "d");
        assert_eq!(env_value("EMPTY:-d", lookup), "d");
        assert_eq!(env_value("SET:-d", lookup), "v");
    }

    #[test]
    fn environment_pass_reads_the_process_environment() {
        // PATH is set in any test run; an unterminated call is kept.
        let path = std::env::var("PATH").unwrap();
        let process = |name: &str| std::env::var(name).ok();
        let expand = |text| environment(text, process).unwrap();
        assert_eq!(expand("[$(PATH)]"), format!("[{path}]"));
        assert_eq!(
            expand("$(EMPEROR_SURELY_UNSET_VAR:-x)/$(EMPEROR_SURELY_UNSET_VAR)"),
            "x/"
        );
        assert_eq!(expand("cost $(5"), "cost $(5");
    }

    #[test]
    fn environment_pass_can_be_given_another_environment() {
        let given = |name: &str| (name == "ONLY").then(|| "this".to_string());
        assert_eq!(environment("$(ONLY)/[$(PATH)]", given).unwrap(), "this/[]");
    }

    #[test]
    fn file_contents_strip_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "s3cr3t\n\n").unwrap();
        let mut budget = Budget::default();
        assert_eq!(
            file_contents("key=@(secret)", dir.path(), &mut budget).unwrap(),
            "key=s3cr3t\n"
        );
        let err = file_contents("@(missing)", dir.path(), &mut budget).unwrap_err();
        assert!(
            matches!(&err, ExpandError::Failed(m) if m.contains("cannot read @(missing)")),
            "{err:?}"
        );
    }

    #[test]
    fn placeholders_are_looked_up_or_refused() {
        let lookup = |name: &str| (name == "app").then(|| "blog".to_string());
        assert_eq!(
            placeholders("/tmp/%(app).sock", lookup).unwrap(),
            "/tmp/blog.sock"
        );
        assert_eq!(placeholders("%( app )", lookup).unwrap(), "blog");
        assert_eq!(
            placeholders("%(nope)", lookup).unwrap_err(),
            ExpandError::Failed("placeholder %(nope) is not defined".into())
        );
    }

    #[test]
    fn a_value_is_built_up_to_the_limit_and_refused_beyond() {
        let half = "x".repeat(MAX_VALUE_BYTES / 2);
        let lookup = |name: &str| (name == "half").then(|| half.clone());
        let full = placeholders("%(half)%(half)", lookup).unwrap();
        assert_eq!(full.len(), MAX_VALUE_BYTES);
        assert_eq!(
            placeholders("%(half)%(half)!", lookup),
            Err(ExpandError::Over(Overrun::Value))
        );
        let env = |_: &str| Some(half.clone());
        assert_eq!(environment("$(A)$(B)", env).unwrap().len(), MAX_VALUE_BYTES);
        assert_eq!(
            environment("$(A)$(B)$(C)", env),
            Err(ExpandError::Over(Overrun::Value))
        );
    }

    #[test]
    fn file_reads_count_against_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one"), "1").unwrap();
        let mut budget = Budget::default();
        let calls = "@(one)".repeat(MAX_INCLUDED_FILES);
        assert_eq!(
            file_contents(&calls, dir.path(), &mut budget)
                .unwrap()
                .len(),
            MAX_INCLUDED_FILES
        );
        assert_eq!(
            file_contents("@(one)", dir.path(), &mut budget),
            Err(ExpandError::Over(Overrun::Files))
        );
    }
}
