//! proxsave's `backup.env`: where backups live.
//!
//! Only the keys that locate backups are read: `BASE_DIR`, `BACKUP_PATH`,
//! `SECONDARY_ENABLED`/`SECONDARY_PATH`, `CLOUD_ENABLED`/`CLOUD_REMOTE`/`CLOUD_REMOTE_PATH`.
//! Values may be quoted and may refer to earlier keys as `${KEY}` or `$KEY`.
//! `CLOUD_ENABLED` set to a false value (`false`, `0`, `no`, `off`) disables the cloud source;
//! unset, the cloud source is used whenever it is configured (as upstream does).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Default configuration file.
pub const DEFAULT_CONFIG: &str = "/opt/proxsave/configs/backup.env";
/// Default base directory.
pub const DEFAULT_BASE_DIR: &str = "/opt/proxsave";

/// One place backups may be found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Source {
    /// Menu label, e.g. "Primary backup path".
    pub label: String,
    /// A local folder, or an rclone `remote:path`.
    pub location: String,
    /// True for rclone remotes (not scanned by this version).
    pub remote: bool,
}

/// The parts of backup.env that matter for restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `BASE_DIR`.
    pub base_dir: PathBuf,
    /// Sources in menu order.
    pub sources: Vec<Source>,
}

impl Config {
    /// Loads `path`, or the default file; a missing default file gives the defaults.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(&text).with_context(|| format!("{}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Config::parse(""),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Parses backup.env text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let mut vars: HashMap<String, String> = HashMap::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((key, value)) = line.split_once('=') else {
                anyhow::bail!("line {}: expected KEY=VALUE, found {raw:?}", n + 1);
            };
            let key = key.trim().to_string();
            let value = unquote(strip_comment(value.trim()));
            let value = expand(&value, &vars);
            vars.insert(key, value);
        }
        let get = |k: &str| {
            vars.get(k)
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let base_dir = get("BASE_DIR").unwrap_or_else(|| DEFAULT_BASE_DIR.to_string());
        let mut sources = Vec::new();
        let primary = get("BACKUP_PATH").unwrap_or_else(|| format!("{base_dir}/backup"));
        sources.push(Source {
            label: "Primary backup path".into(),
            location: primary,
            remote: false,
        });
        let truthy = |k: &str| {
            get(k).is_some_and(|v| {
                matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on")
            })
        };
        if truthy("SECONDARY_ENABLED")
            && let Some(p) = get("SECONDARY_PATH")
        {
            sources.push(Source {
                label: "Secondary backup path".into(),
                location: p,
                remote: false,
            });
        }
        let cloud_disabled = get("CLOUD_ENABLED").is_some_and(|v| {
            matches!(
                v.to_ascii_lowercase().as_str(),
                "false" | "0" | "no" | "off"
            )
        });
        let remote = get("CLOUD_REMOTE");
        let remote_path = get("CLOUD_REMOTE_PATH");
        if !cloud_disabled && (remote.is_some() || remote_path.is_some()) {
            let r = remote.unwrap_or_default();
            let p = remote_path.unwrap_or_default();
            if r.starts_with('/') && !r.contains(':') {
                let joined = if p.is_empty() {
                    r
                } else {
                    format!("{}/{}", r.trim_end_matches('/'), p.trim_matches('/'))
                };
                sources.push(Source {
                    label: "Cloud/local path".into(),
                    location: joined,
                    remote: false,
                });
            } else {
                let (name, rest) = r.split_once(':').unwrap_or((r.as_str(), ""));
                let path = [rest.trim_matches('/'), p.trim_matches('/')]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join("/");
                sources.push(Source {
                    label: "Cloud backups (rclone)".into(),
                    location: format!("{name}:{path}"),
                    remote: true,
                });
            }
        }
        Ok(Config {
            base_dir: PathBuf::from(base_dir),
            sources,
        })
    }
}

fn strip_comment(v: &str) -> &str {
    if v.starts_with('"') || v.starts_with('\'') {
        return v;
    }
    match v.find(" #") {
        Some(i) => v[..i].trim_end(),
        None => v,
    }
}

fn unquote(v: &str) -> String {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') {
        let q = b[0];
        if let Some(end) = v[1..].find(q as char) {
            return v[1..1 + end].to_string();
        }
    }
    v.to_string()
}

fn expand(v: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(inner) = after.strip_prefix('{') {
            if let Some(end) = inner.find('}') {
                out.push_str(vars.get(&inner[..end]).map_or("", |s| s));
                rest = &inner[end + 1..];
                continue;
            }
        }
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if len == 0 {
            out.push('$');
            rest = after;
        } else {
            out.push_str(vars.get(&after[..len]).map_or("", |s| s));
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_a_file() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.base_dir, PathBuf::from("/opt/proxsave"));
        assert_eq!(c.sources.len(), 1);
        assert_eq!(c.sources[0].location, "/opt/proxsave/backup");
    }

    #[test]
    fn expands_and_lists_sources_in_order() {
        let c = Config::parse(
            "# proxsave\nBASE_DIR=/srv/ps\nBACKUP_PATH=\"${BASE_DIR}/local\" # primary\n\
             SECONDARY_ENABLED=true\nSECONDARY_PATH=/mnt/secondary/backups\n\
             CLOUD_REMOTE=gdrive:pbs-backups\nCLOUD_REMOTE_PATH=server1\n",
        )
        .unwrap();
        let locs: Vec<_> = c.sources.iter().map(|s| s.location.as_str()).collect();
        assert_eq!(
            locs,
            [
                "/srv/ps/local",
                "/mnt/secondary/backups",
                "gdrive:pbs-backups/server1"
            ]
        );
        assert!(c.sources[2].remote);
        let local_cloud = Config::parse("CLOUD_REMOTE=/mnt/cloud-backups\n").unwrap();
        assert_eq!(local_cloud.sources[1].location, "/mnt/cloud-backups");
        assert!(!local_cloud.sources[1].remote);
        assert!(Config::parse("garbage line").is_err());
    }

    #[test]
    fn cloud_enabled_false_disables_the_remote() {
        let env = "CLOUD_REMOTE=gdrive:pbs-backups\nCLOUD_REMOTE_PATH=server1\n";
        for off in ["false", "\"false\"", "0", "no", "OFF"] {
            let c = Config::parse(&format!("CLOUD_ENABLED={off}\n{env}")).unwrap();
            assert_eq!(c.sources.len(), 1, "CLOUD_ENABLED={off}");
        }
        for on in ["true", "1", "yes"] {
            let c = Config::parse(&format!("CLOUD_ENABLED={on}\n{env}")).unwrap();
            assert_eq!(c.sources[1].location, "gdrive:pbs-backups/server1");
        }
        // Unset: used when configured, as upstream does.
        assert_eq!(Config::parse(env).unwrap().sources.len(), 2);
    }
}
