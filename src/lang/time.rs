//! Durations and times as users write them.

use std::time::Duration;

/// Parse a duration such as `7d`, `24h`, `90m`, `30s`, `2w` or a sum like `1h30m`.
///
/// ```ebnf
/// duration = duration_part , { duration_part } ;
/// duration_part = digit , { digit } , unit ;
/// unit = "s" | "m" | "h" | "d" | "w" ;
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration (expected e.g. `7d`, `24h`, `30m`)".into());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "`{s}` is not a duration (expected e.g. `7d`, `24h`, `30m`)"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{s}`: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let secs = match &rest[..unit_len] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "" => {
                return Err(format!(
                    "`{s}`: missing unit after {n} (use s, m, h, d or w)"
                ));
            }
            u => return Err(format!("`{s}`: unknown unit `{u}` (use s, m, h, d or w)")),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(secs)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("`{s}`: duration too large"))?;
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example of the `duration` production in grammar/auditq.ebnf parses.
    #[test]
    fn grammar_examples_parse() {
        let grammar = include_str!("../../grammar/auditq.ebnf");
        let line = grammar
            .lines()
            .find(|l| l.contains("examples:"))
            .expect("the duration production has examples");
        let examples = line
            .split("examples:")
            .nth(1)
            .unwrap()
            .trim_end_matches("*)");
        let examples: Vec<&str> = examples.split_whitespace().collect();
        assert!(examples.len() >= 5);
        for e in examples {
            assert!(parse_duration(e).is_ok(), "grammar example `{e}`");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("7").unwrap_err().contains("missing unit"));
        assert!(
            parse_duration("7y")
                .unwrap_err()
                .contains("unknown unit `y`")
        );
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
