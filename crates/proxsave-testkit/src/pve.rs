//! A stateful model of the Proxmox VE API as seen through `pvesh`, for end-to-end tests.
//!
//! [`PveDouble::install`] replaces a [`FakeBin`]'s `pvesh` with one that first records the
//! call in `calls.jsonl` (like every fake; rules added with [`FakeBin::respond`] still answer
//! first, so a test can make one call fail) and then runs the `pve-double` binary. That binary
//! keeps its state where PVE keeps it: the files under the given `/etc/pve` folder, written the
//! way PVE writes them (`storage.cfg`, `priv/storage/<id>.pw|.enc`, `datacenter.cfg`,
//! `jobs.cfg`, `replication.cfg`, `notifications.cfg`, `priv/notifications.cfg`, `sdn/`), plus
//! `<fake>/pve-state.json` for what is not a file (node name, cluster nodes, guests, whether
//! SDN was applied: `sdn/.running-config`). It is as strict as PVE: existing ids, fixed options, unknown options,
//! content types, error texts and exit codes follow the Proxmox sources (`docs/pve-double.md`).
//!
//! ```no_run
//! use proxsave_testkit::fakes::FakeBin;
//! use proxsave_testkit::pve::PveDouble;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let fake = FakeBin::new(dir.path().join("fake"));
//! let pve = PveDouble::fresh_node(&fake, &dir.path().join("root/etc/pve"), "pve1");
//! // ... run proxsave with PATH = fake.path_env() ...
//! let state = pve.state();
//! assert!(state.storage.find("dir", "local").is_some());
//! assert!(pve.calls().iter().all(|c| c.args[0] != "get"));
//! ```
//!
//! The binary is built by `cargo test --workspace` (this crate's own integration test needs
//! it) or `cargo build -p proxsave-testkit --bins`. Other packages' tests find it next to their
//! own test executable's folder (`target/<profile>/pve-double`, the folder that also holds
//! `CARGO_BIN_EXE_proxsave`), or at `$PROXSAVE_PVE_DOUBLE`.

pub mod model;
pub mod schema;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use proxsave_formats::section::{self, SectionConfig};

use crate::fakes::{Call, FakeBin};
pub use model::{Guest, NodeState};

/// The state file's name inside the fake folder.
pub const STATE_FILE: &str = "pve-state.json";

/// The `storage.cfg` of a fresh PVE 8 install on LVM (what the installer writes).
pub const FRESH_STORAGE_CFG: &str = "dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\nlvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n\tcontent rootdir,images\n\n";

/// A PVE API double installed on a [`FakeBin`].
#[derive(Clone, Debug)]
pub struct PveDouble {
    fake: FakeBin,
    etc_pve: PathBuf,
}

/// The double's state, read back from its files.
#[derive(Clone, Debug, Default)]
pub struct PveState {
    /// `storage.cfg`.
    pub storage: SectionConfig,
    /// `priv/storage/*`: file name → content.
    pub storage_secrets: BTreeMap<String, String>,
    /// `datacenter.cfg` raw text (`None`: absent).
    pub datacenter_text: Option<String>,
    /// `datacenter.cfg` description (from its `#` lines).
    pub datacenter_description: String,
    /// `datacenter.cfg` options.
    pub datacenter: BTreeMap<String, String>,
    /// `jobs.cfg`.
    pub jobs: SectionConfig,
    /// `replication.cfg`.
    pub replication: SectionConfig,
    /// `notifications.cfg`.
    pub notifications: SectionConfig,
    /// `priv/notifications.cfg`.
    pub notifications_priv: SectionConfig,
    /// `pve-state.json`.
    pub node: NodeState,
}

impl PveState {
    /// A storage's options as a map, `content` and `nodes` sorted (PVE keeps them as sets and
    /// writes them in hash order), bare flags as `1`.
    pub fn storage_props(&self, id: &str) -> Option<BTreeMap<String, String>> {
        self.storage.find_id(id).map(normalized)
    }
}

/// A section's properties as a map (`content`/`nodes` sorted, bare flags `1`).
pub fn normalized(s: &section::Section) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert("type".to_string(), s.ty.clone());
    for p in &s.props {
        let mut v = p.effective().to_string();
        if p.key == "content" || p.key == "nodes" {
            let mut parts: Vec<&str> = v
                .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
                .filter(|x| !x.is_empty())
                .collect();
            parts.sort_unstable();
            parts.dedup();
            v = parts.join(",");
        }
        out.insert(p.key.clone(), v);
    }
    out
}

impl PveDouble {
    /// The `pve-double` binary: `$PROXSAVE_PVE_DOUBLE`, else `target/<profile>/pve-double`
    /// found from the running test executable.
    ///
    /// # Panics
    /// When it is not built.
    pub fn binary() -> PathBuf {
        if let Some(p) = std::env::var_os("PROXSAVE_PVE_DOUBLE") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("current test executable");
        let mut candidates = Vec::new();
        for dir in exe.ancestors().skip(1).take(3) {
            candidates.push(dir.join("pve-double"));
        }
        candidates
            .iter()
            .find(|c| c.is_file())
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "the PVE API double is not built (looked for {candidates:?}); build it with \
                     `cargo build -p proxsave-testkit --bins` (cargo test --workspace builds it too)"
                )
            })
    }

    /// Installs the double with the binary from [`PveDouble::binary`]: `fake`'s `pvesh` now
    /// records each call and then runs the double on `etc_pve` (created if missing; its
    /// files are left as they are). The node is `node`, alone in its cluster, with no guests.
    pub fn install(fake: &FakeBin, etc_pve: &Path, node: &str) -> PveDouble {
        PveDouble::install_with(&PveDouble::binary(), fake, etc_pve, node)
    }

    /// [`PveDouble::install`] with an explicit binary (e.g. `env!("CARGO_BIN_EXE_pve-double")`).
    pub fn install_with(binary: &Path, fake: &FakeBin, etc_pve: &Path, node: &str) -> PveDouble {
        fs::create_dir_all(etc_pve).expect("create etc/pve");
        let double = PveDouble {
            fake: fake.clone(),
            etc_pve: etc_pve.to_path_buf(),
        };
        let state = NodeState {
            node: node.to_string(),
            nodes: vec![node.to_string()],
            guests: BTreeMap::new(),
            version: "8.4.1".to_string(),
            offline: Vec::new(),
            die_exit_code: None,
            volumes: Vec::new(),
        };
        double.save_node(&state);
        let script = format!(
            "#!/bin/sh\nexec {} {} {} \"$@\"\n",
            sh_quote(&binary.to_string_lossy()),
            sh_quote(&etc_pve.to_string_lossy()),
            sh_quote(&double.state_path().to_string_lossy()),
        );
        fake.add_command("pvesh");
        fake.set_fallback("pvesh", &script);
        double
    }

    /// [`PveDouble::install`] onto what a fresh PVE 8 node has: `storage.cfg` with `local`
    /// (dir `/var/lib/vz`, `iso,vztmpl,backup`) and `local-lvm` (lvmthin `pve/data`,
    /// `rootdir,images`); no `datacenter.cfg`, `jobs.cfg`, `replication.cfg` or
    /// `notifications.cfg` (the built-in `mail-to-root` target and `default-matcher` exist
    /// without a file); SDN empty and applied.
    pub fn fresh_node(fake: &FakeBin, etc_pve: &Path, node: &str) -> PveDouble {
        let double = PveDouble::install(fake, etc_pve, node);
        double.seed_fresh();
        double
    }

    /// [`PveDouble::fresh_node`] with an explicit binary.
    pub fn fresh_node_with(binary: &Path, fake: &FakeBin, etc_pve: &Path, node: &str) -> PveDouble {
        let double = PveDouble::install_with(binary, fake, etc_pve, node);
        double.seed_fresh();
        double
    }

    fn seed_fresh(&self) {
        fs::create_dir_all(self.etc_pve.join("priv")).expect("create priv");
        fs::set_permissions(self.etc_pve.join("priv"), fs::Permissions::from_mode(0o700))
            .expect("chmod priv");
        fs::write(self.etc_pve.join("storage.cfg"), FRESH_STORAGE_CFG).expect("storage.cfg");
    }

    /// The `/etc/pve` folder of the double.
    pub fn etc_pve(&self) -> &Path {
        &self.etc_pve
    }

    /// The state file, `<fake>/pve-state.json`.
    pub fn state_path(&self) -> PathBuf {
        self.fake.dir().join(STATE_FILE)
    }

    /// The node state (`pve-state.json`).
    pub fn node(&self) -> NodeState {
        let text = fs::read_to_string(self.state_path()).expect("read pve-state.json");
        serde_json::from_str(&text).expect("parse pve-state.json")
    }

    fn save_node(&self, st: &NodeState) {
        let text = serde_json::to_string_pretty(st).expect("state json");
        fs::write(self.state_path(), text).expect("write pve-state.json");
    }

    /// Adds a cluster member named `name`.
    pub fn add_node(&self, name: &str) -> &Self {
        let mut st = self.node();
        if !st.nodes.iter().any(|n| n == name) {
            st.nodes.push(name.to_string());
        }
        self.save_node(&st);
        self
    }

    /// Adds guest `vmid` of `kind` (`qemu` or `lxc`) running on `node`.
    pub fn add_guest(&self, vmid: u32, kind: &str, node: &str) -> &Self {
        let mut st = self.node();
        st.guests.insert(
            vmid.to_string(),
            Guest {
                kind: kind.to_string(),
                node: node.to_string(),
            },
        );
        self.save_node(&st);
        self
    }

    /// Adds the storage volume `volid` (`local-lvm:vm-100-disk-0`): a guest disk the node's
    /// storages hold (listed by `GET /nodes/{node}/storage/{id}/content`).
    pub fn add_volume(&self, volid: &str) -> &Self {
        let mut st = self.node();
        if !st.volumes.iter().any(|v| v == volid) {
            st.volumes.push(volid.to_string());
        }
        self.save_node(&st);
        self
    }

    /// The guest config `nodes/<node>/<qemu-server|lxc>/<vmid>.conf`, if present.
    pub fn guest_config(&self, node: &str, kind: &str, vmid: u32) -> Option<String> {
        let folder = if kind == "lxc" { "lxc" } else { "qemu-server" };
        self.read_file(&format!("nodes/{node}/{folder}/{vmid}.conf"))
    }

    /// Makes storage `id` unreachable: creating it (enabled, for this node) fails with
    /// `create storage failed: storage 'ID' is not online`, as PVE's activation check does.
    pub fn set_offline(&self, id: &str) -> &Self {
        let mut st = self.node();
        if !st.offline.iter().any(|o| o == id) {
            st.offline.push(id.to_string());
        }
        self.save_node(&st);
        self
    }

    /// Sets the exit code of failed calls (default 255; real `pvesh` exits with Perl's `$!`
    /// when it is set, e.g. 2): tests can show the product does not rely on it.
    pub fn set_die_exit_code(&self, code: i32) -> &Self {
        let mut st = self.node();
        st.die_exit_code = Some(code);
        self.save_node(&st);
        self
    }

    /// True when `sdn/*.cfg` differ from the applied SDN configuration
    /// (`sdn/.running-config`, written by `pvesh set /cluster/sdn`).
    pub fn sdn_pending(&self) -> bool {
        model::sdn_pending(&self.etc_pve)
    }

    /// Writes `text` to `rel` under `/etc/pve` (to seed a state).
    pub fn write_file(&self, rel: &str, text: &str) -> &Self {
        let path = self.etc_pve.join(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).expect("create folder");
        }
        fs::write(path, text).expect("write seed file");
        self
    }

    /// The content of `rel` under `/etc/pve`, if present.
    pub fn read_file(&self, rel: &str) -> Option<String> {
        fs::read_to_string(self.etc_pve.join(rel)).ok()
    }

    /// The whole state, read back from the files.
    pub fn state(&self) -> PveState {
        let parse = |rel: &str| {
            self.read_file(rel)
                .map(|t| section::parse(&t).0)
                .unwrap_or_default()
        };
        let mut storage_secrets = BTreeMap::new();
        if let Ok(entries) = fs::read_dir(self.etc_pve.join("priv/storage")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Ok(text) = fs::read_to_string(e.path()) {
                    storage_secrets.insert(name, text);
                }
            }
        }
        let datacenter_text = self.read_file("datacenter.cfg");
        let (datacenter_description, datacenter) =
            model::parse_datacenter(datacenter_text.as_deref().unwrap_or(""));
        PveState {
            storage: parse("storage.cfg"),
            storage_secrets,
            datacenter_text,
            datacenter_description,
            datacenter,
            jobs: parse("jobs.cfg"),
            replication: parse("replication.cfg"),
            notifications: parse("notifications.cfg"),
            notifications_priv: parse("priv/notifications.cfg"),
            node: self.node(),
        }
    }

    /// Every recorded `pvesh` call, in order.
    pub fn all_calls(&self) -> Vec<Call> {
        self.fake.calls_of("pvesh")
    }

    /// The recorded change calls (`pvesh create|set|delete`), in order.
    pub fn calls(&self) -> Vec<Call> {
        self.all_calls()
            .into_iter()
            .filter(|c| {
                matches!(
                    c.args.first().map(String::as_str),
                    Some("create" | "set" | "delete")
                )
            })
            .collect()
    }
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
