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
