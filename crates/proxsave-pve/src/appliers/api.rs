//! What the three API appliers share: the gates (RECOVERY, deferred host actions, no
//! `pvesh`), the yes/no questions, the objects applied as `get` then `set` or `create`, and the
//! tally that becomes the category's outcome.

use std::collections::BTreeMap;

use proxsave_archive::path::ArchivePath;
use proxsave_archive::progress::CancelToken;
use proxsave_formats::section::{Diag, Section, SectionConfig};
use proxsave_restore::applier::{
    Answer, ApplierPlan, ApplyError, Ask, ChangeKind, Outcome, PlanContext, PlannedChange,
    QuestionSpec, Stage, Status,
};
use proxsave_restore::host::{Host, HostActions};
use proxsave_restore::plan::{ClusterMode, Plan};
use serde_json::Value;

use crate::pvesh::{Call, Method, Param, Pvesh, PveshError};
use proxsave_restore::host::REDACTED;

/// A root-relative path known to be valid.
pub(crate) fn ap(p: &str) -> ArchivePath {
    ArchivePath::from_user(p).expect("a constant relative path")
}

/// Why the API part of an applier does not run, if it does not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Everything may run.
    Open,
    /// RECOVERY: the cluster database is restored, `/etc/pve` comes back with it.
    Recovery,
    /// `--host-actions defer`: no `pvesh` call at all.
    Deferred,
    /// `pvesh` cannot be run here (the reason).
    NoPvesh(String),
}

/// True when this run restores the cluster database (RECOVERY).
pub(crate) fn recovery(plan: &Plan) -> bool {
    plan.needs_cluster_restore || plan.cluster_mode == Some(ClusterMode::Recovery)
}

/// The reason shown when RECOVERY keeps an applier out of `/etc/pve`.
pub(crate) const RECOVERY_REASON: &str = "RECOVERY restore: the cluster database is restored, /etc/pve comes back with it; nothing is applied through the API";

/// The gate for this run.
pub(crate) fn gate(plan: &Plan, host: &Host) -> Gate {
    if recovery(plan) {
        return Gate::Recovery;
    }
    if host.actions == HostActions::Defer {
        return Gate::Deferred;
    }
    let cancel = CancelToken::new();
    if !Pvesh::new(host, &cancel).available() {
        return Gate::NoPvesh("`pvesh` is not available on this host (not on PATH)".into());
    }
    Gate::Open
}

/// Checks a yes/no answer given up front (bad ones stop the run, exit 2).
pub(crate) fn check_preset(ctx: &PlanContext<'_>, q: &QuestionSpec) -> Result<bool, ApplyError> {
    match (ctx.preset)(q.id) {
        Some(a) => yes_no(q, &a),
        None => Ok(true),
    }
}

/// `yes` or `no`.
pub(crate) fn yes_no(q: &QuestionSpec, a: &Answer) -> Result<bool, ApplyError> {
    match a.value.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" => Ok(true),
        "no" | "n" => Ok(false),
        other => Err(ApplyError::BadAnswer {
            id: q.id,
            reason: format!("`{other}` is not `yes` or `no`"),
        }),
    }
}

/// A yes/no question with `yes` as its default.
pub(crate) fn ask_yes(q: QuestionSpec, details: Vec<String>) -> Ask {
    Ask {
        details,
        ..Ask::new(q, Some("yes"))
    }
}

/// The parameters of a section: every property in file order, bare flags as `1`; keys in
/// `skip` are left out. Comments never get here (the section parser drops them).
pub(crate) fn section_params(s: &Section, skip: &[&str]) -> Vec<Param> {
    s.props
        .iter()
        .filter(|p| !skip.contains(&p.key.as_str()))
        .map(|p| match &p.value {
            Some(v) => Param::new(p.key.clone(), v.clone()),
            None => Param::flag(p.key.clone()),
        })
        .collect()
}

/// An object applied as `get`, then `set` when it exists or `create` when it does not.
#[derive(Clone, Debug)]
pub(crate) struct Upsert {
    /// `storage nas-backup`, `backup job backup-1`, …
    pub object: String,
    /// Read to learn whether it exists.
    pub get_path: String,
    /// `set` goes here.
    pub set_path: String,
    /// `create` goes here.
    pub create_path: String,
    /// The id and type parameters `create` needs first.
    pub create_first: Vec<Param>,
    /// Parameters of both calls.
    pub params: Vec<Param>,
    /// Options PVE fixes at creation: sent by `create` only; a different value on the host
    /// is reported.
    pub fixed: Vec<&'static str>,
}

/// What an [`Upsert`] comes to once the host was read.
#[derive(Clone, Debug)]
pub(crate) enum Decision {
    /// The call to make, notes (fixed options that differ), the object now (`None`: absent).
    Call(Call, Vec<String>, Option<Value>),
    /// Nothing to send (the notes say why).
    Nothing(Vec<String>),
    /// Reading the host failed (the error names the object).
    Failed(String),
}

/// A JSON value as PVE would write it in a config file.
pub(crate) fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Upsert {
    /// The `create` call.
    pub(crate) fn create_call(&self) -> Call {
        let mut params = self.create_first.clone();
        params.extend(self.params.iter().cloned());
        Call::new(Method::Create, self.create_path.clone(), params)
    }

    /// The `set` call for an object whose current config is `current`, and the notes.
    pub(crate) fn set_call(&self, current: &Value) -> (Call, Vec<String>) {
        let mut notes = Vec::new();
        let mut params = Vec::new();
        for p in &self.params {
            if self.fixed.contains(&p.key.as_str()) {
                let here = current.get(&p.key).map(json_text);
                if here.as_deref() != Some(p.value.as_str()) {
                    notes.push(format!(
                        "{}: option `{}` is fixed at creation; this host has `{}`, the backup `{}`: not changed (remove and add the object again to change it)",
                        self.object,
                        p.key,
                        here.unwrap_or_default(),
                        if p.secret { REDACTED } else { p.value.as_str() }
                    ));
                }
                continue;
            }
            params.push(p.clone());
        }
        (Call::new(Method::Set, self.set_path.clone(), params), notes)
    }

    /// The decision for an object that exists with `current`.
    pub(crate) fn decide_with(&self, current: &Value) -> Decision {
        let (call, mut notes) = self.set_call(current);
        if call.params.is_empty() {
            Decision::Nothing(notes)
        } else if same_as(&call.params, current) {
            notes.push(format!("{}: already as in the backup", self.object));
            Decision::Nothing(notes)
        } else {
            Decision::Call(call, notes, Some(current.clone()))
        }
    }

    /// Reads the host and decides.
    pub(crate) fn decide(&self, pvesh: &Pvesh<'_>) -> Decision {
        match pvesh.get(&self.get_path) {
            Ok(current) => self.decide_with(&current),
            Err(e) if absent(&e) => Decision::Call(self.create_call(), Vec::new(), None),
            Err(e) => Decision::Failed(format!("{}: reading it failed: {e}", self.object)),
        }
    }
}

/// True when the object `current` already has every (non-secret) parameter's value; a
/// repeated key compares as a list. Secrets cannot be read back: with one, false.
pub(crate) fn same_as(params: &[Param], current: &Value) -> bool {
    let mut want: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for p in params {
        if p.secret {
            return false;
        }
        want.entry(p.key.as_str())
            .or_default()
            .push(p.value.clone());
    }
    want.into_iter().all(|(k, mut v)| match current.get(k) {
        Some(Value::Array(a)) => {
            let mut have: Vec<String> = a.iter().map(json_text).collect();
            v.sort();
            have.sort();
            v == have
        }
        Some(x) => v.len() == 1 && value_matches(&v[0], x),
        None => false,
    })
}

/// True when `have` (as the API returns it) is the value `want` (as the file has it): a
/// property string compares with the object PVE returns for it, key by key.
pub(crate) fn value_matches(want: &str, have: &Value) -> bool {
    match have {
        Value::Object(o) => {
            let mut parts: BTreeMap<String, String> = BTreeMap::new();
            for part in want.split(',').filter(|p| !p.is_empty()) {
                let Some((k, v)) = part.split_once('=') else {
                    return false;
                };
                parts.insert(k.to_string(), v.to_string());
            }
            let got: BTreeMap<String, String> =
                o.iter().map(|(k, v)| (k.clone(), json_text(v))).collect();
            parts == got
        }
        other => json_text(other) == want,
    }
}

/// True when a `get` failed because the object does not exist (PVE says so in several
/// ways: `does not exist`, `No such job`, a 404).
pub(crate) fn absent(e: &PveshError) -> bool {
    if e.is_not_found() {
        return true;
    }
    let m = e.message().to_ascii_lowercase();
    matches!(
        e,
        PveshError::ParamRejected { .. } | PveshError::Other { .. }
    ) && (m.contains("no such") || m.contains("does not exist") || m.contains("not found"))
}

/// The plan lines and changes of plain upserts: each call it would make (`get` only when
/// `open`).
pub(crate) fn plan_upserts(
    pvesh: &Pvesh<'_>,
    open: bool,
    items: &[Upsert],
    plan: &mut ApplierPlan,
) {
    for u in items {
        if !open {
            let c = u.create_call();
            plan.actions.push(format!(
                "call (deferred): {c} (or `set` when {} exists)",
                u.object
            ));
            plan.changes.push(planned_change(&u.set_path, &c, None));
            continue;
        }
        match u.decide(pvesh) {
            Decision::Call(c, notes, current) => {
                plan.actions.push(format!("call: {c}"));
                plan.actions.extend(notes);
                plan.changes
                    .push(planned_change(&u.set_path, &c, current.as_ref()));
            }
            Decision::Nothing(notes) => {
                plan.actions
                    .push(format!("{}: nothing to change", u.object));
                plan.actions.extend(notes);
            }
            Decision::Failed(why) => plan.actions.push(why),
        }
    }
}

/// An API object as text: `key value` lines, sorted (`digest` left out).
pub(crate) fn object_text(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .filter(|(k, _)| k.as_str() != "digest")
        .map(|(k, v)| format!("{k} {v}\n"))
        .collect()
}

fn object_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|o| o.iter().map(|(k, v)| (k.clone(), json_text(v))).collect())
        .unwrap_or_default()
}

/// The planned change of `call` on the object now `current` (secrets masked).
pub(crate) fn planned_change(target: &str, call: &Call, current: Option<&Value>) -> PlannedChange {
    let before = object_map(current);
    let mut after = before.clone();
    for p in &call.params {
        if p.key == "delete" {
            for k in p.value.split([',', ';', ' ']) {
                after.remove(k);
            }
        } else if p.secret {
            after.insert(p.key.clone(), REDACTED.to_string());
        } else {
            after.insert(p.key.clone(), p.value.clone());
        }
    }
    let kind = match call.method {
        Method::Create => ChangeKind::Create,
        Method::Delete => ChangeKind::Delete,
        _ => ChangeKind::Set,
    };
    PlannedChange::call(
        target,
        kind,
        call.to_string(),
        current.map(|_| object_text(&before)),
        Some(object_text(&after)),
    )
}

/// Applies plain upserts, one after the other; a failed one never stops the next.
/// `Ok(Some(message))`: `pvesh` cannot be run at all (the rest was not tried).
///
/// # Errors
/// Ctrl+C.
pub(crate) fn apply_upserts(
    pvesh: &Pvesh<'_>,
    cancel: &CancelToken,
    items: &[Upsert],
    tally: &mut Tally,
) -> Result<Option<String>, ApplyError> {
    for u in items {
        if cancel.is_cancelled() {
            return Err(ApplyError::Prompt(
                proxsave_restore::prompt::PromptError::Aborted,
            ));
        }
        if let Err(m) = tally.upsert(pvesh, u) {
            return Ok(Some(m));
        }
    }
    Ok(None)
}

/// What an applier did, per object; becomes the outcome.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Objects changed (`storage local (set)`).
    pub done: Vec<String>,
    /// Objects that failed, each naming the object, the call and PVE's message.
    pub failed: Vec<String>,
    /// Left as they are, with the reason (on the host and not in the backup, not applicable).
    pub left: Vec<String>,
    /// Other things to read (fixed options that differ, skipped sections, directories).
    pub notes: Vec<String>,
}

impl Tally {
    /// Runs one call for `object`, recording the result: `Ok(true)` when it was accepted.
    ///
    /// # Errors
    /// `pvesh` cannot be run at all (the caller stops and skips the rest).
    pub(crate) fn call(
        &mut self,
        pvesh: &Pvesh<'_>,
        object: &str,
        call: &Call,
    ) -> Result<bool, String> {
        match pvesh.call(call) {
            Ok(_) => {
                self.done.push(format!("{object} ({})", call.method));
                Ok(true)
            }
            Err(PveshError::Missing { message, .. }) => Err(message),
            Err(e) => {
                self.failed.push(format!("{object}: {e}"));
                Ok(false)
            }
        }
    }

    /// Runs an upsert (get, then set or create).
    ///
    /// # Errors
    /// As [`Tally::call`].
    pub(crate) fn upsert(&mut self, pvesh: &Pvesh<'_>, u: &Upsert) -> Result<bool, String> {
        match u.decide(pvesh) {
            Decision::Call(call, notes, _) => {
                self.notes.extend(notes);
                self.call(pvesh, &u.object, &call)
            }
            Decision::Nothing(notes) => {
                self.notes.extend(notes);
                Ok(true)
            }
            Decision::Failed(why) => {
                self.failed.push(why);
                Ok(false)
            }
        }
    }

    /// The outcome of `category`: `partly applied` when an object failed.
    pub(crate) fn outcome(&self, category: &str, summary: &str) -> Outcome {
        let mut lines = Vec::new();
        let status = if self.failed.is_empty() {
            Status::Applied
        } else {
            lines.push(format!(
                "{} object(s) failed: {}",
                self.failed.len(),
                self.failed.join("; ")
            ));
            Status::PartlyApplied
        };
        if !summary.is_empty() {
            lines.push(summary.to_string());
        }
        if !self.done.is_empty() {
            lines.push(format!("applied: {}", self.done.join(", ")));
        }
        if !self.left.is_empty() {
            lines.push(format!("left as they are: {}", self.left.join("; ")));
        }
        lines.extend(self.notes.iter().cloned());
        Outcome::new(category, status, lines.join("\n"))
    }
}

/// Reads a staged text file: `Ok(None)` when absent.
pub(crate) fn staged_text(stage: &Stage, path: &str) -> Result<Option<String>, String> {
    match stage.read(&ap(path)) {
        Ok(None) => Ok(None),
        Ok(Some(b)) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| format!("/{path} in the backup is not valid UTF-8; not applied")),
        Err(e) => Err(format!("/{path} in the backup cannot be read: {e}")),
    }
}

/// A staged section-config file: the sections and the lines that did not parse, each
/// named `/FILE line N: reason (skipped)`.
pub(crate) fn staged_sections(
    stage: &Stage,
    path: &str,
) -> Result<Option<(SectionConfig, Vec<String>)>, String> {
    let Some(text) = staged_text(stage, path)? else {
        return Ok(None);
    };
    let (cfg, diags) = proxsave_formats::section::parse(&text);
    Ok(Some((cfg, diag_lines(path, &diags))))
}

fn diag_lines(path: &str, diags: &[Diag]) -> Vec<String> {
    diags
        .iter()
        .map(|d| format!("/{path} line {}: {} (skipped)", d.line, d.message))
        .collect()
}

/// The staged files of a folder, by name (names that are not UTF-8 left out).
pub(crate) fn staged_files(stage: &Stage, dir: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    // One open folder for all its files (no path walk per file).
    let Ok(Some(folder)) = stage.dir(&ap(dir)) else {
        return out;
    };
    for name in folder.files().unwrap_or_default() {
        let Ok(name) = String::from_utf8(name) else {
            continue;
        };
        if ArchivePath::from_user(&format!("{dir}/{name}")).is_err() {
            continue;
        }
        if let Ok(Some(bytes)) = folder.read(name.as_bytes()) {
            out.insert(name, bytes);
        }
    }
    out
}

/// The ids a `pvesh get` list returns (`[{"storage": "local", …}, …]`, key `key`).
pub(crate) fn list_ids(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|o| o.get(key).map(json_text)).collect())
        .unwrap_or_default()
}

/// The outcome for a gate that keeps the API part from running.
pub(crate) fn gated_outcome(category: &str, g: &Gate, calls: &[String], what: &str) -> Outcome {
    match g {
        Gate::Open => Outcome::new(category, Status::Applied, ""),
        Gate::Recovery => Outcome::new(
            category,
            Status::Skipped {
                reason: RECOVERY_REASON.into(),
            },
            "",
        ),
        Gate::Deferred => Outcome::new(
            category,
            Status::Deferred {
                todo: format!(
                    "apply {what} through pvesh on the host: {} call(s), listed with the deferred commands",
                    calls.len()
                ),
            },
            format!(
                "{what}: {} pvesh call(s) not made (host actions are deferred); see the deferred commands",
                calls.len()
            ),
        ),
        Gate::NoPvesh(why) => Outcome::new(
            category,
            Status::Skipped {
                reason: format!("{why}: {what} not applied"),
            },
            "",
        ),
    }
}

/// Decodes `%XX` escapes (PVE's `encode_text` for comments in some files).
pub(crate) fn decode_text(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_text_decodes_percent_escapes() {
        assert_eq!(decode_text("a%3Ab%20c"), "a:b c");
        assert_eq!(decode_text("100%"), "100%");
        assert_eq!(decode_text("%zz"), "%zz");
    }
}
