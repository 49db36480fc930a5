//! Specs as logs and the stats show them: without their passwords.

/// A spec as logs and the stats may show it: a password in a URL (`amqp://u:PASS@h`) or in
/// a conninfo (`password=PASS`) becomes `***`.
pub fn shown(spec: &str) -> String {
    let mut out = String::with_capacity(spec.len());
    let mut rest = spec;
    while let Some(at) = rest.find("password=") {
        let (head, tail) = rest.split_at(at + "password=".len());
        out.push_str(head);
        out.push_str("***");
        rest = tail.trim_start_matches(|c: char| !c.is_whitespace() && c != ';' && c != '&');
    }
    out.push_str(rest);
    if let Some((scheme, after)) = out.split_once("://") {
        let authority_end = after.find('/').unwrap_or(after.len());
        if let Some(at) = after[..authority_end].rfind('@') {
            if let Some(colon) = after[..at].find(':') {
                return format!("{scheme}://{}:***{}", &after[..colon], &after[at..]);
            }
        }
    }
    out
}
