//! `Extractor::add_linked`: an entry given to two extractors (the restore's export folder and
//! its private stage) is written once and hard-linked into the second one, with the archive's
//! bytes and metadata in both places; whenever a link cannot stand for a copy (the first
//! extractor did not stage the file, another filesystem) the data is written as by `add`.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use proxsave_archive::entry::EntryHeader;
use proxsave_archive::extract::{ExtractOptions, Extractor, Selection, Status};
use proxsave_archive::tar::TarReader;
use proxsave_testkit::evil::{EvilTar, Hdr};

/// A reader that must not be read: proof that no data was copied.
struct MustNotRead;

impl Read for MustNotRead {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other(
            "the data was read although a link was made",
        ))
    }
}

fn entries(tar: &[u8]) -> Vec<(EntryHeader, Vec<u8>)> {
    let mut r = TarReader::new(tar);
    let mut out = Vec::new();
    while let Some(h) = r.next_entry().expect("entry") {
        let mut data = Vec::new();
        r.read_to_end(&mut data).expect("data");
        out.push((h, data));
    }
    r.finish().expect("end");
    out
}

fn backup() -> Vec<u8> {
    EvilTar::new()
        .dir("etc", 0o755)
        .dir("etc/pve", 0o750)
        .entry(
            Hdr::new("etc/pve/storage.cfg", b'0')
                .mode(0o640)
                .mtime(1_700_000_123),
            b"dir: local\n\tpath /var/lib/vz\n",
        )
        .entry(
            Hdr::new("etc/pve/user.cfg", b'0')
                .mode(0o600)
                .mtime(1_700_000_456),
            b"user:root@pam:1:0::::::\n",
        )
        .symlink("etc/pve/local", "nodes/pve1")
        .end()
        .into_bytes()
}

fn opts() -> ExtractOptions {
    ExtractOptions::default()
}

fn extractor(root: &Path) -> Extractor {
    Extractor::new(root, opts()).expect("extractor")
}

/// Gives every entry of the backup to `export` (as `select` says), then to `stage` with
/// `add_linked`, and commits both, the stage first (the restore engine's order).
fn give_both(
    mut export: Extractor,
    mut stage: Extractor,
    select: impl Fn(&EntryHeader) -> Selection,
) {
    for (h, data) in entries(&backup()) {
        export
            .add(&h, &mut data.as_slice(), select(&h))
            .expect("export add");
        stage
            .add_linked(&h, &mut data.as_slice(), Selection::Include, &export)
            .expect("stage add");
    }
    stage.commit().expect("stage commit");
    export.commit().expect("export commit");
}

/// A test folder with the two targets `export` and `stage` in it (one filesystem).
fn two_targets() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let top = tempfile::tempdir().expect("tempdir");
    let (a, b) = (top.path().join("export"), top.path().join("stage"));
    fs::create_dir(&a).expect("a");
    fs::create_dir(&b).expect("b");
    (top, a, b)
}

#[test]
fn a_file_given_to_two_extractors_is_one_inode_with_the_archives_bytes_and_metadata() {
    let (_top, a, b) = two_targets();
    let (mut export, mut stage) = (extractor(&a), extractor(&b));
    for (h, data) in entries(&backup()) {
        let st = export
            .add(&h, &mut data.as_slice(), Selection::Include)
            .expect("export add");
        assert_eq!(st, Status::Written, "{}", h.display_name());
        // Regular files are linked: their data is not read a second time.
        let st = if data.is_empty() {
            stage.add_linked(&h, &mut data.as_slice(), Selection::Include, &export)
        } else {
            stage.add_linked(&h, &mut MustNotRead, Selection::Include, &export)
        }
        .expect("stage add");
        assert_eq!(st, Status::Written, "{}", h.display_name());
    }
    // The engine's order: the stage is committed first.
    stage.commit().expect("stage commit");
    export.commit().expect("export commit");
    for (name, bytes, mode, mtime) in [
        (
            "etc/pve/storage.cfg",
            &b"dir: local\n\tpath /var/lib/vz\n"[..],
            0o640,
            1_700_000_123,
        ),
        (
            "etc/pve/user.cfg",
            &b"user:root@pam:1:0::::::\n"[..],
            0o600,
            1_700_000_456,
        ),
    ] {
        let (x, y) = (a.join(name), b.join(name));
        assert_eq!(fs::read(&x).expect("export file"), bytes, "{name}");
        assert_eq!(fs::read(&y).expect("stage file"), bytes, "{name}");
        let (mx, my) = (
            fs::symlink_metadata(&x).expect("meta"),
            fs::symlink_metadata(&y).expect("meta"),
        );
        assert_eq!(mx.ino(), my.ino(), "{name}: one inode in both folders");
        assert_eq!(mx.nlink(), 2, "{name}");
        assert_eq!(mx.permissions().mode() & 0o7777, mode, "{name}");
        assert_eq!(mx.mtime(), mtime, "{name}");
    }
    // Symlinks and folders are each extractor's own.
    assert_eq!(
        fs::read_link(b.join("etc/pve/local")).expect("link"),
        Path::new("nodes/pve1")
    );
    assert_eq!(
        fs::symlink_metadata(b.join("etc/pve"))
            .expect("dir")
            .permissions()
            .mode()
            & 0o7777,
        0o750
    );
    // Removing the stage leaves the exported files whole, with one link each.
    fs::remove_dir_all(&b).expect("remove stage");
    let m = fs::symlink_metadata(a.join("etc/pve/storage.cfg")).expect("meta");
    assert_eq!(m.nlink(), 1);
    assert_eq!(
        fs::read(a.join("etc/pve/storage.cfg")).expect("read"),
        b"dir: local\n\tpath /var/lib/vz\n"
    );
    // No staging folder is left in the export.
    let left: Vec<_> = fs::read_dir(&a)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n.to_string_lossy().starts_with(".proxsave-stage-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn what_the_first_extractor_did_not_stage_is_written_from_the_data() {
    let (_top, a, b) = two_targets();
    let (export, stage) = (extractor(&a), extractor(&b));
    // The first extractor skips user.cfg: the second must write it itself.
    give_both(export, stage, |h| {
        if h.display_name().ends_with("user.cfg") {
            Selection::Skip("not selected".into())
        } else {
            Selection::Include
        }
    });
    assert!(!a.join("etc/pve/user.cfg").exists());
    let m = fs::symlink_metadata(b.join("etc/pve/user.cfg")).expect("meta");
    assert_eq!(m.nlink(), 1);
    assert_eq!(m.permissions().mode() & 0o7777, 0o600);
    assert_eq!(
        fs::read(b.join("etc/pve/user.cfg")).expect("read"),
        b"user:root@pam:1:0::::::\n"
    );
    // The other one is still linked.
    assert_eq!(
        fs::symlink_metadata(a.join("etc/pve/storage.cfg"))
            .expect("meta")
            .ino(),
        fs::symlink_metadata(b.join("etc/pve/storage.cfg"))
            .expect("meta")
            .ino()
    );
}

#[test]
fn on_another_filesystem_the_data_is_copied() {
    // /dev/shm is a tmpfs on every Linux host (and in CI); the test folder is on disk.
    let shm = Path::new("/dev/shm");
    let top = tempfile::tempdir_in("/var/tmp").expect("tempdir on disk");
    let here = fs::metadata(top.path()).expect("meta").dev();
    if !shm.is_dir() || fs::metadata(shm).expect("shm").dev() == here {
        assert!(
            std::env::var_os("CI").is_none(),
            "/dev/shm must be a filesystem of its own in CI"
        );
        eprintln!("skipped: /dev/shm is missing or on the same filesystem as /var/tmp");
        return;
    }
    let other = tempfile::tempdir_in(shm).expect("tempdir on tmpfs");
    let a = top.path().join("export");
    fs::create_dir(&a).expect("a");
    give_both(extractor(&a), extractor(other.path()), |_| {
        Selection::Include
    });
    let m = fs::symlink_metadata(other.path().join("etc/pve/storage.cfg")).expect("meta");
    assert_eq!(m.nlink(), 1);
    assert_eq!(m.permissions().mode() & 0o7777, 0o640);
    assert_eq!(m.mtime(), 1_700_000_123);
    assert_eq!(
        fs::read(other.path().join("etc/pve/storage.cfg")).expect("read"),
        b"dir: local\n\tpath /var/lib/vz\n"
    );
}
