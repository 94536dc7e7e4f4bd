//! End-to-end red-team tests: hostile archives, built block by block in code
//! (`proxsave_testkit::evil`), packaged as real upstream-style bundles (real compressor, JSON
//! manifest, `.sha256`, GNU tar bundle) and fed to the real `proxsave` binary.
//!
//! For each case: `proxsave verify` exits 1 and names every malicious entry (escaped as
//! shown); `proxsave extract --to R` exits 1 and leaves `R` missing; `--skip-refused` writes
//! exactly the safe entries; and nothing outside the destination changes, ever. Numbers refer
//! to the malicious-archive catalogue (peers-and-anchors §5.3).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{code, missing_or_empty, run, stderr, stdout};
use proxsave_testkit::evil::{EvilTar, Hdr};
use proxsave_testkit::fixture::{BackupSpec, Compressor, make_backup, snapshot};
use proxsave_testkit::require_tools;

const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/bash\n";
const KEYS: &[u8] = b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILegit admin@laptop\n";

/// `<tmp>/sandbox/{outside/passwd, victim_dir/keep}` and `<tmp>/root/.ssh/authorized_keys`
/// hold what an escape would hit; destinations go to `<tmp>/out/`.
struct World {
    tmp: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        fs::create_dir_all(t.join("sandbox/outside")).unwrap();
        fs::write(t.join("sandbox/outside/passwd"), PASSWD).unwrap();
        fs::create_dir_all(t.join("sandbox/victim_dir")).unwrap();
        fs::set_permissions(
            t.join("sandbox/victim_dir"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        fs::write(t.join("sandbox/victim_dir/keep"), b"keep\n").unwrap();
        fs::create_dir_all(t.join("root/.ssh")).unwrap();
        fs::write(t.join("root/.ssh/authorized_keys"), KEYS).unwrap();
        fs::create_dir_all(t.join("out")).unwrap();
        fs::create_dir_all(t.join("bundles")).unwrap();
        World { tmp }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn outside(&self) -> String {
        self.path("sandbox/outside").to_str().unwrap().to_string()
    }

    /// Everything an escape could touch.
    fn state(&self) -> (Vec<String>, Vec<String>) {
        (
            snapshot(&self.path("sandbox")),
            snapshot(&self.path("root")),
        )
    }
}

/// One hostile archive and what must happen to it.
struct Case {
    label: &'static str,
    tar: Vec<u8>,
    /// Entry names (as `verify` prints them) that must be refused, each with a piece of
    /// the reason.
    refused: Vec<(String, &'static str)>,
    /// Every path `--skip-refused` must create (relative, `find`-style), and nothing else.
    written: Vec<&'static str>,
}

fn case(label: &'static str, tar: EvilTar) -> Case {
    Case {
        label,
        tar: tar.end().into_bytes(),
        refused: Vec::new(),
        written: Vec::new(),
    }
}

impl Case {
    fn refuse(mut self, name: impl Into<String>, why: &'static str) -> Case {
        self.refused.push((name.into(), why));
        self
    }

    fn writes(mut self, paths: &[&'static str]) -> Case {
        self.written.extend_from_slice(paths);
        self
    }
}

/// Relative paths below `dir`, without following links.
fn tree(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            out.insert(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

fn check(world: &World, c: &Case, compressor: Compressor, n: usize) {
    let made = make_backup(
        &c.tar,
        &BackupSpec {
            compressor,
            stamp: format!("20260724-0230{n:02}"),
            ..BackupSpec::default()
        },
    );
    let bundle = made.write_bundle(&world.path("bundles"));
    let b = bundle.to_str().unwrap();
    let before = world.state();
    let label = c.label;

    // verify: exit 1, every malicious entry named, escaped.
    let out = run(["verify", "--backup", b]);
    let text = stdout(&out);
    if c.refused.is_empty() {
        assert_eq!(code(&out), 0, "{label}: verify\n{text}{}", stderr(&out));
    } else {
        assert_eq!(code(&out), 1, "{label}: verify\n{text}{}", stderr(&out));
        assert!(text.contains("the backup is NOT sound"), "{label}:\n{text}");
        assert!(
            text.contains(&format!("{} of ", c.refused.len())),
            "{label}: wrong count\n{text}"
        );
        for (name, why) in &c.refused {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("  {name}: ")) && l.contains(why)),
                "{label}: verify does not name {name:?} ({why})\n{text}"
            );
        }
    }
    assert!(
        !text.contains('\x1b') && !stderr(&out).contains('\x1b'),
        "{label}: raw escape in output"
    );
    assert_eq!(world.state(), before, "{label}: verify changed something");

    // extract (strict): exit 1, nothing written, every refusal listed.
    let dest = world.path(&format!("out/strict-{n}"));
    let out = run(["extract", "--backup", b, "--to", dest.to_str().unwrap()]);
    let err = stderr(&out);
    if c.refused.is_empty() {
        assert_eq!(code(&out), 0, "{label}: extract\n{err}");
        assert_eq!(
            tree(&dest),
            c.written.iter().map(|s| s.to_string()).collect(),
            "{label}"
        );
    } else {
        assert_eq!(code(&out), 1, "{label}: extract\n{err}");
        assert!(missing_or_empty(&dest), "{label}: {dest:?} was left behind");
        assert!(err.contains("nothing was written"), "{label}:\n{err}");
        for (name, why) in &c.refused {
            assert!(
                err.lines()
                    .any(|l| l.starts_with(&format!("  refused {name}: ")) && l.contains(why)),
                "{label}: extract does not name {name:?}\n{err}"
            );
        }
    }
    assert_eq!(
        world.state(),
        before,
        "{label}: extract changed something outside {dest:?}"
    );

    // extract --skip-refused: exactly the safe entries.
    let dest = world.path(&format!("out/lenient-{n}"));
    let out = run([
        "extract",
        "--skip-refused",
        "--backup",
        b,
        "--to",
        dest.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{label}: extract --skip-refused\n{err}");
    assert_eq!(
        tree(&dest),
        c.written
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>(),
        "{label}: --skip-refused wrote something else\n{err}"
    );
    for (name, _) in &c.refused {
        assert!(
            err.contains(&format!("  refused {name}: ")),
            "{label}: {name:?} not reported\n{err}"
        );
    }
    assert_eq!(
        world.state(),
        before,
        "{label}: --skip-refused changed something outside {dest:?}"
    );
    assert!(!err.contains('\x1b'), "{label}: raw escape in output");
}

#[test]
fn hostile_bundles_are_reported_and_contained() {
    require_tools!("tar", "sha256sum", "find", "pigz");
    let world = World::new();
    let out = world.outside();
    let passwd = format!("{out}/passwd");
    let hidden = EvilTar::new()
        .file("../../sandbox/outside/smuggled", b"smuggled\n")
        .into_bytes();
    assert_eq!(hidden.len(), 1024);

    let mut chain = EvilTar::new().file("chain-end", b"end\n");
    for i in (0..=41).rev() {
        let target = if i == 41 {
            "chain-end".to_string()
        } else {
            format!("h{}", i + 1)
        };
        chain = chain.symlink(format!("h{i}"), target);
    }
    let chain_links: Vec<&'static str> = (1..=41)
        .map(|i| &*Box::leak(format!("h{i}").into_boxed_str()))
        .collect();

    let cases = vec![
        // 1 + 5: traversal forms, and a name made to forge output lines / colour the terminal.
        case(
            "01 traversal",
            EvilTar::new()
                .file("etc/ok", b"ok\n")
                .file("../etc/passwd", b"pwned\n")
                .file("a/../../x", b"pwned\n")
                .file("./../x", b"pwned\n")
                .file("../\x1b[31mred\nrefused ./etc/ok: forged", b"pwned\n")
                .pax(&[("path", b"../../sandbox/outside/pax")])
                .file("innocent", b"pwned\n"),
        )
        .refuse("../etc/passwd", "'..'")
        .refuse("a/../../x", "'..'")
        .refuse("./../x", "'..'")
        .refuse("../\\x1b[31mred\\nrefused ./etc/ok: forged", "'..'")
        .refuse("../../sandbox/outside/pax", "'..'")
        .writes(&["etc", "etc/ok"]),
        // 2: absolute names are taken below the destination; `/..` is refused.
        case(
            "02 absolute",
            EvilTar::new()
                .file("/etc/shadow", b"shadow\n")
                .file("//etc/x", b"x\n")
                .file("/../x", b"pwned\n")
                .file("//../../etc/y", b"pwned\n"),
        )
        .refuse("/../x", "'..'")
        .refuse("//../../etc/y", "'..'")
        .writes(&["etc", "etc/shadow", "etc/x"]),
        // 9: symlink, then a file through it.
        case(
            "09 write through symlink",
            EvilTar::new()
                .symlink("link", &out)
                .file("link/passwd", b"pwned\n")
                .dir("link/dir", 0o777),
        )
        .refuse("link/passwd", "created by this archive")
        .refuse("link/dir", "created by this archive")
        .writes(&["link"]),
        // 10: `link -> ..` then `link/exploit/foo/bar` (RUSTSEC-2021-0080).
        case(
            "10 dotdot link",
            EvilTar::new()
                .symlink("link", "..")
                .file("link/exploit/foo/bar", b"contained\n")
                .dir("sub", 0o755)
                .symlink("sub/up", "..")
                .file("sub/up/exploit/foo/bar", b"pwned\n"),
        )
        .refuse("link", "escapes the root")
        .refuse("sub/up/exploit/foo/bar", "sub/up is a symbolic link")
        .writes(&[
            "link",
            "link/exploit",
            "link/exploit/foo",
            "link/exploit/foo/bar",
            "sub",
            "sub/up",
        ]),
        // 11: directory entry over a link to outside (CVE-2026-33056).
        case(
            "11 directory over link",
            EvilTar::new().symlink("link", &out).header(
                Hdr::new("link/.", b'5')
                    .mode(0o777)
                    .owner(4242, 4242)
                    .mtime(1),
            ),
        )
        .refuse(
            "link/.",
            "symbolic link exists where the archive has a directory",
        )
        .writes(&["link"]),
        // 12: symlink then a same-named file (CVE-2018-20990): contained, nothing refused.
        case(
            "12 file over link",
            EvilTar::new()
                .symlink("l", &passwd)
                .file("l", b"replaced\n"),
        )
        .writes(&["l"]),
        // 13: chains that climb out, one created after the link it redirects, > 40 hops.
        case(
            "13 chains",
            chain
                .dir("d1/d2", 0o755)
                .symlink("d1/d2/z", "../..")
                .symlink("d1/d2/y", "z/..")
                .symlink("L", "x/..")
                .symlink("x", "."),
        )
        .refuse("h0", "more than 40 link resolutions")
        .refuse("d1/d2/y", "escapes the root")
        .refuse("x", "earlier symbolic link L")
        .writes(&["chain-end", "d1", "d1/d2", "d1/d2/z", "L"])
        .writes(&chain_links),
        // 14: loops.
        case(
            "14 loops",
            EvilTar::new()
                .symlink("a", "b")
                .symlink("b", "a")
                .symlink("self", "self")
                .file("a/x", b"pwned\n"),
        )
        .refuse("b", "(loop)")
        .refuse("self", "(loop)")
        .refuse("a/x", "a is a symbolic link")
        .writes(&["a"]),
        // 19: hard links to outside, through links, to links.
        case(
            "19 hard links",
            EvilTar::new()
                .file("f", b"mine\n")
                .symlink("l", &passwd)
                .hardlink("h_abs", "/etc/shadow")
                .hardlink("h_out", &passwd)
                .hardlink("h_up", "../sandbox/outside/passwd")
                .hardlink("h_link", "l")
                .hardlink("h_ok", "f"),
        )
        .refuse("h_abs", "not a path inside the archive")
        .refuse("h_out", "not a path inside the archive")
        .refuse("h_up", "not a path inside the archive")
        .refuse("h_link", "not a regular file extracted earlier")
        .writes(&["f", "l", "h_ok"]),
        // 20: hard link with data (CVE-2016-5418).
        case(
            "20 hard link with data",
            EvilTar::new()
                .file("a", b"original\n")
                .header(Hdr::new("b", b'1').link("a").size(9))
                .file("after", b"after\n"),
        )
        .refuse("b", "hard link entry carries data")
        .writes(&["a", "after"]),
        // 24: devices, FIFO, contiguous, unknown.
        case(
            "24 special types",
            EvilTar::new()
                .header(Hdr::new("dev/mem", b'3').mode(0o666).device(1, 1))
                .header(Hdr::new("dev/sda", b'4').mode(0o666).device(8, 0))
                .header(Hdr::new("run/fifo", b'6').mode(0o666))
                .entry(Hdr::new("c7", b'7'), b"contiguous\n")
                .entry(Hdr::new("odd", b'Z'), b"odd\n")
                .file("after", b"after\n"),
        )
        .refuse("dev/mem", "character device entries are never extracted")
        .refuse("dev/sda", "block device entries are never extracted")
        .refuse("run/fifo", "FIFO entries are never extracted")
        .refuse("c7", "contiguous file entries are never extracted")
        .refuse("odd", "unknown type 'Z' entries are never extracted")
        .writes(&["after"]),
        // 31: PAX size wins (ustar 0 + PAX 1024 hides a header in the data, TARmageddon);
        // a directory declaring data is read as GNU tar extracts it, and refused.
        case(
            "31 pax size",
            EvilTar::new()
                .pax(&[("size", b"1024")])
                .header(Hdr::new("r", b'0').size(0))
                .raw(&hidden)
                .header(Hdr::new("d/", b'5').size(1024))
                .file("seen", b"seen\n")
                .file("seen2", b"seen2\n"),
        )
        .refuse("d", "declares 1024 bytes of data")
        .writes(&["r", "seen", "seen2"]),
        // 33: a global header trying to rename later entries.
        case(
            "33 global header",
            EvilTar::new()
                .global_pax(&[("path", b"../../sandbox/outside/global")])
                .file("etc/after", b"after\n"),
        )
        .refuse(
            "./PaxHeaders/evil",
            "PAX global header entries are never extracted",
        )
        .writes(&["etc", "etc/after"]),
    ];
    for (n, c) in cases.iter().enumerate() {
        let compressor = if n % 2 == 0 {
            Compressor::None
        } else {
            Compressor::Pigz
        };
        check(&world, c, compressor, n);
    }
    // Spot checks of what --skip-refused wrote.
    let lenient = |n: usize, p: &str| world.path(&format!("out/lenient-{n}/{p}"));
    assert_eq!(fs::read(lenient(5, "l")).unwrap(), b"replaced\n");
    assert_eq!(fs::read_link(lenient(2, "link")).unwrap(), Path::new(&out));
    assert_eq!(fs::read(lenient(9, "a")).unwrap(), b"original\n");
    assert_eq!(
        fs::symlink_metadata(lenient(8, "h_ok")).unwrap().ino(),
        fs::symlink_metadata(lenient(8, "f")).unwrap().ino()
    );
    assert_eq!(fs::read(lenient(11, "r")).unwrap(), hidden);
    assert_eq!(
        fs::read(world.path("sandbox/outside/passwd")).unwrap(),
        PASSWD
    );
    assert_eq!(
        fs::metadata(world.path("sandbox/outside"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
}

#[test]
fn bundles_with_hostile_member_names_are_rejected_before_anything_is_read() {
    require_tools!("find");
    let world = World::new();
    let inner = EvilTar::new()
        .file("etc/hosts", b"hosts\n")
        .end()
        .into_bytes();
    let name = "pve1-backup-20260724-023000.tar";
    for (label, bundle, needle) in [
        (
            "traversal",
            EvilTar::new()
                .file(format!("../../sandbox/outside/{name}.metadata"), b"{}")
                .file(format!("../{name}"), &inner)
                .end()
                .into_bytes(),
            "unsafe name",
        ),
        (
            "duplicate manifests",
            EvilTar::new()
                .file(format!("{name}.metadata"), b"{}")
                .file(format!("{name}.metadata"), b"{}")
                .file(name, &inner)
                .end()
                .into_bytes(),
            "appears twice",
        ),
    ] {
        let path = world.path(&format!("bundles/{label}.bundle.tar"));
        fs::write(&path, bundle).unwrap();
        let before = world.state();
        for args in [
            vec!["verify", "--backup", path.to_str().unwrap()],
            vec![
                "extract",
                "--backup",
                path.to_str().unwrap(),
                "--to",
                world.path("out/x").to_str().unwrap(),
            ],
        ] {
            let out = run(&args);
            assert_eq!(code(&out), 1, "{label}: {args:?}\n{}", stderr(&out));
            assert!(stderr(&out).contains(needle), "{label}:\n{}", stderr(&out));
        }
        assert!(missing_or_empty(&world.path("out/x")));
        assert_eq!(world.state(), before, "{label}");
    }
}
