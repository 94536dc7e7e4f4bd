//! Questions the engine asks while it runs, and where its messages go.
//!
//! The engine never reads a terminal: it asks a [`Prompter`]. The CLI answers from the
//! terminal, or from flags and an answers file in non-interactive runs (where a question
//! without an answer is an error naming the flag, never a guess).

use std::time::Duration;

use serde::Serialize;

use crate::applier::{Answer, AnswerSource, Ask};

/// How loud a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Progress and facts.
    Info,
    /// Something the user should read.
    Warning,
    /// Something failed.
    Error,
}

/// A yes/no question.
#[derive(Clone, Debug, Serialize)]
pub struct Question {
    /// Stable id; also the key in answers files (`continue_without_safety_backup`).
    pub id: &'static str,
    /// The flag that answers it non-interactively, if any.
    pub flag: Option<&'static str>,
    /// The question as shown.
    pub text: String,
    /// What Enter (or a timeout) means.
    pub default: bool,
    /// Only the literal word `yes` means yes (dangerous choices).
    pub strict_yes: bool,
    /// After this long without an answer, the default is taken.
    #[serde(skip)]
    pub timeout: Option<Duration>,
}

/// Why a question got no answer.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    /// The user aborted (`0`, `cancel`, Ctrl+C, end of input).
    #[error("aborted by the user")]
    Aborted,
    /// Non-interactive run and no answer was given.
    #[error("no answer for `{id}`{}", flag.map(|f| format!(" (use {f} or set `{id}` in the answers file)")).unwrap_or_default())]
    Missing {
        /// The question id.
        id: &'static str,
        /// The flag that would answer it.
        flag: Option<&'static str>,
    },
}

/// Answers questions and receives messages.
pub trait Prompter {
    /// Asks a yes/no question.
    ///
    /// # Errors
    /// [`PromptError::Aborted`] or [`PromptError::Missing`].
    fn confirm(&mut self, question: &Question) -> Result<bool, PromptError>;

    /// Shows a message.
    fn say(&mut self, level: Level, message: &str);

    /// Asks an applier's question (see [`crate::applier::Ask`]). The default answers from
    /// [`Prompter::preset`], else takes the question's default, else
    /// [`PromptError::Missing`].
    ///
    /// # Errors
    /// [`PromptError::Aborted`] or [`PromptError::Missing`].
    fn ask(&mut self, q: &Ask) -> Result<Answer, PromptError> {
        if let Some(a) = self.preset(q.spec.id) {
            return Ok(a);
        }
        match &q.default {
            Some(d) => Ok(Answer {
                value: d.clone(),
                source: AnswerSource::Default,
            }),
            None => Err(PromptError::Missing {
                id: q.spec.id,
                flag: Some("--answer"),
            }),
        }
    }

    /// The answer given up front for question `id` (a flag, the answers file), if any.
    fn preset(&self, _id: &str) -> Option<Answer> {
        None
    }

    /// True when questions without an answer can be asked (a person at a terminal). A
    /// non-interactive run stops before writing anything when a question it will need has
    /// neither an answer nor a default.
    fn interactive(&self) -> bool {
        false
    }
}

/// A prompter with fixed answers and a record of what was said (for library users and tests).
#[derive(Debug, Default)]
pub struct ScriptedPrompter {
    /// Answers by question id; questions not listed get [`PromptError::Missing`].
    pub answers: Vec<(&'static str, bool)>,
    /// Messages received.
    pub messages: Vec<(Level, String)>,
    /// Question ids asked, in order.
    pub asked: Vec<&'static str>,
    /// Answers to applier questions by id (`fstab.merge` → `all`).
    pub values: Vec<(&'static str, String)>,
}

impl Prompter for ScriptedPrompter {
    fn confirm(&mut self, question: &Question) -> Result<bool, PromptError> {
        self.asked.push(question.id);
        self.answers
            .iter()
            .find(|(id, _)| *id == question.id)
            .map(|(_, a)| *a)
            .ok_or(PromptError::Missing {
                id: question.id,
                flag: question.flag,
            })
    }

    fn say(&mut self, level: Level, message: &str) {
        self.messages.push((level, message.to_string()));
    }

    fn preset(&self, id: &str) -> Option<Answer> {
        self.values
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, v)| Answer {
                value: v.clone(),
                source: AnswerSource::Flag,
            })
    }
}
