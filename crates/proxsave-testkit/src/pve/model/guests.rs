//! Guests in the double: `/cluster/resources`, `/nodes/{node}/qemu|lxc` (list, create,
//! config get/set) and `/nodes/{node}/storage/{id}/content`.
//!
//! A guest is its config file, as in pmxcfs: `nodes/<node>/qemu-server/<vmid>.conf` or
//! `nodes/<node>/lxc/<vmid>.conf` under the double's `/etc/pve` (a file written there directly
//! is a guest at once), plus the guests added with `PveDouble::add_guest` (no file). Storage
//! volumes are the ids in `pve-state.json` `volumes` (`PveDouble::add_volume`).
//!
//! Facts (qemu-server `API2/Qemu.pm`, `QemuServer.pm::write_vm_config`; pve-container
//! `API2/LXC.pm`, `LXC/Config.pm::update_pct_config`, `write_pct_config`; pve-cluster
//! `check_vmid_unused`, `remote_node_ip`; pve-storage `activate_volumes`):
//!
//! * pvesh takes only the schema's options: `meta`, `parent`, `snaptime`, `vmstate`,
//!   `running*` (qemu) and every `lxc.*` key are `Unknown option`s;
//! * `unprivileged` of a CT: `unable to modify read-only option: 'unprivileged'`;
//! * a missing guest: `Configuration file 'nodes/N/qemu-server/ID.conf' does not exist`;
//! * a used VMID at create: `VM ID already exists on node 'N'` (`CT` for a container);
//! * a CT create needs `ostemplate` (`property is missing and it is not optional`);
//! * an absent volume: `volume 'ID' does not exist`; an absent storage: `storage 'ID' does
//!   not exist`;
//! * the config is rewritten the PVE way: description `#` lines (encoded), the keys sorted,
//!   raw `lxc.*` keys after them, then the untouched snapshot/pending sections.

use std::collections::BTreeMap;
use std::fs;

use proxsave_formats::text::{decode_text, encode_text};
use serde_json::{Value, json};

use super::{Ctx, Fail, Kind, R, die, digest, getopt, one, param_err, verify};

/// qemu options of the config schema (`json_config_properties`), numbered ones without their
/// number (expanded by [`known`]).
const QEMU_KEYS: &[(&str, Kind)] = &[
    ("acpi", Kind::Bool),
    ("affinity", Kind::Str),
    ("agent", Kind::Str),
    ("amd-sev", Kind::Str),
    ("arch", Kind::Enum(&["x86_64", "aarch64"])),
    ("args", Kind::Str),
    ("audio0", Kind::Str),
    ("autostart", Kind::Bool),
    ("balloon", Kind::Int),
    ("bios", Kind::Enum(&["seabios", "ovmf"])),
    ("boot", Kind::Str),
    ("bootdisk", Kind::Str),
    ("cdrom", Kind::Str),
    ("cicustom", Kind::Str),
    ("cipassword", Kind::Str),
    (
        "citype",
        Kind::Enum(&["configdrive2", "nocloud", "opennebula"]),
    ),
    ("ciupgrade", Kind::Bool),
    ("ciuser", Kind::Str),
    ("cores", Kind::Int),
    ("cpu", Kind::Str),
    ("cpulimit", Kind::Str),
    ("cpuunits", Kind::Int),
    ("description", Kind::Str),
    ("efidisk0", Kind::Str),
    ("freeze", Kind::Bool),
    ("hookscript", Kind::Str),
    ("hotplug", Kind::Str),
    ("hugepages", Kind::Str),
    ("ivshmem", Kind::Str),
    ("keephugepages", Kind::Bool),
    ("keyboard", Kind::Str),
    ("kvm", Kind::Bool),
    ("localtime", Kind::Bool),
    ("lock", Kind::Str),
    ("machine", Kind::Str),
    ("memory", Kind::Str),
    ("migrate_downtime", Kind::Str),
    ("migrate_speed", Kind::Int),
    ("name", Kind::Str),
    ("nameserver", Kind::Str),
    ("numa", Kind::Bool),
    ("onboot", Kind::Bool),
    ("ostype", Kind::Str),
    ("protection", Kind::Bool),
    ("reboot", Kind::Bool),
    ("rng0", Kind::Str),
    ("scsihw", Kind::Str),
    ("searchdomain", Kind::Str),
    ("shares", Kind::Int),
    ("smbios1", Kind::Str),
    ("smp", Kind::Int),
    ("sockets", Kind::Int),
    ("spice_enhancements", Kind::Str),
    ("sshkeys", Kind::Str),
    ("startdate", Kind::Str),
    ("startup", Kind::Str),
    ("tablet", Kind::Bool),
    ("tags", Kind::Str),
    ("tdf", Kind::Bool),
    ("template", Kind::Bool),
    ("tpmstate0", Kind::Str),
    ("vcpus", Kind::Int),
    ("vga", Kind::Str),
    ("vmgenid", Kind::Str),
    ("vmstatestorage", Kind::Str),
    ("watchdog", Kind::Str),
];

/// Numbered qemu options and their highest number.
const QEMU_NUMBERED: &[(&str, u32)] = &[
    ("hostpci", 15),
    ("ide", 3),
    ("ipconfig", 31),
    ("net", 31),
    ("numa", 7),
    ("parallel", 2),
    ("sata", 5),
    ("scsi", 30),
    ("serial", 3),
    ("unused", 255),
    ("usb", 14),
    ("virtio", 15),
    ("virtiofs", 9),
];

/// LXC options of the config schema (`PVE::LXC::Config` `$confdesc`).
const LXC_KEYS: &[(&str, Kind)] = &[
    (
        "arch",
        Kind::Enum(&["amd64", "i386", "arm64", "armhf", "riscv32", "riscv64"]),
    ),
    ("cmode", Kind::Enum(&["shell", "console", "tty"])),
    ("console", Kind::Bool),
    ("cores", Kind::Int),
    ("cpulimit", Kind::Str),
    ("cpuunits", Kind::Int),
    ("debug", Kind::Bool),
    ("description", Kind::Str),
    ("entrypoint", Kind::Str),
    ("env", Kind::Str),
    ("features", Kind::Str),
    ("hookscript", Kind::Str),
    ("hostname", Kind::Str),
    ("lock", Kind::Str),
    ("memory", Kind::Int),
    ("nameserver", Kind::Str),
    ("onboot", Kind::Bool),
    ("ostype", Kind::Str),
    ("protection", Kind::Bool),
    ("rootfs", Kind::Str),
    ("searchdomain", Kind::Str),
    ("startup", Kind::Str),
    ("swap", Kind::Int),
    ("tags", Kind::Str),
    ("template", Kind::Bool),
    ("timezone", Kind::Str),
    ("tty", Kind::Int),
    ("unprivileged", Kind::Bool),
];

const LXC_NUMBERED: &[(&str, u32)] = &[("dev", 255), ("mp", 255), ("net", 31), ("unused", 255)];

/// The options of `kind`'s config schema plus `extra`.
fn known(kind: &str, extra: &[(&'static str, Kind)]) -> Vec<(String, Kind)> {
    let (keys, numbered) = if kind == "qemu" {
        (QEMU_KEYS, QEMU_NUMBERED)
    } else {
        (LXC_KEYS, LXC_NUMBERED)
    };
    let mut out: Vec<(String, Kind)> = keys
        .iter()
        .chain(extra)
        .map(|(k, t)| (k.to_string(), *t))
        .collect();
    for (p, max) in numbered {
        for n in 0..=*max {
            out.push((format!("{p}{n}"), Kind::Str));
        }
    }
    out
}

fn folder(kind: &str) -> &'static str {
    if kind == "qemu" { "qemu-server" } else { "lxc" }
}

fn word(kind: &str) -> &'static str {
    if kind == "qemu" { "VM" } else { "CT" }
}

/// A guest of the cluster.
#[derive(Clone, Debug)]
pub(super) struct Listed {
    vmid: u64,
    kind: &'static str,
    node: String,
    /// The config file (relative to `/etc/pve`), when it has one.
    file: Option<String>,
}

/// A guest config as the double keeps it: the current section parsed, the rest verbatim.
#[derive(Clone, Debug, Default)]
struct Conf {
    description: Vec<String>,
    props: BTreeMap<String, String>,
    raw: Vec<(String, String)>,
    /// From the first `[section]` header on.
    rest: String,
}

impl Conf {
    fn parse(text: &str) -> Conf {
        let mut c = Conf::default();
        let mut lines = text.split_inclusive('\n');
        for line in lines.by_ref() {
            let t = line.trim_end_matches(['\n', '\r']);
            if t.trim_start().starts_with('[') {
                c.rest.push_str(line);
                break;
            }
            if t.trim().is_empty() {
                continue;
            }
            if let Some(d) = t.strip_prefix('#') {
                c.description.push(decode_text(d));
            } else if t.starts_with("lxc.") {
                if let Some(at) = t.find([':', '=']) {
                    c.raw
                        .push((t[..at].trim().to_string(), t[at + 1..].trim().to_string()));
                }
            } else if let Some((k, v)) = t.split_once(':') {
                c.props.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        for line in lines {
            c.rest.push_str(line);
        }
        c
    }

    fn write(&self) -> String {
        let mut out = String::new();
        for d in &self.description {
            out.push('#');
            out.push_str(&encode_text(d));
            out.push('\n');
        }
        for (k, v) in &self.props {
            out.push_str(&format!("{k}: {v}\n"));
        }
        for (k, v) in &self.raw {
            out.push_str(&format!("{k}: {v}\n"));
        }
        if !self.rest.is_empty() {
            out.push('\n');
            out.push_str(&self.rest);
        }
        out
    }

    fn json(&self, kind: &str, text: &str) -> Value {
        let mut v = json!({});
        for (k, val) in &self.props {
            v[k] = json!(val);
        }
        if !self.description.is_empty() {
            let mut d = self.description.join("\n");
            d.push('\n');
            v["description"] = json!(d);
        }
        if kind == "lxc" && !self.raw.is_empty() {
            v["lxc"] = json!(
                self.raw
                    .iter()
                    .map(|(k, x)| json!([k, x]))
                    .collect::<Vec<_>>()
            );
        }
        v["digest"] = json!(digest(text));
        v
    }
}

impl Ctx {
    /// Every guest of the cluster: the config files of each node, then the guests of the
    /// state without a file.
    pub(super) fn vmlist(&self) -> Vec<Listed> {
        let st = self.state();
        let mut out: Vec<Listed> = Vec::new();
        for node in &st.nodes {
            for kind in ["qemu", "lxc"] {
                let dir = format!("nodes/{node}/{}", folder(kind));
                let Ok(rd) = fs::read_dir(self.file(&dir)) else {
                    continue;
                };
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let Some(id) = name.strip_suffix(".conf") else {
                        continue;
                    };
                    let Ok(vmid) = id.parse::<u64>() else {
                        continue;
                    };
                    out.push(Listed {
                        vmid,
                        kind,
                        node: node.clone(),
                        file: Some(format!("{dir}/{name}")),
                    });
                }
            }
        }
        for (id, g) in &st.guests {
            let Ok(vmid) = id.parse::<u64>() else {
                continue;
            };
            if out.iter().any(|l| l.vmid == vmid) {
                continue;
            }
            out.push(Listed {
                vmid,
                kind: if g.kind == "lxc" { "lxc" } else { "qemu" },
                node: g.node.clone(),
                file: None,
            });
        }
        out.sort_by_key(|l| l.vmid);
        out
    }

    fn check_node(&self, node: &str) -> R<()> {
        if self.state().nodes.iter().any(|n| n == node) {
            Ok(())
        } else {
            die(format!("no such cluster node '{node}'\n"))
        }
    }

    fn guest_name(&self, l: &Listed) -> Option<String> {
        let text = self.read(l.file.as_deref()?);
        let c = Conf::parse(&text);
        c.props
            .get(if l.kind == "qemu" { "name" } else { "hostname" })
            .cloned()
    }

    /// `GET /cluster/resources [--type vm|storage|node|sdn]`.
    pub(super) fn cluster_resources(&mut self, rest: &[String]) -> R<Value> {
        let opts = getopt(
            rest,
            &[("type", Kind::Enum(&["vm", "storage", "node", "sdn"]))],
            &[],
        )?;
        let ty = one(&opts, "type");
        let want = |t: &str| ty.as_deref().is_none_or(|x| x == t);
        let st = self.state();
        let mut out = Vec::new();
        if want("node") {
            for n in &st.nodes {
                out.push(json!({"id": format!("node/{n}"), "type": "node", "node": n, "status": "online"}));
            }
        }
        if want("vm") {
            for l in self.vmlist() {
                let mut v = json!({
                    "id": format!("{}/{}", l.kind, l.vmid), "type": l.kind, "vmid": l.vmid,
                    "node": l.node, "status": "stopped", "template": 0,
                });
                if let Some(name) = self.guest_name(&l) {
                    v["name"] = json!(name);
                }
                out.push(v);
            }
        }
        if want("storage") {
            let cfg = self.storage_cfg();
            for n in &st.nodes {
                for s in &cfg.sections {
                    out.push(json!({
                        "id": format!("storage/{n}/{}", s.id), "type": "storage",
                        "storage": s.id, "node": n, "status": "available",
                    }));
                }
            }
        }
        Ok(Value::Array(out))
    }

    /// `GET /nodes/{node}/storage/{storage}/content`.
    pub(super) fn storage_content(&mut self, node: &str, sid: &str, rest: &[String]) -> R<Value> {
        let _ = getopt(rest, &[("content", Kind::Str), ("vmid", Kind::Int)], &[])?;
        self.check_node(node)?;
        if self.storage_cfg().find_id(sid).is_none() {
            return die(format!("storage '{sid}' does not exist\n"));
        }
        let prefix = format!("{sid}:");
        let out: Vec<Value> = self
            .state()
            .volumes
            .iter()
            .filter(|v| v.starts_with(&prefix))
            .map(|v| {
                let content = if v.contains(":iso/") {
                    "iso"
                } else if v.contains(":vztmpl/") {
                    "vztmpl"
                } else if v.contains(":backup/") {
                    "backup"
                } else if v.contains("subvol-") {
                    "rootdir"
                } else {
                    "images"
                };
                json!({"volid": v, "content": content, "format": "raw", "size": 0})
            })
            .collect();
        Ok(Value::Array(out))
    }

    /// `/nodes/{node}/{qemu|lxc}[/...]`.
    pub(super) fn guest_call(
        &mut self,
        verb: &str,
        node: &str,
        kind: &'static str,
        tail: &[&str],
        rest: &[String],
    ) -> R<Value> {
        match (verb, tail) {
            ("get", []) => {
                getopt(rest, &[("full", Kind::Bool)], &[])?;
                self.check_node(node)?;
                let list: Vec<Value> = self
                    .vmlist()
                    .into_iter()
                    .filter(|l| l.node == node && l.kind == kind)
                    .map(|l| {
                        let mut v = json!({"vmid": l.vmid, "status": "stopped"});
                        if let Some(n) = self.guest_name(&l) {
                            v["name"] = json!(n);
                        }
                        v
                    })
                    .collect();
                Ok(Value::Array(list))
            }
            ("create", []) => self.guest_create(node, kind, rest),
            ("get", [id, "config"]) => {
                getopt(
                    rest,
                    &[("current", Kind::Bool), ("snapshot", Kind::Str)],
                    &[],
                )?;
                self.check_node(node)?;
                let rel = self.guest_file(node, kind, id)?;
                let text = self.read(&rel);
                Ok(Conf::parse(&text).json(kind, &text))
            }
            ("set", [id, "config"]) => self.guest_set(node, kind, id, rest),
            _ => Err(Fail::NoHandler),
        }
    }

    /// The config file of guest `id` of `kind` on `node`, or PVE's error.
    fn guest_file(&self, node: &str, kind: &str, id: &str) -> R<String> {
        let rel = format!("nodes/{node}/{}/{id}.conf", folder(kind));
        if id.parse::<u64>().is_err() {
            return param_err(
                "vmid",
                format!("type check ('integer') failed - got '{id}'"),
            );
        }
        if !self.file(&rel).is_file() {
            return die(format!("Configuration file '{rel}' does not exist\n"));
        }
        Ok(rel)
    }

    fn guest_create(&mut self, node: &str, kind: &'static str, rest: &[String]) -> R<Value> {
        let extra: &[(&str, Kind)] = if kind == "qemu" {
            &[
                ("vmid", Kind::Int),
                ("pool", Kind::Str),
                ("storage", Kind::Str),
                ("start", Kind::Bool),
                ("unique", Kind::Bool),
                ("archive", Kind::Str),
                ("force", Kind::Bool),
            ]
        } else {
            &[
                ("vmid", Kind::Int),
                ("ostemplate", Kind::Str),
                ("password", Kind::Str),
                ("ssh-public-keys", Kind::Str),
                ("pool", Kind::Str),
                ("storage", Kind::Str),
                ("start", Kind::Bool),
                ("restore", Kind::Bool),
                ("unique", Kind::Bool),
                ("force", Kind::Bool),
                ("ignore-unpack-errors", Kind::Bool),
            ]
        };
        let owned = known(kind, extra);
        let k: Vec<(&str, Kind)> = owned.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        let opts = getopt(rest, &k, &[])?;
        let mut opts = verify(&opts, &k)?;
        let Some(vmid) = one(&opts, "vmid") else {
            return param_err("vmid", "property is missing and it is not optional");
        };
        let vmid: u64 = vmid.parse().unwrap_or(0);
        if !(100..=999_999_999).contains(&vmid) {
            return param_err("vmid", "value must have a minimum value of 100");
        }
        if kind == "lxc" && one(&opts, "ostemplate").is_none() {
            return param_err("ostemplate", "property is missing and it is not optional");
        }
        if kind == "lxc" {
            return die(
                "pve-double: creating a container from a template is not modelled\n".to_string(),
            );
        }
        self.check_node(node)?;
        if let Some(l) = self.vmlist().into_iter().find(|l| l.vmid == vmid) {
            return die(format!(
                "{} {vmid} already exists on node '{}'\n",
                word(l.kind),
                l.node
            ));
        }
        for k in [
            "vmid", "pool", "storage", "start", "unique", "archive", "force",
        ] {
            opts.remove(k);
        }
        let mut conf = Conf::default();
        conf.props.insert(
            "meta".into(),
            "creation-qemu=9.0.2,ctime=1733400000".to_string(),
        );
        conf.props.insert(
            "smbios1".into(),
            format!("uuid=00000000-0000-4000-8000-{vmid:012}"),
        );
        conf.props.insert(
            "vmgenid".into(),
            format!("00000000-0000-4000-9000-{vmid:012}"),
        );
        self.apply_params(kind, vmid, &mut conf, &opts)?;
        let rel = format!("nodes/{node}/qemu-server/{vmid}.conf");
        self.write(&rel, &conf.write(), 0o640)?;
        Ok(json!(format!(
            "UPID:{node}:0000A1B2:00C3D4E5:675A0000:qmcreate:{vmid}:root@pam:"
        )))
    }

    fn guest_set(&mut self, node: &str, kind: &'static str, id: &str, rest: &[String]) -> R<Value> {
        let owned = known(
            kind,
            &[
                ("delete", Kind::Str),
                ("digest", Kind::Str),
                ("revert", Kind::Str),
                ("skiplock", Kind::Bool),
                ("force", Kind::Bool),
            ],
        );
        let k: Vec<(&str, Kind)> = owned.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        let opts = getopt(rest, &k, &[])?;
        let mut opts = verify(&opts, &k)?;
        self.check_node(node)?;
        let rel = self.guest_file(node, kind, id)?;
        let vmid: u64 = id.parse().unwrap_or(0);
        if kind == "lxc" && opts.contains_key("unprivileged") {
            return die("unable to modify read-only option: 'unprivileged'\n");
        }
        for k in ["digest", "skiplock", "force", "revert"] {
            opts.remove(k);
        }
        let mut conf = Conf::parse(&self.read(&rel));
        if let Some(del) = opts.remove("delete") {
            for d in del.iter().flat_map(|d| super::split_list(d)) {
                if opts.contains_key(&d) {
                    return die(format!(
                        "cannot set and delete property '{d}' at the same time!\n"
                    ));
                }
                if d == "description" {
                    conf.description.clear();
                } else {
                    conf.props.remove(&d);
                }
            }
        }
        self.apply_params(kind, vmid, &mut conf, &opts)?;
        self.write(&rel, &conf.write(), 0o640)?;
        Ok(Value::Null)
    }

    /// Puts `opts` into `conf`, checking every volume.
    fn apply_params(
        &mut self,
        kind: &str,
        vmid: u64,
        conf: &mut Conf,
        opts: &BTreeMap<String, Vec<String>>,
    ) -> R<()> {
        let cfg = self.storage_cfg();
        let mut st = self.state();
        let mut allocated = false;
        for (k, values) in opts {
            let Some(v) = values.last() else { continue };
            if k == "description" {
                conf.description = v.split('\n').map(str::to_string).collect();
                while conf.description.last().is_some_and(String::is_empty) {
                    conf.description.pop();
                }
                continue;
            }
            let mut v = v.clone();
            if is_volume_key(kind, k) {
                let head = v.split(',').next().unwrap_or_default().to_string();
                let head = head
                    .strip_prefix("file=")
                    .or_else(|| head.strip_prefix("volume="))
                    .unwrap_or(&head)
                    .to_string();
                if let Some((sid, name)) = head.split_once(':')
                    && !head.starts_with('/')
                {
                    if cfg.find_id(sid).is_none() {
                        return die(format!("storage '{sid}' does not exist\n"));
                    }
                    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
                        // allocation `storage:SIZE_GiB`
                        let n = st
                            .volumes
                            .iter()
                            .filter(|x| x.contains(&format!("-{vmid}-disk-")))
                            .count();
                        let prefix = if kind == "lxc" { "subvol" } else { "vm" };
                        let vol = format!("{sid}:{prefix}-{vmid}-disk-{n}");
                        st.volumes.push(vol.clone());
                        allocated = true;
                        v = v.replacen(&head, &format!("{vol},size={name}G"), 1);
                    } else if !st.volumes.contains(&head) {
                        return die(format!("volume '{head}' does not exist\n"));
                    }
                }
            }
            conf.props.insert(k.clone(), v);
        }
        if allocated {
            let text = serde_json::to_string_pretty(&st).unwrap_or_default();
            fs::write(&self.state_file, text).or_else(|e| die(format!("write state: {e}\n")))?;
        }
        Ok(())
    }
}

fn is_volume_key(kind: &str, key: &str) -> bool {
    let numbered = |p: &str| {
        key.strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    if kind == "qemu" {
        ["ide", "sata", "scsi", "virtio", "unused"]
            .iter()
            .any(|p| numbered(p))
            || key == "efidisk0"
            || key == "tpmstate0"
    } else {
        key == "rootfs" || numbered("mp") || numbered("unused")
    }
}
