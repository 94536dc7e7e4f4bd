//! Realistic host trees: the target root a restore writes into, and the source host a backup
//! was made of.
//!
//! * [`HostRoot`] builds a temporary `/` laid out like an installed host *before* the restore:
//!   the markers host detection looks at (`etc/pve`, `usr/sbin/qm`, `etc/proxmox-backup`,
//!   `usr/sbin/proxmox-backup-proxy`, …) and the everyday configuration a restore overwrites,
//!   with real modes, owners (`www-data` = 33 for `/etc/pve`, `backup` = 34 for PBS) and fixed
//!   nanosecond times counted from [`TARGET_TIME_BASE`], so snapshots are stable and untouched
//!   files are told from restored ones.
//! * [`HostTree::pbs_node`], [`HostTree::dual_node`], [`HostTree::pve_cluster_node`] and
//!   [`HostTree::pve_standalone_node`] build the *source* side (what the backup contains), with a
//!   few entries for every category family so every restore mode has something to do, the
//!   `backup_metadata.txt` the restore reads, and one deduplicated file as upstream stores it.
//! * [`make_host_backup`] turns such a tree into a `.bundle.tar` whose manifest agrees with it.
//!
//! Owners are applied only when the tests run as root (see [`crate::fixture::set_owner`]).
//!
//! ```no_run
//! use proxsave_testkit::fixture::{BackupSpec, HostTree};
//! use proxsave_testkit::hosts::{HostKind, HostRoot, host_spec, make_host_backup};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let source = HostTree::pbs_node(dir.path().join("src"));
//! let bundle = make_host_backup(&source, &host_spec(&source));
//! let target = HostRoot::pbs(dir.path().join("root"));
//! assert_eq!(HostKind::detect(target.root()), HostKind::Pbs);
//! # let _ = bundle;
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use crate::fixture::{
    BackupSpec, HostTree, MadeBackup, gnu_tar_pax, make_backup, pseudo_random, snapshot,
};

/// uid/gid of `root`.
pub const ROOT: (u32, u32) = (0, 0);
/// gid of `www-data` on Debian; `/etc/pve` is `root:www-data`.
pub const WWW_DATA_GID: u32 = 33;
/// uid and gid of `backup` on Debian; PBS runs as this user.
pub const BACKUP_ID: u32 = 34;
/// gid of `shadow` on Debian.
pub const SHADOW_GID: u32 = 42;
/// gid of `crontab` on the fixture hosts (dynamically allocated on Debian).
pub const CRONTAB_GID: u32 = 101;
/// Time base of [`HostRoot`] entries (2023-07-22): older than any backup made with
/// [`HostTree::new`].
pub const TARGET_TIME_BASE: i64 = 1_690_000_000;
/// PVE version the fixture hosts run.
pub const PVE_VERSION: &str = "8.4.1";
/// PBS version the fixture hosts run.
pub const PBS_VERSION: &str = "3.4.2";

const PVE: (u32, u32) = (0, WWW_DATA_GID);
const ROOT_BACKUP: (u32, u32) = (0, BACKUP_ID);
const BACKUP: (u32, u32) = (BACKUP_ID, BACKUP_ID);

/// What a host is, as restore host detection sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    /// Proxmox VE.
    Pve,
    /// Proxmox Backup Server.
    Pbs,
    /// Both on one machine.
    Dual,
    /// Neither (plain Debian).
    Plain,
}

impl HostKind {
    /// True for PVE and dual.
    pub fn has_pve(self) -> bool {
        matches!(self, HostKind::Pve | HostKind::Dual)
    }

    /// True for PBS and dual.
    pub fn has_pbs(self) -> bool {
        matches!(self, HostKind::Pbs | HostKind::Dual)
    }

    /// The backup type name: `pve`, `pbs`, `dual`, `unknown`.
    pub fn type_name(self) -> &'static str {
        match self {
            HostKind::Pve => "pve",
            HostKind::Pbs => "pbs",
            HostKind::Dual => "dual",
            HostKind::Plain => "unknown",
        }
    }

    /// Detects the kind of the host rooted at `root` by the restore engine's rule (an
    /// independent implementation, for checking fixtures): PVE if `etc/pve`, `usr/bin/qm`,
    /// `usr/sbin/qm`, `usr/bin/pct` or `usr/sbin/pct` exists; PBS if `etc/proxmox-backup` or
    /// `usr/sbin/proxmox-backup-proxy` exists; both ⇒ dual.
    pub fn detect(root: &Path) -> HostKind {
        let exists = |rel: &str| root.join(rel).symlink_metadata().is_ok();
        let pve = [
            "etc/pve",
            "usr/bin/qm",
            "usr/sbin/qm",
            "usr/bin/pct",
            "usr/sbin/pct",
        ]
        .iter()
        .any(|p| exists(p));
        let pbs = ["etc/proxmox-backup", "usr/sbin/proxmox-backup-proxy"]
            .iter()
            .any(|p| exists(p));
        match (pve, pbs) {
            (true, true) => HostKind::Dual,
            (true, false) => HostKind::Pve,
            (false, true) => HostKind::Pbs,
            (false, false) => HostKind::Plain,
        }
    }
}

/// A temporary target root laid out like an installed host, before a restore.
pub struct HostRoot {
    /// What it is.
    pub kind: HostKind,
    /// Short host name (`etc/hostname`).
    pub hostname: String,
    tree: HostTree,
}

impl HostRoot {
    /// A freshly installed PVE node `pve1` (standalone): `etc/pve` as pmxcfs shows it
    /// (`root:www-data`, files 0640, `priv/` 0700/0600, `.version`/`.members`/`.vmlist`, the
    /// `local`/`qemu-server`/`lxc` links), default `storage.cfg`, `usr/sbin/{qm,pct}`,
    /// `usr/bin/{pvesh,pveversion}`, `var/lib/pve-cluster/config.db`, `etc/vzdump.conf`, and
    /// `root/.ssh/authorized_keys` as the absolute link to `/etc/pve/priv/authorized_keys`
    /// that PVE makes. Network: `vmbr0` on `eno1` with 192.0.2.99/24 (the backups use .10).
    pub fn pve(dir: impl Into<PathBuf>) -> HostRoot {
        HostRoot::build(dir.into(), HostKind::Pve)
    }

    /// A freshly installed PBS `pbs1`: `etc/proxmox-backup` (`backup:backup` 0700; configs
    /// `root:backup` 0640; keys 0600) with a `datastore.cfg` naming one datastore that exists
    /// (`mnt/datastore/store1` with `.chunks` and `.lock`), `usr/sbin/proxmox-backup-{proxy,
    /// manager}`, `var/lib/proxmox-backup`. Network: `ens18` with 192.0.2.98/24.
    pub fn pbs(dir: impl Into<PathBuf>) -> HostRoot {
        HostRoot::build(dir.into(), HostKind::Pbs)
    }

    /// PVE and PBS on one machine (`pve1`, as [`HostTree::dual_node`]): everything of
    /// [`HostRoot::pve`] and [`HostRoot::pbs`].
    pub fn dual(dir: impl Into<PathBuf>) -> HostRoot {
        HostRoot::build(dir.into(), HostKind::Dual)
    }

    /// Debian without Proxmox (`debian1`, DHCP on `ens18`): no detection marker at all.
    pub fn plain(dir: impl Into<PathBuf>) -> HostRoot {
        HostRoot::build(dir.into(), HostKind::Plain)
    }

    fn build(root: PathBuf, kind: HostKind) -> HostRoot {
        let hostname = match kind {
            HostKind::Pve | HostKind::Dual => "pve1",
            HostKind::Pbs => "pbs1",
            HostKind::Plain => "debian1",
        };
        let mut t = HostTree::with_time_base(root, TARGET_TIME_BASE);
        let interfaces = match kind {
            HostKind::Pve | HostKind::Dual => {
                "auto lo\niface lo inet loopback\n\niface eno1 inet manual\n\nauto vmbr0\niface vmbr0 inet static\n\taddress 192.0.2.99/24\n\tgateway 192.0.2.1\n\tbridge-ports eno1\n\tbridge-stp off\n\tbridge-fd 0\n\nsource /etc/network/interfaces.d/*\n"
            }
            HostKind::Pbs => {
                "auto lo\niface lo inet loopback\n\nauto ens18\niface ens18 inet static\n\taddress 192.0.2.98/24\n\tgateway 192.0.2.1\n\nsource /etc/network/interfaces.d/*\n"
            }
            HostKind::Plain => {
                "# This file describes the network interfaces available on your system\n# and how to activate them. For more information, see interfaces(5).\n\nsource /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\nallow-hotplug ens18\niface ens18 inet dhcp\n"
            }
        };
        let ip = match kind {
            HostKind::Pve | HostKind::Dual => "192.0.2.99",
            HostKind::Pbs => "192.0.2.98",
            HostKind::Plain => "127.0.1.1",
        };
        target_base(&mut t, hostname, ip, interfaces, kind);
        if kind.has_pve() {
            target_pve(&mut t, hostname);
        }
        if kind.has_pbs() {
            target_pbs(&mut t);
        }
        t.settle_dirs();
        HostRoot {
            kind,
            hostname: hostname.to_string(),
            tree: t,
        }
    }

    /// The root folder (the restore's `--root`).
    pub fn root(&self) -> &Path {
        &self.tree.root
    }

    /// `rel` (e.g. `etc/hosts`) inside the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.tree.root.join(rel.trim_start_matches('/'))
    }

    /// The file `rel` as text (panics when missing).
    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// The builder, to add more entries (call [`HostTree::settle_dirs`] afterwards to fix
    /// directory times again).
    pub fn tree_mut(&mut self) -> &mut HostTree {
        &mut self.tree
    }

    /// [`snapshot`] of the root.
    pub fn snapshot(&self) -> Vec<String> {
        snapshot(&self.tree.root)
    }
}

fn target_base(t: &mut HostTree, hostname: &str, ip: &str, interfaces: &str, kind: HostKind) {
    let mut passwd = String::from(PASSWD_BASE);
    let mut group = String::from(GROUP_BASE);
    if kind.has_pve() {
        passwd.push_str("postfix:x:106:113::/var/spool/postfix:/usr/sbin/nologin\n");
        group.push_str("postfix:x:113:\npostdrop:x:114:\n");
    }
    let hosts = format!(
        "127.0.0.1 localhost.localdomain localhost\n{ip} {hostname}.example.lan {hostname}\n\n# The following lines are desirable for IPv6 capable hosts\n::1     ip6-localhost ip6-loopback\nfe00::0 ip6-localnet\nff00::0 ip6-mcastprefix\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\nff02::3 ip6-allhosts\n"
    );
    let fstab = if kind.has_pve() {
        "# <file system> <mount point> <type> <options> <dump> <pass>\n/dev/pve/root / ext4 errors=remount-ro 0 1\nUUID=7A3B-1C2D /boot/efi vfat defaults 0 1\n/dev/pve/swap none swap sw 0 0\nproc /proc proc defaults 0 0\n"
    } else {
        "# /etc/fstab: static file system information.\n# <file system> <mount point>   <type>  <options>       <dump>  <pass>\nUUID=3f1c1e9a-5d43-4c1b-9a53-0c2a8b7d6e21 /               ext4    errors=remount-ro 0       1\nUUID=9b8d6e3c-7a21-4f0e-8c5d-2e4f6a8b0c13 none            swap    sw              0       0\n"
    };
    t.dir("etc", 0o755, ROOT)
        .dir("root", 0o700, ROOT)
        .dir("tmp", 0o1777, ROOT)
        .dir("var/tmp", 0o1777, ROOT)
        .dir("etc/network/interfaces.d", 0o755, ROOT)
        .file("etc/hostname", format!("{hostname}\n").as_bytes(), 0o644, ROOT)
        .file("etc/hosts", hosts.as_bytes(), 0o644, ROOT)
        .file("etc/network/interfaces", interfaces.as_bytes(), 0o644, ROOT)
        .file(
            "run/systemd/resolve/stub-resolv.conf",
            b"# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.lan\n",
            0o644,
            ROOT,
        )
        .symlink("etc/resolv.conf", "../run/systemd/resolve/stub-resolv.conf")
        .file("etc/fstab", fstab.as_bytes(), 0o644, ROOT)
        .file("etc/timezone", b"Etc/UTC\n", 0o644, ROOT)
        .symlink("etc/localtime", "/usr/share/zoneinfo/Etc/UTC")
        .file(
            "usr/lib/os-release",
            b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n",
            0o644,
            ROOT,
        )
        .symlink("etc/os-release", "../usr/lib/os-release")
        .file("etc/ssh/sshd_config", SSHD_CONFIG_DEBIAN, 0o644, ROOT)
        .dir("etc/ssh/sshd_config.d", 0o755, ROOT)
        .file(
            "etc/ssh/ssh_host_ed25519_key",
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nVGFyZ2V0SG9zdEtleQ==\n-----END OPENSSH PRIVATE KEY-----\n",
            0o600,
            ROOT,
        )
        .file(
            "etc/ssh/ssh_host_ed25519_key.pub",
            format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITargetHostKey root@{hostname}\n").as_bytes(),
            0o644,
            ROOT,
        )
        .dir("root/.ssh", 0o700, ROOT)
        .file(
            "root/.bashrc",
            b"# ~/.bashrc: executed by bash(1) for non-login shells.\nexport LS_OPTIONS='--color=auto'\n",
            0o644,
            ROOT,
        )
        .file("etc/passwd", passwd.as_bytes(), 0o644, ROOT)
        .file("etc/group", group.as_bytes(), 0o644, ROOT)
        .file(
            "etc/shadow",
            b"root:$y$j9T$TargetSalt$TargetHashTargetHashTargetHashTargetHash0:19950:0:99999:7:::\ndaemon:*:19950:0:99999:7:::\nwww-data:*:19950:0:99999:7:::\nbackup:*:19950:0:99999:7:::\nnobody:*:19950:0:99999:7:::\n",
            0o640,
            (0, SHADOW_GID),
        )
        .file(
            "etc/gshadow",
            b"root:*::\nshadow:*::\nwww-data:*::\nbackup:*::\n",
            0o640,
            (0, SHADOW_GID),
        )
        .file(
            "etc/sudoers",
            b"Defaults\tenv_reset\nDefaults\tmail_badpass\nroot\tALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n",
            0o440,
            ROOT,
        )
        .file(
            "etc/default/grub",
            b"GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"\"\n",
            0o644,
            ROOT,
        )
        .file(
            "etc/crontab",
            b"SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly\n",
            0o644,
            ROOT,
        )
        .dir("var/spool/cron/crontabs", 0o1730, (0, CRONTAB_GID))
        .file(
            "etc/apt/sources.list.d/debian.sources",
            b"Types: deb\nURIs: http://deb.debian.org/debian/\nSuites: bookworm bookworm-updates\nComponents: main contrib non-free-firmware\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
            0o644,
            ROOT,
        );
    if !kind.has_pve() {
        t.file(
            "root/.ssh/authorized_keys",
            b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIInstallerKey installer@example.lan\n",
            0o600,
            ROOT,
        );
    }
}

fn target_pve(t: &mut HostTree, node: &str) {
    let pve_version = "{\n\"starttime\": 1690000100,\n\"clinfo\": 1,\n\"vmlist\": 1,\n\"qemu-server\": 0,\n\"lxc\": 0,\n\"storage.cfg\": 1,\n\"user.cfg\": 1,\n\"version\": 4\n}\n";
    let members = format!("{{\n\"nodename\": \"{node}\",\n\"version\": 0\n}}\n");
    t.dir("etc/pve", 0o755, PVE)
        .dir("etc/pve/priv", 0o700, PVE)
        .dir(&format!("etc/pve/nodes/{node}/qemu-server"), 0o755, PVE)
        .dir(&format!("etc/pve/nodes/{node}/lxc"), 0o755, PVE)
        .dir(&format!("etc/pve/nodes/{node}/priv"), 0o700, PVE)
        .file("etc/pve/.version", pve_version.as_bytes(), 0o440, PVE)
        .file("etc/pve/.members", members.as_bytes(), 0o440, PVE)
        .file(
            "etc/pve/.vmlist",
            b"{\n\"version\": 1,\n\"ids\": {\n}\n\n}\n",
            0o440,
            PVE,
        )
        .file(
            "etc/pve/storage.cfg",
            b"dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\nlvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n\tcontent rootdir,images\n",
            0o640,
            PVE,
        )
        .file(
            "etc/pve/user.cfg",
            b"user:root@pam:1:0:::root@localhost:::\n",
            0o640,
            PVE,
        )
        .file(
            "etc/pve/authkey.pub",
            b"1690000100:\n-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEATargetAuthKey\n-----END PUBLIC KEY-----\n",
            0o640,
            PVE,
        )
        .file(
            "etc/pve/pve-root-ca.pem",
            b"-----BEGIN CERTIFICATE-----\nMIIFzTCCA7WgAwIBAgIUTargetRootCA\n-----END CERTIFICATE-----\n",
            0o640,
            PVE,
        )
        .file(
            "etc/pve/priv/authkey.key",
            b"-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEATargetAuthKey\n-----END RSA PRIVATE KEY-----\n",
            0o600,
            PVE,
        )
        .file(
            "etc/pve/priv/pve-root-ca.key",
            b"-----BEGIN RSA PRIVATE KEY-----\nMIIJKQIBAAKCAgEATargetRootCA\n-----END RSA PRIVATE KEY-----\n",
            0o600,
            PVE,
        )
        .file(
            "etc/pve/priv/authorized_keys",
            format!("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQTargetNodeKey root@{node}\n").as_bytes(),
            0o600,
            PVE,
        )
        .file(
            &format!("etc/pve/nodes/{node}/pve-ssl.pem"),
            b"-----BEGIN CERTIFICATE-----\nMIIGBTCCA+2gAwIBAgIBATargetNodeCert\n-----END CERTIFICATE-----\n",
            0o640,
            PVE,
        )
        .file(
            &format!("etc/pve/nodes/{node}/pve-ssl.key"),
            b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCTargetNodeKey\n-----END PRIVATE KEY-----\n",
            0o640,
            PVE,
        )
        .symlink("etc/pve/local", &format!("nodes/{node}"))
        .symlink("etc/pve/qemu-server", &format!("nodes/{node}/qemu-server"))
        .symlink("etc/pve/lxc", &format!("nodes/{node}/lxc"))
        .symlink("root/.ssh/authorized_keys", "/etc/pve/priv/authorized_keys")
        .file(
            "root/.ssh/id_rsa",
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUTargetRootKey\n-----END OPENSSH PRIVATE KEY-----\n",
            0o600,
            ROOT,
        )
        .file(
            "root/.ssh/id_rsa.pub",
            format!("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQTargetNodeKey root@{node}\n")
                .as_bytes(),
            0o644,
            ROOT,
        )
        .dir("var/lib/pve-cluster", 0o755, ROOT)
        .file(
            "var/lib/pve-cluster/config.db",
            &crate::fixture::pmxcfs_config_db(&[
                ("storage.cfg", b"dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\n"),
                (&format!("nodes/{node}/lrm_status"), &pseudo_random(24 * 1024, 11)),
            ]),
            0o600,
            ROOT,
        )
        .file(
            "etc/vzdump.conf",
            b"# vzdump default settings\n\n#tmpdir: DIR\n#dumpdir: DIR\n#storage: STORAGE_ID\n#mode: snapshot|suspend|stop\n#bwlimit: KBPS\n#ionice: PRI\n",
            0o644,
            ROOT,
        )
        .dir("var/lib/vz/dump", 0o755, ROOT)
        .dir("var/lib/vz/images", 0o755, ROOT)
        .dir("var/lib/vz/template/iso", 0o755, ROOT)
        .dir("var/lib/vz/template/cache", 0o755, ROOT)
        .file(
            "etc/apt/sources.list.d/pve-enterprise.list",
            b"deb https://enterprise.proxmox.com/debian/pve bookworm pve-enterprise\n",
            0o644,
            ROOT,
        );
    for (path, module) in [
        ("usr/sbin/qm", "qm"),
        ("usr/sbin/pct", "pct"),
        ("usr/bin/pvesh", "pvesh"),
        ("usr/bin/pveversion", "pveversion"),
    ] {
        let script = format!(
            "#!/usr/bin/perl -T\n\nuse strict;\nuse warnings;\n\nuse PVE::CLI::{module};\n\nPVE::CLI::{module}->run_cli_handler();\n"
        );
        t.file(path, script.as_bytes(), 0o755, ROOT);
    }
}

fn target_pbs(t: &mut HostTree) {
    t.dir("etc/proxmox-backup", 0o700, BACKUP)
        .file(
            "etc/proxmox-backup/datastore.cfg",
            b"datastore: store1\n\tcomment Datastore of the fresh install\n\tgc-schedule daily\n\tpath /mnt/datastore/store1\n",
            0o640,
            ROOT_BACKUP,
        )
        .file(
            "etc/proxmox-backup/user.cfg",
            b"user: root@pam\n\tcomment Superuser\n\temail root@localhost\n\tenable true\n\texpire 0\n",
            0o640,
            ROOT_BACKUP,
        )
        .file("etc/proxmox-backup/acl.cfg", b"", 0o640, ROOT_BACKUP)
        .file(
            "etc/proxmox-backup/domains.cfg",
            b"pam: pam\n\tcomment Linux PAM standard authentication\n\npbs: pbs\n\tcomment Proxmox Backup authentication server\n",
            0o640,
            ROOT_BACKUP,
        )
        .file(
            "etc/proxmox-backup/proxy.pem",
            b"-----BEGIN CERTIFICATE-----\nMIIF0TCCA7mgAwIBAgIUTargetProxyCert\n-----END CERTIFICATE-----\n",
            0o640,
            ROOT_BACKUP,
        )
        .file(
            "etc/proxmox-backup/proxy.key",
            b"-----BEGIN PRIVATE KEY-----\nMIIJQgIBADANBgkqhkiG9w0BAQEFAASCTargetProxyKey\n-----END PRIVATE KEY-----\n",
            0o640,
            ROOT_BACKUP,
        )
        .file(
            "etc/proxmox-backup/authkey.key",
            b"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEATargetPbsAuthKey\n-----END RSA PRIVATE KEY-----\n",
            0o600,
            ROOT,
        )
        .file(
            "etc/proxmox-backup/authkey.pub",
            b"-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCTargetPbsAuthKey\n-----END PUBLIC KEY-----\n",
            0o640,
            ROOT_BACKUP,
        )
        .file(
            "etc/proxmox-backup/csrf.key",
            b"-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEATargetCsrfKey\n-----END RSA PRIVATE KEY-----\n",
            0o600,
            ROOT,
        )
        .file(
            "usr/sbin/proxmox-backup-proxy",
            b"#!/bin/sh\n# stand-in for the PBS proxy daemon of a test host\nexit 0\n",
            0o755,
            ROOT,
        )
        .file(
            "usr/sbin/proxmox-backup-manager",
            b"#!/bin/sh\n# stand-in for the PBS manager CLI of a test host\nexit 0\n",
            0o755,
            ROOT,
        )
        .dir("var/lib/proxmox-backup", 0o755, BACKUP)
        .dir("mnt/datastore/store1/.chunks", 0o750, BACKUP)
        .dir("mnt/datastore/store1", 0o750, BACKUP)
        .file("mnt/datastore/store1/.lock", b"", 0o644, BACKUP)
        .file(
            "etc/apt/sources.list.d/pbs-enterprise.list",
            b"deb https://enterprise.proxmox.com/debian/pbs bookworm pbs-enterprise\n",
            0o644,
            ROOT,
        );
}

const SSHD_CONFIG_DEBIAN: &[u8] = b"Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\nAcceptEnv LANG LC_*\nSubsystem\tsftp\t/usr/lib/openssh/sftp-server\n";

const PASSWD_BASE: &str = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nbin:x:2:2:bin:/bin:/usr/sbin/nologin\nsys:x:3:3:sys:/dev:/usr/sbin/nologin\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nbackup:x:34:34:backup:/var/backups:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n";

const GROUP_BASE: &str = "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nwww-data:x:33:\nbackup:x:34:\nshadow:x:42:\nsudo:x:27:\ncrontab:x:101:\nnogroup:x:65534:\n";

// ---------------------------------------------------------------------------------------------
// Backup side: source hosts.

/// The metadata keys a source tree's `backup_metadata.txt` carries.
struct Meta<'a> {
    backup_type: &'a str,
    targets: &'a str,
    hostname: &'a str,
    pve: bool,
    pbs: bool,
    cluster_mode: Option<&'a str>,
}

fn metadata(m: &Meta<'_>) -> String {
    let mut s = format!(
        "# ProxSave Metadata\n# This file enables selective restore functionality in newer restore scripts\nVERSION=0.30.0\nBACKUP_TYPE={}\nBACKUP_TARGETS={}\nTIMESTAMP=2026-07-24 02:30:00.512345678 +0200 CEST m=+0.012345678\nHOSTNAME={}\n",
        m.backup_type, m.targets, m.hostname
    );
    if m.pve {
        s.push_str(&format!("PVE_VERSION={PVE_VERSION}\n"));
    }
    if m.pbs {
        s.push_str(&format!("PBS_VERSION={PBS_VERSION}\n"));
    }
    if let Some(mode) = m.cluster_mode {
        s.push_str(&format!("PVE_CLUSTER_MODE={mode}\n"));
    }
    s.push_str("SUPPORTS_SELECTIVE_RESTORE=true\nBACKUP_FEATURES=selective_restore,category_mapping,version_detection,auto_directory_creation\n");
    s
}

/// The one deduplicated file of every sample tree: `usr/local/sbin/x` was identical to
/// `usr/local/bin/x` (earlier in walk order) and is stored as the relative link `../bin/x`.
pub const DEDUP_MANIFEST: &str = r#"[{"path":"usr/local/sbin/x","mode":493,"uid":0,"gid":0}]"#;

impl HostTree {
    /// A PVE cluster node `pve1` of cluster `prod` (with `pve2`): [`HostTree::pve_node`] plus
    /// corosync (`etc/corosync/{corosync.conf,authkey}`, `etc/pve/corosync.conf`), HA,
    /// firewall, jobs, notifications, `etc/vzdump.conf`, the PVE info commands and the common
    /// category samples (see [`HostTree::add_common_samples`]).
    pub fn pve_cluster_node(root: impl Into<PathBuf>) -> HostTree {
        let mut t = HostTree::pve_node(root);
        add_pve_samples(&mut t, true);
        t.add_common_samples();
        t.file(
            "var/lib/proxsave-info/backup_metadata.txt",
            metadata(&Meta {
                backup_type: "pve",
                targets: "pve",
                hostname: "pve1.example.lan",
                pve: true,
                pbs: false,
                cluster_mode: Some("cluster"),
            })
            .as_bytes(),
            0o640,
            ROOT,
        );
        t.settle_dirs();
        t
    }

    /// A standalone PVE node `pve1`: [`HostTree::pve_node`] whose metadata says
    /// `PVE_CLUSTER_MODE=standalone`, plus the PVE samples of a node without corosync
    /// (`etc/corosync/` holds only an empty `uidgid.d/`, as on a real standalone node; no HA)
    /// and the common category samples. Like upstream, it still carries
    /// `var/lib/pve-cluster/config.db`.
    pub fn pve_standalone_node(root: impl Into<PathBuf>) -> HostTree {
        let mut t = HostTree::pve_node(root);
        add_pve_samples(&mut t, false);
        t.add_common_samples();
        t.file(
            "var/lib/proxsave-info/backup_metadata.txt",
            metadata(&Meta {
                backup_type: "pve",
                targets: "pve",
                hostname: "pve1.example.lan",
                pve: true,
                pbs: false,
                cluster_mode: Some("standalone"),
            })
            .as_bytes(),
            0o640,
            ROOT,
        );
        t.settle_dirs();
        t
    }

    /// A PBS `pbs1`: `etc/proxmox-backup/` (datastores `store1` at `/mnt/datastore/store1` and
    /// `offsite-usb` at `/media/usb-pbs/offsite`, users, ACL, realms, remote `pbs-b`, sync,
    /// verify and prune jobs, node and maintenance settings, notifications, proxy certificate
    /// and key), `var/lib/proxmox-backup/{.clusterlock,lock/x}`, network (`ens18`,
    /// 192.0.2.20/24), hosts, SSH, `backup_metadata.txt` with `BACKUP_TYPE=pbs`, samples of
    /// `var/lib/proxsave-info/commands/pbs/*.json`, and the common category samples.
    pub fn pbs_node(root: impl Into<PathBuf>) -> HostTree {
        let mut t = HostTree::new(root);
        add_system_basics(
            &mut t,
            "pbs1",
            "auto lo\niface lo inet loopback\n\nauto ens18\niface ens18 inet static\n\taddress 192.0.2.20/24\n\tgateway 192.0.2.1\n",
            "192.0.2.20",
        );
        add_pbs_samples(&mut t);
        t.add_common_samples();
        t.file(
            "var/lib/proxsave-info/backup_metadata.txt",
            metadata(&Meta {
                backup_type: "pbs",
                targets: "pbs",
                hostname: "pbs1.example.lan",
                pve: false,
                pbs: true,
                cluster_mode: None,
            })
            .as_bytes(),
            0o640,
            ROOT,
        );
        t.settle_dirs();
        t
    }

    /// PVE and PBS on one standalone machine `pve1`: [`HostTree::pve_node`], the standalone
    /// PVE samples, the PBS samples of [`HostTree::pbs_node`], the common samples, and
    /// metadata `BACKUP_TYPE=dual`, `BACKUP_TARGETS=pve,pbs`,
    /// `PVE_CLUSTER_MODE=standalone`.
    pub fn dual_node(root: impl Into<PathBuf>) -> HostTree {
        let mut t = HostTree::pve_node(root);
        add_pve_samples(&mut t, false);
        add_pbs_samples(&mut t);
        t.add_common_samples();
        t.file(
            "var/lib/proxsave-info/backup_metadata.txt",
            metadata(&Meta {
                backup_type: "dual",
                targets: "pve,pbs",
                hostname: "pve1.example.lan",
                pve: true,
                pbs: true,
                cluster_mode: Some("standalone"),
            })
            .as_bytes(),
            0o640,
            ROOT,
        );
        t.settle_dirs();
        t
    }

    /// Adds a few entries of every common category family, so every restore mode has
    /// something to restore: `etc/fstab` (filesystem), `etc/lvm/backup/pve` (storage stack),
    /// `etc/resolv.conf` (network), `etc/ssl/certs/x.pem` (ssl), `usr/local/bin/x` (scripts),
    /// `etc/cron.d/x` and `var/spool/cron/crontabs/root` (crontabs),
    /// `etc/systemd/system/x.service` with its `multi-user.target.wants` link and
    /// `etc/default/grub` (services), `etc/passwd`/`group`/`shadow`/`gshadow`/`sudoers`
    /// (accounts), `root/.bashrc` (user data), `etc/zfs/zpool.cache` and `etc/hostid` (zfs),
    /// and one deduplicated file: `usr/local/sbin/x` → `../bin/x` recorded in
    /// `var/lib/proxsave-info/dedup_manifest.json` as [`DEDUP_MANIFEST`]. Call
    /// [`HostTree::settle_dirs`] afterwards.
    pub fn add_common_samples(&mut self) -> &mut Self {
        self.file(
            "etc/fstab",
            b"# <file system> <mount point> <type> <options> <dump> <pass>\n/dev/pve/root / ext4 errors=remount-ro 0 1\nUUID=7A3B-1C2D /boot/efi vfat defaults 0 1\n/dev/pve/swap none swap sw 0 0\nUUID=0b7f6a57-3c39-4d59-9a25-5d9a4a7c2f10 /mnt/backup ext4 defaults,nofail 0 2\nproc /proc proc defaults 0 0\n",
            0o644,
            ROOT,
        )
        .file(
            "etc/lvm/backup/pve",
            b"# Generated by LVM2 version 2.03.16(2) (2022-05-18): Wed Jul 24 02:00:00 2026\n\ncontents = \"Text Format Volume Group\"\nversion = 1\n\npve {\n\tid = \"0aB1cD-2eF3-gH4i-5jK6-lM7n-8oP9-qR0sTu\"\n\tseqno = 7\n\tformat = \"lvm2\"\n}\n",
            0o600,
            ROOT,
        )
        .file(
            "etc/resolv.conf",
            b"search example.lan\nnameserver 192.0.2.1\nnameserver 9.9.9.9\n",
            0o644,
            ROOT,
        )
        .file(
            "etc/ssl/certs/x.pem",
            b"-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\nRTESMBAGA1UEChMJQmFsdGltb3JlMRMwEQYDVQQLEwpDeWJlclRydXN0MSIwIAYD\n-----END CERTIFICATE-----\n",
            0o644,
            ROOT,
        )
        .file(
            "usr/local/bin/x",
            b"#!/bin/sh\n# nightly housekeeping\nfind /var/tmp -mindepth 1 -mtime +30 -delete\n",
            0o755,
            ROOT,
        )
        .symlink("usr/local/sbin/x", "../bin/x")
        .file(
            "etc/cron.d/x",
            b"# m h dom mon dow user command\n17 3 * * * root /usr/local/bin/x >/dev/null 2>&1\n",
            0o644,
            ROOT,
        )
        .dir("var/spool/cron/crontabs", 0o1730, (0, CRONTAB_GID))
        .file(
            "var/spool/cron/crontabs/root",
            b"# DO NOT EDIT THIS FILE - edit the master and reinstall.\n30 2 * * * /usr/local/bin/proxsave >/dev/null 2>&1\n",
            0o600,
            (0, CRONTAB_GID),
        )
        .file(
            "etc/systemd/system/x.service",
            b"[Unit]\nDescription=Local housekeeping\nAfter=network-online.target\n\n[Service]\nType=oneshot\nExecStart=/usr/local/bin/x\n\n[Install]\nWantedBy=multi-user.target\n",
            0o644,
            ROOT,
        )
        .symlink(
            "etc/systemd/system/multi-user.target.wants/x.service",
            "/etc/systemd/system/x.service",
        )
        .file(
            "etc/default/grub",
            b"GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on\"\nGRUB_CMDLINE_LINUX=\"\"\n",
            0o644,
            ROOT,
        )
        .file(
            "etc/passwd",
            format!("{PASSWD_BASE}alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n").as_bytes(),
            0o644,
            ROOT,
        )
        .file(
            "etc/group",
            format!("{GROUP_BASE}alice:x:1000:\n").as_bytes(),
            0o644,
            ROOT,
        )
        .file(
            "etc/shadow",
            b"root:$y$j9T$SourceSalt$SourceHashSourceHashSourceHashSourceHash0:20000:0:99999:7:::\ndaemon:*:19950:0:99999:7:::\nwww-data:*:19950:0:99999:7:::\nbackup:*:19950:0:99999:7:::\nnobody:*:19950:0:99999:7:::\nalice:$y$j9T$AliceSalt$AliceHashAliceHashAliceHashAliceHashAlic0:20000:0:99999:7:::\n",
            0o640,
            (0, SHADOW_GID),
        )
        .file(
            "etc/gshadow",
            b"root:*::\nshadow:*::\nwww-data:*::\nbackup:*::\nalice:!::\n",
            0o640,
            (0, SHADOW_GID),
        )
        .file(
            "etc/sudoers",
            b"Defaults\tenv_reset\nDefaults\tmail_badpass\nroot\tALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\nalice\tALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n",
            0o440,
            ROOT,
        )
        .file(
            "root/.bashrc",
            b"# ~/.bashrc: executed by bash(1) for non-login shells.\nexport LS_OPTIONS='--color=auto'\nalias ll='ls $LS_OPTIONS -l'\n",
            0o644,
            ROOT,
        )
        .file("etc/zfs/zpool.cache", &pseudo_random(2048, 31), 0o644, ROOT)
        .file("etc/hostid", &[0x2a, 0x8f, 0x0c, 0x1d], 0o644, ROOT)
        .file(
            "var/lib/proxsave-info/dedup_manifest.json",
            DEDUP_MANIFEST.as_bytes(),
            0o640,
            ROOT,
        )
    }
}

/// Network, hosts and SSH of a node not built on [`HostTree::pve_node`].
fn add_system_basics(t: &mut HostTree, short: &str, interfaces: &str, ip: &str) {
    t.dir("etc", 0o755, ROOT)
        .file("etc/network/interfaces", interfaces.as_bytes(), 0o644, ROOT)
        .file(
            "etc/hosts",
            format!("127.0.0.1 localhost\n{ip} {short}.example.lan {short}\n").as_bytes(),
            0o644,
            ROOT,
        )
        .file("etc/hostname", format!("{short}\n").as_bytes(), 0o644, ROOT)
        .symlink("etc/localtime", "/usr/share/zoneinfo/Europe/Rome")
        .file(
            "etc/ssh/sshd_config",
            b"PermitRootLogin prohibit-password\nPasswordAuthentication no\n",
            0o644,
            ROOT,
        )
        .file(
            "etc/ssh/ssh_host_ed25519_key",
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUSourcePbsKey\n-----END OPENSSH PRIVATE KEY-----\n",
            0o600,
            ROOT,
        )
        .dir("root/.ssh", 0o700, ROOT)
        .file(
            "root/.ssh/authorized_keys",
            b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB admin@laptop\n",
            0o600,
            ROOT,
        );
}

fn add_pve_samples(t: &mut HostTree, cluster: bool) {
    t.file(
        "etc/vzdump.conf",
        b"# vzdump default settings\n\ntmpdir: /var/tmp\nbwlimit: 200000\nionice: 7\nmailnotification: failure\nmailto: root@example.lan\n",
        0o644,
        ROOT,
    )
    .file(
        "etc/pve/jobs.cfg",
        b"vzdump: backup-7c0e1b62-1f0a\n\tschedule 02:30\n\tall 1\n\tcompress zstd\n\tenabled 1\n\tmailnotification always\n\tmode snapshot\n\tnotes-template {{guestname}}\n\tstorage local\n",
        0o640,
        PVE,
    )
    .file(
        "etc/pve/notifications.cfg",
        b"sendmail: mail-to-root\n\tcomment Send mails to root@pam's email address\n\tmailto-user root@pam\n\nmatcher: default-matcher\n\tcomment Route all notifications to mail-to-root\n\tmode all\n\ttarget mail-to-root\n",
        0o640,
        PVE,
    )
    .file(
        "etc/pve/domains.cfg",
        b"pam: pam\n\tcomment Linux PAM standard authentication\n\npve: pve\n\tcomment Proxmox VE authentication server\n",
        0o640,
        PVE,
    )
    .file(
        "etc/pve/priv/tfa.cfg",
        b"{\"users\":{}}\n",
        0o600,
        PVE,
    )
    .file(
        "etc/pve/firewall/cluster.fw",
        b"[OPTIONS]\n\nenable: 0\n\n[RULES]\n\nIN SSH(ACCEPT) -source 192.0.2.0/24 -log nolog\n",
        0o640,
        PVE,
    )
    .file(
        "etc/pve/nodes/pve1/host.fw",
        b"[OPTIONS]\n\nenable: 1\n",
        0o640,
        PVE,
    )
    .file("etc/pve/sdn/zones.cfg", b"simple: lab\n\tipam pve\n", 0o640, PVE)
    .file("etc/pve/sdn/vnets.cfg", b"vnet: labnet\n\tzone lab\n", 0o640, PVE)
    .file(
        "var/lib/pve-cluster/info/pve_version.txt",
        b"pve-manager/8.4.1/2a5fa54a8503f96d (running kernel: 6.8.12-9-pve)\n",
        0o644,
        ROOT,
    )
    .file(
        "var/lib/proxsave-info/commands/pve/pveversion.txt",
        b"proxmox-ve: 8.4.0 (running kernel: 6.8.12-9-pve)\npve-manager: 8.4.1 (running version: 8.4.1/2a5fa54a8503f96d)\n",
        0o640,
        ROOT,
    )
    .file(
        "var/lib/proxsave-info/commands/pve/api_version.json",
        b"{\"release\":\"8.4\",\"repoid\":\"2a5fa54a8503f96d\",\"version\":\"8.4.1\"}",
        0o640,
        ROOT,
    );
    if cluster {
        let corosync = b"logging {\n  debug: off\n  to_syslog: yes\n}\n\nnodelist {\n  node {\n    name: pve1\n    nodeid: 1\n    quorum_votes: 1\n    ring0_addr: 192.0.2.10\n  }\n  node {\n    name: pve2\n    nodeid: 2\n    quorum_votes: 1\n    ring0_addr: 192.0.2.11\n  }\n}\n\nquorum {\n  provider: corosync_votequorum\n}\n\ntotem {\n  cluster_name: prod\n  config_version: 2\n  interface {\n    linknumber: 0\n  }\n  ip_version: ipv4-6\n  link_mode: passive\n  secauth: on\n  version: 2\n}\n";
        t.file("etc/corosync/corosync.conf", corosync, 0o644, ROOT)
            .file("etc/corosync/authkey", &pseudo_random(256, 5), 0o400, ROOT)
            .file("etc/pve/corosync.conf", corosync, 0o640, PVE)
            .file(
                "etc/pve/ceph.conf",
                b"[global]\n\tauth_client_required = cephx\n\tauth_cluster_required = cephx\n\tauth_service_required = cephx\n\tcluster_network = 192.0.2.10/24\n\tfsid = 3c5e8a8e-7f2b-4d1a-9c6e-0b1d2e3f4a5b\n\tmon_allow_pool_delete = true\n\tmon_host = 192.0.2.10 192.0.2.11\n\tpublic_network = 192.0.2.10/24\n",
                0o640,
                PVE,
            )
            .symlink("etc/ceph/ceph.conf", "/etc/pve/ceph.conf")
            .file(
                "etc/pve/ha/resources.cfg",
                b"vm: 100\n\tstate started\n",
                0o640,
                PVE,
            )
            .file(
                "etc/pve/nodes/pve2/qemu-server/101.conf",
                b"boot: order=scsi0\ncores: 2\nmemory: 4096\nname: db01\n",
                0o640,
                PVE,
            )
            .file(
                "var/lib/proxsave-info/commands/pve/cluster_status.txt",
                b"Cluster information\n-------------------\nName:             prod\nConfig Version:   2\nTransport:        knet\nSecure auth:      on\n",
                0o640,
                ROOT,
            );
    } else {
        t.dir("etc/corosync/uidgid.d", 0o755, ROOT);
    }
}

fn add_pbs_samples(t: &mut HostTree) {
    let cfg = |t: &mut HostTree, name: &str, content: &str| {
        t.file(
            &format!("etc/proxmox-backup/{name}"),
            content.as_bytes(),
            0o640,
            ROOT_BACKUP,
        );
    };
    t.dir("etc/proxmox-backup", 0o700, BACKUP);
    cfg(
        t,
        "datastore.cfg",
        "datastore: store1\n\tcomment Main backup store\n\tgc-schedule daily\n\tnotification-mode notification-system\n\tpath /mnt/datastore/store1\n\ndatastore: offsite-usb\n\tkeep-daily 7\n\tmaintenance-mode type=offline\n\tpath /media/usb-pbs/offsite\n",
    );
    cfg(
        t,
        "user.cfg",
        "user: root@pam\n\tcomment Superuser\n\temail root@example.lan\n\tenable true\n\texpire 0\n\nuser: sync@pbs\n\tcomment Pull from pbs-b\n\tenable true\n\texpire 0\n\ntoken: root@pam!ci\n\tcomment CI uploads\n\tenable true\n\texpire 0\n",
    );
    cfg(
        t,
        "acl.cfg",
        "acl:1:/:root@pam!ci:Admin\nacl:1:/datastore/store1:sync@pbs:DatastoreBackup\n",
    );
    cfg(
        t,
        "domains.cfg",
        "pam: pam\n\tcomment Linux PAM standard authentication\n\npbs: pbs\n\tcomment Proxmox Backup authentication server\n",
    );
    cfg(
        t,
        "remote.cfg",
        "remote: pbs-b\n\tauth-id sync@pbs\n\tfingerprint aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99\n\thost 10.0.0.20\n\tpassword c2VjcmV0\n",
    );
    cfg(
        t,
        "sync.cfg",
        "sync: pull-b\n\tremote pbs-b\n\tremote-store store1\n\tschedule hourly\n\tstore store1\n\tgroup-filter type:vm\n\tgroup-filter group:vm/100\n",
    );
    cfg(
        t,
        "verification.cfg",
        "verification: v-store1\n\tignore-verified true\n\toutdated-after 30\n\tschedule daily\n\tstore store1\n",
    );
    cfg(
        t,
        "prune.cfg",
        "prune: p-store1\n\tkeep-daily 7\n\tkeep-weekly 4\n\tkeep-monthly 6\n\tschedule daily\n\tstore store1\n",
    );
    cfg(
        t,
        "node.cfg",
        "email-from: pbs1@example.lan\ndefault-lang: en\ntask-log-max-days: 30\n",
    );
    cfg(
        t,
        "maintenance.cfg",
        "maintenance: store1-window\n\tcomment Disk replacement on Sundays\n",
    );
    cfg(
        t,
        "notifications.cfg",
        "sendmail: mail-to-root\n\tcomment Send mails to root@pam's email address\n\tmailto-user root@pam\n\nmatcher: default-matcher\n\tcomment Route all notifications to mail-to-root\n\tmode all\n\ttarget mail-to-root\n",
    );
    cfg(
        t,
        "tape.cfg",
        "lto: drive0\n\tpath /dev/tape/by-id/scsi-35000e11167c4b0d1-sg\n",
    );
    cfg(
        t,
        "media-pool.cfg",
        "pool: weekly\n\tallocation weekly\n\tretention 4 weeks\n",
    );
    cfg(
        t,
        "proxy.pem",
        "-----BEGIN CERTIFICATE-----\nMIIF0TCCA7mgAwIBAgIUSourceProxyCert\n-----END CERTIFICATE-----\n",
    );
    cfg(
        t,
        "proxy.key",
        "-----BEGIN PRIVATE KEY-----\nMIIJQgIBADANBgkqhkiG9w0BAQEFAASCSourceProxyKey\n-----END PRIVATE KEY-----\n",
    );
    t.file(
        "etc/proxmox-backup/authkey.key",
        b"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEASourcePbsAuthKey\n-----END RSA PRIVATE KEY-----\n",
        0o600,
        ROOT,
    )
    .dir("var/lib/proxmox-backup", 0o755, BACKUP)
    .file("var/lib/proxmox-backup/.clusterlock", b"", 0o660, BACKUP)
    .dir("var/lib/proxmox-backup/lock", 0o755, BACKUP)
    .file("var/lib/proxmox-backup/lock/x", b"", 0o660, BACKUP);
    let commands: &[(&str, &str)] = &[
        (
            "pbs_version.txt",
            "proxmox-backup-server 3.4.2-1 running version: 3.4.2\n",
        ),
        (
            "datastore_list.json",
            r#"[{"comment":"Main backup store","name":"store1","path":"/mnt/datastore/store1"},{"name":"offsite-usb","path":"/media/usb-pbs/offsite"}]"#,
        ),
        (
            "datastore_store1_status.json",
            r#"{"avail":750000000000,"counts":{"vm":{"groups":3,"snapshots":42}},"gc-status":{"disk-chunks":81234,"removed-bytes":0},"total":1000000000000,"used":250000000000}"#,
        ),
        (
            "sync_jobs.json",
            r#"[{"group-filter":["type:vm","group:vm/100"],"id":"pull-b","remote":"pbs-b","remote-store":"store1","schedule":"hourly","store":"store1"}]"#,
        ),
        (
            "verification_jobs.json",
            r#"[{"id":"v-store1","ignore-verified":true,"outdated-after":30,"schedule":"daily","store":"store1"}]"#,
        ),
        (
            "prune_jobs.json",
            r#"[{"id":"p-store1","keep-daily":7,"keep-monthly":6,"keep-weekly":4,"schedule":"daily","store":"store1"}]"#,
        ),
        (
            "remote_list.json",
            r#"[{"auth-id":"sync@pbs","fingerprint":"aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99","host":"10.0.0.20","name":"pbs-b"}]"#,
        ),
        (
            "user_list.json",
            r#"[{"comment":"Superuser","email":"root@example.lan","enable":true,"expire":0,"userid":"root@pam"},{"comment":"Pull from pbs-b","enable":true,"expire":0,"userid":"sync@pbs"}]"#,
        ),
        (
            "acl_list.json",
            r#"[{"path":"/","propagate":true,"roleid":"Admin","ugid":"root@pam!ci","ugid_type":"user"},{"path":"/datastore/store1","propagate":true,"roleid":"DatastoreBackup","ugid":"sync@pbs","ugid_type":"user"}]"#,
        ),
        (
            "node_config.json",
            r#"{"default-lang":"en","email-from":"pbs1@example.lan","task-log-max-days":30}"#,
        ),
        (
            "pbs_datastore_inventory.json",
            r#"{"datastores":[{"name":"store1","origin":"merged","path":"/mnt/datastore/store1","path_is_dir":true,"path_ok":true},{"name":"offsite-usb","origin":"merged","path":"/media/usb-pbs/offsite","path_is_dir":true,"path_ok":true}],"generated_at":"2026-07-24T00:30:01Z","hostname":"pbs1.example.lan","pbs_config_path":"/etc/proxmox-backup"}"#,
        ),
    ];
    for (name, content) in commands {
        t.file(
            &format!("var/lib/proxsave-info/commands/pbs/{name}"),
            content.as_bytes(),
            0o640,
            ROOT,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Backups of source trees.

/// `KEY=VALUE` pairs of the tree's `var/lib/proxsave-info/backup_metadata.txt` (empty when
/// the tree has none).
pub fn tree_metadata(tree: &HostTree) -> Vec<(String, String)> {
    let text = fs::read_to_string(tree.root.join("var/lib/proxsave-info/backup_metadata.txt"))
        .unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn meta_value(meta: &[(String, String)], key: &str) -> Option<String> {
    meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// A [`BackupSpec`] consistent with `tree`: `hostname` and `proxmox_type` from its
/// `backup_metadata.txt` (`HOSTNAME`, `BACKUP_TYPE`), the rest [`BackupSpec::default`].
pub fn host_spec(tree: &HostTree) -> BackupSpec {
    let meta = tree_metadata(tree);
    let mut spec = BackupSpec::default();
    if let Some(h) = meta_value(&meta, "HOSTNAME") {
        spec.hostname = h;
    }
    if let Some(t) = meta_value(&meta, "BACKUP_TYPE") {
        spec.proxmox_type = t;
    }
    spec
}

/// [`make_backup`] of `tree` with a manifest that describes the host as upstream would:
/// `proxmox_targets`, `proxmox_version`, `pve_version`/`pbs_version` follow
/// `spec.proxmox_type` (`pve`, `pbs` or `dual`; other types are left as `make_backup`
/// writes them), and `cluster_mode` comes from the tree's `PVE_CLUSTER_MODE` (omitted for
/// PBS-only backups, as upstream does). The archive and its checksum are untouched.
pub fn host_backup(tree: &HostTree, spec: &BackupSpec) -> MadeBackup {
    let mut made = make_backup(&gnu_tar_pax(&tree.root), spec);
    let ty = spec.proxmox_type.as_str();
    let versions = match ty {
        "pve" => Some(format!(
            "\"proxmox_targets\": [\n    \"pve\"\n  ],\n  \"proxmox_version\": \"{PVE_VERSION}\",\n  \"pve_version\": \"{PVE_VERSION}\",\n"
        )),
        "pbs" => Some(format!(
            "\"proxmox_targets\": [\n    \"pbs\"\n  ],\n  \"proxmox_version\": \"{PBS_VERSION}\",\n  \"pbs_version\": \"{PBS_VERSION}\",\n"
        )),
        "dual" => Some(format!(
            "\"proxmox_targets\": [\n    \"pve\",\n    \"pbs\"\n  ],\n  \"proxmox_version\": \"pve={PVE_VERSION},pbs={PBS_VERSION}\",\n  \"pve_version\": \"{PVE_VERSION}\",\n  \"pbs_version\": \"{PBS_VERSION}\",\n"
        )),
        _ => None,
    };
    if let Some(versions) = versions {
        let written = format!(
            "\"proxmox_targets\": [\n    \"{ty}\"\n  ],\n  \"proxmox_version\": \"8.4.1\",\n  \"pve_version\": \"8.4.1\",\n"
        );
        assert!(
            made.manifest.contains(&written),
            "make_backup's manifest layout changed:\n{}",
            made.manifest
        );
        made.manifest = made.manifest.replace(&written, &versions);
        let cluster = ",\n  \"cluster_mode\": \"cluster\"";
        assert!(made.manifest.contains(cluster), "no cluster_mode written");
        let mode = meta_value(&tree_metadata(tree), "PVE_CLUSTER_MODE")
            .unwrap_or_else(|| "cluster".to_string());
        let replacement = if ty == "pbs" {
            String::new()
        } else {
            format!(",\n  \"cluster_mode\": \"{mode}\"")
        };
        made.manifest = made.manifest.replace(cluster, &replacement);
    }
    made
}

/// Makes a backup of `tree` ([`host_backup`]) and writes its `.bundle.tar` next to the tree
/// (into the tree root's parent folder). Returns the bundle path.
pub fn make_host_backup(tree: &HostTree, spec: &BackupSpec) -> PathBuf {
    let dir = tree
        .root
        .parent()
        .expect("tree root has a parent folder")
        .to_path_buf();
    make_host_backup_in(tree, spec, &dir)
}

/// Like [`make_host_backup`], writing the bundle into `dir`.
pub fn make_host_backup_in(tree: &HostTree, spec: &BackupSpec, dir: &Path) -> PathBuf {
    host_backup(tree, spec).write_bundle(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{Compressor, is_root};
    use crate::run;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::process::Command;

    fn mode(root: &Path, rel: &str) -> u32 {
        root.join(rel)
            .symlink_metadata()
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .permissions()
            .mode()
            & 0o7777
    }

    fn owner(root: &Path, rel: &str) -> (u32, u32) {
        let m = root.join(rel).symlink_metadata().expect("exists");
        (m.uid(), m.gid())
    }

    fn assert_file(root: &Path, rel: &str, want_mode: u32, want_owner: (u32, u32)) {
        let meta = root
            .join(rel)
            .symlink_metadata()
            .unwrap_or_else(|e| panic!("{rel} missing: {e}"));
        assert!(meta.is_file() || meta.is_dir(), "{rel} is not a file/dir");
        assert_eq!(mode(root, rel), want_mode, "mode of {rel}");
        if is_root() {
            assert_eq!(owner(root, rel), want_owner, "owner of {rel}");
        }
    }

    fn link(root: &Path, rel: &str) -> String {
        fs::read_link(root.join(rel))
            .unwrap_or_else(|e| panic!("{rel} not a link: {e}"))
            .to_string_lossy()
            .into_owned()
    }

    /// Every path of a tree, relative, no `./`.
    fn entries(root: &Path) -> Vec<String> {
        let out = run(Command::new("find")
            .args([".", "-mindepth", "1", "-printf", "%P\\n"])
            .current_dir(root))
        .stdout;
        let mut v: Vec<String> = String::from_utf8_lossy(&out)
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    }

    /// Category patterns from restore-engine.md §1 (subset sufficient to show coverage; `D`
    /// patterns end with `/`).
    const CATEGORIES: &[(&str, &[&str])] = &[
        ("pve_config_export", &["etc/pve/"]),
        ("pve_cluster", &["var/lib/pve-cluster/"]),
        (
            "storage_pve",
            &[
                "etc/pve/storage.cfg",
                "etc/pve/datacenter.cfg",
                "etc/vzdump.conf",
            ],
        ),
        ("pve_jobs", &["etc/pve/jobs.cfg", "etc/pve/vzdump.cron"]),
        ("pve_notifications", &["etc/pve/notifications.cfg"]),
        (
            "pve_access_control",
            &[
                "etc/pve/user.cfg",
                "etc/pve/domains.cfg",
                "etc/pve/priv/tfa.cfg",
            ],
        ),
        (
            "pve_firewall",
            &["etc/pve/firewall/", "etc/pve/nodes/pve1/host.fw"],
        ),
        ("pve_ha", &["etc/pve/ha/resources.cfg"]),
        ("pve_sdn", &["etc/pve/sdn/", "etc/pve/sdn.cfg"]),
        ("corosync", &["etc/corosync/"]),
        ("ceph", &["etc/ceph/"]),
        ("pbs_config", &["etc/proxmox-backup/"]),
        (
            "pbs_host",
            &[
                "etc/proxmox-backup/node.cfg",
                "var/lib/proxsave-info/commands/pbs/node_config.json",
            ],
        ),
        (
            "datastore_pbs",
            &[
                "etc/proxmox-backup/datastore.cfg",
                "var/lib/proxsave-info/commands/pbs/datastore_list.json",
            ],
        ),
        ("maintenance_pbs", &["etc/proxmox-backup/maintenance.cfg"]),
        (
            "pbs_jobs",
            &[
                "etc/proxmox-backup/sync.cfg",
                "etc/proxmox-backup/verification.cfg",
                "etc/proxmox-backup/prune.cfg",
            ],
        ),
        ("pbs_remotes", &["etc/proxmox-backup/remote.cfg"]),
        (
            "pbs_notifications",
            &["etc/proxmox-backup/notifications.cfg"],
        ),
        (
            "pbs_tape",
            &[
                "etc/proxmox-backup/tape.cfg",
                "etc/proxmox-backup/media-pool.cfg",
            ],
        ),
        (
            "pbs_access_control",
            &[
                "etc/proxmox-backup/user.cfg",
                "etc/proxmox-backup/acl.cfg",
                "etc/proxmox-backup/domains.cfg",
            ],
        ),
        ("filesystem", &["etc/fstab"]),
        (
            "storage_stack",
            &["etc/lvm/backup/", "etc/crypttab", "etc/mdadm/"],
        ),
        (
            "network",
            &[
                "etc/network/",
                "etc/hosts",
                "etc/hostname",
                "etc/resolv.conf",
            ],
        ),
        (
            "ssl",
            &[
                "etc/ssl/",
                "etc/proxmox-backup/proxy.pem",
                "etc/proxmox-backup/proxy.key",
            ],
        ),
        ("ssh", &["root/.ssh/", "etc/ssh/"]),
        ("scripts", &["usr/local/bin/", "usr/local/sbin/"]),
        (
            "crontabs",
            &["etc/cron.d/", "etc/crontab", "var/spool/cron/"],
        ),
        ("services", &["etc/systemd/system/", "etc/default/"]),
        (
            "accounts",
            &[
                "etc/passwd",
                "etc/group",
                "etc/shadow",
                "etc/gshadow",
                "etc/sudoers",
            ],
        ),
        ("user_data", &["root/", "home/"]),
        ("zfs", &["etc/zfs/", "etc/hostid"]),
        ("proxsave_info", &["var/lib/proxsave-info/"]),
    ];

    const COMMON: &[&str] = &[
        "filesystem",
        "storage_stack",
        "network",
        "ssl",
        "ssh",
        "scripts",
        "crontabs",
        "services",
        "accounts",
        "user_data",
        "zfs",
        "proxsave_info",
    ];
    const PVE_CATS: &[&str] = &[
        "pve_config_export",
        "pve_cluster",
        "storage_pve",
        "pve_jobs",
        "pve_notifications",
        "pve_access_control",
        "pve_firewall",
        "pve_sdn",
        "corosync",
    ];
    const PBS_CATS: &[&str] = &[
        "pbs_config",
        "pbs_host",
        "datastore_pbs",
        "maintenance_pbs",
        "pbs_jobs",
        "pbs_remotes",
        "pbs_notifications",
        "pbs_access_control",
        "pbs_tape",
    ];

    fn available(paths: &[String]) -> Vec<&'static str> {
        CATEGORIES
            .iter()
            .filter(|(_, pats)| {
                pats.iter().any(|p| match p.strip_suffix('/') {
                    Some(dir) => paths
                        .iter()
                        .any(|e| e == dir || e.starts_with(&format!("{dir}/"))),
                    None => paths.iter().any(|e| e == p),
                })
            })
            .map(|(id, _)| *id)
            .collect()
    }

    fn assert_categories(root: &Path, want: &[&[&str]], absent: &[&str]) {
        let got = available(&entries(root));
        for id in want.iter().flat_map(|s| s.iter()) {
            assert!(got.contains(id), "category {id} has nothing in {root:?}");
        }
        for id in absent {
            assert!(!got.contains(id), "category {id} unexpectedly present");
        }
    }

    fn meta(tree: &HostTree, key: &str) -> Option<String> {
        meta_value(&tree_metadata(tree), key)
    }

    fn assert_dedup_pair(root: &Path) {
        let manifest: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(root.join("var/lib/proxsave-info/dedup_manifest.json"))
                .expect("dedup manifest"),
        )
        .expect("dedup manifest is JSON");
        let items = manifest.as_array().expect("array");
        assert_eq!(items.len(), 1);
        let path = items[0]["path"].as_str().expect("path");
        let target = link(root, path);
        assert!(!target.starts_with('/'), "dedup link must be relative");
        let canonical = root.join(path).parent().expect("parent").join(&target);
        let meta = fs::metadata(&canonical).expect("canonical exists");
        assert!(meta.is_file());
        assert_eq!(
            items[0]["mode"].as_u64(),
            Some(u64::from(meta.permissions().mode() & 0o7777))
        );
        assert_eq!(items[0]["uid"], 0);
        assert_eq!(items[0]["gid"], 0);
        // Canonical comes first in walk (name) order, as upstream keeps the first copy.
        let canonical_rel = canonical
            .strip_prefix(root)
            .expect("inside")
            .to_string_lossy()
            .replace("/sbin/../bin/", "/bin/");
        assert!(canonical_rel.as_str() < path, "{canonical_rel} vs {path}");
    }

    #[test]
    fn host_roots_are_detected_as_what_they_claim() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (root, kind) in [
            (HostRoot::pve(dir.path().join("pve")), HostKind::Pve),
            (HostRoot::pbs(dir.path().join("pbs")), HostKind::Pbs),
            (HostRoot::dual(dir.path().join("dual")), HostKind::Dual),
            (HostRoot::plain(dir.path().join("plain")), HostKind::Plain),
        ] {
            assert_eq!(root.kind, kind);
            assert_eq!(HostKind::detect(root.root()), kind, "{kind:?}");
            assert_eq!(root.read("etc/hostname"), format!("{}\n", root.hostname));
        }
        assert_eq!(HostKind::Dual.type_name(), "dual");
        assert!(HostKind::Dual.has_pve() && HostKind::Dual.has_pbs());
        assert!(!HostKind::Plain.has_pve() && !HostKind::Plain.has_pbs());
    }

    #[test]
    fn pve_root_has_markers_and_pmxcfs_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = HostRoot::pve(dir.path().join("r"));
        let r = h.root();
        assert_file(r, "etc/pve", 0o755, PVE);
        assert_file(r, "etc/pve/priv", 0o700, PVE);
        assert_file(r, "etc/pve/.version", 0o440, PVE);
        assert!(h.read("etc/pve/.version").contains("\"version\""));
        assert_file(r, "etc/pve/storage.cfg", 0o640, PVE);
        assert_file(r, "etc/pve/priv/authkey.key", 0o600, PVE);
        assert_file(r, "usr/sbin/qm", 0o755, ROOT);
        assert_file(r, "usr/sbin/pct", 0o755, ROOT);
        assert_file(r, "var/lib/pve-cluster/config.db", 0o600, ROOT);
        assert!(
            fs::read(h.path("var/lib/pve-cluster/config.db"))
                .expect("db")
                .starts_with(b"SQLite format 3\0")
        );
        assert_eq!(link(r, "etc/pve/local"), "nodes/pve1");
        assert_eq!(
            link(r, "root/.ssh/authorized_keys"),
            "/etc/pve/priv/authorized_keys"
        );
        assert_file(r, "root/.ssh", 0o700, ROOT);
        assert!(!r.join("etc/proxmox-backup").exists());
        assert!(!r.join("usr/sbin/proxmox-backup-proxy").exists());
        // The existing network differs from every backup's.
        let interfaces = h.read("etc/network/interfaces");
        assert!(interfaces.contains("192.0.2.99/24"));
        assert!(!interfaces.contains("192.0.2.10/24"));
    }

    #[test]
    fn pbs_root_has_markers_and_backup_ownership() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = HostRoot::pbs(dir.path().join("r"));
        let r = h.root();
        assert_file(r, "etc/proxmox-backup", 0o700, BACKUP);
        assert_file(r, "etc/proxmox-backup/datastore.cfg", 0o640, ROOT_BACKUP);
        assert_file(r, "etc/proxmox-backup/proxy.key", 0o640, ROOT_BACKUP);
        assert_file(r, "etc/proxmox-backup/authkey.key", 0o600, ROOT);
        assert_file(r, "usr/sbin/proxmox-backup-proxy", 0o755, ROOT);
        assert_file(r, "mnt/datastore/store1/.chunks", 0o750, BACKUP);
        assert_file(r, "mnt/datastore/store1/.lock", 0o644, BACKUP);
        assert!(
            h.read("etc/proxmox-backup/datastore.cfg")
                .contains("path /mnt/datastore/store1")
        );
        assert!(!r.join("etc/pve").exists() && !r.join("usr/sbin/qm").exists());
        assert_file(r, "root/.ssh/authorized_keys", 0o600, ROOT);
    }

    #[test]
    fn every_root_has_the_everyday_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        for h in [
            HostRoot::pve(dir.path().join("pve")),
            HostRoot::pbs(dir.path().join("pbs")),
            HostRoot::dual(dir.path().join("dual")),
            HostRoot::plain(dir.path().join("plain")),
        ] {
            let r = h.root();
            for f in [
                "etc/hosts",
                "etc/hostname",
                "etc/network/interfaces",
                "etc/ssh/sshd_config",
                "etc/fstab",
                "etc/passwd",
                "etc/group",
                "etc/default/grub",
            ] {
                assert_file(r, f, 0o644, ROOT);
            }
            assert_file(r, "etc/ssh/ssh_host_ed25519_key", 0o600, ROOT);
            assert_file(r, "etc/shadow", 0o640, (0, SHADOW_GID));
            assert_file(r, "etc/sudoers", 0o440, ROOT);
            assert_file(r, "tmp", 0o1777, ROOT);
            assert_eq!(
                link(r, "etc/resolv.conf"),
                "../run/systemd/resolve/stub-resolv.conf"
            );
            // The link resolves inside the root.
            assert!(
                fs::read_to_string(r.join("etc/resolv.conf"))
                    .expect("resolv.conf resolves")
                    .contains("127.0.0.53")
            );
            assert!(h.read("etc/hosts").contains(&h.hostname));
            assert!(r.join("root/.ssh").is_dir());
        }
    }

    #[test]
    fn host_roots_are_deterministic_and_older_than_backups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = HostRoot::dual(dir.path().join("a"));
        let b = HostRoot::dual(dir.path().join("b"));
        assert_eq!(a.snapshot(), b.snapshot());
        // Nanosecond mtimes, all before any backup-side time.
        let m = a.path("etc/hosts").symlink_metadata().expect("hosts");
        assert!(m.mtime() < crate::fixture::BACKUP_TIME_BASE);
        assert!(m.mtime() >= TARGET_TIME_BASE);
        assert_ne!(m.mtime_nsec(), 0);
    }

    #[test]
    fn tree_mut_adds_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut h = HostRoot::plain(dir.path().join("r"));
        h.tree_mut()
            .file("etc/motd", b"hello\n", 0o644, ROOT)
            .settle_dirs();
        assert_eq!(h.read("/etc/motd"), "hello\n");
        assert_eq!(HostKind::detect(h.root()), HostKind::Plain);
    }

    #[test]
    fn pbs_node_has_every_family_and_pbs_metadata() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = HostTree::pbs_node(dir.path().join("src"));
        let r = &t.root;
        for f in [
            "datastore.cfg",
            "user.cfg",
            "acl.cfg",
            "domains.cfg",
            "remote.cfg",
            "sync.cfg",
            "verification.cfg",
            "prune.cfg",
            "node.cfg",
            "maintenance.cfg",
            "proxy.pem",
            "proxy.key",
        ] {
            assert_file(r, &format!("etc/proxmox-backup/{f}"), 0o640, ROOT_BACKUP);
        }
        assert_file(r, "etc/proxmox-backup", 0o700, BACKUP);
        assert_file(r, "var/lib/proxmox-backup/.clusterlock", 0o660, BACKUP);
        assert_file(r, "var/lib/proxmox-backup/lock/x", 0o660, BACKUP);
        assert_eq!(meta(&t, "BACKUP_TYPE").as_deref(), Some("pbs"));
        assert_eq!(meta(&t, "HOSTNAME").as_deref(), Some("pbs1.example.lan"));
        assert_eq!(meta(&t, "PVE_CLUSTER_MODE"), None);
        for e in entries(r).iter().filter(|e| {
            e.starts_with("var/lib/proxsave-info/commands/pbs/") && e.ends_with(".json")
        }) {
            let text = fs::read_to_string(r.join(e)).expect("read");
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|err| panic!("{e} is not JSON: {err}"));
        }
        assert_categories(r, &[COMMON, PBS_CATS], PVE_CATS);
        assert_eq!(HostKind::detect(r), HostKind::Pbs);
        assert_dedup_pair(r);
    }

    #[test]
    fn pve_variants_have_every_family_and_their_cluster_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster = HostTree::pve_cluster_node(dir.path().join("c"));
        let standalone = HostTree::pve_standalone_node(dir.path().join("s"));
        assert_eq!(
            meta(&cluster, "PVE_CLUSTER_MODE").as_deref(),
            Some("cluster")
        );
        assert_eq!(
            meta(&standalone, "PVE_CLUSTER_MODE").as_deref(),
            Some("standalone")
        );
        for t in [&cluster, &standalone] {
            assert_eq!(meta(t, "BACKUP_TYPE").as_deref(), Some("pve"));
            assert_categories(&t.root, &[COMMON, PVE_CATS], PBS_CATS);
            assert_dedup_pair(&t.root);
            // Everything pve_node has is still there, unchanged in kind.
            assert_eq!(link(&t.root, "etc/pve/local"), "nodes/pve1");
            assert_file(&t.root, "usr/local/bin/pve-helper", 0o4755, ROOT);
            assert_file(&t.root, "etc/pve/jobs.cfg", 0o640, PVE);
            assert_file(&t.root, "etc/zfs/zpool.cache", 0o644, ROOT);
            assert_file(
                &t.root,
                "var/spool/cron/crontabs/root",
                0o600,
                (0, CRONTAB_GID),
            );
        }
        assert_file(&cluster.root, "etc/corosync/corosync.conf", 0o644, ROOT);
        assert_file(&cluster.root, "etc/pve/ha/resources.cfg", 0o640, PVE);
        assert_categories(&cluster.root, &[&["pve_ha", "ceph"]], &[]);
        assert_categories(&standalone.root, &[], &["pve_ha", "ceph"]);
        assert_eq!(
            link(&cluster.root, "etc/ceph/ceph.conf"),
            "/etc/pve/ceph.conf"
        );
        assert!(!standalone.root.join("etc/corosync/corosync.conf").exists());
        assert!(!standalone.root.join("etc/pve/ha").exists());
        assert!(
            standalone
                .root
                .join("var/lib/pve-cluster/config.db")
                .is_file()
        );
    }

    #[test]
    fn pve_node_itself_is_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = HostTree::pve_node(dir.path().join("n"));
        let e = entries(&t.root);
        assert!(
            !e.iter()
                .any(|p| p == "etc/fstab" || p.starts_with("etc/proxmox-backup"))
        );
        assert_eq!(meta(&t, "PVE_CLUSTER_MODE").as_deref(), Some("cluster"));
        assert_eq!(e.len(), 43, "{e:#?}");
    }

    #[test]
    fn dual_node_has_both() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = HostTree::dual_node(dir.path().join("d"));
        assert_eq!(meta(&t, "BACKUP_TYPE").as_deref(), Some("dual"));
        assert_eq!(meta(&t, "BACKUP_TARGETS").as_deref(), Some("pve,pbs"));
        assert_eq!(meta(&t, "PVE_CLUSTER_MODE").as_deref(), Some("standalone"));
        assert_categories(&t.root, &[COMMON, PVE_CATS, PBS_CATS], &[]);
        assert_eq!(HostKind::detect(&t.root), HostKind::Dual);
        assert_dedup_pair(&t.root);
    }

    #[test]
    fn node_trees_are_deterministic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = HostTree::dual_node(dir.path().join("a"));
        let b = HostTree::dual_node(dir.path().join("b"));
        assert_eq!(snapshot(&a.root), snapshot(&b.root));
    }

    fn tar_list(args: &[&str], file: &Path) -> Vec<String> {
        let out = run(Command::new("tar").args(args).arg(file)).stdout;
        String::from_utf8_lossy(&out)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn check_bundle(tree: &HostTree, spec: &BackupSpec, expect_type: &str, cluster: Option<&str>) {
        let out = tempfile::tempdir().expect("tempdir");
        let bundle = make_host_backup_in(tree, spec, out.path());
        let made = host_backup(tree, spec);
        let name = &made.archive_name;
        assert_eq!(
            bundle.file_name().and_then(|n| n.to_str()),
            Some(format!("{name}.bundle.tar").as_str())
        );
        // Upstream member order.
        assert_eq!(
            tar_list(&["-tf"], &bundle),
            [
                format!("{name}.metadata"),
                format!("{name}.sha256"),
                name.clone()
            ]
        );
        run(Command::new("tar")
            .arg("-xf")
            .arg(&bundle)
            .arg("-C")
            .arg(out.path()));
        let archive = out.path().join(name);
        // The manifest is JSON describing the host, and its checksum is the archive's.
        let manifest: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(out.path().join(format!("{name}.metadata"))).expect("metadata"),
        )
        .expect("manifest is JSON");
        let data = fs::read(&archive).expect("archive");
        assert_eq!(manifest["sha256"], crate::fixture::sha256sum(&data));
        assert_eq!(manifest["archive_size"], data.len());
        assert_eq!(manifest["proxmox_type"], expect_type);
        assert_eq!(manifest["hostname"], spec.hostname.as_str());
        let targets: Vec<&str> = manifest["proxmox_targets"]
            .as_array()
            .expect("targets")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        let want_targets: Vec<&str> = match expect_type {
            "dual" => vec!["pve", "pbs"],
            t => vec![t],
        };
        assert_eq!(targets, want_targets);
        assert_eq!(manifest["cluster_mode"].as_str(), cluster);
        assert_eq!(
            manifest["pbs_version"].as_str(),
            (expect_type != "pve").then_some(PBS_VERSION)
        );
        assert_eq!(
            manifest["pve_version"].as_str(),
            (expect_type != "pbs").then_some(PVE_VERSION)
        );
        let sha_line = fs::read_to_string(out.path().join(format!("{name}.sha256"))).expect("sha");
        assert_eq!(
            sha_line,
            format!("{}  {name}\n", manifest["sha256"].as_str().expect("s"))
        );
        // GNU tar reads the archive and sees the whole tree, `./`-prefixed.
        let mut got: Vec<String> = tar_list(&["-tJf"], &archive)
            .into_iter()
            .map(|l| l.trim_end_matches('/').to_string())
            .collect();
        got.sort();
        let mut want: Vec<String> = entries(&tree.root)
            .into_iter()
            .map(|e| format!("./{e}"))
            .chain(std::iter::once(".".to_string()))
            .collect();
        want.sort();
        assert_eq!(got, want);
        assert!(got.contains(&"./var/lib/proxsave-info/backup_metadata.txt".to_string()));
        assert!(got.contains(&"./var/lib/proxsave-info/dedup_manifest.json".to_string()));
        // Extracted by GNU tar, the archive is the tree, byte for byte.
        let x = out.path().join("x");
        fs::create_dir(&x).expect("mkdir");
        run(Command::new("tar")
            .args(["--numeric-owner", "-xJpf"])
            .arg(&archive)
            .arg("-C")
            .arg(&x));
        assert_eq!(snapshot(&x), snapshot(&tree.root));
    }

    #[test]
    fn bundles_of_every_node_tree_are_sound() {
        crate::require_tools!("tar", "xz", "sha256sum");
        let dir = tempfile::tempdir().expect("tempdir");
        let pbs = HostTree::pbs_node(dir.path().join("pbs"));
        let spec = host_spec(&pbs);
        assert_eq!(spec.hostname, "pbs1.example.lan");
        assert_eq!(spec.proxmox_type, "pbs");
        check_bundle(&pbs, &spec, "pbs", None);

        let dual = HostTree::dual_node(dir.path().join("dual"));
        check_bundle(&dual, &host_spec(&dual), "dual", Some("standalone"));

        let standalone = HostTree::pve_standalone_node(dir.path().join("s"));
        check_bundle(
            &standalone,
            &host_spec(&standalone),
            "pve",
            Some("standalone"),
        );

        let cluster = HostTree::pve_cluster_node(dir.path().join("c"));
        check_bundle(&cluster, &host_spec(&cluster), "pve", Some("cluster"));
    }

    #[test]
    fn make_host_backup_writes_next_to_the_tree_with_any_compressor() {
        crate::require_tools!("tar", "zstd", "sha256sum");
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = HostTree::pbs_node(dir.path().join("pbs"));
        let spec = BackupSpec {
            compressor: Compressor::Zstd,
            ..host_spec(&tree)
        };
        let bundle = make_host_backup(&tree, &spec);
        assert_eq!(bundle.parent(), Some(dir.path()));
        assert!(
            bundle
                .to_string_lossy()
                .ends_with("pbs1.example.lan-backup-20260724-023000.tar.zst.bundle.tar")
        );
        assert_eq!(tar_list(&["-tf"], &bundle).len(), 3);
    }

    #[test]
    fn spec_type_is_respected_even_against_the_tree() {
        crate::require_tools!("tar", "xz", "sha256sum");
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = HostTree::pbs_node(dir.path().join("pbs"));
        // A deliberately inconsistent backup: PBS content, PVE manifest.
        let made = host_backup(&tree, &BackupSpec::default());
        let manifest: serde_json::Value = serde_json::from_str(&made.manifest).expect("json");
        assert_eq!(manifest["proxmox_type"], "pve");
        // The tree has no PVE_CLUSTER_MODE: upstream's default is kept.
        assert_eq!(manifest["cluster_mode"], "cluster");
    }
}
