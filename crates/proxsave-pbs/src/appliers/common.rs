//! What the PBS object appliers share: reading staged section-config files, the owners and
//! modes PBS gives its files, merge/clean of sections, the API sync of one object kind through
//! `proxmox-backup-manager`, and the outcome of a run.
//!
//! Secrets: values of the keys a kind marks secret are passed to the CLI as secret options
//! (shown `--key=<redacted>`), never put into a message, and shown as `<redacted>` in planned
//! file changes.

use proxsave_archive::path::ArchivePath;
use proxsave_formats::section::{self, Section, SectionConfig};
use proxsave_restore::applier::{
    Answer, ApplyError, ChangeKind, FileSpec, Outcome, PlannedChange, QuestionSpec, Stage, Status,
};
use proxsave_restore::host::REDACTED;
use proxsave_restore::plan::{PbsBehavior, Plan};
use proxsave_restore::roothandle::RootHandle;
use serde_json::Value;

use crate::chunkstore;
use crate::pbm::{Arg, Call, Pbm, PbmError};

/// `--pbs-behavior` of the run (merge when not given).
pub fn behavior(plan: &Plan) -> PbsBehavior {
    plan.pbs_behavior.unwrap_or(PbsBehavior::Merge)
}

/// `merge` / `clean`.
pub fn mode_word(m: PbsBehavior) -> &'static str {
    match m {
        PbsBehavior::Merge => "merge",
        PbsBehavior::Clean => "clean",
    }
}

/// An archive path from a constant.
pub fn ap(p: &str) -> ArchivePath {
    ArchivePath::from_user(p).unwrap_or_else(|_| unreachable!("constant path {p}"))
}

/// `yes`/`no` answer of question `q`.
pub fn yes_no(q: &QuestionSpec, a: &Answer) -> Result<bool, ApplyError> {
    match a.value.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" => Ok(true),
        "no" | "n" => Ok(false),
        other => Err(ApplyError::BadAnswer {
            id: q.id,
            reason: format!("`{other}` is not `yes` or `no`"),
        }),
    }
}

/// `root:backup 0640` (`replace_backup_config`), the backup group looked up in the root.
pub fn cfg_spec(root: &RootHandle) -> FileSpec {
    FileSpec {
        mode: Some(0o640),
        uid: Some(0),
        gid: chunkstore::backup_owner(root)
            .ok()
            .map(|o| o.gid)
            .or(Some(0)),
        backup_stamp: None,
    }
}

/// `root:root 0600` (`replace_secret_config`).
pub fn secret_spec() -> FileSpec {
    FileSpec {
        mode: Some(0o600),
        uid: Some(0),
        gid: Some(0),
        backup_stamp: None,
    }
}

/// A staged file as read for applying.
#[derive(Debug)]
pub enum Staged {
    /// Not in the backup.
    Absent,
    /// Present but not usable (empty, not text, not section config): why.
    Unusable(String),
    /// A section-config file PBS loads.
    Cfg(SectionConfig),
}

/// Reads a staged section-config file with PBS's grammar (`rel` like
/// `etc/proxmox-backup/remote.cfg`).
///
/// # Errors
/// The stage cannot be read.
pub fn read_staged(stage: &Stage, rel: &str) -> Result<Staged, ApplyError> {
    let Some(bytes) = stage.read(&ap(rel))? else {
        return Ok(Staged::Absent);
    };
    Ok(parse_bytes(&bytes, rel))
}

/// [`read_staged`] on bytes already read.
pub fn parse_bytes(bytes: &[u8], rel: &str) -> Staged {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Staged::Unusable(format!("the backup's /{rel} is not text: not written"));
    };
    if text.trim().is_empty() {
        return Staged::Unusable(format!(
            "the backup's /{rel} is empty: not written (the host's is kept)"
        ));
    }
    match parse_pbs(text) {
        Ok(c) if c.sections.is_empty() => Staged::Unusable(format!(
            "the backup's /{rel} has no section: not written (the host's is kept)"
        )),
        Ok(c) => Staged::Cfg(c),
        Err(d) => Staged::Unusable(format!(
            "the backup's /{rel} is not a valid section-config file ({d}): not written"
        )),
    }
}

/// The live file parsed (`None` when absent or not loadable).
pub fn read_live(root: &RootHandle, rel: &str) -> Option<SectionConfig> {
    let bytes = root.read(&ap(rel)).ok().flatten()?;
    let text = String::from_utf8(bytes).ok()?;
    if text.trim().is_empty() {
        return Some(SectionConfig::new());
    }
    parse_pbs(&text).ok()
}

/// Keys that PBS's schemas declare as arrays: one line per item, so they repeat.
pub const ARRAY_KEYS: &[&str] = &[
    "group-filter",
    "network",
    "timeframe",
    "mailto",
    "mailto-user",
    "match-field",
    "match-severity",
    "match-calendar",
    "target",
    "header",
    "secret",
];

/// Parses a PBS section-config file with `proxmox-section-config`'s grammar (as
/// [`section::parse_strict`]), the keys of [`ARRAY_KEYS`] allowed to repeat.
///
/// # Errors
/// The first line PBS would refuse.
pub fn parse_pbs(text: &str) -> Result<SectionConfig, section::Diag> {
    let err = |line: usize, message: &str| section::Diag {
        line,
        message: message.to_string(),
    };
    let mut cfg = SectionConfig::new();
    let mut current: Option<Section> = None;
    for (n, raw) in text.lines().enumerate() {
        let n = n + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            if let Some(s) = current.take() {
                cfg.push(s);
            }
            continue;
        }
        if line.trim_start().starts_with('#') {
            continue;
        }
        if let Some(sec) = current.as_mut() {
            if !line.starts_with(char::is_whitespace) {
                return Err(err(n, "syntax error (expected section properties)"));
            }
            let body = line.trim();
            let Some((k, v)) = body.split_once(char::is_whitespace) else {
                return Err(err(n, "syntax error (expected section properties)"));
            };
            if sec.has(k) && !ARRAY_KEYS.contains(&k) {
                return Err(err(
                    n,
                    &format!(
                        "duplicate property '{k}' in section '{}: {}'",
                        sec.ty, sec.id
                    ),
                ));
            }
            sec.props.push(section::Prop::new(k, v.trim()));
            continue;
        }
        let ok_start = line.chars().next().is_some_and(char::is_alphabetic);
        let Some((ty, id)) = line.split_once(':').filter(|_| ok_start) else {
            return Err(err(n, "syntax error (expected header)"));
        };
        let (ty, id) = (ty.trim(), id.trim());
        if ty.is_empty() || id.is_empty() {
            return Err(err(n, "syntax error (expected header)"));
        }
        if cfg.sections.iter().any(|s| s.id == id) {
            return Err(err(n, &format!("duplicate section id '{id}'")));
        }
        current = Some(Section::new(ty, id));
    }
    if let Some(s) = current.take() {
        cfg.push(s);
    }
    Ok(cfg)
}

/// The `proxmox-section-config` writer: `type: id`, `\tkey value`, one empty line between
/// sections, none at the end.
pub fn render_pbs<'a>(sections: impl IntoIterator<Item = &'a Section>) -> String {
    let mut out = String::new();
    for s in sections {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("{}: {}\n", s.ty, s.id));
        for p in &s.props {
            match &p.value {
                Some(v) if !v.is_empty() => out.push_str(&format!("\t{} {v}\n", p.key)),
                _ => out.push_str(&format!("\t{}\n", p.key)),
            }
        }
    }
    out
}

/// [`render_pbs`] with the values of `secret_keys` shown as `<redacted>` (for plans).
pub fn render_shown<'a>(
    sections: impl IntoIterator<Item = &'a Section>,
    secret_keys: &[&str],
) -> String {
    let shown: Vec<Section> = sections
        .into_iter()
        .map(|s| {
            let mut s = s.clone();
            for p in &mut s.props {
                if secret_keys.contains(&p.key.as_str()) {
                    p.value = Some(REDACTED.to_string());
                }
            }
            s
        })
        .collect();
    render_pbs(shown.iter())
}

/// Merge of sections: the live ones, each replaced by the backup's of the same type and id,
/// then the backup's new ones.
pub fn merge_sections(live: &SectionConfig, backup: &SectionConfig) -> Vec<Section> {
    let mut out: Vec<Section> = live
        .sections
        .iter()
        .map(|s| {
            backup
                .sections
                .iter()
                .find(|b| b.ty == s.ty && b.id == s.id)
                .cloned()
                .unwrap_or_else(|| s.clone())
        })
        .collect();
    for b in &backup.sections {
        if !out.iter().any(|s| s.ty == b.ty && s.id == b.id) {
            out.push(b.clone());
        }
    }
    out
}

/// The outcome of one category's run.
#[derive(Default, Debug)]
pub struct Run {
    /// What was done.
    pub done: Vec<String>,
    /// What failed (no secret in it).
    pub failed: Vec<String>,
    /// What was not applied and why.
    pub skipped: Vec<String>,
    /// Other notes.
    pub notes: Vec<String>,
}

impl Run {
    /// The category's outcome.
    pub fn outcome(&self, category: &str) -> Outcome {
        let mut lines = Vec::new();
        if !self.failed.is_empty() {
            lines.push(format!("failed: {}", self.failed.join("; ")));
        }
        if !self.skipped.is_empty() {
            lines.push(format!("not applied: {}", self.skipped.join("; ")));
        }
        if !self.done.is_empty() {
            lines.push(format!("done: {}", self.done.join("; ")));
        }
        lines.extend(self.notes.iter().cloned());
        let status = if !self.failed.is_empty() {
            if self.done.is_empty() {
                Status::Failed {
                    error: self.failed.join("; "),
                }
            } else {
                Status::PartlyApplied
            }
        } else if self.done.is_empty() && !self.skipped.is_empty() {
            Status::Skipped {
                reason: self.skipped.join("; "),
            }
        } else {
            Status::Applied
        };
        Outcome::new(category, status, lines.join("\n"))
    }
}

/// One kind of object of the PBS API.
#[derive(Debug)]
pub struct ApiKind {
    /// As named in messages (`remote`, `sync job`).
    pub label: &'static str,
    /// Command words (`["remote"]`, `["notification", "endpoint", "gotify"]`).
    pub words: &'static [&'static str],
    /// Keys of a `list` row that hold the id.
    pub id_keys: &'static [&'static str],
    /// Verb that removes (`remove`; `delete` for notification objects).
    pub remove_verb: &'static str,
    /// Keys whose values are secrets.
    pub secret_keys: &'static [&'static str],
    /// Keys an update may delete (`--delete KEY`; PBS's `DeletableProperty`): in clean mode,
    /// those the host's object has and the backup's lacks are deleted.
    pub deletable: &'static [&'static str],
}

/// One object as the backup has it: its id and its options.
#[derive(Debug, Clone)]
pub struct Desired {
    /// The id.
    pub id: String,
    /// Options (`--key=value`, secrets marked).
    pub args: Vec<Arg>,
}

impl Desired {
    /// From a section: every property an option; `secret_keys` marked secret.
    pub fn from_section(s: &Section, secret_keys: &[&str]) -> Desired {
        let args = s
            .props
            .iter()
            .map(|p| {
                let v = p.effective().to_string();
                if secret_keys.contains(&p.key.as_str()) {
                    Arg::secret(&p.key, v)
                } else {
                    Arg::new(&p.key, v)
                }
            })
            .collect();
        Desired {
            id: s.id.clone(),
            args,
        }
    }
}

/// The host's objects of a kind: `(id, row)`.
///
/// # Errors
/// The API does not answer.
pub fn list(pbm: &Pbm<'_>, kind: &ApiKind) -> Result<Vec<(String, Value)>, PbmError> {
    pbm.version()?;
    let rows = pbm.list(kind.words)?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let id = kind
                .id_keys
                .iter()
                .find_map(|k| r.get(*k).and_then(Value::as_str))?
                .to_string();
            Some((id, r))
        })
        .collect())
}

/// What an API sync did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Synced {
    /// A create or update failed.
    pub failed: bool,
    /// A removal failed (clean mode never falls back to a file after one).
    pub remove_failed: bool,
}

fn call(kind: &ApiKind, verb: &str, id: &str) -> Call {
    let mut words: Vec<&str> = kind.words.to_vec();
    words.push(verb);
    Call::new(words, [id])
}

/// Clean mode: removes the host's objects (from `current`) that the backup lacks (`backup`:
/// the ids the backup has, usable or not) and `keep` does not protect.
pub fn remove_extra(
    pbm: &Pbm<'_>,
    kind: &ApiKind,
    current: &[(String, Value)],
    backup: &[String],
    keep: &dyn Fn(&Value) -> bool,
    run: &mut Run,
) -> Synced {
    let mut s = Synced::default();
    for (id, row) in current {
        if backup.contains(id) || keep(row) {
            continue;
        }
        match pbm.call(&call(kind, kind.remove_verb, id)) {
            Ok(_) => run
                .done
                .push(format!("{} {id} removed (clean mode)", kind.label)),
            Err(e) => {
                s.remove_failed = true;
                run.failed
                    .push(format!("{} {id}: removal failed: {e}", kind.label));
            }
        }
    }
    s
}

/// Creates the objects the host lacks and updates the others; in clean mode an update also
/// deletes the properties the backup's object lacks.
pub fn upsert(
    pbm: &Pbm<'_>,
    kind: &ApiKind,
    current: &[(String, Value)],
    desired: &[Desired],
    mode: PbsBehavior,
    run: &mut Run,
) -> Synced {
    let mut s = Synced::default();
    for d in desired {
        let row = current.iter().find(|(id, _)| *id == d.id).map(|(_, r)| r);
        let mut create = call(kind, "create", &d.id);
        create.args = d.args.clone();
        let mut update = call(kind, "update", &d.id);
        update.args = d.args.clone();
        if let (Some(row), PbsBehavior::Clean) = (row, mode) {
            if let Some(obj) = row.as_object() {
                for k in obj.keys() {
                    let delete =
                        kind.deletable.contains(&k.as_str()) && !d.args.iter().any(|a| a.key == *k);
                    if delete {
                        update.args.push(Arg::new("delete", k));
                    }
                }
            }
        }
        let result = if row.is_some() {
            pbm.call(&update).map(|_| "updated")
        } else {
            match pbm.call(&create) {
                Ok(_) => Ok("created"),
                Err(PbmError::AlreadyExists { .. }) => pbm.call(&update).map(|_| "updated"),
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(what) => run.done.push(format!("{} {} {what}", kind.label, d.id)),
            Err(e) => {
                s.failed = true;
                run.failed.push(format!("{} {}: {e}", kind.label, d.id));
            }
        }
    }
    s
}

/// The planned API changes of a kind (calls shown with secrets redacted).
pub fn plan_calls(
    kind: &ApiKind,
    current: &[(String, Value)],
    desired: &[Desired],
    backup: &[String],
    mode: PbsBehavior,
    keep: &dyn Fn(&Value) -> bool,
) -> Vec<PlannedChange> {
    let mut out = Vec::new();
    let target = |id: &str| format!("pbs:{}/{id}", kind.words.join("/"));
    if mode == PbsBehavior::Clean {
        for (id, row) in current {
            if backup.contains(id) || keep(row) {
                continue;
            }
            out.push(PlannedChange::call(
                &target(id),
                ChangeKind::Delete,
                call(kind, kind.remove_verb, id).to_string(),
                None,
                None,
            ));
        }
    }
    for d in desired {
        let exists = current.iter().any(|(id, _)| *id == d.id);
        let mut c = call(kind, if exists { "update" } else { "create" }, &d.id);
        c.args = d.args.clone();
        out.push(PlannedChange::call(
            &target(&d.id),
            if exists {
                ChangeKind::Set
            } else {
                ChangeKind::Create
            },
            c.to_string(),
            None,
            None,
        ));
    }
    out
}

/// Writes `text` to `rel` (atomically, with `spec`), recording it in `run`.
pub fn write_file(root: &RootHandle, rel: &str, text: &str, spec: &FileSpec, run: &mut Run) {
    match root.replace(&ap(rel), text.as_bytes(), spec) {
        Ok(_) => run.done.push(format!("/{rel} written")),
        Err(e) => run.failed.push(format!("/{rel}: {e}")),
    }
}

/// The file change of a plan, secrets shown as `<redacted>`.
pub fn plan_file(
    root: &RootHandle,
    rel: &str,
    after: &[Section],
    secret_keys: &[&str],
) -> PlannedChange {
    let before = read_live(root, rel).map(|c| render_shown(c.sections.iter(), secret_keys));
    let before = before.or_else(|| {
        root.read(&ap(rel))
            .ok()
            .flatten()
            .map(|_| "(a file PBS cannot load)\n".to_string())
    });
    let after = render_shown(after.iter(), secret_keys);
    PlannedChange::file(
        &format!("/{rel}"),
        before.as_deref().map(str::as_bytes),
        Some(after.as_bytes()),
    )
}

/// A section-config file whose objects go through the API.
#[derive(Debug)]
pub struct ApiFile {
    /// The file (`etc/proxmox-backup/remote.cfg`).
    pub rel: &'static str,
    /// The API kind of its sections.
    pub kind: &'static ApiKind,
    /// True for a secret file (`root:root 0600`).
    pub secret_file: bool,
}

/// Applies one API file: `desired` are the backup's objects (built by the caller from
/// `cfg`). With the API: clean removes first, then creates/updates; a failed create/update
/// in clean mode writes the backup's file instead — never after a failed removal. Without the
/// API: clean writes the file, merge skips and says so.
#[allow(clippy::too_many_arguments)]
pub fn apply_api_file(
    root: &RootHandle,
    pbm: &Pbm<'_>,
    f: &ApiFile,
    cfg: &SectionConfig,
    desired: &[Desired],
    mode: PbsBehavior,
    keep: &dyn Fn(&Value) -> bool,
    run: &mut Run,
) {
    let mut fallback = false;
    match pbm.version().and_then(|_| list(pbm, f.kind)) {
        Err(e) if e.is_unavailable() || pbm.version().is_err() => match mode {
            PbsBehavior::Merge => run.skipped.push(format!(
                "{}s: the PBS API is not available ({e}): not applied (merge mode never rewrites /{})",
                f.kind.label, f.rel
            )),
            PbsBehavior::Clean => {
                run.notes.push(format!(
                    "{}s: the PBS API is not available ({e}): /{} is written as a file (clean mode)",
                    f.kind.label, f.rel
                ));
                fallback = true;
            }
        },
        Err(e) => match mode {
            PbsBehavior::Merge => run
                .failed
                .push(format!("{}s: cannot list them: {e}", f.kind.label)),
            PbsBehavior::Clean => {
                run.notes.push(format!(
                    "{}s: cannot list them ({e}): /{} is written as a file (clean mode)",
                    f.kind.label, f.rel
                ));
                fallback = true;
            }
        },
        Ok(current) => {
            let mut removal = Synced::default();
            if mode == PbsBehavior::Clean {
                let backup: Vec<String> = cfg.sections.iter().map(|s| s.id.clone()).collect();
                removal = remove_extra(pbm, f.kind, &current, &backup, keep, run);
            }
            let failed_before = run.failed.len();
            let up = upsert(pbm, f.kind, &current, desired, mode, run);
            if mode == PbsBehavior::Clean && up.failed {
                if removal.remove_failed {
                    run.notes.push(format!(
                        "clean 1:1 incomplete: a {} could not be removed, so /{} is not rewritten after the failed calls",
                        f.kind.label, f.rel
                    ));
                } else {
                    let moved: Vec<String> = run.failed.drain(failed_before..).collect();
                    run.notes.push(format!(
                        "clean mode: an API call failed ({}): /{} is written as a file instead",
                        moved.join("; "),
                        f.rel
                    ));
                    fallback = true;
                }
            } else if removal.remove_failed {
                run.notes.push(format!(
                    "clean 1:1 incomplete: a {} could not be removed (see above)",
                    f.kind.label
                ));
            }
        }
    }
    if fallback {
        let spec = if f.secret_file {
            secret_spec()
        } else {
            cfg_spec(root)
        };
        write_file(root, f.rel, &render_pbs(cfg.sections.iter()), &spec, run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbs_grammar_allows_array_keys_only_to_repeat() {
        let c =
            parse_pbs("sync: a\n\tgroup-filter type:vm\n\tgroup-filter group:vm/1\n\tstore s\n")
                .expect("arrays repeat");
        assert_eq!(
            c.sections[0].get_all("group-filter"),
            ["type:vm", "group:vm/1"]
        );
        let e = parse_pbs("sync: a\n\tstore s\n\tstore t\n").expect_err("duplicate");
        assert_eq!(e.line, 3);
        let e = parse_pbs("remote: a\nhost x\n").expect_err("not indented");
        assert_eq!(
            (e.line, e.message.as_str()),
            (2, "syntax error (expected section properties)")
        );
        assert!(parse_pbs("remote: a\n\thost x\nremote: b\n").is_err());
        assert!(matches!(parse_bytes(b"  \n", "x.cfg"), Staged::Unusable(_)));
        assert!(matches!(
            parse_bytes(b"plain text\n", "x.cfg"),
            Staged::Unusable(_)
        ));
    }

    #[test]
    fn merge_keeps_the_hosts_others_and_render_is_pbs_style() {
        let live = parse_pbs("pool: a\n\tallocation x\n\npool: b\n\tallocation y\n").expect("ok");
        let backup = parse_pbs("pool: b\n\tallocation z\n\npool: c\n\tallocation w\n").expect("ok");
        let m = merge_sections(&live, &backup);
        assert_eq!(
            render_pbs(m.iter()),
            "pool: a\n\tallocation x\n\npool: b\n\tallocation z\n\npool: c\n\tallocation w\n"
        );
        assert_eq!(
            render_shown(backup.sections.iter(), &["allocation"]),
            "pool: b\n\tallocation <redacted>\n\npool: c\n\tallocation <redacted>\n"
        );
    }
}
