//! ZFS after a restore of the `zfs` category: which pools this host is set up to import, which
//! pools `zpool import` finds waiting, and the commands to import them. Nothing is imported.
//!
//! The `zfs` category (`/etc/zfs`, `/etc/hostid`) is restored as plain files; the
//! [`ZfsReport`] applier ([`ZfsReportApplier`], name `zfs-report`) only runs after the restore
//! (its post-restart phase) and reports:
//!
//! * **configured pools**: the instances of the `zfs-import@<pool>.service` and
//!   `import@<pool>.service` units found in `/etc/systemd/system/zfs-import.target.wants/`,
//!   `/etc/systemd/system/multi-user.target.wants/` and `/etc/systemd/system/` of the restored
//!   root ([`pool_from_unit_name`]), and whether `/etc/zfs/zpool.cache` is there (the pools it
//!   lists are imported at boot by `zfs-import-cache.service`);
//! * **importable pools**: the `pool:` lines of `zpool import` ([`parse_zpool_import`]), a
//!   read-only probe that is recorded, not run, under `--host-actions defer`;
//! * for a configured pool when none is importable: `zpool status <pool>` (success: already
//!   imported);
//! * the commands to run by hand ([`import_commands`]).

use std::io::ErrorKind;

use proxsave_archive::path::ArchivePath;
use proxsave_restore::applier::{
    Applier, ApplierPlan, ApplierRegistration, ApplyContext, ApplyError, Outcome, PlanContext,
    Status,
};
use proxsave_restore::host::{CommandOutput, HostCommand, Ran};
use proxsave_restore::prompt::Level;

/// The folders (relative to the root) whose unit names say which pools are imported at boot.
pub const UNIT_DIRS: [&str; 3] = [
    "etc/systemd/system/zfs-import.target.wants",
    "etc/systemd/system/multi-user.target.wants",
    "etc/systemd/system",
];

/// The pool cache file (relative to the root).
pub const ZPOOL_CACHE: &str = "etc/zfs/zpool.cache";

/// The pool a unit file name imports: `zfs-import@tank.service` and `import@tank.service`
/// give `tank`. systemd's `\xNN` escapes in the instance are decoded (`-` is kept: a pool
/// name cannot hold `/`). Anything else (the template `zfs-import@.service`, other units)
/// gives `None`.
pub fn pool_from_unit_name(name: &str) -> Option<String> {
    let instance = name
        .strip_prefix("zfs-import@")
        .or_else(|| name.strip_prefix("import@"))?
        .strip_suffix(".service")?;
    if instance.is_empty() {
        return None;
    }
    let pool = unescape_unit(instance);
    (!pool.is_empty() && !pool.contains(|c: char| c.is_control() || c == '/')).then_some(pool)
}

/// Decodes systemd's `\xNN` escapes (lossy UTF-8).
fn unescape_unit(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && i + 3 < b.len() {
            let hex = |x: u8| char::from(x).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 2]), hex(b[i + 3])) {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Configured pools from unit file names (any order, duplicates allowed): sorted, once each.
pub fn configured_pools<'a>(unit_names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut pools: Vec<String> = unit_names
        .into_iter()
        .filter_map(pool_from_unit_name)
        .collect();
    pools.sort();
    pools.dedup();
    pools
}

/// The pools `zpool import` lists: every line whose trimmed text starts with `pool:` (any
/// case), the name being the rest of the line, trimmed. In order, once each.
pub fn parse_zpool_import(output: &str) -> Vec<String> {
    let mut pools: Vec<String> = Vec::new();
    for line in output.lines() {
        let t = line.trim();
        let Some(head) = t.get(..5) else { continue };
        if !head.eq_ignore_ascii_case("pool:") {
            continue;
        }
        let name = t[5..].trim();
        if !name.is_empty() && !pools.iter().any(|p| p == name) {
            pools.push(name.to_string());
        }
    }
    pools
}

/// The commands that import `pool` by hand: by name, and by name scanning the stable
/// `/dev/disk/by-id` names (when the device names changed).
pub fn import_commands(pool: &str) -> [String; 2] {
    [
        format!("zpool import {pool}"),
        format!("zpool import -d /dev/disk/by-id {pool}"),
    ]
}

/// What `zpool import` said, or why it did not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// It ran; these pools can be imported (possibly none).
    Importable(Vec<String>),
    /// Host actions are deferred: not run.
    Deferred,
    /// `zpool` is not installed.
    Missing,
    /// It failed; its message.
    Failed(String),
}

/// The report after a restore of the `zfs` category.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZfsReport {
    /// Pools with an import unit (see [`configured_pools`]).
    pub configured: Vec<String>,
    /// `/etc/zfs/zpool.cache` is present.
    pub cache_file: bool,
    /// The `zpool import` probe.
    pub probe: Probe,
    /// Configured pools `zpool status` shows as imported (asked only when none is importable).
    pub imported: Vec<String>,
    /// Configured pools neither importable nor imported.
    pub missing: Vec<String>,
}

impl ZfsReport {
    /// The report, one line each, as shown to the administrator.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.configured.is_empty() {
            out.push(
                "ZFS: no pool import unit (zfs-import@<pool>.service) is enabled on this host"
                    .to_string(),
            );
        } else {
            out.push(format!(
                "ZFS pools configured on this host (systemd import units): {}",
                self.configured.join(", ")
            ));
        }
        if self.cache_file {
            out.push(
                "ZFS: /etc/zfs/zpool.cache is present: zfs-import-cache.service imports the pools \
                 it lists at boot"
                    .to_string(),
            );
        }
        match &self.probe {
            Probe::Importable(pools) if pools.is_empty() => {
                out.push("ZFS: `zpool import` finds no pool waiting to be imported".to_string());
            }
            Probe::Importable(pools) => {
                out.push(format!(
                    "ZFS pools that can be imported (`zpool import`): {}; nothing was imported. \
                     Import them by hand:",
                    pools.join(", ")
                ));
                for pool in pools {
                    let [by_name, by_id] = import_commands(pool);
                    out.push(format!("  {by_name}"));
                    out.push(format!("  (if its devices were renamed: {by_id})"));
                }
                out.push("  then check them with: zpool status".to_string());
            }
            Probe::Deferred => out.push(
                "ZFS: `zpool import` not run (host actions deferred): run it on the host to list \
                 the pools that can be imported, then `zpool import <pool>`"
                    .to_string(),
            ),
            Probe::Missing => {
                out.push("ZFS: `zpool` is not installed here; no pool was probed".to_string());
            }
            Probe::Failed(e) => out.push(format!("ZFS: `zpool import` failed: {e}")),
        }
        for pool in &self.imported {
            out.push(format!(
                "ZFS pool {pool}: already imported (zpool status {pool})"
            ));
        }
        for pool in &self.missing {
            let [by_name, by_id] = import_commands(pool);
            out.push(format!(
                "ZFS pool {pool}: configured but neither imported nor importable: check its \
                 disks, then `{by_name}` or `{by_id}`"
            ));
        }
        out
    }

    /// How the `zfs` category ends: applied when nothing is left to do, deferred with the
    /// to-do when pools wait to be imported (or the probe did not run), skipped without
    /// `zpool`.
    pub fn status(&self) -> Status {
        match &self.probe {
            Probe::Missing => Status::Skipped {
                reason: "`zpool` is not installed on this host".to_string(),
            },
            Probe::Deferred => Status::Deferred {
                todo: "run `zpool import` to list the ZFS pools that can be imported".to_string(),
            },
            Probe::Failed(e) => Status::Deferred {
                todo: format!("`zpool import` failed ({e}): check the ZFS pools by hand"),
            },
            Probe::Importable(pools) if !pools.is_empty() => Status::Deferred {
                todo: format!(
                    "import the ZFS pools by hand: {}",
                    pools
                        .iter()
                        .map(|p| format!("zpool import {p}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            },
            Probe::Importable(_) if !self.missing.is_empty() => Status::Deferred {
                todo: format!(
                    "check the disks of the ZFS pools {}",
                    self.missing.join(", ")
                ),
            },
            Probe::Importable(_) => Status::Applied,
        }
    }
}

/// The `zfs-report` applier: see the module docs. It writes nothing.
pub struct ZfsReportApplier;

inventory::submit! { ApplierRegistration(&ZfsReportApplier) }

fn archive_path(p: &str) -> Result<ArchivePath, ApplyError> {
    ArchivePath::from_user(p).map_err(|e| ApplyError::Other(format!("{p}: {e}")))
}

/// Unit names in the root's `dir` (empty when missing or unreadable).
fn unit_names(ctx: &ApplyContext<'_>, dir: &str) -> Vec<String> {
    match ctx.root.dir().read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn zpool(ctx: &ApplyContext<'_>, args: &[&str]) -> std::io::Result<Ran> {
    ctx.host
        .run(&HostCommand::new("zpool", args.iter().copied()), ctx.cancel)
}

/// The probe from what `zpool import` did.
fn probe_of(result: std::io::Result<Ran>) -> Probe {
    match result {
        Ok(Ran::Deferred) => Probe::Deferred,
        Err(e) if e.kind() == ErrorKind::NotFound => Probe::Missing,
        Err(e) => Probe::Failed(e.to_string()),
        Ok(Ran::Done(out)) => probe_of_output(&out),
    }
}

fn probe_of_output(out: &CommandOutput) -> Probe {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let pools = parse_zpool_import(&stdout);
    if !pools.is_empty() || out.success() || stderr.contains("no pools available") {
        Probe::Importable(pools)
    } else {
        Probe::Failed(out.failure())
    }
}

impl Applier for ZfsReportApplier {
    fn name(&self) -> &'static str {
        "zfs-report"
    }

    fn categories(&self) -> &'static [&'static str] {
        &["zfs"]
    }

    fn order(&self) -> u16 {
        900
    }

    fn runs_for_normal_tier(&self) -> bool {
        true
    }

    fn plan(&self, _ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        Ok(ApplierPlan {
            actions: vec![
                "after the restore: report the ZFS pools configured here (systemd import units, \
                 /etc/zfs/zpool.cache) and those `zpool import` finds, with the commands to \
                 import them; nothing is imported"
                    .to_string(),
            ],
            details: serde_json::json!({ "probe": "zpool import", "imports": false }),
            ..ApplierPlan::default()
        })
    }

    fn apply(
        &self,
        _ctx: &mut ApplyContext<'_>,
        _plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        // The files are restored by the engine; the report comes after the restart.
        Ok(Vec::new())
    }

    fn post_restart(&self, ctx: &mut ApplyContext<'_>, _plan: &ApplierPlan) -> Vec<Outcome> {
        let report = match self.report(ctx) {
            Ok(r) => r,
            Err(e) => {
                return vec![Outcome::new(
                    "zfs",
                    Status::Failed {
                        error: format!("ZFS report: {e}"),
                    },
                    "",
                )];
            }
        };
        let lines = report.lines();
        let status = report.status();
        let level = if matches!(status, Status::Applied | Status::Skipped { .. }) {
            Level::Info
        } else {
            Level::Warning
        };
        for line in &lines {
            ctx.prompter.say(level, line);
        }
        vec![Outcome::new("zfs", status, lines.join("\n"))]
    }
}

impl ZfsReportApplier {
    /// Reads the restored root and probes the host (read-only).
    fn report(&self, ctx: &ApplyContext<'_>) -> Result<ZfsReport, ApplyError> {
        let mut names = Vec::new();
        for dir in UNIT_DIRS {
            names.extend(unit_names(ctx, dir));
        }
        let configured = configured_pools(names.iter().map(String::as_str));
        let cache_file = ctx.root.exists(&archive_path(ZPOOL_CACHE)?);
        let probe = probe_of(zpool(ctx, &["import"]));
        let mut imported = Vec::new();
        let mut missing = Vec::new();
        if probe == Probe::Importable(Vec::new()) {
            for pool in &configured {
                match zpool(ctx, &["status", pool]) {
                    Ok(Ran::Done(out)) if out.success() => imported.push(pool.clone()),
                    Ok(Ran::Done(_)) => missing.push(pool.clone()),
                    _ => {}
                }
            }
        }
        Ok(ZfsReport {
            configured,
            cache_file,
            probe,
            imported,
            missing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unit_names() {
        assert_eq!(
            pool_from_unit_name("zfs-import@tank.service").as_deref(),
            Some("tank")
        );
        assert_eq!(
            pool_from_unit_name("import@backup.service").as_deref(),
            Some("backup")
        );
        assert_eq!(
            pool_from_unit_name("zfs-import@my\\x2dpool.service").as_deref(),
            Some("my-pool")
        );
        for other in [
            "zfs-import@.service",
            "zfs-import.service",
            "zfs-import-cache.service",
            "zfs-import@tank.timer",
            "sshd.service",
            "zfs-import@a\\x2fb.service",
        ] {
            assert_eq!(pool_from_unit_name(other), None, "{other}");
        }
        assert_eq!(
            configured_pools([
                "zfs-import@tank.service",
                "sshd.service",
                "import@tank.service",
                "zfs-import@backup.service"
            ]),
            ["backup", "tank"]
        );
    }

    #[test]
    fn zpool_import_output() {
        // Scenario 32.
        assert_eq!(
            parse_zpool_import("   pool: tank\n     id: 123\n"),
            ["tank"]
        );
        let two = "   pool: tank\n     id: 1234\n  state: ONLINE\n action: The pool can be \
                   imported using its name or numeric identifier.\n config:\n\n\ttank  ONLINE\n\
                   \n   pool: backup\n     id: 99\n  state: DEGRADED\nPOOL: tank\n";
        assert_eq!(parse_zpool_import(two), ["tank", "backup"]);
        assert!(parse_zpool_import("no pools available to import\n").is_empty());
        assert!(parse_zpool_import("pool:\n poolx: y\n").is_empty());
    }

    #[test]
    fn report_lines_and_status() {
        let r = ZfsReport {
            configured: vec!["tank".into()],
            cache_file: true,
            probe: Probe::Importable(vec!["tank".into()]),
            imported: vec![],
            missing: vec![],
        };
        let text = r.lines().join("\n");
        assert!(text.contains("zpool import tank\n"), "{text}");
        assert!(
            text.contains("zpool import -d /dev/disk/by-id tank"),
            "{text}"
        );
        assert!(text.contains("nothing was imported"), "{text}");
        assert!(
            matches!(r.status(), Status::Deferred { todo } if todo.contains("zpool import tank"))
        );
        let done = ZfsReport {
            probe: Probe::Importable(vec![]),
            imported: vec!["tank".into()],
            ..r.clone()
        };
        assert!(
            done.lines()
                .contains(&"ZFS pool tank: already imported (zpool status tank)".to_string())
        );
        assert_eq!(done.status(), Status::Applied);
        let missing = ZfsReport {
            probe: Probe::Importable(vec![]),
            missing: vec!["tank".into()],
            ..r.clone()
        };
        assert!(matches!(missing.status(), Status::Deferred { .. }));
        let none = ZfsReport {
            probe: Probe::Missing,
            ..r
        };
        assert!(matches!(none.status(), Status::Skipped { .. }));
    }

    #[test]
    fn probe_classification() {
        let out = |code, stdout: &str, stderr: &str| CommandOutput {
            code: Some(code),
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
            timed_out: false,
        };
        assert_eq!(
            probe_of_output(&out(0, "   pool: tank\n", "")),
            Probe::Importable(vec!["tank".into()])
        );
        assert_eq!(
            probe_of_output(&out(1, "", "no pools available to import\n")),
            Probe::Importable(vec![])
        );
        assert!(matches!(
            probe_of_output(&out(1, "", "cannot open /dev/zfs\n")),
            Probe::Failed(e) if e.contains("cannot open /dev/zfs")
        ));
        assert_eq!(
            probe_of(Err(std::io::Error::from(ErrorKind::NotFound))),
            Probe::Missing
        );
        assert_eq!(probe_of(Ok(Ran::Deferred)), Probe::Deferred);
    }

    fn pool() -> impl Strategy<Value = String> {
        "[A-Za-z][A-Za-z0-9_.:-]{0,20}"
    }

    proptest! {
        #[test]
        fn unit_names_give_back_their_pool(p in pool(), zfs in any::<bool>()) {
            let prefix = if zfs { "zfs-import@" } else { "import@" };
            let plain = format!("{prefix}{p}.service");
            prop_assert_eq!(pool_from_unit_name(&plain), Some(p.clone()));
            let escaped: String = p
                .chars()
                .map(|c| if c == '-' { "\\x2d".to_string() } else { c.to_string() })
                .collect();
            let escaped = format!("{prefix}{escaped}.service");
            prop_assert_eq!(pool_from_unit_name(&escaped), Some(p));
        }

        #[test]
        fn unit_name_parser_never_panics(s in "\\PC{0,40}") {
            let _ = pool_from_unit_name(&s);
            let _ = pool_from_unit_name(&format!("zfs-import@{s}.service"));
        }

        #[test]
        fn zpool_import_lists_every_pool(
            pools in proptest::collection::btree_set("[A-Za-z][A-Za-z0-9_.-]{0,20}", 0..6),
            indent in "[ \\t]{0,4}",
        ) {
            let mut text = String::new();
            for p in &pools {
                text.push_str(&format!("{indent}pool: {p}\n{indent}  id: 42\n  state: ONLINE\n config:\n\n\t{p} ONLINE\n\n"));
            }
            let want: Vec<String> = pools.into_iter().collect();
            prop_assert_eq!(parse_zpool_import(&text), want);
        }

        #[test]
        fn zpool_import_parser_never_panics(s in "\\PC{0,200}") {
            let _ = parse_zpool_import(&s);
        }
    }
}
