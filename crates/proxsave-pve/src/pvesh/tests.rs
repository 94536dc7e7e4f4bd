//! The client against a recording command runner that answers like `pvesh` does.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proxsave_restore::host::{
    Clock, CommandOutput, CommandRunner, Host, HostActions, HostCommand, MountProbe,
};

use super::*;

type Respond = dyn Fn(&HostCommand) -> std::io::Result<CommandOutput> + Send + Sync;

/// Records every command and answers with `respond`.
struct Recorder {
    calls: Mutex<Vec<HostCommand>>,
    respond: Box<Respond>,
}

impl CommandRunner for Recorder {
    fn run(&self, cmd: &HostCommand, _c: &CancelToken) -> std::io::Result<CommandOutput> {
        self.calls.lock().expect("lock").push(cmd.clone());
        (self.respond)(cmd)
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

fn make_host(
    actions: HostActions,
    respond: impl Fn(&HostCommand) -> std::io::Result<CommandOutput> + Send + Sync + 'static,
) -> (Host, Arc<Recorder>) {
    let rec = Arc::new(Recorder {
        calls: Mutex::new(Vec::new()),
        respond: Box::new(respond),
    });
    let host = Host::new(
        PathBuf::from("/"),
        actions,
        rec.clone(),
        Arc::new(NoClock),
        Arc::new(NoMounts),
    );
    (host, rec)
}

fn out(code: i32, stdout: &str, stderr: &str) -> std::io::Result<CommandOutput> {
    Ok(CommandOutput {
        code: Some(code),
        stdout: stdout.as_bytes().to_vec(),
        stderr: stderr.as_bytes().to_vec(),
        timed_out: false,
    })
}

/// What pvesh prints for a parameter error: the exception, its `param: message` lines, then
/// the usage text `cli_handler` appends (PVE::RESTHandler, PVE::Exception::stringify).
const FIXED_PATH: &str = "400 Parameter verification failed.\n\
path: can't change value of fixed parameter 'path'\n\
pvesh set <api_path> [OPTIONS] [FORMAT_OPTIONS]\n";

#[test]
fn get_runs_pvesh_get_with_json_output_and_parses_it() {
    let (host, rec) = make_host(HostActions::Run, |_| {
        out(0, "{\"release\":\"8.4\",\"version\":\"8.4.1\"}\n", "")
    });
    let cancel = CancelToken::new();
    let pvesh = Pvesh::new(&host, &cancel);
    let v = pvesh.get("/version").expect("get");
    assert_eq!(v["version"], "8.4.1");
    let calls = rec.calls.lock().expect("lock");
    assert_eq!(calls[0].program, "pvesh");
    assert_eq!(
        calls[0].args,
        ["get", "/version", "--output-format", "json"]
    );
}

#[test]
fn params_are_single_key_value_arguments_and_flags_are_one() {
    let (host, rec) = make_host(HostActions::Run, |_| out(0, "", ""));
    let cancel = CancelToken::new();
    let pvesh = Pvesh::new(&host, &cancel);
    let called = pvesh
        .create(
            "/storage",
            &[
                Param::new("storage", "nas"),
                Param::new("type", "cifs"),
                Param::new("options", "vers=3.0 -x"),
                Param::flag("disable"),
                Param::secret("password", "p=ss word"),
            ],
        )
        .expect("create");
    assert_eq!(
        called.call,
        "pvesh create /storage --storage=nas --type=cifs '--options=vers=3.0 -x' --disable=1 --password=<redacted>"
    );
    let calls = rec.calls.lock().expect("lock");
    assert_eq!(
        calls[0].args,
        [
            "create",
            "/storage",
            "--storage=nas",
            "--type=cifs",
            "--options=vers=3.0 -x",
            "--disable=1",
            "--password=p=ss word",
            "--output-format",
            "json"
        ]
    );
    assert_eq!(
        calls[0].display(),
        "pvesh create /storage --storage=nas --type=cifs '--options=vers=3.0 -x' --disable=1 --password=<redacted> --output-format json"
    );
    assert_eq!(host.commands_run()[0], calls[0].display());
}

#[test]
fn a_line_feed_in_a_value_is_rejected_before_running() {
    let (host, rec) = make_host(HostActions::Run, |_| out(0, "", ""));
    let cancel = CancelToken::new();
    let pvesh = Pvesh::new(&host, &cancel);
    let err = pvesh
        .set("/cluster/options", &[Param::new("description", "a\nb")])
        .expect_err("refused");
    assert!(
        matches!(&err, PveshError::ParamRejected { param, .. } if param == "description"),
        "{err:?}"
    );
    pvesh
        .set(
            "/cluster/options",
            &[Param::text("description", "Production\nsecond line")],
        )
        .expect("a text parameter may hold line feeds");
    assert_eq!(
        rec.calls.lock().expect("lock")[0].args[2],
        "--description=Production\nsecond line"
    );
    assert_eq!(
        host.commands_run()[0],
        "pvesh set /cluster/options '--description=Production\\nsecond line' --output-format json"
    );
    rec.calls.lock().expect("lock").clear();
    let err = pvesh
        .set("/cluster/options", &[Param::new("--x", "1")])
        .expect_err("refused");
    assert!(matches!(err, PveshError::ParamRejected { .. }), "{err:?}");
    assert!(rec.calls.lock().expect("lock").is_empty());
}

#[test]
fn errors_are_classified_from_status_and_stderr() {
    let cases: &[(i32, &str, &str)] = &[
        (255, "storage 'nas' does not exist\n", "not-found"),
        (1, "No 'get' handler defined for '/nope'\n", "not-found"),
        (
            255,
            "create storage failed: storage ID 'local' already defined\n",
            "exists",
        ),
        (255, "Job 'backup-1' already exists\n", "exists"),
        (
            255,
            "400 Parameter verification failed.\nid: No such job 'backup-1'\n\npvesh get /cluster/backup/{id}\n",
            "not-found",
        ),
        (255, "no such vzdump job\n", "not-found"),
        (255, "404 endpoint 'relay' not found\n", "not-found"),
        (
            255,
            "Cannot create 'relay', an entity with the same name already exists\n",
            "exists",
        ),
        (255, FIXED_PATH, "param:path"),
        (
            255,
            "Unknown option: bogus\n400 unable to parse option\npvesh create <api_path> [OPTIONS]\n",
            "param:bogus",
        ),
        (
            255,
            "update storage failed: unexpected property 'pool'\n",
            "param:pool",
        ),
        (
            255,
            "cfs-lock 'file-storage_cfg' error: got lock request timeout\n",
            "other",
        ),
    ];
    for (code, stderr, want) in cases {
        let (host, _rec) = make_host(HostActions::Run, move |_| out(*code, "", stderr));
        let cancel = CancelToken::new();
        let err = Pvesh::new(&host, &cancel)
            .set("/storage/nas", &[Param::new("content", "backup")])
            .expect_err("fails");
        let got = match &err {
            PveshError::NotFound { .. } => "not-found".to_string(),
            PveshError::AlreadyExists { .. } => "exists".into(),
            PveshError::ParamRejected { param, .. } => format!("param:{param}"),
            PveshError::Other { status, .. } => {
                assert_eq!(*status, Some(*code));
                "other".into()
            }
            e => panic!("unexpected {e:?}"),
        };
        assert_eq!(&got, want, "{stderr}");
        assert_eq!(err.call(), "pvesh set /storage/nas --content=backup");
        assert!(!err.message().contains("pvesh set <api_path>"), "{err}");
        assert!(!err.message().is_empty());
        assert!(
            err.to_string().starts_with("pvesh set /storage/nas"),
            "{err}"
        );
    }
}

#[test]
fn parameter_errors_keep_pve_lines_without_usage() {
    let e = classify("c".into(), Some(255), FIXED_PATH);
    assert_eq!(
        e.message(),
        "400 Parameter verification failed.; path: can't change value of fixed parameter 'path'"
    );
}

#[test]
fn missing_pvesh_and_deferred_actions() {
    let (host, _rec) = make_host(HostActions::Run, |_| {
        Err(std::io::Error::from(std::io::ErrorKind::NotFound))
    });
    let cancel = CancelToken::new();
    let pvesh = Pvesh::new(&host, &cancel);
    assert!(matches!(
        pvesh.get("/storage"),
        Err(PveshError::Missing { .. })
    ));
    assert!(!pvesh.available());

    let (host, rec) = make_host(HostActions::Defer, |_| panic!("nothing runs"));
    let pvesh = Pvesh::new(&host, &cancel);
    let err = pvesh
        .set("/storage/x", &[Param::secret("password", "hunter2")])
        .expect_err("deferred");
    assert_eq!(
        err,
        PveshError::Deferred {
            call: "pvesh set /storage/x --password=<redacted>".into()
        }
    );
    assert!(!pvesh.available());
    assert!(rec.calls.lock().expect("lock").is_empty());
    assert_eq!(
        host.deferred().len(),
        1,
        "the availability probe is no to-do"
    );
    assert_eq!(
        host.deferred()[0],
        "pvesh set /storage/x --password=<redacted> --output-format json"
    );
}

#[test]
fn available_when_pvesh_starts_even_if_it_fails() {
    let (host, rec) = make_host(HostActions::Run, |_| out(255, "", "ipcc_send_rec failed\n"));
    let cancel = CancelToken::new();
    let pvesh = Pvesh::new(&host, &cancel);
    assert!(pvesh.available());
    assert!(pvesh.available());
    assert_eq!(rec.calls.lock().expect("lock").len(), 1, "asked once");
}

#[test]
fn get_with_non_json_output_is_an_error() {
    let (host, _rec) = make_host(HostActions::Run, |_| out(0, "not json", ""));
    let cancel = CancelToken::new();
    let err = Pvesh::new(&host, &cancel).get("/nodes").expect_err("bad");
    assert!(
        matches!(
            err,
            PveshError::Other {
                status: Some(0),
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn call_display_for_dry_run_lines() {
    let call = Call::new(
        Method::Set,
        "/cluster/notifications/endpoints/smtp/relay",
        vec![
            Param::new("server", "mail.example.com"),
            Param::secret("password", "s3cret"),
        ],
    );
    assert_eq!(
        call.to_string(),
        "pvesh set /cluster/notifications/endpoints/smtp/relay --server=mail.example.com --password=<redacted>"
    );
    assert_eq!(format!("{:?}", call.params[1]), "--password=<redacted>");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, rng_seed: proptest::test_runner::RngSeed::Fixed(8), ..ProptestConfig::default() })]

    /// No secret value appears in any display, event-facing or error string, whatever PVE
    /// echoes back on stderr.
    #[test]
    fn secrets_never_shown(
        secret in "[ -~]{4,24}",
        key in "[a-z][a-z-]{0,10}",
        other in "[a-z0-9]{0,8}",
        echo in any::<bool>(),
        code in prop::sample::select(vec![1, 2, 255]),
    ) {
        // a secret that is a substring of the visible parts cannot be hidden: skip those
        let visible = format!("pvesh set /storage/st --{key}= --other={other} --output-format json <redacted> 400 Parameter verification failed. does not exist");
        prop_assume!(!visible.contains(&secret));
        let stderr = if echo {
            format!("400 Parameter verification failed.\n{key}: value '{secret}' does not match\n")
        } else {
            "storage 'st' does not exist\n".to_string()
        };
        let (host, rec) = make_host(HostActions::Run, move |_| out(code, "", &stderr));
        let cancel = CancelToken::new();
        let pvesh = Pvesh::new(&host, &cancel);
        let params = [Param::new("other", other.clone()), Param::secret(key.clone(), secret.clone())];
        let err = pvesh.set("/storage/st", &params).expect_err("fails");
        let call = Call::new(Method::Set, "/storage/st", params.to_vec());
        let cmd = &rec.calls.lock().expect("lock")[0];
        prop_assert!(cmd.args.iter().any(|a| a.contains(&secret)), "the secret is passed");
        let shown = [
            err.to_string(),
            format!("{err:?}"),
            err.call().to_string(),
            err.message().to_string(),
            call.to_string(),
            format!("{call:?}"),
            cmd.display(),
            format!("{:?}", cmd.shown_args()),
            serde_json::to_string(cmd).expect("json"),
            host.commands_run().join("\n"),
        ];
        for s in shown {
            prop_assert!(!s.contains(&secret), "{s:?} shows {secret:?}");
        }
    }
}

/// Collects every field of every event as text.
#[derive(Clone, Default)]
struct Fields(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Fields {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct V<'a>(&'a mut Vec<String>);
        impl tracing::field::Visit for V<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push(format!("{}={value:?}", field.name()));
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.push(format!("{}={value}", field.name()));
            }
        }
        let mut all = self.0.lock().expect("lock");
        event.record(&mut V(&mut all));
    }
}

#[test]
fn command_events_never_carry_the_secret() {
    use tracing_subscriber::prelude::*;
    let fields = Fields::default();
    let subscriber = tracing_subscriber::registry().with(fields.clone());
    tracing::subscriber::with_default(subscriber, || {
        let cancel = CancelToken::new();
        for actions in [HostActions::Run, HostActions::Defer] {
            let (host, _rec) = make_host(actions, |_| out(255, "", "storage 'x' does not exist\n"));
            let _ = Pvesh::new(&host, &cancel)
                .create("/storage", &[Param::secret("password", "Tr0ub4dor&3")]);
        }
        let (host, _rec) = make_host(HostActions::Run, |_| {
            Err(std::io::Error::from(std::io::ErrorKind::NotFound))
        });
        let _ = Pvesh::new(&host, &cancel).set(
            "/storage/x",
            &[Param::secret("encryption-key", "Tr0ub4dor&3")],
        );
    });
    let all = fields.0.lock().expect("lock");
    assert!(
        all.iter().any(|f| f.contains("--password=<redacted>")),
        "{all:?}"
    );
    assert!(
        all.iter()
            .any(|f| f.contains("--encryption-key=<redacted>")),
        "{all:?}"
    );
    for f in all.iter() {
        assert!(!f.contains("Tr0ub4dor"), "{f}");
    }
}
