//! The extraction pass: one read of the archive feeding the root, the stage folder and the
//! export folder, each through its own [`Extractor`]; commits after verification.

use std::collections::{BTreeMap, HashSet};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use proxsave_archive::backup::Backup;
use proxsave_archive::dirfd;
use proxsave_archive::entry::{EntryHeader, EntryKind};
use proxsave_archive::extract::{ExtractOptions, ExtractReport, Extractor, Selection, Status};
use proxsave_archive::ops::Spool;
use proxsave_archive::path::ArchivePath;
use proxsave_archive::read::{self, StreamOptions, StreamSummary};
use rustix::io::Errno;

use super::{ExecuteOptions, Scan, mark, system_guard};
use crate::applier::Stage;
use crate::compare::{Change, RootReader};
use crate::dedup::{Canonicals, dedup_pairs, dedup_repair};
use crate::error::RestoreError;
use crate::host::Host;
use crate::plan::{Plan, Tier};
use crate::prompt::{Level, Prompter};
use crate::report::{FileOutcome, FileStatus, Report, system_path};
use crate::runstate::Phase;
use crate::safety;
use crate::workspace::Workspace;

struct Tiers {
    root: Option<Extractor>,
    export: Option<Extractor>,
    stage: Option<Extractor>,
    stage_dir: Option<PathBuf>,
    export_created: bool,
}

impl Tiers {
    fn cleanup(&mut self, export_dir: &Path) {
        self.root.take();
        self.export.take();
        self.stage.take();
        if let Some(d) = self.stage_dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
        if self.export_created {
            let _ = std::fs::remove_dir_all(export_dir);
        }
    }
}

fn make_dir_0700(path: &Path) -> Result<bool, RestoreError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if path.exists() {
        return Ok(false);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| RestoreError::io(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| RestoreError::io(path, e))?;
    Ok(true)
}

/// Opens (creating it 0700 when missing) the export folder. Inside the root it is reached
/// through the root's descriptor one folder at a time and a symlink on the way is refused,
/// so an export never lands outside the root. Returns whether the folder was created.
fn open_export_dir(root: &Path, dir: &Path) -> Result<(bool, OwnedFd), RestoreError> {
    let rel = match safety::export_place(root, dir) {
        safety::ExportPlace::Root => {
            return Err(RestoreError::io(
                dir,
                std::io::Error::other("the export folder cannot be the target root itself"),
            ));
        }
        safety::ExportPlace::Outside => {
            let created = make_dir_0700(dir)?;
            let fd = dirfd::open_root(dir).map_err(|e| RestoreError::io(dir, e))?;
            return Ok((created, fd));
        }
        safety::ExportPlace::Inside(rel) => rel,
    };
    let fail = |e: std::io::Error| RestoreError::io(dir, e);
    let mut cur = dirfd::open_root(root).map_err(|e| RestoreError::io(root, e))?;
    let mut created = false;
    let mut so_far = String::new();
    for comp in rel.components() {
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(&String::from_utf8_lossy(comp));
        created = false;
        let next = match dirfd::open_dir(cur.as_fd(), comp) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                rustix::fs::mkdirat(
                    &cur,
                    std::ffi::OsStr::from_bytes(comp),
                    rustix::fs::Mode::from_raw_mode(0o700),
                )
                .map_err(|e| fail(e.into()))?;
                created = true;
                dirfd::open_dir(cur.as_fd(), comp).map_err(|e| fail(e.into()))?
            }
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(fail(std::io::Error::other(format!(
                    "/{so_far} in the target root is a symbolic link or not a folder; the export is never written through it"
                ))));
            }
            Err(e) => return Err(fail(e.into())),
        };
        cur = next;
    }
    if created {
        rustix::fs::fchmod(&cur, rustix::fs::Mode::from_raw_mode(0o700))
            .map_err(|e| fail(e.into()))?;
    }
    Ok((created, cur))
}

fn outcome_from(
    report: &ExtractReport,
    tier: Tier,
    status_ok: FileStatus,
    out: &mut BTreeMap<String, (FileOutcome, u8)>,
) {
    for e in &report.entries {
        let Some(path) = &e.path else { continue };
        let shown = format!("/{path}");
        let (status, reason) = match e.status {
            Status::Written => (status_ok, None),
            Status::Skipped => continue,
            Status::Refused => (FileStatus::Refused, e.reason.clone()),
            Status::Failed => (FileStatus::Failed, e.reason.clone()),
        };
        let rank = match tier {
            Tier::Normal => 0,
            Tier::Staged => 1,
            Tier::Export => 2,
        };
        let entry = FileOutcome {
            path: shown.clone(),
            tier: Some(tier),
            status,
            change: None,
            uid: e.uid,
            gid: e.gid,
            mode: e.mode,
            reason,
        };
        match out.get(&shown) {
            Some((_, r)) if *r <= rank => {}
            _ => {
                out.insert(shown, (entry, rank));
            }
        }
    }
}

/// Runs between the verification of the read and the root's commit: the stage is
/// committed (appliers plan from it); the root and the export folder are not yet.
pub(crate) type Between<'b> =
    dyn FnMut(&mut Report, &mut dyn Prompter, Option<&Stage>) -> Result<(), RestoreError> + 'b;

/// One read of the archive feeding every tier; after the checksum matched, the stage is
/// committed, `between` runs (applier plans, safety backup, service stops), then the root
/// and the export folder are committed and dedup links repaired.
#[allow(clippy::too_many_arguments)]
pub(crate) fn extract_tiers(
    backup: &Backup,
    stream_opts: &StreamOptions<'_>,
    scan: &Scan,
    plan: &Plan,
    host: &Host,
    ws: &Workspace,
    opts: &ExecuteOptions,
    exports: bool,
    stages: bool,
    report: &mut Report,
    prompter: &mut dyn Prompter,
    between: &mut Between<'_>,
) -> Result<(), RestoreError> {
    let cancel = &opts.cancel;
    let first_file = report.files.len();
    let eopts = || ExtractOptions {
        cancel: cancel.clone(),
        record_written: true,
        ..ExtractOptions::default()
    };
    cancel.set_activity("extracting");
    let reader = RootReader::open(&host.root).map_err(|e| RestoreError::io(&host.root, e))?;
    let mut tiers = Tiers {
        root: None,
        export: None,
        stage: None,
        stage_dir: None,
        export_created: false,
    };
    if !opts.dry_run {
        tiers.root = Some(Extractor::new(&host.root, eopts())?);
        mark(opts, report, Phase::Extracting);
        if exports {
            if let Some(st) = &opts.state {
                let created = !opts.export_dir.exists();
                let export_dir = Some(crate::runstate::utf8(&opts.export_dir)?);
                st.update(|d| {
                    d.export_dir = export_dir;
                    d.export_created = created;
                })?;
            }
            let (created, fd) = open_export_dir(&host.root, &opts.export_dir)?;
            tiers.export_created = created;
            tiers.export = Some(Extractor::with_root_fd(fd, &opts.export_dir, eopts()));
        }
        if stages {
            // Named in the state file before it exists, so a crash never hides it.
            let dir = ws.file_path("restore-stage-", "");
            if let Some(st) = &opts.state {
                let stage = crate::runstate::utf8(&dir)?;
                st.update(|d| d.work_stage = Some(stage))?;
            }
            {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&dir)
                    .map_err(|e| RestoreError::io(&dir, e))?;
            }
            tiers.stage = Some(Extractor::new(&dir, eopts())?);
            tiers.stage_dir = Some(dir);
        }
        prompter.say(
            Level::Info,
            &format!(
                "Extracting selected categories from archive into {}",
                host.root.display()
            ),
        );
    }
    // A dry run stages too (a private temporary folder), so appliers can say what they
    // would do; it is removed when this returns.
    let mut _dry_stage: Option<tempfile::TempDir> = None;
    if opts.dry_run && stages {
        let t = tempfile::Builder::new()
            .prefix("proxsave-plan-stage-")
            .tempdir()
            .map_err(|e| RestoreError::io(&std::env::temp_dir(), e))?;
        tiers.stage = Some(Extractor::new(t.path(), eopts())?);
        tiers.stage_dir = Some(t.path().to_path_buf());
        _dry_stage = Some(t);
    }
    let mut changes: BTreeMap<String, Change> = BTreeMap::new();
    let mut skipped: Vec<FileOutcome> = Vec::new();
    let mut spool = Spool::new();
    // Dedup links come back as regular files: compare them as such (canonical content,
    // manifest mode), so a second identical restore finds them unchanged.
    let dedup = dedup_pairs(scan);
    let canonicals: HashSet<&ArchivePath> = dedup.values().map(|(c, _)| c).collect();
    let mut canonical_sums: BTreeMap<ArchivePath, String> = BTreeMap::new();
    let mut kept: Vec<FileOutcome> = Vec::new();
    // The canonical files' bytes, for the dedup repair after the commits (no third read).
    let mut canon_store = Canonicals::default();
    let canon_dir = if opts.dry_run {
        std::env::temp_dir()
    } else {
        ws.dir.clone()
    };
    let outcome = (|| -> Result<StreamSummary, RestoreError> {
        let mut stream = read::open_stream(backup, stream_opts)?;
        while let Some(h) = stream.next_entry()? {
            cancel.check()?;
            let path = match ArchivePath::parse(&h.raw_path) {
                Ok(Some(p)) => p,
                _ => {
                    // Unusable names and the root entry: the root tier's policy reports them.
                    if let Some(x) = tiers.root.as_mut() {
                        x.add(&h, stream.data(), Selection::Include)
                            .map_err(|e| stream.explain(e))?;
                    }
                    continue;
                }
            };
            let mut spooled = false;
            if canonicals.contains(&path) {
                if h.kind == EntryKind::File {
                    spool
                        .clear()
                        .map_err(|e| RestoreError::io(&std::env::temp_dir(), e))?;
                    spool
                        .fill(stream.data(), cancel)
                        .map_err(|e| stream.explain(e))?;
                    spooled = true;
                    let mut r = spool
                        .reader()
                        .map_err(|e| RestoreError::io(&std::env::temp_dir(), e))?;
                    canon_store
                        .add(&canon_dir, &path, &mut *r, h.mtime)
                        .map_err(|e| RestoreError::io(&canon_dir, e))?;
                } else {
                    canon_store.not_a_file(&path);
                }
            }
            let mut route = plan.route(&path);
            let guarded = system_guard(&path);
            if guarded.is_some() {
                route.retain(|t| *t != Tier::Normal);
            }
            if route.is_empty() {
                let reason = match guarded {
                    Some(g) => g.to_string(),
                    None => "does not match any selected category".to_string(),
                };
                skipped.push(FileOutcome {
                    path: system_path(&path),
                    tier: None,
                    status: FileStatus::Skipped,
                    change: None,
                    uid: h.uid,
                    gid: h.gid,
                    mode: h.mode,
                    reason: Some(reason),
                });
                continue;
            }
            // A root-tier file a domain checks before anything is stopped or written: also
            // staged, for its applier's plan phase (not listed as staged in a dry run).
            let stage_copy = route.contains(&Tier::Normal)
                && !route.contains(&Tier::Staged)
                && crate::domain::stage_copy(&path);
            if stage_copy {
                route.push(Tier::Staged);
            }
            let to_root = route.contains(&Tier::Normal);
            let needs_spool =
                spooled || (h.kind == EntryKind::File && (to_root || route.len() > 1));
            if needs_spool && !spooled {
                spool
                    .clear()
                    .map_err(|e| RestoreError::io(&std::env::temp_dir(), e))?;
                spool
                    .fill(stream.data(), cancel)
                    .map_err(|e| stream.explain(e))?;
            }
            if needs_spool && canonicals.contains(&path) {
                let mut r = spool
                    .reader()
                    .map_err(|e| RestoreError::io(&std::env::temp_dir(), e))?;
                canonical_sums.insert(path.clone(), sha256_hex(&mut *r));
            }
            if to_root && let Some((canon, mode)) = dedup.get(&path) {
                let change = match (canonical_sums.get(canon), reader.file_digest(&path)) {
                    (Some(want), Some((have, have_mode))) if *want == have => {
                        if have_mode == *mode {
                            Change::Unchanged
                        } else {
                            Change::Metadata
                        }
                    }
                    (_, None) if !reader.exists(&path) => Change::New,
                    _ => Change::Changed,
                };
                changes.insert(system_path(&path), change);
            } else if to_root {
                let change = if needs_spool {
                    let mut r = spool
                        .reader()
                        .map_err(|e| RestoreError::io(&std::env::temp_dir(), e))?;
                    reader.compare(&path, &h, Some(&mut *r))
                } else {
                    reader.compare(&path, &h, None)
                };
                changes.insert(system_path(&path), change);
            }
            let unchanged = to_root && changes.get(&system_path(&path)) == Some(&Change::Unchanged);
            if unchanged && !opts.dry_run {
                // Already exactly as in the backup: leave it (and its folder's times) alone.
                kept.push(FileOutcome {
                    path: system_path(&path),
                    tier: Some(Tier::Normal),
                    status: FileStatus::Restored,
                    change: Some(Change::Unchanged),
                    uid: h.uid,
                    gid: h.gid,
                    mode: h.mode,
                    reason: None,
                });
            }
            for tier in &route {
                let x = match tier {
                    Tier::Normal if unchanged => None,
                    Tier::Normal => tiers.root.as_mut(),
                    Tier::Export => tiers.export.as_mut(),
                    Tier::Staged => tiers.stage.as_mut(),
                };
                let Some(x) = x else { continue };
                if needs_spool {
                    let mut r = spool
                        .reader()
                        .map_err(|e| RestoreError::io(&std::env::temp_dir(), e))?;
                    x.add(&h, &mut *r, Selection::Include)
                        .map_err(|e| stream.explain(e))?;
                } else {
                    x.add(&h, stream.data(), Selection::Include)
                        .map_err(|e| stream.explain(e))?;
                }
            }
            if stage_copy {
                route.retain(|t| *t != Tier::Staged);
            }
            if opts.dry_run {
                record_dry_run(
                    report,
                    &path,
                    &h,
                    &route,
                    changes.get(&system_path(&path)).copied(),
                );
            }
        }
        Ok(stream.finish()?)
    })();
    let summary = match outcome {
        Ok(s) => s,
        Err(e) => {
            tiers.cleanup(&opts.export_dir);
            return Err(if e.is_abort() {
                RestoreError::Interrupted
            } else {
                e
            });
        }
    };
    report.sha256 = Some(summary.sha256.clone());
    // Verified. The stage first (private): appliers plan from it.
    let mut merged: BTreeMap<String, (FileOutcome, u8)> = BTreeMap::new();
    if let Some(x) = tiers.stage.take() {
        let r = match x.commit() {
            Ok(r) => r,
            Err(e) => {
                tiers.cleanup(&opts.export_dir);
                return Err(e.into());
            }
        };
        if !opts.dry_run {
            // Files staged only for an applier reading an exported category are shown as
            // exported (their export copy), not as staged.
            let mut shown = r.clone();
            shown.entries.retain(|e| {
                e.path
                    .as_deref()
                    .and_then(|p| ArchivePath::from_user(p).ok())
                    .is_none_or(|p| !plan.staged_only_as_export(&p))
            });
            outcome_from(&shown, Tier::Staged, FileStatus::Staged, &mut merged);
        }
        if let Some(d) = &tiers.stage_dir {
            dedup_repair(&canon_store, scan, d, &r, cancel, report)?;
        }
    }
    let stage = match &tiers.stage_dir {
        Some(d) => Some(Stage::open(d).map_err(|e| RestoreError::io(d, e))?),
        None => None,
    };
    if let Err(e) = between(report, prompter, stage.as_ref()) {
        tiers.cleanup(&opts.export_dir);
        return Err(e);
    }
    if opts.dry_run {
        report.files.extend(skipped);
        emit_files(&report.files[first_file..]);
        return Ok(());
    }
    report.stage_dir = tiers.stage_dir.take();
    // Then the root and the export folder.
    cancel.set_activity("committing");
    if let Some(x) = tiers.root.take() {
        mark(opts, report, Phase::Committing);
        let r = x.commit()?;
        mark(opts, report, Phase::Committed);
        outcome_from(&r, Tier::Normal, FileStatus::Restored, &mut merged);
        // Emitted after the dedup repair, which drops those it made moot.
        report.warnings.extend(r.warnings.iter().cloned());
        // Entries refused or unusable at the root tier without a path.
        for e in r
            .entries
            .iter()
            .filter(|e| e.path.is_none() && e.status == Status::Refused)
        {
            merged.insert(
                e.name.clone(),
                (
                    FileOutcome {
                        path: e.name.clone(),
                        tier: Some(Tier::Normal),
                        status: FileStatus::Refused,
                        change: None,
                        uid: e.uid,
                        gid: e.gid,
                        mode: e.mode,
                        reason: e.reason.clone(),
                    },
                    0,
                ),
            );
        }
        let repaired = dedup_repair(&canon_store, scan, &host.root, &r, cancel, report);
        for w in r.warnings.iter().filter(|w| report.warnings.contains(w)) {
            crate::events::warning(w);
        }
        repaired?;
    }
    if let Some(x) = tiers.export.take() {
        let r = x.commit()?;
        outcome_from(&r, Tier::Export, FileStatus::Exported, &mut merged);
        dedup_repair(&canon_store, scan, &opts.export_dir, &r, cancel, report)?;
        report.export_dir = Some(opts.export_dir.clone());
    }
    for (path, (mut f, _)) in merged {
        if f.status == FileStatus::Restored {
            f.change = changes.get(&path).copied();
        }
        report.files.push(f);
    }
    report.files.extend(kept);
    report.files.extend(skipped);
    emit_files(&report.files[first_file..]);
    let restored = report
        .files
        .iter()
        .filter(|f| f.status == FileStatus::Restored)
        .count();
    let failed = report
        .files
        .iter()
        .filter(|f| matches!(f.status, FileStatus::Failed | FileStatus::Refused))
        .count();
    if failed == 0 {
        prompter.say(
            Level::Info,
            &format!("Successfully restored all {restored} configuration files/directories"),
        );
    } else {
        prompter.say(
            Level::Warning,
            &format!(
                "Restored {restored} files/directories; {failed} item(s) failed or were refused (see detailed log)"
            ),
        );
    }
    Ok(())
}

/// One `proxsave::file` event per outcome, grouped by status in the restore log's order
/// (extracted, exported, staged, skipped, refused, failed), paths sorted within a group.
fn emit_files(files: &[FileOutcome]) {
    if !tracing::enabled!(target: crate::events::FILE, tracing::Level::DEBUG) {
        return;
    }
    let rank = |s: FileStatus| match s {
        FileStatus::Restored | FileStatus::WouldRestore => 0,
        FileStatus::Exported => 1,
        FileStatus::Staged => 2,
        FileStatus::Skipped => 3,
        FileStatus::Refused => 4,
        FileStatus::Failed => 5,
    };
    let mut sorted: Vec<&FileOutcome> = files.iter().collect();
    sorted.sort_by(|a, b| (rank(a.status), &a.path).cmp(&(rank(b.status), &b.path)));
    for f in sorted {
        crate::events::file(f);
    }
}

fn record_dry_run(
    report: &mut Report,
    path: &ArchivePath,
    h: &EntryHeader,
    route: &[Tier],
    change: Option<Change>,
) {
    for tier in route {
        let status = match tier {
            Tier::Normal => FileStatus::WouldRestore,
            Tier::Export => FileStatus::Exported,
            Tier::Staged => FileStatus::Staged,
        };
        report.files.push(FileOutcome {
            path: system_path(path),
            tier: Some(*tier),
            status,
            change: if *tier == Tier::Normal { change } else { None },
            uid: h.uid,
            gid: h.gid,
            mode: h.mode,
            reason: None,
        });
    }
}

fn sha256_hex(r: &mut dyn std::io::Read) -> String {
    proxsave_archive::checksum::sha256_of(r)
        .map(|(h, _)| h)
        .unwrap_or_default()
}
