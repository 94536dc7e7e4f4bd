//! The model behind the `pve-double` binary: one `pvesh` call against the files under an
//! `/etc/pve` folder and a JSON state file. See `docs/pve-double.md`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use proxsave_formats::section::{self, Section, SectionConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::schema::{self, Kind};

mod guests;

/// What is not a file under `/etc/pve`: the cluster's nodes and guests, and SDN.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeState {
    /// This node's name.
    pub node: String,
    /// Every cluster member (this node included).
    pub nodes: Vec<String>,
    /// Guests by VMID: (`qemu` or `lxc`, node).
    pub guests: BTreeMap<String, Guest>,
    /// The PVE version `GET /version` reports.
    pub version: String,
    /// Storage ids whose connection check fails: creating one of them (enabled, for this
    /// node) fails with `storage 'ID' is not online`, as PVE activates a new storage.
    #[serde(default)]
    pub offline: Vec<String>,
    /// Exit code of a failed call (Perl `die`: `$!` when set, else 255; default 255).
    #[serde(default)]
    pub die_exit_code: Option<i32>,
    /// Storage volumes that exist (`local-lvm:vm-100-disk-0`), for guest disks.
    #[serde(default)]
    pub volumes: Vec<String>,
}

/// A guest of the cluster.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Guest {
    /// `qemu` or `lxc`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The node it runs on.
    pub node: String,
}

/// The result of one call: exit code and the two outputs.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Why a call failed, rendered like pvesh renders it.
#[derive(Debug)]
enum Fail {
    /// A plain `die "...\n"`: the message, exit 255.
    Die(String),
    /// `raise_param_exc`: `400 Parameter verification failed.` then `param: message` lines,
    /// then the usage text.
    Params(Vec<(String, String)>),
    /// A 400 exception with its message (`unable to parse option`), after Getopt's own
    /// warnings, then the usage text.
    Parse { warnings: String, message: String },
    /// No handler for this verb and path: exit 1.
    NoHandler,
}

type R<T> = Result<T, Fail>;

fn die<T>(msg: impl Into<String>) -> R<T> {
    Err(Fail::Die(msg.into()))
}

fn param_err<T>(key: &str, msg: impl Into<String>) -> R<T> {
    Err(Fail::Params(vec![(key.to_string(), msg.into())]))
}

/// One parsed option value list.
type Opts = BTreeMap<String, Vec<String>>;

/// Runs one `pvesh` call (`args` as pvesh gets them) against `etc_pve` and `state_file`.
pub fn run(etc_pve: &Path, state_file: &Path, args: &[String]) -> Outcome {
    let mut ctx = Ctx {
        etc: etc_pve.to_path_buf(),
        state_file: state_file.to_path_buf(),
        warnings: String::new(),
    };
    let verb = args.first().map(String::as_str).unwrap_or("");
    let path = args.get(1).map(String::as_str).unwrap_or("");
    let usage = format!("USAGE: pvesh {verb} <api_path> [OPTIONS] [FORMAT_OPTIONS]\n");
    let result = ctx.call(verb, path, args.get(2..).unwrap_or(&[]));
    let die_code = ctx.state().die_exit_code.unwrap_or(255);
    let mut out = Outcome {
        stderr: ctx.warnings.clone(),
        ..Outcome::default()
    };
    match result {
        Ok(Value::Null) => {}
        Ok(v) => out.stdout = format!("{v}\n"),
        Err(Fail::Die(msg)) => {
            out.code = die_code;
            out.stderr.push_str(&msg);
            if !msg.ends_with('\n') {
                out.stderr.push('\n');
            }
        }
        Err(Fail::Params(errors)) => {
            out.code = die_code;
            out.stderr.push_str("400 Parameter verification failed.\n");
            for (k, m) in errors {
                out.stderr.push_str(&format!("{k}: {m}\n"));
            }
            out.stderr.push('\n');
            out.stderr.push_str(&usage);
        }
        Err(Fail::Parse { warnings, message }) => {
            out.code = die_code;
            out.stderr.push_str(&warnings);
            out.stderr.push_str(&format!("400 {message}\n\n"));
            out.stderr.push_str(&usage);
        }
        Err(Fail::NoHandler) => {
            out.code = 1;
            out.stderr = format!("No '{verb}' handler defined for '{path}'\n");
        }
    }
    out
}

struct Ctx {
    etc: PathBuf,
    state_file: PathBuf,
    /// `warn` output of the call (printed to stderr even when it succeeds).
    warnings: String,
}

/// Formatter options every pvesh call takes.
const FORMAT_OPTIONS: &[(&str, Kind)] = &[
    (
        "output-format",
        Kind::Enum(&["text", "json", "json-pretty", "yaml"]),
    ),
    ("noproxy", Kind::Bool),
    ("quiet", Kind::Bool),
    ("human-readable", Kind::Bool),
    ("noborder", Kind::Bool),
    ("noheader", Kind::Bool),
];

/// Getopt::Long as pvesh configures it: `--k=v`, `--k v`, `-k v`; a boolean's value is
/// optional; a repeated list option collects every value; an unknown option is an error.
fn getopt(args: &[String], known: &[(&str, Kind)], lists: &[&str]) -> R<Opts> {
    let mut opts = Opts::new();
    let mut warnings = String::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let Some(name) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            return Err(Fail::Parse {
                warnings,
                message: "too many arguments".into(),
            });
        };
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (name, None),
        };
        let Some(kind) = known
            .iter()
            .chain(FORMAT_OPTIONS)
            .find(|(k, _)| *k == name)
            .map(|(_, k)| *k)
        else {
            warnings.push_str(&format!("Unknown option: {name}\n"));
            continue;
        };
        let value = match inline {
            Some(v) => v,
            None if kind == Kind::Bool => match args.get(i) {
                Some(next) if !next.starts_with('-') => {
                    i += 1;
                    next.clone()
                }
                _ => "1".into(),
            },
            None => match args.get(i) {
                Some(next) => {
                    i += 1;
                    next.clone()
                }
                None => {
                    warnings.push_str(&format!("Option {name} requires an argument\n"));
                    continue;
                }
            },
        };
        let entry = opts.entry(name.to_string()).or_default();
        if lists.contains(&name) || entry.is_empty() {
            entry.push(value);
        } else {
            *entry = vec![value];
        }
    }
    if !warnings.is_empty() {
        return Err(Fail::Parse {
            warnings,
            message: "unable to parse option".into(),
        });
    }
    for (k, _) in FORMAT_OPTIONS {
        opts.remove(*k);
    }
    Ok(opts)
}

/// Checks each value against its kind; every failure is a `param: message` line.
fn verify(opts: &Opts, known: &[(&str, Kind)]) -> R<BTreeMap<String, Vec<String>>> {
    let mut errors = Vec::new();
    let mut out = BTreeMap::new();
    for (k, values) in opts {
        let kind = known
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, kind)| *kind)
            .unwrap_or(Kind::Str);
        let mut checked = Vec::new();
        for v in values {
            match schema::check(kind, v) {
                Ok(v) => checked.push(v),
                Err(m) => errors.push((k.clone(), m)),
            }
        }
        out.insert(k.clone(), checked);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Fail::Params(errors))
    }
}

fn one(opts: &BTreeMap<String, Vec<String>>, key: &str) -> Option<String> {
    opts.get(key).and_then(|v| v.last().cloned())
}

/// `PVE::Tools::split_list`: separated by `,`, `;` or whitespace.
fn split_list(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// `pve-configid` (`[a-z][a-z0-9_-]+`, case-insensitive) and `parse_storage_id`.
fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[b.len() - 1].is_ascii_alphanumeric()
}

impl Ctx {
    fn file(&self, rel: &str) -> PathBuf {
        self.etc.join(rel)
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.file(rel)).unwrap_or_default()
    }

    fn write(&self, rel: &str, text: &str, mode: u32) -> R<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.file(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).or_else(|e| die(format!("mkdir {}: {e}\n", dir.display())))?;
            // pmxcfs shows everything under priv/ as root-only
            if rel.starts_with("priv/") {
                for d in [self.etc.join("priv"), dir.to_path_buf()] {
                    let _ = fs::set_permissions(d, fs::Permissions::from_mode(0o700));
                }
            }
        }
        let tmp = path.with_extension("tmp.pve-double");
        fs::write(&tmp, text).or_else(|e| die(format!("write {}: {e}\n", path.display())))?;
        let _ = fs::set_permissions(&tmp, fs::Permissions::from_mode(mode));
        fs::rename(&tmp, &path).or_else(|e| die(format!("rename {}: {e}\n", path.display())))
    }

    fn remove(&self, rel: &str) {
        let _ = fs::remove_file(self.file(rel));
    }

    fn state(&self) -> NodeState {
        fs::read_to_string(&self.state_file)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    fn warn(&mut self, msg: &str) {
        self.warnings.push_str(msg);
    }

    fn call(&mut self, verb: &str, path: &str, rest: &[String]) -> R<Value> {
        if !matches!(verb, "get" | "create" | "set" | "delete") {
            return die(format!("unknown command 'pvesh {verb}'\n"));
        }
        if path.is_empty() {
            return Err(Fail::Parse {
                warnings: String::new(),
                message: "not enough arguments".into(),
            });
        }
        let trimmed = path.trim_end_matches('/');
        let trimmed = trimmed.strip_prefix('/').unwrap_or(trimmed);
        let seg: Vec<&str> = trimmed.split('/').collect();
        match (verb, seg.as_slice()) {
            ("get", ["version"]) => {
                getopt(rest, &[], &[])?;
                let v = self.state().version;
                let release = v.rsplit_once('.').map(|(r, _)| r).unwrap_or(&v).to_string();
                Ok(json!({"version": v, "release": release, "repoid": "0000000000000000"}))
            }
            ("get", ["nodes"]) => {
                getopt(rest, &[], &[])?;
                let st = self.state();
                Ok(Value::Array(
                    st.nodes
                        .iter()
                        .map(|n| json!({"node": n, "status": "online", "type": "node"}))
                        .collect(),
                ))
            }
            ("get", ["cluster", "resources"]) => self.cluster_resources(rest),
            ("get", ["nodes", node, "storage", sid, "content"]) => {
                self.storage_content(node, sid, rest)
            }
            (_, ["nodes", node, kind @ ("qemu" | "lxc"), tail @ ..]) => {
                let kind = if *kind == "qemu" { "qemu" } else { "lxc" };
                self.guest_call(verb, node, kind, tail, rest)
            }
            ("get", ["storage"]) => {
                getopt(rest, &[("type", Kind::Str)], &[])?;
                let cfg = self.storage_cfg();
                Ok(Value::Array(
                    cfg.sections.iter().map(|s| storage_json(s, &cfg)).collect(),
                ))
            }
            ("get", ["storage", id]) => {
                getopt(rest, &[], &[])?;
                let cfg = self.storage_cfg();
                match cfg.find_id(id) {
                    Some(s) => Ok(storage_json(s, &cfg)),
                    None => die(format!("storage '{id}' does not exist\n")),
                }
            }
            ("create", ["storage"]) => self.storage_create(rest),
            ("set", ["storage", id]) => self.storage_update(id, rest),
            ("delete", ["storage", id]) => {
                getopt(rest, &[], &[])?;
                self.storage_delete(id)
            }
            ("get", ["cluster", "options"]) => {
                getopt(rest, &[], &[])?;
                Ok(self.options_json())
            }
            ("set", ["cluster", "options"]) => self.options_set(rest),
            ("get", ["cluster", "backup"]) => {
                getopt(rest, &[], &[])?;
                let cfg = self.section_file("jobs.cfg");
                Ok(Value::Array(
                    cfg.sections
                        .iter()
                        .filter(|s| s.ty == "vzdump")
                        .map(|s| section_json(s, "id", &[]))
                        .collect(),
                ))
            }
            ("get", ["cluster", "backup", id]) => {
                getopt(rest, &[], &[])?;
                let cfg = self.section_file("jobs.cfg");
                match cfg.find("vzdump", id) {
                    Some(s) => Ok(section_json(s, "id", &[])),
                    None => param_err("id", format!("No such job '{id}'")),
                }
            }
            ("create", ["cluster", "backup"]) => self.backup_create(rest),
            ("set", ["cluster", "backup", id]) => self.backup_update(id, rest),
            ("delete", ["cluster", "backup", id]) => {
                getopt(rest, &[], &[])?;
                let mut cfg = self.section_file("jobs.cfg");
                if cfg.remove("vzdump", id).is_none() {
                    return param_err("id", format!("No such job '{id}'"));
                }
                self.write_sections("jobs.cfg", &cfg, &job_order)?;
                Ok(Value::Null)
            }
            ("get", ["cluster", "replication"]) => {
                getopt(rest, &[], &[])?;
                let cfg = self.section_file("replication.cfg");
                Ok(Value::Array(
                    cfg.sections.iter().map(replication_json).collect(),
                ))
            }
            ("get", ["cluster", "replication", id]) => {
                getopt(rest, &[], &[])?;
                let cfg = self.section_file("replication.cfg");
                match cfg.find_id(id) {
                    Some(s) => Ok(replication_json(s)),
                    None => die(format!("no such replication job '{id}'\n")),
                }
            }
            ("create", ["cluster", "replication"]) => self.replication_create(rest),
            ("set", ["cluster", "replication", id]) => self.replication_update(id, rest),
            ("delete", ["cluster", "replication", id]) => {
                getopt(rest, &[("force", Kind::Bool), ("keep", Kind::Bool)], &[])?;
                let mut cfg = self.section_file("replication.cfg");
                let Some(ty) = cfg.find_id(id).map(|s| s.ty.clone()) else {
                    return die(format!("no such job '{id}'\n"));
                };
                cfg.remove(&ty, id);
                self.write_sections("replication.cfg", &cfg, &replication_order)?;
                Ok(Value::Null)
            }
            ("get", ["cluster", "notifications", "endpoints", ty]) if ty != &"matcher" => {
                getopt(rest, &[], &[])?;
                let nt = schema::notify_type(ty).ok_or(Fail::NoHandler)?;
                Ok(Value::Array(
                    self.notify_entries(nt.name)
                        .into_iter()
                        .map(|(s, origin)| notify_json(&s, origin))
                        .collect(),
                ))
            }
            ("get", ["cluster", "notifications", "matchers"]) => {
                getopt(rest, &[], &[])?;
                Ok(Value::Array(
                    self.notify_entries("matcher")
                        .into_iter()
                        .map(|(s, origin)| notify_json(&s, origin))
                        .collect(),
                ))
            }
            ("get", ["cluster", "notifications", "endpoints", ty, name]) => {
                getopt(rest, &[], &[])?;
                let nt = schema::notify_type(ty)
                    .filter(|t| t.name != "matcher")
                    .ok_or(Fail::NoHandler)?;
                self.notify_get(nt.name, name)
            }
            ("get", ["cluster", "notifications", "matchers", name]) => {
                getopt(rest, &[], &[])?;
                self.notify_get("matcher", name)
            }
            ("create", ["cluster", "notifications", "endpoints", ty]) => {
                let nt = schema::notify_type(ty)
                    .filter(|t| t.name != "matcher")
                    .ok_or(Fail::NoHandler)?;
                self.notify_create(nt, rest)
            }
            ("create", ["cluster", "notifications", "matchers"]) => {
                let nt = schema::notify_type("matcher").ok_or(Fail::NoHandler)?;
                self.notify_create(nt, rest)
            }
            ("set", ["cluster", "notifications", "endpoints", ty, name]) => {
                let nt = schema::notify_type(ty)
                    .filter(|t| t.name != "matcher")
                    .ok_or(Fail::NoHandler)?;
                self.notify_update(nt, name, rest)
            }
            ("set", ["cluster", "notifications", "matchers", name]) => {
                let nt = schema::notify_type("matcher").ok_or(Fail::NoHandler)?;
                self.notify_update(nt, name, rest)
            }
            ("delete", ["cluster", "notifications", "endpoints", ty, name]) => {
                getopt(rest, &[], &[])?;
                let nt = schema::notify_type(ty)
                    .filter(|t| t.name != "matcher")
                    .ok_or(Fail::NoHandler)?;
                self.notify_delete(nt.name, name)
            }
            ("delete", ["cluster", "notifications", "matchers", name]) => {
                getopt(rest, &[], &[])?;
                self.notify_delete("matcher", name)
            }
            ("get", ["cluster", "sdn"]) => {
                getopt(rest, &[], &[])?;
                Ok(
                    json!([{"id": "vnets"}, {"id": "zones"}, {"id": "controllers"}, {"id": "ipams"}, {"id": "dns"}]),
                )
            }
            ("set", ["cluster", "sdn"]) => {
                getopt(rest, &[], &[])?;
                let mut running = sdn_current(&self.etc);
                let version = sdn_running(&self.etc)
                    .get("version")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                running["version"] = json!(version + 1);
                self.write("sdn/.running-config", &format!("{running}\n"), 0o640)?;
                let node = self.state().node;
                Ok(json!(format!(
                    "UPID:{node}:00000000:00000000:00000000:reloadnetworkall::root@pam:"
                )))
            }
            ("get", ["cluster", "sdn", what @ ("zones" | "vnets")]) => {
                getopt(
                    rest,
                    &[
                        ("type", Kind::Str),
                        ("pending", Kind::Bool),
                        ("running", Kind::Bool),
                    ],
                    &[],
                )?;
                let key = if *what == "zones" { "zone" } else { "vnet" };
                let running = sdn_running(&self.etc);
                let applied = &running[*what]["ids"];
                let cfg = self.section_file(&format!("sdn/{what}.cfg"));
                Ok(Value::Array(
                    cfg.sections
                        .iter()
                        .map(|s| {
                            let mut v = section_json(s, key, &[]);
                            let current = section_json(s, "id", &[]);
                            match applied.get(&s.id) {
                                None => v["state"] = json!("new"),
                                Some(a) if *a != current => v["state"] = json!("changed"),
                                Some(_) => {}
                            }
                            v
                        })
                        .collect(),
                ))
            }
            _ => Err(Fail::NoHandler),
        }
    }

    // ---------------------------------------------------------------- storage

    fn storage_cfg(&self) -> SectionConfig {
        section::parse(&self.read("storage.cfg")).0
    }

    fn write_storage(&self, cfg: &SectionConfig) -> R<()> {
        self.write_sections("storage.cfg", cfg, &storage_order)
    }

    /// Writes `cfg` the way PVE's `write_config` does: every section rewritten, its keys in
    /// the type's order (`order`), a blank line after each.
    fn write_sections(
        &self,
        rel: &str,
        cfg: &SectionConfig,
        order: &dyn Fn(&Section) -> Section,
    ) -> R<()> {
        let out: SectionConfig = cfg.sections.iter().map(order).collect::<Vec<_>>().into();
        self.write(rel, &out.to_text(), 0o640)
    }

    fn storage_create(&mut self, rest: &[String]) -> R<Value> {
        let mut known: Vec<(&str, Kind)> = vec![("storage", Kind::Str), ("type", Kind::Str)];
        for t in schema::STORAGE_TYPES {
            for o in t.options {
                if !known.iter().any(|(k, _)| *k == o.key) {
                    known.push((o.key, o.kind));
                }
            }
        }
        let opts = getopt(rest, &known, &["content", "nodes"])?;
        let mut opts = verify(&opts, &known)?;
        let mut missing = Vec::new();
        for k in ["storage", "type"] {
            if !opts.contains_key(k) {
                missing.push((
                    k.to_string(),
                    "property is missing and it is not optional".to_string(),
                ));
            }
        }
        if !missing.is_empty() {
            return Err(Fail::Params(missing));
        }
        let id = one(&opts, "storage").unwrap_or_default();
        let ty = one(&opts, "type").unwrap_or_default();
        if !schema::ALL_TYPES.contains(&ty.as_str()) {
            return param_err(
                "type",
                format!(
                    "value '{ty}' does not have a value in the enumeration '{}'",
                    schema::ALL_TYPES.join(", ")
                ),
            );
        }
        if !valid_id(&id) {
            return param_err(
                "storage",
                format!("invalid format - storage ID '{id}' contains illegal characters"),
            );
        }
        let Some(st) = schema::storage_type(&ty) else {
            return die(format!(
                "pve-double: storage type '{ty}' is not modelled (see docs/pve-double.md)\n"
            ));
        };
        opts.remove("storage");
        opts.remove("type");
        if opts
            .get("nodes")
            .is_some_and(|v| v.iter().all(String::is_empty))
        {
            opts.remove("nodes");
        }
        let sensitive = take_sensitive(&mut opts, st.sensitive);
        let props = self.check_storage(st, &id, &opts, true)?;
        let mut cfg = self.storage_cfg();
        if cfg.find_id(&id).is_some() {
            return die(format!(
                "create storage failed: storage ID '{id}' already defined\n"
            ));
        }
        let mut section = Section::new(ty.clone(), id.clone());
        for (k, v) in &props {
            section.set(k, Some(v));
        }
        let returned = self
            .storage_hooks(st, &id, &mut section, &sensitive, true)
            .map_err(|f| prefix(f, "create storage failed: "))?;
        // activated when enabled on this node; on failure on_delete_hook runs and nothing
        // is written
        let node = self.state();
        let enabled = section.effective("disable") != Some("1")
            && section
                .get("nodes")
                .is_none_or(|n| split_list(n).contains(&node.node));
        if enabled && node.offline.contains(&id) {
            for ext in ["pw", "enc", "master.pem"] {
                self.remove(&format!("priv/storage/{id}.{ext}"));
            }
            return die(format!(
                "create storage failed: storage '{id}' is not online\n"
            ));
        }
        cfg.push(section);
        self.write_storage(&cfg)?;
        let mut res = json!({"storage": id, "type": ty});
        if let Some(r) = returned {
            res["config"] = r;
        }
        Ok(res)
    }

    fn storage_update(&mut self, id: &str, rest: &[String]) -> R<Value> {
        // updateSchema: every property but `type` (and the URI's own `storage`), plus
        // `delete` and `digest`.
        let mut known: Vec<(&str, Kind)> = vec![("delete", Kind::Str), ("digest", Kind::Str)];
        for t in schema::STORAGE_TYPES {
            for o in t.options {
                if !known.iter().any(|(k, _)| *k == o.key) {
                    known.push((o.key, o.kind));
                }
            }
        }
        let opts = getopt(rest, &known, &["content", "nodes"])?;
        let mut opts = verify(&opts, &known)?;
        let delete = one(&opts, "delete")
            .map(|d| split_list(&d))
            .unwrap_or_default();
        opts.remove("delete");
        opts.remove("digest");
        let mut cfg = self.storage_cfg();
        let Some(current) = cfg.find_id(id).cloned() else {
            return die(format!(
                "update storage failed: storage '{id}' does not exist\n"
            ));
        };
        let Some(st) = schema::storage_type(&current.ty) else {
            return die(format!(
                "update storage failed: pve-double: storage type '{}' is not modelled\n",
                current.ty
            ));
        };
        let mut sensitive = take_sensitive(&mut opts, st.sensitive);
        let props = self
            .check_storage(st, id, &opts, false)
            .map_err(|f| prefix(f, "update storage failed: "))?;
        for k in &delete {
            let fail = |m: String| die::<()>(format!("update storage failed: {m}\n"));
            match st.opt(k) {
                None => fail(format!("no such option '{k}'"))?,
                Some(o) if !o.optional => fail(format!("unable to delete required option '{k}'"))?,
                Some(o) if o.fixed => fail(format!("unable to delete fixed option '{k}'"))?,
                Some(_) if props.contains_key(k) || sensitive.contains_key(k) => fail(format!(
                    "cannot set and delete property '{k}' at the same time!"
                ))?,
                Some(_) => {}
            }
            if st.sensitive.contains(&k.as_str()) {
                sensitive.insert(k.clone(), None);
            }
        }
        let mut section = current.clone();
        let returned = self
            .storage_hooks(st, id, &mut section, &sensitive, false)
            .map_err(|f| prefix(f, "update storage failed: "))?;
        for k in &delete {
            section.remove(k);
        }
        for (k, v) in &props {
            section.set(k, Some(v));
        }
        if let Some(s) = cfg.find_id_mut(id) {
            *s = section;
        }
        self.write_storage(&cfg)?;
        let mut res = json!({"storage": id, "type": current.ty});
        if let Some(r) = returned {
            res["config"] = r;
        }
        Ok(res)
    }

    fn storage_delete(&mut self, id: &str) -> R<Value> {
        let mut cfg = self.storage_cfg();
        let Some(current) = cfg.find_id(id).cloned() else {
            return die(format!(
                "delete storage failed: storage '{id}' does not exist\n"
            ));
        };
        if matches!(current.ty.as_str(), "cifs" | "pbs") {
            self.remove(&format!("priv/storage/{id}.pw"));
        }
        if current.ty == "pbs" {
            self.remove(&format!("priv/storage/{id}.enc"));
            self.remove(&format!("priv/storage/{id}.master.pem"));
        }
        cfg.remove(&current.ty, id);
        self.write_storage(&cfg)?;
        Ok(Value::Null)
    }

    /// `check_config`: every given option must be one of the type's; fixed ones only at
    /// creation; required ones present at creation; values of their kind; content checked
    /// against the type's content types.
    fn check_storage(
        &mut self,
        st: &schema::StorageType,
        _id: &str,
        opts: &BTreeMap<String, Vec<String>>,
        create: bool,
    ) -> R<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for (k, values) in opts {
            let Some(o) = st.opt(k) else {
                return die(format!("unexpected property '{k}'\n"));
            };
            if values.iter().any(|v| v.contains(['\n', '\r'])) {
                return die("property contains a line feed\n");
            }
            if !create && o.fixed {
                return die(format!("can't change value of fixed parameter '{k}'\n"));
            }
            let value = if matches!(k.as_str(), "content" | "nodes") {
                values.join(",")
            } else {
                values.last().cloned().unwrap_or_default()
            };
            let value = match o.kind {
                Kind::Content => self.check_content(st, &value)?,
                _ if k == "format" => {
                    if !st.formats.contains(&value.as_str()) {
                        return die(format!("unsupported format '{value}'\n"));
                    }
                    value
                }
                _ if k == "nodes" => {
                    let mut nodes = split_list(&value);
                    nodes.sort();
                    nodes.dedup();
                    nodes.join(",")
                }
                _ => value,
            };
            out.insert(k.clone(), value);
        }
        if create {
            for o in st.options.iter().filter(|o| !o.optional) {
                if !out.contains_key(o.key) {
                    return die(format!("missing value for required option '{}'\n", o.key));
                }
            }
        }
        Ok(out)
    }

    fn check_content(&mut self, st: &schema::StorageType, value: &str) -> R<String> {
        let mut res: Vec<String> = Vec::new();
        for c in split_list(value) {
            if !st.content.contains(&c.as_str()) {
                self.warn(&format!("storage does not support content type '{c}'\n"));
                continue;
            }
            if !res.contains(&c) {
                res.push(c);
            }
        }
        if res.iter().any(|c| c == "none") && res.len() > 1 {
            return die("unable to combine 'none' with other content types\n");
        }
        if res.is_empty() && !st.content.contains(&"none") {
            return die("storage does not support content type 'none'\n");
        }
        res.sort();
        Ok(if res.is_empty() {
            "none".into()
        } else {
            res.join(",")
        })
    }

    /// The plugins' `on_add_hook`/`on_update_hook`: secrets to `priv/storage/`.
    fn storage_hooks(
        &mut self,
        st: &schema::StorageType,
        id: &str,
        section: &mut Section,
        sensitive: &BTreeMap<String, Option<String>>,
        create: bool,
    ) -> R<Option<Value>> {
        let pw = format!("priv/storage/{id}.pw");
        let enc = format!("priv/storage/{id}.enc");
        match st.name {
            "cifs" => match sensitive.get("password") {
                Some(Some(p)) => {
                    self.write(&pw, &format!("password={p}\n"), 0o600)?;
                    if !section.has("username") {
                        self.warn(&format!(
                            "storage {id}: ignoring password parameter, no user set\n"
                        ));
                    }
                }
                Some(None) => self.remove(&pw),
                None if create => self.remove(&pw),
                None => {}
            },
            "pbs" => {
                match sensitive.get("password") {
                    Some(Some(p)) => self.write(&pw, &format!("{p}\n"), 0o600)?,
                    Some(None) => self.remove(&pw),
                    None if create => self.remove(&pw),
                    None => {}
                }
                let mut returned = None;
                match sensitive.get("encryption-key") {
                    Some(Some(key)) => {
                        if key == "autogen" {
                            return die("pve-double: 'autogen' encryption keys are not modelled\n");
                        }
                        let decoded: Option<Value> = serde_json::from_str(key).ok();
                        let Some(decoded) = decoded.filter(|d| d.get("data").is_some()) else {
                            return die(
                                "Value does not seems like a valid, JSON formatted encryption key!\n",
                            );
                        };
                        self.write(&enc, &format!("{key}\n"), 0o600)?;
                        let fp = decoded
                            .get("fingerprint")
                            .and_then(Value::as_str)
                            .unwrap_or("1")
                            .to_string();
                        section.set("encryption-key", Some(&fp));
                        returned = Some(json!({"encryption-key": key}));
                    }
                    Some(None) => {
                        self.remove(&enc);
                        section.remove("encryption-key");
                    }
                    None if create => self.remove(&enc),
                    None => {}
                }
                match sensitive.get("master-pubkey") {
                    Some(Some(k)) => {
                        if create && !section.has("encryption-key") {
                            return die(
                                "'master-pubkey' can only be used together with 'encryption-key'\n",
                            );
                        }
                        self.write(&format!("priv/storage/{id}.master.pem"), k, 0o600)?;
                        section.set("master-pubkey", Some("1"));
                    }
                    Some(None) => self.remove(&format!("priv/storage/{id}.master.pem")),
                    None if create => self.remove(&format!("priv/storage/{id}.master.pem")),
                    None => {}
                }
                return Ok(returned);
            }
            _ => {}
        }
        Ok(None)
    }

    // ---------------------------------------------------------------- datacenter.cfg

    fn datacenter(&self) -> (String, BTreeMap<String, String>) {
        parse_datacenter(&self.read("datacenter.cfg"))
    }

    fn options_json(&self) -> Value {
        let (description, entries) = self.datacenter();
        let mut v = json!({});
        for (k, val) in &entries {
            v[k] = datacenter_value(k, val);
        }
        v["description"] = json!(description);
        if v.get("mac_prefix").is_none() {
            v["mac_prefix"] = json!("BC:24:11");
        }
        v["allowed-tags"] = json!([]);
        v
    }

    fn options_set(&mut self, rest: &[String]) -> R<Value> {
        let mut known: Vec<(&str, Kind)> = schema::DATACENTER.to_vec();
        known.push(("delete", Kind::Str));
        let opts = getopt(rest, &known, &[])?;
        let opts = verify(&opts, &known)?;
        let (mut description, mut entries) = self.datacenter();
        for (k, v) in &opts {
            let v = v.last().cloned().unwrap_or_default();
            match k.as_str() {
                "delete" => {}
                "description" => description = v,
                _ => {
                    entries.insert(k.clone(), v);
                }
            }
        }
        if let Some(d) = one(&opts, "delete") {
            for k in split_list(&d) {
                if k == "description" {
                    description.clear();
                } else {
                    entries.remove(&k);
                }
            }
        }
        if entries
            .get("mac_prefix")
            .is_some_and(|m| m.eq_ignore_ascii_case("BC:24:11"))
        {
            entries.remove("mac_prefix");
        }
        self.write(
            "datacenter.cfg",
            &write_datacenter(&description, &entries),
            0o640,
        )?;
        Ok(Value::Null)
    }

    // ---------------------------------------------------------------- jobs.cfg

    fn section_file(&self, rel: &str) -> SectionConfig {
        section::parse(&self.read(rel)).0
    }

    fn backup_create(&mut self, rest: &[String]) -> R<Value> {
        let mut known: Vec<(&str, Kind)> = schema::VZDUMP.to_vec();
        known.push(("id", Kind::Str));
        let opts = getopt(rest, &known, &[])?;
        let mut opts = verify(&opts, &known)?;
        let id = match one(&opts, "id") {
            Some(id) if valid_id(&id) => id,
            Some(id) => {
                return param_err(
                    "id",
                    format!("invalid format - invalid configuration ID '{id}'"),
                );
            }
            None => {
                let n = self.section_file("jobs.cfg").sections.len();
                format!("backup-{:08x}-{:04x}", 0x5eed_0000_u32 + n as u32, n)
            }
        };
        opts.remove("id");
        schedule_check(&mut opts, true)?;
        if !opts.contains_key("enabled") {
            opts.insert("enabled".into(), vec!["1".into()]);
        }
        let mut cfg = self.section_file("jobs.cfg");
        if cfg.find_id(&id).is_some() {
            return die(format!("Job '{id}' already exists\n"));
        }
        verify_vzdump(&mut opts)?;
        let mut s = Section::new("vzdump", id);
        for (k, v) in &opts {
            s.set(k, v.last().map(String::as_str));
        }
        cfg.push(s);
        self.write_sections("jobs.cfg", &cfg, &job_order)?;
        Ok(Value::Null)
    }

    fn backup_update(&mut self, id: &str, rest: &[String]) -> R<Value> {
        let mut known: Vec<(&str, Kind)> = schema::VZDUMP.to_vec();
        known.push(("delete", Kind::Str));
        known.push(("digest", Kind::Str));
        let opts = getopt(rest, &known, &[])?;
        let mut opts = verify(&opts, &known)?;
        let delete = one(&opts, "delete")
            .map(|d| split_list(&d))
            .unwrap_or_default();
        opts.remove("delete");
        opts.remove("digest");
        schedule_check(&mut opts, false)?;
        if opts.is_empty() && delete.is_empty() {
            return die("no options specified\n");
        }
        let mut cfg = self.section_file("jobs.cfg");
        let Some(job) = cfg.find_mut("vzdump", id) else {
            return die("no such vzdump job\n");
        };
        for k in &delete {
            if !schema::VZDUMP.iter().any(|(n, _)| n == k) {
                return param_err("delete", format!("unknown option '{k}'"));
            }
            job.remove(k);
        }
        for (k, v) in &opts {
            job.set(k, v.last().map(String::as_str));
        }
        if opts.contains_key("vmid") {
            job.remove("all");
            job.remove("exclude");
            job.remove("pool");
        } else if job.effective("all") == Some("1") {
            job.remove("vmid");
            job.remove("pool");
        } else if job.has("pool") {
            job.remove("vmid");
            job.remove("all");
            job.remove("exclude");
        }
        self.write_sections("jobs.cfg", &cfg, &job_order)?;
        Ok(Value::Null)
    }

    // ---------------------------------------------------------------- replication.cfg

    fn replication_create(&mut self, rest: &[String]) -> R<Value> {
        let mut known: Vec<(&str, Kind)> = schema::REPLICATION.to_vec();
        known.push(("id", Kind::Str));
        known.push(("type", Kind::Enum(&["local"])));
        let opts = getopt(rest, &known, &[])?;
        let mut opts = verify(&opts, &known)?;
        let mut missing = Vec::new();
        for k in ["id", "type", "target"] {
            if !opts.contains_key(k) {
                missing.push((
                    k.to_string(),
                    "property is missing and it is not optional".to_string(),
                ));
            }
        }
        if !missing.is_empty() {
            return Err(Fail::Params(missing));
        }
        let id = one(&opts, "id").unwrap_or_default();
        let Some((guest, _num)) = id.split_once('-').filter(|(g, n)| {
            !g.is_empty()
                && !n.is_empty()
                && g.bytes().all(|b| b.is_ascii_digit())
                && n.bytes().all(|b| b.is_ascii_digit())
        }) else {
            return param_err(
                "id",
                format!("invalid format - replication job ID '{id}' invalid"),
            );
        };
        let target = one(&opts, "target").unwrap_or_default();
        let st = self.state();
        let Some(g) = st.guests.get(guest) else {
            return die(format!("Guest '{guest}' does not exist.\n"));
        };
        if !st.nodes.contains(&target) {
            return die(format!("Target '{target}' does not exist.\n"));
        }
        if let Some(source) = one(&opts, "source") {
            if source != g.node {
                return die(format!(
                    "Source '{source}' does not match current node of guest '{guest}' ({})\n",
                    g.node
                ));
            }
        }
        if target == g.node {
            return die("Source and target must not be identical\n");
        }
        let mut cfg = self.section_file("replication.cfg");
        if cfg.find_id(&id).is_some() {
            return die(format!("replication job '{id}' already exists\n"));
        }
        opts.remove("id");
        opts.remove("type");
        opts.insert("source".into(), vec![g.node.clone()]);
        let mut s = Section::new("local", id);
        for (k, v) in &opts {
            s.set(k, v.last().map(String::as_str));
        }
        cfg.push(s);
        self.write_sections("replication.cfg", &cfg, &replication_order)?;
        Ok(Value::Null)
    }

    fn replication_update(&mut self, id: &str, rest: &[String]) -> R<Value> {
        let mut known: Vec<(&str, Kind)> = schema::REPLICATION
            .iter()
            .filter(|(k, _)| *k != "target")
            .copied()
            .collect();
        known.push(("delete", Kind::Str));
        known.push(("digest", Kind::Str));
        let opts = getopt(rest, &known, &[])?;
        let mut opts = verify(&opts, &known)?;
        let delete = one(&opts, "delete")
            .map(|d| split_list(&d))
            .unwrap_or_default();
        opts.remove("delete");
        opts.remove("digest");
        let mut cfg = self.section_file("replication.cfg");
        let Some(job) = cfg.find_id_mut(id) else {
            return die(format!("no such job '{id}'\n"));
        };
        for k in &delete {
            match k.as_str() {
                "target" => return die(format!("unable to delete required option '{k}'\n")),
                k if !schema::REPLICATION.iter().any(|(n, _)| *n == k) => {
                    return die(format!("no such option '{k}'\n"));
                }
                _ => {
                    job.remove(k);
                }
            }
        }
        for (k, v) in &opts {
            job.set(k, v.last().map(String::as_str));
        }
        self.write_sections("replication.cfg", &cfg, &replication_order)?;
        Ok(Value::Null)
    }

    // ---------------------------------------------------------------- notifications

    /// The sections of `ty`, built-ins first (as `builtin`, or `modified-builtin` when the
    /// file overrides them), each with its origin.
    fn notify_entries(&self, ty: &str) -> Vec<(Section, &'static str)> {
        let cfg = self.section_file("notifications.cfg");
        let mut out = Vec::new();
        for b in builtins().into_iter().filter(|b| b.ty == ty) {
            match cfg.find(ty, &b.id) {
                Some(s) => out.push((s.clone(), "modified-builtin")),
                None => out.push((b, "builtin")),
            }
        }
        for s in cfg.sections.iter().filter(|s| s.ty == ty) {
            if !out.iter().any(|(o, _)| o.id == s.id) {
                out.push((s.clone(), "user-created"));
            }
        }
        out
    }

    fn notify_get(&self, ty: &str, name: &str) -> R<Value> {
        match self
            .notify_entries(ty)
            .into_iter()
            .find(|(s, _)| s.id == name)
        {
            Some((s, origin)) => Ok(notify_json(&s, origin)),
            None if ty == "matcher" => die(format!("404 matcher '{name}' not found\n")),
            None => die(format!("404 endpoint '{name}' not found\n")),
        }
    }

    fn notify_known(
        nt: &schema::NotifyType,
        update: bool,
    ) -> (Vec<(&'static str, Kind)>, Vec<&'static str>) {
        let mut known: Vec<(&str, Kind)> = nt.keys.iter().map(|(k, _, kind)| (*k, *kind)).collect();
        known.extend(nt.private.iter().map(|(k, _)| (*k, Kind::Str)));
        let mut lists: Vec<&str> = nt
            .keys
            .iter()
            .filter(|(_, a, _)| *a)
            .map(|(k, _, _)| *k)
            .collect();
        lists.extend(nt.private.iter().filter(|(_, a)| *a).map(|(k, _)| *k));
        if update {
            known.push(("delete", Kind::Str));
            known.push(("digest", Kind::Str));
            lists.push("delete");
        } else {
            known.push(("name", Kind::Str));
        }
        (known, lists)
    }

    fn notify_create(&mut self, nt: &schema::NotifyType, rest: &[String]) -> R<Value> {
        let (known, lists) = Self::notify_known(nt, false);
        let opts = getopt(rest, &known, &lists)?;
        let opts = verify(&opts, &known)?;
        let Some(name) = one(&opts, "name") else {
            return param_err("name", "property is missing and it is not optional");
        };
        let mut missing = Vec::new();
        for k in nt.required {
            if !opts.contains_key(*k) {
                missing.push((
                    k.to_string(),
                    "property is missing and it is not optional".to_string(),
                ));
            }
        }
        if !missing.is_empty() {
            return Err(Fail::Params(missing));
        }
        let mut cfg = self.section_file("notifications.cfg");
        let exists =
            cfg.sections.iter().any(|s| s.id == name) || builtins().iter().any(|b| b.id == name);
        if exists {
            return die(format!(
                "400 Cannot create '{name}', an entity with the same name already exists\n"
            ));
        }
        if matches!(nt.name, "sendmail" | "smtp")
            && !opts.contains_key("mailto")
            && !opts.contains_key("mailto-user")
        {
            return die(
                "400 must at least provide one recipient, either in mailto or in mailto-user\n",
            );
        }
        if nt.name == "matcher" {
            self.check_targets(&opts)?;
        }
        let mut s = Section::new(nt.name, name.clone());
        let mut p = Section::new(nt.name, name.clone());
        for (k, values) in &opts {
            if k == "name" {
                continue;
            }
            let private = nt.private.iter().any(|(pk, _)| pk == k);
            for v in values {
                if private {
                    p.push_prop(k, Some(v));
                } else {
                    s.push_prop(k, Some(v));
                }
            }
        }
        cfg.push(s);
        self.write_notify("notifications.cfg", &cfg)?;
        if !p.props.is_empty() {
            let mut pcfg = self.section_file("priv/notifications.cfg");
            pcfg.push(p);
            self.write_notify("priv/notifications.cfg", &pcfg)?;
        }
        Ok(Value::Null)
    }

    fn check_targets(&self, opts: &BTreeMap<String, Vec<String>>) -> R<()> {
        for t in opts.get("target").into_iter().flatten() {
            let known = ["sendmail", "smtp", "gotify", "webhook"]
                .iter()
                .any(|ty| self.notify_entries(ty).iter().any(|(s, _)| &s.id == t));
            if !known {
                return die(format!("404 endpoint '{t}' does not exist\n"));
            }
        }
        Ok(())
    }

    fn notify_update(&mut self, nt: &schema::NotifyType, name: &str, rest: &[String]) -> R<Value> {
        let (known, lists) = Self::notify_known(nt, true);
        let opts = getopt(rest, &known, &lists)?;
        let mut opts = verify(&opts, &known)?;
        let delete: Vec<String> = opts
            .remove("delete")
            .unwrap_or_default()
            .iter()
            .flat_map(|d| split_list(d))
            .collect();
        opts.remove("digest");
        let Some((mut s, _origin)) = self
            .notify_entries(nt.name)
            .into_iter()
            .find(|(s, _)| s.id == name)
        else {
            return self.notify_get(nt.name, name);
        };
        if nt.name == "matcher" {
            self.check_targets(&opts)?;
        }
        let mut pcfg = self.section_file("priv/notifications.cfg");
        let mut p = pcfg
            .find(nt.name, name)
            .cloned()
            .unwrap_or_else(|| Section::new(nt.name, name));
        for k in &delete {
            let public = nt.keys.iter().any(|(n, _, _)| n == k);
            let private = nt.private.iter().any(|(n, _)| n == k);
            if !public && !private {
                return param_err("delete", format!("value '{k}' is not a deletable property"));
            }
            s.remove(k);
            p.remove(k);
        }
        for (k, values) in &opts {
            let private = nt.private.iter().any(|(pk, _)| pk == k);
            let target = if private { &mut p } else { &mut s };
            target.remove(k);
            for v in values {
                target.push_prop(k, Some(v));
            }
        }
        if matches!(nt.name, "sendmail" | "smtp") && !s.has("mailto") && !s.has("mailto-user") {
            return die(
                "400 must at least provide one recipient, either in mailto or in mailto-user\n",
            );
        }
        let mut cfg = self.section_file("notifications.cfg");
        match cfg.find_mut(nt.name, name) {
            Some(existing) => *existing = s,
            None => cfg.push(s),
        }
        self.write_notify("notifications.cfg", &cfg)?;
        pcfg.remove(nt.name, name);
        if !p.props.is_empty() {
            pcfg.push(p);
        }
        if !pcfg.sections.is_empty() || self.file("priv/notifications.cfg").exists() {
            self.write_notify("priv/notifications.cfg", &pcfg)?;
        }
        Ok(Value::Null)
    }

    fn notify_delete(&mut self, ty: &str, name: &str) -> R<Value> {
        let mut cfg = self.section_file("notifications.cfg");
        if builtins().iter().any(|b| b.ty == ty && b.id == name) {
            // deleting a built-in resets it
            cfg.remove(ty, name);
            self.write_notify("notifications.cfg", &cfg)?;
            return Ok(Value::Null);
        }
        if cfg.remove(ty, name).is_none() {
            return self.notify_get(ty, name).map(|_| Value::Null);
        }
        self.write_notify("notifications.cfg", &cfg)?;
        let mut pcfg = self.section_file("priv/notifications.cfg");
        if pcfg.remove(ty, name).is_some() {
            self.write_notify("priv/notifications.cfg", &pcfg)?;
        }
        Ok(Value::Null)
    }

    /// proxmox-section-config's writer: `type: name`, `\tkey value` with the keys sorted, a
    /// blank line between sections (none after the last).
    fn write_notify(&self, rel: &str, cfg: &SectionConfig) -> R<()> {
        let mut out = String::new();
        for (i, s) in cfg.sections.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&format!("{}: {}\n", s.ty, s.id));
            // the section's JSON object, keys in order (serde_json's map), arrays in order
            let mut props: Vec<_> = s.props.iter().collect();
            props.sort_by(|a, b| a.key.cmp(&b.key));
            for p in props {
                out.push_str(&format!("\t{} {}\n", p.key, p.effective()));
            }
        }
        let mode = if rel.starts_with("priv/") {
            0o600
        } else {
            0o640
        };
        self.write(rel, &out, mode)
    }
}

fn prefix(f: Fail, p: &str) -> Fail {
    match f {
        Fail::Die(m) => Fail::Die(format!("{p}{m}")),
        other => other,
    }
}

/// Moves the type's sensitive options out of `opts` (`extract_sensitive_params`).
fn take_sensitive(
    opts: &mut BTreeMap<String, Vec<String>>,
    sensitive: &[&str],
) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for k in sensitive {
        if let Some(v) = opts.remove(*k) {
            out.insert(k.to_string(), v.last().cloned());
        }
    }
    out
}

fn schedule_check(opts: &mut BTreeMap<String, Vec<String>>, create: bool) -> R<()> {
    if opts.contains_key("schedule") {
        if opts.contains_key("starttime") {
            return param_err("starttime", "'starttime' and 'schedule' cannot both be set");
        }
    } else if !opts.contains_key("starttime") {
        if create {
            return param_err("schedule", "neither 'starttime' nor 'schedule' were set");
        }
        return Ok(());
    } else {
        let start = one(opts, "starttime").unwrap_or_default();
        let dow = one(opts, "dow").unwrap_or_else(|| "mon,tue,wed,thu,fri,sat,sun".into());
        opts.insert("schedule".into(), vec![format!("{dow} {start}")]);
    }
    opts.remove("starttime");
    opts.remove("dow");
    Ok(())
}

/// `PVE::VZDump::verify_vzdump_parameters` with `check_missing`.
fn verify_vzdump(opts: &mut BTreeMap<String, Vec<String>>) -> R<()> {
    let set = |k: &str| one(opts, k).is_some_and(|v| !v.is_empty() && v != "0");
    for k in ["all", "exclude", "pool"] {
        if set(k) && set("vmid") {
            return param_err(k, "option conflicts with option 'vmid'");
        }
    }
    if opts.contains_key("exclude") && !set("pool") {
        opts.insert("all".into(), vec!["1".into()]);
    }
    let set = |k: &str| one(opts, k).is_some_and(|v| !v.is_empty() && v != "0");
    if !(set("all") || set("stop") || set("pool") || set("vmid")) {
        return param_err("vmid", "property is missing");
    }
    Ok(())
}

/// The built-in notification targets and matcher of PVE 8.1+.
pub fn builtins() -> Vec<Section> {
    vec![
        Section::new("sendmail", "mail-to-root")
            .with("mailto-user", Some("root@pam"))
            .with("comment", Some("Send mails to root@pam's email address")),
        Section::new("matcher", "default-matcher")
            .with("mode", Some("all"))
            .with("target", Some("mail-to-root"))
            .with("comment", Some("Route all notifications to mail-to-root")),
    ]
}

fn notify_json(s: &Section, origin: &str) -> Value {
    let nt = schema::notify_type(&s.ty);
    let mut v = json!({"name": s.id, "origin": origin});
    for p in &s.props {
        let array = nt
            .and_then(|t| t.keys.iter().find(|(k, _, _)| *k == p.key))
            .is_some_and(|(_, a, _)| *a);
        if array {
            if v.get(&p.key).is_none() {
                v[&p.key] = json!([]);
            }
            if let Some(a) = v[&p.key].as_array_mut() {
                a.push(json!(p.effective()));
            }
        } else {
            v[&p.key] = json!(p.effective());
        }
    }
    v
}

/// The applied SDN configuration, `sdn/.running-config` (`{}` when absent).
fn sdn_running(etc: &Path) -> Value {
    fs::read_to_string(etc.join("sdn/.running-config"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| json!({}))
}

/// The SDN configuration of the `sdn/*.cfg` files, in the running-config's shape (no version).
fn sdn_current(etc: &Path) -> Value {
    let mut v = json!({});
    for what in ["zones", "vnets", "subnets", "controllers"] {
        let text = fs::read_to_string(etc.join(format!("sdn/{what}.cfg"))).unwrap_or_default();
        v[what] = sdn_ids(&section::parse(&text).0);
    }
    v
}

/// True when the `sdn/*.cfg` files differ from the applied configuration (what
/// `pvesh set /cluster/sdn` would apply).
pub fn sdn_pending(etc: &Path) -> bool {
    let running = sdn_running(etc);
    let current = sdn_current(etc);
    ["zones", "vnets", "subnets", "controllers"]
        .iter()
        .any(|w| {
            let r = running
                .get(*w)
                .cloned()
                .unwrap_or_else(|| json!({"ids": {}}));
            r != current[*w]
        })
}

fn sdn_ids(cfg: &SectionConfig) -> Value {
    let mut ids = serde_json::Map::new();
    for s in &cfg.sections {
        ids.insert(s.id.clone(), section_json(s, "id", &[]));
    }
    json!({"ids": ids})
}

/// A section as the API returns it: its id under `id_key`, `type`, and its properties (bare
/// flags as `1`, booleans as numbers).
fn section_json(s: &Section, id_key: &str, numbers: &[&str]) -> Value {
    let mut v = json!({ id_key: s.id, "type": s.ty });
    for p in &s.props {
        let val = p.effective();
        v[&p.key] = match val.parse::<i64>() {
            Ok(n) if numbers.contains(&p.key.as_str()) || val == "0" || val == "1" => json!(n),
            _ => json!(val),
        };
    }
    v
}

fn replication_json(s: &Section) -> Value {
    let mut v = section_json(s, "id", &[]);
    if let Some((guest, num)) = s.id.split_once('-') {
        v["guest"] = json!(guest.parse::<u64>().unwrap_or(0));
        v["jobnum"] = json!(num.parse::<u64>().unwrap_or(0));
    }
    v
}

fn storage_json(s: &Section, cfg: &SectionConfig) -> Value {
    let mut v = section_json(s, "storage", &["port", "max-protected-backups"]);
    if let Some(t) = schema::storage_type(&s.ty) {
        if !s.has("content") {
            v["content"] = json!(t.default_content.join(","));
        }
        if t.shared {
            v["shared"] = json!(1);
        }
    }
    v["digest"] = json!(digest(&cfg.to_text()));
    v
}

/// A stand-in for the SHA-1 digest PVE returns (not the same value; stable per content).
fn digest(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}{h:016x}{:08x}", h as u32)
}

/// PVE's `write_config` key order for storage sections: `comment`, bare `disable` (only when
/// set), the type's required options sorted, then the optional ones sorted; booleans 0/1;
/// empty values dropped. A section of a type the double does not model keeps `comment`
/// first and the rest sorted.
fn storage_order(s: &Section) -> Section {
    let st = schema::storage_type(&s.ty);
    let required = |k: &str| st.and_then(|t| t.opt(k)).is_some_and(|o| !o.optional);
    let mut out = ordered(s, &required);
    // PVE keeps content and nodes as hashes and writes them in hash order; the double writes
    // them sorted (compare them as sets: `PveState::storage_props`).
    for p in out.props.iter_mut() {
        if p.key == "content" || p.key == "nodes" {
            if let Some(v) = p.value.as_mut() {
                let mut parts: Vec<&str> = v.split(',').filter(|x| !x.is_empty()).collect();
                parts.sort_unstable();
                parts.dedup();
                *v = parts.join(",");
            }
        }
    }
    out
}

/// `PVE::VZDump::JobBase::options`: `schedule` is the one required option.
fn job_order(s: &Section) -> Section {
    ordered(s, &|k| k == "schedule")
}

fn replication_order(s: &Section) -> Section {
    ordered(s, &|k| k == "target")
}

fn ordered(s: &Section, required: &dyn Fn(&str) -> bool) -> Section {
    let mut out = Section::new(s.ty.clone(), s.id.clone());
    if let Some(c) = s.get("comment").filter(|c| !c.is_empty()) {
        out.push_prop("comment", Some(c));
    }
    if s.effective("disable") == Some("1") {
        out.push_prop("disable", None);
    }
    let mut rest: Vec<(&str, &str)> = s
        .props
        .iter()
        .filter(|p| p.key != "comment" && p.key != "disable")
        .map(|p| (p.key.as_str(), p.effective()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    rest.sort_by_key(|(k, _)| (!required(k), *k));
    rest.dedup_by_key(|(k, _)| *k);
    for (k, v) in rest {
        out.push_prop(k, Some(v));
    }
    out
}

/// A `datacenter.cfg` value as `GET /cluster/options` returns it: the property strings that
/// `parse_datacenter_config` parses become objects (`migration` and `replication` with `type`
/// as their default key, `user-tag-access`'s `user-allow-list` a list), `registered-tags` a
/// list, booleans and integers numbers, the rest strings.
fn datacenter_value(key: &str, value: &str) -> Value {
    const PARSED: &[&str] = &[
        "crs",
        "migration",
        "replication",
        "next-id",
        "ha",
        "notify",
        "u2f",
        "webauthn",
        "tag-style",
        "user-tag-access",
    ];
    if key == "registered-tags" {
        return json!(value.split(';').collect::<Vec<_>>());
    }
    if PARSED.contains(&key) {
        if let Ok(parts) = proxsave_formats::propstring::parse(value) {
            let mut o = serde_json::Map::new();
            for (k, v) in parts {
                let k = k.unwrap_or_else(|| "type".to_string());
                let v = if k == "user-allow-list" {
                    json!(v.split(';').collect::<Vec<_>>())
                } else {
                    json!(v)
                };
                o.insert(k, v);
            }
            return Value::Object(o);
        }
    }
    match schema::DATACENTER.iter().find(|(k, _)| *k == key) {
        Some((_, Kind::Bool | Kind::Int)) => value
            .parse::<i64>()
            .map_or_else(|_| json!(value), |n| json!(n)),
        _ => json!(value),
    }
}

/// `parse_datacenter_config`: `#` lines are the description (URI-decoded), `key: value` the
/// options.
pub fn parse_datacenter(text: &str) -> (String, BTreeMap<String, String>) {
    let mut description = String::new();
    let mut entries = BTreeMap::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(c) = line.strip_prefix('#') {
            description.push_str(&uri_decode(c));
            description.push('\n');
        } else if t.is_empty() || t.starts_with('#') {
            continue;
        } else if let Some((k, v)) = t.split_once(':') {
            entries.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    (description.trim_end_matches('\n').to_string(), entries)
}

/// `write_datacenter_config`: the description as `#` lines (`:`, `%`, control and non-ASCII
/// bytes %-escaped), an empty line, then `key: value` sorted.
pub fn write_datacenter(description: &str, entries: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for line in description.split('\n').filter(|_| !description.is_empty()) {
        out.push('#');
        for b in line.bytes() {
            if (0x20..=0x7e).contains(&b) && b != b'%' && b != b':' {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out.push('\n');
    }
    out.push('\n');
    for (k, v) in entries {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out
}

fn uri_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
