//! The `.ini` reader.
//!
//! We read lines ourselves instead of using the rust-ini crate: rust-ini keeps duplicate keys in
//! order but not their line numbers, and its syntax differs from uWSGI's in ways that change
//! meaning: it splits `key: value` at the colon, joins lines ending in `\`, cannot read a bare
//! `key` line (it glues it to the next line), and reads an indented `; comment` as a key.
//! uWSGI's ini is simple enough that a line loop is shorter than working around all that.
//!
//! Rules (uWSGI's): lines are trimmed; `;` or `#` at the start of a line is a comment (no inline
//! comments, quotes are kept literally); `[name]` starts a section; `key = value` splits at the
//! first `=`; a bare `key` has an empty value; every occurrence of a key is kept, in order.

use super::limits::MAX_OPTIONS;
use super::source::{RawEntry, ReadResult, SyntaxError};

pub(crate) fn read(text: &str, section: &str) -> ReadResult {
    let mut entries = Vec::new();
    let mut section_seen = false;
    let mut in_section = false;
    for (index, raw_line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw_line.trim_matches([' ', '\t', '\r']);
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let name = section_header(header, line_no)?;
            in_section = name == section;
            section_seen |= in_section;
            continue;
        }
        if in_section {
            if entries.len() == MAX_OPTIONS {
                return Err(SyntaxError::too_many(line_no));
            }
            entries.push(key_value(line, line_no)?);
        }
    }
    Ok(section_seen.then_some(entries))
}

/// The name in `[name]` (the leading `[` already removed).
fn section_header(header: &str, line_no: usize) -> Result<&str, SyntaxError> {
    match header.split_once(']') {
        Some((name, _)) => Ok(name.trim()),
        None => Err(SyntaxError::at(
            line_no,
            None,
            "section header without closing ']'",
        )),
    }
}

fn key_value(line: &str, line_no: usize) -> Result<RawEntry, SyntaxError> {
    let (key, value) = line.split_once('=').unwrap_or((line, ""));
    let key = key.trim_end_matches([' ', '\t']);
    if key.is_empty() {
        return Err(SyntaxError::at(
            line_no,
            None,
            "missing option name before '='",
        ));
    }
    let value = value.trim_start_matches([' ', '\t']);
    Ok(RawEntry::new(key, value, Some(line_no)))
}

#[cfg(test)]
mod tests {
    use super::super::limits::Overrun;
    use super::super::source::test_support::entries_of;
    use super::*;

    fn entries(text: &str, section: &str) -> Vec<(String, String, usize)> {
        entries_of(read(text, section))
            .into_iter()
            .map(|(key, value, line)| (key, value, line.expect("an ini entry has a line")))
            .collect()
    }

    fn triple(key: &str, value: &str, line: usize) -> (String, String, usize) {
        (key.to_string(), value.to_string(), line)
    }

    #[test]
    fn reads_the_uwsgi_section_with_lines() {
        let text = "[other]\nx = 1\n[uwsgi]\n  socket = /tmp/a.sock  \nmaster\n";
        assert_eq!(
            entries(text, "uwsgi"),
            vec![triple("socket", "/tmp/a.sock", 4), triple("master", "", 5)]
        );
    }

    #[test]
    fn repeated_keys_stay_in_order() {
        let text = "[uwsgi]\nenv = A=1\nsocket = x\nenv = B=2\n";
        let got = entries(text, "uwsgi");
        assert_eq!(got[0], triple("env", "A=1", 2));
        assert_eq!(got[2], triple("env", "B=2", 4));
    }

    #[test]
    fn comments_only_at_line_start_and_quotes_kept() {
        let text = "[uwsgi]\n; comment\n   # indented comment\nroute = ^/a # not a comment\nq = \"quoted\"\n";
        assert_eq!(
            entries(text, "uwsgi"),
            vec![
                triple("route", "^/a # not a comment", 4),
                triple("q", "\"quoted\"", 5)
            ]
        );
    }

    #[test]
    fn colons_and_backslashes_are_plain_characters() {
        let text = "[uwsgi]\nhttp: x = 127.0.0.1:80\\\nnext = 1\n";
        assert_eq!(
            entries(text, "uwsgi"),
            vec![
                triple("http: x", "127.0.0.1:80\\", 2),
                triple("next", "1", 3)
            ]
        );
    }

    #[test]
    fn picks_another_section_and_merges_repeated_headers() {
        let text = "[uwsgi]\na = 1\n[prod]\nb = 2\n[uwsgi]\nc = 3\n[prod]\nd = 4\n";
        let got: Vec<_> = entries(text, "prod").into_iter().map(|e| e.0).collect();
        assert_eq!(got, ["b", "d"]);
    }

    #[test]
    fn missing_section_is_none() {
        assert_eq!(read("[other]\na = 1\n", "uwsgi").unwrap(), None);
    }

    #[test]
    fn syntax_errors_have_lines() {
        let err = read("[uwsgi]\n= value\n", "uwsgi").unwrap_err();
        assert_eq!(err.line, Some(2));
        let err = read("[uwsgi\n", "uwsgi").unwrap_err();
        assert_eq!(err.line, Some(1));
    }

    #[test]
    fn options_up_to_the_limit_are_read_and_more_are_refused() {
        let options = |n: usize| format!("[uwsgi]\n{}", "a\n".repeat(n));
        assert_eq!(
            read(&options(MAX_OPTIONS), "uwsgi").unwrap().unwrap().len(),
            MAX_OPTIONS
        );
        let err = read(&options(MAX_OPTIONS + 1), "uwsgi").unwrap_err();
        assert_eq!(
            (err.over, err.line),
            (Some(Overrun::Options), Some(MAX_OPTIONS + 2))
        );
    }
}
