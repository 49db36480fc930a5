//! The expansion passes that follow the magic variables, in uWSGI's order:
//! `$(VAR)` environment, then `@(file)` contents, then `%(name)` placeholders.
//! Each pass scans the text once and does not rescan what it inserted; errors are plain messages
//! that the loader prefixes with file, line and option.

use std::convert::Infallible;
use std::path::Path;

use super::math;

/// `$(VAR)`: the variable's value, empty when unset; `$(VAR:-default)` when unset or empty.
pub(crate) fn environment(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    replace_calls(text, "$(", |inner| {
        Ok::<_, Infallible>(env_value(inner, &lookup))
    })
    .unwrap_or_else(|never| match never {})
}

fn env_value(inner: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    match inner.split_once(":-") {
        Some((name, default)) => lookup(name)
            .filter(|value| !value.is_empty())
            .unwrap_or_else(|| default.to_string()),
        None => lookup(inner).unwrap_or_default(),
    }
}

/// `@(file)`: the file's content without one trailing newline; relative to `dir`.
pub(crate) fn file_contents(text: &str, dir: &Path) -> Result<String, String> {
    replace_calls(text, "@(", |name| {
        let path = dir.join(name);
        let content = super::file::read_text(&path)
            .map_err(|error| format!("cannot read @({name}) at {}: {error}", path.display()))?;
        let content = content.strip_suffix('\n').unwrap_or(&content);
        Ok(content.to_string())
    })
}

/// `%(name)`: an earlier option's value; `%(a + 1)` is integer arithmetic (see `math`).
pub(crate) fn placeholders(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    replace_calls(text, "%(", |inner| {
        let inner = inner.trim();
        if inner.contains(char::is_whitespace) {
            return math::evaluate(inner, &lookup);
        }
        lookup(inner).ok_or_else(|| format!("placeholder %({inner}) is not defined"))
    })
}

/// Replaces every `<opener>inner)` with `replace(inner)`. An opener without a closing `)`
/// is kept as written.
fn replace_calls<E>(
    text: &str,
    opener: &str,
    mut replace: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(opener) {
        let after_opener = &rest[start + opener.len()..];
        let Some(close) = after_opener.find(')') else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push_str(&replace(&after_opener[..close])?);
        rest = &after_opener[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
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
        assert_eq!(environment("[$(PATH)]", process), format!("[{path}]"));
        assert_eq!(
            environment(
                "$(EMPEROR_SURELY_UNSET_VAR:-x)/$(EMPEROR_SURELY_UNSET_VAR)",
                process
            ),
            "x/"
        );
        assert_eq!(environment("cost $(5", process), "cost $(5");
    }

    #[test]
    fn environment_pass_can_be_given_another_environment() {
        let given = |name: &str| (name == "ONLY").then(|| "this".to_string());
        assert_eq!(environment("$(ONLY)/[$(PATH)]", given), "this/[]");
    }

    #[test]
    fn file_contents_strip_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "s3cr3t\n\n").unwrap();
        assert_eq!(
            file_contents("key=@(secret)", dir.path()).unwrap(),
            "key=s3cr3t\n"
        );
        let err = file_contents("@(missing)", dir.path()).unwrap_err();
        assert!(err.contains("cannot read @(missing)"), "{err}");
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
            "placeholder %(nope) is not defined"
        );
    }
}
