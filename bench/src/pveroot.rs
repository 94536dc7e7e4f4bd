//! The target of the timed restores: a small, realistic PVE root as a freshly installed node
//! `pve1` has it before the restore (the same layout as the test fixture
//! `proxsave_testkit::hosts::HostRoot::pve`, reduced to what a restore looks at or
//! overwrites), built once per benchmark process and copied (`cp -a`, untimed) into a fresh
//! folder before every timed run, for proxsave and for the `tar -x` baseline alike.
//!
//! `/etc/pve` is a plain directory (pmxcfs is not mounted here), so the PVE appliers that
//! need the cluster filesystem skip, and `--host-actions defer` keeps every host command
//! (`pvesh`, `systemctl`, `ifreload`) from running: the restore writes files only.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const WWW_DATA: u32 = 33;
const SHADOW: u32 = 42;

/// Everything the template holds, relative paths (for the check: a restored tree may hold
/// these besides the backup's entries).
pub struct Template {
    pub dir: PathBuf,
    pub paths: BTreeSet<PathBuf>,
}

fn file(
    root: &Path,
    paths: &mut BTreeSet<PathBuf>,
    rel: &str,
    data: &str,
    mode: u32,
    gid: u32,
) -> Result<()> {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(&p, data).with_context(|| format!("writing {}", p.display()))?;
    fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
    if gid != 0 {
        let _ = lchown(&p, Some(0), Some(gid));
    }
    add_with_parents(paths, rel);
    Ok(())
}

fn dir(root: &Path, paths: &mut BTreeSet<PathBuf>, rel: &str, mode: u32, gid: u32) -> Result<()> {
    let p = root.join(rel);
    fs::create_dir_all(&p).with_context(|| format!("mkdir {}", p.display()))?;
    fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
    if gid != 0 {
        let _ = lchown(&p, Some(0), Some(gid));
    }
    add_with_parents(paths, rel);
    Ok(())
}

fn link(root: &Path, paths: &mut BTreeSet<PathBuf>, rel: &str, target: &str) -> Result<()> {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent)?;
    }
    symlink(target, &p).with_context(|| format!("symlink {}", p.display()))?;
    add_with_parents(paths, rel);
    Ok(())
}

fn add_with_parents(paths: &mut BTreeSet<PathBuf>, rel: &str) {
    let mut p = PathBuf::from(rel);
    loop {
        paths.insert(p.clone());
        if !p.pop() || p.as_os_str().is_empty() {
            break;
        }
    }
}

/// Builds the template root in `dir` (which must not exist).
pub fn build(top: &Path) -> Result<Template> {
    let mut paths = BTreeSet::new();
    let ps = &mut paths;
    fs::create_dir_all(top)?;
    let r = top;
    file(r, ps, "etc/hostname", "pve1\n", 0o644, 0)?;
    file(
        r,
        ps,
        "etc/hosts",
        "127.0.0.1 localhost.localdomain localhost\n192.0.2.99 pve1.example.lan pve1\n\n::1     ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n",
        0o644,
        0,
    )?;
    file(
        r,
        ps,
        "etc/network/interfaces",
        "auto lo\niface lo inet loopback\n\niface eno1 inet manual\n\nauto vmbr0\niface vmbr0 inet static\n\taddress 192.0.2.99/24\n\tgateway 192.0.2.1\n\tbridge-ports eno1\n\tbridge-stp off\n\tbridge-fd 0\n\nsource /etc/network/interfaces.d/*\n",
        0o644,
        0,
    )?;
    dir(r, ps, "etc/network/interfaces.d", 0o755, 0)?;
    file(r, ps, "etc/timezone", "Etc/UTC\n", 0o644, 0)?;
    link(r, ps, "etc/localtime", "/usr/share/zoneinfo/Etc/UTC")?;
    file(
        r,
        ps,
        "etc/fstab",
        "# <file system> <mount point> <type> <options> <dump> <pass>\n/dev/pve/root / ext4 errors=remount-ro 0 1\n/dev/pve/swap none swap sw 0 0\nproc /proc proc defaults 0 0\n",
        0o644,
        0,
    )?;
    file(
        r,
        ps,
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nbackup:x:34:34:backup:/var/backups:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        0o644,
        0,
    )?;
    file(
        r,
        ps,
        "etc/group",
        "root:x:0:\ndaemon:x:1:\nwww-data:x:33:\nbackup:x:34:\nshadow:x:42:\nnogroup:x:65534:\n",
        0o644,
        0,
    )?;
    file(
        r,
        ps,
        "etc/shadow",
        "root:$y$j9T$TargetSalt$TargetHash:19950:0:99999:7:::\ndaemon:*:19950:0:99999:7:::\nwww-data:*:19950:0:99999:7:::\n",
        0o640,
        SHADOW,
    )?;
    file(
        r,
        ps,
        "etc/ssh/sshd_config",
        "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nSubsystem sftp /usr/lib/openssh/sftp-server\n",
        0o644,
        0,
    )?;
    file(
        r,
        ps,
        "etc/apt/sources.list.d/debian.sources",
        "Types: deb\nURIs: http://deb.debian.org/debian/\nSuites: bookworm bookworm-updates\nComponents: main contrib non-free-firmware\n",
        0o644,
        0,
    )?;
    file(
        r,
        ps,
        "etc/default/grub",
        "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n",
        0o644,
        0,
    )?;
    file(
        r,
        ps,
        "etc/crontab",
        "SHELL=/bin/sh\n17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly\n",
        0o644,
        0,
    )?;
    // /etc/pve as a plain directory (pmxcfs not mounted), as pmxcfs shows it: root:www-data.
    dir(r, ps, "etc/pve", 0o755, WWW_DATA)?;
    file(
        r,
        ps,
        "etc/pve/storage.cfg",
        "dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\nlvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n\tcontent rootdir,images\n",
        0o640,
        WWW_DATA,
    )?;
    dir(r, ps, "etc/pve/nodes/pve1/qemu-server", 0o755, WWW_DATA)?;
    dir(r, ps, "etc/pve/nodes/pve1/lxc", 0o755, WWW_DATA)?;
    dir(r, ps, "etc/pve/priv", 0o700, WWW_DATA)?;
    // PVE detection markers.
    for tool in [
        "usr/sbin/qm",
        "usr/sbin/pct",
        "usr/bin/pvesh",
        "usr/bin/pveversion",
    ] {
        file(r, ps, tool, "#!/bin/sh\nexit 0\n", 0o755, 0)?;
    }
    dir(r, ps, "var/lib/pve-cluster", 0o755, 0)?;
    dir(r, ps, "var/lib/vz", 0o755, 0)?;
    dir(r, ps, "root", 0o700, 0)?;
    file(
        r,
        ps,
        "root/.bashrc",
        "# ~/.bashrc: executed by bash(1) for non-login shells.\nexport LS_OPTIONS='--color=auto'\n",
        0o644,
        0,
    )?;
    dir(r, ps, "root/.ssh", 0o700, 0)?;
    link(
        r,
        ps,
        "root/.ssh/authorized_keys",
        "/etc/pve/priv/authorized_keys",
    )?;
    dir(r, ps, "home", 0o755, 0)?;
    dir(r, ps, "tmp", 0o1777, 0)?;
    dir(r, ps, "var/tmp", 0o1777, 0)?;
    Ok(Template {
        dir: top.to_path_buf(),
        paths,
    })
}

impl Template {
    /// A fresh copy of the template at `dest` (which must not exist), with modes, owners
    /// and times (`cp -a`).
    pub fn copy_to(&self, dest: &Path) -> Result<()> {
        let st = Command::new("cp")
            .arg("-a")
            .arg(&self.dir)
            .arg(dest)
            .status()
            .context("running cp -a")?;
        if !st.success() {
            bail!(
                "cp -a {} {} failed: {st}",
                self.dir.display(),
                dest.display()
            );
        }
        Ok(())
    }
}
