//! `proxsave categories`: the category ids `--categories` accepts, what each covers and how
//! a restore handles it.

use proxsave_categories::{Category, Handling, Kind, registry};
use serde::Serialize;

use crate::CmdResult;
use crate::cli::CategoriesArgs;
use crate::output::print_json;

/// One category as listed.
#[derive(Serialize)]
struct Listed {
    id: &'static str,
    name: &'static str,
    description: &'static str,
    /// `pve`, `pbs` or `common`: the hosts that may have it written.
    kind: &'static str,
    /// `normal` (written into the root), `staged` (for an applier) or `export` (export
    /// folder only).
    handling: &'static str,
    /// The paths it covers (`/etc/ssh/` for a folder).
    paths: Vec<String>,
    /// The modes that include it (`custom` always can).
    modes: Vec<&'static str>,
}

fn kind(k: Kind) -> &'static str {
    match k {
        Kind::Pve => "pve",
        Kind::Pbs => "pbs",
        Kind::Common => "common",
    }
}

fn handling(c: &Category) -> &'static str {
    match c.handling {
        Handling::ExportOnly => "export",
        Handling::Staged => "staged",
        _ if c.flags.fstab => "staged",
        _ => "normal",
    }
}

fn listed(c: &'static Category) -> Listed {
    let restorable = c.handling != Handling::ExportOnly;
    let mut modes = vec!["full"];
    if restorable && c.presets.storage {
        modes.push("storage");
    }
    if restorable && c.presets.base {
        modes.push("base");
    }
    modes.push("custom");
    Listed {
        id: c.id,
        name: c.name,
        description: c.description,
        kind: kind(c.kind),
        handling: handling(c),
        paths: c.patterns.iter().map(|p| p.display()).collect(),
        modes,
    }
}

pub fn run(args: CategoriesArgs) -> CmdResult {
    let mut all: Vec<&'static Category> = registry().to_vec();
    all.sort_by_key(|c| c.order);
    let list: Vec<Listed> = all.into_iter().map(listed).collect();
    if args.json {
        #[derive(Serialize)]
        struct Doc {
            categories: Vec<Listed>,
        }
        print_json("categories", &Doc { categories: list })?;
        return Ok(());
    }
    println!(
        "{:<26} {:<7} {:<8} {:<28} NAME",
        "ID", "KIND", "HANDLING", "MODES"
    );
    for c in &list {
        println!(
            "{:<26} {:<7} {:<8} {:<28} {}",
            c.id,
            match c.kind {
                "pve" => "PVE",
                "pbs" => "PBS",
                k => k,
            },
            c.handling,
            c.modes.join(","),
            c.name
        );
        println!("    {}", c.paths.join(" "));
    }
    println!();
    println!(
        "Handling: normal = written into the root; staged = kept for an applier that writes it;"
    );
    println!("export = copied to the export folder only. Give ids or paths to --categories.");
    Ok(())
}
