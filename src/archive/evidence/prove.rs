//! Proofs: that an event is a leaf of the sealed tree (RFC 9162 §2.1.3), and that an
//! older tree is a prefix of it (§2.1.4), each with the checkpoint it holds for.

use std::collections::{HashMap, HashSet};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::datatypes::Int64Type;
use deltalake::DeltaTable;

use super::super::checksum::Checker;
use super::super::read::{LiveFile, changed_files, live_files, open_parquet, read_rows_where};
use super::super::summary;
use crate::event::col;

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
/// checkpoint's root before it is given), read and hashed while the table opens.
async fn sealed(
    a: &Archive,
    verifier: Option<&note::Verifier>,
) -> Result<(DeltaTable, Checkpoint, Tiles)> {
    let (archive, verifier) = (a.clone(), verifier.cloned());
    let evidence = tokio::task::spawn_blocking(move || {
        let c = latest(&archive, verifier.as_ref())?.ok_or_else(|| {
            evidence_err("the archive is not sealed yet: run `auditq archive seal --key FILE`")
        })?;
        let tiles = Tiles::load_with(&archive, c.size, false)?;
        tiles.tile_roots();
        Ok::<_, Error>((c, tiles))
    });
    let table = a.open_table().await?;
    let (c, tiles) = evidence
        .await
        .map_err(|e| evidence_err(format!("reading the evidence: {e}")))??;
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

/// The archived events `ids`: per id, its raw JSON and its leaf. Only the files whose
/// `id` bloom filters may hold one are read (the filters' places come from the summary
/// cache, else from each file's footer), their `id` column first, then `raw` and `leaf`
/// from the pages of the matching rows. A file damaged since it was written is an error
/// naming it, as in a query.
fn find_events(
    a: &Archive,
    table: &DeltaTable,
    ids: &[String],
) -> Result<HashMap<String, (String, Option<u64>)>> {
    let files = live_files(a, table)?;
    let version = table.version().map_or(-1, |v| v as i64);
    // The cache of bloom filter places, made (by a summary) when it is not there yet.
    let aids = match changed_files(a, &files).is_empty() {
        true => summary::file_aids(a, &files, version).or_else(|| {
            summary::summarize(a, &files, version)
                .ok()
                .and_then(|_| summary::file_aids(a, &files, version))
        }),
        false => None,
    };
    let candidates: Vec<&LiveFile> = match &aids {
        Some(aids) => {
            let blooms: Vec<_> = files
                .iter()
                .map(|f| {
                    let places = aids.get(&f.rel).and_then(|x| x.id_blooms.as_deref());
                    (f.rel.as_str(), places)
                })
                .collect();
            let keep = summary::may_hold_any(a, &blooms, ids);
            files
                .iter()
                .zip(keep)
                .filter(|(_, k)| *k)
                .map(|(f, _)| f)
                .collect()
        }
        None => {
            let mut may = Vec::new();
            for f in &files {
                if footer_blooms_may_hold(f, ids)? {
                    may.push(f);
                }
            }
            may
        }
    };
    let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut checker = Checker::new(a);
    let mut found = HashMap::new();
    for file in candidates {
        checker
            .check(&file.rel, false)
            .map_err(|e| evidence_err(e.to_string()))?;
        let pick = |c: &ArrayRef| -> BooleanArray {
            let ids = c.as_string::<i32>();
            ids.iter()
                .map(|id| Some(id.is_some_and(|id| wanted.contains(id))))
                .collect()
        };
        let columns = [col::ID, col::RAW, col::LEAF];
        read_rows_where(file, col::ID, pick, &columns, |b| {
            // By name: a batch has the file's column order.
            let (Some(idc), Some(raws)) = (b.column_by_name(col::ID), b.column_by_name(col::RAW))
            else {
                return Ok(());
            };
            let (idc, raws) = (idc.as_string::<i32>(), raws.as_string::<i32>());
            let leaves = b
                .column_by_name(col::LEAF)
                .map(|l| l.as_primitive::<Int64Type>());
            for row in 0..b.num_rows() {
                let leaf = leaves
                    .filter(|l| l.is_valid(row))
                    .and_then(|l| u64::try_from(l.value(row)).ok());
                found.insert(
                    idc.value(row).to_owned(),
                    (raws.value(row).to_owned(), leaf),
                );
            }
            Ok(())
        })?;
    }
    Ok(found)
}

/// Whether the `id` bloom filters in the footer of `file` may hold one of `ids` (a file
/// without them may).
fn footer_blooms_may_hold(file: &LiveFile, ids: &[String]) -> Result<bool> {
    let parquet = open_parquet(file)?;
    let Some(column) = parquet
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.name() == col::ID)
    else {
        return Ok(true);
    };
    for rg in 0..parquet.metadata().num_row_groups() {
        match parquet.get_row_group_column_bloom_filter(rg, column) {
            Ok(Some(bloom)) if !ids.iter().any(|id| bloom.check(id.as_str())) => {}
            _ => return Ok(true),
        }
    }
    Ok(false)
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
    let found = find_events(a, &table, ids)?;
    let mut chunks: HashMap<u64, Vec<Hash>> = HashMap::new();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some((raw, leaf)) = found.get(id) else {
            out.push(Err(format!("id `{id}` is not in the archive")));
            continue;
        };
        let Some(leaf) = *leaf else {
            out.push(Err(format!(
                "event `{id}` has no place in the log (archived before auditq kept one): `auditq archive seal --adopt` gives it one"
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
