//! The live apply of the installed network configuration, inside a COMMIT window.
//!
//! Only when asked (`network.apply-live`, default `no`), only when host actions run, and
//! only after a preflight that passed (or an explicit `network.preflight-override` when no
//! usable validator was found). The steps:
//!
//! 1. before the staged install wrote anything, the applier took a
//!    [`proxsave_restore::commit::Snapshot`] of every path it was about to write
//!    (`/etc/network/interfaces`, `interfaces.d`, hosts, hostname, resolv.conf, …);
//! 2. the window is armed over that snapshot, its state kept under the root
//!    (`<root>/var/lib/proxsave/windows/<id>/`, 0700, files 0600) with `ifreload -a` as the
//!    after-rollback command, and its timer started (a `systemd-run` transient timer, or a
//!    detached process in its own session) — all **before** `ifreload -a`;
//! 3. `ifreload -a`; if it fails, the window is rolled back at once;
//! 4. the health checks ([`health`]), bounded to [`HEALTH_BUDGET`] in all;
//! 5. `network.commit` (`commit` / `rollback` / `wait`): at a console a countdown of the
//!    window (no answer rolls back); with `--yes` the default is `wait`: the run ends with
//!    the window armed, ended by `proxsave net commit` or by the timer.

use std::time::{Duration, Instant};

use proxsave_archive::progress::CancelToken;
use proxsave_restore::applier::{ApplyContext, ApplyError, Ask, QuestionSpec, Status};
use proxsave_restore::commit::{self, AfterCommand, Place, Snapshot, State, Window};
use proxsave_restore::host::{Host, HostActions, HostCommand, Ran};
use serde::Serialize;

/// The `network.apply-live` question.
pub const Q_APPLY_LIVE: QuestionSpec = QuestionSpec {
    id: "network.apply-live",
    prompt: "Apply the restored network configuration live now (ifreload -a), with a COMMIT window that rolls it back unless you confirm?",
    choices: &["yes", "no"],
};

/// The `network.commit` question, asked once the configuration is live.
pub const Q_COMMIT: QuestionSpec = QuestionSpec {
    id: "network.commit",
    prompt: "Keep the live network configuration? Type COMMIT to keep it",
    choices: &["commit", "rollback", "wait"],
};

/// The `network.apply-live` question as it is asked (default `no`, a 90 s countdown at the
/// console); the plan lists the same.
pub fn apply_live_ask() -> Ask {
    Ask::new(Q_APPLY_LIVE, Some("no"))
        .countdown(Duration::from_secs(90))
        .with_details(vec![
            "Applying live may cut this session off; a COMMIT window rolls the files back and reloads unless you confirm in time.".into(),
            "Recommended from the console (IPMI/iKVM), not over SSH on the management interface.".into(),
        ])
}

/// The `network.commit` question as the plan lists it: asked only once the configuration is
/// live; unattended (`--yes`) it takes `wait` (the window stays armed, ended by
/// `proxsave net commit` or its timer); at the console no answer within the window rolls back.
pub fn commit_plan_ask(window_secs: Option<u64>) -> Ask {
    let mut details =
        vec!["Asked only when the configuration was applied live, with the health checks.".into()];
    if let Some(s) = window_secs {
        details.push(format!(
            "The COMMIT window is {s}s: no COMMIT in time rolls the network files back and reloads."
        ));
    }
    Ask::new(Q_COMMIT, Some("wait")).with_details(details)
}

/// `network.apply-live`: `yes` → `true`, `no` → `false`.
///
/// # Errors
/// Any other value.
pub fn apply_live_answer(value: &str) -> Result<bool, ApplyError> {
    match value.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(ApplyError::BadAnswer {
            id: Q_APPLY_LIVE.id,
            reason: format!("takes yes or no, not {other:?}"),
        }),
    }
}

/// `network.commit`: one of `commit`, `rollback`, `wait` (any case).
///
/// # Errors
/// Any other value.
pub fn commit_answer(value: &str) -> Result<(), ApplyError> {
    match value.to_ascii_lowercase().as_str() {
        "commit" | "rollback" | "wait" => Ok(()),
        other => Err(ApplyError::BadAnswer {
            id: Q_COMMIT.id,
            reason: format!("takes commit, rollback or wait, not {other:?}"),
        }),
    }
}

/// The window's area (folder and unit names).
pub const AREA: &str = "network";

/// The time all health checks may take together.
pub const HEALTH_BUDGET: Duration = Duration::from_secs(6);

/// One health check's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked (`link enp3s0`, `address vmbr0 192.0.2.10/24`, …).
    pub name: String,
    /// `ok`, `warn`, or `not checked`.
    pub result: String,
    /// What was seen.
    pub detail: String,
}

impl Check {
    fn new(name: String, ok: bool, detail: String) -> Check {
        Check {
            name,
            result: if ok { "ok" } else { "warn" }.into(),
            detail,
        }
    }

    /// `[ok] link enp3s0: state UP`.
    pub fn line(&self) -> String {
        format!("[{}] {}: {}", self.result, self.name, self.detail)
    }
}

/// What the health checks look for, read from the installed main interfaces file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    /// Ports of each bridge: (bridge, ports).
    pub bridges: Vec<(String, Vec<String>)>,
    /// Static addresses: (interface, address with prefix).
    pub addresses: Vec<(String, String)>,
    /// The first `gateway`.
    pub gateway: Option<String>,
}

/// Reads bridges, static addresses and the gateway from an interfaces file's text (the main
/// file; included files are not followed).
pub fn expect_from(text: &str) -> Expect {
    let mut e = Expect::default();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let key = words.next().unwrap_or_default();
        let rest: Vec<&str> = words.collect();
        match key {
            "iface" => current = rest.first().map(|s| s.to_string()),
            "auto" | "source" | "source-directory" | "mapping" | "rename" => current = None,
            k if k.starts_with("allow-") => current = None,
            "bridge-ports" | "bridge_ports" => {
                if let Some(i) = &current {
                    let ports: Vec<String> = rest
                        .iter()
                        .filter(|p| **p != "none")
                        .map(|p| p.to_string())
                        .collect();
                    e.bridges.push((i.clone(), ports));
                }
            }
            "address" => {
                if let (Some(i), Some(a)) = (&current, rest.first())
                    && a.contains('/')
                {
                    e.addresses.push((i.clone(), a.to_string()));
                }
            }
            "gateway" if e.gateway.is_none() => {
                e.gateway = rest.first().map(|s| s.to_string());
            }
            _ => {}
        }
    }
    e
}

/// Runs the health checks through the host's runner, each with a short deadline, all within
/// [`HEALTH_BUDGET`]: link of each bridge port, the static addresses, the default route, the
/// gateway answering one ping, and the resolver answering (`getent hosts proxmox.com`).
/// Checks left when the budget is used up are `not checked`.
pub fn health(host: &Host, cancel: &CancelToken, expect: &Expect) -> Vec<Check> {
    let start = Instant::now();
    let mut out = Vec::new();
    let left = |start: Instant| HEALTH_BUDGET.saturating_sub(start.elapsed());
    let run = |program: &str, args: Vec<String>, max: Duration| -> Result<(bool, String), String> {
        let budget = left(start);
        if budget < Duration::from_millis(200) {
            return Err("not checked: the health checks' time is used up".into());
        }
        let cmd = HostCommand::new(program, args).timeout(max.min(budget));
        match host.run(&cmd, cancel) {
            Ok(Ran::Done(o)) => Ok((o.success(), {
                let t = o.stdout_text();
                if o.success() {
                    t.trim().to_string()
                } else {
                    o.failure()
                }
            })),
            Ok(Ran::Deferred) => Err("not checked: host actions deferred".into()),
            Err(e) => Err(format!("not checked: {}: {e}", cmd.display())),
        }
    };
    let mut push =
        |name: String, r: Result<(bool, String), String>, f: &dyn Fn(&str) -> (bool, String)| {
            out.push(match r {
                Ok((true, text)) => {
                    let (ok, detail) = f(&text);
                    Check::new(name, ok, detail)
                }
                Ok((false, why)) => Check::new(name, false, why),
                Err(why) => Check {
                    name,
                    result: "not checked".into(),
                    detail: why.trim_start_matches("not checked: ").to_string(),
                },
            })
        };
    let one_second = Duration::from_secs(1);
    for (bridge, ports) in &expect.bridges {
        for p in ports {
            let r = run(
                "ip",
                vec![
                    "-o".into(),
                    "link".into(),
                    "show".into(),
                    "dev".into(),
                    p.clone(),
                ],
                one_second,
            );
            let b = bridge.clone();
            push(format!("link {p}"), r, &move |t: &str| {
                let up = t.contains("state UP") || t.contains(",LOWER_UP");
                let enslaved = t.contains(&format!("master {b} "));
                (
                    up && enslaved,
                    format!(
                        "{}{}",
                        if up { "up" } else { "not up" },
                        if enslaved {
                            format!(", port of {b}")
                        } else {
                            format!(", NOT a port of {b}")
                        }
                    ),
                )
            });
        }
    }
    for (iface, addr) in &expect.addresses {
        let r = run(
            "ip",
            vec![
                "-o".into(),
                "addr".into(),
                "show".into(),
                "dev".into(),
                iface.clone(),
            ],
            one_second,
        );
        let a = addr.clone();
        push(format!("address {iface} {addr}"), r, &move |t: &str| {
            let has = t.split_whitespace().any(|w| w == a);
            (
                has,
                if has {
                    "present".into()
                } else {
                    "missing".into()
                },
            )
        });
    }
    let r = run(
        "ip",
        vec!["route".into(), "show".into(), "default".into()],
        one_second,
    );
    push("default route".into(), r, &|t: &str| {
        let line = t.lines().next().unwrap_or_default().to_string();
        (
            !line.is_empty(),
            if line.is_empty() { "none".into() } else { line },
        )
    });
    match &expect.gateway {
        Some(gw) => {
            let mut args = vec!["-c".to_string(), "1".into(), "-W".into(), "1".into()];
            if gw.contains(':') {
                args.insert(0, "-6".into());
            }
            args.push(gw.clone());
            let r = run("ping", args, Duration::from_secs(2));
            push(format!("gateway {gw}"), r, &|_t: &str| {
                (true, "answers ping".into())
            });
        }
        None => push(
            "gateway".into(),
            Err("not checked: no gateway in the configuration".into()),
            &|_t: &str| (true, String::new()),
        ),
    }
    let r = run(
        "getent",
        vec!["hosts".into(), "proxmox.com".into()],
        Duration::from_secs(2),
    );
    push("DNS (proxmox.com)".into(), r, &|t: &str| {
        let first = t.split_whitespace().next().unwrap_or_default().to_string();
        (!first.is_empty(), format!("resolves to {first}"))
    });
    out
}

/// What the live apply ended as.
#[derive(Clone, Debug)]
pub struct Live {
    /// The category's status.
    pub status: Status,
    /// Lines for the summary (health checks, window, how to end it).
    pub lines: Vec<String>,
}

fn line_of(w: &Window) -> String {
    let r = w.record();
    format!(
        "COMMIT window {} ({} s, {}), state in {}",
        r.id,
        r.seconds,
        r.timer,
        w.dir().display()
    )
}

/// Applies the installed configuration live inside a COMMIT window (see the module docs).
/// `before` is the snapshot taken before the install wrote; `main_text` the installed main
/// file. Returns `None` when nothing was applied live (not asked for, host actions
/// deferred), with the reason.
///
/// # Errors
/// A bad answer, an aborted prompt (after the rollback), the window's record cannot be
/// written.
pub fn apply_live(
    ctx: &mut ApplyContext<'_>,
    before: Option<&Snapshot>,
    main_text: &str,
) -> Result<Result<Live, String>, ApplyError> {
    if ctx.host.actions == HostActions::Defer {
        return Ok(Err(
            "host actions deferred (--host-actions defer or another root): not applied live".into(),
        ));
    }
    let Some(before) = before else {
        return Ok(Err(
            "no COMMIT window can be armed here: not applied live".into()
        ));
    };
    let a = ctx.prompter.ask(&apply_live_ask())?;
    if !apply_live_answer(&a.value)? {
        return Ok(Err(format!(
            "not applied live (network.apply-live=no, {})",
            format!("{:?}", a.source).to_lowercase()
        )));
    }
    let window = match Window::arm_with(
        ctx.host,
        ctx.root,
        AREA,
        before,
        vec![AfterCommand::new("ifreload", ["-a"])],
        Place::Root,
    ) {
        Ok(Some(w)) => w,
        Ok(None) => {
            return Ok(Err(
                "no COMMIT window can be armed here: not applied live".into()
            ));
        }
        Err(e) => return Ok(Err(format!("not applied live: {e}"))),
    };
    let mut lines = vec![line_of(&window)];
    let reload = HostCommand::new("ifreload", ["-a"]).timeout(Duration::from_secs(60));
    let failed = match ctx.host.run(&reload, ctx.cancel) {
        Ok(Ran::Done(o)) if o.success() => None,
        Ok(Ran::Done(o)) => Some(o.failure()),
        Ok(Ran::Deferred) => Some("deferred".into()),
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = failed {
        let s = window.rollback(ctx.host, ctx.cancel, "reload failed")?;
        lines.push(format!("ifreload -a failed: {why}"));
        for p in &s.problems {
            lines.push(format!("rollback: {p}"));
        }
        return Ok(Ok(Live {
            status: Status::Failed {
                error: format!(
                    "ifreload -a failed ({}); the previous network files were put back and reloaded",
                    why.replace('\n', " ")
                ),
            },
            lines,
        }));
    }
    let checks = health(ctx.host, ctx.cancel, &expect_from(main_text));
    let mut details: Vec<String> = vec!["Applied live (ifreload -a). Health:".into()];
    details.extend(checks.iter().map(|c| format!("  {}", c.line())));
    if checks.iter().any(|c| c.result == "warn") {
        details
            .push("Some checks failed: do not commit unless you can still reach this host.".into());
    }
    details.push(format!(
        "From another shell: `{}` keeps it, `proxsave net rollback-now{}` undoes it now.",
        window.commit_hint(),
        root_flag(&window)
    ));
    lines.extend(checks.iter().map(|c| format!("health {}", c.line())));
    let settled = commit::settle_with(ctx, &window, Q_COMMIT, details, "wait")?;
    let status = match settled.state {
        State::Committed => Status::Applied,
        State::RolledBack => Status::Skipped {
            reason: format!("applied live, then rolled back ({})", settled.by),
        },
        State::Pending => Status::Deferred {
            todo: format!(
                "the network configuration is live inside a COMMIT window: run `{}` before {} or it rolls back (`proxsave net status{}` shows it)",
                window.commit_hint(),
                chrono::DateTime::from_timestamp_millis(window.record().deadline_unix_ms)
                    .map(|d| d
                        .with_timezone(&chrono::Local)
                        .format("%H:%M:%S")
                        .to_string())
                    .unwrap_or_default(),
                root_flag(&window)
            ),
        },
    };
    for p in &settled.problems {
        lines.push(format!("rollback: {p}"));
    }
    Ok(Ok(Live { status, lines }))
}

fn root_flag(w: &Window) -> String {
    let root = &w.record().root;
    if root == std::path::Path::new("/") {
        String::new()
    } else {
        format!(" --root {}", root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxsave_restore::host::{CommandOutput, CommandRunner, MountProbe, SystemClock};
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    /// Canned outputs by command line; anything else is "not found".
    struct Canned(Vec<(&'static str, i32, &'static str)>, Mutex<Vec<String>>);

    impl CommandRunner for Canned {
        fn run(&self, cmd: &HostCommand, _: &CancelToken) -> std::io::Result<CommandOutput> {
            let line = cmd.display();
            self.1.lock().unwrap().push(line.clone());
            match self.0.iter().find(|(l, _, _)| *l == line) {
                Some((_, code, out)) => Ok(CommandOutput {
                    code: Some(*code),
                    stdout: out.as_bytes().to_vec(),
                    ..Default::default()
                }),
                None => Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "No such file or directory",
                )),
            }
        }
    }

    struct NoMounts;
    impl MountProbe for NoMounts {
        fn is_mount_point(&self, _: &Path) -> bool {
            false
        }
    }

    #[test]
    fn health_checks_report_each_item_and_say_what_they_could_not_check() {
        let runner = Arc::new(Canned(
            vec![
                (
                    "ip -o link show dev enp3s0",
                    0,
                    "3: enp3s0@peer0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master vmbr0 state UP mode DEFAULT\n",
                ),
                (
                    "ip -o link show dev enp4s0",
                    0,
                    "4: enp4s0: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN mode DEFAULT\n",
                ),
                (
                    "ip -o addr show dev vmbr0",
                    0,
                    "5: vmbr0    inet 192.0.2.10/24 scope global vmbr0\n",
                ),
                (
                    "ip route show default",
                    0,
                    "default via 192.0.2.1 dev vmbr0\n",
                ),
                ("getent hosts proxmox.com", 2, ""),
            ],
            Mutex::new(Vec::new()),
        ));
        let host = Host::new(
            "/".into(),
            HostActions::Run,
            runner.clone(),
            Arc::new(SystemClock),
            Arc::new(NoMounts),
        );
        let e = expect_from(
            "auto vmbr0\niface vmbr0 inet static\n\taddress 192.0.2.10/24\n\tgateway 192.0.2.1\n\tbridge-ports enp3s0 enp4s0\n",
        );
        let lines: Vec<String> = health(&host, &CancelToken::new(), &e)
            .iter()
            .map(Check::line)
            .collect();
        assert_eq!(lines[0], "[ok] link enp3s0: up, port of vmbr0");
        assert_eq!(lines[1], "[warn] link enp4s0: not up, NOT a port of vmbr0");
        assert_eq!(lines[2], "[ok] address vmbr0 192.0.2.10/24: present");
        assert_eq!(
            lines[3],
            "[ok] default route: default via 192.0.2.1 dev vmbr0"
        );
        assert!(
            lines[4].starts_with("[not checked] gateway 192.0.2.1: ping -c 1 -W 1 192.0.2.1: "),
            "{lines:?}"
        );
        assert!(
            lines[5].starts_with("[warn] DNS (proxmox.com): "),
            "{lines:?}"
        );
        assert_eq!(lines.len(), 6);
    }

    // network.md §13 scenario 27, for the checks this design makes: every failure is a
    // warning shown with the COMMIT question, none ends the window by itself.
    #[test]
    fn health_warns_on_no_route_a_down_link_a_missing_address_and_dead_dns() {
        let runner = Arc::new(Canned(
            vec![
                (
                    "ip -o link show dev enp3s0",
                    0,
                    "3: enp3s0: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue master vmbr0 state DOWN mode DEFAULT\n",
                ),
                // Only a link-local address: the management address is missing.
                (
                    "ip -o addr show dev vmbr0",
                    0,
                    "5: vmbr0    inet6 fe80::1/64 scope link \\       valid_lft forever preferred_lft forever\n",
                ),
                ("ip route show default", 0, ""),
                (
                    "ping -c 1 -W 1 192.0.2.1",
                    1,
                    "1 packets transmitted, 0 received, 100% packet loss\n",
                ),
                // resolv.conf without a nameserver: nothing resolves.
                ("getent hosts proxmox.com", 2, ""),
            ],
            Mutex::new(Vec::new()),
        ));
        let host = Host::new(
            "/".into(),
            HostActions::Run,
            runner.clone(),
            Arc::new(SystemClock),
            Arc::new(NoMounts),
        );
        let e = expect_from(
            "auto vmbr0\niface vmbr0 inet static\n\taddress 192.0.2.10/24\n\tgateway 192.0.2.1\n\tbridge-ports enp3s0\n",
        );
        let checks = health(&host, &CancelToken::new(), &e);
        let lines: Vec<String> = checks.iter().map(Check::line).collect();
        assert_eq!(lines[0], "[warn] link enp3s0: not up, port of vmbr0");
        assert_eq!(lines[1], "[warn] address vmbr0 192.0.2.10/24: missing");
        assert_eq!(lines[2], "[warn] default route: none");
        assert!(
            lines[3].starts_with("[warn] gateway 192.0.2.1: "),
            "{lines:?}"
        );
        assert!(
            lines[4].starts_with("[warn] DNS (proxmox.com): "),
            "{lines:?}"
        );
        assert_eq!(lines.len(), 5);
        assert!(checks.iter().all(|c| c.result == "warn"));
        // Each check is bounded: the commands carry short deadlines.
        assert_eq!(
            runner.1.lock().unwrap().len(),
            5,
            "one command per check, no retries"
        );
    }

    #[test]
    fn expectations_come_from_the_stanzas() {
        let e = expect_from(
            "auto lo\niface lo inet loopback\n\nauto vmbr0\niface vmbr0 inet static\n\taddress 192.0.2.10/24\n\tgateway 192.0.2.1\n\tbridge-ports enp3s0 enp4s0\n\nauto vmbr1\niface vmbr1 inet manual\n\tbridge-ports none\n",
        );
        assert_eq!(
            e.bridges,
            [
                (
                    "vmbr0".to_string(),
                    vec!["enp3s0".to_string(), "enp4s0".to_string()]
                ),
                ("vmbr1".to_string(), vec![])
            ]
        );
        assert_eq!(
            e.addresses,
            [("vmbr0".to_string(), "192.0.2.10/24".to_string())]
        );
        assert_eq!(e.gateway.as_deref(), Some("192.0.2.1"));
    }
}
