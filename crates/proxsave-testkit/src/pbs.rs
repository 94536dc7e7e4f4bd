//! A stateful model of `proxmox-backup-manager` (PBS 3.x, plus PBS 4's `s3 endpoint`), for
//! end-to-end tests.
//!
//! [`PbsDouble::install`] replaces a [`FakeBin`]'s `proxmox-backup-manager` with one that
//! first records the call in `calls.jsonl` (rules added with [`FakeBin::respond`] still
//! answer first, so a test can make one call fail) and then runs the `pbs-double` binary. Its
//! state is where PBS keeps it: the files under the given `/etc/proxmox-backup` folder,
//! written the way PBS writes them (`proxmox-section-config`'s writer, `node.cfg`'s flat
//! `key: value` grammar, remote passwords base64-encoded, notification secrets in
//! `notifications-priv.cfg`), and the datastores' chunk stores on disk under the root that
//! holds that folder. Ids, error texts and exit codes follow the Proxmox sources
//! (`docs/pbs-double.md`).
//!
//! ```no_run
//! use proxsave_testkit::fakes::FakeBin;
//! use proxsave_testkit::pbs::PbsDouble;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let fake = FakeBin::new(dir.path().join("fake"));
//! let pbs = PbsDouble::install(&fake, &dir.path().join("root/etc/proxmox-backup"));
//! // ... run proxsave with PATH = fake.path_env() ...
//! let state = pbs.state();
//! assert!(state.remote.find("remote", "pbs-b").is_some());
//! ```

pub mod model;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use proxsave_formats::section::{self, SectionConfig};

use crate::fakes::{Call, FakeBin};

/// A `proxmox-backup-manager` double installed on a [`FakeBin`].
#[derive(Clone, Debug)]
pub struct PbsDouble {
    fake: FakeBin,
    etc: PathBuf,
}

/// The double's state, read back from its files (missing files are empty).
#[derive(Clone, Debug, Default)]
pub struct PbsState {
    /// `datastore.cfg`.
    pub datastore: SectionConfig,
    /// `remote.cfg` (passwords base64-encoded, as PBS stores them).
    pub remote: SectionConfig,
    /// `sync.cfg`.
    pub sync: SectionConfig,
    /// `verification.cfg`.
    pub verification: SectionConfig,
    /// `prune.cfg`.
    pub prune: SectionConfig,
    /// `traffic-control.cfg`.
    pub traffic_control: SectionConfig,
    /// `notifications.cfg`.
    pub notifications: SectionConfig,
    /// `notifications-priv.cfg`.
    pub notifications_priv: SectionConfig,
    /// `s3.cfg`.
    pub s3: SectionConfig,
    /// `acme/plugins.cfg`.
    pub acme_plugins: SectionConfig,
    /// `node.cfg` as a map (`description` from the leading `#` lines).
    pub node: BTreeMap<String, String>,
}

/// A section's properties as a map (repeated keys joined with `\n`).
pub fn props(s: &section::Section) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for p in &s.props {
        out.entry(p.key.clone())
            .and_modify(|v| {
                v.push('\n');
                v.push_str(p.effective());
            })
            .or_insert_with(|| p.effective().to_string());
    }
    out
}

/// Ids of a file's sections, sorted.
pub fn ids(cfg: &SectionConfig) -> Vec<String> {
    let mut v: Vec<String> = cfg.sections.iter().map(|s| s.id.clone()).collect();
    v.sort();
    v
}

impl PbsDouble {
    /// The `pbs-double` binary: `$PROXSAVE_PBS_DOUBLE`, else `target/<profile>/pbs-double`
    /// found from the running test executable.
    ///
    /// # Panics
    /// When it is not built.
    pub fn binary() -> PathBuf {
        if let Some(p) = std::env::var_os("PROXSAVE_PBS_DOUBLE") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("current test executable");
        let mut candidates = Vec::new();
        for dir in exe.ancestors().skip(1).take(3) {
            candidates.push(dir.join("pbs-double"));
        }
        candidates
            .iter()
            .find(|c| c.is_file())
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "the PBS double is not built (looked for {candidates:?}); build it with \
                     `cargo build -p proxsave-testkit --bins` (cargo test --workspace builds it too)"
                )
            })
    }

    /// Installs the double with the binary from [`PbsDouble::binary`]: `fake`'s
    /// `proxmox-backup-manager` now records each call and then runs the double on
    /// `etc_proxmox_backup` (created if missing; its files are left as they are). Datastore
    /// paths are taken under the root that holds it (its grandparent).
    pub fn install(fake: &FakeBin, etc_proxmox_backup: &Path) -> PbsDouble {
        PbsDouble::install_with(&PbsDouble::binary(), fake, etc_proxmox_backup)
    }

    /// [`PbsDouble::install`] playing another PBS version (`"3.3.2"`: `version` says so and
    /// `datastore create --reuse-datastore true` adopts an existing chunk store; the default
    /// 3.2.4 refuses that option).
    pub fn install_version(fake: &FakeBin, etc_proxmox_backup: &Path, version: &str) -> PbsDouble {
        PbsDouble::install_full(
            &PbsDouble::binary(),
            fake,
            etc_proxmox_backup,
            Some(version),
        )
    }

    /// [`PbsDouble::install`] with an explicit binary (e.g. `env!("CARGO_BIN_EXE_pbs-double")`).
    pub fn install_with(binary: &Path, fake: &FakeBin, etc_proxmox_backup: &Path) -> PbsDouble {
        PbsDouble::install_full(binary, fake, etc_proxmox_backup, None)
    }

    /// [`PbsDouble::install_with`] playing `version` (default 3.2.4).
    pub fn install_full(
        binary: &Path,
        fake: &FakeBin,
        etc_proxmox_backup: &Path,
        version: Option<&str>,
    ) -> PbsDouble {
        fs::create_dir_all(etc_proxmox_backup).expect("create etc/proxmox-backup");
        let mut env = version
            .map(|v| format!("export PBS_DOUBLE_VERSION={}\n", sh_quote(v)))
            .unwrap_or_default();
        // The units' states of the fake `systemctl`: `task list` goes through the proxy's
        // HTTPS API and fails while `proxmox-backup-proxy` is stopped.
        env.push_str(&format!(
            "export PBS_DOUBLE_UNIT_STATE={}\n",
            sh_quote(&fake.dir().join("state").to_string_lossy())
        ));
        let script = format!(
            "#!/bin/sh\n{env}exec {} {} \"$@\"\n",
            sh_quote(&binary.to_string_lossy()),
            sh_quote(&etc_proxmox_backup.to_string_lossy()),
        );
        fake.add_command("proxmox-backup-manager");
        fake.set_fallback("proxmox-backup-manager", &script);
        PbsDouble {
            fake: fake.clone(),
            etc: etc_proxmox_backup.to_path_buf(),
        }
    }

    /// The `/etc/proxmox-backup` folder of the double.
    pub fn etc(&self) -> &Path {
        &self.etc
    }

    /// Writes `text` to `rel` under `/etc/proxmox-backup` (to seed a state).
    pub fn write_file(&self, rel: &str, text: &str) -> &Self {
        let path = self.etc.join(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).expect("create folder");
        }
        fs::write(path, text).expect("write seed file");
        self
    }

    /// The content of `rel` under `/etc/proxmox-backup`, if present.
    pub fn read_file(&self, rel: &str) -> Option<String> {
        fs::read_to_string(self.etc.join(rel)).ok()
    }

    /// The whole state, read back from the files.
    ///
    /// # Panics
    /// When a file does not parse as PBS would read it.
    pub fn state(&self) -> PbsState {
        let parse = |rel: &str| match self.read_file(rel) {
            Some(t) => model::parse_pbs(&t).unwrap_or_else(|(line, msg)| {
                panic!("{rel} does not load in PBS: line {line} - {msg}")
            }),
            None => SectionConfig::new(),
        };
        let node = model::parse_node_cfg(&self.read_file("node.cfg").unwrap_or_default())
            .unwrap_or_else(|e| panic!("node.cfg does not load in PBS: {e}"));
        PbsState {
            datastore: parse("datastore.cfg"),
            remote: parse("remote.cfg"),
            sync: parse("sync.cfg"),
            verification: parse("verification.cfg"),
            prune: parse("prune.cfg"),
            traffic_control: parse("traffic-control.cfg"),
            notifications: parse("notifications.cfg"),
            notifications_priv: parse("notifications-priv.cfg"),
            s3: parse("s3.cfg"),
            acme_plugins: parse("acme/plugins.cfg"),
            node,
        }
    }

    /// Every recorded `proxmox-backup-manager` call, in order.
    pub fn all_calls(&self) -> Vec<Call> {
        self.fake.calls_of("proxmox-backup-manager")
    }

    /// The recorded change calls (not `list`, `show`, `config`, `version`), in order.
    pub fn calls(&self) -> Vec<Call> {
        self.all_calls()
            .into_iter()
            .filter(|c| {
                !c.args.iter().any(|a| {
                    matches!(
                        a.as_str(),
                        "list" | "show" | "config" | "version" | "versions"
                    )
                })
            })
            .collect()
    }
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
