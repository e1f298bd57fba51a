//! The seeded synthetic event generator: events in the Atlassian API's exact shape.
//!
//! Deterministic for a given seed, count, span and end. Realistic enough to make queries
//! and benchmarks honest: ~2,000 actors with Zipf-like activity (a few busy service
//! accounts), ~120 action keys with skewed frequencies, IPv4 and some IPv6 addresses
//! clustered per actor, ~5% of events without location, 0–4 context items and 1–3
//! containers, a daily cycle, and `processedAt` usually seconds after `time` but
//! sometimes hours later. Events come out in ascending `time` order.
//!
//! JSON is written by hand into a byte buffer (all generated strings are plain ASCII
//! without quotes or backslashes), which keeps the generator well above 500k events/s.

use std::io::{self, Write};

pub use crate::rng::Rng;

/// Sample an index with weights 1/(k+1)^s: Zipf-like popularity.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (0..n)
            .map(|k| {
                total += 1.0 / ((k + 1) as f64).powf(s);
                total
            })
            .collect();
        Zipf { cumulative }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let x = rng.unit() * self.cumulative.last().copied().unwrap_or(0.0);
        self.cumulative
            .partition_point(|&c| c <= x)
            .min(self.cumulative.len() - 1)
    }
}

/// Action keys with the kind of objects they touch. The first block are keys seen in
/// public sources (reference §14.1); the Bitbucket, Jira and Confluence blocks are
/// synthetic, named in the same snake_case style. Order is popularity: the list is
/// sampled Zipf-like, so `user_login` is by far the most frequent.
const ACTIONS: &[(&str, Target)] = &[
    ("user_login", Target::None),
    ("user_profile_viewed", Target::User),
    ("bitbucket_repository_pushed", Target::Repo),
    ("api_token_created", Target::None),
    ("user_logout", Target::None),
    ("organization_users_viewed", Target::None),
    ("bitbucket_pull_request_merged", Target::Repo),
    ("user_login_failed", Target::None),
    ("jira_issue_exported", Target::Product),
    ("confluence_page_exported", Target::Product),
    ("user_invitation_sent", Target::User),
    ("user_granted_role", Target::User),
    ("group_member_added", Target::Group),
    ("user_created", Target::User),
    ("bitbucket_repository_cloned", Target::Repo),
    ("group_member_removed", Target::Group),
    ("user_revoked_role", Target::User),
    ("user_invited", Target::User),
    ("user_invitation_accepted", Target::User),
    ("confluence_added_space_permission", Target::Product),
    ("org_settings_update", Target::Org),
    ("marketplace_app_installed", Target::App),
    ("user_activated", Target::User),
    ("user_deactivated", Target::User),
    ("group_created", Target::Group),
    ("api_token_revoked", Target::None),
    ("user_email_changed", Target::User),
    ("user_suspended", Target::User),
    ("group_granted_admin_access", Target::Group),
    ("added_org_admin", Target::User),
    ("user_logged_in_as_user", Target::User),
    ("twosv_disabled_for_user", Target::User),
    ("data_classification_policy_update", Target::Org),
    (
        "confluence_audit_record_removed_content_restriction",
        Target::Product,
    ),
    ("group_deleted", Target::Group),
    ("user_removed", Target::User),
    ("user_deleted", Target::User),
    ("marketplace_app_uninstalled", Target::App),
    ("bitbucket_repository_created", Target::Repo),
    ("bitbucket_repository_deleted", Target::Repo),
    ("bitbucket_repository_updated", Target::Repo),
    ("bitbucket_repository_transferred", Target::Repo),
    ("bitbucket_repository_privacy_changed", Target::Repo),
    ("bitbucket_repository_member_added", Target::Repo),
    ("bitbucket_repository_member_removed", Target::Repo),
    ("bitbucket_repository_member_updated", Target::Repo),
    ("bitbucket_repository_group_permission_added", Target::Repo),
    (
        "bitbucket_repository_group_permission_removed",
        Target::Repo,
    ),
    (
        "bitbucket_repository_group_permission_updated",
        Target::Repo,
    ),
    ("bitbucket_repository_deploy_key_added", Target::Repo),
    ("bitbucket_repository_deploy_key_removed", Target::Repo),
    ("bitbucket_repository_webhook_created", Target::Repo),
    ("bitbucket_repository_webhook_deleted", Target::Repo),
    ("bitbucket_branch_restriction_updated", Target::Repo),
    ("bitbucket_branch_restriction_deleted", Target::Repo),
    ("bitbucket_pull_request_setting_updated", Target::Repo),
    ("bitbucket_pipeline_variable_created", Target::Repo),
    ("bitbucket_pipeline_variable_deleted", Target::Repo),
    ("bitbucket_project_created", Target::Project),
    ("bitbucket_project_deleted", Target::Project),
    ("bitbucket_project_updated", Target::Project),
    (
        "bitbucket_project_group_permission_updated",
        Target::Project,
    ),
    (
        "bitbucket_project_group_permission_removed",
        Target::Project,
    ),
    ("bitbucket_project_member_updated", Target::Project),
    ("bitbucket_project_member_removed", Target::Project),
    ("bitbucket_project_branching_model_updated", Target::Project),
    ("bitbucket_project_merge_strategy_updated", Target::Project),
    ("bitbucket_workspace_created", Target::Workspace),
    ("bitbucket_workspace_deleted", Target::Workspace),
    ("bitbucket_workspace_name_changed", Target::Workspace),
    ("bitbucket_workspace_privacy_changed", Target::Workspace),
    ("bitbucket_workspace_user_invited", Target::Workspace),
    ("bitbucket_workspace_user_added", Target::Workspace),
    ("bitbucket_workspace_user_removed", Target::Workspace),
    ("bitbucket_workspace_group_created", Target::Workspace),
    ("bitbucket_workspace_group_deleted", Target::Workspace),
    (
        "bitbucket_workspace_group_access_changed",
        Target::Workspace,
    ),
    ("bitbucket_workspace_twosv_enabled", Target::Workspace),
    ("bitbucket_workspace_twosv_disabled", Target::Workspace),
    (
        "bitbucket_workspace_ip_allowlist_enabled",
        Target::Workspace,
    ),
    (
        "bitbucket_workspace_ip_allowlist_disabled",
        Target::Workspace,
    ),
    (
        "bitbucket_workspace_ip_allowlist_changed",
        Target::Workspace,
    ),
    ("bitbucket_ssh_key_added", Target::None),
    ("bitbucket_ssh_key_removed", Target::None),
    ("bitbucket_app_password_created", Target::None),
    ("bitbucket_app_password_revoked", Target::None),
    ("jira_project_created", Target::Product),
    ("jira_project_deleted", Target::Product),
    ("jira_permission_scheme_updated", Target::Product),
    ("jira_global_permission_added", Target::Product),
    ("jira_global_permission_removed", Target::Product),
    ("jira_workflow_updated", Target::Product),
    ("jira_issue_security_scheme_updated", Target::Product),
    ("jira_work_item_generated_ai_content", Target::Product),
    ("confluence_space_created", Target::Product),
    ("confluence_space_deleted", Target::Product),
    ("confluence_removed_space_permission", Target::Product),
    ("confluence_global_permission_updated", Target::Product),
    ("confluence_page_restriction_added", Target::Product),
    ("product_access_granted", Target::Group),
    ("product_access_revoked", Target::Group),
    ("group_renamed", Target::Group),
    ("group_product_access_granted", Target::Group),
    ("group_product_access_revoked", Target::Group),
    ("group_admin_access_revoked", Target::Group),
    ("removed_org_admin", Target::User),
    ("user_reactivated", Target::User),
    ("user_password_reset_requested", Target::User),
    ("user_account_deletion_scheduled", Target::User),
    ("user_account_deletion_canceled", Target::User),
    ("twosv_enabled_for_user", Target::User),
    ("authentication_policy_update", Target::Org),
    ("ip_allowlist_policy_update", Target::Org),
    ("data_residency_policy_update", Target::Org),
    ("mobile_app_policy_update", Target::Org),
    ("audit_log_exported", Target::Org),
    ("domain_verified", Target::Org),
    ("domain_removed", Target::Org),
    ("saml_configuration_updated", Target::Org),
    ("scim_directory_created", Target::Org),
    ("malware_detected", Target::Product),
];

#[derive(Clone, Copy, Debug)]
enum Target {
    None,
    User,
    Group,
    Product,
    Org,
    App,
    Repo,
    Project,
    Workspace,
}

const FIRST: &[&str] = &[
    "ada", "ben", "chen", "dana", "eli", "fatima", "gus", "hana", "ivan", "jo", "kai", "lena",
    "mo", "nia", "omar", "pia", "quinn", "rosa", "sam", "tara", "uma", "vik", "wen", "yara",
];
const LAST: &[&str] = &[
    "abbott", "baker", "costa", "diaz", "evans", "fischer", "garcia", "haddad", "ito", "jansen",
    "kumar", "lopez", "meyer", "nguyen", "okafor", "park", "quist", "rossi", "silva", "tanaka",
];
const PLACES: &[(&str, &str, &str, [u8; 2])] = &[
    ("United States", "California", "San Francisco", [198, 51]),
    ("United States", "New York", "New York", [203, 0]),
    ("Germany", "Berlin", "Berlin", [192, 0]),
    ("Germany", "Bavaria", "Munich", [100, 64]),
    ("Australia", "New South Wales", "Sydney", [172, 16]),
    ("India", "Karnataka", "Bengaluru", [10, 20]),
    ("United Kingdom", "England", "London", [100, 90]),
    ("Brazil", "Sao Paulo", "Sao Paulo", [172, 20]),
    ("Japan", "Tokyo", "Tokyo", [10, 40]),
    ("Netherlands", "North Holland", "Amsterdam", [192, 168]),
];
const SERVICE: &[&str] = &[
    "svc-jira-sync",
    "svc-backup",
    "svc-scim",
    "svc-ci-deploy",
    "svc-audit-export",
];
const PRODUCTS: &[&str] = &[
    "jira-software",
    "confluence",
    "bitbucket",
    "jira-servicemanagement",
];
const GROUPS: &[&str] = &[
    "site-admins",
    "jira-admins",
    "confluence-admins",
    "developers",
    "release-managers",
    "contractors",
    "security",
    "support",
    "finance",
    "all-staff",
];

struct Actor {
    id: String,
    name: String,
    email: String,
    service: bool,
    place: usize,
    ips: Vec<String>,
}

/// Every action key the generator uses.
pub fn action_keys() -> impl Iterator<Item = &'static str> {
    ACTIONS.iter().map(|(a, _)| *a)
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct Config {
    pub events: u64,
    pub days: u32,
    /// End of the span, UTC microseconds; events fall in `[end - days, end)`.
    pub end_micros: i64,
    pub seed: u64,
    pub actors: usize,
}

impl Config {
    pub fn new(events: u64, days: u32, end_micros: i64, seed: u64) -> Self {
        Config {
            events,
            days: days.max(1),
            end_micros,
            seed,
            actors: 2000,
        }
    }
}

/// An iterator-like source of generated events.
pub struct Generator {
    cfg: Config,
    rng: Rng,
    org: String,
    actors: Vec<Actor>,
    actor_zipf: Zipf,
    action_zipf: Zipf,
    start_micros: i64,
    next: u64,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

impl Generator {
    pub fn new(cfg: Config) -> Self {
        let mut rng = Rng::new(cfg.seed);
        let org = uuid(&mut rng);
        let actors = (0..cfg.actors)
            .map(|rank| make_actor(&mut rng, rank))
            .collect();
        let start_micros = cfg.end_micros - cfg.days as i64 * MICROS_PER_DAY;
        Generator {
            actor_zipf: Zipf::new(cfg.actors, 1.05),
            action_zipf: Zipf::new(ACTIONS.len(), 1.1),
            cfg,
            rng,
            org,
            actors,
            start_micros,
            next: 0,
        }
    }

    /// The organization id of the generated events.
    pub fn org(&self) -> &str {
        &self.org
    }

    /// The time of event `i`: spread evenly over the span, then warped within each day so
    /// that working hours (around 12:00 UTC) are busier than the night. The warp is
    /// monotone, so times ascend.
    fn time_of(&mut self, i: u64) -> i64 {
        let span = (self.cfg.end_micros - self.start_micros) as f64;
        let days = self.cfg.days as f64;
        let pos = (i as f64 + self.rng.unit()) / self.cfg.events as f64 * days;
        let (day, frac) = (pos.floor(), pos.fract());
        // g(u) = u + a·sin(2πu)/2π has g' = 1 + a·cos(2πu): dense where g' is small (u≈½).
        let a = 0.75;
        let tau = std::f64::consts::TAU;
        let warped = frac + a * (tau * frac).sin() / tau;
        let t = self.start_micros as f64 + (day + warped) / days * span;
        (t as i64).clamp(self.start_micros, self.cfg.end_micros - 1)
    }

    /// Write the next event as one JSON object (no newline). Returns false when done.
    pub fn write_next(&mut self, out: &mut Vec<u8>) -> bool {
        if self.next >= self.cfg.events {
            return false;
        }
        let i = self.next;
        self.next += 1;
        let time = self.time_of(i);
        let rng = &mut self.rng;
        let id = uuid(rng);
        let actor = &self.actors[self.actor_zipf.sample(rng)];
        let (action, target) = ACTIONS[self.action_zipf.sample(rng)];
        let lag = if rng.chance(0.02) {
            3_600_000_000 + rng.below(5 * 3_600_000_000) as i64
        } else {
            200_000 + rng.below(10_000_000) as i64
        };

        out.extend_from_slice(b"{\"id\":\"");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"\",\"type\":\"events\",\"attributes\":{\"time\":\"");
        push_time(out, time);
        out.extend_from_slice(b"\",\"processedAt\":\"");
        push_time(out, time + lag);
        out.extend_from_slice(b"\",\"action\":\"");
        out.extend_from_slice(action.as_bytes());
        out.extend_from_slice(b"\",\"actor\":{\"id\":\"");
        out.extend_from_slice(actor.id.as_bytes());
        out.extend_from_slice(b"\",\"name\":\"");
        out.extend_from_slice(actor.name.as_bytes());
        out.extend_from_slice(b"\",\"email\":\"");
        out.extend_from_slice(actor.email.as_bytes());
        out.extend_from_slice(b"\"");
        if actor.service {
            out.extend_from_slice(b",\"auth\":{\"authType\":\"api-token\",\"tokenId\":\"tok-");
            out.extend_from_slice(&actor.id.as_bytes()[..8]);
            out.extend_from_slice(b"\",\"tokenLabel\":\"");
            out.extend_from_slice(actor.name.as_bytes());
            out.extend_from_slice(b" token\"}");
        }
        out.extend_from_slice(b",\"links\":{\"self\":\"https://api.atlassian.com/users/");
        out.extend_from_slice(actor.id.as_bytes());
        out.extend_from_slice(b"/manage/profile\"}}");

        let n_context = match target {
            Target::None => rng.below(2) as usize,
            _ => 1 + rng.below(4) as usize,
        };
        out.extend_from_slice(b",\"context\":[");
        for k in 0..n_context {
            if k > 0 {
                out.push(b',');
            }
            let kind = if k == 0 {
                target
            } else {
                [Target::Product, Target::Group, Target::User][rng.below(3) as usize]
            };
            push_object(out, rng, kind, &self.actors);
        }
        out.extend_from_slice(b"],\"container\":[");
        let n_container = 1 + rng.below(3) as usize;
        for k in 0..n_container {
            if k > 0 {
                out.push(b',');
            }
            match (k, target) {
                (0, Target::Repo | Target::Project | Target::Workspace) => {
                    push_simple(out, rng, "workspaces", "ws", 12)
                }
                (0, _) | (2, _) => push_org(out, &self.org),
                _ => push_simple(out, rng, "sites", "site", 6),
            }
        }
        out.push(b']');

        if !rng.chance(0.05) {
            let (country, region, city, _) = PLACES[actor.place];
            let ip = &actor.ips[rng.below(actor.ips.len() as u64) as usize];
            out.extend_from_slice(b",\"location\":{\"ip\":\"");
            out.extend_from_slice(ip.as_bytes());
            out.extend_from_slice(b"\",\"countryName\":\"");
            out.extend_from_slice(country.as_bytes());
            out.extend_from_slice(b"\",\"regionName\":\"");
            out.extend_from_slice(region.as_bytes());
            out.extend_from_slice(b"\",\"city\":\"");
            out.extend_from_slice(city.as_bytes());
            out.extend_from_slice(b"\"}");
        }
        out.extend_from_slice(b"},\"links\":{\"self\":\"https://api.atlassian.com/admin/v1/orgs/");
        out.extend_from_slice(self.org.as_bytes());
        out.extend_from_slice(b"/events/");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"\"},\"message\":{\"content\":\"");
        out.extend_from_slice(actor.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend(action.bytes().map(|b| if b == b'_' { b' ' } else { b }));
        out.extend_from_slice(b"\",\"format\":\"simple\"}}");
        true
    }

    /// Write all remaining events as NDJSON.
    pub fn write_ndjson(&mut self, w: &mut impl Write) -> io::Result<u64> {
        let mut buf = Vec::with_capacity(1 << 20);
        let mut n = 0;
        while self.write_next(&mut buf) {
            buf.push(b'\n');
            n += 1;
            if buf.len() >= 1 << 20 {
                w.write_all(&buf)?;
                buf.clear();
            }
        }
        w.write_all(&buf)?;
        w.flush()?;
        Ok(n)
    }
}

fn make_actor(rng: &mut Rng, rank: usize) -> Actor {
    let place = rng.below(PLACES.len() as u64) as usize;
    let (service, name, email) = if rank < SERVICE.len() {
        let name = SERVICE[rank].to_owned();
        (
            true,
            name.clone(),
            format!("{name}@serviceaccount.example.com"),
        )
    } else {
        let first = FIRST[rng.below(FIRST.len() as u64) as usize];
        let last = LAST[rng.below(LAST.len() as u64) as usize];
        let name = format!(
            "{}{} {}{}",
            &first[..1].to_uppercase(),
            &first[1..],
            &last[..1].to_uppercase(),
            &last[1..]
        );
        (false, name, format!("{first}.{last}{rank}@example.com"))
    };
    let id = if rng.chance(0.7) {
        format!("712020:{}", uuid(rng))
    } else {
        (0..24)
            .map(|_| char::from(b"0123456789abcdef"[rng.below(16) as usize]))
            .collect()
    };
    let prefix = PLACES[place].3;
    let v6 = rng.chance(0.1);
    let subnet = rng.below(256);
    let n_ips = 1 + rng.below(3);
    let ips = (0..n_ips)
        .map(|_| {
            if v6 {
                format!(
                    "2001:db8:{:x}:{:x}::{:x}",
                    prefix[0],
                    subnet,
                    1 + rng.below(0xfffe)
                )
            } else {
                format!(
                    "{}.{}.{}.{}",
                    prefix[0],
                    prefix[1],
                    subnet,
                    1 + rng.below(254)
                )
            }
        })
        .collect();
    Actor {
        id,
        name,
        email,
        service,
        place,
        ips,
    }
}

fn uuid(rng: &mut Rng) -> String {
    let (a, b) = (rng.next_u64(), rng.next_u64());
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

fn push_org(out: &mut Vec<u8>, org: &str) {
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(org.as_bytes());
    out.extend_from_slice(b"\",\"type\":\"orgs\",\"attributes\":{\"name\":\"Example Org\"},\"links\":{\"alt\":\"https://admin.atlassian.com/o/");
    out.extend_from_slice(org.as_bytes());
    out.extend_from_slice(b"/overview\"}}");
}

fn push_simple(out: &mut Vec<u8>, rng: &mut Rng, kind: &str, stem: &str, n: u64) {
    let k = rng.below(n);
    out.extend_from_slice(b"{\"id\":\"");
    push_num_id(out, stem, k);
    out.extend_from_slice(b"\",\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"attributes\":{\"name\":\"");
    out.extend_from_slice(stem.as_bytes());
    out.push(b'-');
    push_u64(out, k);
    out.extend_from_slice(b"\"}}");
}

fn push_object(out: &mut Vec<u8>, rng: &mut Rng, kind: Target, actors: &[Actor]) {
    match kind {
        Target::User | Target::None => {
            let u = &actors[rng.below(actors.len() as u64) as usize];
            out.extend_from_slice(b"{\"id\":\"");
            out.extend_from_slice(u.id.as_bytes());
            out.extend_from_slice(b"\",\"type\":\"users\",\"attributes\":{\"name\":\"");
            out.extend_from_slice(u.name.as_bytes());
            out.extend_from_slice(b"\",\"email\":\"");
            out.extend_from_slice(u.email.as_bytes());
            out.extend_from_slice(b"\",\"accountType\":\"atlassian\"}}");
        }
        Target::Group => {
            let g = GROUPS[rng.below(GROUPS.len() as u64) as usize];
            out.extend_from_slice(b"{\"id\":\"group-");
            out.extend_from_slice(g.as_bytes());
            out.extend_from_slice(b"\",\"type\":\"groups\",\"attributes\":{\"name\":\"");
            out.extend_from_slice(g.as_bytes());
            out.extend_from_slice(b"\",\"groupName\":\"");
            out.extend_from_slice(g.as_bytes());
            out.extend_from_slice(b"\"}}");
        }
        Target::Product => {
            let p = PRODUCTS[rng.below(PRODUCTS.len() as u64) as usize];
            out.extend_from_slice(b"{\"id\":\"");
            out.extend_from_slice(p.as_bytes());
            out.extend_from_slice(b"\",\"type\":\"products\",\"attributes\":{\"name\":\"");
            out.extend_from_slice(p.as_bytes());
            out.extend_from_slice(b"\"}}");
        }
        Target::Org => push_simple(out, rng, "orgs", "policy", 8),
        Target::App => push_simple(out, rng, "apps", "app", 30),
        Target::Repo => push_simple(out, rng, "repositories", "repo", 400),
        Target::Project => push_simple(out, rng, "projects", "proj", 40),
        Target::Workspace => push_simple(out, rng, "workspaces", "ws", 12),
    }
}

fn push_num_id(out: &mut Vec<u8>, stem: &str, k: u64) {
    out.extend_from_slice(stem.as_bytes());
    out.extend_from_slice(b"-id-");
    push_u64(out, k);
}

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

fn push_2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// Write `YYYY-MM-DDTHH:MM:SS.mmmZ` (years 0–9999).
fn push_time(out: &mut Vec<u8>, micros: i64) {
    let secs = micros.div_euclid(1_000_000);
    let millis = (micros.rem_euclid(1_000_000) / 1000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    push_2(out, (y / 100) as u32);
    push_2(out, (y % 100) as u32);
    out.push(b'-');
    push_2(out, m);
    out.push(b'-');
    push_2(out, d);
    out.push(b'T');
    push_2(out, sod / 3600);
    out.push(b':');
    push_2(out, sod / 60 % 60);
    out.push(b':');
    push_2(out, sod % 60);
    out.push(b'.');
    out.push(b'0' + (millis / 100) as u8);
    push_2(out, millis % 100);
    out.push(b'Z');
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{BatchBuilder, format_time, parse_time};

    fn end() -> i64 {
        parse_time("2026-11-01T00:00:00Z").unwrap()
    }

    fn events(n: u64, seed: u64) -> Vec<String> {
        let mut g = Generator::new(Config::new(n, 30, end(), seed));
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while g.write_next(&mut buf) {
            out.push(String::from_utf8(std::mem::take(&mut buf)).unwrap());
        }
        out
    }

    #[test]
    fn time_formatting_matches_chrono() {
        for t in [
            "1999-12-31T23:59:59.999Z",
            "2024-02-29T00:00:00.000Z",
            "2026-11-26T14:55:01.042Z",
        ] {
            let mut out = Vec::new();
            push_time(&mut out, parse_time(t).unwrap());
            assert_eq!(std::str::from_utf8(&out).unwrap(), t);
            assert_eq!(format_time(parse_time(t).unwrap()), t);
        }
    }

    /// Generated events are compact JSON: archived as they are, with no rewriting.
    #[test]
    fn generated_events_are_compact() {
        let mut g = Generator::new(Config::new(200, 3, 0, 1));
        let mut buf = Vec::new();
        while g.write_next(&mut buf) {
            let text = std::str::from_utf8(&buf).unwrap().trim_end();
            assert!(matches!(
                crate::event::compact_json(text),
                std::borrow::Cow::Borrowed(_)
            ));
            buf.clear();
        }
    }

    #[test]
    fn same_seed_same_events_other_seed_other_events() {
        assert_eq!(events(200, 7), events(200, 7));
        assert_ne!(events(200, 7), events(200, 8));
    }

    #[test]
    fn events_are_valid_sorted_and_in_span() {
        let evs = events(5000, 1);
        let mut b = BatchBuilder::new();
        let mut last = i64::MIN;
        let mut no_location = 0;
        for e in &evs {
            let v: serde_json::Value = serde_json::from_str(e).unwrap();
            let t = parse_time(v["attributes"]["time"].as_str().unwrap()).unwrap();
            let p = parse_time(v["attributes"]["processedAt"].as_str().unwrap()).unwrap();
            assert!(t >= last && t < end() && t >= end() - 30 * MICROS_PER_DAY);
            assert!(p > t);
            last = t;
            let ctx = v["attributes"]["context"].as_array().unwrap().len();
            let cont = v["attributes"]["container"].as_array().unwrap().len();
            assert!(ctx <= 4 && (1..=3).contains(&cont));
            no_location += v["attributes"].get("location").is_none() as usize;
            b.push_event(e).unwrap();
        }
        assert!(
            (150..400).contains(&no_location),
            "{no_location} of 5000 without location"
        );
        assert_eq!(b.finish().num_rows(), 5000);
    }

    #[test]
    fn distributions_are_skewed() {
        let evs = events(20_000, 3);
        let mut by_action = std::collections::HashMap::new();
        let mut by_actor = std::collections::HashMap::new();
        for e in &evs {
            let v: serde_json::Value = serde_json::from_str(e).unwrap();
            *by_action
                .entry(v["attributes"]["action"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
            *by_actor
                .entry(v["attributes"]["actor"]["id"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
        assert!(ACTIONS.len() >= 115);
        assert!(
            by_action["user_login"] > 2000,
            "user_login is the most common action"
        );
        assert!(by_action.len() > 80);
        let mut counts: Vec<_> = by_actor.values().copied().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        assert!(
            counts[0] > 1000,
            "a busy service account dominates: {}",
            counts[0]
        );
        assert!(by_actor.len() > 1000, "{} distinct actors", by_actor.len());
    }
}
