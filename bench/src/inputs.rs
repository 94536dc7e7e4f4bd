//! Deterministic generation of a realistic Proxmox host tree and of a backup made from it
//! exactly as upstream proxsave makes one (GNU tar PAX → `xz -6 -T0` → `age -r`, `.sha256`,
//! JSON `.metadata`, `.bundle.tar`), cached by size and seed.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Bumped whenever the generator's output changes, so stale caches are not reused.
pub const GENERATOR_VERSION: u32 = 1;

/// Host name and time stamp of the generated backup (the archive name follows upstream).
const HOSTNAME: &str = "pve1.example.lan";
const STAMP: &str = "20260724-023000";

/// Splitmix64: tiny, fast, and stable forever (unlike a crate's "standard" generator).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5EED_0FB0_5A4E_u64)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Log-uniform in `lo..=hi`: many small values, a few large ones.
    pub fn log_uniform(&mut self, lo: u64, hi: u64) -> u64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let v = ((lo as f64).ln() + u * ((hi as f64).ln() - (lo as f64).ln())).exp();
        (v as u64).clamp(lo, hi)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

const WORDS: &[&str] = &[
    "local",
    "vmbr0",
    "vmbr1",
    "rpool",
    "data",
    "backup",
    "iso",
    "vztmpl",
    "images",
    "rootdir",
    "web01",
    "db02",
    "mail",
    "proxy",
    "ceph",
    "monitor",
    "cluster",
    "corosync",
    "quorum",
    "firewall",
    "enable",
    "disable",
    "true",
    "false",
    "auto",
    "manual",
    "static",
    "dhcp",
    "virtio",
    "e1000",
    "scsi",
    "sata",
    "ide",
    "ovmf",
    "seabios",
    "host",
    "kvm64",
    "x86-64-v2-AES",
    "l26",
    "win11",
    "debian",
    "ubuntu",
    "alpine",
    "nfs",
    "cifs",
    "zfspool",
    "lvmthin",
    "dir",
    "pbs",
    "daily",
    "weekly",
    "keep-last",
    "prune",
    "snapshot",
    "stop",
    "suspend",
    "zstd",
    "running",
    "stopped",
    "online",
    "offline",
    "healthy",
    "degraded",
    "eno1",
    "eno2",
    "bond0",
    "lacp",
    "active-backup",
    "mtu",
    "gateway",
    "netmask",
    "bridge-ports",
    "bridge-stp",
    "info",
    "warning",
    "notice",
    "pvedaemon",
    "pveproxy",
    "pvestatd",
    "pve-ha-lrm",
    "systemd",
];

const QEMU_KEYS: &[&str] = &[
    "agent",
    "balloon",
    "bios",
    "boot",
    "cores",
    "cpu",
    "description",
    "efidisk0",
    "hotplug",
    "ide2",
    "machine",
    "memory",
    "meta",
    "name",
    "net0",
    "net1",
    "numa",
    "onboot",
    "ostype",
    "scsi0",
    "scsi1",
    "scsihw",
    "smbios1",
    "sockets",
    "startup",
    "tags",
    "vga",
    "vmgenid",
];

const LXC_KEYS: &[&str] = &[
    "arch",
    "cores",
    "features",
    "hostname",
    "memory",
    "mp0",
    "nameserver",
    "net0",
    "onboot",
    "ostype",
    "rootfs",
    "searchdomain",
    "swap",
    "unprivileged",
    "tags",
    "startup",
];

const CONF_KEYS: &[&str] = &[
    "ExecStart",
    "Restart",
    "User",
    "Group",
    "WantedBy",
    "After",
    "Description",
    "Type",
    "Environment",
    "LimitNOFILE",
    "net.ipv4.ip_forward",
    "vm.swappiness",
    "kernel.panic",
    "options",
    "blacklist",
    "deb",
    "Components",
    "Suites",
    "URIs",
    "Signed-By",
    "PermitRootLogin",
    "PasswordAuthentication",
    "MaxSessions",
    "rotate",
    "compress",
    "missingok",
    "size",
    "SUBSYSTEM",
    "ACTION",
    "ATTR{address}",
    "NAME",
    "GRUB_CMDLINE_LINUX",
    "ZFS_ARC_MAX",
];

const INFO_CATEGORIES: &[&str] = &[
    "system", "network", "storage", "pve", "zfs", "hardware", "services", "ceph", "cluster",
];

const INFO_COMMANDS: &[&str] = &[
    "ip_addr",
    "ip_route",
    "lsblk",
    "df",
    "zpool_status",
    "zfs_list",
    "pveversion",
    "qm_list",
    "pct_list",
    "pvesm_status",
    "systemctl_units",
    "dmidecode",
    "lspci",
    "sensors",
    "smartctl",
    "ceph_status",
    "pvecm_status",
    "iptables_save",
    "journal_boot",
    "dpkg_list",
];

const ETC_DIRS: &[&str] = &[
    "systemd/system",
    "apt/sources.list.d",
    "cron.d",
    "sysctl.d",
    "modprobe.d",
    "network/interfaces.d",
    "ssh/sshd_config.d",
    "logrotate.d",
    "udev/rules.d",
    "default",
    "security/limits.d",
    "apt/apt.conf.d",
    "modules-load.d",
    "pve/sdn/zones",
    "pve/ha",
];

fn hex(rng: &mut Rng, n: usize) -> String {
    const H: &[u8] = b"0123456789abcdef";
    (0..n).map(|_| H[rng.below(16) as usize] as char).collect()
}

fn value(rng: &mut Rng) -> String {
    match rng.below(12) {
        0 | 1 => rng.range(0, 65536).to_string(),
        2 => format!(
            "10.{}.{}.{}",
            rng.below(256),
            rng.below(256),
            rng.range(1, 254)
        ),
        3 => format!(
            "BC:24:11:{:02X}:{:02X}:{:02X}",
            rng.below(256),
            rng.below(256),
            rng.below(256)
        ),
        4 => format!(
            "{}-{}-{}-{}-{}",
            hex(rng, 8),
            hex(rng, 4),
            hex(rng, 4),
            hex(rng, 4),
            hex(rng, 12)
        ),
        5 => format!("/var/lib/{}/{}", rng.pick(WORDS), rng.pick(WORDS)),
        6 => format!(
            "virtio={:02X}:{:02X}:{:02X}:{:02X}:{:02X}:{:02X},bridge={},firewall=1",
            0xBC,
            0x24,
            rng.below(256),
            rng.below(256),
            rng.below(256),
            rng.below(256),
            rng.pick(&["vmbr0", "vmbr1"])
        ),
        7 => format!(
            "local-zfs:vm-{}-disk-{},iothread=1,size={}G",
            rng.range(100, 999),
            rng.below(4),
            rng.range(8, 512)
        ),
        8 => format!("{},{}", rng.pick(WORDS), rng.pick(WORDS)),
        _ => rng.pick(WORDS).to_string(),
    }
}

#[derive(Clone, Copy)]
enum Style {
    Qemu,
    Lxc,
    Firewall,
    Command,
    Ini,
    Shell,
}

/// A text file of about `len` bytes in the given style.
fn text(rng: &mut Rng, style: Style, len: usize) -> Vec<u8> {
    let mut out = String::with_capacity(len + 256);
    let mut section = 0;
    while out.len() < len {
        match style {
            Style::Qemu | Style::Lxc => {
                let keys = if matches!(style, Style::Qemu) {
                    QEMU_KEYS
                } else {
                    LXC_KEYS
                };
                if out.len() > 400 && rng.chance(0.04) {
                    section += 1;
                    out.push_str(&format!(
                        "\n[snap-{section}-{}]\nsnaptime: {}\nvmstate: 0\n",
                        rng.pick(WORDS),
                        1_700_000_000 + rng.below(40_000_000)
                    ));
                }
                out.push_str(&format!("{}: {}\n", rng.pick(keys), value(rng)));
            }
            Style::Firewall => {
                if out.is_empty() {
                    out.push_str("[OPTIONS]\nenable: 1\npolicy_in: DROP\n\n[RULES]\n");
                }
                out.push_str(&format!(
                    "IN {} -source 10.{}.{}.0/24 -p tcp -dport {} -log nolog # {}\n",
                    rng.pick(&["ACCEPT", "DROP", "REJECT"]),
                    rng.below(256),
                    rng.below(256),
                    rng.pick(&["22", "80", "443", "8006", "3128", "5900:5999"]),
                    rng.pick(WORDS)
                ));
            }
            Style::Command => {
                out.push_str(&format!(
                    "{:<14} {:>10} {:>8} {:<10} {:<16} {}\n",
                    rng.pick(WORDS),
                    rng.below(1 << 30),
                    rng.below(100_000),
                    rng.pick(WORDS),
                    value(rng),
                    rng.pick(WORDS)
                ));
            }
            Style::Ini => {
                if rng.chance(0.08) || out.is_empty() {
                    out.push_str(&format!("\n[{}]\n", rng.pick(WORDS)));
                }
                out.push_str(&format!("{} = {}\n", rng.pick(CONF_KEYS), value(rng)));
            }
            Style::Shell => {
                if rng.chance(0.1) {
                    out.push_str(&format!(
                        "# {} {} {}\n",
                        rng.pick(WORDS),
                        rng.pick(WORDS),
                        rng.pick(WORDS)
                    ));
                }
                out.push_str(&format!(
                    "{}_{}=\"{}\"\n",
                    rng.pick(WORDS).to_uppercase().replace('-', "_"),
                    rng.below(64),
                    value(rng)
                ));
            }
        }
    }
    out.into_bytes()
}

fn log_line(rng: &mut Rng, t: &mut u64, out: &mut Vec<u8>) {
    *t += rng.below(4);
    let s = *t;
    let (mon, day) = (
        ["Jun", "Jul"][(s / 2_600_000 % 2) as usize],
        1 + s / 86_400 % 28,
    );
    let (h, m, sec) = (s / 3600 % 24, s / 60 % 60, s % 60);
    let node = rng.pick(&["pve1", "pve2", "pve3"]);
    let msg = match rng.below(8) {
        0 => format!(
            "pvedaemon[{}]: <root@pam> starting task UPID:{node}:{:08X}:{:08X}:{:08X}:vzdump:{}:root@pam:",
            rng.range(1000, 99999),
            rng.below(1 << 32),
            rng.below(1 << 32),
            s,
            rng.range(100, 999)
        ),
        1 => format!(
            "pveproxy[{}]: worker {} finished",
            rng.range(1000, 99999),
            rng.range(1000, 99999)
        ),
        2 => format!(
            "kernel: [{}.{:06}] vmbr0: port {}(tap{}i0) entered forwarding state",
            rng.below(9_999_999),
            rng.below(1_000_000),
            rng.range(1, 9),
            rng.range(100, 999)
        ),
        3 => format!(
            "pvestatd[{}]: status update time ({}.{:03} seconds)",
            rng.range(1000, 9999),
            rng.below(9),
            rng.below(1000)
        ),
        4 => format!(
            "corosync[{}]:   [KNET  ] link: host: {} link: 0 is up",
            rng.range(1000, 9999),
            rng.range(1, 3)
        ),
        5 => format!(
            "systemd[1]: Started {}.service - {} {}.",
            rng.pick(WORDS),
            rng.pick(WORDS),
            rng.pick(WORDS)
        ),
        6 => format!(
            "sshd[{}]: Accepted publickey for root from 10.{}.{}.{} port {} ssh2: ED25519 SHA256:{}",
            rng.range(1000, 99999),
            rng.below(256),
            rng.below(256),
            rng.below(256),
            rng.range(1024, 65535),
            hex(rng, 43)
        ),
        _ => format!(
            "pmxcfs[{}]: [status] notice: received log",
            rng.range(1000, 9999)
        ),
    };
    let _ = writeln!(out, "{mon} {day:2} {h:02}:{m:02}:{sec:02} {node} {msg}");
}

fn json_record(rng: &mut Rng, out: &mut Vec<u8>) {
    let id = rng.range(100, 9999);
    let kind = rng.pick(&["qemu", "lxc", "storage", "node"]);
    let _ = write!(
        out,
        "  {{\n    \"id\": \"{kind}/{id}\",\n    \"type\": \"{kind}\",\n    \"node\": \"pve{}\",\n    \"name\": \"{}-{id}\",\n    \"status\": \"{}\",\n    \"cpu\": {}.{:06},\n    \"maxcpu\": {},\n    \"mem\": {},\n    \"maxmem\": {},\n    \"disk\": {},\n    \"netin\": {},\n    \"netout\": {},\n    \"uptime\": {},\n    \"tags\": \"{};{}\"\n  }},\n",
        rng.range(1, 3),
        rng.pick(WORDS),
        rng.pick(&["running", "stopped"]),
        rng.below(2),
        rng.below(1_000_000),
        rng.range(1, 64),
        rng.below(1 << 36),
        rng.below(1 << 37),
        rng.below(1 << 40),
        rng.below(1 << 42),
        rng.below(1 << 42),
        rng.below(1 << 24),
        rng.pick(WORDS),
        rng.pick(WORDS)
    );
}

/// What the generated tree holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TreeStats {
    pub files: u64,
    pub small_files: u64,
    pub large_files: u64,
    pub symlinks: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub small_bytes: u64,
}

struct Tree {
    root: PathBuf,
    stats: TreeStats,
}

impl Tree {
    fn write(&mut self, rel: &str, data: &[u8], mode: u32, gid: u32) -> Result<()> {
        let p = self.root.join(rel);
        self.ensure_parent(&p)?;
        fs::write(&p, data).with_context(|| format!("writing {}", p.display()))?;
        self.finish_file(&p, mode, gid, data.len() as u64)
    }

    fn ensure_parent(&mut self, p: &Path) -> Result<()> {
        if let Some(parent) = p.parent()
            && !parent.exists()
        {
            fs::create_dir_all(parent).with_context(|| format!("mkdir {}", parent.display()))?;
        }
        Ok(())
    }

    fn finish_file(&mut self, p: &Path, mode: u32, gid: u32, len: u64) -> Result<()> {
        fs::set_permissions(p, fs::Permissions::from_mode(mode))?;
        if gid != 0 {
            // Only root may give files away; as another user the tree simply stays ours.
            let _ = lchown(p, Some(0), Some(gid));
        }
        self.stats.files += 1;
        self.stats.bytes += len;
        Ok(())
    }

    /// Streams a large file of `len` bytes from `chunk`, which appends at least one byte.
    fn write_large(
        &mut self,
        rel: &str,
        len: u64,
        mode: u32,
        mut chunk: impl FnMut(&mut Vec<u8>),
    ) -> Result<()> {
        let p = self.root.join(rel);
        self.ensure_parent(&p)?;
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&p)?);
        let mut buf = Vec::with_capacity(2 << 20);
        let mut written = 0u64;
        while written < len {
            buf.clear();
            while buf.len() < (1 << 20) {
                chunk(&mut buf);
            }
            let n = (len - written).min(buf.len() as u64) as usize;
            w.write_all(&buf[..n])?;
            written += n as u64;
        }
        w.flush()?;
        drop(w);
        self.stats.large_files += 1;
        self.finish_file(&p, mode, 0, len)
    }

    fn symlink(&mut self, rel: &str, target: &str) -> Result<()> {
        let p = self.root.join(rel);
        self.ensure_parent(&p)?;
        if p.symlink_metadata().is_err() {
            symlink(target, &p)?;
            self.stats.symlinks += 1;
        }
        Ok(())
    }
}

/// Writes the host tree: about `size` bytes of file content, ~15% of it in thousands of
/// small config/text files, the rest in a few large logs, JSON dumps, a `config.db`-like
/// binary of mixed compressibility and already-compressed (incompressible) backups.
/// With `entries > 0`, home directories of tiny user files (1 000 per folder under
/// `home/userN/`) and `etc/pve/nodes/pveN/qemu-server/*.conf` files are added until the
/// tree holds about `entries` entries (files, links and directories).
pub fn generate_tree(root: &Path, size: u64, seed: u64, entries: u64) -> Result<TreeStats> {
    let mut rng = Rng::new(seed);
    let mut t = Tree {
        root: root.to_path_buf(),
        stats: TreeStats::default(),
    };
    fs::create_dir_all(root)?;

    // A few fixed, well-known files first.
    t.write("etc/hostname", b"pve1\n", 0o644, 0)?;
    t.write(
        "etc/hosts",
        b"127.0.0.1 localhost.localdomain localhost\n10.0.0.11 pve1.example.lan pve1\n10.0.0.12 pve2.example.lan pve2\n10.0.0.13 pve3.example.lan pve3\n",
        0o644,
        0,
    )?;
    t.write(
        "etc/network/interfaces",
        b"auto lo\niface lo inet loopback\n\niface eno1 inet manual\n\nauto vmbr0\niface vmbr0 inet static\n\taddress 10.0.0.11/24\n\tgateway 10.0.0.1\n\tbridge-ports eno1\n\tbridge-stp off\n\tbridge-fd 0\n",
        0o644,
        0,
    )?;
    t.write(
        "etc/pve/storage.cfg",
        b"dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\nzfspool: local-zfs\n\tpool rpool/data\n\tsparse\n\tcontent images,rootdir\n",
        0o640,
        33,
    )?;
    t.write(
        "etc/pve/datacenter.cfg",
        b"keyboard: en-us\nkeyboard: de\n",
        0o640,
        33,
    )?;
    t.write(
        "var/lib/proxsave-info/backup_metadata.txt",
        b"# ProxSave Metadata\nVERSION=0.30.0\nBACKUP_TYPE=pve\nBACKUP_TARGETS=pve\nHOSTNAME=pve1.example.lan\nPVE_VERSION=8.4.1\nPVE_CLUSTER_MODE=cluster\nSUPPORTS_SELECTIVE_RESTORE=true\n",
        0o640,
        0,
    )?;
    t.symlink("etc/pve/local", "nodes/pve1")?;
    t.symlink("etc/pve/qemu-server", "nodes/pve1/qemu-server")?;
    t.symlink("etc/pve/lxc", "nodes/pve1/lxc")?;
    t.symlink("etc/localtime", "/usr/share/zoneinfo/Europe/Rome")?;
    t.symlink("etc/resolv.conf", "/run/systemd/resolve/stub-resolv.conf")?;

    // Many small files.
    let small_budget = (size * 15 / 100).max(1 << 20);
    let (mut vmid, mut ctid, mut i) = (100u64, 5000u64, 0u64);
    while t.stats.small_bytes < small_budget {
        i += 1;
        let len = rng.log_uniform(200, 8192) as usize;
        let node = rng.range(1, 3);
        let (rel, style, mode, gid) = match rng.below(20) {
            0..=4 => {
                vmid += 1;
                (
                    format!("etc/pve/nodes/pve{node}/qemu-server/{vmid}.conf"),
                    Style::Qemu,
                    0o640,
                    33,
                )
            }
            5..=6 => {
                ctid += 1;
                (
                    format!("etc/pve/nodes/pve{node}/lxc/{ctid}.conf"),
                    Style::Lxc,
                    0o640,
                    33,
                )
            }
            7 => (
                format!("etc/pve/firewall/{}.fw", 100 + i),
                Style::Firewall,
                0o640,
                33,
            ),
            8..=12 => {
                let cat = rng.pick(INFO_CATEGORIES);
                let cmd = rng.pick(INFO_COMMANDS);
                let sub = rng.below(8);
                (
                    format!("var/lib/proxsave-info/commands/{cat}/run-{sub}/{cmd}-{i}.txt"),
                    Style::Command,
                    0o640,
                    0,
                )
            }
            13..=16 => {
                let dir = rng.pick(ETC_DIRS);
                (
                    format!("etc/{dir}/{}-{i}.conf", rng.pick(WORDS)),
                    Style::Ini,
                    0o644,
                    0,
                )
            }
            17 => (
                format!("etc/pve/priv/storage/{}-{i}.pw", rng.pick(WORDS)),
                Style::Shell,
                0o600,
                33,
            ),
            18 => (
                format!(
                    "root/.config/{}/{}-{i}.env",
                    rng.pick(WORDS),
                    rng.pick(WORDS)
                ),
                Style::Shell,
                0o600,
                0,
            ),
            _ => (
                format!("etc/default/{}-{i}", rng.pick(WORDS)),
                Style::Shell,
                0o644,
                0,
            ),
        };
        let mut data = text(&mut rng, style, len);
        data.truncate(len);
        data.push(b'\n');
        t.write(&rel, &data, mode, gid)?;
        t.stats.small_files += 1;
        t.stats.small_bytes += data.len() as u64;
        if rng.chance(0.01) {
            let unit = rng.pick(WORDS);
            t.symlink(
                &format!("etc/systemd/system/multi-user.target.wants/{unit}-{i}.service"),
                &format!("/lib/systemd/system/{unit}-{i}.service"),
            )?;
        }
    }

    // Many tiny files (a home-directory heavy backup), when asked for.
    let mut k = 0u64;
    while entries > 0 && t.stats.files + t.stats.symlinks + t.stats.dirs < entries {
        let rel = if k % 50 == 0 {
            format!(
                "etc/pve/nodes/pve{}/qemu-server/{}.conf",
                1 + k % 3,
                1_000_000 + k
            )
        } else {
            format!("home/user{}/file{:04}.txt", k / 1000, k % 1000)
        };
        if k % 1000 == 0 {
            t.stats.dirs += 1;
        }
        let len = rng.range(16, 400) as usize;
        let data = text(&mut rng, Style::Ini, len);
        t.write(&rel, &data, 0o644, 0)?;
        t.stats.small_files += 1;
        t.stats.small_bytes += data.len() as u64;
        k += 1;
    }

    // The rest in a few large files.
    let rest = size.saturating_sub(t.stats.bytes);
    const MAX_PART: u64 = 48 << 20;
    let parts = |total: u64| -> Vec<u64> {
        let n = total.div_ceil(MAX_PART).max(1);
        (0..n)
            .map(|k| total / n + u64::from(k < total % n))
            .collect()
    };
    // Logs: 40%.
    let mut clock = 1_720_000_000u64;
    for (k, len) in parts(rest * 40 / 100).into_iter().enumerate() {
        let name = if k == 0 {
            "var/log/syslog".to_string()
        } else {
            format!("var/log/syslog.{k}")
        };
        let mut r = Rng::new(seed.wrapping_add(1000 + k as u64));
        t.write_large(&name, len, 0o640, |b| log_line(&mut r, &mut clock, b))?;
    }
    // JSON dumps: 25%.
    for (k, len) in parts(rest * 25 / 100).into_iter().enumerate() {
        let name = format!("var/lib/proxsave-info/commands/pve/cluster_resources-{k}.json");
        let mut r = Rng::new(seed.wrapping_add(2000 + k as u64));
        let mut first = true;
        t.write_large(&name, len, 0o640, |b| {
            if first {
                b.extend_from_slice(b"[\n");
                first = false;
            }
            json_record(&mut r, b)
        })?;
    }
    // config.db: 20%, SQLite-like 4 KiB pages: text records, random, zero.
    let db_len = (rest * 20 / 100).max(1 << 20);
    let mut r = Rng::new(seed.wrapping_add(3000));
    let mut page = vec![0u8; 4096];
    t.write_large("var/lib/pve-cluster/config.db", db_len, 0o600, |b| {
        page.fill(0);
        match r.below(20) {
            0..=11 => {
                let n = r.range(1500, 4000) as usize;
                let txt = text(&mut r, Style::Qemu, n);
                let n = n.min(txt.len());
                page[..n].copy_from_slice(&txt[..n]);
                page[0] = 0x0d;
            }
            12..=16 => r.fill(&mut page),
            _ => {}
        }
        b.extend_from_slice(&page);
    })?;
    // Already-compressed database backups: the remainder (~15%), incompressible.
    let rest_now = size.saturating_sub(t.stats.bytes);
    for (k, len) in parts(rest_now).into_iter().enumerate() {
        if len == 0 {
            continue;
        }
        let name = format!(
            "var/lib/pve-cluster/backup/config-{}.sql.gz",
            1_720_000_000 + k as u64 * 86_400
        );
        let mut r = Rng::new(seed.wrapping_add(4000 + k as u64));
        let mut blk = vec![0u8; 64 << 10];
        t.write_large(&name, len, 0o600, |b| {
            r.fill(&mut blk);
            b.extend_from_slice(&blk);
        })?;
    }
    t.stats.dirs = count_dirs(root)?;
    Ok(t.stats)
}

fn count_dirs(dir: &Path) -> io::Result<u64> {
    let mut n = 1;
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            n += count_dirs(&e.path())?;
        }
    }
    Ok(n)
}

/// The generated inputs of one size and seed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Inputs {
    pub dir: PathBuf,
    pub size: u64,
    pub seed: u64,
    /// The host tree that was archived (the reference for correctness checks).
    pub tree: PathBuf,
    /// age identity file.
    pub identity: PathBuf,
    /// The raw archive `…tar.xz.age` (with `.sha256` and `.metadata` beside it).
    pub archive: PathBuf,
    /// `…tar.xz.age.bundle.tar`.
    pub bundle: PathBuf,
    pub archive_bytes: u64,
    pub bundle_bytes: u64,
    pub stats: TreeStats,
    /// Seconds the generation took (tree, compress+encrypt).
    pub tree_secs: f64,
    pub archive_secs: f64,
}

fn run_ok(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// Returns the cached inputs for (size, seed), generating them first if needed.
pub fn prepare(work: &Path, size: u64, seed: u64, entries: u64) -> Result<Inputs> {
    let tag = if entries > 0 {
        format!("-entries-{entries}")
    } else {
        String::new()
    };
    let dir = work.join("cache").join(format!(
        "size-{size}{tag}-seed-{seed}-gen{GENERATOR_VERSION}"
    ));
    let done = dir.join("inputs.json");
    if let Ok(text) = fs::read_to_string(&done)
        && let Ok(inputs) = serde_json::from_str::<Inputs>(&text)
        && inputs.bundle.exists()
        && inputs.archive.exists()
        && inputs.tree.exists()
    {
        eprintln!("[gen] using cached inputs in {}", dir.display());
        return Ok(inputs);
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing stale {}", dir.display()))?;
    }
    fs::create_dir_all(&dir)?;

    let t0 = Instant::now();
    let tree = dir.join("tree");
    eprintln!(
        "[gen] writing host tree of {} into {}",
        crate::human(size),
        tree.display()
    );
    let stats = generate_tree(&tree, size, seed, entries)?;
    let tree_secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "[gen] {} files ({} small), {} symlinks, {} dirs, {} in {:.1}s",
        stats.files,
        stats.small_files,
        stats.symlinks,
        stats.dirs,
        crate::human(stats.bytes),
        tree_secs
    );

    let identity = dir.join("key.txt");
    run_ok(Command::new("age-keygen").arg("-o").arg(&identity))?;
    let recipient =
        String::from_utf8(run_ok(Command::new("age-keygen").arg("-y").arg(&identity))?)?
            .trim()
            .to_string();

    let name = format!("{HOSTNAME}-backup-{STAMP}.tar.xz.age");
    let raw_dir = dir.join("raw");
    fs::create_dir_all(&raw_dir)?;
    let archive = raw_dir.join(&name);
    let t1 = Instant::now();
    eprintln!(
        "[gen] tar --format=pax | xz -6 -T0 | age -r … > {} (slow: xz at -6)",
        archive.display()
    );
    {
        let out = File::create(&archive)?;
        let mut tar = Command::new("tar")
            .args(["--format=pax", "-C"])
            .arg(&tree)
            .args(["-cf", "-", "."])
            .stdout(Stdio::piped())
            .spawn()
            .context("spawning tar")?;
        let mut xz = Command::new("xz")
            .args(["-6", "-T0"])
            .stdin(tar.stdout.take().expect("tar stdout"))
            .stdout(Stdio::piped())
            .spawn()
            .context("spawning xz")?;
        let mut age = Command::new("age")
            .arg("-r")
            .arg(&recipient)
            .stdin(xz.stdout.take().expect("xz stdout"))
            .stdout(out)
            .spawn()
            .context("spawning age")?;
        for (what, child) in [("tar", &mut tar), ("xz", &mut xz), ("age", &mut age)] {
            let st = child.wait()?;
            if !st.success() {
                bail!("{what} failed while making the archive: {st}");
            }
        }
    }
    let archive_secs = t1.elapsed().as_secs_f64();
    let archive_bytes = fs::metadata(&archive)?.len();
    eprintln!(
        "[gen] archive {} ({:.1}% of the tree) in {:.1}s",
        crate::human(archive_bytes),
        100.0 * archive_bytes as f64 / stats.bytes.max(1) as f64,
        archive_secs
    );

    let sum = String::from_utf8(run_ok(Command::new("sha256sum").arg(&archive))?)?;
    let sha256 = sum
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    fs::write(
        raw_dir.join(format!("{name}.sha256")),
        format!("{sha256}  {name}\n"),
    )?;
    let manifest = format!(
        "{{\n  \"archive_path\": \"/opt/proxsave/backup/{name}\",\n  \"archive_size\": {archive_bytes},\n  \"sha256\": \"{sha256}\",\n  \"created_at\": \"2026-07-24T02:30:00.512345678+02:00\",\n  \"compression_type\": \"xz\",\n  \"compression_level\": 6,\n  \"compression_mode\": \"standard\",\n  \"proxmox_type\": \"pve\",\n  \"proxmox_targets\": [\n    \"pve\"\n  ],\n  \"proxmox_version\": \"8.4.1\",\n  \"pve_version\": \"8.4.1\",\n  \"hostname\": \"{HOSTNAME}\",\n  \"script_version\": \"0.30.0\",\n  \"encryption_mode\": \"age\",\n  \"cluster_mode\": \"cluster\"\n}}"
    );
    fs::write(raw_dir.join(format!("{name}.metadata")), manifest)?;
    let bundle = dir.join(format!("{name}.bundle.tar"));
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&raw_dir)
            .arg("-cf")
            .arg(&bundle)
            .arg(format!("{name}.metadata"))
            .arg(format!("{name}.sha256"))
            .arg(&name),
    )?;
    let bundle_bytes = fs::metadata(&bundle)?.len();

    let inputs = Inputs {
        dir: dir.clone(),
        size,
        seed,
        tree,
        identity,
        archive,
        bundle,
        archive_bytes,
        bundle_bytes,
        stats,
        tree_secs,
        archive_secs,
    };
    fs::write(&done, serde_json::to_string_pretty(&inputs)?)?;
    Ok(inputs)
}

/// Reads every input once so that the timed runs start from the same (warm) page cache.
pub fn warm_up(inputs: &Inputs, proxsave: &Path) -> Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    for p in [
        &inputs.bundle,
        &inputs.archive,
        &inputs.identity,
        &proxsave.to_path_buf(),
    ] {
        let mut f = File::open(p).with_context(|| format!("reading {}", p.display()))?;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    Ok(total)
}
