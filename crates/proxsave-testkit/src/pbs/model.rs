//! The model behind the `pbs-double` binary: one `proxmox-backup-manager` call against the
//! files under an `/etc/proxmox-backup` folder. See `docs/pbs-double.md`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use proxsave_formats::section::{Prop, Section, SectionConfig};
use serde_json::{Map, Value};

/// The result of one call: exit code and the two outputs.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Exit code (0, or 255 as `std::process::exit(-1)` in proxmox-router's CLI).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// How a call failed.
#[derive(Debug)]
enum Fail {
    /// `bail!`/`http_bail!`: `Error: MESSAGE`.
    Plain(String),
    /// `param_bail!` / schema verification: `Error: parameter verification errors` then
    /// `parameter 'KEY': MESSAGE` lines.
    Param(Vec<(String, String)>),
}

type R<T> = Result<T, Fail>;

fn plain<T>(msg: impl Into<String>) -> R<T> {
    Err(Fail::Plain(msg.into()))
}

fn param<T>(key: &str, msg: impl Into<String>) -> R<T> {
    Err(Fail::Param(vec![(key.to_string(), msg.into())]))
}

/// An object kind of the CLI: its command words, file, section type and schema.
#[derive(Debug)]
pub struct Kind {
    /// Command words before the verb (`["sync-job"]`, `["notification", "endpoint", "gotify"]`).
    pub words: &'static [&'static str],
    /// The file under `/etc/proxmox-backup`.
    pub file: &'static str,
    /// The file holding the secret keys (`notifications-priv.cfg`), if any.
    pub priv_file: Option<&'static str>,
    /// Section type.
    pub ty: &'static str,
    /// Name of the id parameter (`name` or `id`).
    pub id_key: &'static str,
    /// Verb that removes (`remove`; `delete` for notification endpoints and matchers).
    pub remove_verb: &'static str,
    /// Required keys at creation (besides the id).
    pub required: &'static [&'static str],
    /// Optional keys.
    pub optional: &'static [&'static str],
    /// Array keys (repeated options, one line each in the file).
    pub arrays: &'static [&'static str],
    /// Boolean keys (`true`/`false` in the file and JSON).
    pub bools: &'static [&'static str],
    /// Integer keys (numbers in JSON).
    pub numbers: &'static [&'static str],
    /// Secret keys: in `priv_file` (or stored base64 for a remote password), never listed.
    pub secrets: &'static [&'static str],
    /// Error texts.
    pub msgs: Msgs,
}

/// The error texts of one kind (`{}` = the id), from `src/api2/config/*.rs` and proxmox-notify.
#[derive(Debug)]
pub struct Msgs {
    /// Create of an existing id (a parameter error on the id key, or plain for notify).
    pub exists: &'static str,
    /// Whether `exists` is a parameter error.
    pub exists_param: bool,
    /// Update of a missing id.
    pub update_missing: &'static str,
    /// Remove of a missing id.
    pub remove_missing: &'static str,
}

const KEEP: [&str; 6] = [
    "keep-last",
    "keep-hourly",
    "keep-daily",
    "keep-weekly",
    "keep-monthly",
    "keep-yearly",
];

const NOTIFY_EXISTS: &str = "Cannot create '{}', an entity with the same name already exists";

/// Every modelled kind.
pub static KINDS: &[Kind] = &[
    Kind {
        words: &["datastore"],
        file: "datastore.cfg",
        priv_file: None,
        ty: "datastore",
        id_key: "name",
        remove_verb: "remove",
        required: &["path"],
        optional: &[
            "comment",
            "gc-schedule",
            "prune-schedule",
            "keep-last",
            "keep-hourly",
            "keep-daily",
            "keep-weekly",
            "keep-monthly",
            "keep-yearly",
            "verify-new",
            "notify-user",
            "notify",
            "notification-mode",
            "tuning",
            "maintenance-mode",
            "backend",
        ],
        arrays: &[],
        bools: &["verify-new"],
        numbers: &KEEP,
        secrets: &[],
        msgs: Msgs {
            exists: "datastore '{}' already exists.",
            exists_param: true,
            update_missing: "no such datastore '{}'",
            remove_missing: "datastore '{}' does not exist.",
        },
    },
    Kind {
        words: &["remote"],
        file: "remote.cfg",
        priv_file: None,
        ty: "remote",
        id_key: "name",
        remove_verb: "remove",
        required: &["host", "auth-id", "password"],
        optional: &["port", "fingerprint", "comment"],
        arrays: &[],
        bools: &[],
        numbers: &["port"],
        secrets: &["password"],
        msgs: Msgs {
            exists: "remote '{}' already exists.",
            exists_param: true,
            update_missing: "no such remote '{}'",
            remove_missing: "remote '{}' does not exist.",
        },
    },
    Kind {
        words: &["sync-job"],
        file: "sync.cfg",
        priv_file: None,
        ty: "sync",
        id_key: "id",
        remove_verb: "remove",
        required: &["store", "remote", "remote-store"],
        optional: &[
            "ns",
            "remote-ns",
            "owner",
            "remove-vanished",
            "max-depth",
            "group-filter",
            "schedule",
            "comment",
            "rate-in",
            "burst-in",
            "rate-out",
            "burst-out",
            "transfer-last",
        ],
        arrays: &["group-filter"],
        bools: &["remove-vanished"],
        numbers: &["max-depth", "transfer-last"],
        secrets: &[],
        msgs: Msgs {
            exists: "job '{}' already exists.",
            exists_param: true,
            update_missing: "no such sync '{}'",
            remove_missing: "job '{}' does not exist.",
        },
    },
    Kind {
        words: &["verify-job"],
        file: "verification.cfg",
        priv_file: None,
        ty: "verification",
        id_key: "id",
        remove_verb: "remove",
        required: &["store"],
        optional: &[
            "ignore-verified",
            "outdated-after",
            "comment",
            "schedule",
            "ns",
            "max-depth",
        ],
        arrays: &[],
        bools: &["ignore-verified"],
        numbers: &["outdated-after", "max-depth"],
        secrets: &[],
        msgs: Msgs {
            exists: "job '{}' already exists.",
            exists_param: true,
            update_missing: "no such verification '{}'",
            remove_missing: "no such verification '{}'",
        },
    },
    Kind {
        words: &["prune-job"],
        file: "prune.cfg",
        priv_file: None,
        ty: "prune",
        id_key: "id",
        remove_verb: "remove",
        required: &["store", "schedule"],
        optional: &[
            "disable",
            "comment",
            "ns",
            "max-depth",
            "keep-last",
            "keep-hourly",
            "keep-daily",
            "keep-weekly",
            "keep-monthly",
            "keep-yearly",
        ],
        arrays: &[],
        bools: &["disable"],
        numbers: &[
            "max-depth",
            "keep-last",
            "keep-hourly",
            "keep-daily",
            "keep-weekly",
            "keep-monthly",
            "keep-yearly",
        ],
        secrets: &[],
        msgs: Msgs {
            exists: "job '{}' already exists.",
            exists_param: true,
            update_missing: "no such prune '{}'",
            remove_missing: "no such prune '{}'",
        },
    },
    Kind {
        words: &["traffic-control"],
        file: "traffic-control.cfg",
        priv_file: None,
        ty: "rule",
        id_key: "name",
        remove_verb: "remove",
        required: &["network"],
        optional: &[
            "timeframe",
            "rate-in",
            "burst-in",
            "rate-out",
            "burst-out",
            "comment",
        ],
        arrays: &["network", "timeframe"],
        bools: &[],
        numbers: &[],
        secrets: &[],
        msgs: Msgs {
            exists: "traffic control rule '{}' already exists.",
            exists_param: true,
            update_missing: "no such rule '{}'",
            remove_missing: "traffic control rule '{}' does not exist.",
        },
    },
    Kind {
        words: &["notification", "endpoint", "gotify"],
        file: "notifications.cfg",
        priv_file: Some("notifications-priv.cfg"),
        ty: "gotify",
        id_key: "name",
        remove_verb: "delete",
        required: &["server", "token"],
        optional: &["comment", "disable"],
        arrays: &[],
        bools: &["disable"],
        numbers: &[],
        secrets: &["token"],
        msgs: NOTIFY_MSGS,
    },
    Kind {
        words: &["notification", "endpoint", "smtp"],
        file: "notifications.cfg",
        priv_file: Some("notifications-priv.cfg"),
        ty: "smtp",
        id_key: "name",
        remove_verb: "delete",
        required: &["server", "from-address"],
        optional: &[
            "port",
            "mode",
            "username",
            "password",
            "mailto",
            "mailto-user",
            "author",
            "comment",
            "disable",
        ],
        arrays: &["mailto", "mailto-user"],
        bools: &["disable"],
        numbers: &["port"],
        secrets: &["password"],
        msgs: NOTIFY_MSGS,
    },
    Kind {
        words: &["notification", "endpoint", "sendmail"],
        file: "notifications.cfg",
        priv_file: Some("notifications-priv.cfg"),
        ty: "sendmail",
        id_key: "name",
        remove_verb: "delete",
        required: &[],
        optional: &[
            "mailto",
            "mailto-user",
            "from-address",
            "author",
            "comment",
            "disable",
        ],
        arrays: &["mailto", "mailto-user"],
        bools: &["disable"],
        numbers: &[],
        secrets: &[],
        msgs: NOTIFY_MSGS,
    },
    Kind {
        words: &["notification", "endpoint", "webhook"],
        file: "notifications.cfg",
        priv_file: Some("notifications-priv.cfg"),
        ty: "webhook",
        id_key: "name",
        remove_verb: "delete",
        required: &["url", "method"],
        optional: &["header", "body", "secret", "comment", "disable"],
        arrays: &["header", "secret"],
        bools: &["disable"],
        numbers: &[],
        secrets: &["secret"],
        msgs: NOTIFY_MSGS,
    },
    Kind {
        words: &["notification", "matcher"],
        file: "notifications.cfg",
        priv_file: None,
        ty: "matcher",
        id_key: "name",
        remove_verb: "delete",
        required: &[],
        optional: &[
            "match-field",
            "match-severity",
            "match-calendar",
            "target",
            "mode",
            "invert-match",
            "comment",
            "disable",
        ],
        arrays: &["match-field", "match-severity", "match-calendar", "target"],
        bools: &["invert-match", "disable"],
        numbers: &[],
        secrets: &[],
        msgs: Msgs {
            exists: NOTIFY_EXISTS,
            exists_param: false,
            update_missing: "matcher '{}' not found",
            remove_missing: "matcher '{}' not found",
        },
    },
    Kind {
        words: &["s3", "endpoint"],
        file: "s3.cfg",
        priv_file: None,
        ty: "s3-endpoint",
        id_key: "id",
        remove_verb: "remove",
        required: &["endpoint", "access-key", "secret-key"],
        optional: &[
            "region",
            "port",
            "fingerprint",
            "path-style",
            "provider-quirks",
        ],
        arrays: &[],
        bools: &["path-style"],
        numbers: &["port"],
        secrets: &["secret-key"],
        msgs: Msgs {
            exists: "endpoint '{}' already exists.",
            exists_param: true,
            update_missing: "no such s3-endpoint '{}'",
            remove_missing: "endpoint '{}' does not exist.",
        },
    },
    Kind {
        words: &["acme", "plugin"],
        file: "acme/plugins.cfg",
        priv_file: None,
        ty: "dns",
        id_key: "id",
        remove_verb: "remove",
        required: &["api"],
        optional: &["data", "validation-delay", "disable"],
        arrays: &[],
        bools: &["disable"],
        numbers: &["validation-delay"],
        secrets: &[],
        msgs: Msgs {
            exists: "ACME plugin ID {} already exists",
            exists_param: false,
            update_missing: "no such plugin",
            remove_missing: "no such plugin",
        },
    },
];

const NOTIFY_MSGS: Msgs = Msgs {
    exists: NOTIFY_EXISTS,
    exists_param: false,
    update_missing: "endpoint '{}' not found",
    remove_missing: "endpoint '{}' not found",
};

/// The keys of `node.cfg` (`src/config/node.rs::NodeConfig`).
pub const NODE_KEYS: &[&str] = &[
    "acme",
    "acmedomain0",
    "acmedomain1",
    "acmedomain2",
    "acmedomain3",
    "acmedomain4",
    "http-proxy",
    "email-from",
    "ciphers-tls-1.3",
    "ciphers-tls-1.2",
    "default-lang",
    "description",
    "task-log-max-days",
];

fn fill(template: &str, id: &str) -> String {
    template.replace("{}", id)
}

/// Runs one `proxmox-backup-manager` call: `etc` is `/etc/proxmox-backup` (the root is its
/// grandparent, whose `etc/passwd` names the `backup` user).
pub fn run(etc: &Path, args: &[String]) -> Outcome {
    match dispatch(etc, args) {
        Ok(stdout) => Outcome {
            code: 0,
            stdout,
            stderr: String::new(),
        },
        Err(Fail::Plain(msg)) => Outcome {
            code: 255,
            stdout: String::new(),
            stderr: format!("Error: {msg}\n"),
        },
        Err(Fail::Param(list)) => {
            let mut msg = "Error: parameter verification errors\n\n".to_string();
            for (k, m) in list {
                msg.push_str(&format!("parameter '{k}': {m}\n"));
            }
            Outcome {
                code: 255,
                stdout: String::new(),
                stderr: msg,
            }
        }
    }
}

/// Parsed options: `--key value` / `--key=value`, repeated keys kept in order; positionals.
#[derive(Debug, Default)]
struct Opts {
    pos: Vec<String>,
    opts: BTreeMap<String, Vec<String>>,
}

fn getopt(args: &[String]) -> R<Opts> {
    let mut o = Opts::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if let Some(rest) = a.strip_prefix("--") {
            let (k, v) = match rest.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None if is_bool_option(rest) => {
                    // proxmox-router: a boolean option may stand alone (`--destroy-data`)
                    match args.get(i).filter(|v| parse_bool(v).is_some()) {
                        Some(v) => {
                            i += 1;
                            (rest.to_string(), v.clone())
                        }
                        None => (rest.to_string(), "true".to_string()),
                    }
                }
                None => {
                    let Some(v) = args.get(i) else {
                        return param(rest, "missing parameter value.");
                    };
                    i += 1;
                    (rest.to_string(), v.clone())
                }
            };
            o.opts.entry(k).or_default().push(v);
        } else {
            o.pos.push(a.clone());
        }
    }
    Ok(o)
}

fn is_bool_option(key: &str) -> bool {
    matches!(key, "destroy-data" | "keep-job-configs")
        || KINDS.iter().any(|k| k.bools.contains(&key))
}

fn dispatch(etc: &Path, args: &[String]) -> R<String> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    if words.first() == Some(&"version") || words.first() == Some(&"versions") {
        let v = version_text();
        return Ok(format!(
            "proxmox-backup-server {v}-1 running version: {v}\n"
        ));
    }
    if words.first() == Some(&"task") {
        return match words.get(1) {
            Some(&"list") => task_list(),
            _ => plain(no_command(&words)),
        };
    }
    if words.first() == Some(&"node") {
        let o = getopt(&args[2.min(args.len())..])?;
        return match words.get(1) {
            Some(&"show") => node_show(etc),
            Some(&"update") => node_update(etc, o),
            _ => plain(no_command(&words)),
        };
    }
    for kind in KINDS {
        let n = kind.words.len();
        if words.len() > n && words[..n] == *kind.words {
            let verb = words[n];
            let o = getopt(&args[n + 1..])?;
            return object(etc, kind, verb, o);
        }
    }
    plain(no_command(&words))
}

/// `task list`: unlike the config subcommands it is answered by the proxy's HTTPS API on
/// `localhost:8007`, so it fails as the client does while `proxmox-backup-proxy` is stopped
/// (unit states of the fake `systemctl`, `$PBS_DOUBLE_UNIT_STATE`). The double runs no
/// tasks: the list is empty.
fn task_list() -> R<String> {
    let down = |unit: &str| {
        std::env::var_os("PBS_DOUBLE_UNIT_STATE")
            .and_then(|d| std::fs::read_to_string(Path::new(&d).join(unit)).ok())
            .is_some_and(|s| s.trim() != "active")
    };
    if down("proxmox-backup-proxy") {
        return plain(
            "error trying to connect: tcp connect error: Connection refused (os error 111)",
        );
    }
    Ok("[]\n".to_string())
}

fn no_command(words: &[&str]) -> String {
    format!("no such command '{}'", words.join(" "))
}

fn object(etc: &Path, kind: &Kind, verb: &str, mut o: Opts) -> R<String> {
    o.opts.remove("output-format");
    let file = etc.join(kind.file);
    let mut cfg = load(&file)?;
    let mut priv_cfg = match kind.priv_file {
        Some(p) => load(&etc.join(p))?,
        None => SectionConfig::new(),
    };
    let id_needed = |o: &Opts| -> R<String> {
        match o.pos.first() {
            Some(id) => Ok(id.clone()),
            None => param(kind.id_key, "parameter is missing and it is not optional."),
        }
    };
    match verb {
        "list" => {
            let list: Vec<Value> = cfg
                .sections
                .iter()
                .filter(|s| s.ty == kind.ty || (kind.ty == "dns" && s.ty == "standalone"))
                .map(|s| to_json(kind, s))
                .collect();
            Ok(format!("{}\n", Value::Array(list)))
        }
        "show" | "config" => {
            let id = id_needed(&o)?;
            match find(&cfg, kind, &id) {
                Some(s) => Ok(format!("{}\n", to_json(kind, s))),
                None => plain(fill(kind.msgs.update_missing, &id)),
            }
        }
        "create" | "add" => {
            if kind.ty == "dns" && verb == "add" {
                // `acme plugin add TYPE ID`
                if o.pos.first().map(String::as_str) == Some("dns") {
                    o.pos.remove(0);
                }
            }
            let id = id_needed(&o)?;
            if kind.ty == "datastore" {
                match o.pos.get(1) {
                    Some(p) => {
                        o.opts.insert("path".into(), vec![p.clone()]);
                    }
                    None => return param("path", "parameter is missing and it is not optional."),
                }
            }
            check_id(kind, &id)?;
            // PBS 3.3 added `--reuse-datastore`: adopt an existing chunk store.
            let mut reuse = false;
            if kind.ty == "datastore" && version() >= (3, 3, 0) {
                if let Some(v) = o.opts.remove("reuse-datastore") {
                    match v.last().map(|v| parse_bool(v)) {
                        Some(Some(b)) => reuse = b,
                        _ => return param("reuse-datastore", "Unable to parse boolean option."),
                    }
                }
            }
            let mut values = check_opts(kind, &o, true)?;
            if find(&cfg, kind, &id).is_some()
                || (kind.priv_file.is_some() && cfg.find_id(&id).is_some())
            {
                return if kind.msgs.exists_param {
                    param(kind.id_key, fill(kind.msgs.exists, &id))
                } else {
                    plain(fill(kind.msgs.exists, &id))
                };
            }
            if kind.ty == "sync"
                && !values.contains_key("remote")
                && values.get("remote-store") == values.get("store")
            {
                return plain("source and target datastore can't be the same");
            }
            if kind.ty == "matcher" {
                check_targets(&cfg, &values)?;
            }
            let mut out = String::new();
            if kind.ty == "datastore" {
                let path = values
                    .get("path")
                    .and_then(|v| v.first())
                    .cloned()
                    .unwrap_or_default();
                out = if reuse {
                    open_chunk_store(etc, &id, &path)?
                } else {
                    create_chunk_store(etc, &id, &path)?
                };
            }
            let secrets = split_secrets(kind, &mut values);
            let mut section = Section::new(kind.ty, &id);
            set_values(kind, &mut section, &values);
            cfg.push(section);
            save_kind(etc, kind, &cfg, &mut priv_cfg, &id, secrets, true)?;
            Ok(out)
        }
        "update" | "set" => {
            let id = id_needed(&o)?;
            let deletes = o.opts.remove("delete").unwrap_or_default();
            let mut values = check_opts(kind, &o, false)?;
            for d in &deletes {
                for k in d.split(|c: char| c == ',' || c == ';' || c.is_whitespace()) {
                    if k.is_empty() {
                        continue;
                    }
                    if !kind.optional.contains(&k)
                        || kind.secrets.contains(&k) && kind.priv_file.is_none()
                    {
                        return param(
                            "delete",
                            format!("value '{k}' is not defined in the enumeration."),
                        );
                    }
                }
            }
            if kind.ty == "matcher" {
                check_targets(&cfg, &values)?;
            }
            let Some(section) = find_mut(&mut cfg, kind, &id) else {
                return plain(fill(kind.msgs.update_missing, &id));
            };
            for d in &deletes {
                for k in d.split(|c: char| c == ',' || c == ';' || c.is_whitespace()) {
                    section.remove(k);
                }
            }
            let secrets = split_secrets(kind, &mut values);
            set_values(kind, section, &values);
            let mut secrets = secrets;
            for d in &deletes {
                for k in d.split(|c: char| c == ',' || c == ';' || c.is_whitespace()) {
                    if kind.secrets.contains(&k) {
                        secrets.insert(k.to_string(), Vec::new());
                    }
                }
            }
            save_kind(etc, kind, &cfg, &mut priv_cfg, &id, secrets, false)?;
            Ok(String::new())
        }
        v if v == kind.remove_verb => {
            let id = id_needed(&o)?;
            if kind.ty == "remote" {
                let sync = load(&etc.join("sync.cfg"))?;
                if let Some(job) = sync
                    .sections
                    .iter()
                    .find(|s| s.ty == "sync" && s.get("remote") == Some(id.as_str()))
                {
                    return param(
                        "name",
                        format!(
                            "remote '{id}' is used by sync job '{}' (datastore '{}')",
                            job.id,
                            job.get("store").unwrap_or("")
                        ),
                    );
                }
            }
            if kind.ty == "matcher" || kind.priv_file.is_some() {
                // proxmox-notify: an endpoint used by a matcher cannot be removed
                if kind.ty != "matcher" {
                    if let Some(m) = cfg
                        .sections
                        .iter()
                        .find(|s| s.ty == "matcher" && s.get_all("target").contains(&id.as_str()))
                    {
                        return plain(format!("cannot delete '{id}', referenced by: {}", m.id));
                    }
                }
            }
            if find(&cfg, kind, &id).is_none() {
                return plain(fill(kind.msgs.remove_missing, &id));
            }
            let ty = find(&cfg, kind, &id)
                .map(|s| s.ty.clone())
                .unwrap_or_default();
            if kind.ty == "datastore"
                && o.opts
                    .get("destroy-data")
                    .and_then(|v| v.last())
                    .and_then(|v| parse_bool(v))
                    == Some(true)
            {
                let path = find(&cfg, kind, &id)
                    .and_then(|s| s.get("path"))
                    .unwrap_or("")
                    .to_string();
                destroy_data(etc, &path);
            }
            cfg.remove(&ty, &id);
            let keep_jobs = o
                .opts
                .get("keep-job-configs")
                .and_then(|v| v.last())
                .and_then(|v| parse_bool(v))
                == Some(true);
            if kind.ty == "datastore" && !keep_jobs {
                // `delete_datastore` removes the jobs of the datastore with it
                for (f, ty) in [
                    ("sync.cfg", "sync"),
                    ("verification.cfg", "verification"),
                    ("prune.cfg", "prune"),
                ] {
                    let p = etc.join(f);
                    let mut jobs = load(&p)?;
                    let before = jobs.sections.len();
                    jobs.sections
                        .retain(|s| !(s.ty == ty && s.get("store") == Some(id.as_str())));
                    if jobs.sections.len() != before {
                        write_cfg(&p, &jobs, false)?;
                    }
                }
            }
            if let Some(pf) = kind.priv_file {
                priv_cfg.sections.retain(|s| s.id != id);
                write_cfg(&etc.join(pf), &priv_cfg, true)?;
            }
            write_cfg(&file, &cfg, false)?;
            Ok(String::new())
        }
        _ => plain(format!("no such command '{} {verb}'", kind.words.join(" "))),
    }
}

fn find<'a>(cfg: &'a SectionConfig, kind: &Kind, id: &str) -> Option<&'a Section> {
    cfg.sections
        .iter()
        .find(|s| s.id == id && (s.ty == kind.ty || (kind.ty == "dns" && s.ty == "standalone")))
}

fn find_mut<'a>(cfg: &'a mut SectionConfig, kind: &Kind, id: &str) -> Option<&'a mut Section> {
    cfg.sections
        .iter_mut()
        .find(|s| s.id == id && (s.ty == kind.ty || (kind.ty == "dns" && s.ty == "standalone")))
}

fn check_targets(cfg: &SectionConfig, values: &BTreeMap<String, Vec<String>>) -> R<()> {
    for t in values.get("target").into_iter().flatten() {
        let known =
            cfg.sections.iter().any(|s| s.id == *t && s.ty != "matcher") || t == "mail-to-root";
        if !known {
            return plain(format!("endpoint '{t}' does not exist"));
        }
    }
    Ok(())
}

/// PROXMOX_SAFE_ID: `^[A-Za-z0-9_][A-Za-z0-9._\-]*$`; datastore names 3–32 characters.
fn check_id(kind: &Kind, id: &str) -> R<()> {
    let mut chars = id.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !first_ok || !rest_ok {
        return param(kind.id_key, "value does not match the regex pattern");
    }
    let (min, max) = if kind.ty == "datastore" {
        (3, 32)
    } else {
        (2, 32)
    };
    if id.len() < min {
        return param(
            kind.id_key,
            format!("value must be at least {min} characters long"),
        );
    }
    if id.len() > max {
        return param(
            kind.id_key,
            format!("value may only be {max} characters long"),
        );
    }
    Ok(())
}

fn check_opts(kind: &Kind, o: &Opts, create: bool) -> R<BTreeMap<String, Vec<String>>> {
    let mut errs = Vec::new();
    let mut out = BTreeMap::new();
    for (k, vs) in &o.opts {
        if k == "digest" || k == "delete" {
            continue;
        }
        let known = kind.optional.contains(&k.as_str())
            || kind.required.contains(&k.as_str())
                && !(kind.ty == "datastore" && !create && k == "path");
        if !known {
            errs.push((
                k.clone(),
                "schema does not allow additional properties.".to_string(),
            ));
            continue;
        }
        if vs.len() > 1 && !kind.arrays.contains(&k.as_str()) {
            errs.push((
                k.clone(),
                "expected a single value, got an array".to_string(),
            ));
            continue;
        }
        for v in vs {
            if kind.bools.contains(&k.as_str()) && parse_bool(v).is_none() {
                errs.push((k.clone(), "Unable to parse boolean option.".to_string()));
            }
            if kind.numbers.contains(&k.as_str()) && v.parse::<u64>().is_err() {
                errs.push((
                    k.clone(),
                    "unable to parse integer - invalid digit found in string".to_string(),
                ));
            }
            if v.contains('\n') {
                errs.push((k.clone(), "value contains a line feed".to_string()));
            }
        }
        out.insert(k.clone(), vs.clone());
    }
    if create {
        for r in kind.required {
            if !out.contains_key(*r) {
                errs.push((
                    r.to_string(),
                    "parameter is missing and it is not optional.".to_string(),
                ));
            }
        }
        if matches!(kind.ty, "smtp" | "sendmail")
            && !out.contains_key("mailto")
            && !out.contains_key("mailto-user")
        {
            return plain(
                "must at least provide one recipient, either in mailto or in mailto-user",
            );
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        errs.sort();
        Err(Fail::Param(errs))
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Some(true),
        "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

fn split_secrets(
    kind: &Kind,
    values: &mut BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for s in kind.secrets {
        if let Some(v) = values.remove(*s) {
            out.insert(s.to_string(), v);
        }
    }
    out
}

/// Sets the values of a section: arrays replaced, booleans `true`/`false`, keys sorted as
/// serde_json writes them.
fn set_values(kind: &Kind, section: &mut Section, values: &BTreeMap<String, Vec<String>>) {
    for (k, vs) in values {
        section.remove(k);
        for v in vs {
            let v = if kind.bools.contains(&k.as_str()) {
                parse_bool(v).unwrap_or(false).to_string()
            } else {
                v.trim().to_string()
            };
            section.props.push(Prop::new(k.clone(), v));
        }
    }
    sort_props(section);
}

fn sort_props(section: &mut Section) {
    section.props.sort_by(|a, b| a.key.cmp(&b.key));
}

#[allow(clippy::too_many_arguments)]
fn save_kind(
    etc: &Path,
    kind: &Kind,
    cfg: &SectionConfig,
    priv_cfg: &mut SectionConfig,
    id: &str,
    secrets: BTreeMap<String, Vec<String>>,
    _create: bool,
) -> R<()> {
    let mut cfg = cfg.clone();
    if kind.priv_file.is_none() {
        // secrets kept in the file itself: a remote's password base64-encoded
        // (`REMOTE_PASSWORD_BASE64_SCHEMA`, `proxmox_serde::string_as_base64`), S3 keys as given
        if let Some(section) = find_mut(&mut cfg, kind, id) {
            for (k, vs) in &secrets {
                section.remove(k);
                for v in vs {
                    let stored = if kind.ty == "remote" {
                        base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
                    } else {
                        v.clone()
                    };
                    section.props.push(Prop::new(k.clone(), stored));
                }
            }
            sort_props(section);
        }
    } else if !secrets.is_empty() || priv_cfg.find(kind.ty, id).is_none() {
        let existing = priv_cfg.remove(kind.ty, id);
        let mut section = existing.unwrap_or_else(|| Section::new(kind.ty, id));
        for (k, vs) in &secrets {
            section.remove(k);
            for v in vs {
                section.props.push(Prop::new(k.clone(), v.clone()));
            }
        }
        sort_props(&mut section);
        // proxmox-notify writes a priv section for every endpoint with secrets
        if !section.props.is_empty() || matches!(kind.ty, "smtp" | "gotify" | "webhook") {
            priv_cfg.push(section);
        }
        if let Some(pf) = kind.priv_file {
            write_cfg(&etc.join(pf), priv_cfg, true)?;
        }
    }
    write_cfg(&etc.join(kind.file), &cfg, false)
}

fn to_json(kind: &Kind, s: &Section) -> Value {
    let mut m = Map::new();
    m.insert(kind.id_key.to_string(), Value::String(s.id.clone()));
    if kind.ty == "dns" {
        m.insert("type".into(), Value::String(s.ty.clone()));
    }
    for p in &s.props {
        if kind.secrets.contains(&p.key.as_str()) {
            continue;
        }
        let v = p.effective();
        let val = if kind.bools.contains(&p.key.as_str()) {
            Value::Bool(parse_bool(v).unwrap_or(false))
        } else if kind.numbers.contains(&p.key.as_str()) {
            v.parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(v.into()))
        } else {
            Value::String(v.to_string())
        };
        if kind.arrays.contains(&p.key.as_str()) {
            match m
                .entry(p.key.clone())
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                Value::Array(a) => a.push(val),
                other => *other = Value::Array(vec![val]),
            }
        } else {
            m.insert(p.key.clone(), val);
        }
    }
    if kind.priv_file.is_some() && kind.ty != "matcher" {
        m.insert("origin".into(), Value::String("user-created".into()));
    }
    Value::Object(m)
}

/// Reads a section-config file as PBS does (`proxmox-section-config`): a missing file is
/// empty; a file PBS cannot parse fails the call with PBS's message.
fn load(path: &Path) -> R<SectionConfig> {
    match fs::read_to_string(path) {
        Ok(text) => parse_pbs(&text).map_err(|(line, msg)| {
            Fail::Plain(format!(
                "parsing {:?} failed: line {line} - {msg}",
                path.display().to_string()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SectionConfig::new()),
        Err(e) => plain(format!(
            "unable to read {:?} - {e}",
            path.display().to_string()
        )),
    }
}

/// Whether `key` repeats (one line per item) in sections of type `ty`.
fn is_array(ty: &str, key: &str) -> bool {
    KINDS.iter().any(|k| {
        k.ty == ty && (k.arrays.contains(&key) || k.secrets.contains(&key) && k.ty == "webhook")
    })
}

/// The grammar of `proxmox-section-config` (PBS 3.x, `default_parse_section_*`), with the
/// array keys of the modelled kinds: lines as [`str::lines`]; outside a section empty lines
/// are skipped and a header starts with a letter, `type: id`; inside, an empty line ends the
/// section and a property is an indented `key value`; a repeated non-array key is an error
/// (`duplicate property 'KEY'`). Errors are `(line, message)`, 1-based.
pub fn parse_pbs(text: &str) -> Result<SectionConfig, (usize, String)> {
    let mut cfg = SectionConfig::new();
    let mut current: Option<Section> = None;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if let Some(sec) = current.as_mut() {
            if line.trim().is_empty() {
                if let Some(s) = current.take() {
                    cfg.push(s);
                }
                continue;
            }
            if !line.starts_with(char::is_whitespace) {
                return Err((n, "syntax error (expected section properties)".into()));
            }
            let body = line.trim();
            let Some((k, v)) = body.split_once(char::is_whitespace) else {
                return Err((n, "syntax error (expected section properties)".into()));
            };
            let v = v.trim();
            if v.is_empty() {
                return Err((n, "syntax error (expected section properties)".into()));
            }
            if sec.has(k) && !is_array(&sec.ty, k) {
                return Err((n, format!("duplicate property '{k}'")));
            }
            sec.props.push(Prop::new(k, v));
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let ok_start = line.chars().next().is_some_and(char::is_alphabetic);
        let Some((ty, id)) = line.split_once(':').filter(|_| ok_start) else {
            return Err((n, "syntax error (expected header)".into()));
        };
        let (ty, id) = (ty.trim(), id.trim());
        if ty.is_empty() || id.is_empty() {
            return Err((n, "syntax error (expected header)".into()));
        }
        current = Some(Section::new(ty, id));
    }
    if let Some(s) = current.take() {
        cfg.push(s);
    }
    Ok(cfg)
}

/// The `proxmox-section-config` writer: `type: id`, `\tkey value` lines, an empty line
/// between sections, none at the end.
pub fn render_pbs(cfg: &SectionConfig) -> String {
    let mut out = String::new();
    for s in &cfg.sections {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("{}: {}\n", s.ty, s.id));
        for p in &s.props {
            out.push_str(&format!("\t{} {}\n", p.key, p.effective()));
        }
    }
    out
}

/// Writes a config file as `replace_backup_config` (`root:backup` 0640) or
/// `replace_secret_config` (`root:root` 0600) does: atomically, by rename.
fn write_cfg(path: &Path, cfg: &SectionConfig, secret: bool) -> R<()> {
    write_text(path, &render_pbs(cfg), secret)
}

fn write_text(path: &Path, text: &str, secret: bool) -> R<()> {
    let io = |e: std::io::Error| {
        Fail::Plain(format!(
            "unable to write {:?} - {e}",
            path.display().to_string()
        ))
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp_pbs_double");
    fs::write(&tmp, text).map_err(io)?;
    fs::set_permissions(
        &tmp,
        fs::Permissions::from_mode(if secret { 0o600 } else { 0o640 }),
    )
    .map_err(io)?;
    let gid = if secret { 0 } else { backup_ids(path).1 };
    let _ = std::os::unix::fs::chown(&tmp, Some(0), Some(gid));
    fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

/// The `backup` user of the root holding `etc` (its `etc/passwd`), else 34:34.
fn backup_ids(etc_file: &Path) -> (u32, u32) {
    let root = etc_file
        .ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "etc"))
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == "backup" {
            if let (Ok(u), Ok(g)) = (f[2].parse(), f[3].parse()) {
                return (u, g);
            }
        }
    }
    (34, 34)
}

/// `ChunkStore::create` (pbs-datastore/src/chunk_store.rs): the path (made absolute under the
/// root the double serves), `.chunks`, `.lock`, `.chunks/0000`…`ffff`, owned by `backup`.
fn create_chunk_store(etc: &Path, name: &str, path: &str) -> R<String> {
    if !path.starts_with('/') {
        return plain(format!("expected absolute path - got {path:?}"));
    }
    let root = etc
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let base = root.join(path.trim_start_matches('/'));
    let (uid, gid) = backup_ids(etc);
    let shown = |p: &str| format!("{p:?}");
    let existed = base.is_dir();
    if let Err(e) = fs::create_dir_all(&base) {
        return plain(format!(
            "unable to create chunk store '{name}' at {} - {}",
            shown(path),
            errno(&e)
        ));
    }
    if !existed {
        let _ = fs::set_permissions(&base, fs::Permissions::from_mode(0o750));
    }
    let _ = std::os::unix::fs::chown(&base, Some(uid), Some(gid));
    let chunks = base.join(".chunks");
    let chunk_shown = format!("{}/.chunks", path.trim_end_matches('/'));
    if let Err(e) = fs::create_dir(&chunks) {
        return plain(format!(
            "unable to create chunk store '{name}' subdir {} - {}",
            shown(&chunk_shown),
            errno(&e)
        ));
    }
    let _ = fs::set_permissions(&chunks, fs::Permissions::from_mode(0o750));
    let _ = std::os::unix::fs::chown(&chunks, Some(uid), Some(gid));
    let lock = base.join(".lock");
    fs::write(&lock, b"").map_err(|e| Fail::Plain(format!("{e}")))?;
    let _ = fs::set_permissions(&lock, fs::Permissions::from_mode(0o644));
    let _ = std::os::unix::fs::chown(&lock, Some(uid), Some(gid));
    let mut builder = fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o750);
    for i in 0..0x10000u32 {
        let d = chunks.join(format!("{i:04x}"));
        if let Err(e) = builder.create(&d) {
            return plain(format!(
                "unable to create chunk store '{name}' subdir {} - {}",
                shown(&format!("{chunk_shown}/{i:04x}")),
                errno(&e)
            ));
        }
        let _ = std::os::unix::fs::chown(&d, Some(uid), Some(gid));
    }
    Ok(String::new())
}

/// The PBS version the double plays: `$PBS_DOUBLE_VERSION` (set by
/// `PbsDouble::install_version`), else 3.2.4.
pub fn version_text() -> String {
    std::env::var("PBS_DOUBLE_VERSION").unwrap_or_else(|_| "3.2.4".to_string())
}

fn version() -> (u32, u32, u32) {
    let v = version_text();
    let mut it = v.split(['.', '-']).map(|n| n.parse::<u32>().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

/// `--reuse-datastore` (PBS 3.3+): the chunk store must be there (`ChunkStore::open`); it is
/// not touched.
fn open_chunk_store(etc: &Path, name: &str, path: &str) -> R<String> {
    if !path.starts_with('/') {
        return plain(format!("expected absolute path - got {path:?}"));
    }
    let root = etc
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let chunks = root.join(path.trim_start_matches('/')).join(".chunks");
    if chunks.is_dir() {
        Ok(String::new())
    } else {
        plain(format!(
            "unable to open chunk store '{name}' at {:?} - ENOENT: No such file or directory",
            format!("{}/.chunks", path.trim_end_matches('/'))
        ))
    }
}

/// `--destroy-data` (PBS 3.1+): the chunk store, the backup groups and the lock go, then the
/// folder if it is empty.
fn destroy_data(etc: &Path, path: &str) {
    let root = etc
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let base = root.join(path.trim_start_matches('/'));
    for sub in [".chunks", "vm", "ct", "host", "ns"] {
        let _ = fs::remove_dir_all(base.join(sub));
    }
    for f in [".lock", ".gc-status"] {
        let _ = fs::remove_file(base.join(f));
    }
    let _ = fs::remove_dir(&base);
}

/// nix's error display: `EEXIST: File exists`.
fn errno(e: &std::io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(17) => "EEXIST",
        Some(2) => "ENOENT",
        Some(13) => "EACCES",
        Some(20) => "ENOTDIR",
        Some(28) => "ENOSPC",
        _ => "EIO",
    };
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    format!("{name}: {text}")
}

/// Parses `node.cfg` (`src/tools/config.rs::value_from_str`): leading `#` lines are the
/// description, then `key: value` lines (other `#` and empty lines skipped).
pub fn parse_node_cfg(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines().enumerate().peekable();
    let mut description = String::new();
    while let Some((_, line)) = lines.next_if(|(_, l)| l.starts_with('#')) {
        description.push_str(&line[1..]);
        description.push('\n');
    }
    if !description.is_empty() {
        out.insert("description".to_string(), description);
    }
    for (lineno, line) in lines {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some(colon) = line.find(':') else {
            return Err(format!(
                "line {lineno}: missing colon to separate key from value"
            ));
        };
        if colon == 0 {
            return Err(format!("line {lineno}: empty key not allowed"));
        }
        let key = &line[..colon];
        if !NODE_KEYS.contains(&key) {
            return Err(format!(
                "line {lineno}: invalid key '{key}' and schema does not allow additional properties"
            ));
        }
        out.insert(key.to_string(), line[colon + 1..].trim_start().to_string());
    }
    Ok(out)
}

/// Writes `node.cfg` (`object_to_writer`): the description as `#` lines, then `key: value`
/// sorted.
pub fn render_node_cfg(map: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    if let Some(d) = map.get("description") {
        for l in d.lines() {
            out.push_str(&format!("#{l}\n"));
        }
    }
    for (k, v) in map {
        if k != "description" {
            out.push_str(&format!("{k}: {v}\n"));
        }
    }
    out
}

fn node_show(etc: &Path) -> R<String> {
    let text = fs::read_to_string(etc.join("node.cfg")).unwrap_or_default();
    let map = parse_node_cfg(&text).map_err(Fail::Plain)?;
    let mut m = Map::new();
    for (k, v) in map {
        let val = if k == "task-log-max-days" {
            v.parse::<u64>()
                .map(Value::from)
                .unwrap_or(Value::String(v))
        } else {
            Value::String(v)
        };
        m.insert(k, val);
    }
    Ok(format!("{}\n", Value::Object(m)))
}

fn node_update(etc: &Path, mut o: Opts) -> R<String> {
    o.opts.remove("output-format");
    let path = etc.join("node.cfg");
    let text = fs::read_to_string(&path).unwrap_or_default();
    let mut map = parse_node_cfg(&text).map_err(Fail::Plain)?;
    let deletes = o.opts.remove("delete").unwrap_or_default();
    let mut errs = Vec::new();
    for (k, vs) in &o.opts {
        if k == "digest" {
            continue;
        }
        if !NODE_KEYS.contains(&k.as_str()) {
            errs.push((
                k.clone(),
                "schema does not allow additional properties.".to_string(),
            ));
        } else if vs.len() > 1 {
            errs.push((
                k.clone(),
                "expected a single value, got an array".to_string(),
            ));
        }
    }
    if !errs.is_empty() {
        return Err(Fail::Param(errs));
    }
    for d in &deletes {
        for k in d.split(|c: char| c == ',' || c == ';' || c.is_whitespace()) {
            if k.is_empty() {
                continue;
            }
            if !NODE_KEYS.contains(&k) {
                return param(
                    "delete",
                    format!("value '{k}' is not defined in the enumeration."),
                );
            }
            map.remove(k);
        }
    }
    for (k, vs) in o.opts {
        if k == "digest" {
            continue;
        }
        if let Some(v) = vs.into_iter().next() {
            map.insert(k, v);
        }
    }
    // NodeConfig::validate: ACME domains unique
    let mut seen = Vec::new();
    for i in 0..5 {
        if let Some(v) = map.get(&format!("acmedomain{i}")) {
            let domain = v
                .split(',')
                .find_map(|p| p.strip_prefix("domain="))
                .unwrap_or_else(|| v.split(',').next().unwrap_or(""))
                .to_lowercase();
            if seen.contains(&domain) {
                return plain(format!("duplicate domain '{domain}' in ACME config"));
            }
            seen.push(domain);
        }
    }
    write_text(&path, &render_node_cfg(&map), false)?;
    Ok(String::new())
}
