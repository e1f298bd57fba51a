//! The query language: tokens, syntax tree, parser, time arithmetic. Knows nothing of DataFusion.

pub mod ast;
pub mod duration;
pub mod lex;
pub mod macros;
pub mod parse;
pub mod time;

pub use ast::Query;
pub use parse::parse;
#[cfg(test)]
mod parse_old;
#[cfg(test)]
mod parse_compare {
    use crate::rng::Rng;

    fn both(q: &str, diffs: &mut Vec<String>) {
        if std::env::var("SKIP_COMMENT").is_ok() && q.contains("/*") {
            return;
        }
        let new = format!("{:?}", super::parse::parse(q));
        let old = format!("{:?}", super::parse_old::parse(q));
        if new != old {
            diffs.push(format!("{q:?}\n    old {old}\n    new {new}"));
        }
    }

    #[test]
    fn new_parser_equals_old() {
        let mut diffs = Vec::new();
        let mut corpus: Vec<String> = Vec::new();
        for f in ["tests/golden/queries.txt", "tests/golden/errors.txt"] {
            let t = std::fs::read_to_string(f).unwrap();
            corpus.extend(
                t.lines()
                    .filter_map(|l| l.strip_prefix("> "))
                    .map(str::to_owned),
            );
        }
        let g = std::fs::read_to_string("grammar/auditq.ebnf").unwrap();
        corpus.extend(
            g.lines()
                .filter_map(|l| l.strip_prefix("(* query: "))
                .map(|l| l.trim_end_matches(" *)").to_owned()),
        );
        for e in std::fs::read_dir("examples/queries").unwrap() {
            let t = std::fs::read_to_string(e.unwrap().path()).unwrap();
            corpus.push(t);
        }
        corpus.push("event in /a(b/".to_owned());
        corpus.push("event:(/a(b/, x)".to_owned());
        corpus.push("event in /x/ | count".to_owned());
        eprintln!("corpus {}", corpus.len());
        for q in &corpus {
            both(q, &mut diffs);
        }
        let pieces = [
            "a",
            ":",
            "=",
            "~",
            "!~",
            "\"",
            "'",
            "`",
            "(",
            ")",
            "[",
            "]",
            "|",
            " ",
            "since",
            "7d",
            "@",
            "/",
            "\\",
            "-",
            "not",
            "in",
            ",",
            "count",
            "by",
            "é",
            "*",
            "2026-01-01",
            "#",
            "\n",
            "between",
            "and",
            "/*",
            "*/",
            "event",
            "actor:",
            "ip",
            "x/y",
            "/re/i",
            "\"s\\\"t\"",
            "'q'",
            "`f g`",
            "| fields ",
            "| rename ",
            " as ",
            "| sort -",
            "| lookup ",
            " on ",
            "| sequence within 1h ",
            "[",
            "]",
            "has ",
            "or ",
            "$m",
            "10.0.0.0/8",
        ];
        let mut rng = Rng::new(7);
        for _ in 0..300_000 {
            let n = rng.below(14) as usize;
            let q: String = (0..n)
                .map(|_| pieces[rng.below(pieces.len() as u64) as usize])
                .collect();
            both(&q, &mut diffs);
        }
        // Mutations of the corpus: a character deleted, or a piece inserted.
        for q in &corpus {
            let chars: Vec<char> = q.chars().collect();
            for _ in 0..200 {
                let at = rng.below(chars.len() as u64 + 1) as usize;
                let mut m: String = chars[..at].iter().collect();
                if rng.below(2) == 0 {
                    m.push_str(pieces[rng.below(pieces.len() as u64) as usize]);
                    m.extend(&chars[at..]);
                } else {
                    m.extend(chars.iter().skip(at + 1));
                }
                both(&m, &mut diffs);
            }
        }
        for _ in 0..50_000 {
            let bytes: Vec<u8> = (0..rng.below(30)).map(|_| rng.below(128) as u8).collect();
            both(&String::from_utf8_lossy(&bytes), &mut diffs);
        }
        let n = diffs.len();
        diffs.truncate(40);
        assert!(diffs.is_empty(), "{n} differ:\n{}", diffs.join("\n"));
    }
}
