//! The smart `/etc/fstab` merge (`filesystem` category): restoring a backup's fstab onto a
//! new install must not stop it from booting, yet the backup's data and network mounts
//! should come back.
//!
//! Everything here is pure except [`stable_ref_present`]; the applier reads the files, asks
//! the `fstab.merge` question, runs `findmnt` and writes the result.
//!
//! # The pieces
//! - [`Fstab::parse`] is lossless: `Fstab::parse(x).to_string() == x` for any text (no final
//!   line end, `\r\n`, tabs, odd spacing, `\040` escapes). Comments and blank lines are kept;
//!   a line that is not an entry (fewer than 3 fields, a dump or pass field that is not a
//!   number, as `mount` rejects them) is kept raw and reported by line number, never by
//!   content. A field starting with `#` ends an entry (inline comment). Entries expose the
//!   device, the mountpoint (escapes decoded, normalised: repeated `/`, `.` components and a
//!   trailing `/` removed), type, options, dump and pass.
//! - [`classify`] sorts an entry's source: swap; pseudo filesystems ([`PSEUDO_FSTYPES`]);
//!   network mounts (a type in [`NETWORK_FSTYPES`]: NFS, CIFS/SMB, sshfs, GlusterFS,
//!   CephFS, davfs; a `//host/share` or `host:/path` source; `_netdev`, also on a device by
//!   stable reference such as an iSCSI disk, which cannot be present before the network);
//!   stable references ([`StableRef`]: `UUID=`, `PARTUUID=`, `LABEL=`, `PARTLABEL=`,
//!   `/dev/disk/by-{uuid,partuuid,label,partlabel,id,path}/…`, `/dev/mapper/…`, and LVM's
//!   `/dev/<vg>/<lv>`); kernel names that may change ([`is_unstable_name`]: `/dev/sdX`,
//!   `vdX`, `hdX`, `xvdX`, `nvmeXnY[pZ]`, `mmcblkX[pY]`); anything else (bind mounts, ZFS
//!   datasets, `/dev/md*`, and 9p/virtiofs shares, whose tag cannot be checked here).
//! - [`Inventory`] holds the backup's disks from `lsblk -J` and `blkid` output under
//!   [`INVENTORY_DIR`]; it maps a kernel name to the UUID/PARTUUID/LABEL it had, and knows
//!   the device mounted at `/`.
//! - [`merge`] builds the new file, [`stable_ref_present`] tells whether a reference exists
//!   in the root, [`VerifyReport`] and [`blocking_findings`] judge `findmnt --verify` runs.
//!
//! ```
//! use proxsave_restore::system::fstab::{Choice, Fstab, Inventory, merge};
//!
//! let current = Fstab::parse("UUID=new-root / ext4 errors=remount-ro 0 1\n");
//! let backup = Fstab::parse(
//!     "UUID=old-root / ext4 errors=remount-ro 0 1\n\
//!      nas:/export /mnt/nas nfs vers=4.2 0 0\n\
//!      /dev/sdb1 /srv/old ext4 defaults 0 2\n",
//! );
//! let inv = Inventory::from_blkid("/dev/sdb1: UUID=\"d1\" TYPE=\"ext4\"\n");
//! let present = |_: &_| false; // the applier passes `stable_ref_present` on its root
//! let r = merge(&current, &backup, &inv, &present, "pve1/2024-05-01", Choice::All).unwrap();
//! assert_eq!(r.default_choice, Choice::None); // another root: nothing unless chosen
//! assert_eq!(r.proposals[0].to_string(), "nas:/export → /mnt/nas (nfs)");
//! assert_eq!(r.skipped.len(), 2); // `/`, and /dev/sdb1 (UUID=d1 is not here)
//! assert!(r.text.starts_with("UUID=new-root / ext4 errors=remount-ro 0 1\n\n# --- proxsave:"));
//! assert!(r.text.contains("nas:/export /mnt/nas nfs vers=4.2,_netdev,nofail 0 0\n"));
//! ```
//!
//! # Merge rules
//! The result is this host's file byte for byte; when something is added, a line end if the
//! file lacked one, a blank line, then a block between `# --- proxsave: mounts restored from
//! backup <origin> ---` and `# --- end proxsave ---`. Each backup entry, in order:
//! 1. swap, pseudo filesystems, a mountpoint that is not absolute, and the system
//!    mountpoints [`CRITICAL_MOUNTPOINTS`] (`/`, `/boot`, `/boot/efi`, `/usr`, `/var`) are
//!    skipped;
//! 2. a mountpoint this host's file already has is skipped (as *already restored* when it is
//!    inside a proxsave block, so a second run adds nothing); so is one with a mount of this
//!    host's file below it (appended after that line, it would hide it: findmnt's "wrong
//!    order");
//! 3. a mountpoint the backup lists again is proposed once (the first safe entry);
//! 4. network mounts are proposed; a stable reference is proposed when it exists in the root
//!    (`present`); a kernel name is remapped to the first of its UUID, PARTUUID, LABEL,
//!    PARTLABEL (from the inventory) that exists here, else skipped with the reason; a device
//!    this host's file already mounts elsewhere is skipped;
//! 5. the added line is the backup's own line (spacing, dump, pass, trailing comment kept)
//!    with the source replaced when remapped (a comment line above says so) and `nofail`
//!    (network: `_netdev,nofail`) appended to its options unless there.
//!
//! Proposals and skipped entries are shown as `device → mountpoint (type)`, never with their
//! options (CIFS `password=` lives there); `Debug` hides them too. The default answer is every
//! safe proposal when the backup's root device is this host's (the `/` sources are equal
//! after resolving the backup's through its inventory: `/dev/sda2` there and `UUID=…` here
//! match when the inventory says so; `/dev/vg/lv` ≡ `/dev/mapper/vg-lv`), otherwise none.
//!
//! # Where this differs from upstream
//! - The result keeps every byte of the current file; the backup's lines are taken as
//!   written (upstream rebuilds them, losing comments and spacing, padded to fixed columns).
//! - Mountpoints are compared after decoding and normalisation (upstream: raw strings), and
//!   a mountpoint listed twice in the backup is proposed once (upstream: both).
//! - A reference counts as present when it exists under the *target root's* `/dev/disk/by-*`
//!   (upstream probes the live `/dev` whatever the root).
//! - The block is marked and recognised: a second run adds nothing.
//! - Lines that do not parse are kept and named by line number (upstream drops lines with
//!   fewer than 4 fields from its analysis silently); `/var` is never proposed; a mount that
//!   would hide one of this host's, or a device already mounted here, is skipped.
//! - The default compares the root devices only (upstream also wants matching swap).
//! - The merged file is checked with `findmnt --verify` against the old one before it
//!   replaces it ([`blocking_findings`]).

#![deny(missing_docs)]

mod device;
mod inventory;
mod merge;
mod parse;
mod verify;

#[cfg(test)]
mod tests;

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::AtFlags;

pub use device::{
    DiskBy, NETWORK_FSTYPES, PSEUDO_FSTYPES, Source, StableRef, Tag, classify, is_unstable_name,
    udev_decode, udev_encode,
};
pub use inventory::{
    Device, INVENTORY_DIR, INVENTORY_FILES, Inventory, InventoryError, InventoryFormat,
    InventoryWarning,
};
pub use merge::{
    BLOCK_END, BLOCK_START, CRITICAL_MOUNTPOINTS, Choice, FstabFile, MergeError, MergeResult,
    MergeWarning, NotProposed, Proposal, ProposalKind, RootMatch, SkipReason, Skipped, merge,
};
pub use parse::{
    Entry, Fstab, Line, LineKind, ParseWarning, escape, normalise_mountpoint, unescape,
};
pub use verify::{Finding, Level, VerifyReport, blocking_findings};

/// Whether `r` exists on the system under `root`: `<root>/dev/disk/by-uuid/<uuid>` for
/// `UUID=` (also tried in lower and upper case, as udev names vfat and ext4 UUIDs
/// differently), `<root>/dev/disk/by-label/<label, udev-encoded>` …, `<root>/dev/mapper/<name>`,
/// `<root>/dev/<vg>/<lv>`.
///
/// # Security
/// Every folder on the way is opened through `root` with `O_NOFOLLOW`
/// ([`proxsave_archive::dirfd::open_dir`]), and the last entry is only `lstat`ed: the by-*
/// entries are symlinks to `../../sdX`, which are never followed, so nothing outside the root
/// is reached. Any error (missing folder, a symlink on the way, permission) means "not present".
pub fn stable_ref_present(root: BorrowedFd<'_>, r: &StableRef) -> bool {
    let (dirs, name) = r.path_in_root();
    let mut names = vec![name.clone()];
    if matches!(r, StableRef::Tag(Tag::Uuid | Tag::PartUuid, _)) {
        for v in [name.to_lowercase(), name.to_uppercase()] {
            if !names.contains(&v) {
                names.push(v);
            }
        }
    }
    let Ok(mut dir) = rustix::io::dup(root) else {
        return false;
    };
    for comp in dirs {
        if !is_component(comp) {
            return false;
        }
        match proxsave_archive::dirfd::open_dir(dir.as_fd(), comp.as_bytes()) {
            Ok(d) => dir = d,
            Err(_) => return false,
        }
    }
    names.iter().any(|n| {
        is_component(n)
            && rustix::fs::statat(
                dir.as_fd(),
                OsStr::from_bytes(n.as_bytes()),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .is_ok()
    })
}

/// One path component: no `/`, not `.` or `..`, not empty.
fn is_component(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0')
}
