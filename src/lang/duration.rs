//! Durations as written (`7d`, `1h30m`), in queries and in flags. Depends on nothing.

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
