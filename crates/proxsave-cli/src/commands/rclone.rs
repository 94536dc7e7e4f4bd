//! Backups on an rclone remote (`CLOUD_REMOTE`): listed with the real `rclone lsjson`, each
//! bundle's manifest read with `rclone cat` up to its `.metadata` member (bundles put it
//! first, so that costs about a KiB), then the transfer is stopped.

use std::io::Read;
use std::process::{Command, Stdio};

use proxsave_archive::manifest::Manifest;

/// One bundle found on a remote.
pub struct RemoteBackup {
    /// `remote:path/name`.
    pub path: String,
    /// The file name.
    pub name: String,
    /// Its size as `rclone lsjson` reports it.
    pub size: u64,
    /// The manifest read from the bundle.
    pub manifest: Manifest,
}

/// `remote:dir` + `name`.
fn join(location: &str, name: &str) -> String {
    if location.ends_with(':') || location.ends_with('/') {
        format!("{location}{name}")
    } else {
        format!("{location}/{name}")
    }
}

/// rclone's own message: the last non-empty stderr line (without its timestamp prefix).
fn rclone_message(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("rclone failed without a message");
    // rclone prefixes its log lines with `YYYY/MM/DD HH:MM:SS `.
    let mut words = line.trim().splitn(3, ' ');
    match (words.next(), words.next(), words.next()) {
        (Some(d), Some(t), Some(rest))
            if d.len() == 10
                && d.as_bytes()[4] == b'/'
                && t.len() == 8
                && t.as_bytes()[2] == b':' =>
        {
            rest.trim().to_string()
        }
        _ => line.trim().to_string(),
    }
}

/// What `scan` found: the bundles newest first, and those skipped (path, reason).
pub type Scan = (Vec<RemoteBackup>, Vec<(String, String)>);

/// Lists the bundles of `location` newest first; the error is rclone's message. Bundles whose
/// manifest cannot be read are returned in the second list with the reason.
pub fn scan(location: &str) -> Result<Scan, String> {
    let out = Command::new("rclone")
        .args(["lsjson", "--files-only", "--no-mimetype", location])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run rclone: {e}"))?;
    if !out.status.success() {
        return Err(rclone_message(&out.stderr));
    }
    let items: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("rclone lsjson printed no JSON list: {e}"))?;
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    let items = items.as_array().map(Vec::as_slice).unwrap_or_default();
    let names: std::collections::BTreeSet<&str> =
        items.iter().filter_map(|i| i["Name"].as_str()).collect();
    for item in items {
        let Some(name) = item["Name"].as_str() else {
            continue;
        };
        let path = join(location, name);
        if !name.ends_with(".bundle.tar") {
            // A raw archive with its `.metadata` beside it (as upstream's scan).
            if !name.ends_with(".partial") && names.contains(format!("{name}.metadata").as_str()) {
                match read_sidecar_manifest(&format!("{path}.metadata"), name) {
                    Ok(manifest) => found.push(RemoteBackup {
                        path,
                        name: name.to_string(),
                        size: item["Size"].as_u64().unwrap_or(0),
                        manifest,
                    }),
                    Err(e) => skipped.push((path, e)),
                }
            }
            continue;
        }
        match read_bundle_manifest(&path) {
            Ok(manifest) => found.push(RemoteBackup {
                path,
                name: name.to_string(),
                size: item["Size"].as_u64().unwrap_or(0),
                manifest,
            }),
            Err(e) => skipped.push((path, e)),
        }
    }
    found.sort_by(|a, b| {
        b.manifest
            .created_at
            .cmp(&a.manifest.created_at)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok((found, skipped))
}

/// `rclone cat` of a raw archive's `.metadata` (JSON, else upstream's legacy KEY=VALUE).
fn read_sidecar_manifest(path: &str, archive: &str) -> Result<Manifest, String> {
    let out = Command::new("rclone")
        .args(["cat", "--count", "1048576", path])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run rclone: {e}"))?;
    if !out.status.success() {
        return Err(rclone_message(&out.stderr));
    }
    match Manifest::from_json(&out.stdout) {
        Ok(m) => Ok(m),
        Err(_) => Manifest::from_legacy(&String::from_utf8_lossy(&out.stdout), archive)
            .map_err(|e| format!("bad metadata: {e}")),
    }
}

/// Streams `rclone cat PATH` through the tar headers until the first `.metadata` or
/// `.manifest.json` member, decodes it and stops the transfer.
fn read_bundle_manifest(path: &str) -> Result<Manifest, String> {
    let mut child = Command::new("rclone")
        .args(["cat", path])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run rclone: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("rclone cat: no output")?;
    let result = first_manifest(&mut stdout);
    drop(stdout);
    let _ = child.kill();
    let status = child.wait_with_output();
    match result {
        Ok(Some(m)) => Ok(m),
        Ok(None) => match status {
            Ok(o) if !o.status.success() => Err(rclone_message(&o.stderr)),
            _ => Err("not a bundle: no .metadata member".to_string()),
        },
        Err(e) => Err(e),
    }
}

fn octal(field: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(field).ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
    u64::from_str_radix(s, 8).ok()
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn first_manifest(r: &mut impl Read) -> Result<Option<Manifest>, String> {
    let mut header = [0u8; 512];
    loop {
        if let Err(e) = r.read_exact(&mut header) {
            return if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Ok(None)
            } else {
                Err(format!("reading the bundle: {e}"))
            };
        }
        if header.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let mut name = cstr(&header[0..100]);
        if &header[257..262] == b"ustar" {
            let prefix = cstr(&header[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        let size = octal(&header[124..136]).ok_or("not a bundle: bad tar header")?;
        let padded = size.div_ceil(512) * 512;
        if name.ends_with(".metadata") || name.ends_with(".manifest.json") {
            if size > 1 << 20 {
                return Err("not a bundle: metadata member larger than 1 MiB".to_string());
            }
            let mut buf = vec![0u8; padded as usize];
            r.read_exact(&mut buf)
                .map_err(|e| format!("reading the bundle: {e}"))?;
            buf.truncate(size as usize);
            let archive = name
                .trim_end_matches(".metadata")
                .trim_end_matches(".manifest.json")
                .to_string();
            let manifest = match Manifest::from_json(&buf) {
                Ok(m) => m,
                Err(_) => Manifest::from_legacy(&String::from_utf8_lossy(&buf), &archive)
                    .map_err(|e| format!("bad metadata: {e}"))?,
            };
            return Ok(Some(manifest));
        }
        std::io::copy(&mut r.take(padded), &mut std::io::sink())
            .map_err(|e| format!("reading the bundle: {e}"))?;
    }
}

/// True when `--backup` names a backup on an rclone remote (`remote:path`): it is not a local
/// file and the part before the first `:` is a remote name (no `/`).
pub fn is_remote_spec(path: &std::path::Path) -> bool {
    if path.exists() {
        return false;
    }
    let Some(s) = path.to_str() else {
        return false;
    };
    match s.split_once(':') {
        Some((remote, rest)) => {
            !remote.is_empty() && !remote.contains('/') && !rest.is_empty() && !rest.ends_with('/')
        }
        None => false,
    }
}

/// Private folders holding fetched backups; removed by [`cleanup`] when the command ends.
static FETCHED: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Removes the private folders of the backups fetched from remotes.
pub fn cleanup() {
    if let Ok(mut dirs) = FETCHED.lock() {
        for d in dirs.drain(..) {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Up to 1 MiB of `rclone cat PATH` (a sidecar); the error is rclone's message.
fn cat_small(path: &str) -> Result<Vec<u8>, String> {
    let out = Command::new("rclone")
        .args(["cat", "--count", "1048576", path])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run rclone: {e}"))?;
    if !out.status.success() {
        return Err(rclone_message(&out.stderr));
    }
    Ok(out.stdout)
}

/// The size `rclone lsjson` reports for one file, if it can.
fn remote_size(path: &str) -> Option<u64> {
    let out = Command::new("rclone")
        .args(["lsjson", "--files-only", "--no-mimetype", path])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.as_array()?.first()?["Size"].as_u64()
}

/// The first field of a sha256sum-style line, when it is 64 hex digits.
fn parse_checksum(text: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(text);
    let field = text.split_whitespace().next()?.to_ascii_lowercase();
    (field.len() == 64 && field.bytes().all(|b| b.is_ascii_hexdigit())).then_some(field)
}

/// Writes `bytes` to a new file only the owner can read (0600).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// Fetches `remote:path` into a private folder (0700, under `$TMPDIR`, removed by [`cleanup`])
/// by streaming `rclone cat` into a 0600 file while hashing it (SHA-256) and showing progress
/// in a terminal. When a `<path>.sha256` sidecar sits beside it on the remote, a mismatch fails
/// right after the download, naming the remote path, before anything reads the backup. A raw
/// archive's `.metadata`/`.sha256`/`.manifest.json` are fetched beside it. Returns the local
/// path; the error carries rclone's message.
pub fn fetch(spec: &str) -> anyhow::Result<std::path::PathBuf> {
    use sha2::Digest;
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let name = spec
        .rsplit(['/', ':'])
        .next()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| anyhow::anyhow!("{spec}: no file name"))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("proxsave-rclone-{}-{stamp}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    if let Ok(mut dirs) = FETCHED.lock() {
        dirs.push(dir.clone());
    }
    let local = dir.join(name);
    // The checksum sidecar beside the file, when there is one (sha256sum format).
    let sidecar = cat_small(&format!("{spec}.sha256")).ok();
    let expected = sidecar.as_deref().and_then(parse_checksum);
    crate::progress::hide();
    eprintln!("Fetching {spec} with rclone…");
    crate::progress::show();
    let bar = crate::progress::bar("Fetching");
    if let Some(b) = &bar {
        b.start(remote_size(spec).unwrap_or(0), name);
    }
    let mut child = Command::new("rclone")
        .arg("cat")
        .arg(spec)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run rclone: {e}"))?;
    // rclone's log is drained beside the transfer so it never blocks on a full pipe.
    let mut err_pipe = child
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("rclone cat: no stderr"))?;
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("rclone cat: no output"))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&local)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", local.display()))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let copied: std::io::Result<u64> = (|| {
        let mut total = 0u64;
        loop {
            let n = match stdout.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])?;
            total += n as u64;
            if let Some(b) = &bar {
                b.advance(n as u64);
            }
        }
    })();
    drop(stdout);
    if copied.is_err() {
        // A local failure (the disk is full): rclone is stopped and that error is reported,
        // not the broken pipe rclone would then see.
        let _ = child.kill();
    }
    let status = child.wait();
    let stderr = err_reader.join().unwrap_or_default();
    if let Some(b) = &bar {
        b.finish();
    }
    drop(bar);
    let bytes =
        copied.map_err(|e| anyhow::anyhow!("fetching {spec} into {}: {e}", local.display()))?;
    let status = status.map_err(|e| anyhow::anyhow!("rclone cat {spec}: {e}"))?;
    if !status.success() {
        anyhow::bail!("rclone cat {spec}: {}", rclone_message(&stderr));
    }
    file.sync_all()
        .map_err(|e| anyhow::anyhow!("fetching {spec}: {e}"))?;
    let got: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if let Some(want) = &expected {
        if *want != got {
            anyhow::bail!(
                "{spec}: SHA-256 mismatch after download ({bytes} bytes): expected {want} \
                 (from {spec}.sha256), got {got}; the copy on the remote is damaged or incomplete"
            );
        }
    }
    if !name.ends_with(".bundle.tar") {
        for suffix in [".metadata", ".manifest.json"] {
            if let Ok(bytes) = cat_small(&format!("{spec}{suffix}")) {
                let _ = write_private(&dir.join(format!("{name}{suffix}")), &bytes);
            }
        }
        if let Some(bytes) = &sidecar {
            let _ = write_private(&dir.join(format!("{name}.sha256")), bytes);
        }
    }
    Ok(local)
}
