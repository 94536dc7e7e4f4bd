//! The merge of the backup's access-control files with this host's (pure).
//!
//! Rules (the backup's objects come back; this host's `root@pam` stays as it is):
//!
//! * `user.cfg`: the backup's users, tokens, groups, pools, roles and ACLs. The backup's
//!   `root@pam` user line and its `root@pam!…` tokens are dropped; this host's `root@pam` line
//!   (or `user:root@pam:1:0:::::::` when it has none) and its `root@pam!…` tokens are kept.
//!   `root@pam` and the backup's `root@pam!…` tokens are taken out of the ACL member lists
//!   (PVE treats `root@pam` as an implicit Administrator and never writes an ACL for it;
//!   no ACL is ever added for it); this host's ACL lines of its own `root@pam!…` tokens are
//!   kept. Users of this host that the backup lacks are not kept (the file is the backup's)
//!   and are listed. A result without an enabled administrator (an enabled `root@pam`
//!   counts; else an enabled user holding `Administrator` on `/` directly or through a group)
//!   is refused. A backup file of which not one line reads as `user.cfg` is not used (the
//!   file is left as it is): it would remove every user but `root@pam`.
//! * `domains.cfg` (section config): the backup's realms; `pam` and `pve` are always present,
//!   this host's definition of them wins, PVE's default when neither has one.
//! * `priv/shadow.cfg`, `priv/token.cfg`: the backup's entries without `root@pam`'s, plus
//!   this host's `root@pam` (and `root@pam!…`) entries.
//! * `priv/tfa.cfg`: the backup's entries (and realm-wide settings) without `root@pam`'s, plus
//!   this host's `root@pam` entry. When one file is JSON and the other legacy lines, the
//!   file is left as it is (the two cannot be combined without converting secrets).
//!
//! Only files the backup has are written. A line that does not parse is skipped and named
//! ([`FileDiag`]); the rest applies. A file whose result equals this host's file is not
//! written; a result equal to the backup's file is the backup's bytes.

use std::collections::BTreeSet;
use std::fmt;

use proxsave_formats::section::{self, Section};
use serde::Serialize;

use crate::formats::shadow::{self, ShadowCfg};
use crate::formats::tfa::{self, TfaCfg, TfaData};
use crate::formats::token::{self, TokenCfg};
use crate::formats::user_cfg::{self, Diag, Original, User, UserCfg};

/// The root user of this host.
pub const ROOT: &str = "root@pam";
const ROOT_TOKEN_PREFIX: &str = "root@pam!";

/// One of the five access-control files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcFile {
    /// `etc/pve/user.cfg`.
    UserCfg,
    /// `etc/pve/domains.cfg`.
    Domains,
    /// `etc/pve/priv/shadow.cfg`.
    Shadow,
    /// `etc/pve/priv/token.cfg`.
    Token,
    /// `etc/pve/priv/tfa.cfg`.
    Tfa,
}

impl AcFile {
    /// All five, in write order.
    pub const ALL: [AcFile; 5] = [
        AcFile::Domains,
        AcFile::UserCfg,
        AcFile::Shadow,
        AcFile::Token,
        AcFile::Tfa,
    ];

    /// The path relative to the root.
    pub fn path(self) -> &'static str {
        match self {
            AcFile::UserCfg => "etc/pve/user.cfg",
            AcFile::Domains => "etc/pve/domains.cfg",
            AcFile::Shadow => "etc/pve/priv/shadow.cfg",
            AcFile::Token => "etc/pve/priv/token.cfg",
            AcFile::Tfa => "etc/pve/priv/tfa.cfg",
        }
    }

    /// The mode pmxcfs accepts: 0600 under `priv/`, 0640 elsewhere.
    pub fn mode(self) -> u32 {
        if self.is_secret() { 0o600 } else { 0o640 }
    }

    /// True for the files under `priv/` (never shown).
    pub fn is_secret(self) -> bool {
        matches!(self, AcFile::Shadow | AcFile::Token | AcFile::Tfa)
    }
}

/// The texts of the five files on one side (`None`: absent).
#[derive(Clone, Debug, Default)]
pub struct AcTexts {
    /// `user.cfg`.
    pub user_cfg: Option<String>,
    /// `domains.cfg`.
    pub domains: Option<String>,
    /// `priv/shadow.cfg`.
    pub shadow: Option<String>,
    /// `priv/token.cfg`.
    pub token: Option<String>,
    /// `priv/tfa.cfg`.
    pub tfa: Option<String>,
}

impl AcTexts {
    /// The text of `file`.
    pub fn get(&self, file: AcFile) -> Option<&str> {
        match file {
            AcFile::UserCfg => self.user_cfg.as_deref(),
            AcFile::Domains => self.domains.as_deref(),
            AcFile::Shadow => self.shadow.as_deref(),
            AcFile::Token => self.token.as_deref(),
            AcFile::Tfa => self.tfa.as_deref(),
        }
    }

    /// Sets the text of `file`.
    pub fn set(&mut self, file: AcFile, text: Option<String>) {
        match file {
            AcFile::UserCfg => self.user_cfg = text,
            AcFile::Domains => self.domains = text,
            AcFile::Shadow => self.shadow = text,
            AcFile::Token => self.token = text,
            AcFile::Tfa => self.tfa = text,
        }
    }
}

/// A line skipped: which file (of which side), which line, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileDiag {
    /// `the backup's etc/pve/user.cfg` or `this host's etc/pve/user.cfg`.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// Why.
    pub reason: String,
}

impl fmt::Display for FileDiag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} line {}: {} (skipped)",
            self.file, self.line, self.reason
        )
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
    /// What changes, for people (never a secret).
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
    /// One per file the backup has, in write order.
    pub files: Vec<MergedFile>,
    /// Lines skipped.
    pub diags: Vec<FileDiag>,
}

/// Why the merge is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// The result would leave no enabled administrator.
    #[error(
        "{file}: refused: the merged file would leave no enabled administrator (root@pam of this host is disabled or absent and no enabled user holds Administrator on /); nothing written"
    )]
    NoAdministrator {
        /// The file.
        file: &'static str,
    },
}

fn diags_of(side: &str, file: AcFile, diags: Vec<Diag>, out: &mut Vec<FileDiag>) {
    out.extend(diags.into_iter().map(|d| FileDiag {
        file: format!("{side} {}", file.path()),
        line: d.line,
        reason: d.message,
    }));
}

const BACKUP: &str = "the backup's";
const LIVE: &str = "this host's";

/// Merges the backup's files with this host's; see the module docs.
///
/// # Errors
/// [`MergeError::NoAdministrator`].
pub fn merge(backup: &AcTexts, live: &AcTexts) -> Result<Merged, MergeError> {
    merge_with(backup, live, MergeOptions::default())
}

/// How [`merge_with`] treats what another applier owns.
#[derive(Clone, Copy, Debug, Default)]
pub struct MergeOptions {
    /// Keep this host's `pool:` lines where it has the pool, instead of the backup's: in a
    /// SAFE cluster restore the pools are re-created through the API, only with the guests
    /// and storages this cluster has (`pve-safe-pools`), and the backup's lines would bring
    /// back members it lacks. The backup's pools the host lacks are added.
    pub keep_host_pools: bool,
}

/// [`merge`] with options.
///
/// # Errors
/// [`MergeError::NoAdministrator`].
pub fn merge_with(
    backup: &AcTexts,
    live: &AcTexts,
    opts: MergeOptions,
) -> Result<Merged, MergeError> {
    let mut diags = Vec::new();
    let mut files = Vec::new();
    for file in AcFile::ALL {
        let Some(b) = backup.get(file) else { continue };
        let l = live.get(file);
        let merged = match file {
            AcFile::UserCfg => merge_user_cfg(b, l, opts, &mut diags)?,
            AcFile::Domains => merge_domains(b, l, &mut diags),
            AcFile::Shadow => merge_shadow(b, l, &mut diags),
            AcFile::Token => merge_token(b, l, &mut diags),
            AcFile::Tfa => merge_tfa(b, l, &mut diags),
        };
        files.push(merged);
    }
    Ok(Merged { files, diags })
}

// ----------------------------------------------------------------------------------------
// user.cfg
// ----------------------------------------------------------------------------------------

fn is_root_token(id: &str) -> bool {
    id.starts_with(ROOT_TOKEN_PREFIX)
}

fn merge_user_cfg(
    backup: &str,
    live: Option<&str>,
    opts: MergeOptions,
    diags: &mut Vec<FileDiag>,
) -> Result<MergedFile, MergeError> {
    let file = AcFile::UserCfg;
    let (b, d) = user_cfg::parse(backup);
    let lines = backup.lines().filter(|l| !l.trim().is_empty()).count();
    let unreadable = lines > 0 && d.len() == lines;
    diags_of(BACKUP, file, d, diags);
    if unreadable {
        // Not one line of the backup's file reads as user.cfg: writing it would remove every
        // user of this host but root@pam.
        return Ok(MergedFile {
            file,
            before: live.map(str::to_owned),
            after: None,
            notes: vec!["left as it is: no line of the backup's file reads as user.cfg".into()],
        });
    }
    let l = live.map(|t| {
        let (c, d) = user_cfg::parse(t);
        diags_of(LIVE, file, d, diags);
        c
    });
    let mut out = b.clone();
    out.users.retain(|u| u.userid != ROOT);
    out.tokens.retain(|t| t.user() != ROOT);
    for acl in &mut out.acls {
        acl.members.retain(|m| m != ROOT && !is_root_token(m));
    }
    out.acls.retain(|a| !a.members.is_empty());
    let live_root = l.as_ref().and_then(|l| l.user(ROOT)).cloned();
    let root = live_root.clone().unwrap_or_else(|| User {
        userid: ROOT.into(),
        enable: true,
        original: Original(None),
        ..User::default()
    });
    out.users.push(root.clone());
    let live_root_tokens: Vec<_> = l
        .as_ref()
        .map(|l| {
            l.tokens
                .iter()
                .filter(|t| t.user() == ROOT)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    out.tokens.extend(live_root_tokens.iter().cloned());
    if let Some(l) = &l {
        for acl in &l.acls {
            let members: Vec<String> = acl
                .members
                .iter()
                .filter(|m| is_root_token(m))
                .cloned()
                .collect();
            if members.is_empty() {
                continue;
            }
            let mut kept = acl.clone();
            if kept.members != members {
                kept.members = members;
                kept.original = Original(None);
            }
            out.acls.push(kept);
        }
    }
    if !has_enabled_admin(&out) {
        return Err(MergeError::NoAdministrator { file: file.path() });
    }

    // Notes.
    let mut notes = Vec::new();
    if opts.keep_host_pools {
        // The host's pools win (the SAFE pools applier may just have re-created them through
        // the API with the members this cluster has); the backup's other pools are added.
        let host: Vec<_> = l.as_ref().map(|l| l.pools.clone()).unwrap_or_default();
        let added: Vec<_> = out
            .pools
            .iter()
            .filter(|p| !host.iter().any(|h| h.poolid == p.poolid))
            .cloned()
            .collect();
        notes.push(format!(
            "pools: this host's {} pool line(s) kept as they are, {} pool(s) of the backup added (a SAFE cluster restore re-creates pools through the API)",
            host.len(),
            added.len()
        ));
        out.pools = host.into_iter().chain(added).collect();
    }
    let live_users: BTreeSet<&str> = l
        .as_ref()
        .map(|l| l.users.iter().map(|u| u.userid.as_str()).collect())
        .unwrap_or_default();
    let new_users: BTreeSet<&str> = out.users.iter().map(|u| u.userid.as_str()).collect();
    let added: Vec<&str> = new_users.difference(&live_users).copied().collect();
    let kept: Vec<&str> = new_users
        .intersection(&live_users)
        .copied()
        .filter(|u| *u != ROOT)
        .collect();
    let removed: Vec<&str> = live_users.difference(&new_users).copied().collect();
    notes.push(format!(
        "root@pam: this host's user line kept ({}){}",
        if root.enable { "enabled" } else { "disabled" },
        if live_root.is_none() {
            "; this host has none, PVE's default `enabled` written"
        } else {
            ""
        }
    ));
    if b.user(ROOT).is_some() {
        notes.push("root@pam: the backup's user line dropped".into());
    }
    notes.push(list_note("users added from the backup", &added));
    notes.push(list_note("users kept (also in the backup)", &kept));
    if !removed.is_empty() {
        notes.push(list_note(
            "users of this host not in the backup (removed)",
            &removed,
        ));
    }
    let tokens: Vec<&str> = out
        .tokens
        .iter()
        .filter(|t| t.user() != ROOT)
        .map(|t| t.tokenid.as_str())
        .collect();
    notes.push(list_note("tokens from the backup", &tokens));
    let root_tokens: Vec<&str> = live_root_tokens
        .iter()
        .map(|t| t.tokenid.as_str())
        .collect();
    notes.push(list_note("root@pam tokens of this host kept", &root_tokens));
    let dropped: Vec<&str> = b
        .tokens
        .iter()
        .filter(|t| t.user() == ROOT)
        .map(|t| t.tokenid.as_str())
        .collect();
    if !dropped.is_empty() {
        notes.push(list_note("root@pam tokens of the backup dropped", &dropped));
    }
    if opts.keep_host_pools {
        notes.push(format!(
            "{} group(s), {} role(s), {} ACL line(s) from the backup",
            out.groups.len(),
            out.roles.len(),
            out.acls.len()
        ));
    } else {
        notes.push(format!(
            "{} group(s), {} pool(s), {} role(s), {} ACL line(s) from the backup",
            out.groups.len(),
            out.pools.len(),
            out.roles.len(),
            out.acls.len()
        ));
    }
    Ok(MergedFile {
        file,
        before: live.map(str::to_owned),
        after: Some(out.to_text()),
        notes,
    })
}

fn list_note(what: &str, items: &[&str]) -> String {
    if items.is_empty() {
        format!("{what}: none")
    } else {
        format!("{what}: {}", items.join(", "))
    }
}

/// True when `cfg` has an enabled administrator: an enabled `root@pam` (PVE adds an
/// enabled one when the file has none), or an enabled user holding `Administrator` on `/`
/// directly or through a group.
pub fn has_enabled_admin(cfg: &UserCfg) -> bool {
    match cfg.user(ROOT) {
        Some(root) if root.enable => return true,
        None => return true,
        Some(_) => {}
    }
    let admin_members: Vec<&str> = cfg
        .acls
        .iter()
        .filter(|a| a.path == "/" && a.roles.iter().any(|r| r == "Administrator"))
        .flat_map(|a| a.members.iter().map(String::as_str))
        .collect();
    cfg.users.iter().filter(|u| u.enable).any(|u| {
        admin_members.iter().any(|m| {
            *m == u.userid
                || m.strip_prefix('@').is_some_and(|g| {
                    cfg.groups
                        .iter()
                        .any(|gr| gr.groupid == g && gr.users.contains(&u.userid))
                })
        })
    })
}

// ----------------------------------------------------------------------------------------
// domains.cfg
// ----------------------------------------------------------------------------------------

fn section_diags(side: &str, diags: Vec<section::Diag>, out: &mut Vec<FileDiag>) {
    out.extend(diags.into_iter().map(|d| FileDiag {
        file: format!("{side} {}", AcFile::Domains.path()),
        line: d.line,
        reason: d.message,
    }));
}

fn default_realm(id: &str) -> Section {
    let comment = if id == "pam" {
        "Linux PAM standard authentication"
    } else {
        "Proxmox VE authentication server"
    };
    Section::new(id, id).with("comment", Some(comment))
}

fn merge_domains(backup: &str, live: Option<&str>, diags: &mut Vec<FileDiag>) -> MergedFile {
    let (b, d) = section::parse(backup);
    section_diags(BACKUP, d, diags);
    let l = live.map(|t| {
        let (c, d) = section::parse(t);
        section_diags(LIVE, d, diags);
        c
    });
    let mut out = b.clone();
    let mut notes = Vec::new();
    for required in ["pam", "pve"] {
        let live_def = l.as_ref().and_then(|l| l.find(required, required));
        let pos = out
            .sections
            .iter()
            .position(|s| s.ty == required && s.id == required);
        match (live_def, pos) {
            (Some(def), Some(i)) => {
                if out.sections[i] != *def {
                    notes.push(format!("realm {required}: this host's definition kept"));
                    out.sections[i] = def.clone();
                }
            }
            (Some(def), None) => {
                notes.push(format!(
                    "realm {required}: not in the backup, this host's definition kept"
                ));
                out.push(def.clone());
            }
            (None, Some(_)) => {}
            (None, None) => {
                notes.push(format!("realm {required}: PVE's default added"));
                out.push(default_realm(required));
            }
        }
    }
    let realms: Vec<String> = out
        .sections
        .iter()
        .map(|s| format!("{} ({})", s.id, s.ty))
        .collect();
    notes.insert(0, format!("realms: {}", realms.join(", ")));
    MergedFile {
        file: AcFile::Domains,
        before: live.map(str::to_owned),
        after: Some(out.to_text()),
        notes,
    }
}

// ----------------------------------------------------------------------------------------
// priv files
// ----------------------------------------------------------------------------------------

fn merge_shadow(backup: &str, live: Option<&str>, diags: &mut Vec<FileDiag>) -> MergedFile {
    let file = AcFile::Shadow;
    let (b, d) = shadow::parse(backup);
    diags_of(BACKUP, file, d, diags);
    let l = live.map(|t| {
        let (c, d) = shadow::parse(t);
        diags_of(LIVE, file, d, diags);
        c
    });
    let mut out: ShadowCfg = b.clone();
    out.entries.retain(|e| e.userid != ROOT);
    let mut notes = Vec::new();
    if b.get(ROOT).is_some() {
        notes.push("root@pam: the backup's entry dropped".into());
    }
    if let Some(root) = l.as_ref().and_then(|l| l.get(ROOT)) {
        out.entries.push(root.clone());
        notes.push("root@pam: this host's entry kept".into());
    }
    let users: Vec<&str> = out
        .entries
        .iter()
        .filter(|e| e.userid != ROOT)
        .map(|e| e.userid.as_str())
        .collect();
    notes.insert(0, list_note("password hashes from the backup", &users));
    MergedFile {
        file,
        before: live.map(str::to_owned),
        after: Some(out.to_text()),
        notes,
    }
}

fn merge_token(backup: &str, live: Option<&str>, diags: &mut Vec<FileDiag>) -> MergedFile {
    let file = AcFile::Token;
    let (b, d) = token::parse(backup);
    diags_of(BACKUP, file, d, diags);
    let l = live.map(|t| {
        let (c, d) = token::parse(t);
        diags_of(LIVE, file, d, diags);
        c
    });
    let mut out: TokenCfg = b.clone();
    out.entries.retain(|e| e.user() != ROOT);
    let mut notes = Vec::new();
    let dropped: Vec<&str> = b
        .entries
        .iter()
        .filter(|e| e.user() == ROOT)
        .map(|e| e.tokenid.as_str())
        .collect();
    let tokens: Vec<&str> = out.entries.iter().map(|e| e.tokenid.as_str()).collect();
    notes.push(list_note("token secrets from the backup", &tokens));
    if !dropped.is_empty() {
        notes.push(list_note(
            "root@pam token secrets of the backup dropped",
            &dropped,
        ));
    }
    let live_root: Vec<_> = l
        .map(|l| l.entries.into_iter().filter(|e| e.user() == ROOT).collect())
        .unwrap_or_default();
    let kept: Vec<String> = live_root.iter().map(|e| e.tokenid.clone()).collect();
    let kept_ref: Vec<&str> = kept.iter().map(String::as_str).collect();
    notes.push(list_note(
        "root@pam token secrets of this host kept",
        &kept_ref,
    ));
    for e in live_root {
        out.set(e);
    }
    MergedFile {
        file,
        before: live.map(str::to_owned),
        after: Some(out.to_text()),
        notes,
    }
}

fn merge_tfa(backup: &str, live: Option<&str>, diags: &mut Vec<FileDiag>) -> MergedFile {
    let file = AcFile::Tfa;
    let left = |why: String| MergedFile {
        file,
        before: live.map(str::to_owned),
        after: None,
        notes: vec![why],
    };
    let b = match tfa::parse(backup) {
        Ok((c, d)) => {
            diags_of(BACKUP, file, d, diags);
            c
        }
        Err(d) => {
            let reason = format!("{d}");
            diags.push(FileDiag {
                file: format!("{BACKUP} {}", file.path()),
                line: d.line,
                reason: d.message,
            });
            return left(format!(
                "left as it is: the backup's file cannot be read ({reason})"
            ));
        }
    };
    let l: Option<TfaCfg> = match live.filter(|t| !t.trim().is_empty()) {
        None => None,
        Some(t) => match tfa::parse(t) {
            Ok((c, d)) => {
                diags_of(LIVE, file, d, diags);
                Some(c)
            }
            Err(d) => {
                return left(format!(
                    "left as it is: this host's file cannot be read ({d}), so root@pam's entry could not be kept"
                ));
            }
        },
    };
    let mut out = b.clone();
    out.remove_user(ROOT);
    let mut notes = Vec::new();
    if b.users().iter().any(|u| u == ROOT) {
        notes.push("root@pam: the backup's entry dropped".into());
    }
    if let Some(l) = &l {
        let live_has_root = l.users().iter().any(|u| u == ROOT);
        match (&mut out.data, &l.data) {
            (TfaData::Json(_), TfaData::Json(_)) => {
                if let Some(v) = l.user_json(ROOT) {
                    out.set_user_json(ROOT, v.clone());
                }
            }
            (TfaData::Legacy(_), TfaData::Legacy(_)) => {
                out.push_lines(l.user_lines(ROOT));
            }
            _ if !live_has_root => {}
            _ => {
                return left(
                    "left as it is: one file is JSON and the other legacy lines, so root@pam's entry could not be kept"
                        .into(),
                );
            }
        }
        if live_has_root {
            notes.push("root@pam: this host's entry kept".into());
        }
    }
    let users: Vec<String> = out.users().into_iter().filter(|u| u != ROOT).collect();
    let users_ref: Vec<&str> = users.iter().map(String::as_str).collect();
    notes.insert(0, list_note("second factors from the backup", &users_ref));
    MergedFile {
        file,
        before: live.map(str::to_owned),
        after: Some(out.to_text()),
        notes,
    }
}

#[cfg(test)]
mod tests;
