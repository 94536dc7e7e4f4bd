//! Terminal facts and the handling of SIGINT (Ctrl+C) and SIGTERM.
//!
//! Both signals are blocked in every thread and taken by one thread with `sigwait`, so no code
//! runs in a signal handler and no system call is interrupted half-way. What a signal does
//! depends on the [`Stage`] the running operation reports on its [`CancelToken`]:
//!
//! - The first signal cancels the token (the operation stops at its next check, cleans up,
//!   restarts the services it stopped, and the program exits 130) and says so on stderr.
//! - A later signal is announced, never obeyed silently: while services are restarted,
//!   "restarting services, press Ctrl+C again within 3 s to leave them as they are"; while
//!   services are down, that the cleanup will restart them; otherwise what is being cleaned up.
//! - Another signal within [`INSIST_WINDOW`] of that announcement (measured on the monotonic
//!   clock) exits 130 at once, leaving things as they are; when services may be left stopped,
//!   the message names `proxsave restore --recover`, which starts them later.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proxsave_archive::progress::{CancelToken, Stage};

/// How soon after an announcement another signal makes the program exit at once.
pub const INSIST_WINDOW: Duration = Duration::from_secs(3);

/// The command that starts services left stopped, shown when the user exits at once.
static RECOVER_HINT: Mutex<Option<String>> = Mutex::new(None);

/// Sets the `proxsave restore --recover …` command shown if the user leaves services stopped.
pub fn set_recover_hint(command: String) {
    *RECOVER_HINT.lock().unwrap_or_else(|p| p.into_inner()) = Some(command);
}

fn recover_hint() -> String {
    match &*RECOVER_HINT.lock().unwrap_or_else(|p| p.into_inner()) {
        Some(c) => format!("; `{c}` starts them later"),
        None => {
            "; `proxsave restore --recover` (with the same --root and --work-dir) starts them later"
                .into()
        }
    }
}

/// What to do about one signal.
#[derive(Debug, PartialEq, Eq)]
enum Reaction {
    /// Print this and carry on.
    Say(String),
    /// Print this and exit 130 now.
    Exit(String),
}

/// The escalation state: when the last announcement was made.
#[derive(Debug, Default)]
struct Escalation {
    announced: Option<Instant>,
}

impl Escalation {
    fn on_signal(&mut self, token: &CancelToken, name: &'static str, now: Instant) -> Reaction {
        let stage = token.stage();
        if !token.is_cancelled() {
            token.cancel_by(name);
            return Reaction::Say(match stage {
                Stage::Restarting => format!(
                    "proxsave: {name} received; finishing the restart of the services this run stopped"
                ),
                Stage::ServicesDown => format!(
                    "proxsave: {name} received; stopping the restore, then restarting the services it stopped"
                ),
                Stage::Working => format!("proxsave: {name} received; stopping and cleaning up"),
            });
        }
        if let Some(at) = self.announced
            && now.saturating_duration_since(at) <= INSIST_WINDOW
        {
            return Reaction::Exit(match stage {
                Stage::Restarting => format!(
                    "proxsave: {name} again: exiting now; services not restarted yet are left as they are{}",
                    recover_hint()
                ),
                Stage::ServicesDown => format!(
                    "proxsave: {name} again: exiting now; services this run stopped are left stopped{}",
                    recover_hint()
                ),
                Stage::Working => {
                    format!("proxsave: {name} again: exiting now without finishing the cleanup")
                }
            });
        }
        self.announced = Some(now);
        let secs = INSIST_WINDOW.as_secs();
        Reaction::Say(match stage {
            Stage::Restarting => format!(
                "proxsave: restarting services, press Ctrl+C again within {secs} s to leave them as they are"
            ),
            Stage::ServicesDown => format!(
                "proxsave: cleaning up ({}), then restarting the services this run stopped; press Ctrl+C again within {secs} s to exit at once and leave them stopped",
                non_empty(token.activity())
            ),
            Stage::Working => format!(
                "proxsave: cleaning up ({}); press Ctrl+C again within {secs} s to exit at once",
                non_empty(token.activity())
            ),
        })
    }
}

fn non_empty(activity: &str) -> &str {
    if activity.is_empty() {
        "stopping the current step"
    } else {
        activity
    }
}

/// Blocks SIGINT and SIGTERM in this thread (and so in every thread started later; call it
/// first thing in `main`) and starts the thread that takes them. Returns the token the
/// first signal cancels.
pub fn install_interrupt_handler() -> CancelToken {
    let token = CancelToken::new();
    let Some(set) = crate::sys::block_interrupts() else {
        return token;
    };
    let set = std::sync::Arc::new(set);
    let waiter = set.clone();
    let handler_token = token.clone();
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut escalation = Escalation::default();
            loop {
                let Some(sig) = waiter.wait() else {
                    continue;
                };
                let name = match sig {
                    libc::SIGINT => "SIGINT",
                    libc::SIGTERM => "SIGTERM",
                    _ => continue,
                };
                match escalation.on_signal(&handler_token, name, Instant::now()) {
                    Reaction::Say(msg) => eprintln!("{msg}"),
                    Reaction::Exit(msg) => {
                        eprintln!("{msg}");
                        std::process::exit(130);
                    }
                }
            }
        });
    if spawned.is_err() {
        // No thread to take them: let the signals act as usual again.
        set.unblock();
    }
    token
}

/// True when standard input is a terminal (prompts are allowed).
pub fn stdin_is_tty() -> bool {
    std::io::stdin().is_terminal()
}

/// True when standard error is a terminal (progress bars are drawn).
pub fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// Reads a secret from the terminal without echo.
pub fn prompt_secret(prompt: &str) -> std::io::Result<String> {
    // No bar left above or drawn onto the prompt line while the answer is typed.
    crate::progress::quiet(|| rpassword::prompt_password(prompt))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(r: Reaction) -> String {
        match r {
            Reaction::Say(s) => s,
            Reaction::Exit(s) => panic!("exited: {s}"),
        }
    }

    #[test]
    fn first_cancels_second_announces_third_within_the_window_exits() {
        let t0 = Instant::now();
        let token = CancelToken::new();
        let mut e = Escalation::default();
        token.set_activity("stopping services");
        token.set_stage(Stage::ServicesDown);
        let first = said(e.on_signal(&token, "SIGTERM", t0));
        assert!(token.is_cancelled());
        assert_eq!(token.cause(), Some("SIGTERM"));
        assert_eq!(token.interrupted_during(), Some("stopping services"));
        assert!(first.contains("SIGTERM received"), "{first}");
        token.set_stage(Stage::Restarting);
        let second = said(e.on_signal(&token, "SIGINT", t0 + Duration::from_secs(10)));
        assert_eq!(
            second,
            "proxsave: restarting services, press Ctrl+C again within 3 s to leave them as they are"
        );
        // Too late: announced again, the window starts over.
        let again = said(e.on_signal(&token, "SIGINT", t0 + Duration::from_secs(14)));
        assert_eq!(again, second);
        match e.on_signal(&token, "SIGINT", t0 + Duration::from_secs(16)) {
            Reaction::Exit(m) => assert!(m.contains("left as they are") && m.contains("--recover")),
            other => panic!("{other:?}"),
        }
        // The first cause stays.
        assert_eq!(token.cause(), Some("SIGTERM"));
    }

    #[test]
    fn outside_restarts_the_second_signal_says_what_is_cleaned_up() {
        let t0 = Instant::now();
        let token = CancelToken::new();
        let mut e = Escalation::default();
        said(e.on_signal(&token, "SIGINT", t0));
        token.set_activity("extracting");
        let second = said(e.on_signal(&token, "SIGINT", t0));
        assert!(
            second.contains("cleaning up (extracting)") && second.contains("within 3 s"),
            "{second}"
        );
        token.set_stage(Stage::ServicesDown);
        match e.on_signal(&token, "SIGINT", t0 + INSIST_WINDOW) {
            Reaction::Exit(m) => assert!(m.contains("left stopped"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
