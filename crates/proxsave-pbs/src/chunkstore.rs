//! The chunk store PBS creates for a new datastore (`ChunkStore::create`), made without the
//! PBS API: `<path>/.chunks` with the 65 536 prefix folders `0000` … `ffff`, all `0750`, and
//! an empty `<path>/.lock` `0644`, everything owned by `backup:backup` — the ids looked up in
//! the *target root's* `/etc/passwd` and `/etc/group`, never assumed.
//!
//! The datastore folder itself (and missing parents) are created when absent: parents
//! `root:root 0755`, the datastore folder `backup:backup 0750`. An existing empty folder (a
//! mount point) is chowned to `backup:backup` and keeps its mode, as PBS does. An existing
//! `.chunks` is never touched: [`create`] refuses it.
//!
//! Everything happens through descriptors walked from the root without following a symbolic
//! link.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use proxsave_archive::dirfd;
use proxsave_archive::path::ArchivePath;
use proxsave_restore::roothandle::RootHandle;
use proxsave_restore::system::accounts::{GroupFile, PasswdFile, gid_of, uid_of};
use rustix::fs::{AtFlags, Gid, Mode, OFlags, Uid};
use rustix::io::Errno;

/// The number of prefix folders under `.chunks`.
pub const PREFIX_DIRS: usize = 65_536;
/// Mode of the datastore folder, `.chunks` and the prefix folders.
pub const DIR_MODE: u32 = 0o750;
/// Mode of `.lock`.
pub const LOCK_MODE: u32 = 0o644;

/// The owner of a chunk store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// uid of `backup`.
    pub uid: u32,
    /// gid of `backup`.
    pub gid: u32,
}

/// `backup:backup` as the target root's `/etc/passwd` and `/etc/group` say.
///
/// # Errors
/// A file cannot be read, or has no `backup` entry.
pub fn backup_owner(root: &RootHandle) -> Result<Owner, String> {
    let read = |p: &str| -> Result<String, String> {
        let path = ArchivePath::from_user(p).map_err(|e| e.to_string())?;
        match root.read(&path) {
            Ok(Some(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Ok(None) => Err(format!("/{p} does not exist in the target root")),
            Err(e) => Err(format!("/{p} cannot be read: {e}")),
        }
    };
    let passwd = PasswdFile::parse(&read("etc/passwd")?);
    let group = GroupFile::parse(&read("etc/group")?);
    let uid = uid_of(&passwd, "backup")
        .ok_or("the target root's /etc/passwd has no `backup` user (PBS's data owner)")?;
    let gid = gid_of(&group, "backup")
        .ok_or("the target root's /etc/group has no `backup` group (PBS's data owner)")?;
    Ok(Owner { uid, gid })
}

/// What [`create`] made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// The datastore folder was created (it did not exist).
    pub created_base: bool,
    /// Prefix folders created.
    pub prefixes: usize,
}

fn err(path: &ArchivePath, what: &str, e: impl Into<std::io::Error>) -> std::io::Error {
    let e = e.into();
    std::io::Error::new(e.kind(), format!("/{path}: {what}: {e}"))
}

fn own(dir: &OwnedFd, name: &[u8], owner: Owner, mode: u32) -> rustix::io::Result<()> {
    let name = OsStr::from_bytes(name);
    rustix::fs::chownat(
        dir,
        name,
        Some(Uid::from_raw(owner.uid)),
        Some(Gid::from_raw(owner.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    rustix::fs::chmodat(dir, name, Mode::from_raw_mode(mode), AtFlags::empty())
}

/// Creates the chunk store of the datastore at `path` (inside the root); see the module docs.
///
/// # Errors
/// `.chunks` already exists (`AlreadyExists`), a link or a file on the way, or a system call
/// failed; the error names the path.
pub fn create(root: &RootHandle, path: &ArchivePath, owner: Owner) -> std::io::Result<Created> {
    // Parents: created root-owned 0755 when missing; never through a link.
    let mut cur = rustix::io::dup(root.dir().as_fd())?;
    let comps: Vec<&[u8]> = path.components().collect();
    let (base_name, parents) = comps
        .split_last()
        .ok_or_else(|| err(path, "not a datastore path", Errno::INVAL))?;
    for comp in parents {
        match rustix::fs::mkdirat(&cur, OsStr::from_bytes(comp), Mode::from_raw_mode(0o755)) {
            Ok(()) => {
                rustix::fs::chmodat(
                    &cur,
                    OsStr::from_bytes(comp),
                    Mode::from_raw_mode(0o755),
                    AtFlags::empty(),
                )
                .map_err(|e| err(path, "chmod a parent folder", e))?;
            }
            Err(Errno::EXIST) => {}
            Err(e) => return Err(err(path, "create a parent folder", e)),
        }
        cur = dirfd::open_dir(cur.as_fd(), comp).map_err(|e| err(path, "open a parent", e))?;
    }
    let created_base = match rustix::fs::mkdirat(
        &cur,
        OsStr::from_bytes(base_name),
        Mode::from_raw_mode(DIR_MODE),
    ) {
        Ok(()) => true,
        Err(Errno::EXIST) => false,
        Err(e) => return Err(err(path, "create the datastore folder", e)),
    };
    let base = dirfd::open_dir(cur.as_fd(), base_name)
        .map_err(|e| err(path, "open the datastore folder", e))?;
    match rustix::fs::mkdirat(&base, ".chunks", Mode::from_raw_mode(DIR_MODE)) {
        Ok(()) => {}
        Err(Errno::EXIST) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("/{path}/.chunks already exists: an existing chunk store is never touched"),
            ));
        }
        Err(e) => return Err(err(path, "create .chunks", e)),
    }
    if created_base {
        own(&cur, base_name, owner, DIR_MODE)
            .map_err(|e| err(path, "chown the datastore folder", e))?;
    } else {
        // PBS chowns an existing folder and leaves its mode.
        rustix::fs::chownat(
            &cur,
            OsStr::from_bytes(base_name),
            Some(Uid::from_raw(owner.uid)),
            Some(Gid::from_raw(owner.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| err(path, "chown the datastore folder", e))?;
    }
    own(&base, b".chunks", owner, DIR_MODE).map_err(|e| err(path, "chown .chunks", e))?;
    // `.lock`: empty, 0644, backup-owned (an empty one already there is kept and fixed).
    match rustix::fs::openat(
        &base,
        ".lock",
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(LOCK_MODE),
    ) {
        Ok(_) | Err(Errno::EXIST) => {}
        Err(e) => return Err(err(path, "create .lock", e)),
    }
    let st = rustix::fs::statat(&base, ".lock", AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| err(path, "stat .lock", e))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(err(path, ".lock is not a regular file", Errno::INVAL));
    }
    own(&base, b".lock", owner, LOCK_MODE).map_err(|e| err(path, "chown .lock", e))?;
    let chunks =
        dirfd::open_dir(base.as_fd(), b".chunks").map_err(|e| err(path, "open .chunks", e))?;
    let mut prefixes = 0;
    for i in 0..PREFIX_DIRS {
        let name = format!("{i:04x}");
        rustix::fs::mkdirat(&chunks, name.as_str(), Mode::from_raw_mode(DIR_MODE))
            .map_err(|e| err(path, &format!("create .chunks/{name}"), e))?;
        own(&chunks, name.as_bytes(), owner, DIR_MODE)
            .map_err(|e| err(path, &format!("chown .chunks/{name}"), e))?;
        prefixes += 1;
    }
    Ok(Created {
        created_base,
        prefixes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn the_layout_is_pbs_s_and_an_existing_store_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        std::fs::create_dir_all(r.join("etc")).expect("etc");
        std::fs::write(
            r.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nbackup:x:4242:4343::/var/backups:/usr/sbin/nologin\n",
        )
        .expect("passwd");
        std::fs::write(r.join("etc/group"), "root:x:0:\nbackup:x:4343:\n").expect("group");
        let root = RootHandle::open(r).expect("root");
        let owner = backup_owner(&root).expect("owner");
        assert_eq!(
            owner,
            Owner {
                uid: 4242,
                gid: 4343
            }
        );
        let p = ArchivePath::from_user("srv/pbs/ds1").expect("path");
        let made = create(&root, &p, owner).expect("create");
        assert!(made.created_base);
        assert_eq!(made.prefixes, PREFIX_DIRS);
        let base = r.join("srv/pbs/ds1");
        let m = std::fs::metadata(&base).expect("base");
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o750, 4242, 4343));
        let parent = std::fs::metadata(r.join("srv/pbs")).expect("parent");
        assert_eq!((parent.mode() & 0o7777, parent.uid()), (0o755, 0));
        let lock = std::fs::metadata(base.join(".lock")).expect("lock");
        assert_eq!(
            (lock.mode() & 0o7777, lock.uid(), lock.len()),
            (0o644, 4242, 0)
        );
        let names: Vec<String> = std::fs::read_dir(base.join(".chunks"))
            .expect("chunks")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), PREFIX_DIRS);
        let ffff = std::fs::metadata(base.join(".chunks/ffff")).expect("ffff");
        assert_eq!((ffff.mode() & 0o7777, ffff.gid()), (0o750, 4343));
        let again = create(&root, &p, owner).expect_err("refused");
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn no_backup_user_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("etc")).expect("etc");
        std::fs::write(dir.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").expect("p");
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\n").expect("g");
        let root = RootHandle::open(dir.path()).expect("root");
        let e = backup_owner(&root).expect_err("no backup");
        assert!(e.contains("no `backup` user"), "{e}");
    }
}
