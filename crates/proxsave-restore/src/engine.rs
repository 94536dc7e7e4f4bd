//! Running a restore: the analysis read, then (after the plan is confirmed) safety backup,
//! service stop, one extraction read feeding the root, the export folder and the stage
//! folder, commit, dedup repair, appliers, service restart, report.

use std::collections::{BTreeMap, HashSet};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use proxsave_archive::backup::Backup;
use proxsave_archive::dirfd;
use proxsave_archive::entry::{EntryHeader, EntryKind};
use proxsave_archive::extract::{ExtractOptions, ExtractReport, Extractor, Selection, Status};
use proxsave_archive::ops::Spool;
use proxsave_archive::path::ArchivePath;
use proxsave_archive::progress::CancelToken;
use proxsave_archive::read::{self, StreamOptions, StreamSummary};
use proxsave_categories::Analyzer;
use rustix::io::Errno;

use crate::applier::{ApplyContext, appliers};
use crate::compare::{Change, RootReader};
use crate::error::RestoreError;
use crate::host::Host;
use crate::journal::Journal;
use crate::plan::{Plan, Tier};
use crate::prompt::{Level, Prompter, Question};
use crate::report::{FileOutcome, FileStatus, Interruption, Outcome, Report, system_path};
use crate::runstate::{Phase, RunState, SpaceNeed};
use crate::safety;
use crate::services::ServiceGuard;
use crate::workspace::Workspace;

/// Where the dedup manifest lives inside archives.
pub const DEDUP_MANIFEST: &str = "var/lib/proxsave-info/dedup_manifest.json";
/// Largest dedup manifest read.
pub const DEDUP_MANIFEST_LIMIT: u64 = 16 << 20;

/// One entry seen by the analysis read.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Normalised path.
    pub path: ArchivePath,
    /// Type.
    pub kind: EntryKind,
    /// Link text of symlinks (needed to repair dedup links without another read).
    pub link: Option<Vec<u8>>,
    /// Data size of regular files (for the free-space check).
    pub size: u64,
}

/// The result of the analysis read (which also verified the whole backup).
pub struct Scan {
    /// Categories, backup type, cluster mode, host name.
    pub analysis: proxsave_categories::Analysis,
    /// Every usable entry path, in archive order.
    pub entries: Vec<Seen>,
    /// The dedup manifest's bytes, if the archive has one.
    pub dedup_manifest: Option<Vec<u8>>,
    /// What the read proved (checksum etc.).
    pub stream: StreamSummary,
}

/// Reads the whole backup once: verifies it, finds the available categories and the
/// backup's type, and remembers the entry list.
///
/// # Errors
/// Any read-path error.
pub fn scan(
    backup: &Backup,
    opts: &StreamOptions<'_>,
    cancel: &CancelToken,
) -> Result<Scan, RestoreError> {
    let mut stream = read::open_stream(backup, opts)?;
    let mut analyzer = Analyzer::new();
    let mut entries = Vec::new();
    let mut dedup_manifest = None;
    while let Some(h) = stream.next_entry()? {
        cancel.check()?;
        let Ok(Some(path)) = ArchivePath::parse(&h.raw_path) else {
            continue;
        };
        proxsave_archive::checkpoint::checkpoint("scan", &path);
        analyzer.observe(&path);
        let wants_meta = analyzer.wants_content(&path, h.kind, h.size);
        let wants_dedup = h.kind == EntryKind::File
            && path.as_bytes() == DEDUP_MANIFEST.as_bytes()
            && h.size <= DEDUP_MANIFEST_LIMIT;
        if wants_meta || wants_dedup {
            let mut buf = Vec::with_capacity(h.size as usize);
            std::io::Read::read_to_end(stream.data(), &mut buf)
                .map_err(|e| stream.explain(proxsave_archive::Error::Read(e)))?;
            if wants_meta {
                analyzer.observe_metadata(&buf);
            }
            if wants_dedup {
                dedup_manifest = Some(buf);
            }
        }
        let link = (h.kind == EntryKind::Symlink)
            .then(|| h.link_target.clone())
            .flatten();
        entries.push(Seen {
            path,
            kind: h.kind,
            link,
            size: if h.kind == EntryKind::File { h.size } else { 0 },
        });
    }
    let summary = stream.finish()?;
    let analysis = analyzer.finish(&backup.manifest);
    Ok(Scan {
        analysis,
        entries,
        dedup_manifest,
        stream: summary,
    })
}

/// Settings of [`execute`].
pub struct ExecuteOptions {
    /// The export folder (created when something is exported).
    pub export_dir: PathBuf,
    /// Keep the stage folder even when every staged category was applied.
    pub keep_stage: bool,
    /// Write nothing; report what would change.
    pub dry_run: bool,
    /// Set on Ctrl+C.
    pub cancel: CancelToken,
    /// The run's state file (crash recovery); `None` writes none (dry runs, embedders that
    /// do their own bookkeeping).
    pub state: Option<std::sync::Arc<RunState>>,
}

/// Moves the run's state file to `phase`; a failure is a warning once files are in place.
fn mark(opts: &ExecuteOptions, report: &mut Report, phase: Phase) {
    if let Some(st) = &opts.state
        && let Err(e) = st.phase(phase)
    {
        report
            .warnings
            .push(format!("cannot record the run's phase: {e}"));
    }
}

/// Block size the free-space estimate rounds file sizes to.
const SPACE_BLOCK: u64 = 4096;

/// What the run needs on each filesystem: the root tier's files (staged beside the old
/// ones until the commit, dedup duplicates materialised), the export folder's, the stage
/// folder's, the safety backup and the log.
pub fn space_needs(
    plan: &Plan,
    scan: &Scan,
    root: &Path,
    targets: &[ArchivePath],
    work_dir: &Path,
    export_dir: &Path,
) -> Vec<SpaceNeed> {
    use crate::runstate::blocks;
    let dedup = dedup_pairs(scan);
    let sizes: BTreeMap<&ArchivePath, u64> = scan
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .map(|e| (&e.path, e.size))
        .collect();
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
    for e in &scan.entries {
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
        crate::runstate::safety_backup_size(root, targets)
    };
    let listing: u64 = targets.iter().map(|t| t.as_bytes().len() as u64 + 1).sum();
    let log = 64 * 1024 + 256 * scan.entries.len() as u64;
    vec![
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
    ]
}

/// Why the target root refuses an entry of the root tier, whatever the root's path:
/// `/etc/pve` is pmxcfs (never written by extraction) and some PBS files are only ever
/// applied through the API.
pub fn system_guard(path: &ArchivePath) -> Option<&'static str> {
    let p = path.as_bytes();
    let under = |d: &[u8]| p == d || (p.starts_with(d) && p.get(d.len()) == Some(&b'/'));
    if under(b"etc/pve") {
        return Some("writes to /etc/pve are prohibited (pmxcfs); see the export folder");
    }
    if matches!(
        p,
        b"etc/proxmox-backup/domains.cfg"
            | b"etc/proxmox-backup/user.cfg"
            | b"etc/proxmox-backup/acl.cfg"
            | b"var/lib/proxmox-backup/.clusterlock"
    ) || under(b"var/lib/proxmox-backup/lock")
    {
        return Some("PBS runtime or access file; never written raw");
    }
    None
}

/// The root-tier paths a plan writes (after guards), sorted.
pub fn root_targets(plan: &Plan, scan: &Scan) -> Vec<ArchivePath> {
    let mut out: Vec<ArchivePath> = scan
        .entries
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EntryKind::File | EntryKind::Directory | EntryKind::Symlink | EntryKind::Hardlink
            )
        })
        .filter(|e| plan.route(&e.path).contains(&Tier::Normal))
        .filter(|e| system_guard(&e.path).is_none())
        .map(|e| e.path.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

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

/// What a restore works on: the backup and how to read it, the host and the work directory.
pub struct Target<'a> {
    /// The backup.
    pub backup: &'a Backup,
    /// Key, progress and threading for every read of it.
    pub stream: &'a StreamOptions<'a>,
    /// The host restored into.
    pub host: &'a Host,
    /// The private work directory.
    pub workspace: &'a Workspace,
}

/// Runs the confirmed plan (or, with `dry_run`, only compares). See the module docs.
///
/// On any failure the returned report says what was done (safety backup, services
/// restarted) and carries the error.
pub fn execute(
    target: &Target<'_>,
    scan: &Scan,
    plan: &Plan,
    prompter: &mut dyn Prompter,
    opts: &ExecuteOptions,
) -> (Report, Option<RestoreError>) {
    let Target {
        backup,
        stream: stream_opts,
        host,
        workspace: ws,
    } = *target;
    let started = Instant::now();
    let mut report = Report {
        outcome: Outcome::Success,
        started: host.clock.now().to_rfc3339(),
        duration_secs: 0.0,
        root: host.root.clone(),
        plan: plan.clone(),
        safety_backup: None,
        rollback_command: None,
        export_dir: None,
        stage_dir: None,
        staged_not_applied: Vec::new(),
        applied: Vec::new(),
        services: Vec::new(),
        deferred: Vec::new(),
        files: Vec::new(),
        counts: Default::default(),
        warnings: plan.warnings.clone(),
        errors: Vec::new(),
        log: None,
        error: None,
        sha256: Some(scan.stream.sha256.clone()),
        interrupted: None,
    };
    let result = run(
        backup,
        stream_opts,
        scan,
        plan,
        host,
        ws,
        prompter,
        opts,
        &mut report,
    );
    // A cancellation noticed by nothing (e.g. during the commit or the restarts) still ends
    // the run as interrupted.
    let result = match result {
        Ok(()) if opts.cancel.is_cancelled() => Err(RestoreError::Interrupted),
        r => r,
    };
    if opts.cancel.is_cancelled() {
        report.interrupted = Some(Interruption::from_token(&opts.cancel, &report.services));
    }
    report.duration_secs = started.elapsed().as_secs_f64();
    report.deferred = host.deferred();
    report.recount(scan.entries.len() as u64);
    // --- Outcome. A cancellation observed at any point, even during the commit or after the
    // last step, makes the run aborted (130): the report then lists the state it left.
    let cancelled = opts.cancel.is_cancelled();
    let result = match result {
        Ok(()) if cancelled => Err(RestoreError::Interrupted),
        other => other,
    };
    if !opts.dry_run {
        report.errors = report.problems();
    }
    let err = match result {
        Ok(()) => {
            report.outcome = if opts.dry_run {
                Outcome::DryRun
            } else {
                report.completed_outcome()
            };
            None
        }
        Err(e) => {
            report.outcome = if e.is_abort() || cancelled {
                Outcome::Aborted
            } else {
                Outcome::Failed
            };
            report.error = Some(match &report.interrupted {
                Some(i) => i.to_string(),
                None => e.to_string(),
            });
            Some(e)
        }
    };
    // --- End of outcome.
    if !opts.dry_run {
        let log = ws.file_path("restore_", ".log");
        if let Err(e) = report.write_log(&log) {
            report.warnings.push(format!(
                "cannot write the restore log {}: {e}",
                log.display()
            ));
        }
    }
    (report, err)
}

#[allow(clippy::too_many_arguments)]
fn run(
    backup: &Backup,
    stream_opts: &StreamOptions<'_>,
    scan: &Scan,
    plan: &Plan,
    host: &Host,
    ws: &Workspace,
    prompter: &mut dyn Prompter,
    opts: &ExecuteOptions,
    report: &mut Report,
) -> Result<(), RestoreError> {
    let cancel = &opts.cancel;
    let targets = root_targets(plan, scan);
    let exports = plan.in_tier(Tier::Export).next().is_some()
        || scan
            .entries
            .iter()
            .any(|e| plan.route(&e.path).contains(&Tier::Export));
    let stages = scan
        .entries
        .iter()
        .any(|e| plan.route(&e.path).contains(&Tier::Staged));

    // 0. Room for everything, measured before anything is written.
    if !opts.dry_run {
        crate::runstate::check_space(&space_needs(
            plan,
            scan,
            &host.root,
            &targets,
            &ws.dir,
            &opts.export_dir,
        ))?;
        if let Some(st) = &opts.state {
            st.record_targets(&targets)?;
            st.phase(Phase::SafetyBackup)?;
        }
    }

    // 1. Safety backup of everything the root tier will touch.
    cancel.set_activity("creating the safety backup");
    if !opts.dry_run && !targets.is_empty() {
        prompter.say(
            Level::Info,
            "Creating safety backup of the current configuration...",
        );
        let export_entries: Vec<ArchivePath> = if exports {
            scan.entries
                .iter()
                .filter(|e| plan.route(&e.path).contains(&Tier::Export))
                .map(|e| e.path.clone())
                .collect()
        } else {
            Vec::new()
        };
        let export = exports.then(|| safety::ExportTargets {
            dir: &opts.export_dir,
            entries: &export_entries,
        });
        match safety::create(&host.root, &targets, export.as_ref(), ws) {
            Ok(sb) => {
                let cmd = safety::rollback_command(&sb.path);
                prompter.say(
                    Level::Info,
                    &format!(
                        "Safety backup created: {} ({} entries, {:.2} MB)",
                        sb.path.display(),
                        sb.entries,
                        sb.bytes as f64 / 1_048_576.0
                    ),
                );
                prompter.say(
                    Level::Info,
                    &format!(
                        "You can restore from this backup if needed using:\n  {cmd}\n  (or: tar -xzf {} -C {}, which does not remove files the restore adds)",
                        sb.path.display(),
                        host.root.display()
                    ),
                );
                report.rollback_command = Some(cmd);
                if let Some(st) = &opts.state {
                    st.update(|d| d.safety_backup = Some(sb.path.clone()))?;
                }
                report.safety_backup = Some(sb);
            }
            Err(e) => {
                prompter.say(
                    Level::Warning,
                    &format!("Failed to create safety backup: {e}"),
                );
                let go = prompter.confirm(&Question {
                    id: "continue_without_safety_backup",
                    flag: None,
                    text: "Continue without safety backup?".into(),
                    default: false,
                    strict_yes: true,
                    timeout: None,
                })?;
                if !go {
                    return Err(RestoreError::SafetyBackup(e));
                }
                report.warnings.push(format!("no safety backup: {e}"));
            }
        }
    }

    // 2. Stop services (restarted by the guard on every exit path; each unit written to the
    // services journal before its stop request, for `proxsave restore --recover`).
    cancel.set_activity("stopping services");
    let mut guard = ServiceGuard::new(host, cancel).with_journal(Journal::new(
        &ws.dir,
        &host.root,
        report.started.clone(),
    ));
    if !opts.dry_run {
        mark(opts, report, Phase::StoppingServices);
    }
    if !opts.dry_run && !plan.services_to_stop.is_empty() {
        if plan.needs_cluster_restore {
            prompter.say(
                Level::Info,
                "Preparing system for cluster database restore: stopping PVE services and unmounting /etc/pve",
            );
        }
        for unit in &plan.services_to_stop {
            if cancel.is_cancelled() {
                report.services = guard.restore();
                return Err(RestoreError::Interrupted);
            }
            prompter.say(Level::Info, &format!("Stopping {unit}..."));
            if let Err(why) = guard.stop(unit, cancel) {
                if cancel.is_cancelled() {
                    report.services = guard.restore();
                    return Err(RestoreError::Interrupted);
                }
                let is_pbs = crate::plan::PBS_SERVICES.contains(unit);
                if is_pbs {
                    prompter.say(
                        Level::Warning,
                        &format!("Unable to stop PBS services automatically: {unit}: {why}"),
                    );
                    let go = prompter.confirm(&Question {
                        id: "continue_with_pbs_services_running",
                        flag: None,
                        text: "Continue restore with PBS services still running?".into(),
                        default: false,
                        strict_yes: false,
                        timeout: None,
                    });
                    match go {
                        Ok(true) => {
                            report
                                .warnings
                                .push(format!("{unit} could not be stopped: {why}"));
                            continue;
                        }
                        Ok(false) => {
                            report.services = guard.restore();
                            return Err(RestoreError::ServiceStop {
                                unit: unit.to_string(),
                                detail: why,
                            });
                        }
                        Err(e) => {
                            report.services = guard.restore();
                            return Err(e.into());
                        }
                    }
                }
                report.services = guard.restore();
                return Err(RestoreError::ServiceStop {
                    unit: unit.to_string(),
                    detail: why,
                });
            }
        }
        for m in &plan.unmounts {
            let path = host.root.join(m.trim_start_matches('/'));
            if let Err(why) = guard.unmount(path, cancel) {
                report.services = guard.restore();
                if cancel.is_cancelled() {
                    return Err(RestoreError::Interrupted);
                }
                return Err(RestoreError::ServiceStop {
                    unit: format!("umount {m}"),
                    detail: why,
                });
            }
        }
    }

    // 3. One read of the archive feeding every tier.
    let result = extract_tiers(
        backup,
        stream_opts,
        scan,
        plan,
        host,
        ws,
        opts,
        exports,
        stages,
        report,
        prompter,
    );
    if let Err(e) = result {
        report.services = guard.restore();
        return Err(e);
    }

    // 4. Appliers for staged categories.
    cancel.set_activity("applying staged categories");
    if !opts.dry_run {
        mark(opts, report, Phase::Applying);
        let staged: Vec<&'static str> = plan.in_tier(Tier::Staged).map(|c| c.id).collect();
        let mut handled: HashSet<&str> = HashSet::new();
        if let Some(stage_dir) = report.stage_dir.clone() {
            for applier in appliers() {
                if !applier.categories().iter().any(|c| staged.contains(c)) {
                    continue;
                }
                if cancel.is_cancelled() {
                    report.services = guard.restore();
                    return Err(RestoreError::Interrupted);
                }
                let mut ctx = ApplyContext {
                    plan,
                    stage: &stage_dir,
                    host,
                    prompter: &mut *prompter,
                    cancel,
                };
                let done = applier.apply(&mut ctx);
                for a in &done {
                    handled.insert(
                        staged
                            .iter()
                            .copied()
                            .find(|s| *s == a.category)
                            .unwrap_or(""),
                    );
                }
                report.applied.extend(done);
            }
        }
        report.staged_not_applied = staged
            .iter()
            .filter(|c| !handled.contains(**c))
            .filter(|c| {
                scan.entries
                    .iter()
                    .any(|e| proxsave_categories::by_id(c).is_some_and(|cat| cat.matches(&e.path)))
            })
            .map(|c| c.to_string())
            .collect();
        let keep = opts.keep_stage || !report.staged_not_applied.is_empty();
        if !keep && let Some(d) = report.stage_dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    // 5. Restart what was stopped.
    if !opts.dry_run {
        mark(opts, report, Phase::Restarting);
    }
    report.services = guard.restore();
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn extract_tiers(
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
) -> Result<(), RestoreError> {
    let cancel = &opts.cancel;
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
                st.update(|d| {
                    d.export_dir = Some(opts.export_dir.clone());
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
                st.update(|d| d.work_stage = Some(dir.clone()))?;
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
    let mut changes: BTreeMap<String, Change> = BTreeMap::new();
    let mut skipped: Vec<FileOutcome> = Vec::new();
    let mut spool = Spool::new();
    // Dedup links come back as regular files: compare them as such (canonical content,
    // manifest mode), so a second identical restore finds them unchanged.
    let dedup = dedup_pairs(scan);
    let canonicals: HashSet<&ArchivePath> = dedup.values().map(|(c, _)| c).collect();
    let mut canonical_sums: BTreeMap<ArchivePath, String> = BTreeMap::new();
    let mut kept: Vec<FileOutcome> = Vec::new();
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
            let to_root = route.contains(&Tier::Normal);
            let needs_spool = h.kind == EntryKind::File && (to_root || route.len() > 1);
            if needs_spool {
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
    if opts.dry_run {
        report.files.extend(skipped);
        return Ok(());
    }
    // Verified: commit every tier.
    cancel.set_activity("committing");
    let mut merged: BTreeMap<String, (FileOutcome, u8)> = BTreeMap::new();
    if let Some(x) = tiers.root.take() {
        mark(opts, report, Phase::Committing);
        let r = x.commit()?;
        mark(opts, report, Phase::Committed);
        outcome_from(&r, Tier::Normal, FileStatus::Restored, &mut merged);
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
        dedup_repair(backup, stream_opts, scan, &host.root, &r, cancel, report)?;
    }
    if let Some(x) = tiers.stage.take() {
        let r = x.commit()?;
        outcome_from(&r, Tier::Staged, FileStatus::Staged, &mut merged);
        if let Some(d) = &tiers.stage_dir {
            dedup_repair(backup, stream_opts, scan, d, &r, cancel, report)?;
        }
        report.stage_dir = tiers.stage_dir.take();
    }
    if let Some(x) = tiers.export.take() {
        let r = x.commit()?;
        outcome_from(&r, Tier::Export, FileStatus::Exported, &mut merged);
        dedup_repair(
            backup,
            stream_opts,
            scan,
            &opts.export_dir,
            &r,
            cancel,
            report,
        )?;
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

/// Dedup duplicates of the scan: duplicate path → (canonical path, recorded mode).
fn dedup_pairs(scan: &Scan) -> BTreeMap<ArchivePath, (ArchivePath, u32)> {
    let mut out = BTreeMap::new();
    let Some(manifest) = &scan.dedup_manifest else {
        return out;
    };
    let Ok(records) = serde_json::from_slice::<Vec<DedupRecord>>(manifest) else {
        return out;
    };
    let links: BTreeMap<&ArchivePath, &Vec<u8>> = scan
        .entries
        .iter()
        .filter_map(|e| e.link.as_ref().map(|l| (&e.path, l)))
        .collect();
    for rec in records {
        let Ok(dup) = ArchivePath::from_user(&rec.path) else {
            continue;
        };
        let Some(text) = links.get(&dup) else {
            continue;
        };
        let text = String::from_utf8_lossy(text);
        let base = dup.parent().map(|p| p.to_string()).unwrap_or_default();
        let joined = if base.is_empty() {
            text.into_owned()
        } else {
            format!("{base}/{text}")
        };
        if let Some(canon) = normalize_lexically(&joined) {
            out.insert(dup, (canon, rec.mode.unwrap_or(0o600)));
        }
    }
    out
}

#[derive(serde::Deserialize)]
struct DedupRecord {
    path: String,
    #[serde(default)]
    mode: Option<u32>,
    #[serde(default)]
    uid: Option<u32>,
    #[serde(default)]
    gid: Option<u32>,
}

/// Turns the dedup symlinks written in this run back into regular files with the canonical
/// file's bytes *from the archive* (never from the live target), as upstream restore does.
fn dedup_repair(
    backup: &Backup,
    stream_opts: &StreamOptions<'_>,
    scan: &Scan,
    root: &Path,
    written: &ExtractReport,
    cancel: &CancelToken,
    report: &mut Report,
) -> Result<(), RestoreError> {
    let Some(manifest) = &scan.dedup_manifest else {
        return Ok(());
    };
    let records: Vec<DedupRecord> = match serde_json::from_slice(manifest) {
        Ok(r) => r,
        Err(e) => {
            report.warnings.push(format!(
                "dedup manifest unreadable ({e}); duplicate files stay symbolic links"
            ));
            return Ok(());
        }
    };
    let written_links: HashSet<String> = written
        .entries
        .iter()
        .filter(|e| e.status == Status::Written && e.kind == EntryKind::Symlink)
        .filter_map(|e| e.path.clone())
        .collect();
    // duplicate path -> (canonical path, record)
    let mut wanted: BTreeMap<ArchivePath, Vec<(ArchivePath, &DedupRecord)>> = BTreeMap::new();
    let links: BTreeMap<ArchivePath, String> = scan
        .entries
        .iter()
        .filter(|e| written_links.contains(&e.path.to_string()))
        .filter_map(|e| {
            e.link
                .as_ref()
                .map(|l| (e.path.clone(), String::from_utf8_lossy(l).into_owned()))
        })
        .collect();
    for rec in &records {
        let Ok(dup) = ArchivePath::from_user(&rec.path) else {
            continue;
        };
        if !written_links.contains(&dup.to_string()) {
            continue;
        }
        let Some(text) = links.get(&dup) else {
            continue;
        };
        let base = dup.parent().map(|p| p.to_string()).unwrap_or_default();
        let joined = if base.is_empty() {
            text.clone()
        } else {
            format!("{base}/{text}")
        };
        let Some(canon) = normalize_lexically(&joined) else {
            continue;
        };
        wanted.entry(canon).or_default().push((dup, rec));
    }
    if wanted.is_empty() {
        return Ok(());
    }
    // Second read: only the canonical files' bytes.
    let mut stream = read::open_stream(backup, stream_opts)?;
    let root_fd = rustix::fs::open(
        root,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| RestoreError::io(root, e.into()))?;
    let mut fixed = 0u64;
    // The files are committed: an interruption stops the repair (the remaining duplicates are
    // reported) but does not lose the report of what was written; the caller sees the cancel.
    let mut interrupted = false;
    while let Some(h) = stream.next_entry()? {
        if cancel.is_cancelled() {
            interrupted = true;
            break;
        }
        let Ok(Some(path)) = ArchivePath::parse(&h.raw_path) else {
            continue;
        };
        let Some(dups) = wanted.remove(&path) else {
            continue;
        };
        if h.kind != EntryKind::File {
            continue;
        }
        let mut data = Vec::new();
        std::io::Read::read_to_end(stream.data(), &mut data)
            .map_err(|e| stream.explain(proxsave_archive::Error::Read(e)))?;
        for (dup, rec) in dups {
            match crate::dedup::replace_link_with_file(
                &root_fd,
                &dup,
                &data,
                rec.mode.unwrap_or(0o600),
                rec.uid,
                rec.gid,
                h.mtime,
            ) {
                Ok(()) => fixed += 1,
                Err(e) => report
                    .warnings
                    .push(format!("/{dup}: duplicate not materialised: {e}")),
            }
        }
    }
    if !interrupted {
        stream.finish()?;
    }
    for (canon, dups) in wanted {
        for (dup, _) in dups {
            report.warnings.push(if interrupted {
                format!("/{dup}: duplicate of /{canon}, not materialised (interrupted); left as a symbolic link")
            } else {
                format!("/{dup}: duplicate of /{canon}, which is not in the archive; left as a symbolic link")
            });
        }
    }
    if fixed > 0 {
        report
            .warnings
            .retain(|w| !w.contains("duplicate not materialised"));
    }
    Ok(())
}

fn normalize_lexically(p: &str) -> Option<ArchivePath> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    ArchivePath::from_user(&parts.join("/")).ok()
}
