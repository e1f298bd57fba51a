//! Durations and times as users write them, and the clock that turns a query's time
//! clauses into a range of µs (in the query's zone, against a given "now").

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::ast::{self, Dur, Query, TimeClause, TimePoint};
pub use super::duration::parse_duration;
use crate::diag::{Diagnostic, did_you_mean};

type R<T> = Result<T, Diagnostic>;

/// What "now" is and which zone dates are in.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: i64,
    pub tz: Tz,
}

impl Clock {
    /// `now` (µs since the epoch), dates in UTC.
    pub fn utc(now: i64) -> Clock {
        Clock { now, tz: Tz::UTC }
    }
}

/// The query's time range `[start, end)` in µs (either side open).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Range {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl Clock {
    fn local(&self, micros: i64) -> DateTime<Tz> {
        self.tz.from_utc_datetime(
            &DateTime::from_timestamp_micros(micros)
                .unwrap_or_default()
                .naive_utc(),
        )
    }

    /// A local wall-clock time in the query's zone, as UTC µs (a DST gap moves forward).
    fn local_to_utc(&self, t: NaiveDateTime) -> i64 {
        let mut t = t;
        for _ in 0..3 {
            if let Some(d) = self.tz.from_local_datetime(&t).earliest() {
                return d.timestamp_micros();
            }
            t += chrono::Duration::hours(1);
        }
        Utc.from_utc_datetime(&t).timestamp_micros()
    }

    fn midnight(&self, d: NaiveDate) -> i64 {
        self.local_to_utc(d.and_hms_opt(0, 0, 0).expect("midnight exists"))
    }

    /// `t` rounded down to the start of `unit` in the query's zone.
    fn snap(&self, micros: i64, unit: &str) -> i64 {
        let l = self.local(micros).naive_local();
        let d = l.date();
        let t = match unit {
            "s" => l.with_nanosecond(0).unwrap_or(l),
            "m" => d.and_hms_opt(l.hour(), l.minute(), 0).unwrap_or(l),
            "h" => d.and_hms_opt(l.hour(), 0, 0).unwrap_or(l),
            "d" => d.and_hms_opt(0, 0, 0).unwrap_or(l),
            "w" => (d - chrono::Duration::days(i64::from(d.weekday().num_days_from_monday())))
                .and_hms_opt(0, 0, 0)
                .unwrap_or(l),
            "mo" => d
                .with_day(1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .unwrap_or(l),
            _ => d
                .with_ordinal(1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .unwrap_or(l),
        };
        self.local_to_utc(t)
    }

    /// An absolute time as written: (µs, whether it was a date only).
    pub fn parse_at(&self, text: &str) -> Option<(i64, bool)> {
        let t = text.trim();
        if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            return Some((self.midnight(d), true));
        }
        if let Some(us) = crate::event::parse_time(t) {
            // With a zone (`Z`, `+02:00`): as written; without: in the query's zone.
            let has_zone = t.ends_with(['Z', 'z']) || t.rfind(['+', '-']).is_some_and(|i| i > 10);
            if has_zone {
                return Some((us, false));
            }
        }
        for f in [
            "%Y-%m-%d %H:%M%:z",
            "%Y-%m-%d %H:%M:%S%:z",
            "%Y-%m-%dT%H:%M%:z",
        ] {
            if let Ok(d) = DateTime::parse_from_str(t, f) {
                return Some((d.timestamp_micros(), false));
            }
        }
        for f in [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M",
        ] {
            if let Ok(d) = NaiveDateTime::parse_from_str(t, f) {
                return Some((self.local_to_utc(d), false));
            }
        }
        None
    }

    /// The length of `d` in µs, or why it has none (too long), at `span`.
    pub fn duration(d: &Dur, span: ast::Span) -> R<i64> {
        d.us.ok_or_else(|| match parse_duration(&d.text) {
            Err(e) => Diagnostic::at("E0203", e, span),
            Ok(_) => too_far(&d.text, span),
        })
    }

    /// `duration` before `from`, checked: not before the year 1.
    fn before(from: i64, duration: &Dur, span: ast::Span) -> R<i64> {
        from.checked_sub(Self::duration(duration, span)?)
            .filter(|&t| t >= YEAR_ONE)
            .ok_or_else(|| too_far(&duration.text, span))
    }

    /// A time point: (µs, date-only).
    fn point(&self, p: &TimePoint) -> R<(i64, bool)> {
        Ok(match p {
            TimePoint::Now { snap, .. } => (
                snap.as_ref().map_or(self.now, |u| self.snap(self.now, u)),
                false,
            ),
            TimePoint::Snap(u, _) => (self.snap(self.now, u), false),
            TimePoint::Ago {
                duration,
                snap,
                span,
            } => {
                let t = Self::before(self.now, duration, *span)?;
                (snap.as_ref().map_or(t, |u| self.snap(t, u)), false)
            }
            TimePoint::At(text, span) => self.parse_at(text).ok_or_else(|| {
                Diagnostic::at("E0206", format!("`{text}` is not a time"), *span)
                    .label("not a time")
                    .help("write 2026-02-16, 2026-02-16T08:00:00Z or \"2026-02-16 08:00+02:00\"")
            })?,
        })
    }

    fn today(&self) -> i64 {
        self.snap(self.now, "d")
    }

    pub fn day_after(&self, micros: i64) -> i64 {
        let d = self.local(micros).date_naive();
        self.midnight(d.succ_opt().unwrap_or(d))
    }
}

/// 0001-01-01T00:00:00Z in µs: the earliest time a query computes with.
const YEAR_ONE: i64 = -62_135_596_800_000_000;

/// A duration that reaches before the year 1 (or past what 64 bits of µs hold).
fn too_far(text: &str, span: ast::Span) -> Diagnostic {
    Diagnostic::at("E0210", format!("`{text}` reaches before the year 1"), span)
        .label("too long a duration")
        .help("leave the time clause out to query every event")
}

/// The zone of the query: its `tz` clause, else the given default.
pub fn query_tz(q: &Query, default: Tz) -> R<Tz> {
    let mut tz = default;
    for t in &q.time {
        if let TimeClause::Tz(name, span) = t {
            tz = name.parse::<Tz>().map_err(|_| {
                let mut d = Diagnostic::at("E0207", format!("unknown time zone `{name}`"), *span)
                    .label("not an IANA time zone");
                if let Some(m) = did_you_mean(name, chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()))
                {
                    d = d.help(format!("did you mean \"{m}\"?"));
                }
                d.help("e.g. tz \"Europe/Berlin\", tz \"UTC\"")
            })?;
        }
    }
    Ok(tz)
}

/// Intersect the query's time clauses.
pub fn time_range(q: &Query, clock: &Clock) -> R<Range> {
    let mut r = Range::default();
    let mut narrow = |s: Option<i64>, e: Option<i64>| {
        if let Some(s) = s {
            r.start = Some(r.start.map_or(s, |x| x.max(s)));
        }
        if let Some(e) = e {
            r.end = Some(r.end.map_or(e, |x| x.min(e)));
        }
    };
    for t in &q.time {
        match t {
            TimeClause::Since(p, _) => narrow(Some(clock.point(p)?.0), None),
            TimeClause::Until(p, _) => {
                let (t, _) = clock.point(p)?;
                narrow(None, Some(t));
            }
            TimeClause::Between(a, b, span) => {
                let (s, _) = clock.point(a)?;
                let (e, date_only) = clock.point(b)?;
                // A date-only end means the end of that day.
                let e = if date_only { clock.day_after(e) } else { e };
                if s >= e {
                    return Err(Diagnostic::at(
                        "E0230",
                        "time range is empty: start is not before end",
                        *span,
                    )
                    .help(format!("swap the bounds: between {b} and {a}")));
                }
                narrow(Some(s), Some(e));
            }
            TimeClause::On(d, span) => {
                let (s, _) = clock
                    .parse_at(d)
                    .filter(|(_, date_only)| *date_only)
                    .ok_or_else(|| {
                        Diagnostic::at("E0206", format!("`{d}` is not a date (YYYY-MM-DD)"), *span)
                    })?;
                narrow(Some(s), Some(clock.day_after(s)));
            }
            TimeClause::Last(d, span) => narrow(Some(Clock::before(clock.now, d, *span)?), None),
            TimeClause::Today(_) => {
                let s = clock.today();
                narrow(Some(s), Some(clock.day_after(s)));
            }
            TimeClause::Yesterday(_) => {
                let e = clock.today();
                narrow(Some(clock.snap(e - 1, "d")), Some(e));
            }
            TimeClause::Tz(..) => {}
        }
    }
    if let (Some(s), Some(e)) = (r.start, r.end)
        && s >= e
        && let Some(t) = q.time.first()
    {
        let span = t.span().to(q.time.last().expect("one at least").span());
        return Err(Diagnostic::at(
            "E0230",
            "time range is empty: the time clauses do not overlap",
            span,
        ));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn clock(now: &str, tz: &str) -> Clock {
        Clock {
            now: crate::event::parse_time(now).unwrap(),
            tz: tz.parse().unwrap(),
        }
    }

    fn range(q: &str, now: &str) -> (Option<String>, Option<String>) {
        let q = crate::lang::parse(q).unwrap();
        let cl = clock(now, "UTC");
        let cl = Clock {
            tz: query_tz(&q, cl.tz).unwrap(),
            ..cl
        };
        let r = time_range(&q, &cl).unwrap();
        (
            r.start.map(crate::event::format_time),
            r.end.map(crate::event::format_time),
        )
    }

    #[test]
    fn time_clauses() {
        // (query, start, end) with now = 2026-02-18T15:30:00Z; "" is an open side.
        let cases = [
            ("since 7d", "2026-02-11T15:30:00.000Z", ""),
            ("since 7d@d", "2026-02-11T00:00:00.000Z", ""),
            ("last 24h", "2026-02-17T15:30:00.000Z", ""),
            (
                "today",
                "2026-02-18T00:00:00.000Z",
                "2026-02-19T00:00:00.000Z",
            ),
            (
                "yesterday",
                "2026-02-17T00:00:00.000Z",
                "2026-02-18T00:00:00.000Z",
            ),
            (
                "on 2026-02-16",
                "2026-02-16T00:00:00.000Z",
                "2026-02-17T00:00:00.000Z",
            ),
            // A date-only end means the end of that day.
            (
                "between 2026-02-01 and 2026-02-16",
                "2026-02-01T00:00:00.000Z",
                "2026-02-17T00:00:00.000Z",
            ),
            (
                "between 2026-02-01T10:00:00Z and 2026-02-16T00:00:00Z",
                "2026-02-01T10:00:00.000Z",
                "2026-02-16T00:00:00.000Z",
            ),
            ("since @w", "2026-02-16T00:00:00.000Z", ""),
            ("since now@mo", "2026-02-01T00:00:00.000Z", ""),
            // Zones: Berlin is UTC+1 in February.
            (
                "today tz \"Europe/Berlin\"",
                "2026-02-17T23:00:00.000Z",
                "2026-02-18T23:00:00.000Z",
            ),
            (
                "since \"2026-02-16 08:00+02:00\"",
                "2026-02-16T06:00:00.000Z",
                "",
            ),
            // Several clauses intersect.
            (
                "since 30d until 2026-02-10",
                "2026-01-19T15:30:00.000Z",
                "2026-02-10T00:00:00.000Z",
            ),
        ];
        let side = |t: &str| (!t.is_empty()).then(|| t.to_owned());
        for (q, start, end) in cases {
            assert_eq!(
                range(q, "2026-02-18T15:30:00Z"),
                (side(start), side(end)),
                "{q}"
            );
        }
    }

    #[test]
    fn empty_ranges_and_bad_zones_are_errors() {
        let cl = clock("2026-02-18T15:30:00Z", "UTC");
        let q = crate::lang::parse("between 2026-05-31 and 2026-05-01").unwrap();
        assert_eq!(time_range(&q, &cl).unwrap_err().code, "E0230");
        let q = crate::lang::parse("today tz \"Europe/Berln\"").unwrap();
        let e = query_tz(&q, cl.tz).unwrap_err();
        assert_eq!(e.code, "E0207");
        assert!(e.help[0].contains("Europe/Berlin"), "{e:?}");
    }

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
