//! The first read of a backup keeps its verified tar stream; a second pass reads that copy
//! and sees exactly the entries and bytes of the backup (real `xz -T0` data from testkit).

use proxsave_archive::backup::Backup;
use proxsave_archive::read::{self, StreamOptions};
use proxsave_testkit::fixture::{BackupSpec, MadeBackup, gnu_tar_pax, make_backup};
use proxsave_testkit::require_tools;

fn tree(dir: &std::path::Path) {
    let etc = dir.join("etc/pve/nodes/pve1/qemu-server");
    std::fs::create_dir_all(&etc).unwrap();
    for i in 0..200u32 {
        let body = format!("boot: order=scsi0\nmemory: {}\nname: vm{i}\n", 1024 + i);
        std::fs::write(
            etc.join(format!("{}.conf", 100 + i)),
            body.repeat(i as usize % 7 + 1),
        )
        .unwrap();
    }
    std::fs::write(dir.join("etc/hostname"), "pve1\n").unwrap();
}

/// (path, kind, bytes) of every entry of a pass.
fn entries(stream: &mut read::ArchiveStream<'_>) -> Vec<(Vec<u8>, String, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(h) = stream.next_entry().unwrap() {
        let mut data = Vec::new();
        stream.data().read_to_end(&mut data).unwrap();
        out.push((h.raw_path.clone(), format!("{:?}", h.kind), data));
    }
    out
}

/// A backup (written by GNU tar and xz) of the test tree: what made it, its folder, it.
fn backup_of_a_tree() -> (MadeBackup, tempfile::TempDir, Backup) {
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    let made = make_backup(&gnu_tar_pax(src.path()), &BackupSpec::default());
    let dir = tempfile::tempdir().unwrap();
    let backup = Backup::open(&made.write_raw(dir.path())).unwrap();
    (made, dir, backup)
}

#[test]
fn the_kept_tar_replays_the_verified_read() {
    require_tools!("xz", "tar");
    let (made, dir, backup) = backup_of_a_tree();
    let opts = StreamOptions::default();

    let mut first = read::open_stream_keeping_tar(
        &backup,
        &opts,
        tempfile::tempfile_in(dir.path()).unwrap(),
        u64::MAX,
    )
    .unwrap();
    let want = entries(&mut first);
    let (summary, kept) = first.finish_keeping_tar().unwrap();
    let kept = kept.expect("the tar stream was kept");
    assert_eq!(summary.sha256, made.sha256);
    assert_eq!(kept.len(), summary.tar_bytes, "every tar byte is kept");
    assert!(want.len() > 200, "{} entries", want.len());

    // Read twice: the copy is not consumed by a pass.
    for _ in 0..2 {
        let mut again = kept.open(&backup, None);
        assert_eq!(entries(&mut again), want);
        let s = again.finish().unwrap();
        assert_eq!(s.sha256, made.sha256);
        assert_eq!(s.tar_bytes, summary.tar_bytes);
    }
    // The folder holds no named file: the copy is unnamed.
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        3,
        "only the archive and its two sidecars"
    );
}

#[test]
fn past_its_limit_the_copy_is_given_up() {
    require_tools!("xz", "tar");
    let (made, dir, backup) = backup_of_a_tree();
    let mut first = read::open_stream_keeping_tar(
        &backup,
        &StreamOptions::default(),
        tempfile::tempfile_in(dir.path()).unwrap(),
        4096,
    )
    .unwrap();
    let n = entries(&mut first).len();
    assert!(n > 200);
    let (summary, kept) = first.finish_keeping_tar().unwrap();
    assert!(kept.is_none(), "a 4 KiB limit cannot hold the tar stream");
    assert_eq!(summary.sha256, made.sha256, "the read itself is unaffected");
}
