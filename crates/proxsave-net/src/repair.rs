//! NIC repair of a configuration in one call: plan, select, rename, lint.
//!
//! [`repair`] never fails: whatever stops the renames (no inventory, a configuration that does not
//! parse, a rename that would give two NICs one name) becomes [`Repair::not_repaired`], and the
//! files are then returned unchanged — they are installed as the backup has them.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::ifaces::{
    ConfigFile, ConfigSet, Edit, Finding, FindingCode, LintOptions, Mention, MentionKind, Severity,
    StanzaKind, lint,
};
use crate::inventory::{Inventory, InventoryError};
use crate::matcher::{Conflict, NicMatch, Plan, Selection, plan};
use crate::overrides::NamingRule;

/// The `network.nic-repair` decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NicRepairMode {
    /// Apply the safe renames only (default).
    #[default]
    Safe,
    /// Also the conflicting ones (never pinned names, never a collapse).
    All,
    /// No renames.
    No,
}

impl NicRepairMode {
    /// Parses `safe`, `all` or `no`.
    pub fn parse(answer: &str) -> Option<NicRepairMode> {
        match answer {
            "safe" => Some(NicRepairMode::Safe),
            "all" => Some(NicRepairMode::All),
            "no" => Some(NicRepairMode::No),
            _ => None,
        }
    }

    /// The answer text.
    pub fn as_str(self) -> &'static str {
        match self {
            NicRepairMode::Safe => "safe",
            NicRepairMode::All => "all",
            NicRepairMode::No => "no",
        }
    }
}

/// What [`repair`] needs besides the configuration.
#[derive(Debug, Clone, Copy)]
pub struct RepairRequest<'a> {
    /// The backup's inventory, or why there is none.
    pub backup: Result<&'a Inventory, &'a InventoryError>,
    /// This host's inventory ([`crate::inventory::collect_sysfs`]).
    pub current: &'a Inventory,
    /// Naming rules in force ([`crate::overrides::scan`]).
    pub rules: &'a [NamingRule],
    /// The `network.nic-repair` decision.
    pub mode: NicRepairMode,
}

/// One file of the configuration, before and after.
#[derive(Debug, Clone)]
pub struct FileRepair {
    /// Absolute path inside the root.
    pub path: PathBuf,
    /// The bytes as the backup has them.
    pub before: Vec<u8>,
    /// The bytes to install (equal to `before` when nothing changed).
    pub after: Vec<u8>,
    /// The replaced words.
    pub edits: Vec<Edit>,
    /// Lines that mention a renamed NIC and were left as they are.
    pub mentions: Vec<Mention>,
}

impl FileRepair {
    /// True when the bytes differ.
    pub fn changed(&self) -> bool {
        self.before != self.after
    }
}

/// The result of [`repair`].
#[derive(Debug, Clone)]
pub struct Repair {
    /// The rename plan (`None` without a backup inventory).
    pub plan: Option<Plan>,
    /// The renames applied.
    pub applied: Vec<NicMatch>,
    /// The renames not applied, and why.
    pub skipped: Vec<Conflict>,
    /// Why nothing was renamed, when nothing was.
    pub not_repaired: Option<String>,
    /// Every file of the configuration, in include order.
    pub files: Vec<FileRepair>,
    /// The lint of the files to install, against this host.
    pub findings: Vec<Finding>,
}

impl Repair {
    /// The files whose bytes change.
    pub fn changed_files(&self) -> impl Iterator<Item = &FileRepair> {
        self.files.iter().filter(|f| f.changed())
    }

    /// True when a finding is an error: the configuration must not be applied live.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// Text for plans and summaries: renames, edits per file, untouched mentions, skipped
    /// renames, findings.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        match &self.not_repaired {
            Some(reason) => out.push_str(&format!("NIC repair: not applied ({reason})\n")),
            None => {
                out.push_str(&format!(
                    "NIC repair: {} rename(s) in {} file(s)\n",
                    self.applied.len(),
                    self.changed_files().count()
                ));
                for m in &self.applied {
                    out.push_str(&format!("- {m}\n"));
                }
            }
        }
        for c in &self.skipped {
            out.push_str(&format!("- skipped: {c}\n"));
        }
        for f in &self.files {
            for e in &f.edits {
                out.push_str(&format!(
                    "  {}:{}: {} -> {}\n",
                    f.path.display(),
                    e.line,
                    e.old,
                    e.new
                ));
            }
            for m in &f.mentions {
                let what = match m.kind {
                    MentionKind::Comment => "comment",
                    MentionKind::Command => "command",
                    MentionKind::OtherOption => "option",
                    MentionKind::SplitWord => "name split by a continuation",
                };
                out.push_str(&format!(
                    "  {}:{}: {what} mentions {} (left as it is)\n",
                    f.path.display(),
                    m.line,
                    m.names.join(", ")
                ));
            }
        }
        for f in &self.findings {
            out.push_str(&format!("{f}\n"));
        }
        out
    }
}

/// True for findings that mean the file does not parse as the tools read it.
fn is_syntax(f: &Finding) -> bool {
    f.severity == Severity::Error
        && matches!(
            f.code,
            FindingCode::OptionBeforeStanza
                | FindingCode::MalformedLine
                | FindingCode::UnknownFamily
                | FindingCode::UnknownMethod
                | FindingCode::SourceDirectoryUnsupported
        )
}

/// Repairs NIC names in `set` (see the module documentation).
pub fn repair(set: &ConfigSet, req: &RepairRequest<'_>) -> Repair {
    let opts = LintOptions::with_inventory(req.current);
    let unchanged = |set: &ConfigSet| -> Vec<FileRepair> {
        set.files
            .iter()
            .map(|f| FileRepair {
                path: f.path.clone(),
                before: f.document.to_bytes(),
                after: f.document.to_bytes(),
                edits: Vec::new(),
                mentions: Vec::new(),
            })
            .collect()
    };
    let mut result = Repair {
        plan: None,
        applied: Vec::new(),
        skipped: Vec::new(),
        not_repaired: None,
        files: unchanged(set),
        findings: lint(set, &opts),
    };
    let backup = match req.backup {
        Ok(b) => b,
        Err(e) => {
            result.not_repaired = Some(e.to_string());
            return result;
        }
    };
    let pl = plan(backup.nics(), req.current.nics(), req.rules);
    result.plan = Some(pl.clone());
    if let Some(f) = result.findings.iter().find(|f| is_syntax(f)) {
        result.not_repaired = Some(format!("the configuration does not parse: {f}"));
        return result;
    }
    let selection = match req.mode {
        NicRepairMode::No => {
            result.not_repaired = Some("NIC repair disabled (network.nic-repair = no)".into());
            return result;
        }
        NicRepairMode::Safe => Selection::Safe,
        NicRepairMode::All => Selection::All,
    };
    let kept: BTreeSet<String> = set
        .files
        .iter()
        .flat_map(|f| {
            f.document
                .stanzas()
                .into_iter()
                .filter(|s| s.kind == StanzaKind::Iface)
                .filter_map(|s| s.name.and_then(|n| n.as_str()).map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect();
    let selected = match pl.select_keeping(selection, &kept) {
        Ok(s) => s,
        Err(e) => {
            result.not_repaired = Some(e.to_string());
            return result;
        }
    };
    result.skipped = selected.skipped.clone();
    if selected.map.is_empty() {
        result.not_repaired = Some(if pl.matches.is_empty() {
            "no NIC of the backup matches a NIC of this host".into()
        } else if pl.is_empty() {
            "NIC names already match".into()
        } else {
            "no rename selected".into()
        });
        return result;
    }
    let renamed = match set.rename(&selected.map) {
        Ok(r) => r,
        Err(e) => {
            result.not_repaired = Some(e.to_string());
            return result;
        }
    };
    let new_set = ConfigSet {
        files: set
            .files
            .iter()
            .zip(&renamed)
            .map(|(f, r)| ConfigFile {
                path: f.path.clone(),
                document: r.document.clone(),
            })
            .collect(),
        findings: set.findings.clone(),
        flavor: set.flavor,
    };
    result.files = set
        .files
        .iter()
        .zip(renamed)
        .map(|(f, r)| FileRepair {
            path: f.path.clone(),
            before: f.document.to_bytes(),
            after: r.document.to_bytes(),
            edits: r.edits,
            mentions: r.mentions,
        })
        .collect();
    let used: BTreeSet<&str> = result
        .files
        .iter()
        .flat_map(|f| f.edits.iter().map(|e| e.old.as_str()))
        .collect();
    result.applied = selected
        .applied
        .into_iter()
        .filter(|m| {
            used.iter().any(|u| {
                *u == m.old
                    || u.starts_with(&format!("{}.", m.old))
                    || u.starts_with(&format!("{}:", m.old))
            })
        })
        .collect();
    if result.applied.is_empty() {
        result.not_repaired = Some("no renamed NIC is named in the configuration".into());
    }
    result.findings = lint(&new_set, &opts);
    result
}
