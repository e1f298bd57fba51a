//! The Atlassian organization audit-log API: the client `sync` and `follow` use, and the
//! fake server the tests and `demo` run against.

pub mod client;
pub mod fake;
