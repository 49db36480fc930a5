//! The guest's verdict: /init prints exactly one `EMPEROR-VM-VERDICT: PASS` or
//! `EMPEROR-VM-VERDICT: FAIL <reason>` line on the serial console.

pub const MARKER: &str = "EMPEROR-VM-VERDICT: ";

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(String),
}

/// The verdict in a serial log. No verdict line, or more than one, is a failure. The marker is
/// looked for anywhere in a line, as a kernel message may have been printed in front of it.
pub fn parse(log: &str) -> Verdict {
    let verdicts: Vec<&str> = log
        .lines()
        .filter_map(|line| line.find(MARKER).map(|at| line[at + MARKER.len()..].trim()))
        .collect();
    match verdicts.as_slice() {
        [] => Verdict::Fail("no verdict line on the serial console".into()),
        ["PASS"] => Verdict::Pass,
        [one] => match one.strip_prefix("FAIL") {
            Some(reason) if !reason.trim().is_empty() => Verdict::Fail(reason.trim().into()),
            _ => Verdict::Fail(format!("malformed verdict line: {one:?}")),
        },
        many => Verdict::Fail(format!(
            "{} verdict lines, expected one: {many:?}",
            many.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_and_fail_lines() {
        assert_eq!(parse("boot\nEMPEROR-VM-VERDICT: PASS\n"), Verdict::Pass);
        assert_eq!(
            parse("EMPEROR-VM-VERDICT: FAIL 2 processes left\n[  5.1] reboot: Power down\n"),
            Verdict::Fail("2 processes left".into())
        );
    }

    #[test]
    fn a_kernel_message_in_front_of_the_verdict_is_ignored() {
        assert_eq!(
            parse("[    3.2] random: crng init doneEMPEROR-VM-VERDICT: PASS"),
            Verdict::Pass
        );
    }

    #[test]
    fn no_verdict_two_verdicts_or_a_bare_fail_are_failures() {
        assert!(
            matches!(parse("Kernel panic - not syncing"), Verdict::Fail(r) if r.contains("no verdict"))
        );
        let two = "EMPEROR-VM-VERDICT: PASS\nEMPEROR-VM-VERDICT: PASS\n";
        assert!(matches!(parse(two), Verdict::Fail(r) if r.contains("2 verdict lines")));
        assert!(
            matches!(parse("EMPEROR-VM-VERDICT: FAIL"), Verdict::Fail(r) if r.contains("malformed"))
        );
        assert!(
            matches!(parse("EMPEROR-VM-VERDICT: PASSED"), Verdict::Fail(r) if r.contains("malformed"))
        );
    }
}
