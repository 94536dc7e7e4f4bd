//! The restore cannot hurt the host it is meant to save: one run at a time, free space
//! measured before any write, and a run killed (`kill -9`) at any point leaves nothing the
//! next run does not find, report and clean, with the safety backup rolling the root back
//! exactly.
//!
//! Kill points are exact, not timed: `proxsave` stops itself at a chosen checkpoint
//! (`PROXSAVE_TEST_STOP_AT`, see `proxsave_testkit::paused`) and the test delivers the real
//! signal there.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use proxsave_testkit::fakes::FakeBin;
use proxsave_testkit::fixture::{BackupSpec, Compressor, HostTree, snapshot};
use proxsave_testkit::hosts::{HostRoot, host_spec, make_host_backup_in};
use proxsave_testkit::paused::{Checkpoint, Paused, Reached, read_checkpoints};
use proxsave_testkit::require_tools;
use rustix::process::Signal;

const PVE_UNITS: [&str; 4] = ["pve-cluster", "pvedaemon", "pveproxy", "pvestatd"];

/// A PVE cluster node's backup with `files` extra files of user data, a target PVE root
/// with some of those files already present (other content), fake host commands.
struct Lab {
    dir: tempfile::TempDir,
    fake: FakeBin,
    root: PathBuf,
    bundle: PathBuf,
}

fn lab(files: usize, compressor: Compressor) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBin::new(dir.path().join("fake"));
    let mut source = HostTree::pve_cluster_node(dir.path().join("source"));
    source.dir("home/admin", 0o750, (1000, 1000));
    source.dir("home/admin/data", 0o750, (1000, 1000));
    for d in 0..files.div_ceil(100) {
        source.dir(&format!("home/admin/data/d{d:03}"), 0o750, (1000, 1000));
        for f in 0..100.min(files - d * 100) {
            source.file(
                &format!("home/admin/data/d{d:03}/f{f:03}.txt"),
                format!("backup file {d}/{f}\n").as_bytes(),
                0o640,
                (1000, 1000),
            );
        }
    }
    source.settle_dirs();
    let spec = BackupSpec {
        compressor,
        ..host_spec(&source)
    };
    let backups = dir.path().join("backups");
    fs::create_dir(&backups).unwrap();
    let bundle = make_host_backup_in(&source, &spec, &backups);
    let mut target = HostRoot::pve(dir.path().join("root"));
    {
        let t = target.tree_mut();
        t.dir("home/admin", 0o700, (1000, 1000));
        t.dir("home/admin/data", 0o700, (1000, 1000));
        for d in 0..2usize.min(files.div_ceil(100)) {
            t.dir(&format!("home/admin/data/d{d:03}"), 0o700, (1000, 1000));
            for f in 0..50 {
                t.file(
                    &format!("home/admin/data/d{d:03}/f{f:03}.txt"),
                    format!("host file {d}/{f}, older\n").as_bytes(),
                    0o600,
                    (1000, 1000),
                );
            }
        }
        t.settle_dirs();
    }
    let root = target.root().to_path_buf();
    Lab {
        dir,
        fake,
        root,
        bundle,
    }
}

impl Lab {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn proxsave(&self) -> Command {
        let mut cmd = self.fake.command(common::bin());
        cmd.env("TZ", "UTC")
            .env_remove("PROXSAVE_TEST_STOP_AT")
            .env_remove("PROXSAVE_TEST_CHECKPOINTS");
        cmd
    }

    /// `proxsave restore` of the whole backup (RECOVERY: PVE services are stopped).
    fn restore(&self, work: &Path, export: &Path) -> Command {
        let mut cmd = self.proxsave();
        cmd.arg("restore")
            .arg("--backup")
            .arg(&self.bundle)
            .arg("--root")
            .arg(&self.root)
            .arg("--work-dir")
            .arg(work)
            .arg("--export-dir")
            .arg(export)
            .args([
                "--yes",
                "--mode",
                "full",
                "--cluster-mode",
                "recovery",
                "--host-actions",
                "run",
            ]);
        cmd
    }

    fn safety_backups(&self, work: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(work)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        let n = p.file_name().unwrap().to_string_lossy().into_owned();
                        n.starts_with("restore_backup_") && n.ends_with(".tar.gz")
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn rollback(&self, sb: &Path) -> std::process::Output {
        self.proxsave()
            .arg("restore")
            .arg("--rollback")
            .arg(sb)
            .arg("--root")
            .arg(&self.root)
            .arg("--yes")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }
}

/// Every path below `dir` whose name marks a stage folder, a temporary file or run state.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".proxsave-stage-")
            || name.starts_with(".proxsave-tmp-")
            || name.contains(".tmp-")
            || name.starts_with("restore-stage-")
            || name == "restore.state"
            || name == "restore.targets"
        {
            out.push(p.clone());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(leftovers(&p));
        }
    }
    out
}

/// A snapshot in which directories touched by a run (the backup does not describe them, so
/// they get the time of the change, as with any write) show `now` instead of their mtime; so
/// do the files an applier writes (the accounts merge: a new file, written now), and their
/// `.bak-YYYYMMDD-HHMMSS` copies show `.bak-STAMP` (the stamp is the run's time).
fn masked(root: &Path) -> Vec<String> {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - 86_400.0;
    let mut v: Vec<String> = snapshot(root)
        .into_iter()
        .map(|l| {
            let f: Vec<&str> = l.splitn(6, ' ').collect();
            match f.as_slice() {
                [kind @ ("d" | "f"), mode, owner, size, mtime, rest]
                    if mtime.parse::<f64>().is_ok_and(|t| t > since) =>
                {
                    format!("{kind} {mode} {owner} {size} now {rest}")
                }
                _ => l,
            }
        })
        .map(|l| mask_bak_stamp(&l))
        .collect();
    v.sort();
    v
}

/// `NAME.bak-YYYYMMDD-HHMMSS` → `NAME.bak-STAMP` in a snapshot line.
fn mask_bak_stamp(line: &str) -> String {
    let Some(i) = line.find(".bak-") else {
        return line.to_owned();
    };
    let stamp = &line[i + 5..];
    let is_stamp = stamp.len() >= 15
        && stamp.as_bytes()[..15].iter().enumerate().all(|(k, b)| {
            if k == 8 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if is_stamp {
        format!("{}.bak-STAMP{}", &line[..i], &stamp[15..])
    } else {
        line.to_owned()
    }
}

/// Asserts two snapshots are equal, showing only the lines that differ.
fn assert_same(got: &[String], want: &[String], ctx: &str) {
    if got != want {
        let extra: Vec<&String> = got.iter().filter(|l| !want.contains(l)).take(12).collect();
        let gone: Vec<&String> = want.iter().filter(|l| !got.contains(l)).take(12).collect();
        panic!("{ctx}: trees differ\n+ {extra:#?}\n- {gone:#?}");
    }
}

/// A tiny seeded generator (xorshift64*), so a failing trial can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn seed() -> u64 {
    std::env::var("PROXSAVE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026_1205)
}

/// Splits a recorded run into its phases (by the `phase` checkpoints that start each).
fn segments(cps: &[Checkpoint]) -> Vec<(String, Vec<u64>)> {
    let mut segs: Vec<(String, Vec<u64>)> = vec![("Prepare".into(), Vec::new())];
    for c in cps {
        if c.phase == "phase" {
            segs.push((c.detail.clone(), vec![c.n]));
        } else if let Some(last) = segs.last_mut() {
            last.1.push(c.n);
        }
    }
    segs.retain(|(_, v)| !v.is_empty());
    segs
}

#[test]
fn kill_9_at_random_points_is_recovered_and_rolled_back_exactly() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = lab(10_000, Compressor::Xz);
    let pristine = snapshot(&lab.root);

    // A whole run, counting its checkpoints; then rolled back.
    let cps_file = lab.path("checkpoints.tsv");
    let (work, export) = (lab.path("work-count"), lab.path("export-count"));
    let out = lab
        .restore(&work, &export)
        .env("PROXSAVE_TEST_CHECKPOINTS", &cps_file)
        .output()
        .unwrap();
    common::assert_ok(&out);
    let cps = read_checkpoints(&cps_file);
    let segs = segments(&cps);
    let names: Vec<&str> = segs.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "Prepare",
        "SafetyBackup",
        "StoppingServices",
        "Extracting",
        "Committing",
        "Committed",
        "Applying",
        "Restarting",
    ] {
        assert!(names.contains(&want), "no {want} phase in {names:?}");
    }
    let entries = cps.iter().filter(|c| c.phase == "scan").count();
    assert!(entries >= 10_000, "only {entries} entries");
    let sb = lab.safety_backups(&work);
    assert_eq!(sb.len(), 1);
    common::assert_ok(&lab.rollback(&sb[0]));
    assert_eq!(
        snapshot(&lab.root),
        pristine,
        "rollback of the counting run"
    );

    // Points: spread over the phases (a few in each, more where the run spends its time).
    let mut rng = Rng(seed());
    let mut points: Vec<(String, u64)> = Vec::new();
    for (name, ns) in &segs {
        let k = if ns.len() > 1000 { 8 } else { 4 };
        for _ in 0..k.min(ns.len()) {
            points.push((name.clone(), ns[rng.below(ns.len() as u64) as usize]));
        }
    }
    assert!(points.len() >= 30, "{} points", points.len());
    eprintln!(
        "crash trials: seed {} (PROXSAVE_CRASH_SEED), {} points, {} checkpoints",
        seed(),
        points.len(),
        cps.len()
    );

    for (i, (phase, n)) in points.iter().enumerate() {
        let ctx = format!("trial {i}: kill -9 at checkpoint {n} ({phase})");
        let (work, export) = (
            lab.path(&format!("work-{i}")),
            lab.path(&format!("export-{i}")),
        );
        let mut run = Paused::spawn(
            &mut lab.restore(&work, &export),
            &n.to_string(),
            lab.dir.path(),
            "run",
        );
        match run.wait_stopped() {
            Reached::Stopped => {}
            Reached::Ended(st) => panic!("{ctx}: ended first ({st}):\n{}", run.stderr_text()),
        }
        run.signal(Signal::KILL);
        let st = run.finish();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&st),
            Some(9),
            "{ctx}"
        );

        // The next run finds what the dead one left, says so, and cleans it.
        let rec = lab
            .proxsave()
            .arg("restore")
            .arg("--recover")
            .arg("--root")
            .arg(&lab.root)
            .arg("--work-dir")
            .arg(&work)
            .arg("--host-actions")
            .arg("run")
            .output()
            .unwrap();
        let said = format!("{}{}", common::stdout(&rec), common::stderr(&rec));
        assert!(rec.status.success(), "{ctx}: recover failed:\n{said}");
        if phase != "Prepare" {
            assert!(
                said.contains("interrupted proxsave restore"),
                "{ctx}:\n{said}"
            );
        }
        if phase == "Committing" {
            assert!(
                said.contains("may hold a mix of old and new files"),
                "{ctx}:\n{said}"
            );
        }
        for d in [&lab.root, &work, &export] {
            let left = leftovers(d);
            assert!(left.is_empty(), "{ctx}: left {left:?}\n{said}");
        }
        for u in PVE_UNITS {
            assert_eq!(
                lab.fake.unit_state(u),
                "active",
                "{ctx}: {u} left stopped\n{said}"
            );
        }

        // The safety backup (when the run got that far) gives the exact previous tree.
        if let Some(sb) = lab.safety_backups(&work).first() {
            let out = lab.rollback(sb);
            assert!(
                out.status.success(),
                "{ctx}: rollback:\n{}",
                common::stderr(&out)
            );
        }
        let now = snapshot(&lab.root);
        if now != pristine {
            let extra: Vec<&String> = now
                .iter()
                .filter(|l| !pristine.contains(l))
                .take(10)
                .collect();
            let gone: Vec<&String> = pristine
                .iter()
                .filter(|l| !now.contains(l))
                .take(10)
                .collect();
            panic!("{ctx}: root differs after recovery and rollback\n+ {extra:#?}\n- {gone:#?}");
        }
        let _ = fs::remove_dir_all(&work);
        let _ = fs::remove_dir_all(&export);
    }
}

#[test]
fn a_second_restore_is_refused_naming_the_first_ones_pid_and_nothing_is_lost() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = lab(300, Compressor::Xz);
    let pristine = snapshot(&lab.root);
    let cps_file = lab.path("checkpoints.tsv");
    // Where the first run will be held: in the middle of its extraction.
    let (w0, e0) = (lab.path("work-0"), lab.path("export-0"));
    common::assert_ok(
        &lab.restore(&w0, &e0)
            .env("PROXSAVE_TEST_CHECKPOINTS", &cps_file)
            .output()
            .unwrap(),
    );
    let restored = masked(&lab.root);
    common::assert_ok(&lab.rollback(&lab.safety_backups(&w0)[0]));
    assert_eq!(snapshot(&lab.root), pristine);
    let cps = read_checkpoints(&cps_file);
    let hold = segments(&cps)
        .into_iter()
        .find(|(n, _)| n == "Extracting")
        .map(|(_, v)| v[v.len() / 2])
        .unwrap();

    let (w1, e1) = (lab.path("work-1"), lab.path("export-1"));
    let mut first = Paused::spawn(
        &mut lab.restore(&w1, &e1),
        &hold.to_string(),
        lab.dir.path(),
        "first",
    );
    assert!(matches!(first.wait_stopped(), Reached::Stopped));
    let pid = first.pid().to_string();

    // Same root, another work dir; and same work dir, another root.
    let (w2, e2) = (lab.path("work-2"), lab.path("export-2"));
    let second = lab.restore(&w2, &e2).output().unwrap();
    assert_eq!(common::code(&second), 2, "{}", common::stderr(&second));
    let err = common::stderr(&second);
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    assert!(err.contains(&lab.root.display().to_string()), "{err}");
    let other_root = lab.path("other-root");
    fs::create_dir(&other_root).unwrap();
    let third = lab
        .proxsave()
        .arg("restore")
        .arg("--backup")
        .arg(&lab.bundle)
        .arg("--root")
        .arg(&other_root)
        .arg("--work-dir")
        .arg(&w1)
        .args(["--yes", "--mode", "full", "--host-actions", "defer"])
        .output()
        .unwrap();
    assert_eq!(common::code(&third), 2, "{}", common::stderr(&third));
    assert!(common::stderr(&third).contains(&format!("pid {pid}")));
    assert!(common::missing_or_empty(&other_root));
    assert!(!e2.exists());
    // The refused run wrote nothing in its work dir but the folder itself.
    assert!(
        common::missing_or_empty(&w2),
        "{:?}",
        fs::read_dir(&w2).map(|r| r.count())
    );

    // The first run goes on and completes as if alone.
    let st = first.finish();
    assert!(st.success(), "{st}");
    assert_same(&masked(&lab.root), &restored, "after the first run");
    assert_eq!(lab.safety_backups(&w1).len(), 1);
    // (A completed run keeps its stage folder for review when categories stay staged.)
    let left: Vec<PathBuf> = leftovers(&w1)
        .into_iter()
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("restore-stage-")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Runs `script` in a private mount namespace (`unshare -m`): mounts made there vanish with
/// it, on every path.
fn in_mount_namespace(script: &str) -> std::process::Output {
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-euc", script])
        .output()
        .unwrap()
}

fn can_mount() -> bool {
    if proxsave_testkit::fixture::is_root()
        && in_mount_namespace("mount -t tmpfs -o size=1m tmpfs /mnt")
            .status
            .success()
    {
        return true;
    }
    assert!(
        !proxsave_testkit::tools_required(),
        "tmpfs tests need root and unshare(1) in CI"
    );
    eprintln!("skipping: needs root and unshare -m (tmpfs mounts)");
    false
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

#[test]
fn a_root_on_an_8_mib_tmpfs_restores_a_small_backup() {
    require_tools!("tar", "xz", "sha256sum", "unshare");
    if !can_mount() {
        return;
    }
    let lab = lab(100, Compressor::Xz);
    // The same restore into an ordinary folder, for comparison.
    let reference = lab.path("reference");
    Command::new("cp")
        .arg("-a")
        .arg(&lab.root)
        .arg(&reference)
        .status()
        .unwrap();
    let (w, e) = (lab.path("work-ref"), lab.path("export-ref"));
    let mut cmd = lab.restore(&w, &e);
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            if Path::new(a) == lab.root {
                reference.display().to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    let out = lab.proxsave().args(&args).output().unwrap();
    common::assert_ok(&out);
    let expected = masked(&reference);

    let used = String::from_utf8(
        Command::new("du")
            .args(["-sk"])
            .arg(&lab.root)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        used.split_whitespace()
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            < 4096,
        "the target root must fit an 8 MiB tmpfs with room to restore: {used}"
    );
    let copy = lab.path("after");
    let (w, e) = (lab.path("work"), lab.path("export"));
    cmd = lab.restore(&w, &e);
    let argv: Vec<String> = std::iter::once(common::bin().to_string())
        .chain(cmd.get_args().map(|a| q(Path::new(a))))
        .collect();
    let script = format!(
        "cp -a {root} {root}.src\n\
         mount -t tmpfs -o size=8m,mode=0755 tmpfs {root}\n\
         cp -a {root}.src/. {root}/\n\
         touch -r {root}.src {root}\n\
         PATH={path} {argv} >{dir}/tmpfs.out 2>&1 || {{ cat {dir}/tmpfs.out; exit 1; }}\n\
         df -k {root} | tail -1\n\
         cp -a {root} {copy}\n",
        root = q(&lab.root),
        path = q(Path::new(&lab.fake.path_env())),
        argv = argv.join(" "),
        dir = q(lab.dir.path()),
        copy = q(&copy),
    );
    let out = in_mount_namespace(&script);
    assert!(
        out.status.success(),
        "{}{}",
        common::stdout(&out),
        common::stderr(&out)
    );
    assert!(
        common::stdout(&out).contains("tmpfs"),
        "{}",
        common::stdout(&out)
    );
    let got = masked(&copy);
    // The mount point's own metadata differs (tmpfs root); compare what is inside.
    assert_same(&got, &expected, "tmpfs root vs ordinary folder");
}

#[test]
fn a_work_dir_too_small_fails_before_any_write_naming_it() {
    require_tools!("tar", "xz", "sha256sum", "unshare");
    if !can_mount() {
        return;
    }
    let lab = lab(2_000, Compressor::Xz);
    let pristine = snapshot(&lab.root);
    let work = lab.path("work");
    fs::create_dir(&work).unwrap();
    let (_, e) = (lab.path("unused"), lab.path("export"));
    let cmd = lab.restore(&work, &e);
    let argv: Vec<String> = std::iter::once(common::bin().to_string())
        .chain(cmd.get_args().map(|a| q(Path::new(a))))
        .collect();
    let script = format!(
        "mount -t tmpfs -o size=256k,mode=0700 tmpfs {work}\n\
         set +e\n\
         PATH={path} {argv} >{dir}/small.out 2>&1\n\
         echo \"exit=$?\"\n\
         ls -A {work}\n",
        work = q(&work),
        path = q(Path::new(&lab.fake.path_env())),
        argv = argv.join(" "),
        dir = q(lab.dir.path()),
    );
    let out = in_mount_namespace(&script);
    let said = fs::read_to_string(lab.dir.path().join("small.out")).unwrap_or_default();
    let listing = common::stdout(&out);
    assert!(listing.contains("exit=1"), "{listing}\n{said}");
    assert!(said.contains("not enough free space"), "{said}");
    assert!(said.contains(&work.display().to_string()), "{said}");
    assert!(said.contains("short"), "{said}");
    // Nothing was written: no safety backup, no stage, no export, the root untouched, and
    // no service was stopped.
    let after: Vec<&str> = listing.lines().skip(1).collect();
    assert!(
        after.iter().all(|l| !l.starts_with("restore_backup_")),
        "{listing}"
    );
    assert!(!e.exists());
    assert_eq!(snapshot(&lab.root), pristine);
    assert!(
        lab.fake
            .calls_of("systemctl")
            .iter()
            .all(|c| !c.starts_with(&["stop"]))
    );
}

#[test]
fn sigint_and_sigterm_at_random_points_leave_services_up_and_nothing_behind() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = lab(1_000, Compressor::Xz);
    let pristine = snapshot(&lab.root);
    let cps_file = lab.path("checkpoints.tsv");
    let (work, export) = (lab.path("work-count"), lab.path("export-count"));
    let out = lab
        .restore(&work, &export)
        .env("PROXSAVE_TEST_CHECKPOINTS", &cps_file)
        .output()
        .unwrap();
    common::assert_ok(&out);
    common::assert_ok(&lab.rollback(&lab.safety_backups(&work)[0]));
    assert_eq!(snapshot(&lab.root), pristine);
    let segs = segments(&read_checkpoints(&cps_file));
    let mut rng = Rng(seed() ^ 0x51_6e);
    for (k, sig) in [(0, Signal::INT), (1, Signal::TERM)] {
        let name = if k == 0 { "SIGINT" } else { "SIGTERM" };
        // Ten points per signal, one or two in each phase.
        let mut points = Vec::new();
        while points.len() < 10 {
            let (phase, ns) = &segs[rng.below(segs.len() as u64) as usize];
            points.push((phase.clone(), ns[rng.below(ns.len() as u64) as usize]));
        }
        for (i, (phase, n)) in points.iter().enumerate() {
            let ctx = format!("{name} #{i} at checkpoint {n} ({phase})");
            let (work, export) = (
                lab.path(&format!("work-{k}-{i}")),
                lab.path(&format!("export-{k}-{i}")),
            );
            let mut run = Paused::spawn(
                &mut lab.restore(&work, &export),
                &n.to_string(),
                lab.dir.path(),
                "sig",
            );
            assert!(matches!(run.wait_stopped(), Reached::Stopped), "{ctx}");
            run.signal(sig);
            let st = run.finish();
            let said = format!("{}{}", run.stdout_text(), run.stderr_text());
            assert_eq!(st.code(), Some(130), "{ctx}:\n{said}");
            assert!(
                said.contains(name),
                "{ctx}: the run does not say {name}:\n{said}"
            );
            for u in PVE_UNITS {
                assert_eq!(
                    lab.fake.unit_state(u),
                    "active",
                    "{ctx}: {u} left stopped\n{said}"
                );
            }
            for d in [&lab.root, &export] {
                let left = leftovers(d);
                assert!(left.is_empty(), "{ctx}: left {left:?}\n{said}");
            }
            let left: Vec<PathBuf> = leftovers(&work)
                .into_iter()
                .filter(|p| {
                    !p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("restore-stage-")
                })
                .collect();
            assert!(left.is_empty(), "{ctx}: left {left:?}\n{said}");
            if let Some(sb) = lab.safety_backups(&work).first() {
                let out = lab.rollback(sb);
                assert!(
                    out.status.success(),
                    "{ctx}: rollback:\n{}",
                    common::stderr(&out)
                );
            }
            assert_same(&snapshot(&lab.root), &pristine, &ctx);
            let _ = fs::remove_dir_all(&work);
            let _ = fs::remove_dir_all(&export);
        }
    }
}
