//! Backups made the way upstream makes them, with the real tools.
//!
//! [`HostTree`] writes a small but realistic Proxmox host tree (files with exact modes,
//! owners and nanosecond times, symlinks, a setuid script, secrets with 0600). [`BackupSpec`]
//! turns a tree into a proxsave backup: GNU tar in PAX format → the real compressor → the real
//! `age` CLI, then a JSON manifest and a `.sha256`, and finally a `.bundle.tar` made by GNU tar.
//! Nothing here uses proxsave's own code, so the tests read what independent tools wrote.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::run;

/// A compressor as upstream runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compressor {
    /// `xz -6 -T0` (upstream default).
    Xz,
    /// `zstd -T0 -3`.
    Zstd,
    /// `pigz -6` (upstream `gz`/`pigz`).
    Pigz,
    /// `pbzip2 -p2` (multi-stream output).
    Pbzip2,
    /// `bzip2`.
    Bzip2,
    /// `lzma` (LZMA-alone).
    Lzma,
    /// No compression.
    None,
}

impl Compressor {
    /// The archive suffix upstream uses.
    pub fn suffix(self) -> &'static str {
        match self {
            Compressor::Xz => ".tar.xz",
            Compressor::Zstd => ".tar.zst",
            Compressor::Pigz => ".tar.gz",
            Compressor::Pbzip2 | Compressor::Bzip2 => ".tar.bz2",
            Compressor::Lzma => ".tar.lzma",
            Compressor::None => ".tar",
        }
    }

    /// The manifest `compression_type`.
    pub fn manifest_type(self) -> &'static str {
        match self {
            Compressor::Xz => "xz",
            Compressor::Zstd => "zst",
            Compressor::Pigz => "pigz",
            Compressor::Pbzip2 | Compressor::Bzip2 => "bz2",
            Compressor::Lzma => "lzma",
            Compressor::None => "none",
        }
    }

    /// The command line (program, args) reading stdin and writing stdout.
    pub fn command(self) -> Option<(&'static str, Vec<&'static str>)> {
        Some(match self {
            Compressor::Xz => ("xz", vec!["-6", "-T0", "-c"]),
            Compressor::Zstd => ("zstd", vec!["-3", "-T0", "-q", "-c"]),
            Compressor::Pigz => ("pigz", vec!["-6", "-c"]),
            Compressor::Pbzip2 => ("pbzip2", vec!["-6", "-p2", "-c"]),
            Compressor::Bzip2 => ("bzip2", vec!["-6", "-c"]),
            Compressor::Lzma => ("lzma", vec!["-6", "-c"]),
            Compressor::None => return None,
        })
    }

    /// The tool that must be installed for this compressor.
    pub fn tool(self) -> Option<&'static str> {
        self.command().map(|(p, _)| p)
    }
}

/// Runs `program args` with `input` on stdin and returns stdout.
pub fn pipe(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer thread");
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Sets atime and mtime (seconds, nanoseconds) without following symlinks.
pub fn set_times(path: &Path, atime: (i64, u32), mtime: (i64, u32)) {
    let ts = |(secs, nanos): (i64, u32)| rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: i64::from(nanos),
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: ts(atime),
            last_modification: ts(mtime),
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap_or_else(|e| panic!("set times of {}: {e}", path.display()));
}

/// Changes owner (numeric) without following symlinks; only as root.
pub fn set_owner(path: &Path, uid: u32, gid: u32) {
    if is_root() {
        rustix::fs::chownat(
            rustix::fs::CWD,
            path,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

/// True when running as root.
pub fn is_root() -> bool {
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOT.get_or_init(is_root_now)
}

fn is_root_now() -> bool {
    // SAFETY-free check through /proc: the effective uid is the second Uid field.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Time base of [`HostTree::new`] (2024-07-24, the backup side).
pub const BACKUP_TIME_BASE: i64 = 1_721_781_000;

/// A host tree under construction.
pub struct HostTree {
    /// Its root.
    pub root: PathBuf,
    seq: u32,
    time_base: i64,
}

impl HostTree {
    /// An empty tree at `root` (created).
    pub fn new(root: impl Into<PathBuf>) -> HostTree {
        HostTree::with_time_base(root, BACKUP_TIME_BASE)
    }

    /// An empty tree at `root` (created) whose entries get times counted from `time_base`
    /// (Unix seconds) instead of [`BACKUP_TIME_BASE`]; still deterministic, but apart from a
    /// backup's, so a target root's untouched files are told from restored ones by mtime.
    pub fn with_time_base(root: impl Into<PathBuf>, time_base: i64) -> HostTree {
        let root = root.into();
        fs::create_dir_all(&root).expect("create tree root");
        HostTree {
            root,
            seq: 0,
            time_base,
        }
    }

    fn stamp(&mut self) -> ((i64, u32), (i64, u32)) {
        self.seq += 1;
        let base = self.time_base + i64::from(self.seq) * 61;
        // u64: trees of tens of thousands of entries must not overflow.
        let seq = u64::from(self.seq);
        (
            (
                base + 7,
                100_000_000 + (seq * 1_234_567 % 899_999_999) as u32,
            ),
            (base, 512_345_678 - (seq * 7_654_321 % 500_000_000) as u32),
        )
    }

    /// Adds a directory with `mode` (parents created 0755).
    pub fn dir(&mut self, rel: &str, mode: u32, owner: (u32, u32)) -> &mut Self {
        let p = self.root.join(rel);
        fs::create_dir_all(&p).expect("mkdir");
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod dir");
        set_owner(&p, owner.0, owner.1);
        self
    }

    /// Adds a regular file with exact content, mode, owner and nanosecond times.
    pub fn file(&mut self, rel: &str, content: &[u8], mode: u32, owner: (u32, u32)) -> &mut Self {
        let p = self.root.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir parent");
        }
        fs::write(&p, content).expect("write file");
        set_owner(&p, owner.0, owner.1);
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
        let (a, m) = self.stamp();
        set_times(&p, a, m);
        self
    }

    /// Adds a symlink with this exact target text.
    pub fn symlink(&mut self, rel: &str, target: &str) -> &mut Self {
        let p = self.root.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir parent");
        }
        symlink(target, &p).expect("symlink");
        let (a, m) = self.stamp();
        set_times(&p, a, m);
        self
    }

    /// Gives every directory a fixed time (after all files were added), deepest first, so
    /// directory mtimes are part of what tests compare.
    pub fn settle_dirs(&mut self) -> &mut Self {
        let mut dirs = Vec::new();
        collect_dirs(&self.root, &mut dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for (i, d) in dirs.iter().enumerate() {
            set_times(
                d,
                (1_700_000_000, 1),
                (1_700_000_000 + i as i64, 999_999_999),
            );
        }
        self
    }

    /// A realistic PVE node: cluster config, storage, network, SSH, a setuid script, secrets.
    pub fn pve_node(root: impl Into<PathBuf>) -> HostTree {
        let mut t = HostTree::new(root);
        t.dir("etc", 0o755, (0, 0))
            .dir("etc/pve", 0o755, (0, 33))
            .dir("etc/pve/priv", 0o700, (0, 33))
            .file(
                "etc/pve/storage.cfg",
                b"dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\nzfspool: local-zfs\n\tpool rpool/data\n\tsparse\n\tcontent images,rootdir\n",
                0o640,
                (0, 33),
            )
            .file("etc/pve/datacenter.cfg", b"keyboard: en-us\n", 0o640, (0, 33))
            .file(
                "etc/pve/user.cfg",
                b"user:root@pam:1:0:::root@example.lan:::\n",
                0o640,
                (0, 33),
            )
            .file(
                "etc/pve/priv/authkey.key",
                b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
                0o600,
                (0, 0),
            )
            .file(
                "etc/pve/nodes/pve1/qemu-server/100.conf",
                b"boot: order=scsi0\ncores: 4\nmemory: 8192\nname: web01\n",
                0o640,
                (0, 33),
            )
            .symlink("etc/pve/local", "nodes/pve1")
            .file(
                "etc/network/interfaces",
                b"auto lo\niface lo inet loopback\n\nauto vmbr0\niface vmbr0 inet static\n\taddress 192.0.2.10/24\n\tgateway 192.0.2.1\n\tbridge-ports eno1\n",
                0o644,
                (0, 0),
            )
            .file("etc/hosts", b"127.0.0.1 localhost\n192.0.2.10 pve1.example.lan pve1\n", 0o644, (0, 0))
            .file("etc/hostname", b"pve1\n", 0o644, (0, 0))
            .symlink("etc/localtime", "/usr/share/zoneinfo/Europe/Rome")
            .file("etc/ssh/sshd_config", b"PermitRootLogin prohibit-password\n", 0o644, (0, 0))
            .file("etc/ssh/ssh_host_ed25519_key", b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n", 0o600, (0, 0))
            .dir("root/.ssh", 0o700, (0, 0))
            .file("root/.ssh/authorized_keys", b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB admin@laptop\n", 0o600, (0, 0))
            .file("usr/local/bin/pve-helper", b"#!/bin/sh\necho helper\n", 0o4755, (0, 0))
            .file("usr/local/sbin/sticky-tool", b"#!/bin/sh\n", 0o2750, (0, 4))
            .dir("var/tmp/shared", 0o1777, (0, 0))
            .file("home/alice/notes.txt", "café ünïcode\n".as_bytes(), 0o640, (1000, 1000))
            .file(
                "var/lib/pve-cluster/config.db",
                &pmxcfs_config_db(&[
                    ("storage.cfg", b"dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\n"),
                    ("nodes/pve1/qemu-server/100.conf", b"cores: 2\nmemory: 2048\n"),
                    ("nodes/pve1/lrm_status", &pseudo_random(90 * 1024, 7)),
                ]),
                0o600,
                (0, 0),
            )
            .file(
                "var/lib/proxsave-info/backup_metadata.txt",
                b"# ProxSave Metadata\nVERSION=0.30.0\nBACKUP_TYPE=pve\nBACKUP_TARGETS=pve\nHOSTNAME=pve1.example.lan\nPVE_VERSION=8.4.1\nPVE_CLUSTER_MODE=cluster\nSUPPORTS_SELECTIVE_RESTORE=true\n",
                0o640,
                (0, 0),
            )
            .file(".proxsave-marker", b"Created by PID 4242 on 2026-07-24 00:30:00 UTC", 0o600, (0, 0))
            .file(
                "etc/a-very-long-directory-name-that-needs-pax-records/and-an-even-longer-file-name-that-does-not-fit-in-one-hundred-bytes-of-ustar.conf",
                b"long = true\n",
                0o644,
                (0, 0),
            );
        t.settle_dirs();
        t
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// A real pmxcfs cluster database (`config.db`, SQLite, the schema of pve-cluster's
/// `database.c`; see [`crate::configdb`]) holding `files` (paths under `/etc/pve`, folders
/// made as needed), all with the same mtime. Journal mode WAL as pmxcfs sets it,
/// checkpointed and closed (no `-wal` left). Deterministic: the same files give the same
/// bytes.
pub fn pmxcfs_config_db(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut db = crate::configdb::ConfigDb::new();
    for (p, data) in files {
        db.file(p, data, 1_784_853_000);
    }
    db.bytes()
}

/// Deterministic pseudo-random bytes (xorshift), for incompressible content.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// GNU tar of `tree` in PAX format, members named `./…` like upstream's.
pub fn gnu_tar_pax(tree: &Path) -> Vec<u8> {
    run(Command::new("tar")
        .args(["--format=pax", "--sort=name", "-C"])
        .arg(tree)
        .args(["-cf", "-", "."]))
    .stdout
}

/// Encryption of a test backup.
#[derive(Clone, Debug)]
pub enum Encryption {
    /// None.
    None,
    /// `age -r R` for every recipient (`age1…` or `ssh-…` lines).
    Recipients(Vec<String>),
}

/// What to put into a backup.
#[derive(Clone, Debug)]
pub struct BackupSpec {
    /// Host name (file name prefix and manifest).
    pub hostname: String,
    /// Timestamp in the name, `YYYYMMDD-HHMMSS`.
    pub stamp: String,
    /// Compressor.
    pub compressor: Compressor,
    /// Encryption.
    pub encryption: Encryption,
    /// Manifest `passphrase_salt`.
    pub passphrase_salt: Option<String>,
    /// Manifest `proxmox_type`.
    pub proxmox_type: String,
}

impl Default for BackupSpec {
    fn default() -> Self {
        BackupSpec {
            hostname: "pve1.example.lan".into(),
            stamp: "20260724-023000".into(),
            compressor: Compressor::Xz,
            encryption: Encryption::None,
            passphrase_salt: None,
            proxmox_type: "pve".into(),
        }
    }
}

/// The files of a made backup.
#[derive(Clone, Debug)]
pub struct MadeBackup {
    /// Archive file name, e.g. `pve1…-backup-20260724-023000.tar.xz.age`.
    pub archive_name: String,
    /// The archive bytes as stored.
    pub archive: Vec<u8>,
    /// The JSON manifest.
    pub manifest: String,
    /// The `.sha256` line.
    pub sha256_line: String,
    /// The hex SHA-256 of `archive`.
    pub sha256: String,
}

impl MadeBackup {
    /// Writes the raw layout (archive + `.metadata` + `.sha256`) into `dir`; returns the
    /// archive path.
    pub fn write_raw(&self, dir: &Path) -> PathBuf {
        let a = dir.join(&self.archive_name);
        fs::write(&a, &self.archive).expect("write archive");
        fs::write(
            dir.join(format!("{}.metadata", self.archive_name)),
            &self.manifest,
        )
        .expect("write metadata");
        fs::write(
            dir.join(format!("{}.sha256", self.archive_name)),
            &self.sha256_line,
        )
        .expect("write sha256");
        a
    }

    /// Writes `<archive>.bundle.tar` into `dir` with GNU tar (members: metadata, sha256,
    /// archive — upstream's order); returns its path.
    pub fn write_bundle(&self, dir: &Path) -> PathBuf {
        let stage = tempfile::tempdir_in(dir).expect("stage dir");
        self.write_raw(stage.path());
        let bundle = dir.join(format!("{}.bundle.tar", self.archive_name));
        run(Command::new("tar")
            .args(["--format=ustar", "-C"])
            .arg(stage.path())
            .arg("-cf")
            .arg(&bundle)
            .arg(format!("{}.metadata", self.archive_name))
            .arg(format!("{}.sha256", self.archive_name))
            .arg(&self.archive_name));
        bundle
    }
}

/// SHA-256 hex of `data` via the real `sha256sum`.
pub fn sha256sum(data: &[u8]) -> String {
    let out = pipe("sha256sum", &[], data);
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Makes a backup of `tar` (an uncompressed tar stream) as upstream would.
pub fn make_backup(tar: &[u8], spec: &BackupSpec) -> MadeBackup {
    let compressed = match spec.compressor.command() {
        Some((program, args)) => pipe(program, &args, tar),
        None => tar.to_vec(),
    };
    let (archive, enc_mode) = match &spec.encryption {
        Encryption::None => (compressed, "none"),
        Encryption::Recipients(rs) => {
            let mut args: Vec<&str> = Vec::new();
            for r in rs {
                args.push("-r");
                args.push(r);
            }
            (pipe("age", &args, &compressed), "age")
        }
    };
    let mut archive_name = format!(
        "{}-backup-{}{}",
        spec.hostname,
        spec.stamp,
        spec.compressor.suffix()
    );
    if enc_mode == "age" {
        archive_name.push_str(".age");
    }
    let sha256 = sha256sum(&archive);
    let salt = spec
        .passphrase_salt
        .as_ref()
        .map(|s| format!(",\n  \"passphrase_salt\": \"{s}\""))
        .unwrap_or_default();
    let manifest = format!(
        "{{\n  \"archive_path\": \"/opt/proxsave/backup/{archive_name}\",\n  \"archive_size\": {},\n  \"sha256\": \"{sha256}\",\n  \"created_at\": \"2026-07-24T02:30:00.512345678+02:00\",\n  \"compression_type\": \"{}\",\n  \"compression_level\": 6,\n  \"compression_mode\": \"standard\",\n  \"proxmox_type\": \"{}\",\n  \"proxmox_targets\": [\n    \"{}\"\n  ],\n  \"proxmox_version\": \"8.4.1\",\n  \"pve_version\": \"8.4.1\",\n  \"hostname\": \"{}\",\n  \"script_version\": \"0.30.0\",\n  \"encryption_mode\": \"{enc_mode}\",\n  \"cluster_mode\": \"cluster\"{salt}\n}}",
        archive.len(),
        spec.compressor.manifest_type(),
        spec.proxmox_type,
        spec.proxmox_type,
        spec.hostname,
    );
    let sha256_line = format!("{sha256}  {archive_name}\n");
    MadeBackup {
        archive_name,
        archive,
        manifest,
        sha256_line,
        sha256,
    }
}

/// What a tree looks like, for byte-exact comparison: one line per path with type, mode,
/// owner, size, mtime (ns), content hash or link text.
pub fn snapshot(root: &Path) -> Vec<String> {
    let out = run(Command::new("find")
        .arg(".")
        .args([
            "-mindepth",
            "1",
            "-printf",
            "%y %#m %U:%G %s %T@ %p -> %l\\n",
        ])
        .current_dir(root))
    .stdout;
    let mut lines: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .map(|l| {
            let mut line = l.to_string();
            if l.starts_with("d ") {
                // Directory sizes depend on the filesystem, not on what was restored.
                let mut f: Vec<&str> = l.splitn(5, ' ').collect();
                if f.len() == 5 {
                    f[3] = "-";
                }
                line = f.join(" ");
            }
            if l.starts_with("f ") {
                let rel = l
                    .split_once(" ./")
                    .map(|(_, r)| r.trim_end_matches(" -> ").to_string())
                    .unwrap_or_default();
                let data = fs::read(root.join(&rel)).unwrap_or_default();
                line.push_str(&format!(" sha={}", short_hash(&data)));
            }
            line
        })
        .collect();
    lines.sort();
    lines
}

fn short_hash(data: &[u8]) -> String {
    // FNV-1a is enough to tell contents apart in a test snapshot.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
