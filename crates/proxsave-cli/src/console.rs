//! The console: where human output goes, how questions are asked, and the engine's
//! [`Prompter`] for this program.
//!
//! Interactive runs read answers from the terminal; input is read in a way Ctrl+C can
//! interrupt, and a prompt left unanswered for [`IDLE_TIMEOUT`] aborts (a question with its
//! own timeout takes its safe default instead). Non-interactive runs (`--yes`, or no
//! terminal) take answers from flags and the answers file; a question without one is an
//! error naming the flag (exit 2), never a guess.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use proxsave_archive::progress::CancelToken;
use proxsave_restore::prompt::{Level, PromptError, Prompter, Question};

/// How long an interactive prompt waits before the run is aborted.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// See the module docs.
pub struct Console {
    /// Questions may be asked on the terminal.
    pub interactive: bool,
    /// Human text goes to stderr (stdout carries JSON).
    pub to_stderr: bool,
    /// Preset answers by question id.
    pub answers: HashMap<&'static str, bool>,
    cancel: CancelToken,
}

impl Console {
    /// A console.
    pub fn new(interactive: bool, to_stderr: bool, cancel: CancelToken) -> Console {
        Console {
            interactive,
            to_stderr,
            answers: HashMap::new(),
            cancel,
        }
    }

    /// Prints a line of human output.
    pub fn line(&self, s: &str) {
        if self.to_stderr {
            eprintln!("{s}");
        } else {
            println!("{s}");
            let _ = std::io::stdout().flush();
        }
    }

    /// Prints without a newline (prompts).
    pub fn prompt(&self, s: &str) {
        if self.to_stderr {
            eprint!("{s}");
            let _ = std::io::stderr().flush();
        } else {
            print!("{s}");
            let _ = std::io::stdout().flush();
        }
    }

    /// Reads one line from the terminal (trimmed). Ctrl+C, end of input and the idle
    /// timeout abort; `timeout` returns `Ok(None)` instead when it expires first.
    ///
    /// # Errors
    /// [`PromptError::Aborted`].
    pub fn read_line(&self, timeout: Option<Duration>) -> Result<Option<String>, PromptError> {
        let start = Instant::now();
        let stdin = std::io::stdin();
        loop {
            if self.cancel.is_cancelled() {
                return Err(PromptError::Aborted);
            }
            if let Some(t) = timeout
                && start.elapsed() >= t
            {
                self.line("");
                return Ok(None);
            }
            if start.elapsed() >= IDLE_TIMEOUT {
                self.line("");
                self.line("No input for 10 minutes; aborting.");
                return Err(PromptError::Aborted);
            }
            let mut fds = [rustix::event::PollFd::new(
                &stdin,
                rustix::event::PollFlags::IN,
            )];
            let wait = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 200_000_000,
            };
            match rustix::event::poll(&mut fds, Some(&wait)) {
                Ok(0) => continue,
                Ok(_) => {
                    let mut line = String::new();
                    return match stdin.lock().read_line(&mut line) {
                        Ok(0) => Err(PromptError::Aborted),
                        Ok(_) => Ok(Some(line.trim().to_string())),
                        Err(_) => Err(PromptError::Aborted),
                    };
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return Err(PromptError::Aborted),
            }
        }
    }

    /// A numbered menu; returns the chosen index (0-based). `0` (or Ctrl+C) aborts.
    ///
    /// # Errors
    /// [`PromptError::Aborted`].
    pub fn menu(
        &self,
        title: &str,
        options: &[String],
        zero_label: &str,
    ) -> Result<usize, PromptError> {
        loop {
            self.line(title);
            for (i, o) in options.iter().enumerate() {
                self.line(&format!("  [{}] {o}", i + 1));
            }
            self.line(&format!("  [0] {zero_label}"));
            self.prompt("Choice: ");
            let answer = self.read_line(None)?.unwrap_or_default();
            match answer.parse::<usize>() {
                Ok(0) => return Err(PromptError::Aborted),
                Ok(n) if n <= options.len() => return Ok(n - 1),
                _ => self.line(&format!(
                    "Invalid choice {answer:?}: enter a number from 0 to {}.",
                    options.len()
                )),
            }
        }
    }
}

impl Prompter for Console {
    fn confirm(&mut self, q: &Question) -> Result<bool, PromptError> {
        if let Some(a) = self.answers.get(q.id) {
            return Ok(*a);
        }
        if !self.interactive {
            return Err(PromptError::Missing {
                id: q.id,
                flag: q.flag,
            });
        }
        let suffix = if q.strict_yes {
            " (yes/no): ".to_string()
        } else if q.default {
            " [Y/n]: ".to_string()
        } else {
            " [y/N]: ".to_string()
        };
        loop {
            if let Some(t) = q.timeout {
                self.line(&format!(
                    "(no answer in {}s means: {})",
                    t.as_secs(),
                    if q.default { "yes" } else { "no" }
                ));
            }
            self.prompt(&format!("{}{suffix}", q.text));
            let Some(answer) = self.read_line(q.timeout)? else {
                return Ok(q.default);
            };
            let a = answer.to_ascii_lowercase();
            if q.strict_yes {
                match a.as_str() {
                    "yes" => return Ok(true),
                    "no" | "n" | "" => return Ok(false),
                    "0" | "cancel" => return Err(PromptError::Aborted),
                    _ => return Ok(false),
                }
            }
            match a.as_str() {
                "" => return Ok(q.default),
                "y" | "yes" => return Ok(true),
                "n" | "no" => return Ok(false),
                _ => self.line("Please answer y or n."),
            }
        }
    }

    fn say(&mut self, level: Level, message: &str) {
        match level {
            Level::Info => self.line(message),
            Level::Warning => self.line(&format!("WARNING: {message}")),
            Level::Error => self.line(&format!("ERROR: {message}")),
        }
    }
}
