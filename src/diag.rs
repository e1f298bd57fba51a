//! Diagnostics: how errors read. Depends on nothing.
//!
//! (The query language's spans, carets and `did you mean` hints will live here too.)

/// An error and its chain of causes on one line, each cause once: `a: b: c`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("reading `x`")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_are_appended_once() {
        let e = Outer(std::io::Error::other("disk\non fire"));
        assert_eq!(super::chain(&e), "reading `x`: disk on fire");
    }
}
