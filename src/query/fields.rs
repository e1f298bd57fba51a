//! The field catalogue: what users may write, and which archive columns it means.

use crate::event::col;

/// How values of a column compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Case-insensitive text (`=`), globs, regexes.
    Text,
    /// Exact strings (ids): `=` compares as written.
    Exact,
    Time,
    /// An IP address: a CIDR or range means containment.
    Ip,
    /// A number (an aggregate's output column).
    Number,
}

/// What a field reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Column(&'static str, Kind),
    /// `actor`: matches `actor_id`, `actor_email` or `actor_name`.
    Actor,
    /// `context` / `container`: any element; `type_part` reads the elements' `type`.
    List {
        column: &'static str,
        type_part: bool,
    },
}

pub struct FieldDef {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub target: Target,
    pub about: &'static str,
}

impl FieldDef {
    /// What its values are, for `auditq fields` and the REPL's `.fields`.
    pub fn type_name(&self) -> &'static str {
        match self.target {
            Target::Column(_, Kind::Text) => "text",
            Target::Column(_, Kind::Exact) => "exact text",
            Target::Column(_, Kind::Time) => "time",
            Target::Column(_, Kind::Ip) => "ip",
            Target::Column(_, Kind::Number) => "number",
            Target::Actor => "text (id, email or name)",
            Target::List {
                type_part: true, ..
            } => "text (any element's type)",
            Target::List { .. } => "text (any element's id or name)",
        }
    }
}

use Kind::*;
use Target::*;

pub const FIELDS: &[FieldDef] = &[
    FieldDef {
        name: "time",
        aliases: &["@timestamp", "timestamp", "_time"],
        target: Column(col::TIME, Time),
        about: "when it happened (UTC)",
    },
    FieldDef {
        name: "processed_at",
        aliases: &["processed"],
        target: Column(col::PROCESSED_AT, Time),
        about: "when Atlassian processed it",
    },
    FieldDef {
        name: "id",
        aliases: &["event_id"],
        target: Column(col::ID, Exact),
        about: "the event id",
    },
    FieldDef {
        name: "action",
        aliases: &["event", "activity"],
        target: Column(col::ACTION, Text),
        about: "the action key, e.g. user_login",
    },
    FieldDef {
        name: "actor",
        aliases: &["who"],
        target: Actor,
        about: "actor id, email or name",
    },
    FieldDef {
        name: "actor.id",
        aliases: &["actor_id"],
        target: Column(col::ACTOR_ID, Exact),
        about: "the actor's account id",
    },
    FieldDef {
        name: "actor.name",
        aliases: &["actor_name"],
        target: Column(col::ACTOR_NAME, Text),
        about: "the actor's display name",
    },
    FieldDef {
        name: "actor.email",
        aliases: &["actor_email"],
        target: Column(col::ACTOR_EMAIL, Text),
        about: "the actor's email",
    },
    FieldDef {
        name: "actor.type",
        aliases: &["actor_type", "actor.kind"],
        target: Column(col::ACTOR_TYPE, Text),
        about: "user, app or system",
    },
    FieldDef {
        name: "auth",
        aliases: &["auth_type", "actor.auth.type"],
        target: Column(col::AUTH_TYPE, Text),
        about: "how the actor authenticated, e.g. api-token",
    },
    FieldDef {
        name: "token_label",
        aliases: &["token", "actor.auth.token_label"],
        target: Column(col::TOKEN_LABEL, Text),
        about: "the API token's label",
    },
    FieldDef {
        name: "ip",
        aliases: &["actor_ip", "src_ip", "location.ip"],
        target: Column(col::IP, Ip),
        about: "source IP address (IPv4 or IPv6)",
    },
    FieldDef {
        name: "country",
        aliases: &["location.country"],
        target: Column(col::COUNTRY, Text),
        about: "source country",
    },
    FieldDef {
        name: "region",
        aliases: &["location.region"],
        target: Column(col::REGION, Text),
        about: "source region",
    },
    FieldDef {
        name: "city",
        aliases: &["location.city"],
        target: Column(col::CITY, Text),
        about: "source city",
    },
    FieldDef {
        name: "message",
        aliases: &["msg"],
        target: Column(col::MESSAGE, Text),
        about: "the event's message",
    },
    FieldDef {
        name: "org",
        aliases: &["org_id"],
        target: Column(col::ORG_ID, Exact),
        about: "the organization id",
    },
    FieldDef {
        name: "context",
        aliases: &["objects"],
        target: List {
            column: col::CONTEXT,
            type_part: false,
        },
        about: "the objects acted on (any element's id or name)",
    },
    FieldDef {
        name: "context.type",
        aliases: &[],
        target: List {
            column: col::CONTEXT,
            type_part: true,
        },
        about: "the type of any context element",
    },
    FieldDef {
        name: "container",
        aliases: &["containers"],
        target: List {
            column: col::CONTAINER,
            type_part: false,
        },
        about: "where it happened (any element's id or name)",
    },
    FieldDef {
        name: "container.type",
        aliases: &[],
        target: List {
            column: col::CONTAINER,
            type_part: true,
        },
        about: "the type of any container element",
    },
    FieldDef {
        name: "raw",
        aliases: &[],
        target: Column(col::RAW, Text),
        about: "the event's JSON exactly as received; raw.PATH reads any value in it (raw.attributes.actor.auth.authType)",
    },
];

/// `raw.PATH` (any case of `raw`): the path inside the event's JSON, dot-separated
/// (a number indexes a list: `raw.attributes.context.0.name`).
pub fn raw_path(name: &str) -> Option<&str> {
    let head = name.get(..4)?;
    let path = &name[4..];
    (head.eq_ignore_ascii_case("raw.") && !path.is_empty()).then_some(path)
}

/// The field a name or alias means (case-insensitive).
pub fn resolve(name: &str) -> Option<&'static FieldDef> {
    let n = name.to_ascii_lowercase();
    FIELDS
        .iter()
        .find(|f| f.name == n || f.aliases.contains(&n.as_str()))
}

/// Every name and alias, for suggestions.
/// The error of a field that is none of the catalogue's (E0101), with the nearest name.
pub fn unknown(f: &crate::lang::ast::Field) -> crate::diag::Diagnostic {
    let mut d = crate::diag::Diagnostic::at("E0101", format!("unknown field `{}`", f.name), f.span)
        .label("not a field or alias");
    if let Some(m) = crate::diag::did_you_mean(&f.name, all_names()) {
        d = d.help(format!("did you mean `{m}`?"));
    }
    d.help("`auditq fields` lists fields and aliases")
}

pub fn all_names() -> impl Iterator<Item = &'static str> {
    FIELDS
        .iter()
        .flat_map(|f| std::iter::once(f.name).chain(f.aliases.iter().copied()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_unique_and_resolve() {
        let names: Vec<&str> = all_names().collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        assert_eq!(resolve("EVENT").unwrap().name, "action");
        assert_eq!(resolve("actor_email").unwrap().name, "actor.email");
        assert!(resolve("acter").is_none());
    }
}
