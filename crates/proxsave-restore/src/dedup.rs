//! Materialising upstream's dedup symlinks back into regular files.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use proxsave_archive::path::ArchivePath;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

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
