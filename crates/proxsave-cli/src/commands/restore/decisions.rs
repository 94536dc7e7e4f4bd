//! The decisions of a restore: the menus (source and backup, mode, categories, SAFE or
//! RECOVERY, PBS merge or clean) and the final `RESTORE` confirmation.

use proxsave_archive::backup::Backup;
use proxsave_categories::{HostRole, Kind, Mode};
use proxsave_restore::engine::Scan;
use proxsave_restore::plan::{ClusterMode, Decision, PbsBehavior, Request};
use proxsave_restore::prompt::PromptError;

use crate::Exit;
use crate::commands::list;
use crate::config::Config;
use crate::console::Console;

pub(super) fn prompt_exit(e: PromptError) -> Exit {
    match e {
        PromptError::Aborted => Exit::Aborted,
        other => Exit::Usage(other.to_string()),
    }
}

pub(super) fn choose_backup(console: &Console, config: &Config) -> Result<Backup, Exit> {
    let found = list::scan_sources(config)?;
    let usable: Vec<_> = found.into_iter().filter(|(_, b)| !b.is_empty()).collect();
    if usable.is_empty() {
        return Err(Exit::Failure(anyhow::anyhow!(
            "no backups found in the configured sources ({}); give --backup PATH",
            config
                .sources
                .iter()
                .map(|s| s.location.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let labels: Vec<String> = usable
        .iter()
        .map(|(s, _)| format!("{}: {}", s.label, s.location))
        .collect();
    let source = console
        .menu("Select backup source:", &labels, "Cancel")
        .map_err(prompt_exit)?;
    let backups = &usable[source].1;
    loop {
        console.line("");
        console.line("Available backups:");
        for (i, b) in backups.iter().enumerate() {
            let m = &b.manifest;
            console.line(&format!("  [{}] {}", i + 1, b.display_name()));
            console.line(&format!("      Created: {}", m.created_at.display()));
            console.line(&format!(
                "      Encrypted: {}",
                if b.declared_encrypted() {
                    "Yes (AGE)"
                } else {
                    "No"
                }
            ));
            console.line(&format!(
                "      Tool Version: {}",
                m.display_tool().trim_start_matches("Tool ")
            ));
            console.line(&format!("      System: {}", m.display_target()));
            console.line("");
        }
        console.line("  [0] Cancel");
        console.prompt("Choice: ");
        let a = console
            .read_line(None)
            .map_err(prompt_exit)?
            .unwrap_or_default();
        match a.parse::<usize>() {
            Ok(0) => return Err(Exit::Aborted),
            Ok(n) if n <= backups.len() => return Ok(backups[n - 1].clone()),
            _ => console.line(&format!("Invalid choice {a:?}.")),
        }
    }
}

pub(super) fn choose_mode(console: &Console, host: HostRole) -> Result<Mode, Exit> {
    let modes = [Mode::Full, Mode::Storage, Mode::Base, Mode::Custom];
    let labels: Vec<String> = modes
        .iter()
        .map(|m| m.menu_label(host).to_string())
        .collect();
    let i = console
        .menu("Select restore mode:", &labels, "Cancel")
        .map_err(prompt_exit)?;
    Ok(modes[i])
}

pub(super) fn choose_categories(
    console: &Console,
    scan: &Scan,
    host: HostRole,
) -> Result<Vec<String>, Exit> {
    let mut cats: Vec<_> = scan
        .analysis
        .available
        .iter()
        .copied()
        .filter(|c| c.fits(host))
        .collect();
    cats.sort_by_key(|c| (c.kind == Kind::Common, c.name));
    let mut on = vec![false; cats.len()];
    loop {
        console.line("");
        console.line("Available categories:");
        for (i, c) in cats.iter().enumerate() {
            console.line(&format!(
                "  [{}] [{}] {}",
                i + 1,
                if on[i] { "X" } else { " " },
                c.name
            ));
            console.line(&format!("      {}", c.description));
        }
        console.line("");
        console.line("Commands:");
        console.line("  - Type number to toggle category");
        console.line("  - Type 'a' to select all");
        console.line("  - Type 'n' to deselect all");
        console.line("  - Type 'c' to continue");
        console.line("  - Type '0' to cancel");
        console.prompt("Your selection: ");
        let a = console
            .read_line(None)
            .map_err(prompt_exit)?
            .unwrap_or_default();
        match a.as_str() {
            "0" => return Err(Exit::Aborted),
            "a" | "A" => on.iter_mut().for_each(|x| *x = true),
            "n" | "N" => on.iter_mut().for_each(|x| *x = false),
            "c" | "C" => {
                if on.iter().any(|x| *x) {
                    return Ok(cats
                        .iter()
                        .zip(&on)
                        .filter(|(_, o)| **o)
                        .map(|(c, _)| c.id.to_string())
                        .collect());
                }
                console.line("Select at least one category (or 0 to cancel).");
            }
            other => match other.parse::<usize>() {
                Ok(n) if n >= 1 && n <= cats.len() => on[n - 1] = !on[n - 1],
                _ => console.line(&format!(
                    "Invalid input {other:?}: type a number from 1 to {}, a, n, c or 0.",
                    cats.len()
                )),
            },
        }
    }
}

pub(super) fn ask_decision(console: &Console, d: Decision, req: &mut Request) -> Result<(), Exit> {
    match d {
        Decision::ClusterMode => {
            let i = console
                .menu(
                    "Cluster backup detected. Choose how to restore the cluster database:",
                    &[
                        "SAFE: Do NOT write /var/lib/pve-cluster/config.db. Export cluster files only (manual/apply via API).".into(),
                        "RECOVERY: Restore full cluster database (/var/lib/pve-cluster). Use only when cluster is offline/isolated.".into(),
                    ],
                    "Exit",
                )
                .map_err(prompt_exit)?;
            req.cluster_mode = Some(if i == 0 {
                ClusterMode::Safe
            } else {
                ClusterMode::Recovery
            });
            if i == 1 {
                console.line("WARNING: Selected RECOVERY cluster restore");
                console.line("Ensure other nodes are ISOLATED before proceeding!");
            }
        }
        Decision::PbsBehavior => {
            let i = console
                .menu(
                    "PBS restore behaviour:",
                    &[
                        "Merge (existing PBS)".into(),
                        "Clean 1:1 (fresh PBS install)".into(),
                    ],
                    "Exit",
                )
                .map_err(prompt_exit)?;
            req.pbs_behavior = Some(if i == 0 {
                PbsBehavior::Merge
            } else {
                PbsBehavior::Clean
            });
        }
        Decision::Mode | Decision::Categories => unreachable!("asked before building the plan"),
    }
    Ok(())
}

pub(super) fn confirm_restore(console: &Console) -> Result<(), Exit> {
    loop {
        console.prompt("Type \"RESTORE\" (exact case) to proceed, or \"cancel\"/\"0\" to abort: ");
        let a = console
            .read_line(None)
            .map_err(prompt_exit)?
            .unwrap_or_default();
        if a == "RESTORE" {
            return Ok(());
        }
        if a == "0" || a.eq_ignore_ascii_case("cancel") {
            console.line("Restore operation cancelled by user");
            return Err(Exit::Aborted);
        }
        console.line("Please type RESTORE to proceed, or cancel to abort.");
    }
}
