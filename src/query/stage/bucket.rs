//! `| bucket time 1h`: `time` rounded down to a multiple of the span.

use super::{Def, Flow, Plan, R, refuse};
use crate::event::col as c;
use crate::lang::ast::{Bucket, Field, Span};
use crate::query::compile::{bucket_expr, df_err};

impl Def for Bucket {
    fn span(&self) -> Span {
        self.span
    }

    fn reads<'a>(&'a self, _: &mut Vec<&'a Field>) -> bool {
        true
    }

    fn stream(&self) -> R<Flow> {
        Err(refuse(
            self,
            "`bucket` has nothing to feed in `follow`",
            "windows bucket by time themselves: `| count by action over 5m every 5m`",
        ))
    }

    fn plan(&self, p: &mut Plan<'_>) -> R<()> {
        let bucket = bucket_expr(&p.cx, &self.every, self.span)?;
        p.with(|_, df| {
            df.with_column(c::TIME, bucket)
                .map_err(|e| df_err(e, self.span))
        })
    }
}
