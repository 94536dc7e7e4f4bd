//! The merge of the backup's PBS access-control files with this host's (pure).
//!
//! Rules:
//!
//! * **`root@pam` of this host** is never changed: its `user:` section as this host has it
//!   (none: PBS's implicit enabled `root@pam`), its tokens (`token:` sections, ACL members,
//!   `token.shadow` secrets), its `shadow.json` entry and its `tfa.json` second factors. The
//!   backup's `root@pam` section, tokens, ACL entries, hash and second factors are dropped.
//! * **merge** (the default): this host's other users, tokens, ACL entries, realms, hashes and
//!   second factors stay; the backup's come back over them (same id: the backup's).
//! * **clean** (1:1): only the backup's come back (plus this host's `root@pam` above); what
//!   this host has and the backup lacks is removed (and listed).
//! * Realms `pam` and `pbs` (newer PBS lists them in `domains.cfg`): this host's definition
//!   wins when it has one.
//! * `tfa.json`'s realm-wide settings (`webauthn`, `u2f`: they name the address the web UI is
//!   reached at): this host's when it has them, else the backup's.
//! * A result without an enabled administrator (an enabled — or implicit — `root@pam`, or an
//!   enabled user holding `Admin` on `/` with propagation) is refused: nothing is written.
//! * Only files the backup has are written. What PBS would refuse in a file (a line of
//!   `acl.cfg`, a section or property) is dropped and named ([`FileDiag`]), because PBS
//!   refuses a whole file for one bad line. A JSON file that cannot be read (the backup's, or
//!   this host's, whose `root@pam` entries could then not be kept) is left as it is.
//! * A file whose result equals this host's is not written.
//!
//! Notes and diagnostics name ids only, never a hash, a token secret or a second factor.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use proxsave_formats::section::Section;
use serde::Serialize;

use super::formats::{
    self, AclLine, Diag, SectionFile, Tfa, check_sections, enabled, parse_acl, parse_secret_map,
    parse_tfa, render_acl, render_sections, render_shadow, render_tfa, render_token_shadow,
    user_of,
};

/// The root user of this host.
pub const ROOT: &str = "root@pam";

/// Merge (keep this host's other objects) or clean (1:1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Create or update what the backup has, leave the rest.
    #[default]
    Merge,
    /// Also remove what the backup lacks.
    Clean,
}

/// Owner of a written file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Owner {
    /// `root:backup` (PBS's `replace_backup_config`).
    RootBackup,
    /// `backup:backup` (`token.shadow`: the proxy reads it).
    BackupBackup,
    /// `root:root`.
    RootRoot,
}

impl Owner {
    /// `root:backup`, …
    pub fn text(self) -> &'static str {
        match self {
            Owner::RootBackup => "root:backup",
            Owner::BackupBackup => "backup:backup",
            Owner::RootRoot => "root:root",
        }
    }
}

/// One of the six access-control files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcFile {
    /// `etc/proxmox-backup/domains.cfg`.
    Domains,
    /// `etc/proxmox-backup/user.cfg`.
    UserCfg,
    /// `etc/proxmox-backup/acl.cfg`.
    Acl,
    /// `etc/proxmox-backup/token.shadow`.
    TokenShadow,
    /// `etc/proxmox-backup/shadow.json`.
    Shadow,
    /// `etc/proxmox-backup/tfa.json`.
    Tfa,
}

impl AcFile {
    /// All six, in write order.
    pub const ALL: [AcFile; 6] = [
        AcFile::Domains,
        AcFile::UserCfg,
        AcFile::Acl,
        AcFile::TokenShadow,
        AcFile::Shadow,
        AcFile::Tfa,
    ];

    /// The path relative to the root.
    pub fn path(self) -> &'static str {
        match self {
            AcFile::Domains => "etc/proxmox-backup/domains.cfg",
            AcFile::UserCfg => "etc/proxmox-backup/user.cfg",
            AcFile::Acl => "etc/proxmox-backup/acl.cfg",
            AcFile::TokenShadow => "etc/proxmox-backup/token.shadow",
            AcFile::Shadow => "etc/proxmox-backup/shadow.json",
            AcFile::Tfa => "etc/proxmox-backup/tfa.json",
        }
    }

    /// The file name (`user.cfg`).
    pub fn name(self) -> &'static str {
        self.path().rsplit('/').next().unwrap_or("")
    }

    /// PBS's mode: 0600 for `shadow.json` and `tfa.json`, 0640 otherwise.
    pub fn mode(self) -> u32 {
        match self {
            AcFile::Shadow | AcFile::Tfa => 0o600,
            _ => 0o640,
        }
    }

    /// PBS's owner.
    pub fn owner(self) -> Owner {
        match self {
            AcFile::TokenShadow => Owner::BackupBackup,
            AcFile::Shadow | AcFile::Tfa => Owner::RootRoot,
            _ => Owner::RootBackup,
        }
    }

    /// True for the files holding hashes or second factors (never shown).
    pub fn is_secret(self) -> bool {
        matches!(self, AcFile::TokenShadow | AcFile::Shadow | AcFile::Tfa)
    }
}

/// The texts of the six files on one side (`None`: absent).
#[derive(Clone, Debug, Default)]
pub struct AcTexts(BTreeMap<AcFile, String>);

impl AcTexts {
    /// The text of `file`.
    pub fn get(&self, file: AcFile) -> Option<&str> {
        self.0.get(&file).map(String::as_str)
    }

    /// Sets (or, with `None`, clears) the text of `file`.
    pub fn set(&mut self, file: AcFile, text: Option<String>) {
        match text {
            Some(t) => {
                self.0.insert(file, t);
            }
            None => {
                self.0.remove(&file);
            }
        }
    }

    /// Builder form of [`AcTexts::set`].
    pub fn with(mut self, file: AcFile, text: &str) -> Self {
        self.set(file, Some(text.to_string()));
        self
    }
}

/// A line dropped: which file of which side, which line, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileDiag {
    /// `the backup's etc/proxmox-backup/acl.cfg`.
    pub file: String,
    /// 1-based line (0: not tied to a line).
    pub line: usize,
    /// Why.
    pub reason: String,
}

impl fmt::Display for FileDiag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {} (skipped)", self.file, self.reason)
        } else {
            write!(
                f,
                "{} line {}: {} (skipped)",
                self.file, self.line, self.reason
            )
        }
    }
}

/// The result for one file.
#[derive(Clone, Debug, Serialize)]
pub struct MergedFile {
    /// Which file.
    pub file: AcFile,
    /// This host's text (`None`: absent).
    #[serde(skip)]
    pub before: Option<String>,
    /// The text to write (`None`: left as it is, see `notes`).
    #[serde(skip)]
    pub after: Option<String>,
    /// What changes, for people (ids only, never a secret).
    pub notes: Vec<String>,
}

impl MergedFile {
    /// True when the file is to be written.
    pub fn changes(&self) -> bool {
        self.after.is_some() && self.after != self.before
    }
}

/// The whole merge.
#[derive(Clone, Debug, Serialize)]
pub struct Merged {
    /// The mode used.
    pub mode: Mode,
    /// One per file the backup has, in write order.
    pub files: Vec<MergedFile>,
    /// What was dropped, by file and line.
    pub diags: Vec<FileDiag>,
}

impl Merged {
    /// The result for `file`.
    pub fn file(&self, file: AcFile) -> Option<&MergedFile> {
        self.files.iter().find(|f| f.file == file)
    }
}

/// Why the merge is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// The result would leave no enabled administrator.
    #[error(
        "refused: the merged /{} and /{} would leave no enabled administrator (root@pam of this host is disabled and no enabled user holds Admin on / with propagation); nothing written",
        AcFile::UserCfg.path(),
        AcFile::Acl.path()
    )]
    NoAdministrator,
}

const BACKUP: &str = "the backup's";
const LIVE: &str = "this host's";

fn push_diags(side: &str, file: AcFile, diags: Vec<Diag>, out: &mut Vec<FileDiag>) {
    out.extend(diags.into_iter().map(|d| FileDiag {
        file: format!("{side} {}", file.path()),
        line: d.line,
        reason: d.message,
    }));
}

fn list_note(what: &str, items: &[&str]) -> String {
    if items.is_empty() {
        format!("{what}: none")
    } else {
        format!("{what}: {}", items.join(", "))
    }
}

fn is_root_authid(id: &str) -> bool {
    user_of(id) == ROOT
}

/// Merges the backup's files with this host's; see the module docs.
///
/// # Errors
/// [`MergeError::NoAdministrator`].
pub fn merge(backup: &AcTexts, live: &AcTexts, mode: Mode) -> Result<Merged, MergeError> {
    let mut diags = Vec::new();
    let mut files = Vec::new();
    for file in AcFile::ALL {
        let Some(b) = backup.get(file) else { continue };
        let l = live.get(file);
        if let Some(why) = not_usable(file, b) {
            diags.push(FileDiag {
                file: format!("{BACKUP} {}", file.path()),
                line: 0,
                reason: format!("{why}: not written"),
            });
            files.push(MergedFile {
                file,
                before: l.map(str::to_owned),
                after: None,
                notes: vec![format!("left as it is: {why}")],
            });
            continue;
        }
        let merged = match file {
            AcFile::UserCfg => merge_user_cfg(b, l, mode, &mut diags),
            AcFile::Domains => merge_domains(b, l, mode, &mut diags),
            AcFile::Acl => merge_acl(b, l, mode, &mut diags),
            AcFile::TokenShadow | AcFile::Shadow => merge_secret_map(file, b, l, mode, &mut diags),
            AcFile::Tfa => merge_tfa(b, l, mode, &mut diags),
        };
        files.push(merged);
    }
    // The administrator check on what PBS will read: the written files, or this host's.
    let text_of = |file: AcFile| -> Option<String> {
        files
            .iter()
            .find(|f: &&MergedFile| f.file == file)
            .and_then(|f| f.after.clone().or_else(|| f.before.clone()))
            .or_else(|| live.get(file).map(str::to_string))
    };
    let users = text_of(AcFile::UserCfg).unwrap_or_default();
    let acl = text_of(AcFile::Acl).unwrap_or_default();
    if !has_enabled_admin(&users, &acl) {
        return Err(MergeError::NoAdministrator);
    }
    Ok(Merged { mode, files, diags })
}

/// Why the backup's `file` is not used at all (`None`: it is): empty, or not one line of it
/// reads as that file (a section-config file with no section PBS accepts, an `acl.cfg` with no
/// valid line). Writing such a file would only remove things (in clean mode, everything of
/// this host but `root@pam`).
fn not_usable(file: AcFile, text: &str) -> Option<String> {
    if text.trim().is_empty() {
        return Some("the backup's file is empty".into());
    }
    let unreadable = match file {
        AcFile::UserCfg => check_sections(text, SectionFile::User).0.is_empty(),
        AcFile::Domains => check_sections(text, SectionFile::Domains).0.is_empty(),
        AcFile::Acl => parse_acl(text).0.is_empty(),
        // The JSON files name their own error (see their merge).
        AcFile::TokenShadow | AcFile::Shadow | AcFile::Tfa => false,
    };
    unreadable.then(|| format!("no line of the backup's file reads as {}", file.name()))
}

/// True when PBS would see an enabled administrator in these `user.cfg` and `acl.cfg` texts:
/// an enabled `root@pam` (PBS adds an enabled one when the file has none), or an enabled
/// user holding `Admin` on `/` with propagation.
pub fn has_enabled_admin(user_cfg: &str, acl_cfg: &str) -> bool {
    let (sections, _) = check_sections(user_cfg, SectionFile::User);
    let user = |id: &str| sections.iter().find(|s| s.ty == "user" && s.id == id);
    match user(ROOT) {
        None => return true,
        Some(r) if enabled(r) => return true,
        Some(_) => {}
    }
    let (lines, _) = parse_acl(acl_cfg);
    lines
        .iter()
        .flat_map(AclLine::entries)
        .filter(|(path, _, role, propagate)| path == "/" && role == "Admin" && *propagate)
        .any(|(_, member, _, _)| user(&member).is_some_and(enabled))
}

// ------------------------------------------------------------------------------------------
// user.cfg
// ------------------------------------------------------------------------------------------

fn merge_user_cfg(
    backup: &str,
    live: Option<&str>,
    mode: Mode,
    diags: &mut Vec<FileDiag>,
) -> MergedFile {
    let file = AcFile::UserCfg;
    let (b, d) = check_sections(backup, SectionFile::User);
    let unreadable = b.is_empty() && !d.is_empty();
    push_diags(BACKUP, file, d, diags);
    if unreadable {
        // Not one section of the backup's file reads as user.cfg: writing it would remove
        // every user of this host but root@pam.
        return MergedFile {
            file,
            before: live.map(str::to_owned),
            after: None,
            notes: vec!["left as it is: no section of the backup's file reads as user.cfg".into()],
        };
    }
    let l: Vec<Section> = match live {
        Some(t) => {
            let (l, d) = check_sections(t, SectionFile::User);
            push_diags(LIVE, file, d, diags);
            l
        }
        None => Vec::new(),
    };
    let from_backup: Vec<&Section> = b.iter().filter(|s| !is_root_authid(&s.id)).collect();
    let mut out: Vec<Section> = match mode {
        Mode::Merge => l.clone(),
        Mode::Clean => l
            .iter()
            .filter(|s| is_root_authid(&s.id))
            .cloned()
            .collect(),
    };
    for s in &from_backup {
        match out.iter().position(|o| o.id == s.id) {
            Some(i) => out[i] = (*s).clone(),
            None => out.push((*s).clone()),
        }
    }
    // root@pam's section first, then its tokens, as PBS keeps them.
    out.sort_by_key(|s| !is_root_authid(&s.id));

    let ids = |v: &[Section], ty: &str, root: bool| -> BTreeSet<String> {
        v.iter()
            .filter(|s| s.ty == ty && is_root_authid(&s.id) == root)
            .map(|s| s.id.clone())
            .collect()
    };
    let live_users = ids(&l, "user", false);
    let new_users = ids(&out, "user", false);
    let backup_users = ids(&b, "user", false);
    let mut notes = Vec::new();
    let live_root = l.iter().find(|s| s.ty == "user" && s.id == ROOT);
    notes.push(match live_root {
        Some(r) => format!(
            "root@pam: this host's section kept ({})",
            if enabled(r) { "enabled" } else { "disabled" }
        ),
        None => "root@pam: this host has no section (PBS's implicit enabled root@pam stays)".into(),
    });
    if b.iter().any(|s| s.ty == "user" && s.id == ROOT) {
        notes.push("root@pam: the backup's section dropped".into());
    }
    let added: Vec<&str> = backup_users
        .difference(&live_users)
        .map(String::as_str)
        .collect();
    let updated: Vec<&str> = backup_users
        .intersection(&live_users)
        .map(String::as_str)
        .collect();
    let kept: Vec<&str> = new_users
        .difference(&backup_users)
        .map(String::as_str)
        .collect();
    let removed: Vec<&str> = live_users
        .difference(&new_users)
        .map(String::as_str)
        .collect();
    notes.push(list_note("users added from the backup", &added));
    notes.push(list_note("users set as in the backup", &updated));
    if mode == Mode::Merge {
        notes.push(list_note("users of this host kept (merge)", &kept));
    }
    if !removed.is_empty() {
        notes.push(list_note(
            "users of this host not in the backup removed (clean)",
            &removed,
        ));
    }
    let tokens: Vec<&str> = from_backup
        .iter()
        .filter(|s| s.ty == "token")
        .map(|s| s.id.as_str())
        .collect();
    notes.push(list_note("tokens from the backup", &tokens));
    let root_tokens = ids(&l, "token", true);
    let root_tokens: Vec<&str> = root_tokens.iter().map(String::as_str).collect();
    notes.push(list_note("root@pam tokens of this host kept", &root_tokens));
    let dropped = ids(&b, "token", true);
    if !dropped.is_empty() {
        let dropped: Vec<&str> = dropped.iter().map(String::as_str).collect();
        notes.push(list_note("root@pam tokens of the backup dropped", &dropped));
    }
    let live_tokens = ids(&l, "token", false);
    let new_tokens = ids(&out, "token", false);
    let removed_tokens: Vec<&str> = live_tokens
        .difference(&new_tokens)
        .map(String::as_str)
        .collect();
    if !removed_tokens.is_empty() {
        notes.push(list_note(
            "tokens of this host not in the backup removed (clean)",
            &removed_tokens,
        ));
    }
    let after = finish(render_sections(&out), live);
    MergedFile {
        file,
        before: live.map(str::to_owned),
        after: Some(after),
        notes,
    }
}

/// Keeps this host's bytes when the result means the same (so an unchanged file is not
/// rewritten only for its formatting).
fn finish(rendered: String, live: Option<&str>) -> String {
    match live {
        Some(l) if l.trim_end() == rendered.trim_end() => l.to_string(),
        _ => rendered,
    }
}

// ------------------------------------------------------------------------------------------
// domains.cfg
// ------------------------------------------------------------------------------------------

fn merge_domains(
    backup: &str,
    live: Option<&str>,
    mode: Mode,
    diags: &mut Vec<FileDiag>,
) -> MergedFile {
    let file = AcFile::Domains;
    let (b, d) = check_sections(backup, SectionFile::Domains);
    push_diags(BACKUP, file, d, diags);
    let l: Vec<Section> = match live {
        Some(t) => {
            let (l, d) = check_sections(t, SectionFile::Domains);
            push_diags(LIVE, file, d, diags);
            l
        }
        None => Vec::new(),
    };
    let builtin = |s: &Section| s.id == "pam" || s.id == "pbs";
    let mut out: Vec<Section> = match mode {
        Mode::Merge => l.clone(),
        Mode::Clean => l.iter().filter(|s| builtin(s)).cloned().collect(),
    };
    let mut notes = Vec::new();
    for s in &b {
        let here = out.iter().position(|o| o.id == s.id);
        match here {
            Some(_) if builtin(s) && l.iter().any(|x| x.id == s.id) => {
                notes.push(format!("realm {}: this host's definition kept", s.id));
            }
            Some(i) => out[i] = s.clone(),
            None => out.push(s.clone()),
        }
    }
    let realms: Vec<String> = out.iter().map(|s| format!("{} ({})", s.id, s.ty)).collect();
    notes.insert(
        0,
        if realms.is_empty() {
            "realms: only the built-in pam and pbs".into()
        } else {
            format!("realms: {}", realms.join(", "))
        },
    );
    let removed: Vec<String> = l
        .iter()
        .filter(|s| !out.iter().any(|o| o.id == s.id))
        .map(|s| s.id.clone())
        .collect();
    if !removed.is_empty() {
        notes.push(format!(
            "realms of this host not in the backup removed (clean): {}",
            removed.join(", ")
        ));
    }
    let directory: Vec<&str> = b
        .iter()
        .filter(|s| s.ty == "ldap" || s.ty == "ad")
        .map(|s| s.id.as_str())
        .collect();
    if !directory.is_empty() {
        notes.push(format!(
            "LDAP/AD realms {}: their bind passwords are not in the backup (set them again with `proxmox-backup-manager ldap update <realm> --password …` / `ad update`)",
            directory.join(", ")
        ));
    }
    MergedFile {
        file,
        before: live.map(str::to_owned),
        after: Some(finish(render_sections(&out), live)),
        notes,
    }
}

// ------------------------------------------------------------------------------------------
// acl.cfg
// ------------------------------------------------------------------------------------------

/// `line` without the members `drop` says no to; `None` when none is left.
fn without(line: &AclLine, drop: impl Fn(&str) -> bool) -> Option<AclLine> {
    let members: Vec<String> = line.members.iter().filter(|m| !drop(m)).cloned().collect();
    if members.is_empty() {
        return None;
    }
    if members.len() == line.members.len() {
        return Some(line.clone());
    }
    Some(AclLine {
        members,
        original: None,
        ..line.clone()
    })
}

fn merge_acl(
    backup: &str,
    live: Option<&str>,
    mode: Mode,
    diags: &mut Vec<FileDiag>,
) -> MergedFile {
    let file = AcFile::Acl;
    let (b, d) = parse_acl(backup);
    push_diags(BACKUP, file, d, diags);
    let l: Vec<AclLine> = match live {
        Some(t) => {
            let (l, d) = parse_acl(t);
            push_diags(LIVE, file, d, diags);
            l
        }
        None => Vec::new(),
    };
    let is_root_token = |m: &str| m.contains('!') && is_root_authid(m);
    // root@pam itself never has ACL entries (PBS treats it as the administrator).
    let from_backup: Vec<AclLine> = b
        .iter()
        .filter_map(|x| without(x, is_root_authid))
        .collect();
    let mut out: Vec<AclLine> = match mode {
        Mode::Merge => l.iter().filter_map(|x| without(x, |m| m == ROOT)).collect(),
        Mode::Clean => l
            .iter()
            .filter_map(|x| without(x, |m| !is_root_token(m)))
            .collect(),
    };
    let have: BTreeSet<(String, String, String, bool)> =
        out.iter().flat_map(AclLine::entries).collect();
    let mut added = 0usize;
    for x in &from_backup {
        if x.entries().iter().all(|e| have.contains(e)) {
            continue;
        }
        added += 1;
        out.push(x.clone());
    }
    let mut notes = vec![format!(
        "{} ACL line(s) from the backup ({} already on this host)",
        from_backup.len(),
        from_backup.len() - added
    )];
    let dropped_root = b
        .iter()
        .flat_map(|x| x.members.iter())
        .filter(|m| is_root_authid(m))
        .count();
    if dropped_root > 0 {
        notes.push("root@pam and its tokens: the backup's ACL entries dropped".into());
    }
    let kept_root: BTreeSet<&str> = l
        .iter()
        .flat_map(|x| x.members.iter())
        .filter(|m| is_root_token(m))
        .map(String::as_str)
        .collect();
    let kept_root: Vec<&str> = kept_root.into_iter().collect();
    notes.push(list_note(
        "ACL entries of this host's root@pam tokens kept",
        &kept_root,
    ));
    if mode == Mode::Clean {
        let now: BTreeSet<_> = out.iter().flat_map(AclLine::entries).collect();
        let removed = l
            .iter()
            .flat_map(AclLine::entries)
            .filter(|e| !now.contains(e))
            .count();
        if removed > 0 {
            notes.push(format!(
                "{removed} ACL entr{} of this host not in the backup removed (clean)",
                if removed == 1 { "y" } else { "ies" }
            ));
        }
    }
    let rendered = render_acl(&out);
    let after = match live {
        Some(t) if parse_acl(t).0 == out => t.to_string(),
        _ => rendered,
    };
    MergedFile {
        file,
        before: live.map(str::to_owned),
        after: Some(after),
        notes,
    }
}

// ------------------------------------------------------------------------------------------
// token.shadow, shadow.json
// ------------------------------------------------------------------------------------------

fn merge_secret_map(
    file: AcFile,
    backup: &str,
    live: Option<&str>,
    mode: Mode,
    diags: &mut Vec<FileDiag>,
) -> MergedFile {
    let what = if file == AcFile::TokenShadow {
        "token secrets"
    } else {
        "password hashes"
    };
    let left = |why: String| MergedFile {
        file,
        before: live.map(str::to_owned),
        after: None,
        notes: vec![why],
    };
    let b = match parse_secret_map(backup) {
        Ok(b) => b,
        Err(d) => {
            let why = format!(
                "left as it is: the backup's file cannot be read (line {}: {})",
                d.line, d.message
            );
            push_diags(BACKUP, file, vec![d], diags);
            return left(why);
        }
    };
    let l = match live.map(parse_secret_map).transpose() {
        Ok(l) => l.unwrap_or_default(),
        Err(d) => {
            return left(format!(
                "left as it is: this host's file cannot be read (line {}: {}), so root@pam's entries could not be kept",
                d.line, d.message
            ));
        }
    };
    let mut out: BTreeMap<String, String> = match mode {
        Mode::Merge => l.clone(),
        Mode::Clean => l
            .iter()
            .filter(|(k, _)| is_root_authid(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let mut from_backup = Vec::new();
    for (k, v) in &b {
        if is_root_authid(k) {
            continue;
        }
        if !formats::valid_authid(k) {
            diags.push(FileDiag {
                file: format!("{BACKUP} {}", file.path()),
                line: 0,
                reason: format!("`{k}` is not a user or token id"),
            });
            continue;
        }
        out.insert(k.clone(), v.clone());
        from_backup.push(k.as_str());
    }
    let mut notes = vec![list_note(&format!("{what} from the backup"), &from_backup)];
    let root_live: Vec<&str> = l
        .keys()
        .filter(|k| is_root_authid(k))
        .map(String::as_str)
        .collect();
    if !root_live.is_empty() {
        notes.push(list_note("root@pam entries of this host kept", &root_live));
    }
    let root_backup: Vec<&str> = b
        .keys()
        .filter(|k| is_root_authid(k))
        .map(String::as_str)
        .collect();
    if !root_backup.is_empty() {
        notes.push(list_note(
            "root@pam entries of the backup dropped",
            &root_backup,
        ));
    }
    let removed: Vec<&str> = l
        .keys()
        .filter(|k| !out.contains_key(*k))
        .map(String::as_str)
        .collect();
    if !removed.is_empty() {
        notes.push(list_note(
            "entries of this host not in the backup removed (clean)",
            &removed,
        ));
    }
    let rendered = if file == AcFile::TokenShadow {
        render_token_shadow(&out)
    } else {
        render_shadow(&out)
    };
    let after = if live.is_some() && out == l {
        live.map(str::to_string)
    } else {
        Some(rendered)
    };
    MergedFile {
        file,
        before: live.map(str::to_owned),
        after,
        notes,
    }
}

// ------------------------------------------------------------------------------------------
// tfa.json
// ------------------------------------------------------------------------------------------

fn merge_tfa(
    backup: &str,
    live: Option<&str>,
    mode: Mode,
    diags: &mut Vec<FileDiag>,
) -> MergedFile {
    let file = AcFile::Tfa;
    let left = |why: String| MergedFile {
        file,
        before: live.map(str::to_owned),
        after: None,
        notes: vec![why],
    };
    let b = match parse_tfa(backup) {
        Ok(b) => b,
        Err(d) => {
            let why = format!(
                "left as it is: the backup's file cannot be read (line {}: {})",
                d.line, d.message
            );
            push_diags(BACKUP, file, vec![d], diags);
            return left(why);
        }
    };
    let l = match live.map(parse_tfa).transpose() {
        Ok(l) => l.unwrap_or_default(),
        Err(d) => {
            return left(format!(
                "left as it is: this host's file cannot be read (line {}: {}), so root@pam's second factors could not be kept",
                d.line, d.message
            ));
        }
    };
    let mut out = Tfa {
        users: match mode {
            Mode::Merge => l.users.clone(),
            Mode::Clean => l
                .users
                .iter()
                .filter(|(k, _)| k.as_str() == ROOT)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        },
        settings: if l.settings.is_empty() {
            b.settings.clone()
        } else {
            l.settings.clone()
        },
    };
    let mut users = Vec::new();
    for (k, v) in &b.users {
        if k == ROOT {
            continue;
        }
        out.users.insert(k.clone(), v.clone());
        users.push(k.as_str());
    }
    let mut notes = vec![list_note("second factors from the backup", &users)];
    if l.users.contains_key(ROOT) {
        notes.push("root@pam: this host's second factors kept".into());
    }
    if b.users.contains_key(ROOT) {
        notes.push("root@pam: the backup's second factors dropped".into());
    }
    if !l.settings.is_empty() && l.settings != b.settings && !b.settings.is_empty() {
        notes.push("WebAuthn/U2F settings: this host's kept (keys registered at the backup's address may need to be registered again)".into());
    }
    let removed: Vec<&str> = l
        .users
        .keys()
        .filter(|k| !out.users.contains_key(*k))
        .map(String::as_str)
        .collect();
    if !removed.is_empty() {
        notes.push(list_note(
            "second factors of this host's users not in the backup removed (clean)",
            &removed,
        ));
    }
    let after = if live.is_some() && out == l {
        live.map(str::to_string)
    } else {
        Some(render_tfa(&out))
    };
    MergedFile {
        file,
        before: live.map(str::to_owned),
        after,
        notes,
    }
}

#[cfg(test)]
mod tests;
