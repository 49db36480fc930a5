//! The `.xml` reader: `<uwsgi>` (or `<uwsgi id="x">` for `file.xml:x`) whose child elements are
//! the options: the tag is the key, the trimmed text the value, an empty element means "1".

use roxmltree::{Document, Node};

use super::source::{RawEntry, ReadResult, SyntaxError};

pub(crate) fn read(text: &str, id: Option<&str>) -> ReadResult {
    let document = Document::parse(text).map_err(|error| {
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
    section
        .children()
        .filter(Node::is_element)
        .map(|option| option_entry(&document, option))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
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

fn option_entry(document: &Document, option: Node) -> Result<RawEntry, SyntaxError> {
    let line = document.text_pos_at(option.range().start).row as usize;
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
    use super::*;

    fn read_ok(text: &str, id: Option<&str>) -> Vec<(String, String, Option<usize>)> {
        read(text, id)
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value, e.line))
            .collect()
    }

    fn entry(key: &str, value: &str, line: usize) -> (String, String, Option<usize>) {
        (key.into(), value.into(), Some(line))
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
}
