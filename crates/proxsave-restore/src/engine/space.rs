//! How much room a restore needs on each filesystem, measured before any write.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use proxsave_archive::entry::EntryKind;
use proxsave_archive::path::ArchivePath;

use super::{Scan, Seen, system_guard};
use crate::dedup::dedup_pairs;
use crate::error::RestoreError;
use crate::pathlist::PathList;
use crate::plan::{Plan, Tier};
use crate::runstate::SpaceNeed;

/// Block size the free-space estimate rounds file sizes to.
const SPACE_BLOCK: u64 = 4096;

/// What the run needs on each filesystem: the root tier's files (staged beside the old
/// ones until the commit, dedup duplicates materialised), the export folder's, the stage
/// folder's, the safety backup and the log.
///
/// Two passes over the scan's entry list (the sizes of dedup canonicals, then the costs);
/// nothing per entry is kept.
///
/// # Errors
/// Reading the scan's entry list or `targets`.
pub fn space_needs(
    plan: &Plan,
    scan: &Scan,
    root: &Path,
    targets: &PathList,
    work_dir: &Path,
    export_dir: &Path,
) -> Result<Vec<SpaceNeed>, RestoreError> {
    use crate::runstate::blocks;
    let dedup = dedup_pairs(scan)?;
    // Sizes of the canonical files dedup duplicates stand for (few).
    let mut sizes: BTreeMap<&ArchivePath, u64> = BTreeMap::new();
    if !dedup.is_empty() {
        let canonicals: BTreeSet<&ArchivePath> = dedup.values().map(|(c, _)| c).collect();
        for e in scan.entries() {
            let e = e?;
            if e.kind == EntryKind::File
                && let Some(c) = canonicals.get(&e.path)
            {
                sizes.insert(c, e.size);
            }
        }
    }
    let cost = |e: &Seen| -> u64 {
        match e.kind {
            EntryKind::File => blocks(e.size, SPACE_BLOCK),
            EntryKind::Directory => SPACE_BLOCK,
            EntryKind::Symlink => dedup
                .get(&e.path)
                .and_then(|(canon, _)| sizes.get(canon))
                .map_or(0, |s| blocks(*s, SPACE_BLOCK)),
            _ => 0,
        }
    };
    let (mut root_b, mut root_i, mut exp_b, mut exp_i, mut stage_b, mut stage_i) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for e in scan.entries() {
        let e = &e?;
        let route = plan.route(&e.path);
        for tier in &route {
            match tier {
                Tier::Normal if system_guard(&e.path).is_none() => {
                    root_b += cost(e);
                    root_i += 1;
                }
                Tier::Normal => {}
                Tier::Export => {
                    exp_b += cost(e);
                    exp_i += 1;
                }
                Tier::Staged => {
                    stage_b += cost(e);
                    stage_i += 1;
                }
            }
        }
    }
    let safety = if targets.is_empty() {
        0
    } else {
        crate::runstate::safety_backup_size(root, targets)?
    };
    let mut listing = 0u64;
    for t in targets.iter() {
        listing += t?.as_bytes().len() as u64 + 1;
    }
    let log = 64 * 1024 + 256 * scan.len();
    Ok(vec![
        SpaceNeed {
            dir: root.to_path_buf(),
            what: "the restored files".into(),
            bytes: root_b,
            inodes: root_i,
        },
        SpaceNeed {
            dir: export_dir.to_path_buf(),
            what: "the export folder".into(),
            bytes: exp_b,
            inodes: exp_i,
        },
        SpaceNeed {
            dir: work_dir.to_path_buf(),
            what: "the work directory (safety backup, stage folder, log)".into(),
            bytes: stage_b + safety + listing + log,
            inodes: stage_i + 8,
        },
    ])
}
