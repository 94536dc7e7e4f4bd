//! Materialising upstream's dedup symlinks back into regular files: the one place that
//! knows them (which entries are duplicates, how they compare, and their repair from the
//! archive's bytes after each tier's commit).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use proxsave_archive::entry::Timestamp;
use proxsave_archive::path::ArchivePath;
use proxsave_archive::progress::CancelToken;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::engine::Scan;
use crate::error::RestoreError;
use crate::report::Report;

/// Replaces the symlink at `dup` (below `root`) with a regular file holding `data`, atomically
/// (temporary file + rename), never following a link on the way.
pub fn replace_link_with_file(
    root: &OwnedFd,
    dup: &ArchivePath,
    data: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
    mtime: proxsave_archive::entry::Timestamp,
) -> std::io::Result<()> {
    let dir = proxsave_archive::dirfd::open_parent(root.as_fd(), dup)?;
    let name = OsStr::from_bytes(dup.file_name());
    // Replacing an entry changes the folder's mtime; keep the one the restore just set.
    let dir_stat = rustix::fs::fstat(&dir)?;
    let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
        return Err(std::io::Error::other("no longer a symbolic link"));
    }
    let tmp = format!(".proxsave-dedup-{}", std::process::id());
    let fd = rustix::fs::openat(
        &dir,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    let mut f = File::from(fd);
    let result = (|| -> std::io::Result<()> {
        f.write_all(data)?;
        if rustix::process::geteuid().is_root() && (uid.is_some() || gid.is_some()) {
            rustix::fs::fchown(
                f.as_fd(),
                uid.map(rustix::fs::Uid::from_raw),
                gid.map(rustix::fs::Gid::from_raw),
            )?;
        }
        rustix::fs::fchmod(f.as_fd(), Mode::from_raw_mode(mode & 0o7777))?;
        // The duplicate's own time is not recorded; it has the canonical file's content, so
        // it gets the canonical file's modification time.
        rustix::fs::futimens(
            f.as_fd(),
            &rustix::fs::Timestamps {
                last_access: rustix::fs::Timespec {
                    tv_sec: 0,
                    tv_nsec: rustix::fs::UTIME_OMIT,
                },
                last_modification: rustix::fs::Timespec {
                    tv_sec: mtime.secs,
                    tv_nsec: i64::from(mtime.nanos),
                },
            },
        )?;
        rustix::fs::renameat(&dir, tmp.as_str(), &dir, name)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
    }
    let _ = rustix::fs::futimens(
        &dir,
        &rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: dir_stat.st_atime,
                tv_nsec: dir_stat.st_atime_nsec as _,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: dir_stat.st_mtime,
                tv_nsec: dir_stat.st_mtime_nsec as _,
            },
        },
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxsave_archive::entry::Timestamp;
    use std::os::unix::fs::symlink;

    #[test]
    fn nothing_outside_the_root_is_replaced_or_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("usr/local")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        symlink("../bin/x", outside.join("x")).unwrap();
        // The folder holding the duplicate is a link out of the root.
        symlink(&outside, root.join("usr/local/sbin")).unwrap();
        let fd = proxsave_archive::dirfd::open_root(&root).unwrap();
        let dup = ArchivePath::from_user("usr/local/sbin/x").unwrap();
        let t = Timestamp { secs: 0, nanos: 0 };
        let e = replace_link_with_file(&fd, &dup, b"data", 0o755, None, None, t).unwrap_err();
        // A link opened as a folder with O_NOFOLLOW: ENOTDIR on Linux (ELOOP elsewhere).
        assert!(
            [rustix::io::Errno::NOTDIR, rustix::io::Errno::LOOP]
                .map(|e| Some(e.raw_os_error()))
                .contains(&e.raw_os_error()),
            "{e}"
        );
        assert!(
            std::fs::symlink_metadata(outside.join("x"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
        // A duplicate that is a regular file by now is left alone.
        std::fs::remove_file(root.join("usr/local/sbin")).unwrap();
        std::fs::create_dir(root.join("usr/local/sbin")).unwrap();
        std::fs::write(root.join("usr/local/sbin/x"), b"mine").unwrap();
        assert!(replace_link_with_file(&fd, &dup, b"data", 0o755, None, None, t).is_err());
        assert_eq!(
            std::fs::read(root.join("usr/local/sbin/x")).unwrap(),
            b"mine"
        );
    }
}

// --- Upstream's dedup links in a restore: which they are, and their repair after a commit.

/// Dedup duplicates of the scan: duplicate path → (canonical path, recorded mode).
///
/// One pass over the scan's entry list; only the manifest's duplicates are kept.
///
/// # Errors
/// Reading the scan's entry list.
pub(crate) fn dedup_pairs(
    scan: &Scan,
) -> Result<BTreeMap<ArchivePath, (ArchivePath, u32)>, RestoreError> {
    let mut out = BTreeMap::new();
    let Some(manifest) = &scan.dedup_manifest else {
        return Ok(out);
    };
    let Ok(records) = serde_json::from_slice::<Vec<DedupRecord>>(manifest) else {
        return Ok(out);
    };
    // Duplicate path → mode of its last record.
    let mut dups: BTreeMap<ArchivePath, u32> = BTreeMap::new();
    for rec in records {
        if let Ok(dup) = ArchivePath::from_user(&rec.path) {
            dups.insert(dup, rec.mode.unwrap_or(0o600));
        }
    }
    // The link text of each duplicate (the last symlink entry of that path).
    let mut links: BTreeMap<ArchivePath, Vec<u8>> = BTreeMap::new();
    for e in scan.entries() {
        let e = e?;
        if let Some(l) = e.link
            && dups.contains_key(&e.path)
        {
            links.insert(e.path, l);
        }
    }
    for (dup, mode) in dups {
        let Some(text) = links.get(&dup) else {
            continue;
        };
        let text = String::from_utf8_lossy(text);
        let base = dup.parent().map(|p| p.to_string()).unwrap_or_default();
        let joined = if base.is_empty() {
            text.into_owned()
        } else {
            format!("{base}/{text}")
        };
        if let Some(canon) = normalize_lexically(&joined) {
            out.insert(dup, (canon, mode));
        }
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
struct DedupRecord {
    path: String,
    #[serde(default)]
    mode: Option<u32>,
    #[serde(default)]
    uid: Option<u32>,
    #[serde(default)]
    gid: Option<u32>,
}

/// The canonical files' bytes, kept from the restore's extraction read (the second and last
/// read of the archive) in one unnamed private file in the work folder, so repairing dedup
/// links in each tier reads the archive no more (it was read once per tier before: up to
/// five decompressions per restore). Only the index (path → offset, length, time) is in
/// memory, one record per canonical file.
#[derive(Default)]
pub(crate) struct Canonicals {
    file: Option<File>,
    len: u64,
    /// `None`: the path is in the archive, but not as a regular file.
    index: BTreeMap<ArchivePath, Option<(u64, u64, Timestamp)>>,
}

impl Canonicals {
    /// Keeps the first regular file the archive holds at `path` (the one the repair read
    /// before); `data` is its content.
    pub(crate) fn add(
        &mut self,
        dir: &Path,
        path: &ArchivePath,
        data: &mut dyn Read,
        mtime: Timestamp,
    ) -> std::io::Result<()> {
        if self.index.contains_key(path) {
            return Ok(());
        }
        if self.file.is_none() {
            // The private work folder, else the system's temporary folder (as the restore's
            // spool): the file has no name either way.
            self.file = Some(match tempfile::tempfile_in(dir) {
                Ok(f) => f,
                Err(_) => tempfile::tempfile()?,
            });
        }
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        let n = std::io::copy(data, f)?;
        self.index.insert(path.clone(), Some((self.len, n, mtime)));
        self.len += n;
        Ok(())
    }

    /// Notes that the archive holds `path`, but not as a regular file.
    pub(crate) fn not_a_file(&mut self, path: &ArchivePath) {
        self.index.entry(path.clone()).or_insert(None);
    }

    /// `None`: not in the archive; `Some(Ok(None))`: there, but not a regular file.
    fn get(&self, path: &ArchivePath) -> Option<std::io::Result<Option<Canonical>>> {
        let found = self.index.get(path)?;
        let Some((offset, len, mtime)) = *found else {
            return Some(Ok(None));
        };
        let Some(f) = &self.file else {
            return Some(Err(std::io::Error::other("canonical data missing")));
        };
        let mut data = vec![0u8; len as usize];
        Some(
            std::os::unix::fs::FileExt::read_exact_at(f, &mut data, offset)
                .map(|()| Some((data, mtime))),
        )
    }
}

/// A canonical file's bytes and modification time.
type Canonical = (Vec<u8>, Timestamp);

/// Turns the dedup symlinks written in this run (`written_links`: the paths of symlinks written
/// into `root`) back into regular files with the canonical
/// file's bytes *from the archive* (never from the live target), as upstream restore does.
/// The bytes come from `canon`, kept during the extraction read.
pub(crate) fn dedup_repair(
    canon: &Canonicals,
    scan: &Scan,
    root: &Path,
    written_links: &HashSet<String>,
    cancel: &CancelToken,
    report: &mut Report,
) -> Result<(), RestoreError> {
    let Some(manifest) = &scan.dedup_manifest else {
        return Ok(());
    };
    let records: Vec<DedupRecord> = match serde_json::from_slice(manifest) {
        Ok(r) => r,
        Err(e) => {
            report.warn(format!(
                "dedup manifest unreadable ({e}); duplicate files stay symbolic links"
            ));
            return Ok(());
        }
    };
    // duplicate path -> (canonical path, record)
    let mut wanted: BTreeMap<ArchivePath, Vec<(ArchivePath, &DedupRecord)>> = BTreeMap::new();
    // The link text of the written duplicates (one pass; only manifest paths are kept).
    let dups: HashSet<String> = records
        .iter()
        .filter_map(|rec| ArchivePath::from_user(&rec.path).ok())
        .map(|dup| dup.to_string())
        .filter(|d| written_links.contains(d))
        .collect();
    let mut links: BTreeMap<ArchivePath, String> = BTreeMap::new();
    if !dups.is_empty() {
        for e in scan.entries() {
            let e = e?;
            if let Some(l) = &e.link
                && dups.contains(&e.path.to_string())
            {
                links.insert(e.path, String::from_utf8_lossy(l).into_owned());
            }
        }
    }
    for rec in &records {
        let Ok(dup) = ArchivePath::from_user(&rec.path) else {
            continue;
        };
        if !written_links.contains(&dup.to_string()) {
            continue;
        }
        let Some(text) = links.get(&dup) else {
            continue;
        };
        let base = dup.parent().map(|p| p.to_string()).unwrap_or_default();
        let joined = if base.is_empty() {
            text.clone()
        } else {
            format!("{base}/{text}")
        };
        let Some(canon) = normalize_lexically(&joined) else {
            continue;
        };
        wanted.entry(canon).or_default().push((dup, rec));
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let root_fd = rustix::fs::open(
        root,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| RestoreError::io(root, e.into()))?;
    // The files are committed: an interruption stops the repair (the remaining duplicates are
    // reported) but does not lose the report of what was written; the caller sees the cancel.
    let mut interrupted = false;
    let mut missing: BTreeMap<ArchivePath, Vec<(ArchivePath, &DedupRecord)>> = BTreeMap::new();
    for (path, dups) in std::mem::take(&mut wanted) {
        if cancel.is_cancelled() {
            interrupted = true;
            missing.insert(path, dups);
            continue;
        }
        let (data, mtime) = match canon.get(&path) {
            None => {
                missing.insert(path, dups);
                continue;
            }
            // In the archive, but not a regular file: nothing to copy (as before).
            Some(Ok(None)) => continue,
            Some(Ok(Some(found))) => found,
            Some(Err(e)) => {
                return Err(RestoreError::io(root, e));
            }
        };
        for (dup, rec) in dups {
            match replace_link_with_file(
                &root_fd,
                &dup,
                &data,
                rec.mode.unwrap_or(0o600),
                rec.uid,
                rec.gid,
                mtime,
            ) {
                Ok(()) => {}
                Err(e) => report.warn(format!("/{dup}: duplicate not materialised: {e}")),
            }
        }
    }
    let wanted = missing;
    for (canon, dups) in wanted {
        for (dup, _) in dups {
            report.warn(if interrupted {
                format!("/{dup}: duplicate of /{canon}, not materialised (interrupted); left as a symbolic link")
            } else {
                format!("/{dup}: duplicate of /{canon}, which is not in the archive; left as a symbolic link")
            });
        }
    }
    // Each failure stays reported (it is no longer erased when another duplicate, or
    // another tier's, was materialised).
    Ok(())
}

fn normalize_lexically(p: &str) -> Option<ArchivePath> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    ArchivePath::from_user(&parts.join("/")).ok()
}
