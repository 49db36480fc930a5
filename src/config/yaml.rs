//! The `.yml` / `.yaml` reader: a top-level mapping whose `uwsgi` (or chosen) key holds the
//! options.
//!
//! We use yaml-rust2's event parser rather than serde_yaml (deprecated, and its values carry no
//! positions): events come with line numbers, so every entry knows its line.
//! Values: scalars as written, `true` -> "1", `false`/`null`/`~` -> "0", an empty value stays
//! empty (so `master:` is an enabled flag, as in uWSGI's own YAML reader), lists -> one entry
//! per item. Only the first document is read; anchors/aliases and nested mappings are refused.

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::limits::{MAX_DEPTH, MAX_OPTIONS};
use super::source::{RawEntry, ReadResult, SyntaxError};

pub(crate) fn read(text: &str, section: &str) -> ReadResult {
    let mut events = Events {
        parser: Parser::new_from_str(text),
    };
    events.expect_stream_start()?;
    let (event, mark) = events.next()?;
    match event {
        Event::DocumentStart => {}
        Event::StreamEnd => return Ok(None),
        _ => return Err(unexpected(mark, "a YAML document")),
    }
    let (event, mark) = events.next()?;
    match event {
        Event::MappingStart(..) => events.find_section(section),
        Event::Scalar(text, ..) if text.is_empty() => Ok(None),
        _ => Err(unexpected(mark, "a mapping at the top level")),
    }
}

struct Events<'a> {
    parser: Parser<std::str::Chars<'a>>,
}

impl Events<'_> {
    fn next(&mut self) -> Result<(Event, Marker), SyntaxError> {
        self.parser.next_token().map_err(|error| {
            let mark = error.marker();
            SyntaxError::at(mark.line(), Some(mark.col() + 1), error.info())
        })
    }

    fn expect_stream_start(&mut self) -> Result<(), SyntaxError> {
        match self.next()? {
            (Event::StreamStart, _) => Ok(()),
            (_, mark) => Err(unexpected(mark, "the start of the stream")),
        }
    }

    /// Walks the top-level mapping (its start already read) and reads the section's body.
    fn find_section(&mut self, section: &str) -> ReadResult {
        let mut found = None;
        loop {
            let (event, mark) = self.next()?;
            match event {
                Event::MappingEnd => return Ok(found),
                Event::Scalar(key, ..) if key == section && found.is_none() => {
                    found = Some(self.section_body()?);
                }
                Event::Alias(_) => return Err(unexpected(mark, "no aliases")),
                key_node => {
                    self.skip_node(key_node)?;
                    let (value, _) = self.next()?;
                    self.skip_node(value)?;
                }
            }
        }
    }

    /// The section's value: a mapping of options (or nothing, for an empty section).
    fn section_body(&mut self) -> Result<Vec<RawEntry>, SyntaxError> {
        let (event, mark) = self.next()?;
        match event {
            Event::MappingStart(..) => self.options(),
            Event::Scalar(text, TScalarStyle::Plain, ..) if text.is_empty() || text == "~" => {
                Ok(Vec::new())
            }
            _ => Err(unexpected(mark, "a mapping of options")),
        }
    }

    fn options(&mut self) -> Result<Vec<RawEntry>, SyntaxError> {
        let mut entries = Vec::new();
        loop {
            let (event, mark) = self.next()?;
            let key = match event {
                Event::MappingEnd => return Ok(entries),
                Event::Scalar(key, ..) => key,
                _ => return Err(unexpected(mark, "an option name")),
            };
            for value in self.option_values(&key)? {
                if entries.len() == MAX_OPTIONS {
                    return Err(SyntaxError::too_many(mark.line()));
                }
                entries.push(RawEntry::new(key.clone(), value, Some(mark.line())));
            }
        }
    }

    /// The texts of one option: a scalar, or each item of a list of scalars.
    fn option_values(&mut self, key: &str) -> Result<Vec<String>, SyntaxError> {
        let (event, mark) = self.next()?;
        match event {
            Event::Scalar(text, style, ..) => Ok(vec![scalar_text(text, style)]),
            Event::SequenceStart(..) => self.list_items(key),
            _ => Err(not_a_scalar(mark, key)),
        }
    }

    fn list_items(&mut self, key: &str) -> Result<Vec<String>, SyntaxError> {
        let mut items = Vec::new();
        loop {
            match self.next()? {
                (Event::SequenceEnd, _) => return Ok(items),
                (Event::Scalar(..), mark) if items.len() == MAX_OPTIONS => {
                    return Err(SyntaxError::too_many(mark.line()))
                }
                (Event::Scalar(text, style, ..), _) => items.push(scalar_text(text, style)),
                (_, mark) => return Err(not_a_scalar(mark, key)),
            }
        }
    }

    /// Consumes the rest of a node whose first event is `first` (for sections we do not read),
    /// a node of the top-level mapping: nested deeper than [`MAX_DEPTH`] with it is refused.
    fn skip_node(&mut self, first: Event) -> Result<(), SyntaxError> {
        let mut depth = match first {
            Event::MappingStart(..) | Event::SequenceStart(..) => 2usize,
            _ => return Ok(()),
        };
        while depth > 1 {
            match self.next()? {
                (Event::MappingStart(..) | Event::SequenceStart(..), mark) => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(SyntaxError::too_deep(mark.line()));
                    }
                }
                (Event::MappingEnd | Event::SequenceEnd, _) => depth -= 1,
                _ => {}
            }
        }
        Ok(())
    }
}

/// Plain `true`/`false`/`null` become uWSGI's "1"/"0"; quoted scalars stay as written.
fn scalar_text(text: String, style: TScalarStyle) -> String {
    if style != TScalarStyle::Plain {
        return text;
    }
    match text.as_str() {
        "true" | "True" | "TRUE" => "1".into(),
        "false" | "False" | "FALSE" | "null" | "Null" | "NULL" | "~" => "0".into(),
        _ => text,
    }
}

fn unexpected(mark: Marker, expected: &str) -> SyntaxError {
    SyntaxError::at(
        mark.line(),
        Some(mark.col() + 1),
        format!("expected {expected}"),
    )
}

fn not_a_scalar(mark: Marker, key: &str) -> SyntaxError {
    SyntaxError::at(
        mark.line(),
        Some(mark.col() + 1),
        format!("option \"{key}\": expected a value or a list of values (nested mappings and aliases are not supported)"),
    )
}

#[cfg(test)]
mod tests {
    use super::super::limits::Overrun;
    use super::super::source::test_support::{entries_of, entry};
    use super::*;

    fn read_ok(text: &str, section: &str) -> Vec<(String, String, Option<usize>)> {
        entries_of(read(text, section))
    }

    #[test]
    fn scalars_booleans_lists_and_lines() {
        let text = "other:\n  socket: nope\n  deep: {a: [1, 2]}\nuwsgi:\n  socket: /tmp/a.sock\n  processes: 04\n  master: true\n  vacuum: false\n  lazy: ~\n  quoted: \"true\"\n  flag:\n  env:\n    - A=1\n    - B=2\n";
        assert_eq!(
            read_ok(text, "uwsgi"),
            [
                entry("socket", "/tmp/a.sock", 5),
                entry("processes", "04", 6),
                entry("master", "1", 7),
                entry("vacuum", "0", 8),
                entry("lazy", "0", 9),
                entry("quoted", "true", 10),
                entry("flag", "", 11),
                entry("env", "A=1", 12),
                entry("env", "B=2", 12),
            ]
        );
    }

    #[test]
    fn other_section_and_missing_section() {
        let text = "uwsgi:\n  a: 1\nprod:\n  b: 2\n";
        assert_eq!(read_ok(text, "prod"), [entry("b", "2", 4)]);
        assert_eq!(read(text, "staging").unwrap(), None);
        assert_eq!(read("", "uwsgi").unwrap(), None);
    }

    #[test]
    fn errors_have_lines() {
        let err = read("uwsgi:\n  a: [1\n", "uwsgi").unwrap_err();
        assert!(err.line.is_some(), "{err:?}");
        let err = read("uwsgi:\n  a:\n    b: 1\n", "uwsgi").unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("option \"a\""), "{}", err.message);
        let err = read("- 1\n- 2\n", "uwsgi").unwrap_err();
        assert!(err.message.contains("mapping"), "{}", err.message);
    }

    /// A top-level mapping whose `other` key holds flow sequences, nested `depth` levels in all.
    fn nested(depth: usize) -> String {
        let inner = depth - 1;
        format!(
            "uwsgi:\n  a: 1\nother: {}{}\n",
            "[".repeat(inner),
            "]".repeat(inner)
        )
    }

    #[test]
    fn nesting_up_to_the_limit_is_read_and_deeper_is_refused() {
        assert_eq!(read_ok(&nested(MAX_DEPTH), "uwsgi"), [entry("a", "1", 2)]);
        let err = read(&nested(MAX_DEPTH + 1), "uwsgi").unwrap_err();
        assert!(
            err.over == Some(Overrun::Depth) && err.line == Some(3),
            "{err:?}"
        );
    }

    #[test]
    fn values_up_to_the_limit_are_read_and_more_are_refused() {
        let values = |n: usize| format!("uwsgi:\n  a: [{}1]\n", "1, ".repeat(n - 1));
        assert_eq!(read_ok(&values(MAX_OPTIONS), "uwsgi").len(), MAX_OPTIONS);
        let err = read(&values(MAX_OPTIONS + 1), "uwsgi").unwrap_err();
        assert_eq!((err.over, err.line), (Some(Overrun::Options), Some(2)));
    }
}
