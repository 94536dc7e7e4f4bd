//! The decisions of a restore, one mechanism for all of them.
//!
//! - The menus of the guide's flow (source and backup, mode, categories, SAFE or RECOVERY, PBS
//!   merge or clean) and the final `RESTORE` confirmation.
//! - Questions with a stable id ([`QuestionSpec`]): the engine's own yes/no questions
//!   ([`ENGINE_QUESTIONS`]) and every question a registered applier declares. Each is answered
//!   at the console, by `--answer ID=VALUE`, or by the answers file's `[answers]` table (the
//!   top-level `continue_*` keys are older spellings of three of them). The [`AnswerStore`]
//!   holds what was given up front, validated against the declared questions: an unknown id
//!   or a value outside a question's fixed choices is exit 2 naming it (for the file, at its
//!   line and column).

use std::collections::BTreeMap;

use proxsave_archive::backup::Backup;
use proxsave_categories::{HostRole, Kind, Mode};
use proxsave_restore::applier::{Answer, AnswerSource, AppliersSet, QuestionSpec};
use proxsave_restore::engine::{QuestionRecord, Scan};
use proxsave_restore::plan::{ClusterMode, Decision, PbsBehavior, Request};
use proxsave_restore::prompt::PromptError;

use crate::Exit;
use crate::answers::Answers;
use crate::commands::list;
use crate::config::Config;
use crate::console::Console;

/// The backup's role (PVE/PBS) is not this host's (asked by the command before the plan).
pub const CONTINUE_INCOMPATIBLE: QuestionSpec = QuestionSpec {
    id: "continue_incompatible",
    prompt: "The backup comes from another kind of system (PVE/PBS) than this host: continue anyway?",
    choices: &["yes", "no"],
};

/// The safety backup could not be created (asked by the engine).
pub const CONTINUE_WITHOUT_SAFETY_BACKUP: QuestionSpec = QuestionSpec {
    id: "continue_without_safety_backup",
    prompt: "The safety backup could not be created: continue without it?",
    choices: &["yes", "no"],
};

/// A PBS service did not stop (asked by the engine).
pub const CONTINUE_WITH_PBS_SERVICES_RUNNING: QuestionSpec = QuestionSpec {
    id: "continue_with_pbs_services_running",
    prompt: "PBS services could not be stopped: continue the restore with them running?",
    choices: &["yes", "no"],
};

/// The yes/no questions of the restore itself (asked through `Prompter::confirm`). They have
/// no default under `--yes`: a run that meets one needs an explicit answer.
pub const ENGINE_QUESTIONS: [QuestionSpec; 3] = [
    CONTINUE_INCOMPATIBLE,
    CONTINUE_WITHOUT_SAFETY_BACKUP,
    CONTINUE_WITH_PBS_SERVICES_RUNNING,
];

/// Every question a restore of this program may ask: the engine's, then each registered
/// applier's.
pub fn known_questions() -> Vec<QuestionSpec> {
    let mut all = ENGINE_QUESTIONS.to_vec();
    for q in AppliersSet::registered().questions() {
        if !all.iter().any(|k| k.id == q.id) {
            all.push(q);
        }
    }
    all
}

/// A flag of its own that answers question `id` (besides `--answer`).
fn own_flag(id: &str) -> Option<&'static str> {
    (id == CONTINUE_INCOMPATIBLE.id).then_some("--continue-incompatible")
}

/// True when a question's choices are all plain words (`yes`, `no`, `all`): then they are the
/// only accepted answers. Choices such as `<mountpoint>,…` describe an open answer that the
/// applier checks itself.
fn closed_choices(spec: &QuestionSpec) -> bool {
    !spec.choices.is_empty()
        && spec.choices.iter().all(|c| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        })
}

/// `yes, no` / `all, none or <mountpoint>,…`, as said in messages.
pub fn choices_text(spec: &QuestionSpec) -> String {
    match spec.choices {
        [] => "any text".to_string(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// The accepted spelling of `value` as an answer to `spec`: trimmed; for a question with fixed
/// choices, one of them (any case; `y`/`n`/`true`/`false` for a yes/no question).
///
/// # Errors
/// Why it is not an answer to `spec`.
pub fn normalise(spec: &QuestionSpec, value: &str) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(format!(
            "`{}` needs an answer: {}",
            spec.id,
            choices_text(spec)
        ));
    }
    if !closed_choices(spec) {
        return Ok(v.to_string());
    }
    let lower = v.to_ascii_lowercase();
    let yes_no = spec.choices.contains(&"yes") && spec.choices.contains(&"no");
    let lower = match lower.as_str() {
        "y" | "true" if yes_no => "yes".to_string(),
        "n" | "false" if yes_no => "no".to_string(),
        _ => lower,
    };
    spec.choices
        .iter()
        .find(|c| c.eq_ignore_ascii_case(&lower))
        .map(|c| (*c).to_string())
        .ok_or_else(|| format!("`{}` takes {}, not {v:?}", spec.id, choices_text(spec)))
}

/// Answers given up front (`--answer ID=VALUE`, `--continue-incompatible`, the answers
/// file's `[answers]` table and its top-level `continue_*` keys), by question id, checked
/// against the questions this program declares. Flags win over the file.
#[derive(Clone, Debug, Default)]
pub struct AnswerStore {
    known: Vec<QuestionSpec>,
    given: BTreeMap<String, Answer>,
}

impl AnswerStore {
    /// An empty store accepting answers to `known`.
    pub fn new(known: Vec<QuestionSpec>) -> AnswerStore {
        AnswerStore {
            known,
            given: BTreeMap::new(),
        }
    }

    /// The declared question `id`.
    pub fn spec(&self, id: &str) -> Option<&QuestionSpec> {
        self.known.iter().find(|q| q.id == id)
    }

    /// The answer given for `id`.
    pub fn get(&self, id: &str) -> Option<&Answer> {
        self.given.get(id)
    }

    /// Every answer given, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Answer)> {
        self.given.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// True when nothing was given.
    pub fn is_empty(&self) -> bool {
        self.given.is_empty()
    }

    fn unknown(&self, id: &str) -> String {
        let ids: Vec<&str> = self.known.iter().map(|q| q.id).collect();
        format!(
            "no question has the id `{id}` (known: {})",
            if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(", ")
            }
        )
    }

    /// Checks `id` and `value`: the id is declared and the value is one of its answers.
    fn check(&self, id: &str, value: &str) -> Result<String, Check> {
        let spec = self
            .spec(id)
            .ok_or_else(|| Check::Unknown(self.unknown(id)))?;
        normalise(spec, value).map_err(Check::Value)
    }

    /// Adds the answers of an answers file: its `[answers]` table and the top-level aliases.
    ///
    /// # Errors
    /// `FILE:LINE:COLUMN: problem` for an unknown id (at its key), a bad value (at the value)
    /// or an alias that disagrees with the `[answers]` entry of the same id.
    pub fn add_file(&mut self, file: &Answers) -> Result<(), String> {
        for a in &file.answers {
            let value = self.check(&a.id, &a.value).map_err(|e| match e {
                Check::Unknown(m) => format!("{}: [answers]: {m}", file.at(a.key_at)),
                Check::Value(m) => format!("{}: [answers]: {m}", file.at(a.value_at)),
            })?;
            self.given.insert(
                a.id.clone(),
                Answer {
                    value,
                    source: AnswerSource::AnswersFile,
                },
            );
        }
        for (id, alias) in [
            (CONTINUE_INCOMPATIBLE.id, file.continue_incompatible),
            (
                CONTINUE_WITHOUT_SAFETY_BACKUP.id,
                file.continue_without_safety_backup,
            ),
            (
                CONTINUE_WITH_PBS_SERVICES_RUNNING.id,
                file.continue_with_pbs_services_running,
            ),
        ] {
            let Some(yes) = alias else { continue };
            let value = if yes { "yes" } else { "no" };
            match self.given.get(id) {
                Some(a) if a.value != value => {
                    let at = file
                        .answers
                        .iter()
                        .find(|x| x.id == id)
                        .map_or_else(|| file.at((1, 1)), |x| file.at(x.value_at));
                    return Err(format!(
                        "{at}: [answers]: `{id}` is {:?} here but {value:?} in the top-level key `{id} = {yes}`; keep one of them",
                        a.value
                    ));
                }
                Some(_) => {}
                None => {
                    self.given.insert(
                        id.to_string(),
                        Answer {
                            value: value.to_string(),
                            source: AnswerSource::AnswersFile,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Adds `--answer ID=VALUE` flags (and `--continue-incompatible`); they replace what the
    /// file said.
    ///
    /// # Errors
    /// An unknown id or a bad value, naming the flag; the same id given twice with two values.
    pub fn add_flags(
        &mut self,
        flags: &[(String, String)],
        continue_incompatible: bool,
    ) -> Result<(), String> {
        let mut from_flags: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut given: Vec<(String, String, String)> = flags
            .iter()
            .map(|(id, v)| (id.clone(), v.clone(), format!("--answer {id}={v}")))
            .collect();
        if continue_incompatible {
            given.push((
                CONTINUE_INCOMPATIBLE.id.to_string(),
                "yes".to_string(),
                "--continue-incompatible".to_string(),
            ));
        }
        for (id, raw, shown) in given {
            let value = self.check(&id, &raw).map_err(|e| match e {
                Check::Unknown(m) | Check::Value(m) => format!("{shown}: {m}"),
            })?;
            if let Some((other, other_shown)) = from_flags.get(&id)
                && *other != value
            {
                return Err(format!(
                    "{other_shown} and {shown} disagree; give `{id}` one answer"
                ));
            }
            from_flags.insert(id, (value, shown));
        }
        for (id, (value, _)) in from_flags {
            self.given.insert(
                id,
                Answer {
                    value,
                    source: AnswerSource::Flag,
                },
            );
        }
        Ok(())
    }
}

enum Check {
    Unknown(String),
    Value(String),
}

/// What a question without an answer in a non-interactive run says: its id and how to answer
/// it up front.
pub fn missing_answer(id: &str) -> String {
    let known = known_questions();
    let spec = known.iter().find(|q| q.id == id);
    let about = spec.map(|q| format!(" ({})", q.prompt)).unwrap_or_default();
    let values = spec
        .map(|q| format!("; VALUE: {}", choices_text(q)))
        .unwrap_or_default();
    match own_flag(id) {
        // The flag first, then the answers-file key (as the plan's decisions are named).
        Some(flag) => format!(
            "no answer to question `{id}`{about} in a non-interactive run: give {flag} (answers file key `{id}`), or answer it with --answer {id}=VALUE or \"{id}\" = \"VALUE\" in the answers file's [answers] table{values}"
        ),
        None => format!(
            "no answer to question `{id}`{about} in a non-interactive run: answer it with --answer {id}=VALUE, or with \"{id}\" = \"VALUE\" in the answers file's [answers] table{values}"
        ),
    }
}

/// Report lines for the engine's questions answered in this run (asked, or given up front
/// even when never asked, so a dry run shows them too).
pub fn engine_records(console: &Console) -> Vec<QuestionRecord> {
    ENGINE_QUESTIONS
        .iter()
        .filter_map(|q| {
            let answer = console
                .confirmed
                .iter()
                .rev()
                .find(|(id, _)| *id == q.id)
                .map(|(_, a)| a.clone())
                .or_else(|| console.answers.get(q.id).cloned())?;
            Some(QuestionRecord {
                id: q.id.to_string(),
                prompt: q.prompt.to_string(),
                choices: q.choices.iter().map(|c| c.to_string()).collect(),
                default: None,
                answer: Some(answer.value),
                source: Some(answer.source),
            })
        })
        .collect()
}

pub(super) fn prompt_exit(e: PromptError) -> Exit {
    match e {
        PromptError::Aborted => Exit::Aborted,
        PromptError::Missing { id, .. } => Exit::Usage(missing_answer(id)),
        other => Exit::Usage(other.to_string()),
    }
}

/// One backup offered in the menu: found in a local folder, or on an rclone remote (fetched
/// like `--backup REMOTE:PATH` once chosen).
enum Offered<'a> {
    Local(&'a Backup),
    Remote(&'a super::super::rclone::RemoteBackup),
}

pub(super) fn choose_backup(console: &Console, config: &Config) -> Result<Backup, Exit> {
    let found = list::scan_sources(config)?;
    let mut sources: Vec<(&crate::config::Source, Option<&[Backup]>)> = Vec::new();
    for source in &config.sources {
        if source.remote {
            sources.push((source, None));
        } else if let Some((_, b)) = found
            .iter()
            .find(|(s, b)| s.location == source.location && !b.is_empty())
        {
            sources.push((source, Some(b.as_slice())));
        }
    }
    if sources.is_empty() {
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
    let labels: Vec<String> = sources
        .iter()
        .map(|(s, _)| format!("{}: {}", s.label, s.location))
        .collect();
    let chosen = console
        .menu("Select backup source:", &labels, "Cancel")
        .map_err(prompt_exit)?;
    let (source, local) = sources[chosen];
    // A remote is listed when chosen, with the same code as `proxsave list`, newest first.
    let remote = match local {
        Some(_) => Vec::new(),
        None => {
            console.line(&format!("Listing {} with rclone…", source.location));
            let (backups, skipped) = super::super::rclone::scan(&source.location)
                .map_err(|e| Exit::Failure(anyhow::anyhow!("{}: {e}", source.location)))?;
            for (p, why) in &skipped {
                console.line(&format!("warning: skipped {p}: {why}"));
            }
            if backups.is_empty() {
                return Err(Exit::Failure(anyhow::anyhow!(
                    "no backups found on {}",
                    source.location
                )));
            }
            backups
        }
    };
    let offered: Vec<Offered> = match local {
        Some(b) => b.iter().map(Offered::Local).collect(),
        None => remote.iter().map(Offered::Remote).collect(),
    };
    loop {
        console.line("");
        console.line("Available backups:");
        for (i, o) in offered.iter().enumerate() {
            let (name, m, encrypted) = match o {
                Offered::Local(b) => (
                    b.display_name().to_string(),
                    &b.manifest,
                    b.declared_encrypted(),
                ),
                Offered::Remote(r) => (
                    r.name.trim_end_matches(".bundle.tar").to_string(),
                    &r.manifest,
                    r.manifest.is_encrypted(),
                ),
            };
            console.line(&format!("  [{}] {name}", i + 1));
            console.line(&format!("      Created: {}", m.created_at.display()));
            console.line(&format!(
                "      Encrypted: {}",
                if encrypted { "Yes (AGE)" } else { "No" }
            ));
            console.line(&format!(
                "      Tool Version: {}",
                m.display_tool().trim_start_matches("Tool ")
            ));
            console.line(&format!("      System: {}", m.display_target()));
            if let Offered::Remote(r) = o {
                console.line(&format!(
                    "      Size: {}",
                    crate::output::human_bytes(r.size)
                ));
            }
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
            Ok(n) if n <= offered.len() => {
                return match &offered[n - 1] {
                    Offered::Local(b) => Ok((*b).clone()),
                    Offered::Remote(r) => {
                        Ok(crate::commands::open_backup(std::path::Path::new(&r.path))?)
                    }
                };
            }
            _ => console.line(&format!("Invalid choice {a:?}.")),
        }
    }
}

/// Edit distance between two ids (for "did you mean").
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The registered category id nearest to `id`.
pub fn nearest_category(id: &str) -> &'static str {
    let id = id.to_ascii_lowercase();
    proxsave_categories::registry()
        .iter()
        .map(|c| c.id)
        .min_by_key(|c| {
            // A shared word (`storage` for `pve_storage`) counts as close.
            let shared = c.split('_').any(|w| id.split(['_', '-']).any(|x| x == w));
            (
                distance(&id, c).saturating_sub(if shared { 3 } else { 0 }),
                *c,
            )
        })
        .unwrap_or("")
}

/// Checks the ids of `--categories` (or the answers file's `categories`) before anything is
/// read: an item without `/`, `*` or `?` must be a category id.
///
/// # Errors
/// Exit 2 naming the first unknown id and the nearest known one.
pub fn check_category_ids(items: &[String]) -> Result<(), Exit> {
    for item in items {
        let item = item.trim();
        if item.contains(['/', '*', '?']) || proxsave_categories::by_id(item).is_some() {
            continue;
        }
        return Err(Exit::Usage(format!(
            "--categories: `{item}` is neither a category id nor a path (paths start with /); did you mean `{}`? (`proxsave categories` lists the ids)",
            nearest_category(item)
        )));
    }
    Ok(())
}

/// Why a mode cannot be chosen for this host and backup (it would select nothing), if so.
pub(super) fn mode_unavailable(mode: Mode, host: HostRole, scan: &Scan) -> Option<String> {
    if mode == Mode::Custom
        || !proxsave_categories::categories_for_mode(mode, host, &scan.analysis.available)
            .is_empty()
    {
        return None;
    }
    Some(if host == HostRole::Unknown && mode == Mode::Storage {
        "not available: this host's type (PVE/PBS) is unknown".to_string()
    } else {
        "not available: this backup holds none of its categories for this host".to_string()
    })
}

pub(super) fn choose_mode(console: &Console, host: HostRole, scan: &Scan) -> Result<Mode, Exit> {
    let modes = [Mode::Full, Mode::Storage, Mode::Base, Mode::Custom];
    let why: Vec<Option<String>> = modes
        .iter()
        .map(|m| mode_unavailable(*m, host, scan))
        .collect();
    loop {
        console.line("Select restore mode:");
        for (i, m) in modes.iter().enumerate() {
            match &why[i] {
                None => console.line(&format!("  [{}] {}", i + 1, m.menu_label(host))),
                Some(w) => console.line(&format!("  [-] {} ({w})", m.menu_label(host))),
            }
        }
        console.line("  [0] Cancel");
        console.prompt("Choice: ");
        let answer = console
            .read_line(None)
            .map_err(prompt_exit)?
            .unwrap_or_default();
        match answer.parse::<usize>() {
            Ok(0) => return Err(Exit::Aborted),
            Ok(n) if n <= modes.len() => match &why[n - 1] {
                None => return Ok(modes[n - 1]),
                Some(w) => console.line(&format!("{}: {w}.", modes[n - 1].menu_label(host))),
            },
            _ => console.line(&format!(
                "Invalid choice {answer:?}: enter the number of an available mode, or 0."
            )),
        }
    }
}

pub(super) fn choose_categories(
    console: &Console,
    scan: &Scan,
    host: HostRole,
) -> Result<Vec<String>, Exit> {
    // Every category the backup holds; those that cannot be written on this host are
    // listed too, with why they only reach the export folder.
    let mut cats: Vec<_> = scan.analysis.available.to_vec();
    cats.sort_by_key(|c| (!c.fits(host), c.kind == Kind::Common, c.name));
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
            if let Some(why) = export_only_reason(c, host) {
                console.line(&format!("      (export only: {why})"));
            }
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

/// Why a category only reaches the export folder on this host, if it does.
fn export_only_reason(c: &proxsave_categories::Category, host: HostRole) -> Option<String> {
    if c.handling == proxsave_categories::Handling::ExportOnly {
        return Some("never written to system paths".into());
    }
    if !c.fits(host) {
        let kind = match c.kind {
            Kind::Pve => "PVE",
            Kind::Pbs => "PBS",
            Kind::Common => "common",
        };
        return Some(match host {
            HostRole::Unknown => format!("a {kind} category, and this host's type is unknown"),
            _ => format!("a {kind} category, and this host is not {kind}"),
        });
    }
    None
}

pub(super) fn ask_decision(console: &Console, d: Decision, req: &mut Request) -> Result<(), Exit> {
    match d {
        Decision::ClusterMode => {
            let i = console
                .menu(
                    "Cluster backup detected. Choose how to restore the cluster database:",
                    &[
                        "SAFE: Do NOT write /var/lib/pve-cluster/config.db. Export cluster files only (manual/apply via API).".into(),
                        "RECOVERY: Restore full cluster database (/var/lib/pve-cluster). Use only when cluster is offline/isolated. Stops pve-cluster, pvedaemon, pveproxy and pvestatd; on a node with active HA resources the watchdog may fence (hard-reset) it while they are down: migrate or disable HA resources first.".into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    const MERGE: QuestionSpec = QuestionSpec {
        id: "fstab.merge",
        prompt: "Add which mounts to /etc/fstab?",
        choices: &["all", "none", "<mountpoint>,…"],
    };
    const ACCOUNTS: QuestionSpec = QuestionSpec {
        id: "accounts.merge",
        prompt: "Merge the backup's users?",
        choices: &["yes", "no"],
    };

    fn store() -> AnswerStore {
        let mut known = ENGINE_QUESTIONS.to_vec();
        known.extend([MERGE, ACCOUNTS]);
        AnswerStore::new(known)
    }

    fn file(text: &str) -> (tempfile::TempDir, Answers) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        std::fs::write(&p, text).unwrap();
        let a = Answers::load(&p).unwrap();
        (dir, a)
    }

    fn flags(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn got(s: &AnswerStore, id: &str) -> Option<(String, AnswerSource)> {
        s.get(id).map(|a| (a.value.clone(), a.source))
    }

    #[test]
    fn the_engine_questions_are_known_to_the_binary() {
        let ids: Vec<&str> = known_questions().iter().map(|q| q.id).collect();
        assert_eq!(
            ids[..3],
            [
                "continue_incompatible",
                "continue_without_safety_backup",
                "continue_with_pbs_services_running"
            ]
        );
    }

    #[test]
    fn values_are_checked_against_fixed_choices_only() {
        assert_eq!(normalise(&ACCOUNTS, " Y ").unwrap(), "yes");
        assert_eq!(normalise(&ACCOUNTS, "false").unwrap(), "no");
        assert_eq!(normalise(&ACCOUNTS, "NO").unwrap(), "no");
        assert_eq!(
            normalise(&ACCOUNTS, "maybe").unwrap_err(),
            "`accounts.merge` takes yes or no, not \"maybe\""
        );
        // An open answer (`<mountpoint>,…`) is the applier's to check; only trimmed here.
        assert_eq!(normalise(&MERGE, " /mnt/a,/srv ").unwrap(), "/mnt/a,/srv");
        assert_eq!(normalise(&MERGE, "ALL").unwrap(), "ALL");
        assert_eq!(
            normalise(&MERGE, "  ").unwrap_err(),
            "`fstab.merge` needs an answer: all, none or <mountpoint>,…"
        );
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_nothing() {
        let (_d, a) = file(
            "continue_with_pbs_services_running = true\n[answers]\n\"fstab.merge\" = \"none\"\naccounts.merge = false\n",
        );
        let mut s = store();
        s.add_file(&a).unwrap();
        s.add_flags(&flags(&[("fstab.merge", "/srv/data")]), true)
            .unwrap();
        assert_eq!(
            got(&s, "fstab.merge"),
            Some(("/srv/data".into(), AnswerSource::Flag))
        );
        assert_eq!(
            got(&s, "accounts.merge"),
            Some(("no".into(), AnswerSource::AnswersFile))
        );
        assert_eq!(
            got(&s, "continue_with_pbs_services_running"),
            Some(("yes".into(), AnswerSource::AnswersFile))
        );
        assert_eq!(
            got(&s, "continue_incompatible"),
            Some(("yes".into(), AnswerSource::Flag))
        );
        assert_eq!(got(&s, "continue_without_safety_backup"), None);
        let ids: Vec<&str> = s.iter().map(|(id, _)| id).collect();
        assert_eq!(ids.len(), 4);
    }

    #[test]
    fn unknown_ids_are_named_with_their_position() {
        let (_d, a) = file(
            "mode = \"full\"\n[answers]\n\"fstab.merge\" = \"all\"\n  fstab.mrege = \"all\"\n",
        );
        let e = store().add_file(&a).unwrap_err();
        let at = a.path.as_ref().unwrap().display().to_string();
        assert_eq!(
            e,
            format!(
                "{at}:4:3: [answers]: no question has the id `fstab.mrege` (known: continue_incompatible, continue_without_safety_backup, continue_with_pbs_services_running, fstab.merge, accounts.merge)"
            )
        );
        let e = store()
            .add_flags(&flags(&[("nope", "yes")]), false)
            .unwrap_err();
        assert!(
            e.starts_with("--answer nope=yes: no question has the id `nope`"),
            "{e}"
        );
        // With no question declared at all.
        let e = AnswerStore::default()
            .add_flags(&flags(&[("x", "y")]), false)
            .unwrap_err();
        assert_eq!(e, "--answer x=y: no question has the id `x` (known: none)");
    }

    #[test]
    fn repeated_flags_must_agree_and_the_file_alias_must_match_its_table_entry() {
        let mut s = store();
        s.add_flags(
            &flags(&[("accounts.merge", "yes"), ("accounts.merge", "y")]),
            false,
        )
        .unwrap();
        assert_eq!(
            got(&s, "accounts.merge"),
            Some(("yes".into(), AnswerSource::Flag))
        );
        let e = store()
            .add_flags(&flags(&[("continue_incompatible", "no")]), true)
            .unwrap_err();
        assert_eq!(
            e,
            "--answer continue_incompatible=no and --continue-incompatible disagree; give `continue_incompatible` one answer"
        );
        let (_d, a) =
            file("continue_incompatible = false\n[answers]\ncontinue_incompatible = \"yes\"\n");
        let e = store().add_file(&a).unwrap_err();
        assert!(e.contains(":3:25: [answers]: `continue_incompatible` is \"yes\" here but \"no\" in the top-level key `continue_incompatible = false`"), "{e}");
    }

    #[test]
    fn the_missing_answer_message_names_the_id_and_both_ways() {
        assert_eq!(
            missing_answer("continue_incompatible"),
            "no answer to question `continue_incompatible` (The backup comes from another kind of system (PVE/PBS) than this host: continue anyway?) in a non-interactive run: give --continue-incompatible (answers file key `continue_incompatible`), or answer it with --answer continue_incompatible=VALUE or \"continue_incompatible\" = \"VALUE\" in the answers file's [answers] table; VALUE: yes or no"
        );
        assert_eq!(
            missing_answer("x.y"),
            "no answer to question `x.y` in a non-interactive run: answer it with --answer x.y=VALUE, or with \"x.y\" = \"VALUE\" in the answers file's [answers] table"
        );
    }
}
