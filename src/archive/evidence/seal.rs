//! Sealing: extend the tree with the events archived since the last checkpoint and sign
//! a checkpoint of it.

use deltalake::DeltaTable;

use super::tiles::Tiles;
use super::{
    Archive, Checkpoint, Result, checkpoint_rel, commit_info, evidence_err, io_err, latest,
    leaves_from_data, next_leaf, put_new,
};
use crate::note;

/// What a seal did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sealed {
    /// The tree's size before and after.
    pub previous: u64,
    pub size: u64,
    /// The Delta version sealed.
    pub version: u64,
    /// The checkpoint (the signed note), new or, when nothing was archived since, the
    /// latest.
    pub checkpoint: String,
    /// Where a copy of it was published (`--publish`), if anywhere.
    pub published: Option<String>,
}

/// Seal the archive's latest version with `signer`: the events archived since the last
/// checkpoint become leaves (read from the data, checked to be each there once), the
/// tiles are extended and a checkpoint of the new tree is written. The tiles are first
/// checked against the last checkpoint's root, so a seal never signs over evidence
/// changed since.
pub async fn seal(a: &Archive, signer: &note::Signer) -> Result<Sealed> {
    seal_table(a, signer, &a.open_table().await?).await
}

/// [`seal`] of `table`, the archive's latest version as its writer holds it (a writer
/// seals after each commit without reading the log again).
pub async fn seal_table(a: &Archive, signer: &note::Signer, table: &DeltaTable) -> Result<Sealed> {
    let mut sealed = seal_here(a, signer, table).await?;
    if let Some(to) = a.publish_to() {
        sealed.published = Some(publish(to, sealed.size, &sealed.checkpoint)?);
    }
    Ok(sealed)
}

/// Write a copy of the checkpoint of `size` leaves to `to` (created once, never
/// overwritten: a bucket with Object Lock keeps it): its name there.
fn publish(to: &Archive, size: u64, text: &str) -> Result<String> {
    let rel = format!("{size:020}");
    if !put_new(to, &rel, text.as_bytes().to_vec()).map_err(io_err(
        "publishing checkpoint",
        &rel,
        to,
    ))? {
        let theirs =
            super::get(to, &rel).map_err(io_err("reading published checkpoint", &rel, to))?;
        if theirs.as_deref() != Some(text.as_bytes()) {
            return Err(evidence_err(format!(
                "a checkpoint of {size} leaves published at `{}` differs from this one",
                to.root().join(&rel).display()
            )));
        }
    }
    Ok(to.root().join(rel).display().to_string())
}

async fn seal_here(a: &Archive, signer: &note::Signer, table: &DeltaTable) -> Result<Sealed> {
    let verifier = signer.verifier();
    let version = table.version().unwrap_or(0);
    let last = latest(a, Some(&verifier))?;
    let previous = last.as_ref().map_or(0, |c| c.size);
    let mut tiles = Tiles::load_with(a, previous, false)?;
    if let Some(c) = &last
        && tiles.root() != c.root
    {
        return Err(evidence_err(format!(
            "the evidence tiles do not hash to the root of checkpoint `{}`; nothing was sealed (run `auditq archive verify --verifier-key …` to see what changed)",
            checkpoint_rel(c.size)
        )));
    }
    let size = next_leaf(a, table)?;
    if let Some(c) = last.filter(|c| c.size == size) {
        return Ok(Sealed {
            previous,
            size,
            version: c.version.unwrap_or(version),
            checkpoint: c.text,
            published: None,
        });
    }
    for leaf in leaves_from_data(a, table, previous, size)? {
        tiles.push(leaf);
    }
    let keep = tiles.write_from(a, previous)?;
    let time = commit_info(a, version)
        .and_then(|i| i["timestamp"].as_i64())
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    let root = tiles.root();
    let body = Checkpoint::body(signer.name(), size, &root, version, &time);
    let text = signer
        .sign(&body)
        .map_err(|e| evidence_err(format!("signing the checkpoint: {e}")))?;
    let rel = checkpoint_rel(size);
    if !put_new(a, &rel, text.clone().into_bytes()).map_err(io_err(
        "writing checkpoint",
        &rel,
        a,
    ))? {
        // Another seal of the same tree got there first: it must say the same.
        let theirs = super::read_checkpoint(a, size)?;
        let same = Checkpoint::open(&theirs, &verifier).is_ok_and(|c| c.root == root);
        if !same {
            return Err(evidence_err(format!(
                "checkpoint `{rel}` exists with another root; nothing was sealed"
            )));
        }
        Tiles::prune_partials(a, &keep);
        return Ok(Sealed {
            previous,
            size,
            version,
            checkpoint: theirs,
            published: None,
        });
    }
    Tiles::prune_partials(a, &keep);
    Ok(Sealed {
        previous,
        size,
        version,
        checkpoint: text,
        published: None,
    })
}
