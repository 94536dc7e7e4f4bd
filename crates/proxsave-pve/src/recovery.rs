//! RECOVERY: putting the backup's cluster database (`/var/lib/pve-cluster/config.db`) back.
//!
//! The engine stops the PVE services (the [`crate::domain`] step: `pve-cluster` first, then
//! `pvedaemon`, `pveproxy`, `pvestatd`, then `umount /etc/pve`), writes the root, and starts
//! them again. The applier [`ClusterDb`] (category `pve_cluster`, also when it is restored
//! straight into the root) adds what makes that safe on a cluster node:
//!
//! 1. **plan** (before any service stops): the backup's `config.db` (staged as a copy, see
//!    [`crate::domain`]'s `stage_copy`) is opened with the SQLite library and checked with
//!    `PRAGMA integrity_check`; it must hold pmxcfs' `tree` table. A database that fails is
//!    refused with SQLite's message: the run ends (exit 1) before anything is stopped or
//!    written. The live `config.db-wal` / `config.db-shm` are listed as files, so the safety
//!    backup keeps them.
//! 2. **apply** (root written, services still stopped): a stale `config.db-wal` /
//!    `config.db-shm` (they belong to the *old* database; pmxcfs would replay that log into
//!    the restored one) is moved aside as `config.db-wal.proxsave-stale-<stamp>`.
//! 3. **post-restart**: every unit is `active`, `<root>/etc/pve` is mounted again (pmxcfs; when
//!    it was mounted as the run began),
//!    and for a cluster backup `pvecm status` says `Quorate: Yes` within
//!    [`QUORUM_WAIT`]. A failed check is reported with what to look at and how to roll back;
//!    a missing quorum is a to-do (an isolated node cannot be quorate), with the reminder
//!    about the other nodes.

use std::path::Path;
use std::time::Duration;

use proxsave_archive::path::ArchivePath;
use proxsave_archive::progress::CancelToken;
use proxsave_restore::applier::{
    Applier, ApplierPlan, ApplierRegistration, ApplyContext, ApplyError, Outcome, PlanContext,
    Status,
};
use proxsave_restore::host::{Host, HostActions, HostCommand, Ran};
use proxsave_restore::plan::ClusterMode;
use proxsave_restore::prompt::Level;

use crate::domain::PVE_SERVICES;

/// The cluster database in an archive and in the root.
pub const CONFIG_DB: &str = crate::configdb::BACKUP_PATH;
/// Its SQLite write-ahead log and shared-memory index.
pub const CONFIG_DB_SIDECARS: [&str; 2] = [
    "var/lib/pve-cluster/config.db-wal",
    "var/lib/pve-cluster/config.db-shm",
];

/// How long each unit may take to report `active` after its start.
pub const UNIT_WAIT: Duration = Duration::from_secs(10);
/// How long pmxcfs may take to mount `/etc/pve` again.
pub const MOUNT_WAIT: Duration = Duration::from_secs(30);
/// How long `pvecm status` may take to say `Quorate: Yes`.
pub const QUORUM_WAIT: Duration = Duration::from_secs(60);
/// Pause between two probes.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);

/// The reminder about the other nodes (the guide's words).
pub const ISOLATION_REMINDER: &str = "other cluster nodes: keep them ISOLATED from this node until it is verified; they may need to be removed and rejoined afterwards (pvecm delnode / pvecm add)";

fn path(p: &str) -> Result<ArchivePath, ApplyError> {
    ArchivePath::from_user(p).map_err(|e| ApplyError::Other(format!("{p}: {e}")))
}

/// Checks the backup's `config.db` (its staged bytes) as pmxcfs will load it: opened
/// read-only with the SQLite library, `PRAGMA integrity_check` must answer `ok`, the `tree`
/// table must exist and its rows must form the tree pmxcfs accepts
/// ([`crate::configdb::ConfigDbTree::open`]). The bytes are copied into a private folder
/// (0700, beside the stage in the work directory) first, away from any `-wal` / `-shm`.
/// Returns the number of entries of its `/etc/pve`.
///
/// # Errors
/// SQLite's message, or what is wrong with the tree, naming the backup's file.
pub fn check_config_db(bytes: &[u8], private_dir: &Path) -> Result<usize, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::Builder::new()
        .prefix(".proxsave-configdb-check-")
        .tempdir_in(private_dir)
        .map_err(|e| format!("cannot make a private folder to check it: {e}"))?;
    let file = dir.path().join("config.db");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.flush())
        .map_err(|e| format!("{}: {e}", file.display()))?;
    drop(f);
    crate::configdb::ConfigDbTree::open(&file)
        .map(|t| t.entries().len())
        .map_err(|e| e.shown_as(format!("/{CONFIG_DB}")).to_string())
}

/// The RECOVERY applier; see the module docs.
pub struct ClusterDb;

impl Applier for ClusterDb {
    fn name(&self) -> &'static str {
        "pve-cluster-db"
    }

    fn categories(&self) -> &'static [&'static str] {
        &["pve_cluster"]
    }

    fn order(&self) -> u16 {
        5
    }

    fn runs_for_normal_tier(&self) -> bool {
        true
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        let mut plan = ApplierPlan::default();
        if !ctx.plan.needs_cluster_restore {
            return Ok(plan);
        }
        let db = path(CONFIG_DB)?;
        let staged = ctx.stage.read(&db).map_err(|e| ApplyError::Io {
            path: ctx.stage.path().join(CONFIG_DB),
            source: e,
        })?;
        let mut details = serde_json::Map::new();
        match staged {
            Some(bytes) => {
                let private = ctx.stage.path().parent().unwrap_or(ctx.stage.path());
                let rows = check_config_db(&bytes, private).map_err(|why| {
                    ApplyError::Refused(format!(
                        "the backup's config.db is refused, nothing was stopped or written: {why}"
                    ))
                })?;
                plan.actions.push(format!(
                    "/{CONFIG_DB}: SQLite integrity check passed ({rows} entries in its /etc/pve)"
                ));
                details.insert("config_db_entries".into(), rows.into());
                for side in CONFIG_DB_SIDECARS {
                    let p = path(side)?;
                    plan.files.push(p.clone());
                    if ctx.root.exists(&p) {
                        plan.actions.push(format!(
                            "move the stale /{side} aside (it belongs to the database being replaced)"
                        ));
                    }
                }
            }
            None => plan
                .actions
                .push(format!("the backup has no /{CONFIG_DB}: nothing to check")),
        }
        plan.actions.push(format!(
            "after the restart: {} active, /etc/pve mounted{}",
            PVE_SERVICES.join(", "),
            if is_cluster(ctx.plan) {
                ", `pvecm status` quorate"
            } else {
                ""
            }
        ));
        // pmxcfs is expected to mount it again only if it was mounted when the run began
        // (a root prepared offline, or a node whose pve-cluster was already down, has none).
        let mounted = ctx
            .host
            .mounts
            .is_mount_point(&ctx.host.root.join("etc/pve"));
        details.insert("etc_pve_mounted_before".into(), mounted.into());
        details.insert("checks".into(), serde_json::json!(checks(ctx.plan)));
        plan.details = serde_json::Value::Object(details);
        Ok(plan)
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        if !ctx.plan.needs_cluster_restore || plan.files.is_empty() {
            return Ok(Vec::new());
        }
        let stamp = ctx.host.clock.now().format("%Y%m%d-%H%M%S").to_string();
        let mut moved = Vec::new();
        for side in CONFIG_DB_SIDECARS {
            let p = path(side)?;
            if !ctx.root.exists(&p) {
                continue;
            }
            let aside = format!("{side}.proxsave-stale-{stamp}");
            ctx.root
                .dir()
                .rename(side, ctx.root.dir(), &aside)
                .map_err(|e| ApplyError::Io {
                    path: ctx.root.path().join(side),
                    source: e,
                })?;
            moved.push(format!("/{side} -> /{aside}"));
        }
        let detail = if moved.is_empty() {
            "config.db written; no stale write-ahead log".to_string()
        } else {
            format!(
                "config.db written; stale SQLite files moved aside (kept in the safety backup): {}",
                moved.join(", ")
            )
        };
        Ok(vec![Outcome::new("pve_cluster", Status::Applied, detail)])
    }

    fn post_restart(&self, ctx: &mut ApplyContext<'_>, plan: &ApplierPlan) -> Vec<Outcome> {
        if !ctx.plan.needs_cluster_restore {
            return Vec::new();
        }
        let cluster = is_cluster(ctx.plan);
        if ctx.host.actions == HostActions::Defer {
            return vec![Outcome::new(
                "pve_cluster",
                Status::Deferred {
                    todo: format!(
                        "after the services start: check {}",
                        checks(ctx.plan).join(", ")
                    ),
                },
                "",
            )];
        }
        let rollback = "to roll back, run the rollback command shown in this summary (proxsave restore --rollback <safety backup>)";
        let mut failed: Vec<String> = Vec::new();
        for unit in PVE_SERVICES {
            if let Err(state) = wait_active(ctx.host, unit) {
                failed.push(format!(
                    "{unit} is not active ({state}); see `systemctl status {unit}` and `journalctl -u {unit}`"
                ));
            }
        }
        let mount = ctx.host.root.join("etc/pve");
        let mounted_before = plan.details["etc_pve_mounted_before"] == true;
        if mounted_before && !wait_mounted(ctx.host, &mount) {
            failed.push(format!(
                "{} is not mounted (pmxcfs did not come up with the restored database); see `journalctl -u pve-cluster`",
                mount.display()
            ));
        }
        let mut out = Vec::new();
        if !failed.is_empty() {
            let detail = format!(
                "post-restart check failed: {}; {rollback}",
                failed.join("; ")
            );
            ctx.prompter.say(Level::Warning, &detail);
            out.push(Outcome::new(
                "pve_cluster",
                Status::Failed {
                    error: detail.clone(),
                },
                detail,
            ));
            return out;
        }
        if cluster {
            match wait_quorate(ctx.host, ctx.cancel) {
                Ok(()) => {
                    let d = format!(
                        "checked: {} active{}, `pvecm status` quorate; {ISOLATION_REMINDER}",
                        PVE_SERVICES.join(", "),
                        if mounted_before {
                            format!(", {} mounted", mount.display())
                        } else {
                            String::new()
                        }
                    );
                    ctx.prompter.say(Level::Info, &d);
                    out.push(Outcome::new("pve_cluster", Status::Applied, d));
                }
                Err(why) => {
                    let todo = format!(
                        "`pvecm status` is not quorate after {}s ({why}): check corosync (`pvecm status`, `journalctl -u corosync`); a node isolated on purpose stays without quorum until the others rejoin (or `pvecm expected 1`); {rollback}; {ISOLATION_REMINDER}",
                        QUORUM_WAIT.as_secs()
                    );
                    ctx.prompter.say(Level::Warning, &todo);
                    out.push(Outcome::new(
                        "pve_cluster",
                        Status::Deferred { todo: todo.clone() },
                        todo,
                    ));
                }
            }
        } else {
            let d = format!(
                "checked: {} active{}",
                PVE_SERVICES.join(", "),
                if mounted_before {
                    format!(", {} mounted", mount.display())
                } else {
                    String::new()
                }
            );
            ctx.prompter.say(Level::Info, &d);
            out.push(Outcome::new("pve_cluster", Status::Applied, d));
        }
        out
    }
}

inventory::submit! { ApplierRegistration(&ClusterDb) }

/// A cluster backup restored in RECOVERY (quorum applies); a standalone database has none.
fn is_cluster(plan: &proxsave_restore::plan::Plan) -> bool {
    plan.cluster_mode == Some(ClusterMode::Recovery)
}

fn checks(plan: &proxsave_restore::plan::Plan) -> Vec<String> {
    let mut v: Vec<String> = PVE_SERVICES
        .iter()
        .map(|u| format!("systemctl is-active {u}"))
        .collect();
    v.push("/etc/pve mounted".into());
    if is_cluster(plan) {
        v.push("pvecm status: Quorate: Yes".into());
    }
    v
}

fn run(host: &Host, cmd: &HostCommand) -> Option<proxsave_restore::host::CommandOutput> {
    match host.run(cmd, &CancelToken::new()) {
        Ok(Ran::Done(out)) => Some(out),
        _ => None,
    }
}

/// Probes `systemctl is-active unit` until `active` or [`UNIT_WAIT`]; `Err(last state)`.
fn wait_active(host: &Host, unit: &str) -> Result<(), String> {
    let cmd = HostCommand::new("systemctl", ["is-active", unit]).timeout(Duration::from_secs(5));
    let mut waited = Duration::ZERO;
    loop {
        let state = match run(host, &cmd) {
            Some(out) if out.success() && out.stdout_text() == "active" => return Ok(()),
            Some(out) if out.stdout_text().is_empty() => out.failure(),
            Some(out) => out.stdout_text(),
            None => "systemctl could not run".to_string(),
        };
        if waited >= UNIT_WAIT {
            return Err(state);
        }
        host.clock.sleep(PROBE_EVERY);
        waited += PROBE_EVERY;
    }
}

fn wait_mounted(host: &Host, mount: &Path) -> bool {
    let mut waited = Duration::ZERO;
    loop {
        if host.mounts.is_mount_point(mount) {
            return true;
        }
        if waited >= MOUNT_WAIT {
            return false;
        }
        host.clock.sleep(PROBE_EVERY);
        waited += PROBE_EVERY;
    }
}

/// `Quorate: Yes` in `pvecm status` (pve-cluster's PVE/CLI/pvecm.pm prints
/// corosync-quorumtool's "Quorate:" line).
fn quorate(stdout: &str) -> Option<bool> {
    stdout.lines().find_map(|l| {
        let v = l.trim().strip_prefix("Quorate:")?;
        Some(v.trim().eq_ignore_ascii_case("yes"))
    })
}

/// Runs `pvecm status` until quorate or [`QUORUM_WAIT`]; `Err(what the last call said)`.
fn wait_quorate(host: &Host, cancel: &CancelToken) -> Result<(), String> {
    let cmd = HostCommand::new("pvecm", ["status"]).timeout(Duration::from_secs(20));
    let mut waited = Duration::ZERO;
    loop {
        let last = match run(host, &cmd) {
            Some(out) if out.success() => match quorate(&String::from_utf8_lossy(&out.stdout)) {
                Some(true) => return Ok(()),
                Some(false) => "Quorate: No".to_string(),
                // Not an answer that waiting would change.
                None => return Err("`pvecm status` printed no Quorate line".to_string()),
            },
            Some(out) => format!("pvecm status failed: {}", out.failure()),
            None => "pvecm could not run".to_string(),
        };
        if waited >= QUORUM_WAIT || cancel.is_cancelled() {
            return Err(last);
        }
        host.clock.sleep(PROBE_EVERY);
        waited += PROBE_EVERY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorate_reads_the_quorum_line() {
        assert_eq!(
            quorate("Quorum information\nQuorate:          Yes\n"),
            Some(true)
        );
        assert_eq!(quorate("Quorate:          No\n"), Some(false));
        assert_eq!(quorate("Cluster information\n"), None);
    }

    #[test]
    fn a_good_database_passes_and_a_bad_one_is_refused_with_sqlites_message() {
        use proxsave_testkit::configdb::{ConfigDb, damaged, without_tree};
        let work = tempfile::tempdir().unwrap();
        let mut db = ConfigDb::pve_cluster();
        // Big enough for several pages (damaged() overwrites the second).
        db.file("nodes/pve1/lrm_status", &[b'x'; 20_000], 1_721_780_100);
        let good = db.bytes();
        let entries = check_config_db(&good, work.path()).unwrap();
        assert!(entries >= 9, "{entries}");
        // The private copy is gone; nothing is left in the work folder.
        assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);

        let err = check_config_db(b"SQLite format 3\0 but nothing after", work.path()).unwrap_err();
        assert!(err.starts_with("/var/lib/pve-cluster/config.db: "), "{err}");
        assert!(err.contains("file is not a database"), "{err}");

        let other = work.path().join("other.db");
        without_tree(&other);
        let err = check_config_db(&std::fs::read(&other).unwrap(), work.path()).unwrap_err();
        assert!(err.contains("no `tree` table"), "{err}");

        let err = check_config_db(&damaged(&good), work.path()).unwrap_err();
        assert!(err.contains("integrity check failed"), "{err}");
    }
}
