//! The pvesh client against the PVE API double (the fake `pvesh` on `PATH`): what an applier
//! sees when it creates, sets, reads and fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use proxsave_archive::progress::CancelToken;
use proxsave_pve::pvesh::{Param, Pvesh, PveshError};
use proxsave_restore::host::{
    Clock, CommandOutput, CommandRunner, Host, HostActions, HostCommand, MountProbe,
};
use proxsave_testkit::fakes::FakeBin;
use proxsave_testkit::pve::PveDouble;

/// Runs commands found in the fake folder (`NotFound` for others, like a missing program).
struct PathRunner(PathBuf);

impl CommandRunner for PathRunner {
    fn run(&self, cmd: &HostCommand, _c: &CancelToken) -> std::io::Result<CommandOutput> {
        let path = self.0.join(&cmd.program);
        if !path.is_file() {
            return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        }
        let out = Command::new(path)
            .args(&cmd.args)
            .stdin(Stdio::null())
            .output()?;
        Ok(CommandOutput {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
            timed_out: false,
        })
    }
}

struct NoClock;
impl Clock for NoClock {
    fn now(&self) -> chrono::DateTime<chrono::Local> {
        chrono::DateTime::default()
    }
    fn sleep(&self, _d: Duration) {}
}

struct NoMounts;
impl MountProbe for NoMounts {
    fn is_mount_point(&self, _p: &Path) -> bool {
        false
    }
}

fn world() -> (tempfile::TempDir, FakeBin, PveDouble, Host) {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeBin::with_commands(dir.path().join("fake"), &["pvesh"]);
    let pve = PveDouble::fresh_node(&fake, &dir.path().join("etc/pve"), "pve1");
    let host = Host::new(
        PathBuf::from("/"),
        HostActions::Run,
        Arc::new(PathRunner(fake.bin_dir())),
        Arc::new(NoClock),
        Arc::new(NoMounts),
    );
    (dir, fake, pve, host)
}

#[test]
fn create_set_get_and_classified_failures_against_the_double() {
    let (_dir, _fake, pve, host) = world();
    let cancel = CancelToken::new();
    let pvesh = Pvesh::new(&host, &cancel);
    assert!(pvesh.available());

    let err = pvesh.get("/storage/nas").expect_err("missing");
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.message(), "storage 'nas' does not exist");

    let err = pvesh
        .create(
            "/storage",
            &[
                Param::new("storage", "local"),
                Param::new("type", "dir"),
                Param::new("path", "/var/lib/vz"),
            ],
        )
        .expect_err("exists");
    assert!(matches!(err, PveshError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(
        err.message(),
        "create storage failed: storage ID 'local' already defined"
    );

    let err = pvesh
        .set("/storage/local", &[Param::new("path", "/srv")])
        .expect_err("fixed");
    assert!(
        matches!(&err, PveshError::ParamRejected { param, .. } if param == "path"),
        "{err:?}"
    );
    let err = pvesh
        .set("/storage/local", &[Param::new("type", "nfs")])
        .expect_err("type");
    assert!(
        matches!(&err, PveshError::ParamRejected { param, .. } if param == "type"),
        "{err:?}"
    );

    pvesh
        .create(
            "/storage",
            &[
                Param::new("storage", "smb"),
                Param::new("type", "cifs"),
                Param::new("server", "files.example.lan"),
                Param::new("share", "backup"),
                Param::new("path", "/mnt/pve/smb"),
                Param::new("username", "bk"),
                Param::secret("password", "S3cr3t!"),
                Param::new("content", "backup"),
                Param::flag("disable"),
            ],
        )
        .expect("create cifs");
    let called = pvesh
        .set(
            "/storage/smb",
            &[Param::new("content", "backup,rootdir,bogus")],
        )
        .expect("set with a content type cifs cannot hold");
    assert_eq!(
        called.warnings,
        "storage does not support content type 'bogus'"
    );
    let smb = pvesh.get("/storage/smb").expect("get");
    assert_eq!(smb["disable"], 1);
    assert_eq!(smb["content"], "backup,rootdir");
    assert_eq!(pve.state().storage_secrets["smb.pw"], "password=S3cr3t!\n");
    for line in host.commands_run() {
        assert!(!line.contains("S3cr3t"), "{line}");
    }

    let err = pvesh
        .get("/cluster/backup/nightly")
        .expect_err("missing job");
    assert!(err.is_not_found(), "{err:?}");

    pvesh
        .set(
            "/cluster/options",
            &[
                Param::new("keyboard", "de"),
                Param::text("description", "Production\nsecond line"),
            ],
        )
        .expect("options");
    assert_eq!(
        pve.read_file("datacenter.cfg").expect("datacenter.cfg"),
        "#Production\n#second line\n\nkeyboard: de\n"
    );
    let changes: Vec<String> = pve.calls().iter().map(|c| c.args[0].clone()).collect();
    assert_eq!(changes, ["create", "set", "set", "create", "set", "set"]);
}

#[test]
fn a_missing_pvesh_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::new(
        PathBuf::from("/"),
        HostActions::Run,
        Arc::new(PathRunner(dir.path().to_path_buf())),
        Arc::new(NoClock),
        Arc::new(NoMounts),
    );
    let cancel = CancelToken::new();
    let pvesh = Pvesh::new(&host, &cancel);
    assert!(!pvesh.available());
    assert!(matches!(
        pvesh.get("/version"),
        Err(PveshError::Missing { .. })
    ));
}
