//! The `.json` / `.js` reader: a root object whose `uwsgi` (or chosen) key holds the options.
//!
//! Values: strings as is, numbers as written, `true` -> "1", `false`/`null` -> "0", arrays ->
//! one entry per item. We walk the objects with our own serde visitors so that key order and
//! repeated keys survive (serde_json's `Map` would sort them and keep only the last).
//! serde_json gives no positions for values, so entry lines are a best-effort text search.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use super::limits::{MAX_DEPTH, MAX_OPTIONS};
use super::source::{LineCounter, RawEntry, ReadResult, SyntaxError};

pub(crate) fn read(text: &str, section: &str) -> ReadResult {
    if let Some(over) = over_limits(text) {
        return Err(over);
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let pairs = RootSeed { section }
        .deserialize(&mut deserializer)
        .and_then(|pairs| deserializer.end().map(|()| pairs))
        .map_err(|error| {
            // serde_json appends the position to its message; we print it in front instead.
            let position = format!(" at line {} column {}", error.line(), error.column());
            let message = error.to_string();
            let message = message.strip_suffix(&position).unwrap_or(&message);
            SyntaxError::at(error.line(), Some(error.column()), message)
        })?;
    Ok(pairs.map(|pairs| with_lines(text, section, pairs)))
}

/// Where arrays and objects first nest deeper than [`MAX_DEPTH`], or the text first holds
/// more than [`MAX_OPTIONS`] values (counted as commas: every value but the last of each array
/// or object is followed by one), found before serde_json parses and allocates: its own depth
/// limit (128) is an implementation detail, and skipping a section recurses per level.
/// Brackets and commas inside strings do not count; malformed text is left to the parser.
fn over_limits(text: &str) -> Option<SyntaxError> {
    let (mut depth, mut line, mut commas) = (0usize, 1usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for byte in text.bytes() {
        if byte == b'\n' {
            line += 1;
        }
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(SyntaxError::too_deep(line));
                }
            }
            b',' => {
                commas += 1;
                if commas >= MAX_OPTIONS {
                    return Some(SyntaxError::too_many(line));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Finds the section in the root object, skipping every other key.
struct RootSeed<'a> {
    section: &'a str,
}

impl<'de> DeserializeSeed<'de> for RootSeed<'_> {
    type Value = Option<Vec<KeyValues>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RootSeed<'_> {
    type Value = Option<Vec<KeyValues>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a JSON object with a \"{}\" key", self.section)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.section && found.is_none() {
                found = Some(map.next_value_seed(SectionSeed)?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// One key of the section and its texts (several when the value is an array).
type KeyValues = (String, Vec<String>);

/// The section object: its keys in order, repeated keys kept.
struct SectionSeed;

impl<'de> DeserializeSeed<'de> for SectionSeed {
    type Value = Vec<KeyValues>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SectionSeed {
    type Value = Vec<KeyValues>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of options")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            let texts = option_values(&key, value).map_err(de::Error::custom)?;
            pairs.push((key, texts));
        }
        Ok(pairs)
    }
}

/// The texts one JSON value stands for (an array gives one per item).
fn option_values(key: &str, value: Value) -> Result<Vec<String>, String> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|item| scalar_text(key, item))
            .collect(),
        other => Ok(vec![scalar_text(key, other)?]),
    }
}

fn scalar_text(key: &str, value: Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(true) => Ok("1".into()),
        Value::Bool(false) | Value::Null => Ok("0".into()),
        Value::Array(_) | Value::Object(_) => Err(format!(
            "option \"{key}\": nested arrays and objects are not supported"
        )),
    }
}

/// Best effort: the line of each key, found by searching the text for `"key":` from where the
/// previous key was found (starting at the section key). Items of an array share their key's line.
fn with_lines(text: &str, section: &str, pairs: Vec<KeyValues>) -> Vec<RawEntry> {
    let mut cursor = Some(find_key(text, section, 0).map_or(0, |(_, end)| end));
    let mut entries = Vec::with_capacity(pairs.len());
    let mut lines = LineCounter::new(text);
    for (key, values) in pairs {
        // A key not found as written (escaped) ends the search: searching to the end for
        // every later key would make a file of many such keys quadratic.
        let found = cursor.and_then(|from| find_key(text, &key, from));
        cursor = found.map(|(_, end)| end);
        let line = found.map(|(start, _)| lines.of(start));
        entries.extend(
            values
                .into_iter()
                .map(|value| RawEntry::new(key.clone(), value, line)),
        );
    }
    entries
}

/// Byte range of the next `"key"` followed by `:` at or after `from`.
fn find_key(text: &str, key: &str, from: usize) -> Option<(usize, usize)> {
    let quoted = serde_json::to_string(key).ok()?;
    let mut at = from;
    while let Some(offset) = text.get(at..)?.find(&quoted) {
        let start = at + offset;
        let end = start + quoted.len();
        if text[end..].trim_start().starts_with(':') {
            return Some((start, end));
        }
        at = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::limits::Overrun;
    use super::super::source::test_support::entries_of;
    use super::*;

    fn read_ok(text: &str, section: &str) -> Vec<(String, String, Option<usize>)> {
        entries_of(read(text, section))
    }

    #[test]
    fn scalars_booleans_numbers_and_arrays() {
        let text = r#"{
  "other": {"socket": "no"},
  "uwsgi": {
    "socket": "/tmp/a.sock",
    "processes": 4,
    "master": true,
    "harakiri": 2.5,
    "vacuum": false,
    "lazy": null,
    "env": ["A=1", "B=2"]
  }
}"#;
        let got = read_ok(text, "uwsgi");
        let flat: Vec<(&str, &str)> = got
            .iter()
            .map(|(k, v, _)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            flat,
            [
                ("socket", "/tmp/a.sock"),
                ("processes", "4"),
                ("master", "1"),
                ("harakiri", "2.5"),
                ("vacuum", "0"),
                ("lazy", "0"),
                ("env", "A=1"),
                ("env", "B=2"),
            ]
        );
        assert_eq!(
            got[0].2,
            Some(4),
            "socket of the uwsgi section, not of \"other\""
        );
        assert_eq!(got[1].2, Some(5));
        assert_eq!(got[7].2, Some(10));
    }

    #[test]
    fn repeated_keys_keep_their_order_and_lines() {
        let text = "{\"uwsgi\": {\n\"a\": \"1\",\n\"a\": \"2\",\n\"b\": 0, \"a\": \"3\"}}";
        let got = read_ok(text, "uwsgi");
        assert_eq!(
            got,
            [
                ("a".into(), "1".into(), Some(2)),
                ("a".into(), "2".into(), Some(3)),
                ("b".into(), "0".into(), Some(4)),
                ("a".into(), "3".into(), Some(4)),
            ]
        );
    }

    #[test]
    fn other_section_and_missing_section() {
        let text = r#"{"uwsgi": {"a": 1}, "prod": {"b": 2}}"#;
        assert_eq!(read_ok(text, "prod")[0].0, "b");
        assert_eq!(read(text, "staging").unwrap(), None);
    }

    #[test]
    fn errors_have_line_and_column() {
        let err = read("{\n  \"uwsgi\": {\n    \"a\" 1\n  }\n}", "uwsgi").unwrap_err();
        assert_eq!((err.line, err.column), (Some(3), Some(9)));
        assert_eq!(err.message, "expected `:`");
        let err = read("[1, 2]", "uwsgi").unwrap_err();
        assert!(err.message.contains("JSON object"), "{}", err.message);
        let err = read(r#"{"uwsgi": {"a": {"b": 1}}}"#, "uwsgi").unwrap_err();
        assert!(err.message.contains("option \"a\""), "{}", err.message);
    }

    /// `{"uwsgi": {}, "other": [[...]]}` with the whole text nested `depth` levels.
    fn nested(depth: usize) -> String {
        let inner = depth - 1;
        format!(
            "{{\"uwsgi\": {{}},\n\"other\": {}{}}}",
            "[".repeat(inner),
            "]".repeat(inner)
        )
    }

    #[test]
    fn nesting_up_to_the_limit_is_read_and_deeper_is_refused() {
        assert_eq!(read(&nested(MAX_DEPTH), "uwsgi").unwrap(), Some(vec![]));
        let err = read(&nested(MAX_DEPTH + 1), "uwsgi").unwrap_err();
        assert!(
            err.over == Some(Overrun::Depth) && err.line == Some(2),
            "{err:?}"
        );
        let quoted = format!(
            "{{\"uwsgi\": {{\"a\": \"{}\\\"{}\"}}}}",
            "[".repeat(100),
            "{".repeat(100)
        );
        assert_eq!(
            read(&quoted, "uwsgi").unwrap().unwrap().len(),
            1,
            "brackets in strings"
        );
    }

    #[test]
    fn values_up_to_the_limit_are_read_and_more_are_refused() {
        let values = |n: usize| format!("{{\"uwsgi\": {{\"a\": [{}1]}}}}", "1,".repeat(n - 1));
        let read_values = read(&values(MAX_OPTIONS), "uwsgi").unwrap().unwrap();
        assert_eq!(read_values.len(), MAX_OPTIONS);
        let err = read(&values(MAX_OPTIONS + 1), "uwsgi").unwrap_err();
        assert_eq!(err.over, Some(Overrun::Options));
    }

    #[test]
    fn an_escaped_key_ends_the_search_for_lines() {
        // Searching on after a key not found as written would be quadratic in such keys.
        let text = "{\"uwsgi\": {\n\"a\": 1,\n\"\\u0062\": 2,\n\"c\": 3}}";
        let lines: Vec<_> = read_ok(text, "uwsgi")
            .into_iter()
            .map(|(k, _, l)| (k, l))
            .collect();
        assert_eq!(
            lines,
            [
                ("a".into(), Some(2)),
                ("b".into(), None),
                ("c".into(), None)
            ]
        );
    }
}
