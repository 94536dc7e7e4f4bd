//! Fake host commands for end-to-end tests.
//!
//! [`FakeBin`] makes a folder of small POSIX `sh` scripts named after the commands a restore
//! runs on a real host (`systemctl`, `pvesh`, `proxmox-backup-manager`, `umount`, `ifreload`,
//! `zpool`, …). Put [`FakeBin::path_env`] into the `PATH` of the process under test: every call
//! then appends one JSON line to `<dir>/calls.jsonl` instead of touching the machine, and
//! answers from a table of rules that tests write with [`FakeBin::respond`].
//!
//! Layout of `<dir>` (everything the scripts read is read at run time, so a test may change
//! rules or unit states between two runs of the binary):
//!
//! | path | what |
//! |---|---|
//! | `bin/<command>` | one executable per fake command; it `exec`s the shared recorder |
//! | `recorder.sh` | records the call, then answers (not on `PATH`) |
//! | `calls.jsonl` | `{"cmd":"systemctl","args":["stop","--no-block","pve-cluster"]}` per call |
//! | `rules/NNNNNN/` | one rule: `cmd`, `prefix` (JSON-escaped argument prefix), `stdout`, `stderr`, `exit_code`, `sleep_secs`, optional `times` |
//! | `state/<unit>` | `active` / `inactive`, the default `systemctl` state machine |
//! | `timers/<unit>.{pid,sleep,log}` | a `systemd-run --unit=U --on-active=Ns CMD…` timer: the pid that becomes `CMD` after N s (in a session of its own), the sleeper `systemctl stop U.timer` kills, `CMD`'s output |
//! | `events`, `go` | FIFOs of gated calls (see [`FakeBin::gate`]) |
//! | `fallback/<command>` | optional program answering calls no rule answered ([`FakeBin::set_fallback`]; the PVE API double) |
//!
//! ```no_run
//! use proxsave_testkit::fakes::{FakeBin, Response};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let fake = FakeBin::new(dir.path().join("fake"));
//! fake.respond("pvesh", &["get", "/version"], Response::ok("{\"version\":\"8.4.1\"}\n"));
//! let out = fake.command("pvesh").args(["get", "/version"]).output().unwrap();
//! assert!(out.status.success());
//! assert_eq!(fake.calls_of("pvesh")[0].args, ["get", "/version"]);
//! ```

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// The commands [`FakeBin::new`] fakes: everything a restore may run on a real host, including
/// read-only probes (so `--host-actions run` in a test never reaches the machine).
pub const DEFAULT_COMMANDS: &[&str] = &[
    // services and logs
    "systemctl",
    "systemd-run",
    "journalctl",
    // Proxmox VE
    "pvesh",
    "pvecm",
    "pveum",
    "pvesm",
    "pvenode",
    "pveversion",
    "pve-firewall",
    "ha-manager",
    "qm",
    "pct",
    // Proxmox Backup Server
    "proxmox-backup-manager",
    "proxmox-backup-debug",
    "proxmox-tape",
    // mounts, network, storage, accounts
    "mount",
    "umount",
    "ifup",
    "ifdown",
    "ifreload",
    "ifquery",
    "ip",
    "zpool",
    "zfs",
    "visudo",
];

/// Where the recorder writes its log, relative to the fake folder.
const LOG: &str = "calls.jsonl";

/// How a fake command answers a matching call.
///
/// The order of effects is: record the call, sleep `sleep_secs`, print `stdout`, print
/// `stderr`, exit with `exit_code`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response {
    /// Printed on standard output (exact bytes, no newline added).
    pub stdout: String,
    /// Printed on standard error (exact bytes, no newline added).
    pub stderr: String,
    /// Exit status, 0..=255.
    pub exit_code: i32,
    /// Seconds to sleep before answering (fractions allowed; 0 = none). The sleep runs with
    /// its output detached, so killing the fake command ends its pipes at once.
    pub sleep_secs: f64,
}

impl Response {
    /// Success printing `stdout`.
    pub fn ok(stdout: impl Into<String>) -> Response {
        Response {
            stdout: stdout.into(),
            ..Response::default()
        }
    }

    /// Failure with `exit_code` printing `stderr`.
    pub fn fail(exit_code: i32, stderr: impl Into<String>) -> Response {
        Response {
            stderr: stderr.into(),
            exit_code,
            ..Response::default()
        }
    }

    /// A command that hangs for `secs` seconds, then succeeds silently.
    pub fn hang(secs: f64) -> Response {
        Response {
            sleep_secs: secs,
            ..Response::default()
        }
    }

    /// The same response, answering only after `secs` seconds.
    pub fn after(mut self, secs: f64) -> Response {
        self.sleep_secs = secs;
        self
    }
}

/// One recorded call of a fake command.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Call {
    /// The command name, e.g. `systemctl`.
    pub cmd: String,
    /// Its arguments, exactly as passed.
    pub args: Vec<String>,
}

impl Call {
    /// True if the arguments start with `prefix`.
    pub fn starts_with(&self, prefix: &[&str]) -> bool {
        self.args.len() >= prefix.len() && self.args.iter().zip(prefix).all(|(a, p)| a == p)
    }

    /// The call as one readable line, `cmd arg arg…` (arguments joined by spaces, not quoted;
    /// for assertions and failure messages).
    pub fn line(&self) -> String {
        let mut s = self.cmd.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

/// What a gated call reports on the `events` FIFO (see [`FakeBin::gate`]).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct GateEvent {
    /// The command name.
    pub cmd: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// `held` (waiting for [`FakeBin::release_gate`]) or `finished` (exiting).
    pub event: String,
}

impl GateEvent {
    /// The call.
    pub fn call(&self) -> Call {
        Call {
            cmd: self.cmd.clone(),
            args: self.args.clone(),
        }
    }

    /// True for `held`.
    pub fn held(&self) -> bool {
        self.event == "held"
    }
}

/// A folder of fake host commands with their call log, rules and `systemctl` unit states.
#[derive(Clone, Debug)]
pub struct FakeBin {
    dir: PathBuf,
}

impl FakeBin {
    /// Creates the fake folder at `dir` (created if missing) with every command of
    /// [`DEFAULT_COMMANDS`], an empty call log, no rules and every unit `active`.
    pub fn new(dir: impl Into<PathBuf>) -> FakeBin {
        FakeBin::with_commands(dir, DEFAULT_COMMANDS)
    }

    /// Like [`FakeBin::new`], faking only `commands`.
    pub fn with_commands(dir: impl Into<PathBuf>, commands: &[&str]) -> FakeBin {
        let fake = FakeBin { dir: dir.into() };
        for sub in ["bin", "rules", "state"] {
            fs::create_dir_all(fake.dir.join(sub)).expect("create fake folder");
        }
        fs::write(fake.log_path(), b"").expect("create call log");
        let recorder = fake.dir.join("recorder.sh");
        fs::write(&recorder, recorder_script()).expect("write recorder");
        fs::set_permissions(&recorder, fs::Permissions::from_mode(0o755)).expect("chmod recorder");
        for name in commands {
            fake.add_command(name);
        }
        fake
    }

    /// Adds one more fake command named `name` (no `/`).
    pub fn add_command(&self, name: &str) -> &Self {
        assert!(
            !name.is_empty() && !name.contains('/') && name != "." && name != "..",
            "bad fake command name {name:?}"
        );
        let script = format!(
            "#!/bin/sh\nexec /bin/sh {} {} {} \"$@\"\n",
            sh_quote(&self.dir.join("recorder.sh").to_string_lossy()),
            sh_quote(&self.dir.to_string_lossy()),
            sh_quote(name),
        );
        let path = self.bin_dir().join(name);
        fs::write(&path, script).expect("write fake command");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod fake command");
        self
    }

    /// The fake folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder holding the fake executables (the one put first on `PATH`).
    pub fn bin_dir(&self) -> PathBuf {
        self.dir.join("bin")
    }

    /// The call log, `<dir>/calls.jsonl`.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG)
    }

    /// A `PATH` value with the fakes first, then the current `PATH` (so `sh`, `cat`, `tar`
    /// still resolve to the real tools).
    pub fn path_env(&self) -> OsString {
        let real =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        let mut dirs = vec![self.bin_dir()];
        dirs.extend(std::env::split_paths(&real));
        std::env::join_paths(dirs).expect("PATH without ':' in folder names")
    }

    /// A [`Command`] for `program` whose `PATH` is [`FakeBin::path_env`].
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("PATH", self.path_env());
        cmd
    }

    /// Adds a rule: calls of `cmd` whose arguments start with `args_prefix` answer with
    /// `response`. Rules are tried in the order they were added; the first match wins; an
    /// empty prefix matches every call of `cmd`. Without a matching rule a command succeeds
    /// silently, except `systemctl`'s default unit state machine (see
    /// [`FakeBin::unit_state`]). A matching rule replaces the default entirely: a `systemctl
    /// stop` answered by a rule does not mark the unit inactive.
    pub fn respond(&self, cmd: &str, args_prefix: &[&str], response: Response) -> &Self {
        self.add_rule(cmd, args_prefix, None, &response)
    }

    /// Like [`FakeBin::respond`], but the rule answers only the first `times` matching calls;
    /// later calls fall through to the next rules or the default. E.g. `systemctl is-active`
    /// answering `deactivating` twice before the default `inactive`.
    pub fn respond_times(
        &self,
        cmd: &str,
        args_prefix: &[&str],
        times: u32,
        response: Response,
    ) -> &Self {
        self.add_rule(cmd, args_prefix, Some(times), &response)
    }

    /// Adds a gate: a matching call (the first `times` ones, or every one with `None`) is
    /// recorded, then announces itself on the FIFO `<dir>/events` (a [`GateEvent`] line,
    /// `{"cmd":…,"args":[…],"event":"held"}`) and waits until a line is written to the FIFO
    /// `<dir>/go` ([`FakeBin::release_gate`]); then it carries on with the later rules or the
    /// default behaviour (a gated `systemctl stop` still stops the unit) and, as it exits,
    /// announces `"event":"finished"`. This is how a test holds a command "in flight" for as
    /// long as it wants, and knows when it is over, without sleeping.
    ///
    /// Someone must read `events` ([`FakeBin::watch_gates`]) or a gated call blocks on it.
    pub fn gate(&self, cmd: &str, args_prefix: &[&str], times: Option<u32>) -> &Self {
        self.make_fifos();
        self.add_rule_files(cmd, args_prefix, times, &[("gate", "")])
    }

    fn make_fifos(&self) {
        for fifo in ["events", "go"] {
            let p = self.dir.join(fifo);
            if !p.exists() {
                crate::run(Command::new("mkfifo").arg("-m").arg("600").arg(&p));
            }
        }
    }

    /// Reads the `events` FIFO for as long as the test runs, calling `on_event` when a gated
    /// call starts waiting and when it has finished. Call it once per fake folder, before the
    /// first gated call.
    pub fn watch_gates(&self, mut on_event: impl FnMut(GateEvent) + Send + 'static) {
        self.make_fifos();
        let path = self.dir.join("events");
        // Read-write: opening never blocks, and the FIFO never reports end-of-file.
        let fifo = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(fifo).lines() {
                let Ok(line) = line else { return };
                let ev: GateEvent = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("bad gate event {line:?}: {e}"));
                on_event(ev);
            }
        });
    }

    /// Lets the gated call that is waiting go on (blocks until one is waiting).
    pub fn release_gate(&self) {
        use std::io::Write;
        let mut go = fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("go"))
            .expect("open the go FIFO");
        go.write_all(b"go\n").expect("release a gated call");
    }

    fn add_rule(
        &self,
        cmd: &str,
        prefix: &[&str],
        times: Option<u32>,
        response: &Response,
    ) -> &Self {
        assert!(
            (0..=255).contains(&response.exit_code),
            "exit code {} out of 0..=255",
            response.exit_code
        );
        assert!(
            response.sleep_secs.is_finite() && response.sleep_secs >= 0.0,
            "bad sleep_secs {}",
            response.sleep_secs
        );
        let code = format!("{}\n", response.exit_code);
        let sleep = format!("{}\n", response.sleep_secs);
        let mut files: Vec<(&str, &str)> = vec![
            ("stdout", &response.stdout),
            ("stderr", &response.stderr),
            ("exit_code", &code),
        ];
        if response.sleep_secs > 0.0 {
            files.push(("sleep_secs", &sleep));
        }
        self.add_rule_files(cmd, prefix, times, &files)
    }

    fn add_rule_files(
        &self,
        cmd: &str,
        prefix: &[&str],
        times: Option<u32>,
        files: &[(&str, &str)],
    ) -> &Self {
        let rules = self.dir.join("rules");
        let next = fs::read_dir(&rules)
            .expect("read rules")
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .max()
            .map_or(1, |n| n + 1);
        // Written aside and renamed, so a command running meanwhile never sees half a rule.
        let tmp = rules.join(format!(".new-{next:06}"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir(&tmp).expect("create rule");
        let w = |name: &str, data: &str| fs::write(tmp.join(name), data).expect("write rule");
        w("cmd", &format!("{}\n", json_escape(cmd)));
        let prefix_json: Vec<String> = prefix
            .iter()
            .map(|a| format!("\"{}\"", json_escape(a)))
            .collect();
        w("prefix", &format!("{}\n", prefix_json.join(",")));
        for (name, data) in files {
            w(name, data);
        }
        if let Some(n) = times {
            w("times", &format!("{n}\n"));
        }
        fs::rename(&tmp, rules.join(format!("{next:06}"))).expect("install rule");
        self
    }

    /// Makes `script` (an executable text, e.g. `#!/bin/sh` …) answer every call of `cmd` that
    /// no rule answered, after the call was recorded: it is run with the call's arguments.
    /// Stored as `<dir>/fallback/<cmd>`.
    pub fn set_fallback(&self, cmd: &str, script: &str) -> &Self {
        assert!(!cmd.is_empty() && !cmd.contains('/'), "bad command {cmd:?}");
        let dir = self.dir.join("fallback");
        fs::create_dir_all(&dir).expect("create fallback folder");
        let path = dir.join(cmd);
        fs::write(&path, script).expect("write fallback");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod fallback");
        self
    }

    /// Removes every rule.
    pub fn clear_rules(&self) {
        let rules = self.dir.join("rules");
        for e in fs::read_dir(&rules).expect("read rules").flatten() {
            fs::remove_dir_all(e.path()).expect("remove rule");
        }
    }

    /// Every recorded call, in call order.
    ///
    /// # Panics
    /// On a log line that is not a call (a bug in the recorder, or a non-UTF-8 argument).
    pub fn calls(&self) -> Vec<Call> {
        let text = fs::read_to_string(self.log_path()).expect("read call log");
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad call log line {l:?}: {e}"))
            })
            .collect()
    }

    /// The recorded calls of `cmd`, in call order.
    pub fn calls_of(&self, cmd: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.cmd == cmd).collect()
    }

    /// Every recorded call as [`Call::line`] text.
    pub fn call_lines(&self) -> Vec<String> {
        self.calls().iter().map(Call::line).collect()
    }

    /// Empties the call log.
    pub fn clear_calls(&self) {
        fs::write(self.log_path(), b"").expect("truncate call log");
    }

    /// The state the fake `systemctl is-active` reports for `unit` when no rule matches:
    /// `inactive` after `systemctl stop <unit>` (or `kill` with SIGKILL), `active` again after
    /// `start`/`restart`/`reload-or-restart`, `active` when never touched. Names with and without
    /// `.service` are the same unit.
    pub fn unit_state(&self, unit: &str) -> String {
        fs::read_to_string(self.state_file(unit))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "active".to_string())
    }

    /// The pid of the process a fake `systemd-run --unit=UNIT` timer started (it sleeps, then
    /// becomes the timer's command), once `systemd-run` returned.
    pub fn timer_pid(&self, unit: &str) -> Option<u32> {
        fs::read_to_string(self.dir.join("timers").join(format!("{unit}.pid")))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Sets the state `systemctl is-active` reports for `unit` (e.g. `failed`).
    pub fn set_unit_state(&self, unit: &str, state: &str) {
        fs::write(self.state_file(unit), format!("{state}\n")).expect("write unit state");
    }

    /// Forgets every unit state (all `active` again).
    pub fn reset_units(&self) {
        for e in fs::read_dir(self.dir.join("state"))
            .expect("read states")
            .flatten()
        {
            fs::remove_file(e.path()).expect("remove unit state");
        }
    }

    /// Models pmxcfs' FUSE mount of `/etc/pve` at `mount_point` (`<root>/etc/pve` for an
    /// alternate root): a `mountinfo` line in [`FakeBin::mountinfo_path`] exists while the
    /// fake `pve-cluster` unit runs (it is mounted now, as on a running node), `systemctl
    /// stop pve-cluster` (or `kill --signal=SIGKILL`) removes it, `start`/`restart` adds it;
    /// `umount <mount_point>` unmounts it and answers `umount: …: not mounted.` (exit 32)
    /// when it is not mounted, as util-linux does. Give the path to the program under test
    /// as its mountinfo (proxsave: `PROXSAVE_TEST_MOUNTINFO`).
    pub fn model_pmxcfs(&self, mount_point: &Path) -> &Self {
        let dir = self.dir.join("pmxcfs");
        fs::create_dir_all(&dir).expect("create pmxcfs folder");
        let mp = mount_point.to_str().expect("UTF-8 mount point");
        assert!(
            !mp.contains(char::is_whitespace),
            "mount point with white space: {mp:?}"
        );
        fs::write(dir.join("mountpoint"), format!("{mp}\n")).expect("write mount point");
        if self.unit_state("pve-cluster") == "active" {
            fs::write(
                self.mountinfo_path(),
                format!("61 25 0:52 / {mp} rw,nosuid,nodev,relatime shared:33 - fuse /dev/fuse rw,user_id=0,group_id=0,default_permissions,allow_other\n"),
            )
            .expect("write mountinfo");
        } else {
            fs::write(self.mountinfo_path(), b"").expect("write mountinfo");
        }
        self
    }

    /// The `mountinfo` text the pmxcfs model keeps ([`FakeBin::model_pmxcfs`]).
    pub fn mountinfo_path(&self) -> PathBuf {
        self.dir.join("mountinfo")
    }

    /// True while the pmxcfs model has its mount ([`FakeBin::model_pmxcfs`]).
    pub fn pmxcfs_mounted(&self) -> bool {
        fs::metadata(self.mountinfo_path()).is_ok_and(|m| m.len() > 0)
    }

    /// Models `pvecm status` on a node of cluster `name` whose members have the addresses
    /// `members` (this node first), after pve-cluster's `PVE/CLI/pvecm.pm`: the
    /// "Cluster information", "Quorum information" (`Quorate: Yes`/`No`), "Votequorum
    /// information" and "Membership information" blocks, exit 0. While the fake
    /// `pve-cluster` unit is not active it fails as the real tool does without pmxcfs
    /// (`ipcc_send_rec[…] failed: Connection refused`, exit 111). `not_quorate_for`: how many
    /// `status` calls answer `Quorate: No` (only this node seen) before quorum is reached;
    /// `None`: never.
    pub fn model_pvecm(&self, name: &str, members: &[&str], not_quorate_for: Option<u32>) -> &Self {
        let dir = self.dir.join("pvecm");
        fs::create_dir_all(&dir).expect("create pvecm folder");
        fs::write(dir.join("name"), format!("{name}\n")).expect("write cluster name");
        let mut m = String::new();
        for ip in members {
            m.push_str(ip);
            m.push('\n');
        }
        fs::write(dir.join("members"), m).expect("write members");
        let left = not_quorate_for.map_or("never".to_string(), |n| n.to_string());
        fs::write(dir.join("no_quorum"), format!("{left}\n")).expect("write quorum state");
        self
    }

    /// Models `pvecm` on a standalone node: `pvecm status` fails with pvecm's "Corosync
    /// config '/etc/pve/corosync.conf' does not exist - is this node part of a cluster?"
    /// (exit 2) while pmxcfs runs.
    pub fn model_pvecm_standalone(&self) -> &Self {
        fs::create_dir_all(self.dir.join("pvecm")).expect("create pvecm folder");
        self
    }

    fn state_file(&self, unit: &str) -> PathBuf {
        let unit = unit.strip_suffix(".service").unwrap_or(unit);
        assert!(!unit.contains('/') && !unit.is_empty(), "bad unit {unit:?}");
        self.dir.join("state").join(unit)
    }
}

/// JSON string escaping exactly as the recorder does it (so argument prefixes compare as
/// text): `\\`, `\"`, `\n`, `\t`, `\r`, other control bytes and DEL as `\u00XX`, the rest raw.
fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Single-quotes `s` for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The shared recorder. Real `cat` and `sleep` are resolved now, by absolute path, so a test
/// that also fakes them cannot make the recorder call itself.
fn recorder_script() -> String {
    let tool = |name: &str, fallback: &str| {
        crate::which(name)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| fallback.to_string())
    };
    RECORDER
        .replace("@CAT@", &sh_quote(&tool("cat", "/bin/cat")))
        .replace("@SLEEP@", &sh_quote(&tool("sleep", "/bin/sleep")))
        .replace("@SETSID@", &sh_quote(&tool("setsid", "/usr/bin/setsid")))
}

const RECORDER: &str = r#"#!/bin/sh
# proxsave-testkit fake command recorder.
# usage: recorder.sh FAKE_DIR COMMAND [ARG...]
LC_ALL=C
export LC_ALL
fb_dir=$1
fb_cmd=$2
shift 2
CAT=@CAT@
SLEEP=@SLEEP@
SETSID=@SETSID@
nl='
'
tab=$(printf '\t')
cr=$(printf '\r')

# JSON-escapes $1 into $esc.
json_escape() {
    s=$1
    case $s in
        *[\\\"]*|*[[:cntrl:]]*) ;;
        *) esc=$s; return 0 ;;
    esac
    esc=
    while [ -n "$s" ]; do
        rest=${s#?}
        c=${s%"$rest"}
        s=$rest
        case $c in
            \\) esc="$esc\\\\" ;;
            \") esc="$esc\\\"" ;;
            "$nl") esc="$esc\\n" ;;
            "$tab") esc="$esc\\t" ;;
            "$cr") esc="$esc\\r" ;;
            [[:cntrl:]]) esc="$esc$(printf '\\u%04x' "'$c")" ;;
            *) esc="$esc$c" ;;
        esac
    done
}

json_escape "$fb_cmd"
cmd_esc=$esc
args_json=
for a in "$@"; do
    json_escape "$a"
    args_json="$args_json${args_json:+,}\"$esc\""
done
printf '%s\n' "{\"cmd\":\"$cmd_esc\",\"args\":[$args_json]}" >>"$fb_dir/calls.jsonl"

respond() {
    r=$1
    code=0
    secs=
    [ -f "$r/exit_code" ] && IFS= read -r code <"$r/exit_code"
    [ -f "$r/sleep_secs" ] && IFS= read -r secs <"$r/sleep_secs"
    if [ -n "$secs" ]; then
        "$SLEEP" "$secs" </dev/null >/dev/null 2>&1 &
        sleeper=$!
        trap 'kill "$sleeper" 2>/dev/null; exit 143' TERM INT HUP
        wait "$sleeper"
        trap - TERM INT HUP
    fi
    [ -s "$r/stdout" ] && "$CAT" "$r/stdout"
    [ -s "$r/stderr" ] && "$CAT" "$r/stderr" >&2
    exit "$code"
}

# Rules, in order; the argument list as JSON text after "[" is compared with each prefix.
tail_json="$args_json]"
for r in "$fb_dir"/rules/[0-9]*; do
    [ -d "$r" ] || continue
    IFS= read -r rcmd <"$r/cmd" || continue
    [ "$rcmd" = "$cmd_esc" ] || continue
    IFS= read -r rprefix <"$r/prefix" || continue
    if [ -n "$rprefix" ]; then
        case $tail_json in
            "$rprefix",*|"$rprefix"]*) ;;
            *) continue ;;
        esac
    fi
    if [ -f "$r/times" ]; then
        IFS= read -r left <"$r/times"
        [ "$left" -gt 0 ] 2>/dev/null || continue
        echo $((left - 1)) >"$r/times"
    fi
    if [ -f "$r/gate" ]; then
        gate_json="{\"cmd\":\"$cmd_esc\",\"args\":[$args_json],\"event\""
        printf '%s\n' "$gate_json:\"held\"}" >"$fb_dir/events"
        IFS= read -r _go <"$fb_dir/go"
        # Announced even when the caller died meanwhile (output then fails, it does not kill).
        trap '' PIPE
        trap 'printf "%s\n" "$gate_json:\"finished\"}" >"$fb_dir/events"' EXIT
        continue
    fi
    respond "$r"
done

# A fallback program for this command (e.g. the PVE API double) answers what no rule did.
if [ -x "$fb_dir/fallback/$fb_cmd" ]; then
    exec "$fb_dir/fallback/$fb_cmd" "$@"
fi

if [ "$fb_cmd" = systemd-run ]; then
    # A transient timer, as systemd makes one: the command runs after --on-active in a
    # session of its own (outside the caller's process group), stdio on /dev/null (its
    # output in timers/<unit>.log). `systemctl stop <unit>.timer` before then cancels it.
    unit=
    secs=
    while [ $# -gt 0 ]; do
        case $1 in
            --unit=*) unit=${1#--unit=} ;;
            --on-active=*) secs=${1#--on-active=}; secs=${secs%s} ;;
            --) shift; break ;;
            --*=*) ;;
            # Unload the transient units even when they failed (nothing to model here).
            --collect|-G) ;;
            -*) echo "fake systemd-run: option $1 is not modelled" >&2; exit 1 ;;
            *) break ;;
        esac
        shift
    done
    if [ -z "$unit" ] || [ -z "$secs" ] || [ $# -eq 0 ]; then
        echo "fake systemd-run: needs --unit=, --on-active= and a command" >&2
        exit 1
    fi
    mkdir -p "$fb_dir/timers"
    t="$fb_dir/timers/$unit"
    if [ -e "$t.pid" ]; then
        echo "Failed to start transient timer unit: Unit $unit.timer was already loaded or has a fragment file." >&2
        exit 1
    fi
    mkfifo "$t.ready" || exit 1
    "$SETSID" sh -c '"$1" "$2" </dev/null >/dev/null 2>&1 & echo $! >"$3.ready"; wait $! || exit 0; shift 3; exec "$@"' \
        fake-timer "$SLEEP" "$secs" "$t" "$@" </dev/null >"$t.log" 2>&1 &
    echo $! >"$t.pid"
    # The sleeper's pid, once it runs (what `systemctl stop <unit>.timer` kills).
    IFS= read -r sleeper <"$t.ready"
    echo "$sleeper" >"$t.sleep"
    rm -f "$t.ready"
    echo "Running timer as unit: $unit.timer"
    echo "Will run service as unit: $unit.service"
    exit 0
fi

# pmxcfs' FUSE mount of /etc/pve, when modelled (FakeBin::model_pmxcfs): the line in
# $fb_dir/mountinfo exists while pve-cluster runs.
pmx_mount() {
    [ -f "$fb_dir/pmxcfs/mountpoint" ] || return 0
    IFS= read -r mp <"$fb_dir/pmxcfs/mountpoint"
    printf '%s\n' "61 25 0:52 / $mp rw,nosuid,nodev,relatime shared:33 - fuse /dev/fuse rw,user_id=0,group_id=0,default_permissions,allow_other" >"$fb_dir/mountinfo"
}
pmx_umount() {
    [ -f "$fb_dir/pmxcfs/mountpoint" ] || return 0
    : >"$fb_dir/mountinfo"
}

if [ "$fb_cmd" = umount ] && [ -f "$fb_dir/pmxcfs/mountpoint" ]; then
    IFS= read -r mp <"$fb_dir/pmxcfs/mountpoint"
    for a in "$@"; do
        case $a in -*) continue ;; esac
        if [ "$a" = "$mp" ] && [ -s "$fb_dir/mountinfo" ]; then
            pmx_umount
        else
            echo "umount: $a: not mounted." >&2
            exit 32
        fi
    done
    exit 0
fi

if [ "$fb_cmd" = pvecm ] && [ -d "$fb_dir/pvecm" ]; then
    # `pvecm status` of a cluster node (FakeBin::model_pvecm), as pve-cluster's
    # PVE/CLI/pvecm.pm prints it from corosync-quorumtool; it needs pmxcfs running.
    pc=active
    [ -f "$fb_dir/state/pve-cluster" ] && IFS= read -r pc <"$fb_dir/state/pve-cluster"
    if [ "$pc" != active ]; then
        printf 'ipcc_send_rec[1] failed: Connection refused\nipcc_send_rec[2] failed: Connection refused\nipcc_send_rec[3] failed: Connection refused\nUnable to load access control list: Connection refused\n' >&2
        exit 111
    fi
    if [ ! -f "$fb_dir/pvecm/name" ]; then
        echo "Error: Corosync config '/etc/pve/corosync.conf' does not exist - is this node part of a cluster?" >&2
        exit 2
    fi
    case ${1:-} in
        status) ;;
        *) echo "fake pvecm: only 'status' is modelled" >&2; exit 255 ;;
    esac
    IFS= read -r cname <"$fb_dir/pvecm/name"
    left=0
    [ -f "$fb_dir/pvecm/no_quorum" ] && IFS= read -r left <"$fb_dir/pvecm/no_quorum"
    quorate=Yes
    case $left in
        never) quorate=No ;;
        0) ;;
        *) quorate=No; echo $((left - 1)) >"$fb_dir/pvecm/no_quorum" ;;
    esac
    nodes=0
    while IFS= read -r _l; do nodes=$((nodes + 1)); done <"$fb_dir/pvecm/members"
    total=$nodes
    flags="Quorate "
    seen=1
    if [ "$quorate" = No ]; then total=1; flags=; seen=1; else seen=$nodes; fi
    q=$((nodes / 2 + 1))
    printf 'Cluster information\n-------------------\nName:             %s\nConfig Version:   %s\nTransport:        knet\nSecure auth:      on\n\n' "$cname" "$nodes"
    printf 'Quorum information\n------------------\nDate:             Sat Jul 25 02:30:00 2026\nQuorum provider:  corosync_votequorum\nNodes:            %s\nNode ID:          0x00000001\nRing ID:          1.2a\nQuorate:          %s\n\n' "$seen" "$quorate"
    printf 'Votequorum information\n----------------------\nExpected votes:   %s\nHighest expected: %s\nTotal votes:      %s\nQuorum:           %s %s\nFlags:            %s\n\n' "$nodes" "$nodes" "$total" "$q" "$([ "$quorate" = No ] && echo 'Activity blocked')" "$flags"
    printf 'Membership information\n----------------------\n    Nodeid      Votes Name\n'
    i=0
    while IFS= read -r ip; do
        i=$((i + 1))
        [ "$quorate" = No ] && [ "$i" -gt 1 ] && break
        if [ "$i" -eq 1 ]; then
            printf '0x%08x          1 %s (local)\n' "$i" "$ip"
        else
            printf '0x%08x          1 %s\n' "$i" "$ip"
        fi
    done <"$fb_dir/pvecm/members"
    exit 0
fi

[ "$fb_cmd" = systemctl ] || exit 0

# Default systemctl: a unit state machine kept in $fb_dir/state/<unit>.
unit_file() {
    u=${1%.service}
    case $u in
        ''|*/*) unit_path= ;;
        *) unit_path="$fb_dir/state/$u" ;;
    esac
}

verb=
quiet=
sigkill=
takes_value=
for a in "$@"; do
    if [ -n "$takes_value" ]; then
        case $takes_value in
            -s|--signal) case $a in KILL|SIGKILL|9) sigkill=1 ;; esac ;;
        esac
        takes_value=
        continue
    fi
    case $a in
        -q|--quiet) quiet=1 ;;
        --signal=KILL|--signal=SIGKILL|--signal=9|-sKILL|-sSIGKILL|-s9) sigkill=1 ;;
        -s|--signal|-p|--property|-t|--type|--state|-H|--host|-M|--machine|--root|-n|--lines|-o|--output|--job-mode|--kill-whom|--kill-who|--what|--timestamp)
            takes_value=$a ;;
        -*) ;;
        *) [ -z "$verb" ] && verb=$a ;;
    esac
done

any_active=
units=0
seen_verb=
takes_value=
for a in "$@"; do
    if [ -n "$takes_value" ]; then
        takes_value=
        continue
    fi
    case $a in
        -s|--signal|-p|--property|-t|--type|--state|-H|--host|-M|--machine|--root|-n|--lines|-o|--output|--job-mode|--kill-whom|--kill-who|--what|--timestamp)
            takes_value=$a; continue ;;
        -*) continue ;;
    esac
    if [ -z "$seen_verb" ]; then
        seen_verb=1
        continue
    fi
    units=$((units + 1))
    unit_file "$a"
    [ -n "$unit_path" ] || continue
    case $verb in
        stop)
            echo inactive >"$unit_path"
            [ "${a%.service}" = pve-cluster ] && pmx_umount
            case $a in
                *.timer)
                    t="$fb_dir/timers/${a%.timer}.sleep"
                    [ -f "$t" ] && kill "$("$CAT" "$t")" 2>/dev/null
                    ;;
            esac
            ;;
        kill)
            if [ -n "$sigkill" ]; then
                echo inactive >"$unit_path"
                [ "${a%.service}" = pve-cluster ] && pmx_umount
            fi
            ;;
        start|restart|reload-or-restart)
            echo active >"$unit_path"
            [ "${a%.service}" = pve-cluster ] && pmx_mount
            ;;
        is-active)
            state=active
            [ -f "$unit_path" ] && IFS= read -r state <"$unit_path"
            [ -n "$quiet" ] || printf '%s\n' "$state"
            case $state in active|reloading|activating|deactivating) any_active=1 ;; esac
            ;;
    esac
done

if [ "$verb" = is-active ]; then
    [ "$units" -gt 0 ] || { echo "Too few arguments." >&2; exit 1; }
    [ -n "$any_active" ] && exit 0
    exit 3
fi
exit 0
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Output, Stdio};
    use std::time::{Duration, Instant};

    fn fake() -> (tempfile::TempDir, FakeBin) {
        let dir = tempfile::tempdir().expect("tempdir");
        let fake = FakeBin::new(dir.path().join("fake"));
        (dir, fake)
    }

    fn run(fake: &FakeBin, cmd: &str, args: &[&str]) -> Output {
        fake.command(cmd)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run fake")
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[test]
    fn every_default_command_is_an_executable_on_the_fake_path() {
        let (_d, fake) = fake();
        for name in DEFAULT_COMMANDS {
            let p = fake.bin_dir().join(name);
            let mode = fs::metadata(&p).expect("fake exists").permissions().mode();
            assert_eq!(mode & 0o111, 0o111, "{name} not executable");
        }
        for required in [
            "systemctl",
            "pvesh",
            "pvecm",
            "pveum",
            "pvesm",
            "proxmox-backup-manager",
            "umount",
            "mount",
            "ifup",
            "ifreload",
            "ifquery",
            "ip",
            "zpool",
            "zfs",
            "visudo",
            "journalctl",
        ] {
            assert!(DEFAULT_COMMANDS.contains(&required), "{required} missing");
        }
        // Resolution through PATH, as a child process does it.
        let out = fake
            .command("sh")
            .args(["-c", "command -v systemctl; command -v cat"])
            .output()
            .expect("sh");
        let lines = text(&out.stdout);
        let mut it = lines.lines();
        assert_eq!(
            it.next().map(PathBuf::from),
            Some(fake.bin_dir().join("systemctl"))
        );
        assert!(
            !it.next()
                .unwrap_or_default()
                .starts_with(&*fake.dir().to_string_lossy())
        );
    }

    #[test]
    fn records_one_json_line_per_call_in_order() {
        let (_d, fake) = fake();
        assert!(
            run(&fake, "systemctl", &["stop", "--no-block", "pve-cluster"])
                .status
                .success()
        );
        assert!(run(&fake, "umount", &["/etc/pve"]).status.success());
        assert!(run(&fake, "ip", &[]).status.success());
        let log = fs::read_to_string(fake.log_path()).unwrap();
        assert_eq!(
            log,
            "{\"cmd\":\"systemctl\",\"args\":[\"stop\",\"--no-block\",\"pve-cluster\"]}\n\
             {\"cmd\":\"umount\",\"args\":[\"/etc/pve\"]}\n\
             {\"cmd\":\"ip\",\"args\":[]}\n"
        );
        assert_eq!(
            fake.call_lines(),
            [
                "systemctl stop --no-block pve-cluster",
                "umount /etc/pve",
                "ip"
            ]
        );
        assert_eq!(fake.calls_of("umount").len(), 1);
        assert!(fake.calls_of("systemctl")[0].starts_with(&["stop", "--no-block"]));
        fake.clear_calls();
        assert!(fake.calls().is_empty());
    }

    #[test]
    fn records_awkward_arguments_exactly() {
        let (_d, fake) = fake();
        let args = [
            "with space",
            "double\"quote",
            "single'quote",
            "$HOME and $(id) and `id`",
            "back\\slash\\\\two",
            "new\nline",
            "tab\there\r",
            "\u{1}ctrl\u{1f}\u{7f}",
            "",
            "*",
            "-n",
            "ünïcødé ✓",
            "{\"json\":[1,2]}",
            "trailing\\",
        ];
        let out = run(&fake, "pvesh", &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let calls = fake.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].cmd, "pvesh");
        assert_eq!(calls[0].args, args);
    }

    #[test]
    fn default_answer_is_silent_success() {
        let (_d, fake) = fake();
        for cmd in [
            "pvesh",
            "zpool",
            "proxmox-backup-manager",
            "ifreload",
            "visudo",
        ] {
            let out = run(&fake, cmd, &["anything", "at all"]);
            assert_eq!(out.status.code(), Some(0), "{cmd}");
            assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{cmd}");
        }
    }

    #[test]
    fn prefix_rules_first_match_wins() {
        let (_d, fake) = fake();
        fake.respond("pvesh", &["get", "/nodes"], Response::ok("nodes\n"))
            .respond("pvesh", &["get"], Response::ok("any get\n"))
            .respond("pvesh", &["get", "/nodes/pve1"], Response::ok("never\n"))
            .respond("pvesh", &[], Response::ok("anything else\n"))
            .respond("pvecm", &["status"], Response::ok("pvecm\n"));
        let o = |args: &[&str]| text(&run(&fake, "pvesh", args).stdout);
        assert_eq!(o(&["get", "/nodes"]), "nodes\n");
        assert_eq!(o(&["get", "/nodes", "--output-format", "json"]), "nodes\n");
        // An earlier, shorter prefix shadows a later, longer one.
        assert_eq!(o(&["get", "/nodes/pve1"]), "any get\n");
        assert_eq!(o(&["get", "/storage"]), "any get\n");
        // A prefix matches whole arguments, never part of one.
        assert_eq!(o(&["get", "/nodesX"]), "any get\n");
        assert_eq!(o(&["getx"]), "anything else\n");
        assert_eq!(o(&[]), "anything else\n");
        // Other commands are unaffected.
        assert_eq!(text(&run(&fake, "pvesm", &["status"]).stdout), "");
        assert_eq!(
            text(&run(&fake, "pvecm", &["status", "-v"]).stdout),
            "pvecm\n"
        );
    }

    #[test]
    fn prefix_rules_match_awkward_arguments() {
        let (_d, fake) = fake();
        let tricky = "a \"b\" \\c\n$d 'e'\tü";
        fake.respond(
            "proxmox-backup-manager",
            &["remote", "create", tricky],
            Response::ok("matched\n"),
        );
        let hit = run(
            &fake,
            "proxmox-backup-manager",
            &["remote", "create", tricky, "--password", "x"],
        );
        assert_eq!(text(&hit.stdout), "matched\n");
        let miss = run(
            &fake,
            "proxmox-backup-manager",
            &["remote", "create", "a \"b\" \\c"],
        );
        assert_eq!(text(&miss.stdout), "");
    }

    #[test]
    fn rules_are_read_at_run_time() {
        let (_d, fake) = fake();
        assert_eq!(text(&run(&fake, "zpool", &["import"]).stdout), "");
        fake.respond("zpool", &["import"], Response::ok("pool: rpool\n"));
        assert_eq!(
            text(&run(&fake, "zpool", &["import"]).stdout),
            "pool: rpool\n"
        );
        fake.clear_rules();
        assert_eq!(text(&run(&fake, "zpool", &["import"]).stdout), "");
    }

    #[test]
    fn failures_exit_codes_and_stderr() {
        let (_d, fake) = fake();
        fake.respond(
            "umount",
            &["/etc/pve"],
            Response::fail(1, "umount: /etc/pve: target is busy.\n"),
        )
        .respond("ifreload", &["-a"], Response::fail(255, ""))
        .respond(
            "pvesh",
            &["create"],
            Response {
                stdout: "partial\n".into(),
                stderr: "400 Parameter verification failed.\n".into(),
                exit_code: 2,
                sleep_secs: 0.0,
            },
        );
        let o = run(&fake, "umount", &["/etc/pve"]);
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(text(&o.stderr), "umount: /etc/pve: target is busy.\n");
        assert!(o.stdout.is_empty());
        assert_eq!(run(&fake, "ifreload", &["-a"]).status.code(), Some(255));
        let o = run(&fake, "pvesh", &["create", "/storage"]);
        assert_eq!(o.status.code(), Some(2));
        assert_eq!(text(&o.stdout), "partial\n");
        assert_eq!(text(&o.stderr), "400 Parameter verification failed.\n");
        // The failing calls are recorded like any other.
        assert_eq!(fake.calls().len(), 3);
    }

    #[test]
    fn is_active_follows_stop_and_start() {
        let (_d, fake) = fake();
        let is_active = |unit: &str| {
            let o = run(&fake, "systemctl", &["is-active", unit]);
            (text(&o.stdout).trim().to_string(), o.status.code())
        };
        assert_eq!(is_active("pve-cluster"), ("active".into(), Some(0)));
        run(&fake, "systemctl", &["stop", "--no-block", "pve-cluster"]);
        assert_eq!(is_active("pve-cluster"), ("inactive".into(), Some(3)));
        assert_eq!(
            is_active("pve-cluster.service"),
            ("inactive".into(), Some(3))
        );
        assert_eq!(fake.unit_state("pve-cluster"), "inactive");
        assert_eq!(is_active("pvedaemon"), ("active".into(), Some(0)));
        run(&fake, "systemctl", &["start", "pve-cluster.service"]);
        assert_eq!(is_active("pve-cluster"), ("active".into(), Some(0)));
        run(&fake, "systemctl", &["stop", "pvedaemon", "pveproxy"]);
        assert_eq!(is_active("pveproxy"), ("inactive".into(), Some(3)));
        run(&fake, "systemctl", &["restart", "pveproxy"]);
        assert_eq!(is_active("pveproxy"), ("active".into(), Some(0)));
        // Several units: one line each, success if any is active; --quiet prints nothing.
        let o = run(&fake, "systemctl", &["is-active", "pvedaemon", "pveproxy"]);
        assert_eq!(text(&o.stdout), "inactive\nactive\n");
        assert_eq!(o.status.code(), Some(0));
        let o = run(&fake, "systemctl", &["is-active", "--quiet", "pvedaemon"]);
        assert_eq!((o.stdout.len(), o.status.code()), (0, Some(3)));
        // kill: only SIGKILL ends the unit.
        run(
            &fake,
            "systemctl",
            &["kill", "--signal=SIGTERM", "pvestatd"],
        );
        assert_eq!(fake.unit_state("pvestatd"), "active");
        run(
            &fake,
            "systemctl",
            &["kill", "--signal=SIGKILL", "--kill-whom=all", "pvestatd"],
        );
        assert_eq!(fake.unit_state("pvestatd"), "inactive");
        // Set and reset from the test.
        fake.set_unit_state("proxmox-backup", "failed");
        assert_eq!(is_active("proxmox-backup"), ("failed".into(), Some(3)));
        fake.reset_units();
        assert_eq!(is_active("proxmox-backup"), ("active".into(), Some(0)));
        assert_eq!(is_active("pve-cluster"), ("active".into(), Some(0)));
    }

    #[test]
    fn a_rule_overrides_the_state_machine() {
        let (_d, fake) = fake();
        // A unit that never stops.
        fake.respond(
            "systemctl",
            &["is-active", "pve-cluster"],
            Response::ok("active\n"),
        );
        run(&fake, "systemctl", &["stop", "--no-block", "pve-cluster"]);
        for _ in 0..3 {
            let o = run(&fake, "systemctl", &["is-active", "pve-cluster"]);
            assert_eq!(text(&o.stdout), "active\n");
            assert_eq!(o.status.code(), Some(0));
        }
        // The state machine still saw the stop (the rule only answers is-active).
        assert_eq!(fake.unit_state("pve-cluster"), "inactive");
        // A failing stop does not change the state when a rule answers it.
        fake.respond(
            "systemctl",
            &["stop"],
            Response::fail(1, "Failed to stop pvedaemon.service: Access denied\n"),
        );
        let o = run(&fake, "systemctl", &["stop", "pvedaemon"]);
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(fake.unit_state("pvedaemon"), "active");
    }

    #[test]
    fn respond_times_then_falls_through() {
        let (_d, fake) = fake();
        fake.respond_times(
            "systemctl",
            &["is-active", "proxmox-backup-proxy"],
            2,
            Response::ok("deactivating\n"),
        );
        run(&fake, "systemctl", &["stop", "proxmox-backup-proxy"]);
        let states: Vec<String> = (0..4)
            .map(|_| text(&run(&fake, "systemctl", &["is-active", "proxmox-backup-proxy"]).stdout))
            .collect();
        assert_eq!(
            states,
            [
                "deactivating\n",
                "deactivating\n",
                "inactive\n",
                "inactive\n"
            ]
        );
    }

    #[test]
    fn sleep_delays_the_answer() {
        let (_d, fake) = fake();
        fake.respond("pvesh", &["get"], Response::ok("late\n").after(0.4));
        let start = Instant::now();
        let o = run(&fake, "pvesh", &["get", "/cluster/resources"]);
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(400), "{took:?}");
        assert_eq!(text(&o.stdout), "late\n");
        // Recorded before the sleep.
        assert_eq!(fake.calls().len(), 1);
    }

    #[test]
    fn killing_a_hanging_command_closes_its_pipes_at_once() {
        let (_d, fake) = fake();
        fake.respond("ifreload", &["-a"], Response::hang(60.0));
        let mut child = fake
            .command("ifreload")
            .arg("-a")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // Wait until the call is recorded, i.e. the fake is sleeping.
        let start = Instant::now();
        while fake.calls().is_empty() {
            assert!(start.elapsed() < Duration::from_secs(10), "never recorded");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "did not hang"
        );
        child.kill().expect("kill");
        let killed = Instant::now();
        // Reading to EOF must not wait for the detached sleep.
        let out = child.wait_with_output().expect("wait");
        assert!(killed.elapsed() < Duration::from_secs(5));
        assert!(!out.status.success());
        assert!(out.stdout.is_empty());
    }

    #[test]
    fn sigterm_ends_a_hanging_command() {
        let (_d, fake) = fake();
        fake.respond("zpool", &[], Response::hang(60.0));
        let child = fake
            .command("zpool")
            .arg("import")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let start = Instant::now();
        while fake.calls().is_empty() {
            assert!(start.elapsed() < Duration::from_secs(10), "never recorded");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        crate::run(
            Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string()),
        );
        let out = child.wait_with_output().expect("wait");
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(out.status.code(), Some(143));
    }

    #[test]
    fn real_tools_still_work_and_extra_commands_can_be_added() {
        let (_d, fake) = fake();
        let o = fake
            .command("sh")
            .args(["-c", "printf 'x y' | cat; pveversion -v"])
            .output()
            .expect("sh");
        assert_eq!(text(&o.stdout), "x y");
        fake.add_command("proxmox-boot-tool");
        fake.respond("proxmox-boot-tool", &["status"], Response::ok("ok\n"));
        assert_eq!(
            text(&run(&fake, "proxmox-boot-tool", &["status"]).stdout),
            "ok\n"
        );
        assert_eq!(
            fake.call_lines(),
            ["pveversion -v", "proxmox-boot-tool status"]
        );
    }

    #[test]
    fn a_fake_cat_does_not_break_the_recorder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fake = FakeBin::with_commands(dir.path().join("f"), &["cat", "sleep", "pvesh"]);
        fake.respond("pvesh", &[], Response::ok("out\n").after(0.05));
        assert_eq!(text(&run(&fake, "pvesh", &["get", "/"]).stdout), "out\n");
        assert_eq!(fake.call_lines(), ["pvesh get /"]);
        assert!(!fake.bin_dir().join("systemctl").exists());
    }

    #[test]
    fn concurrent_calls_each_leave_one_whole_line() {
        let (_d, fake) = fake();
        let children: Vec<_> = (0..16)
            .map(|i| {
                fake.command("systemctl")
                    .args(["status", &format!("unit-{i} with a somewhat long argument")])
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        for mut c in children {
            assert!(c.wait().expect("wait").success());
        }
        let calls = fake.calls();
        assert_eq!(calls.len(), 16);
        for i in 0..16 {
            let arg = format!("unit-{i} with a somewhat long argument");
            assert!(calls.iter().any(|c| c.args == ["status", arg.as_str()]));
        }
    }

    #[test]
    fn a_gated_call_waits_for_release_then_behaves_as_usual() {
        let (_d, fake) = fake();
        fake.gate("systemctl", &["stop", "--no-block"], Some(1));
        let (tx, rx) = std::sync::mpsc::channel();
        fake.watch_gates(move |c| tx.send(c).unwrap());
        let mut child = fake
            .command("systemctl")
            .args(["stop", "--no-block", "pve-cluster"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn");
        let ev = rx.recv_timeout(Duration::from_secs(30)).expect("announced");
        assert!(ev.held());
        assert_eq!(ev.call().line(), "systemctl stop --no-block pve-cluster");
        // Held: recorded, not yet answered.
        assert!(child.try_wait().unwrap().is_none());
        assert_eq!(fake.unit_state("pve-cluster"), "active");
        assert_eq!(fake.calls().len(), 1);
        fake.release_gate();
        let ev = rx.recv_timeout(Duration::from_secs(30)).expect("finished");
        assert_eq!(ev.event, "finished");
        assert_eq!(ev.call().line(), "systemctl stop --no-block pve-cluster");
        assert!(child.wait().unwrap().success());
        assert_eq!(fake.unit_state("pve-cluster"), "inactive");
        // The gate was for one call only.
        assert!(
            run(&fake, "systemctl", &["stop", "--no-block", "pvedaemon"])
                .status
                .success()
        );
        assert_eq!(fake.unit_state("pvedaemon"), "inactive");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn escaping_matches_the_recorder() {
        assert_eq!(
            json_escape("a\"b\\c\nd\te\rf\u{1}\u{7f}ü"),
            "a\\\"b\\\\c\\nd\\te\\rf\\u0001\\u007fü"
        );
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
    }
}
