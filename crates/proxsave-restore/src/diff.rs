//! `diff`: how the files a restore would put in place differ from the target root, with
//! secrets masked.

use std::io::Read;

use proxsave_archive::entry::EntryKind;
use proxsave_archive::path::ArchivePath;
use proxsave_archive::progress::CancelToken;
use proxsave_archive::read;
use serde::Serialize;
use similar::TextDiff;

use crate::compare::{Change, RootReader};
use crate::engine::{Scan, Target, system_guard};
use crate::error::RestoreError;
use crate::plan::{Plan, Tier};
use crate::report::system_path;

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

const SECRET_WORDS: [&str; 8] = [
    "password",
    "passwd",
    "secret",
    "token",
    "psk",
    "community",
    "apikey",
    "api-key",
];

/// Replaces the value of `key = value` / `key: value` / `key value` lines whose key names a
/// secret (`password`, `node.session.auth.password`, `smb-password`, `api_token`, …) with
/// `********`.
pub fn mask_line(line: &str) -> String {
    let indent = line.len() - line.trim_start().len();
    let body = &line[indent..];
    let Some(sep) = body.find([':', '=', ' ', '\t']) else {
        return line.to_string();
    };
    let key = body[..sep].to_ascii_lowercase();
    if !SECRET_WORDS.iter().any(|w| key.contains(w)) {
        return line.to_string();
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

fn mask(text: &str) -> String {
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

/// Compares every file the plan writes to the root (or stages for an applier) with what the
/// root holds now. One read of the backup.
///
/// # Errors
/// Read-path errors.
pub fn diff(
    target: &Target<'_>,
    _scan: &Scan,
    plan: &Plan,
    cancel: &CancelToken,
) -> Result<Vec<FileDiff>, RestoreError> {
    let reader =
        RootReader::open(&target.host.root).map_err(|e| RestoreError::io(&target.host.root, e))?;
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
            continue;
        };
        if !matches!(h.kind, EntryKind::File | EntryKind::Symlink) {
            continue;
        }
        let mut data = Vec::new();
        if h.kind == EntryKind::File {
            stream
                .data()
                .take(DIFF_LIMIT + 1)
                .read_to_end(&mut data)
                .map_err(|e| stream.explain(proxsave_archive::Error::Read(e)))?;
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
            if is_secret(&path) {
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
                match (text_of(&current), text_of(&data)) {
                    (Some(old), Some(new)) => {
                        let (old, new) = (mask(&old), mask(&new));
                        let d = TextDiff::from_lines(&old, &new)
                            .unified_diff()
                            .context_radius(3)
                            .header(&format!("{shown} (current)"), &format!("{shown} (backup)"))
                            .to_string();
                        fd.diff = Some(d);
                    }
                    _ => fd.note = Some("binary file: content differs (not shown)".into()),
                }
            }
        }
        out.push(fd);
    }
    stream.finish()?;
    Ok(out)
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
}
