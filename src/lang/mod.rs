//! The query language: tokens, syntax tree, parser, time arithmetic. Knows nothing of DataFusion.

pub mod ast;
pub mod duration;
pub mod lex;
pub mod macros;
pub mod parse;
pub mod time;

pub use ast::Query;
pub use parse::parse;
