//! Proofs: that an event is a leaf of the sealed tree (RFC 9162 §2.1.3), and that an
//! older tree is a prefix of it (§2.1.4), each with the checkpoint it holds for.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use deltalake::DeltaTable;

use super::tiles::Tiles;
use super::{
    Archive, CHUNK, Checkpoint, Error, Result, b64, evidence_err, latest, leaves_from_data,
};
use crate::merkle::{self, Hash};
use crate::note;

/// An inclusion proof, as `archive prove` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Proof {
    pub id: String,
    pub leaf_index: u64,
    pub tree_size: u64,
    pub leaf_hash: String,
    pub inclusion_path: Vec<String>,
    pub checkpoint: String,
    pub raw: String,
}

/// A consistency proof, as `archive prove --consistency` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub new_size: u64,
    pub consistency_path: Vec<String>,
    pub checkpoint: String,
}

/// The latest checkpoint and its tiles (a proof made from them is checked against the
/// checkpoint's root before it is given).
async fn sealed(
    a: &Archive,
    verifier: Option<&note::Verifier>,
) -> Result<(DeltaTable, Checkpoint, Tiles)> {
    let table = a.open_table().await?;
    let c = latest(a, verifier)?.ok_or_else(|| {
        evidence_err("the archive is not sealed yet: run `auditq archive seal --key FILE`")
    })?;
    let tiles = Tiles::load_with(a, c.size, false)?;
    Ok((table, c, tiles))
}

/// The error of tiles that do not hash to the signed root of `c`.
fn tiles_changed(c: &Checkpoint) -> Error {
    evidence_err(format!(
        "the evidence tiles do not hash to the root of the latest checkpoint ({} leaves); run `auditq archive verify --verifier-key …`",
        c.size
    ))
}

/// The leaves of the whole chunk `chunk` from the data, checked against its root.
fn chunk_leaves(a: &Archive, table: &DeltaTable, tiles: &Tiles, chunk: u64) -> Result<Vec<Hash>> {
    let leaves = leaves_from_data(a, table, chunk * CHUNK, (chunk + 1) * CHUNK)?;
    if tiles.chunks().get(chunk as usize) != Some(&merkle::root(&leaves)) {
        return Err(evidence_err(format!(
            "leaves {}..{} in the data do not hash to the sealed tree: an event among them changed; run `auditq archive verify --verifier-key …`",
            chunk * CHUNK,
            (chunk + 1) * CHUNK
        )));
    }
    Ok(leaves)
}

/// Inclusion proofs of the events `ids`, each against the latest checkpoint (checked by
/// `verifier` when given; the proof's reader checks it in any case): one
/// result per id, an error for an id that is not archived or not sealed yet.
pub async fn prove(
    a: &Archive,
    verifier: Option<&note::Verifier>,
    ids: &[String],
) -> Result<Vec<std::result::Result<Proof, String>>> {
    let (table, c, tiles) = sealed(a, verifier).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // The id lookup of a query: bloom filters of `id` found through the summary cache,
    // while every live file is as committed.
    let files = super::super::read::live_files(a, &table)?;
    let version = table.version().map_or(-1, |v| v as i64);
    let trust = super::super::read::changed_files(a, &files).is_empty();
    let aids = match trust {
        true => super::super::summary::summarize(a, &files, version)
            .ok()
            .and_then(|_| super::super::summary::file_aids(a, &files, version)),
        false => None,
    };
    let ctx = super::super::session::session(a, &table, aids.as_ref(), trust).await?;
    // `raw` is read for the matching rows' pages only, not the whole row group.
    let pushdown = "SET datafusion.execution.parquet.pushdown_filters = true";
    super::super::read::sql(a, &ctx, pushdown).await?;
    let quoted: Vec<String> = ids
        .iter()
        .map(|i| format!("'{}'", i.replace('\'', "''")))
        .collect();
    let batches = super::super::read::sql(
        a,
        &ctx,
        &format!(
            "SELECT id, raw, leaf FROM events WHERE {}",
            quoted
                .iter()
                .map(|q| format!("id = {q}"))
                .collect::<Vec<_>>()
                .join(" OR ")
        ),
    )
    .await?;
    let mut found: HashMap<String, (String, Option<u64>)> = HashMap::new();
    for b in &batches {
        // The session reads strings as views.
        let text = |i: usize| cast(b.column(i), &DataType::Utf8);
        let (idc, raws) = (text(0)?, text(1)?);
        let (idc, raws) = (idc.as_string::<i32>(), raws.as_string::<i32>());
        let leaves = b.column(2).as_primitive::<Int64Type>();
        for row in 0..b.num_rows() {
            let leaf = leaves.is_valid(row).then(|| leaves.value(row) as u64);
            found.insert(
                idc.value(row).to_owned(),
                (raws.value(row).to_owned(), leaf),
            );
        }
    }
    let mut chunks: HashMap<u64, Vec<Hash>> = HashMap::new();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some((raw, leaf)) = found.get(id) else {
            out.push(Err(format!("id `{id}` is not in the archive")));
            continue;
        };
        let Some(leaf) = *leaf else {
            out.push(Err(format!(
                "event `{id}` has no place in the log (archived before auditq kept one)"
            )));
            continue;
        };
        if leaf >= c.size {
            out.push(Err(format!(
                "event `{id}` (leaf {leaf}) is not sealed yet: the latest checkpoint covers {} leaves; run `auditq archive seal`",
                c.size
            )));
            continue;
        }
        let chunk = leaf / CHUNK;
        if chunk < tiles.chunks().len() as u64 && !chunks.contains_key(&chunk) {
            chunks.insert(chunk, chunk_leaves(a, &table, &tiles, chunk)?);
        }
        let leaf_hash = merkle::leaf_hash(&merkle::event_leaf(id, raw.as_bytes()));
        let known = tiles.with(&chunks);
        let path = merkle::inclusion_proof_in(&known, leaf)
            .ok_or_else(|| evidence_err(format!("no path for leaf {leaf}")))?;
        if !merkle::verify_inclusion(&leaf_hash, leaf, c.size, &path, &c.root) {
            if tiles.root() != c.root {
                return Err(tiles_changed(&c));
            }
            out.push(Err(format!(
                "event `{id}` (leaf {leaf}) does not hash to the sealed leaf: it changed after it was sealed; run `auditq archive verify --verifier-key …`"
            )));
            continue;
        }
        out.push(Ok(Proof {
            id: id.clone(),
            leaf_index: leaf,
            tree_size: c.size,
            leaf_hash: b64(&leaf_hash),
            inclusion_path: path.iter().map(|h| b64(h)).collect(),
            checkpoint: c.text.clone(),
            raw: raw.clone(),
        }));
    }
    Ok(out)
}

/// That the tree of the first `old` leaves is a prefix of the latest sealed tree.
pub async fn consistency(
    a: &Archive,
    verifier: Option<&note::Verifier>,
    old: u64,
) -> Result<ConsistencyProof> {
    let (table, c, tiles) = sealed(a, verifier).await?;
    if tiles.root() != c.root {
        return Err(tiles_changed(&c));
    }
    if old == 0 || old > c.size {
        return Err(evidence_err(format!(
            "--consistency {old}: the old size must be between 1 and the sealed tree's {}",
            c.size
        )));
    }
    let mut chunks = HashMap::new();
    let chunk = old / CHUNK;
    if !old.is_multiple_of(CHUNK) && chunk < tiles.chunks().len() as u64 {
        chunks.insert(chunk, chunk_leaves(a, &table, &tiles, chunk)?);
    }
    let known = tiles.with(&chunks);
    let path = merkle::consistency_proof_in(&known, old)
        .ok_or_else(|| evidence_err(format!("no consistency proof from {old}")))?;
    Ok(ConsistencyProof {
        old_size: old,
        new_size: c.size,
        consistency_path: path.iter().map(|h| b64(h)).collect(),
        checkpoint: c.text,
    })
}
