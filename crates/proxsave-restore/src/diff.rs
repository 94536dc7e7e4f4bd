//! `diff`: how the files a restore would put in place differ from the target root, with
//! secrets masked.

use std::io::Read;

use proxsave_archive::entry::EntryKind;
use proxsave_archive::path::ArchivePath;
use proxsave_archive::progress::CancelToken;
use proxsave_archive::read;
use serde::Serialize;
use similar::TextDiff;

use crate::applier::{AppliersSet, RootHandle, STAGE_READ_LIMIT, Stage};
use crate::compare::{Change, RootReader};
use crate::engine::{PlannedApplier, Scan, Target, exported_read, plan_appliers, system_guard};
use crate::error::RestoreError;
use crate::plan::{Plan, Tier};
use crate::prompt::Prompter;
use crate::report::system_path;

/// Whether a diff masks secrets (the default) or shows them (`diff --show-secrets`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Secrets {
    /// Secret values masked, secret files not shown.
    #[default]
    Masked,
    /// Everything shown as it is.
    Shown,
}

/// Largest file whose content is diffed.
pub const DIFF_LIMIT: u64 = 1 << 20;

/// One file's difference.
#[derive(Clone, Debug, Serialize)]
pub struct FileDiff {
    /// Path on the system.
    pub path: String,
    /// Where the restore puts it.
    pub tier: Tier,
    /// New, changed, metadata, unchanged.
    pub change: Change,
    /// Unified diff (current → backup), secrets masked; absent for secret, binary or large files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Why no diff is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// True for files whose content is never shown (keys, password databases, tokens).
pub fn is_secret(path: &ArchivePath) -> bool {
    let p = path.to_str().unwrap_or("");
    let name = p.rsplit('/').next().unwrap_or(p);
    p.contains("/priv/")
        || crate::domain::is_secret(path)
        || matches!(
            p,
            "etc/shadow"
                | "etc/gshadow"
                | "etc/shadow-"
                | "etc/gshadow-"
                | "etc/corosync/authkey"
                | "etc/hostid"
        )
        || name.ends_with(".key")
        || (name.starts_with("ssh_host_") && !name.ends_with(".pub"))
        || (name.starts_with("id_") && !name.ends_with(".pub"))
        || p.starts_with("etc/ssl/private")
        || p.starts_with("etc/keys")
        || p.starts_with("etc/luks-keys")
        || p.starts_with("etc/cryptsetup-keys.d")
}

/// Key endings that name a secret value (`password`, `smb-password`,
/// `node.session.auth.password`, `api_token`, `client_secret`, `PrivateKey`, …). A key that
/// only *contains* one of them names a setting, not a secret (`PasswordAuthentication no`,
/// `password_policy`), and is shown.
const SECRET_ENDINGS: [&str; 14] = [
    "password",
    "passwd",
    "secret",
    "token",
    "psk",
    "community",
    "apikey",
    "api-key",
    "api_key",
    "privatekey",
    "private_key",
    "private-key",
    "presharedkey",
    "passphrase",
];

fn secret_key(key: &str) -> bool {
    let key = key.trim().trim_start_matches('-').to_ascii_lowercase();
    !key.is_empty() && SECRET_ENDINGS.iter().any(|w| key.ends_with(w))
}

/// A value that is a password hash (`$6$…`, `$y$…`, `$2b$…`, `$argon2id$…`) whatever its key.
fn hash_value(v: &str) -> bool {
    let v = v.trim();
    let Some(rest) = v.strip_prefix('$') else {
        return false;
    };
    let id_end = rest.find('$').unwrap_or(0);
    id_end > 0
        && rest[..id_end]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        && rest[id_end + 1..].len() >= 8
        && !v.contains(char::is_whitespace)
}

/// Replaces the value of `key = value` / `key: value` / `key value` lines whose key names a
/// secret (`password`, `node.session.auth.password`, `smb-password`, `api_token`, …) with
/// `********`.
pub fn mask_line(line: &str) -> String {
    mask_options(&mask_key_line(line))
}

/// Masks `key=value` items of option lists (`username=u,password=p` in fstab, property
/// strings) whose key names a secret; the value ends at `,` or a blank.
fn mask_options(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(eq) = rest.find('=') {
        let start = rest[..eq].rfind([',', ' ', '\t', '=']).map_or(0, |i| i + 1);
        let key = rest[start..eq].to_ascii_lowercase();
        let end = rest[eq + 1..]
            .find([',', ' ', '\t'])
            .map_or(rest.len(), |i| eq + 1 + i);
        out.push_str(&rest[..=eq]);
        let value = &rest[eq + 1..end];
        if !key.is_empty()
            && !value.is_empty()
            && value != "********"
            && (secret_key(&key) || hash_value(value))
        {
            out.push_str("********");
        } else {
            out.push_str(value);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn mask_key_line(line: &str) -> String {
    let indent = line.len() - line.trim_start().len();
    let body = &line[indent..];
    let Some(sep) = body.find([':', '=', ' ', '\t']) else {
        return line.to_string();
    };
    if !secret_key(&body[..sep]) {
        return mask_hash_fields(line);
    }
    let rest = &body[sep..];
    // Skip the separator and the blanks around it.
    let value_at = rest
        .find(|c: char| !matches!(c, ':' | '=' | ' ' | '\t'))
        .unwrap_or(rest.len());
    if value_at == rest.len() {
        return line.to_string();
    }
    format!(
        "{}{}{}********",
        &line[..indent],
        &body[..sep],
        &rest[..value_at]
    )
}

/// Masks `:`-separated fields that are password hashes (`user:$6$…:…` in shadow-like files and
/// `user.cfg`), leaving the rest of the line.
fn mask_hash_fields(line: &str) -> String {
    if !line.contains('$') {
        return line.to_string();
    }
    line.split(':')
        .map(|f| if hash_value(f) { "********" } else { f })
        .collect::<Vec<_>>()
        .join(":")
}

/// `text` with the values of secret-looking keys (`password`, `token`, …) masked.
pub fn mask(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|l| {
            let (body, nl) = match l.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (l, ""),
            };
            format!("{}{nl}", mask_line(body))
        })
        .collect()
}

fn text_of(bytes: &[u8]) -> Option<String> {
    if bytes.contains(&0) {
        return None;
    }
    String::from_utf8(bytes.to_vec()).ok()
}

/// Unified diff (current → backup) of two texts with secret values masked; `None` when
/// either is binary (a NUL byte or not UTF-8).
fn text_diff(shown: &str, current: &[u8], backup: &[u8], secrets: Secrets) -> Option<String> {
    let (old, new) = (text_of(current)?, text_of(backup)?);
    let (old, new) = match secrets {
        Secrets::Masked => (mask(&old), mask(&new)),
        Secrets::Shown => (old, new),
    };
    Some(
        TextDiff::from_lines(&old, &new)
            .unified_diff()
            .context_radius(3)
            .header(&format!("{shown} (current)"), &format!("{shown} (backup)"))
            .to_string(),
    )
}

/// Compares files whose backup content is already at hand (for example a cluster filesystem rebuilt
/// from its database in a backup) with the same paths under `root`: new when nothing is
/// there, changed when the bytes differ (a masked unified diff, or a note for secret,
/// binary, large files and for something that is not a regular file), else unchanged.
/// Only content is compared: the caller's files carry no mode, owner or time to compare.
/// Nothing is followed through a symlink.
///
/// # Errors
/// The root cannot be opened.
pub fn diff_contents<'a>(
    root: &std::path::Path,
    files: impl IntoIterator<Item = (ArchivePath, &'a [u8])>,
    tier: Tier,
    secrets: Secrets,
) -> Result<Vec<FileDiff>, RestoreError> {
    let reader = RootReader::open(root).map_err(|e| RestoreError::io(root, e))?;
    let mut out = Vec::new();
    for (path, data) in files {
        let shown = system_path(&path);
        let mut fd = FileDiff {
            path: shown.clone(),
            tier,
            change: Change::Unchanged,
            diff: None,
            note: None,
        };
        if !reader.exists(&path) {
            fd.change = Change::New;
            out.push(fd);
            continue;
        }
        let current = reader.read_file(&path, DIFF_LIMIT);
        if current.as_deref() == Some(data) {
            out.push(fd);
            continue;
        }
        fd.change = Change::Changed;
        if secrets == Secrets::Masked && is_secret(&path) {
            fd.note = Some("secret file: content differs (not shown)".into());
        } else if data.len() as u64 > DIFF_LIMIT {
            fd.note = Some("larger than 1 MiB: content differs (not shown)".into());
        } else if let Some(current) = current {
            match text_diff(&shown, &current, data, secrets) {
                Some(d) => fd.diff = Some(d),
                None => fd.note = Some("binary file: content differs (not shown)".into()),
            }
        } else {
            fd.note = Some(
                "what is there now is not a regular file, or is larger than 1 MiB (not shown)"
                    .into(),
            );
        }
        out.push(fd);
    }
    Ok(out)
}

/// Compares every file the plan writes to the root (or stages for an applier) with what the
/// root holds now. One read of the backup.
///
/// # Errors
/// Read-path errors.
pub fn diff(
    target: &Target<'_>,
    scan: &Scan,
    plan: &Plan,
    cancel: &CancelToken,
) -> Result<Vec<FileDiff>, RestoreError> {
    Ok(diff_all(target, scan, plan, None, cancel, Secrets::Masked)?.files)
}

/// What `diff` found: the files, and what each applier would change.
#[derive(Clone, Debug, Serialize)]
pub struct DiffReport {
    /// Every file the plan puts in place or stages.
    pub files: Vec<FileDiff>,
    /// The appliers' plans, each with its planned changes (file writes, API calls) as
    /// before/after texts; `PlannedChange::unified_diff` renders them.
    pub appliers: Vec<PlannedApplier>,
}

/// [`diff`] plus the appliers' planned changes: the staged files are put in a private
/// temporary stage during the same single read, then every applier of `appliers` plans
/// from it (nothing is asked, nothing is written to the root; commands run only as the
/// host allows).
///
/// # Errors
/// Read-path errors; an applier refusing an answer given up front.
pub fn diff_all(
    target: &Target<'_>,
    _scan: &Scan,
    plan: &Plan,
    appliers: Option<(&AppliersSet, &mut dyn Prompter)>,
    cancel: &CancelToken,
    secrets: Secrets,
) -> Result<DiffReport, RestoreError> {
    let reader =
        RootReader::open(&target.host.root).map_err(|e| RestoreError::io(&target.host.root, e))?;
    // Exported categories an applier reads are staged too (never listed as diffs).
    let read = match &appliers {
        Some((set, _)) => exported_read(set, plan),
        None => Vec::new(),
    };
    let stage_plan = plan.clone().stage_exported(&read);
    let staging = appliers.is_some()
        && (plan.in_tier(Tier::Staged).next().is_some() || !stage_plan.exported_staged.is_empty());
    let stage_dir = if staging {
        Some(
            tempfile::Builder::new()
                .prefix("proxsave-diff-stage-")
                .tempdir()
                .map_err(|e| RestoreError::io(&std::env::temp_dir(), e))?,
        )
    } else {
        None
    };
    let mut stager = match &stage_dir {
        Some(d) => Some(proxsave_archive::extract::Extractor::new(
            d.path(),
            proxsave_archive::extract::ExtractOptions {
                cancel: cancel.clone(),
                ..Default::default()
            },
        )?),
        None => None,
    };
    let mut stream = read::open_stream(target.backup, target.stream)?;
    let mut out = Vec::new();
    while let Some(h) = stream.next_entry()? {
        cancel.check()?;
        let Ok(Some(path)) = ArchivePath::parse(&h.raw_path) else {
            continue;
        };
        let route = plan.route(&path);
        let tier = if route.contains(&Tier::Normal) && system_guard(&path).is_none() {
            Tier::Normal
        } else if route.contains(&Tier::Staged) {
            Tier::Staged
        } else {
            if let Some(x) = stager.as_mut()
                && stage_plan.route(&path).contains(&Tier::Staged)
                && matches!(h.kind, EntryKind::File | EntryKind::Directory)
            {
                let mut data = Vec::new();
                if h.kind == EntryKind::File {
                    stream
                        .data()
                        .take(STAGE_READ_LIMIT + 1)
                        .read_to_end(&mut data)
                        .map_err(|e| stream.explain(proxsave_archive::Error::Read(e)))?;
                }
                if data.len() as u64 <= STAGE_READ_LIMIT {
                    x.add(
                        &h,
                        &mut &data[..],
                        proxsave_archive::extract::Selection::Include,
                    )?;
                }
            }
            continue;
        };
        let staged_here = tier == Tier::Staged && stager.is_some();
        if !matches!(h.kind, EntryKind::File | EntryKind::Symlink) {
            if staged_here
                && h.kind == EntryKind::Directory
                && let Some(x) = stager.as_mut()
            {
                x.add(
                    &h,
                    &mut std::io::empty(),
                    proxsave_archive::extract::Selection::Include,
                )?;
            }
            continue;
        }
        let mut data = Vec::new();
        if h.kind == EntryKind::File {
            let limit = if staged_here {
                STAGE_READ_LIMIT
            } else {
                DIFF_LIMIT
            };
            stream
                .data()
                .take(limit + 1)
                .read_to_end(&mut data)
                .map_err(|e| stream.explain(proxsave_archive::Error::Read(e)))?;
        }
        if staged_here
            && data.len() as u64 <= STAGE_READ_LIMIT
            && let Some(x) = stager.as_mut()
        {
            x.add(
                &h,
                &mut &data[..],
                proxsave_archive::extract::Selection::Include,
            )?;
        }
        let change = if h.kind == EntryKind::File && data.len() as u64 <= DIFF_LIMIT {
            reader.compare(&path, &h, Some(&mut &data[..]))
        } else {
            reader.compare(&path, &h, None)
        };
        let shown = system_path(&path);
        let mut fd = FileDiff {
            path: shown.clone(),
            tier,
            change,
            diff: None,
            note: None,
        };
        if change == Change::Changed {
            if secrets == Secrets::Masked && is_secret(&path) {
                fd.note = Some("secret file: content differs (not shown)".into());
            } else if h.kind == EntryKind::Symlink {
                fd.note = Some(format!(
                    "symbolic link to {}",
                    h.display_link().unwrap_or_default()
                ));
            } else if data.len() as u64 > DIFF_LIMIT {
                fd.note = Some("larger than 1 MiB: content differs (not shown)".into());
            } else {
                let current = reader.read_file(&path, DIFF_LIMIT).unwrap_or_default();
                match text_diff(&shown, &current, &data, secrets) {
                    Some(d) => fd.diff = Some(d),
                    None => fd.note = Some("binary file: content differs (not shown)".into()),
                }
            }
        }
        out.push(fd);
    }
    stream.finish()?;
    let mut planned = Vec::new();
    if let (Some(x), Some(dir), Some((set, prompter))) = (stager, &stage_dir, appliers) {
        x.commit()?;
        let stage = Stage::open(dir.path()).map_err(|e| RestoreError::io(dir.path(), e))?;
        let root = RootHandle::open(&target.host.root)
            .map_err(|e| RestoreError::io(&target.host.root, e))?;
        planned = plan_appliers(set, plan, &stage, &root, target.host, prompter)?;
    }
    Ok(DiffReport {
        files: out,
        appliers: planned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        assert_eq!(mask_line("\tpassword s3cr3t"), "\tpassword ********");
        assert_eq!(mask_line("smb-password: hunter2"), "smb-password: ********");
        assert_eq!(mask_line("api_token=abc"), "api_token=********");
        assert_eq!(
            mask_line("node.session.auth.password = s"),
            "node.session.auth.password = ********"
        );
        assert_eq!(mask_line("keyboard: en-us"), "keyboard: en-us");
        // Settings named after a secret are not secrets.
        assert_eq!(
            mask_line("PasswordAuthentication no"),
            "PasswordAuthentication no"
        );
        assert_eq!(
            mask_line("password_policy: strict=1"),
            "password_policy: strict=1"
        );
        // Password hashes are, whatever their key or field.
        assert_eq!(
            mask_line("root:$6$abcdefgh$0123456789abcdef:19000:0:99999:7:::"),
            "root:********:19000:0:99999:7:::"
        );
        assert_eq!(mask_line("PrivateKey = aGVsbG8="), "PrivateKey = ********");
        assert_eq!(
            mask_line("//nas/share /mnt/s cifs username=u,password=p4ss,vers=3 0 0"),
            "//nas/share /mnt/s cifs username=u,password=********,vers=3 0 0"
        );
        assert_eq!(
            mask_line("pvesh set /storage/x --password=abc --content=backup"),
            "pvesh set /storage/x --password=******** --content=backup"
        );
        assert_eq!(mask_line("a=b=c,d"), "a=b=c,d");
        assert_eq!(mask_line("\tserver 192.0.2.1"), "\tserver 192.0.2.1");
        assert!(is_secret(
            &ArchivePath::from_user("etc/cluster/priv/authkey.key").unwrap()
        ));
        assert!(is_secret(&ArchivePath::from_user("etc/shadow").unwrap()));
        assert!(is_secret(
            &ArchivePath::from_user("etc/ssh/ssh_host_ed25519_key").unwrap()
        ));
        assert!(!is_secret(
            &ArchivePath::from_user("etc/ssh/ssh_host_ed25519_key.pub").unwrap()
        ));
        assert!(!is_secret(&ArchivePath::from_user("etc/hosts").unwrap()));
    }

    #[test]
    fn diff_contents_reports_new_changed_unchanged_and_masks() {
        let root = tempfile::tempdir().unwrap();
        let pve = root.path().join("etc/clusterfs");
        std::fs::create_dir_all(pve.join("priv")).unwrap();
        std::fs::write(pve.join("same.cfg"), b"a\n").unwrap();
        std::fs::write(pve.join("storage.cfg"), b"dir: local\n\tpassword old\n").unwrap();
        std::fs::write(pve.join("priv/authkey.key"), b"old").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", pve.join("link.cfg")).unwrap();
        let p = |s: &str| ArchivePath::from_user(s).unwrap();
        let files: Vec<(ArchivePath, &[u8])> = vec![
            (p("etc/clusterfs/same.cfg"), b"a\n"),
            (
                p("etc/clusterfs/storage.cfg"),
                b"dir: local\n\tpassword new\n\tshared 1\n",
            ),
            (p("etc/clusterfs/priv/authkey.key"), b"new"),
            (p("etc/clusterfs/link.cfg"), b"x\n"),
            (p("etc/clusterfs/new.cfg"), b"n\n"),
        ];
        let d = diff_contents(root.path(), files, Tier::Export, Secrets::Masked).unwrap();
        let changes: Vec<(&str, Change)> = d.iter().map(|f| (f.path.as_str(), f.change)).collect();
        assert_eq!(
            changes,
            [
                ("/etc/clusterfs/same.cfg", Change::Unchanged),
                ("/etc/clusterfs/storage.cfg", Change::Changed),
                ("/etc/clusterfs/priv/authkey.key", Change::Changed),
                ("/etc/clusterfs/link.cfg", Change::Changed),
                ("/etc/clusterfs/new.cfg", Change::New),
            ]
        );
        let text = d[1].diff.as_deref().unwrap();
        assert!(text.contains("+\tshared 1"), "{text}");
        assert!(!text.contains("old") && !text.contains("new\n"), "{text}");
        assert!(d[2].diff.is_none() && d[2].note.as_deref().unwrap().contains("secret"));
        assert!(d[3].note.as_deref().unwrap().contains("not a regular file"));
        // The link was not followed.
        assert!(d[3].diff.is_none());
    }
}
