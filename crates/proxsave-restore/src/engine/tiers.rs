//! The extraction pass: one read of the archive feeding the root, the stage folder and the
//! export folder, each through its own [`Extractor`]; commits after verification.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use proxsave_archive::backup::Backup;
use proxsave_archive::dirfd;
use proxsave_archive::entry::{EntryHeader, EntryKind};
use proxsave_archive::extract::{ExtractOptions, ExtractReport, Extractor, Selection, Status};
use proxsave_archive::ops::Spool;
use proxsave_archive::path::ArchivePath;
use proxsave_archive::read::{StreamOptions, StreamSummary};
use proxsave_archive::spill::{self, Record, SpillVec, get_u64, put_u64};
use rustix::io::Errno;

use super::{ExecuteOptions, Scan, mark, system_guard};
use crate::applier::Stage;
use crate::compare::{Change, RootReader};
use crate::dedup::{Canonicals, dedup_pairs, dedup_repair};
use crate::error::RestoreError;
use crate::host::Host;
use crate::plan::{Plan, Tier};
use crate::prompt::{Level, Prompter};
use crate::report::{
    FileList, FileOutcome, FileStatus, Report, get_change, put_change, system_path,
};
use crate::runstate::Phase;
use crate::safety;
use crate::sort::{SORT_BUDGET, Sorter};
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

/// The merge order of the report's tier outcomes: for one path (the key), a refusal of an
/// unusable name at the root (the last one wins), else the root's, the stage's, then the
/// export's outcome (the first of a tier wins), and the root-tier change (the last computed).
const PRIO_OVERRIDE: u8 = 0;
const PRIO_CHANGE: u8 = 9;

/// Sequence numbers of failures the commit found for paths without a written outcome
/// (they come after every entry of the tier).
const FAIL_SEQ: u64 = 1 << 62;

fn tier_prio(tier: Tier) -> u8 {
    match tier {
        Tier::Normal => 1,
        Tier::Staged => 2,
        Tier::Export => 3,
    }
}

/// One record of the merge: an outcome of a tier (or a root override), or a computed change
/// (`out` then carries only the path).
struct MergeRec {
    prio: u8,
    /// Order within `prio` (reversed where the last one wins).
    seq: u64,
    /// The entry was written as a symbolic link (dedup repair).
    link: bool,
    change: Option<Change>,
    out: FileOutcome,
}

impl Record for MergeRec {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.prio);
        out.push(u8::from(self.link));
        put_u64(out, self.seq);
        put_change(out, self.change);
        self.out.encode(out);
    }
    fn decode(input: &mut dyn std::io::Read) -> std::io::Result<Self> {
        let mut b = [0u8; 2];
        input.read_exact(&mut b)?;
        Ok(MergeRec {
            prio: b[0],
            link: b[1] != 0,
            seq: get_u64(input)?,
            change: get_change(input)?,
            out: FileOutcome::decode(input)?,
        })
    }
}

fn merge_order(a: &MergeRec, b: &MergeRec) -> std::cmp::Ordering {
    (a.out.path.as_bytes(), a.prio, a.seq).cmp(&(b.out.path.as_bytes(), b.prio, b.seq))
}

fn work_io(ws: &Workspace) -> impl Fn(std::io::Error) -> RestoreError + '_ {
    |e| RestoreError::io(&ws.dir, e)
}

/// The outcomes of one tier's extractor, recorded entry by entry as the archive is read (in
/// archive order, bounded in memory), finished after its commit.
struct TierLog {
    tier: Tier,
    status_ok: FileStatus,
    list: SpillVec<MergeRec>,
    /// Paths of the symbolic links written (for the dedup repair), when there is one.
    links: Option<HashSet<String>>,
}

impl TierLog {
    fn new(tier: Tier, status_ok: FileStatus, ws: &Workspace, dedup: bool) -> TierLog {
        TierLog {
            tier,
            status_ok,
            list: SpillVec::new(&ws.dir, spill::LIST_BUDGET),
            links: dedup.then(HashSet::new),
        }
    }

    /// Records what `x.add` answered for entry `seq` (`path`, when its name is usable).
    fn record(
        &mut self,
        x: &Extractor,
        status: Status,
        h: &EntryHeader,
        path: Option<&ArchivePath>,
        seq: u64,
    ) -> std::io::Result<()> {
        let rec = match status {
            Status::Skipped => return Ok(()),
            Status::Written => {
                let Some(path) = path else { return Ok(()) };
                let link = h.kind == EntryKind::Symlink;
                if link && let Some(l) = self.links.as_mut() {
                    l.insert(path.to_string());
                }
                MergeRec {
                    prio: tier_prio(self.tier),
                    seq,
                    link,
                    change: None,
                    out: FileOutcome {
                        path: system_path(path),
                        tier: Some(self.tier),
                        status: self.status_ok,
                        change: None,
                        uid: h.uid,
                        gid: h.gid,
                        mode: h.mode,
                        reason: None,
                    },
                }
            }
            Status::Refused | Status::Failed => {
                // The extractor recorded this entry's outcome last.
                let Some(e) = x.report().entries.last() else {
                    return Ok(());
                };
                let status = if e.status == Status::Failed {
                    FileStatus::Failed
                } else {
                    FileStatus::Refused
                };
                let (prio, seq, shown) = match &e.path {
                    Some(p) => (tier_prio(self.tier), seq, format!("/{p}")),
                    // Refused at the root without a usable name: listed under its name, over
                    // anything else of that name.
                    None if self.tier == Tier::Normal && e.status == Status::Refused => {
                        (PRIO_OVERRIDE, u64::MAX - seq, e.name.clone())
                    }
                    None => return Ok(()),
                };
                MergeRec {
                    prio,
                    seq,
                    link: false,
                    change: None,
                    out: FileOutcome {
                        path: shown,
                        tier: Some(self.tier),
                        status,
                        change: None,
                        uid: e.uid,
                        gid: e.gid,
                        mode: e.mode,
                        reason: e.reason.clone(),
                    },
                }
            }
        };
        self.list.push(&rec)
    }

    /// After the commit: the entries whose write failed (`committed`'s failures, in the
    /// order the commit found them) become failed — the last written outcome of that path
    /// each, or a new outcome when there is none —, the written links lose them, and every
    /// outcome `keep` accepts goes to the merge.
    fn finish(
        &mut self,
        committed: &ExtractReport,
        merge: &mut Sorter<MergeRec>,
        keep: &dyn Fn(&FileOutcome) -> bool,
    ) -> std::io::Result<()> {
        let failures: Vec<(String, Option<String>)> = committed
            .entries
            .iter()
            .filter(|e| e.status == Status::Failed)
            .filter_map(|e| e.path.as_ref().map(|p| (format!("/{p}"), e.reason.clone())))
            .collect();
        // Written outcomes of the failed paths: index and whether it is a link.
        let mut written: HashMap<&str, Vec<(u64, bool)>> = failures
            .iter()
            .map(|(p, _)| (p.as_str(), Vec::new()))
            .collect();
        if !failures.is_empty() {
            for (i, r) in self.list.iter().enumerate() {
                let r = r?;
                if r.out.status == self.status_ok
                    && r.prio != PRIO_OVERRIDE
                    && let Some(v) = written.get_mut(r.out.path.as_str())
                {
                    v.push((i as u64, r.link));
                }
            }
        }
        let mut flipped: HashMap<u64, Option<String>> = HashMap::new();
        let mut added: Vec<MergeRec> = Vec::new();
        for (n, (path, reason)) in failures.iter().enumerate() {
            match written.get_mut(path.as_str()).and_then(Vec::pop) {
                Some((i, link)) => {
                    flipped.insert(i, reason.clone());
                    let still = written
                        .get(path.as_str())
                        .is_some_and(|v| v.iter().any(|(_, l)| *l));
                    if link
                        && !still
                        && let Some(l) = self.links.as_mut()
                    {
                        l.remove(&path[1..]);
                    }
                }
                None => added.push(MergeRec {
                    prio: tier_prio(self.tier),
                    seq: FAIL_SEQ + n as u64,
                    link: false,
                    change: None,
                    out: FileOutcome {
                        path: path.clone(),
                        tier: Some(self.tier),
                        status: FileStatus::Failed,
                        change: None,
                        uid: 0,
                        gid: 0,
                        mode: 0,
                        reason: reason.clone(),
                    },
                }),
            }
        }
        for (i, r) in self.list.iter().enumerate() {
            let mut r = r?;
            if let Some(reason) = flipped.remove(&(i as u64)) {
                r.out.status = FileStatus::Failed;
                r.out.reason = reason;
            }
            if keep(&r.out) {
                merge.push(r)?;
            }
        }
        for r in added {
            if keep(&r.out) {
                merge.push(r)?;
            }
        }
        Ok(())
    }

    fn links(&self) -> HashSet<String> {
        self.links.clone().unwrap_or_default()
    }
}

/// The merged outcomes in path order: per path the outcome that wins ([`MergeRec`]), with
/// the root-tier change when it was restored.
fn push_merged(merge: Sorter<MergeRec>, files: &mut FileList) -> std::io::Result<()> {
    let mut group: Option<(MergeRec, Option<Option<Change>>)> = None;
    let mut key: Option<String> = None;
    let flush = |g: Option<(MergeRec, Option<Option<Change>>)>,
                 files: &mut FileList|
     -> std::io::Result<()> {
        if let Some((mut w, change)) = g
            && w.prio != PRIO_CHANGE
        {
            if w.out.status == FileStatus::Restored {
                w.out.change = change.flatten();
            }
            files.push(w.out)?;
        }
        Ok(())
    };
    for r in merge.finish()? {
        let r = r?;
        if key.as_deref() != Some(r.out.path.as_str()) {
            flush(group.take(), files)?;
            key = Some(r.out.path.clone());
        }
        match &mut group {
            None => {
                let change = (r.prio == PRIO_CHANGE).then_some(r.change);
                group = Some((r, change));
            }
            Some((w, change)) => {
                if r.prio == PRIO_CHANGE {
                    if change.is_none() {
                        *change = Some(r.change);
                    }
                } else if w.prio == PRIO_CHANGE {
                    // Only changes so far: this is the first outcome.
                    let c = *change;
                    *w = r;
                    *change = c;
                }
            }
        }
    }
    flush(group.take(), files)
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
    let wio = work_io(ws);
    // The outcomes live in the run's private work directory past their memory budget.
    report
        .files
        .spill_into(&ws.dir, spill::LIST_BUDGET)
        .map_err(&wio)?;
    let first_file = report.files.len();
    // Written entries are not recorded by the extractors: each `add` answers with its
    // status, recorded here per tier (bounded); the extractors keep only the others.
    let eopts = || ExtractOptions {
        cancel: cancel.clone(),
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
    // Root-tier changes go into the merge as they are computed (the last one of a path
    // wins); kept and skipped entries are listed after the merged outcomes, in archive order.
    let mut merge: Sorter<MergeRec> = Sorter::new(&ws.dir, SORT_BUDGET, merge_order);
    let mut skipped: SpillVec<FileOutcome> = SpillVec::new(&ws.dir, spill::LIST_BUDGET);
    let mut spool = Spool::new();
    // Dedup links come back as regular files: compare them as such (canonical content,
    // manifest mode), so a second identical restore finds them unchanged.
    let dedup = match dedup_pairs(scan) {
        Ok(d) => d,
        Err(e) => {
            tiers.cleanup(&opts.export_dir);
            return Err(e);
        }
    };
    let canonicals: HashSet<&ArchivePath> = dedup.values().map(|(c, _)| c).collect();
    let mut canonical_sums: BTreeMap<ArchivePath, String> = BTreeMap::new();
    let mut kept: SpillVec<FileOutcome> = SpillVec::new(&ws.dir, spill::LIST_BUDGET);
    let with_links = scan.dedup_manifest.is_some();
    let mut logs = [
        TierLog::new(Tier::Normal, FileStatus::Restored, ws, with_links),
        TierLog::new(Tier::Staged, FileStatus::Staged, ws, with_links),
        TierLog::new(Tier::Export, FileStatus::Exported, ws, with_links),
    ];
    let log_of = |t: Tier| match t {
        Tier::Normal => 0,
        Tier::Staged => 1,
        Tier::Export => 2,
    };
    let mut seq: u64 = 0;
    // The canonical files' bytes, for the dedup repair after the commits (no third read).
    let mut canon_store = Canonicals::default();
    let canon_dir = if opts.dry_run {
        std::env::temp_dir()
    } else {
        ws.dir.clone()
    };
    let outcome = (|| -> Result<StreamSummary, RestoreError> {
        let mut stream = scan.reopen(backup, stream_opts)?;
        while let Some(h) = stream.next_entry()? {
            cancel.check()?;
            seq += 1;
            let path = match ArchivePath::parse(&h.raw_path) {
                Ok(Some(p)) => p,
                _ => {
                    // Unusable names and the root entry: the root tier's policy reports them.
                    if let Some(x) = tiers.root.as_mut() {
                        let st = x
                            .add(&h, stream.data(), Selection::Include)
                            .map_err(|e| stream.explain(e))?;
                        logs[0].record(x, st, &h, None, seq).map_err(&wio)?;
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
                skipped
                    .push(&FileOutcome {
                        path: system_path(&path),
                        tier: None,
                        status: FileStatus::Skipped,
                        change: None,
                        uid: h.uid,
                        gid: h.gid,
                        mode: h.mode,
                        reason: Some(reason),
                    })
                    .map_err(&wio)?;
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
            let mut change: Option<Change> = None;
            if to_root && let Some((canon, mode)) = dedup.get(&path) {
                change = Some(
                    match (canonical_sums.get(canon), reader.file_digest(&path)) {
                        (Some(want), Some((have, have_mode))) if *want == have => {
                            if have_mode == *mode {
                                Change::Unchanged
                            } else {
                                Change::Metadata
                            }
                        }
                        (_, None) if !reader.exists(&path) => Change::New,
                        _ => Change::Changed,
                    },
                );
            } else if to_root {
                change = Some(if needs_spool {
                    let mut r = spool
                        .reader()
                        .map_err(|e| RestoreError::io(&std::env::temp_dir(), e))?;
                    reader.compare(&path, &h, Some(&mut *r))
                } else {
                    reader.compare(&path, &h, None)
                });
            }
            if let Some(c) = change
                && !opts.dry_run
            {
                merge
                    .push(MergeRec {
                        prio: PRIO_CHANGE,
                        seq: u64::MAX - seq,
                        link: false,
                        change: Some(c),
                        out: FileOutcome {
                            path: system_path(&path),
                            tier: None,
                            status: FileStatus::Restored,
                            change: None,
                            uid: 0,
                            gid: 0,
                            mode: 0,
                            reason: None,
                        },
                    })
                    .map_err(&wio)?;
            }
            let unchanged = to_root && change == Some(Change::Unchanged);
            if unchanged && !opts.dry_run {
                // Already exactly as in the backup: leave it (and its folder's times) alone.
                kept.push(&FileOutcome {
                    path: system_path(&path),
                    tier: Some(Tier::Normal),
                    status: FileStatus::Restored,
                    change: Some(Change::Unchanged),
                    uid: h.uid,
                    gid: h.gid,
                    mode: h.mode,
                    reason: None,
                })
                .map_err(&wio)?;
            }
            // The export copy first: a file both exported and staged (an applier reads
            // the exported category) is then linked into the stage, not written twice.
            let mut ordered = [None; 3];
            for tier in &route {
                ordered[match tier {
                    Tier::Normal => 0,
                    Tier::Export => 1,
                    Tier::Staged => 2,
                }] = Some(*tier);
            }
            let mut exported = false;
            for tier in ordered.iter().flatten() {
                let (x, link_from) = match tier {
                    Tier::Normal if unchanged => (None, None),
                    Tier::Normal => (tiers.root.as_mut(), None),
                    Tier::Export => (tiers.export.as_mut(), None),
                    Tier::Staged => (
                        tiers.stage.as_mut(),
                        tiers
                            .export
                            .as_ref()
                            .filter(|_| exported && h.kind == EntryKind::File),
                    ),
                };
                let Some(x) = x else { continue };
                let st = if needs_spool {
                    let mut r = spool
                        .reader()
                        .map_err(|e| RestoreError::io(&std::env::temp_dir(), e))?;
                    match link_from {
                        Some(src) => x.add_linked(&h, &mut *r, Selection::Include, src),
                        None => x.add(&h, &mut *r, Selection::Include),
                    }
                    .map_err(|e| stream.explain(e))?
                } else {
                    x.add(&h, stream.data(), Selection::Include)
                        .map_err(|e| stream.explain(e))?
                };
                if *tier == Tier::Export {
                    exported = true;
                }
                logs[log_of(*tier)]
                    .record(x, st, &h, Some(&path), seq)
                    .map_err(&wio)?;
            }
            if stage_copy {
                route.retain(|t| *t != Tier::Staged);
            }
            if opts.dry_run {
                record_dry_run(report, &path, &h, &route, change).map_err(&wio)?;
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
    let [mut root_log, mut stage_log, mut export_log] = logs;
    if let Some(x) = tiers.stage.take() {
        let r = match x.commit() {
            Ok(r) => r,
            Err(e) => {
                tiers.cleanup(&opts.export_dir);
                return Err(e.into());
            }
        };
        // Files staged only for an applier reading an exported category are shown as
        // exported (their export copy), not as staged. A dry run lists no stage outcome.
        let keep = |f: &FileOutcome| {
            !opts.dry_run
                && f.path
                    .strip_prefix('/')
                    .and_then(|p| ArchivePath::from_user(p).ok())
                    .is_none_or(|p| !plan.staged_only_as_export(&p))
        };
        if let Err(e) = stage_log.finish(&r, &mut merge, &keep) {
            tiers.cleanup(&opts.export_dir);
            return Err(wio(e));
        }
        if let Some(d) = &tiers.stage_dir {
            dedup_repair(&canon_store, scan, d, &stage_log.links(), cancel, report)?;
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
        append(&mut report.files, &skipped).map_err(&wio)?;
        emit_files(&report.files, first_file, ws).map_err(&wio)?;
        return Ok(());
    }
    report.stage_dir = tiers.stage_dir.take();
    // Then the root and the export folder.
    cancel.set_activity("committing");
    if let Some(x) = tiers.root.take() {
        mark(opts, report, Phase::Committing);
        let r = x.commit()?;
        mark(opts, report, Phase::Committed);
        root_log.finish(&r, &mut merge, &|_| true).map_err(&wio)?;
        // Emitted after the dedup repair, which drops those it made moot.
        report.warnings.extend(r.warnings.iter().cloned());
        let repaired = dedup_repair(
            &canon_store,
            scan,
            &host.root,
            &root_log.links(),
            cancel,
            report,
        );
        for w in r.warnings.iter().filter(|w| report.warnings.contains(w)) {
            crate::events::warning(w);
        }
        repaired?;
    }
    if let Some(x) = tiers.export.take() {
        let r = x.commit()?;
        export_log.finish(&r, &mut merge, &|_| true).map_err(&wio)?;
        dedup_repair(
            &canon_store,
            scan,
            &opts.export_dir,
            &export_log.links(),
            cancel,
            report,
        )?;
        report.export_dir = Some(opts.export_dir.clone());
    }
    push_merged(merge, &mut report.files).map_err(&wio)?;
    append(&mut report.files, &kept).map_err(&wio)?;
    append(&mut report.files, &skipped).map_err(&wio)?;
    emit_files(&report.files, first_file, ws).map_err(&wio)?;
    let restored = report.files.count(FileStatus::Restored);
    let failed = report.files.count(FileStatus::Failed) + report.files.count(FileStatus::Refused);
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

fn append(files: &mut FileList, list: &SpillVec<FileOutcome>) -> std::io::Result<()> {
    for f in list.iter() {
        files.push(f?)?;
    }
    Ok(())
}

/// The restore log's order of outcomes: by status (extracted, exported, staged, skipped,
/// refused, failed), then by path.
fn log_order(a: &FileOutcome, b: &FileOutcome) -> std::cmp::Ordering {
    let rank = |s: FileStatus| match s {
        FileStatus::Restored | FileStatus::WouldRestore => 0,
        FileStatus::Exported => 1,
        FileStatus::Staged => 2,
        FileStatus::Skipped => 3,
        FileStatus::Refused => 4,
        FileStatus::Failed => 5,
    };
    (rank(a.status), a.path.as_bytes()).cmp(&(rank(b.status), b.path.as_bytes()))
}

/// One `proxsave::file` event per outcome from the `first`th on, grouped by status in the
/// restore log's order (extracted, exported, staged, skipped, refused, failed), paths sorted
/// within a group (a bounded sort in the work directory).
fn emit_files(files: &FileList, first: u64, ws: &Workspace) -> std::io::Result<()> {
    if !tracing::enabled!(target: crate::events::FILE, tracing::Level::DEBUG) {
        return Ok(());
    }
    let mut sorter: Sorter<FileOutcome> = Sorter::new(&ws.dir, SORT_BUDGET, log_order);
    for f in files
        .try_iter()
        .skip(usize::try_from(first).unwrap_or(usize::MAX))
    {
        sorter.push(f?)?;
    }
    for f in sorter.finish()? {
        crate::events::file(&f?);
    }
    Ok(())
}

fn record_dry_run(
    report: &mut Report,
    path: &ArchivePath,
    h: &EntryHeader,
    route: &[Tier],
    change: Option<Change>,
) -> std::io::Result<()> {
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
        })?;
    }
    Ok(())
}

fn sha256_hex(r: &mut dyn std::io::Read) -> String {
    proxsave_archive::checksum::sha256_of(r)
        .map(|(h, _)| h)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(path: String, tier: Tier, status: FileStatus, i: u64) -> FileOutcome {
        FileOutcome {
            path,
            tier: Some(tier),
            status,
            change: None,
            uid: i,
            gid: i + 1,
            mode: 0o600,
            reason: (status != FileStatus::Restored).then(|| format!("why {i}")),
        }
    }

    /// The merge the report did with a map before it was bounded: stage, root, the root's
    /// refusals without a usable name (replacing), export; the last change of a path.
    fn reference(
        stage: &[FileOutcome],
        root: &[FileOutcome],
        overrides: &[FileOutcome],
        export: &[FileOutcome],
        changes: &[(String, Change)],
    ) -> Vec<FileOutcome> {
        let mut merged: BTreeMap<String, (FileOutcome, u8)> = BTreeMap::new();
        for (list, rank) in [(stage, 1u8), (root, 0)] {
            for f in list {
                match merged.get(&f.path) {
                    Some((_, r)) if *r <= rank => {}
                    _ => {
                        merged.insert(f.path.clone(), (f.clone(), rank));
                    }
                }
            }
        }
        for f in overrides {
            merged.insert(f.path.clone(), (f.clone(), 0));
        }
        for f in export {
            if !merged.contains_key(&f.path) {
                merged.insert(f.path.clone(), (f.clone(), 2));
            }
        }
        let last: BTreeMap<&String, Change> = changes.iter().map(|(p, c)| (p, *c)).collect();
        merged
            .into_values()
            .map(|(mut f, _)| {
                if f.status == FileStatus::Restored {
                    f.change = last.get(&f.path).copied();
                }
                f
            })
            .collect()
    }

    #[test]
    fn the_bounded_merge_equals_the_map_merge_also_when_spilled() {
        let path = |i: u64| format!("/etc/d{}/f{}", (i * 31) % 7, (i * 17) % 53);
        let statuses = [
            FileStatus::Restored,
            FileStatus::Refused,
            FileStatus::Failed,
        ];
        let mut stage = Vec::new();
        let mut root = Vec::new();
        let mut overrides = Vec::new();
        let mut export = Vec::new();
        let mut changes = Vec::new();
        let mut recs = Vec::new();
        for i in 0..600u64 {
            let st = statuses[(i % 3) as usize];
            match i % 5 {
                0 => {
                    let st = if st == FileStatus::Restored {
                        FileStatus::Staged
                    } else {
                        st
                    };
                    let f = outcome(path(i), Tier::Staged, st, i);
                    stage.push(f.clone());
                    recs.push((tier_prio(Tier::Staged), i, None, f));
                }
                1 | 2 => {
                    let f = outcome(path(i), Tier::Normal, st, i);
                    root.push(f.clone());
                    recs.push((tier_prio(Tier::Normal), i, None, f));
                }
                3 => {
                    let st = if st == FileStatus::Restored {
                        FileStatus::Exported
                    } else {
                        st
                    };
                    let f = outcome(path(i), Tier::Export, st, i);
                    export.push(f.clone());
                    recs.push((tier_prio(Tier::Export), i, None, f));
                }
                _ if i % 50 == 4 => {
                    // A refusal without a usable name, sometimes named like a path.
                    let name = if i % 100 == 4 {
                        path(i)
                    } else {
                        format!("../x{}", i % 3)
                    };
                    let f = outcome(name, Tier::Normal, FileStatus::Refused, i);
                    overrides.push(f.clone());
                    recs.push((PRIO_OVERRIDE, u64::MAX - i, None, f));
                }
                _ => {
                    let c = [Change::New, Change::Changed, Change::Metadata][(i % 3) as usize];
                    changes.push((path(i), c));
                    let f = outcome(path(i), Tier::Normal, FileStatus::Restored, 0);
                    recs.push((PRIO_CHANGE, u64::MAX - i, Some(c), f));
                }
            }
        }
        let want = reference(&stage, &root, &overrides, &export, &changes);
        for budget in [1 << 30, 300] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut merge: Sorter<MergeRec> = Sorter::new(dir.path(), budget, merge_order);
            for (prio, seq, change, out) in &recs {
                merge
                    .push(MergeRec {
                        prio: *prio,
                        seq: *seq,
                        link: false,
                        change: *change,
                        out: out.clone(),
                    })
                    .expect("push");
            }
            assert_eq!(merge.is_spilled(), budget == 300);
            let mut files = FileList::in_dir(dir.path(), 64);
            push_merged(merge, &mut files).expect("merge");
            assert_eq!(files.iter().collect::<Vec<_>>(), want, "budget {budget}");
        }
    }
}
