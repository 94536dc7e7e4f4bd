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
    for item in items.as_array().map(Vec::as_slice).unwrap_or_default() {
        let Some(name) = item["Name"].as_str() else {
            continue;
        };
        if !name.ends_with(".bundle.tar") {
            continue;
        }
        let path = join(location, name);
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
