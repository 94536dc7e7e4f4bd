//! The console: where human output goes, how questions are asked, and the engine's
//! [`Prompter`] for this program.
//!
//! Interactive runs read answers from the terminal; input is read in a way Ctrl+C can
//! interrupt, and a prompt left unanswered for [`IDLE_TIMEOUT`] aborts (a question with its
//! own timeout takes its safe default instead). Answers given up front (`--answer`, the
//! answers file) are taken first, for yes/no questions and applier questions alike.
//! Non-interactive runs (`--yes`, or no terminal) take an applier question's default when it
//! has one; a question without an answer is an error naming its id (exit 2), never a guess.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use proxsave_archive::progress::CancelToken;
use proxsave_restore::applier::{Answer, AnswerSource, Ask};
use proxsave_restore::prompt::{Level, PromptError, Prompter, Question};

use crate::commands::restore::decisions::{AnswerStore, normalise};

/// How long an interactive prompt waits before the run is aborted.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// See the module docs.
pub struct Console {
    /// Questions may be asked on the terminal.
    pub interactive: bool,
    /// Human text goes to stderr (stdout carries JSON).
    pub to_stderr: bool,
    /// Answers given up front, by question id.
    pub answers: AnswerStore,
    /// The yes/no questions answered in this run (up front or at the console), in order.
    pub confirmed: Vec<(&'static str, Answer)>,
    cancel: CancelToken,
    /// Prompts printed and not yet answered (the bars are hidden meanwhile).
    prompting: std::cell::Cell<usize>,
}

impl Console {
    /// A console.
    pub fn new(interactive: bool, to_stderr: bool, cancel: CancelToken) -> Console {
        Console {
            interactive,
            to_stderr,
            answers: AnswerStore::default(),
            confirmed: Vec::new(),
            cancel,
            prompting: std::cell::Cell::new(0),
        }
    }

    /// Prints a line of human output.
    pub fn line(&self, s: &str) {
        crate::progress::quiet(|| {
            if self.to_stderr {
                eprintln!("{s}");
            } else {
                println!("{s}");
                let _ = std::io::stdout().flush();
            }
        });
    }

    /// Prints without a newline (prompts). The progress bars stay cleared until the answer
    /// is read ([`Console::read_line`]).
    pub fn prompt(&self, s: &str) {
        crate::progress::hide();
        self.prompting.set(self.prompting.get() + 1);
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
        let r = self.read_line_inner(timeout);
        for _ in 0..self.prompting.replace(0) {
            crate::progress::show();
        }
        r
    }

    fn read_line_inner(&self, timeout: Option<Duration>) -> Result<Option<String>, PromptError> {
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

/// What one line typed at an applier's question means.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// This answer.
    Take(Answer),
    /// Not an answer: say this and ask again.
    Again(String),
    /// `0` or `cancel`.
    Abort,
}

/// The prompt line of an applier's question: `PROMPT (CHOICES) [DEFAULT]: `.
pub fn ask_prompt(q: &Ask) -> String {
    let mut s = q.spec.prompt.to_string();
    if !q.spec.choices.is_empty() {
        s.push_str(&format!(" ({})", q.spec.choices.join(" | ")));
    }
    if let Some(d) = &q.default {
        s.push_str(&format!(" [{d}]"));
    }
    s.push_str(": ");
    s
}

/// Reads one typed line as an answer to `q`: empty takes the default (asked again when there
/// is none), `0`/`cancel` aborts, anything else must be an answer to the question.
pub fn interpret(q: &Ask, input: &str) -> Reply {
    let typed = input.trim();
    if typed.is_empty() {
        return match &q.default {
            Some(d) => Reply::Take(Answer {
                value: d.clone(),
                source: AnswerSource::Default,
            }),
            None => Reply::Again("An answer is needed here (or 0 to cancel).".to_string()),
        };
    }
    if typed == "0" || typed.eq_ignore_ascii_case("cancel") {
        return Reply::Abort;
    }
    match normalise(&q.spec, typed) {
        Ok(value) => Reply::Take(Answer {
            value,
            source: AnswerSource::Console,
        }),
        Err(why) => Reply::Again(format!("{why} (or 0 to cancel).")),
    }
}

/// `yes (given by a flag)`.
fn answered_up_front(a: &Answer) -> String {
    let from = match a.source {
        AnswerSource::Flag => "given by a flag",
        AnswerSource::AnswersFile => "from the answers file",
        AnswerSource::Console => "typed",
        AnswerSource::Default => "the default",
    };
    format!("{} ({from})", a.value)
}

impl Console {
    fn confirmed(&mut self, id: &'static str, yes: bool, source: AnswerSource) -> bool {
        self.confirmed.push((
            id,
            Answer {
                value: if yes { "yes" } else { "no" }.to_string(),
                source,
            },
        ));
        yes
    }
}

impl Prompter for Console {
    fn interactive(&self) -> bool {
        self.interactive
    }

    fn confirm(&mut self, q: &Question) -> Result<bool, PromptError> {
        if let Some(a) = self.answers.get(q.id).cloned() {
            self.line(&format!("{}: {}", q.text, answered_up_front(&a)));
            return Ok(self.confirmed(q.id, a.value == "yes", a.source));
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
                return Ok(self.confirmed(q.id, q.default, AnswerSource::Default));
            };
            let a = answer.to_ascii_lowercase();
            if q.strict_yes {
                // `y`/`n` count (upstream aborts on `y`; see docs/differences.md); anything
                // else is asked again rather than taken as a no.
                match a.as_str() {
                    "yes" | "y" => return Ok(self.confirmed(q.id, true, AnswerSource::Console)),
                    "no" | "n" => return Ok(self.confirmed(q.id, false, AnswerSource::Console)),
                    "0" | "cancel" => return Err(PromptError::Aborted),
                    _ => {
                        self.line("Please answer yes or no (y/n), or cancel.");
                        continue;
                    }
                }
            }
            match a.as_str() {
                "" => return Ok(self.confirmed(q.id, q.default, AnswerSource::Default)),
                "y" | "yes" => return Ok(self.confirmed(q.id, true, AnswerSource::Console)),
                "n" | "no" => return Ok(self.confirmed(q.id, false, AnswerSource::Console)),
                _ => self.line("Please answer y or n."),
            }
        }
    }

    fn ask(&mut self, q: &Ask) -> Result<Answer, PromptError> {
        if let Some(a) = self.preset(q.spec.id) {
            self.line(&format!("{}: {}", q.spec.prompt, answered_up_front(&a)));
            return Ok(a);
        }
        if !self.interactive {
            return match &q.default {
                Some(d) => Ok(Answer {
                    value: d.clone(),
                    source: AnswerSource::Default,
                }),
                None => Err(PromptError::Missing {
                    id: q.spec.id,
                    flag: Some("--answer"),
                }),
            };
        }
        self.line("");
        for d in &q.details {
            self.line(d);
        }
        let started = Instant::now();
        loop {
            let remaining = q.timeout.map(|t| t.saturating_sub(started.elapsed()));
            match remaining {
                Some(left) => self.prompt(&format!(
                    "{}(no answer within {} s: {}) ",
                    ask_prompt(q),
                    left.as_secs().max(1),
                    q.default.as_deref().unwrap_or("cancel")
                )),
                None => self.prompt(&ask_prompt(q)),
            }
            let Some(typed) = self.read_line(remaining)? else {
                // The countdown ran out: the default (the safe choice), or cancel.
                return match &q.default {
                    Some(d) => {
                        self.line(&format!("No answer in time: {d}."));
                        Ok(Answer {
                            value: d.clone(),
                            source: AnswerSource::Default,
                        })
                    }
                    None => Err(PromptError::Aborted),
                };
            };
            match interpret(q, &typed) {
                Reply::Take(a) => return Ok(a),
                Reply::Abort => return Err(PromptError::Aborted),
                Reply::Again(why) => self.line(&why),
            }
        }
    }

    fn preset(&self, id: &str) -> Option<Answer> {
        self.answers.get(id).cloned()
    }

    fn say(&mut self, level: Level, message: &str) {
        match level {
            Level::Info => self.line(message),
            Level::Warning => self.line(&format!("WARNING: {message}")),
            Level::Error => self.line(&format!("ERROR: {message}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::restore::decisions::{AnswerStore, ENGINE_QUESTIONS};
    use proxsave_restore::applier::QuestionSpec;

    const MERGE: QuestionSpec = QuestionSpec {
        id: "fstab.merge",
        prompt: "Add which mounts to /etc/fstab?",
        choices: &["all", "none", "<mountpoint>,…"],
    };
    const SUDOERS: QuestionSpec = QuestionSpec {
        id: "sudoers.apply",
        prompt: "Install the backup's sudoers?",
        choices: &["yes", "no"],
    };

    fn ask(spec: QuestionSpec, default: Option<&str>) -> Ask {
        Ask {
            spec,
            default: default.map(str::to_string),
            details: vec!["/dev/sdb1 -> /srv (ext4)".into()],
            timeout: None,
        }
    }

    /// A console as `--yes` makes it (messages to stderr), with `flags` given up front.
    fn console(flags: &[(&str, &str)]) -> Console {
        let mut c = Console::new(false, true, CancelToken::new());
        let mut known = ENGINE_QUESTIONS.to_vec();
        known.extend([MERGE, SUDOERS]);
        let mut store = AnswerStore::new(known);
        let flags: Vec<(String, String)> = flags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        store.add_flags(&flags, false).unwrap();
        c.answers = store;
        c
    }

    fn answer(value: &str, source: AnswerSource) -> Answer {
        Answer {
            value: value.into(),
            source,
        }
    }

    #[test]
    fn non_interactive_ask_takes_the_preset_then_the_default_else_names_the_id() {
        let mut c = console(&[("fstab.merge", "/srv")]);
        assert_eq!(
            c.ask(&ask(MERGE, Some("none"))),
            Ok(answer("/srv", AnswerSource::Flag))
        );
        assert_eq!(
            c.preset("fstab.merge"),
            Some(answer("/srv", AnswerSource::Flag))
        );
        assert_eq!(
            c.ask(&ask(SUDOERS, Some("yes"))),
            Ok(answer("yes", AnswerSource::Default))
        );
        assert_eq!(
            c.ask(&ask(SUDOERS, None)),
            Err(PromptError::Missing {
                id: "sudoers.apply",
                flag: Some("--answer")
            })
        );
        assert_eq!(c.preset("sudoers.apply"), None);
    }

    #[test]
    fn confirm_questions_use_the_same_answers() {
        let mut c = console(&[("continue_without_safety_backup", "y")]);
        let q = |id: &'static str| Question {
            id,
            flag: None,
            text: "Continue?".into(),
            default: false,
            strict_yes: true,
            timeout: None,
        };
        assert_eq!(c.confirm(&q("continue_without_safety_backup")), Ok(true));
        assert_eq!(
            c.confirm(&q("continue_incompatible")),
            Err(PromptError::Missing {
                id: "continue_incompatible",
                flag: None
            })
        );
        assert_eq!(
            c.confirmed,
            [(
                "continue_without_safety_backup",
                answer("yes", AnswerSource::Flag)
            )]
        );
    }

    #[test]
    fn typed_lines_are_answers_defaults_retries_or_cancel() {
        let q = ask(SUDOERS, Some("yes"));
        assert_eq!(
            ask_prompt(&q),
            "Install the backup's sudoers? (yes | no) [yes]: "
        );
        assert_eq!(
            interpret(&q, ""),
            Reply::Take(answer("yes", AnswerSource::Default))
        );
        assert_eq!(
            interpret(&q, " N "),
            Reply::Take(answer("no", AnswerSource::Console))
        );
        assert_eq!(interpret(&q, "0"), Reply::Abort);
        assert_eq!(interpret(&q, "Cancel"), Reply::Abort);
        assert_eq!(
            interpret(&q, "perhaps"),
            Reply::Again(
                "`sudoers.apply` takes yes or no, not \"perhaps\" (or 0 to cancel).".into()
            )
        );
        let q = ask(MERGE, None);
        assert_eq!(
            ask_prompt(&q),
            "Add which mounts to /etc/fstab? (all | none | <mountpoint>,…): "
        );
        assert_eq!(
            interpret(&q, ""),
            Reply::Again("An answer is needed here (or 0 to cancel).".into())
        );
        assert_eq!(
            interpret(&q, "/srv,/mnt/nfs"),
            Reply::Take(answer("/srv,/mnt/nfs", AnswerSource::Console))
        );
    }
}
