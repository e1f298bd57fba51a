//! The query language. Knows nothing of DataFusion.

pub mod time;
