//! Placeholder arithmetic: `%(base + 1)`, `%(workers * 2 - 1)`.
//!
//! Deliberately small: operands are integers or placeholder names holding integers, operators
//! are `+ - * /` separated by spaces, evaluated left to right (no precedence, as in uWSGI).
//! uWSGI's `++`/`--` and concatenation of adjacent items are not supported.

pub(crate) fn evaluate(
    expr: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut tokens = expr.split_whitespace();
    let first = tokens.next().ok_or("empty placeholder expression")?;
    let mut total = operand(first, &lookup)?;
    while let Some(op) = tokens.next() {
        let rhs = tokens
            .next()
            .ok_or_else(|| format!("%({expr}): missing operand after '{op}'"))?;
        total = apply(total, op, operand(rhs, &lookup)?)
            .ok_or_else(|| format!("%({expr}): cannot compute {total} {op} {rhs}"))?;
    }
    Ok(total.to_string())
}

fn operand(token: &str, lookup: &impl Fn(&str) -> Option<String>) -> Result<i64, String> {
    if let Ok(number) = token.parse() {
        return Ok(number);
    }
    let value = lookup(token).ok_or_else(|| format!("placeholder %({token}) is not defined"))?;
    value
        .trim()
        .parse()
        .map_err(|_| format!("placeholder %({token}) = \"{value}\" is not an integer"))
}

/// `None` for an unknown operator, overflow or division by zero.
fn apply(lhs: i64, op: &str, rhs: i64) -> Option<i64> {
    match op {
        "+" => lhs.checked_add(rhs),
        "-" => lhs.checked_sub(rhs),
        "*" => lhs.checked_mul(rhs),
        "/" => lhs.checked_div(rhs),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "base" => Some("8000".into()),
            "word" => Some("x".into()),
            _ => None,
        }
    }

    #[test]
    fn left_to_right_integer_arithmetic() {
        assert_eq!(evaluate("base + 1", lookup).unwrap(), "8001");
        assert_eq!(evaluate("2 + 3 * 4", lookup).unwrap(), "20");
        assert_eq!(evaluate("base / 2 - 1", lookup).unwrap(), "3999");
    }

    #[test]
    fn bad_expressions_are_errors() {
        assert!(evaluate("base / 0", lookup)
            .unwrap_err()
            .contains("cannot compute"));
        assert!(evaluate("word + 1", lookup)
            .unwrap_err()
            .contains("not an integer"));
        assert!(evaluate("nope + 1", lookup)
            .unwrap_err()
            .contains("%(nope) is not defined"));
        assert!(evaluate("base +", lookup)
            .unwrap_err()
            .contains("missing operand"));
        assert!(evaluate("base ^ 2", lookup)
            .unwrap_err()
            .contains("cannot compute"));
    }
}
