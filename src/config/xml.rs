//! The `.xml` reader: `<uwsgi>` (or `<uwsgi id="x">` for `file.xml:x`) whose child elements are
//! the options: the tag is the key, the trimmed text the value, an empty element means "1".

use roxmltree::{Document, Node, ParsingOptions};

use super::limits::{MAX_DEPTH, MAX_OPTIONS};
use super::source::{LineCounter, RawEntry, ReadResult, SyntaxError};

pub(crate) fn read(text: &str, id: Option<&str>) -> ReadResult {
    if let Some(over) = over_limits(text) {
        return Err(over);
    }
    // No DTD, so no entity can add elements the scan did not see; the scan's count of markup
    // bounds the nodes (an element and the text after it each), the nodes limit says so again.
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: (4 * MAX_OPTIONS) as u32,
    };
    let document = Document::parse_with_options(text, options).map_err(|error| {
        let pos = error.pos();
        // roxmltree usually ends its message with the position; we print it in front instead.
        let message = error.to_string();
        let message = message
            .strip_suffix(&format!(" at {pos}"))
            .unwrap_or(&message);
        SyntaxError::at(pos.row as usize, Some(pos.col as usize), message)
    })?;
    let Some(section) = find_section(&document, id) else {
        return Ok(None);
    };
    // Not roxmltree's text_pos_at, which counts from the start each time: quadratic.
    let mut lines = LineCounter::new(text);
    section
        .children()
        .filter(Node::is_element)
        .map(|option| option_entry(lines.of(option.range().start), option))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Where elements first nest deeper than [`MAX_DEPTH`], or the text first holds more than
/// [`MAX_OPTIONS`] pieces of markup, found before roxmltree parses (it recurses once per
/// level: ~13,000 levels overflow a main thread's stack; and each node costs ~100 bytes).
/// Comments, CDATA, processing instructions and a DOCTYPE are skipped, quoted attribute
/// values may hold `>`; malformed text is left to the parser to report.
fn over_limits(text: &str) -> Option<SyntaxError> {
    let line_at = |at: usize| text[..at].matches('\n').count() + 1;
    let (mut depth, mut markup) = (0usize, 0usize);
    let mut at = 0;
    while let Some(offset) = text[at..].find('<') {
        let start = at + offset;
        markup += 1;
        if markup > MAX_OPTIONS {
            return Some(SyntaxError::too_many(line_at(start)));
        }
        let rest = &text[start..];
        let skip_past = |end: &str| rest.find(end).map(|i| start + i + end.len());
        at = if rest.starts_with("<!--") {
            skip_past("-->")?
        } else if rest.starts_with("<![CDATA[") {
            skip_past("]]>")?
        } else if rest.starts_with("<?") {
            skip_past("?>")?
        } else {
            let end = start + tag_end(rest)?;
            let tag = &text[start..end];
            if tag.starts_with("</") {
                depth = depth.saturating_sub(1);
            } else if !tag.starts_with("<!") && !tag.ends_with('/') {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(SyntaxError::too_deep(line_at(start)));
                }
            }
            end + 1
        };
    }
    None
}

/// The offset of the `>` that ends the tag `tag` starts with, outside quotes (and outside a
/// DOCTYPE's `[...]` internal subset).
fn tag_end(tag: &str) -> Option<usize> {
    let (mut quote, mut brackets) = (None, 0usize);
    for (i, byte) in tag.bytes().enumerate() {
        match (quote, byte) {
            (Some(open), _) if byte == open => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(byte),
            (None, b'[') => brackets += 1,
            (None, b']') => brackets = brackets.saturating_sub(1),
            (None, b'>') if brackets == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// The root `<uwsgi>` when no id is asked for; otherwise the `<uwsgi>` element with that id,
/// wherever it is (so one file can hold several instances).
fn find_section<'a>(document: &'a Document, id: Option<&str>) -> Option<Node<'a, 'a>> {
    let is_uwsgi = |node: &Node| node.has_tag_name("uwsgi");
    match id {
        None => Some(document.root_element()).filter(is_uwsgi),
        Some(id) => document
            .descendants()
            .find(|node| is_uwsgi(node) && node.attribute("id") == Some(id)),
    }
}

fn option_entry(line: usize, option: Node) -> Result<RawEntry, SyntaxError> {
    let key = option.tag_name().name();
    if option.children().any(|child| child.is_element()) {
        let message = format!("option \"{key}\": nested elements are not supported");
        return Err(SyntaxError::at(line, None, message));
    }
    let text: String = option.children().filter_map(|child| child.text()).collect();
    let text = text.trim();
    let value = if text.is_empty() { "1" } else { text };
    Ok(RawEntry::new(key, value, Some(line)))
}

#[cfg(test)]
mod tests {
    use super::super::limits::Overrun;
    use super::super::source::test_support::{entries_of, entry};
    use super::*;

    fn read_ok(text: &str, id: Option<&str>) -> Vec<(String, String, Option<usize>)> {
        entries_of(read(text, id))
    }

    #[test]
    fn options_with_lines_and_empty_flags() {
        let text = "<uwsgi>\n  <socket> /tmp/a.sock </socket>\n  <master/>\n  <env>A=1</env>\n  <env>B=2</env>\n</uwsgi>\n";
        assert_eq!(
            read_ok(text, None),
            [
                entry("socket", "/tmp/a.sock", 2),
                entry("master", "1", 3),
                entry("env", "A=1", 4),
                entry("env", "B=2", 5),
            ]
        );
    }

    #[test]
    fn picks_a_section_by_id() {
        let text =
            "<all>\n<uwsgi id=\"a\"><x>1</x></uwsgi>\n<uwsgi id=\"b\">\n<y>2</y></uwsgi>\n</all>";
        assert_eq!(read_ok(text, Some("b")), [entry("y", "2", 4)]);
        assert_eq!(read(text, None).unwrap(), None, "root is not <uwsgi>");
        assert_eq!(read(text, Some("c")).unwrap(), None);
    }

    #[test]
    fn errors_have_lines() {
        let err = read("<uwsgi>\n<a>1</b>\n</uwsgi>", None).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(
            !err.message.contains("2:"),
            "position only once: {}",
            err.message
        );
        let err = read("<uwsgi>\n<a><b/></a>\n</uwsgi>", None).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("option \"a\""), "{}", err.message);
    }

    /// `<uwsgi id="x"/>` inside elements nested `depth` levels in all, with markup that must
    /// not count: a comment, CDATA, a processing instruction, `>` and `/>` in attributes.
    fn nested(depth: usize) -> String {
        let inner = depth - 1;
        format!(
            "<?xml version=\"1.0\"?>\n<!-- <a><a> -->\n{}<uwsgi id=\"x\" a=\"/>\" b='>'><![CDATA[<a>]]><k>1</k></uwsgi>{}",
            "<a>\n".repeat(inner - 1),
            "</a>".repeat(inner - 1)
        )
    }

    #[test]
    fn nesting_up_to_the_limit_is_read_and_deeper_is_refused() {
        let ok = nested(MAX_DEPTH);
        assert_eq!(read_ok(&ok, Some("x")).len(), 1);
        let err = read(&nested(MAX_DEPTH + 1), Some("x")).unwrap_err();
        assert!(err.over == Some(Overrun::Depth), "{err:?}");
        assert_eq!(
            err.line,
            Some(MAX_DEPTH + 2),
            "the line of the element too deep"
        );
        let deep = format!("<uwsgi>{}", "<a>".repeat(13_000));
        assert!(read(&deep, None).unwrap_err().over == Some(Overrun::Depth));
    }

    #[test]
    fn markup_up_to_the_limit_is_read_and_more_is_refused() {
        // <uwsgi>, n options, </uwsgi>: n + 2 pieces of markup.
        let options = |n: usize| format!("<uwsgi>{}</uwsgi>", "<a/>".repeat(n));
        assert_eq!(
            read_ok(&options(MAX_OPTIONS - 2), None).len(),
            MAX_OPTIONS - 2
        );
        let err = read(&options(MAX_OPTIONS - 1), None).unwrap_err();
        assert_eq!(err.over, Some(Overrun::Options));
    }
}
