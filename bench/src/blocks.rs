//! Generated blocks of docs/PERFORMANCE.md: each workload that writes only its own part of
//! the document finds it between two marker lines, and replaces it (or adds it) there.

/// The block of `document` from `begin` to `end`, markers included, if it has one.
pub fn find<'d>(document: &'d str, begin: &str, end: &str) -> Option<&'d str> {
    let start = document.find(begin)?;
    let stop = document[start..].find(end)? + start + end.len();
    Some(&document[start..stop])
}

/// `document` with its block between `begin` and `end` replaced by `block`; a document
/// without one gets it before its `before` heading line when given and there, else at its end.
pub fn splice(document: &str, begin: &str, end: &str, block: &str, before: Option<&str>) -> String {
    if let Some(old) = find(document, begin, end) {
        return document.replacen(old, block, 1);
    }
    match before.and_then(|heading| document.find(&format!("\n{heading}\n"))) {
        Some(at) => format!(
            "{}\n\n{block}\n\n{}",
            document[..at].trim_end(),
            &document[at + 1..]
        ),
        None => format!("{}\n\n{block}\n", document.trim_end()),
    }
}
