//! The one error type of the config language. Every message starts with where the problem is:
//! `file:line:` (or `file:line:column:` for syntax errors) and names the option when there is one.

use std::path::{Path, PathBuf};

use super::limits::Overrun;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file (or an `@(file)`) could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{}: unknown config format (expected .ini, .json, .js, .yml, .yaml or .xml)", .path.display())]
    UnknownFormat { path: PathBuf },

    #[error("{}: section \"{section}\" not found", .path.display())]
    MissingSection { path: PathBuf, section: String },

    /// The text is not valid ini/JSON/YAML/XML, or not shaped like a uWSGI config.
    #[error("{}: invalid {format}: {message}", place(.path, .line, .column))]
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        format: &'static str,
        message: String,
    },

    /// Something is wrong with one option: an undefined placeholder, a bad value, a failed include.
    #[error("{}: option \"{key}\": {message}", place(.path, .line, &None))]
    BadOption {
        path: PathBuf,
        line: Option<usize>,
        key: String,
        message: String,
    },

    /// The config went over one of the limits of `limits` (depth, expansion, includes).
    #[error("{}: {}{limit}", place(.path, .line, &None), option_prefix(.key))]
    Limit {
        path: PathBuf,
        line: Option<usize>,
        key: Option<String>,
        limit: Overrun,
    },

    /// A file includes itself, directly or through others; the chain ends with the repeated file.
    #[error("include loop: {}", chain_text(.chain))]
    IncludeLoop { chain: Vec<String> },
}

/// `file`, `file:line` or `file:line:column`.
fn place(path: &Path, line: &Option<usize>, column: &Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!("{}:{line}:{column}", path.display()),
        (Some(line), None) => format!("{}:{line}", path.display()),
        _ => path.display().to_string(),
    }
}

/// `option "key": `, or nothing when the limit is not one option's.
fn option_prefix(key: &Option<String>) -> String {
    key.as_ref()
        .map(|key| format!("option \"{key}\": "))
        .unwrap_or_default()
}

fn chain_text(chain: &[String]) -> String {
    chain.join(" -> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_file_line_and_option() {
        let err = ConfigError::BadOption {
            path: "app.ini".into(),
            line: Some(4),
            key: "socket".into(),
            message: "placeholder %(nope) is not defined".into(),
        };
        assert_eq!(
            err.to_string(),
            "app.ini:4: option \"socket\": placeholder %(nope) is not defined"
        );
        let err = ConfigError::Syntax {
            path: "app.json".into(),
            line: Some(3),
            column: Some(7),
            format: "JSON",
            message: "expected `,`".into(),
        };
        assert_eq!(err.to_string(), "app.json:3:7: invalid JSON: expected `,`");
    }

    #[test]
    fn limit_messages_name_file_line_option_and_limit() {
        let err = ConfigError::Limit {
            path: "app.ini".into(),
            line: Some(12),
            key: Some("x".into()),
            limit: Overrun::Value,
        };
        assert_eq!(
            err.to_string(),
            "app.ini:12: option \"x\": expands to more than 65536 bytes (limit of one value)"
        );
        let err = ConfigError::Limit {
            path: "app.xml".into(),
            line: Some(3),
            key: None,
            limit: Overrun::Depth,
        };
        assert_eq!(err.to_string(), "app.xml:3: nesting deeper than 64 levels");
    }

    #[test]
    fn include_loop_shows_the_chain() {
        let err = ConfigError::IncludeLoop {
            chain: vec!["a.ini".into(), "b.ini".into(), "a.ini".into()],
        };
        assert_eq!(err.to_string(), "include loop: a.ini -> b.ini -> a.ini");
    }
}
