//! The real Debian `ifupdown2` (3.0.0) and classic `ifupdown` (0.8.41), for tests.
//!
//! The packages are fetched with `apt-get download` and unpacked with `dpkg-deb -x` into a
//! cache folder (`PROXSAVE_NET_TOOLS_CACHE`, else `target/net-tools` of the workspace): nothing
//! is installed on the machine, no maintainer script runs. [`IfupWrapper`] writes an `ifup`
//! script for a [`crate::fakes::FakeBin`] folder (or any folder on `PATH`) that runs the real
//! tool inside `unshare -n -m --propagation private`: a fresh network namespace holding only
//! `lo`, private mounts, a tmpfs on `/run`, and overlays on `/usr/share` and `/etc` that carry
//! the unpacked files, so the host's network, `/etc` and `/usr` are never touched.
//!
//! [`require_ifupdown`] gives the unpacked tree, or `None` after a skip message on a developer
//! machine; in CI (`CI`, `PROXSAVE_REQUIRE_TOOLS`) it panics instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Which package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Package {
    /// `ifupdown2` (Python; runs as root in the sandbox).
    Ifupdown2,
    /// Classic `ifupdown` (C).
    Ifupdown,
}

impl Package {
    /// The Debian package name.
    pub fn name(self) -> &'static str {
        match self {
            Package::Ifupdown2 => "ifupdown2",
            Package::Ifupdown => "ifupdown",
        }
    }
}

/// The cache folder.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PROXSAVE_NET_TOOLS_CACHE") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/net-tools")
}

fn ok(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Downloads and unpacks `pkg` into the cache (once); returns the unpacked tree.
///
/// # Errors
/// A tool is missing, the download or the unpacking failed.
pub fn unpacked(pkg: Package) -> Result<PathBuf, String> {
    let cache = cache_dir();
    let done = cache.join(pkg.name());
    if done.join(".complete").exists() {
        return Ok(done);
    }
    std::fs::create_dir_all(&cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let work = tempfile::Builder::new()
        .prefix(&format!(".{}-", pkg.name()))
        .tempdir_in(&cache)
        .map_err(|e| e.to_string())?;
    ok(Command::new("apt-get")
        .args(["download", "-q", pkg.name()])
        .current_dir(work.path()))?;
    let deb = std::fs::read_dir(work.path())
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download {} gave no .deb", pkg.name()))?;
    let tree = work.path().join("tree");
    ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
    std::fs::write(tree.join(".complete"), b"").map_err(|e| e.to_string())?;
    match std::fs::rename(&tree, &done) {
        Ok(()) => Ok(done),
        // Another test got there first.
        Err(_) if done.join(".complete").exists() => Ok(done),
        Err(e) => Err(format!("{}: {e}", done.display())),
    }
}

/// True when this process may make network and mount namespaces (root, `unshare` works).
pub fn sandbox_available() -> bool {
    Command::new("unshare")
        .args(["-n", "-m", "--propagation", "private", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The unpacked package, or `None` after a skip message (panics in CI).
pub fn require_ifupdown(pkg: Package) -> Option<PathBuf> {
    let why = if !sandbox_available() {
        Some("`unshare -n -m` does not work here (needs root)".to_string())
    } else if crate::which("apt-get").is_none() || crate::which("dpkg-deb").is_none() {
        Some("`apt-get` and `dpkg-deb` are needed to fetch the package".to_string())
    } else if pkg == Package::Ifupdown2 && !Path::new("/usr/bin/python3").exists() {
        Some("/usr/bin/python3 is needed by ifupdown2".to_string())
    } else if crate::which("ip").is_none() {
        Some("`ip` (iproute2) is needed".to_string())
    } else {
        match unpacked(pkg) {
            Ok(tree) => return Some(tree),
            Err(e) => Some(e),
        }
    };
    let why = why.unwrap_or_default();
    if crate::tools_required() {
        panic!(
            "{} cannot be used: {why}; CI (.ci/run) must provide it",
            pkg.name()
        );
    }
    eprintln!("SKIP: {} cannot be used: {why}", pkg.name());
    None
}

/// The sandbox script: `$1` the unpacked tree, `$2` the package, the rest `ifup`'s arguments.
const SANDBOX: &str = r#"set -e
tree=$1; pkg=$2; shift 2
scratch=$(mktemp -d)
mount -t tmpfs tmpfs /run
mkdir -p /run/network
for d in /usr/share /etc; do
  n=$(echo "$d" | tr / _)
  mkdir -p "$scratch/u$n" "$scratch/w$n"
  mount -t overlay overlay -o "lowerdir=$d,upperdir=$scratch/u$n,workdir=$scratch/w$n" "$d"
done
ip link set lo up
mkdir -p /etc/network
if [ "$pkg" = ifupdown2 ]; then
  cp -a "$tree/usr/share/ifupdown2" /usr/share/
  cp -a "$tree/etc/network/ifupdown2" /etc/network/
  chmod 755 /usr/share/ifupdown2/__main__.py
  mkdir -p "$scratch/bin"
  ln -s /usr/share/ifupdown2/__main__.py "$scratch/bin/ifup"
  set +e
  "$scratch/bin/ifup" "$@"
else
  for d in if-pre-up.d if-up.d if-down.d if-post-down.d; do mkdir -p /etc/network/$d; done
  set +e
  "$tree/sbin/ifup" --state-dir=/run/network "$@"
fi
"#;

/// Writes an `ifup` into `bin_dir` that runs the real tool of `tree` (from [`unpacked`]) in
/// the sandbox described in the module documentation; returns its path.
pub fn install_ifup(bin_dir: &Path, pkg: Package, tree: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(bin_dir).expect("bin dir");
    let sandbox = bin_dir.join(format!(".{}-sandbox.sh", pkg.name()));
    std::fs::write(&sandbox, SANDBOX).expect("write sandbox");
    let ifup = bin_dir.join("ifup");
    std::fs::write(
        &ifup,
        format!(
            "#!/bin/sh\nexec unshare -n -m --propagation private sh '{}' '{}' '{}' \"$@\"\n",
            sandbox.display(),
            tree.display(),
            pkg.name()
        ),
    )
    .expect("write ifup");
    std::fs::set_permissions(&ifup, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    ifup
}
