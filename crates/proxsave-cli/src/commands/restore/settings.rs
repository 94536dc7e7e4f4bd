//! What a restore was told: flags merged with the answers file (flags win).

use std::path::PathBuf;

use proxsave_categories::Mode;
use proxsave_restore::plan::{ClusterMode, PbsBehavior};

use super::decisions::{AnswerStore, known_questions};
use crate::Exit;
use crate::answers::{Answers, HostActionsArg};
use crate::cli::{KeyArgs, RestoreArgs};

/// Everything decided so far, merged from flags (which win) and the answers file.
pub(super) struct Settings {
    pub backup: Option<PathBuf>,
    pub root: PathBuf,
    pub mode: Option<Mode>,
    pub categories: Vec<String>,
    pub cluster_mode: Option<ClusterMode>,
    pub pbs_behavior: Option<PbsBehavior>,
    pub host_actions: HostActionsArg,
    pub work_dir: PathBuf,
    pub export_dir: Option<PathBuf>,
    pub keep_stage: bool,
    /// The length of every COMMIT window.
    pub commit_window: std::time::Duration,
    pub key: KeyArgs,
    /// Answers to questions by id: `--answer` and `--continue-incompatible` over the file's
    /// `[answers]` table and its top-level `continue_*` keys.
    pub answers: AnswerStore,
}

pub(super) fn settings(args: &RestoreArgs) -> Result<Settings, Exit> {
    let answers = match &args.answers {
        Some(p) => Answers::load(p).map_err(Exit::Usage)?,
        None => Answers::default(),
    };
    let mut store = AnswerStore::new(known_questions());
    store.add_file(&answers).map_err(Exit::Usage)?;
    store
        .add_flags(&args.answer, args.continue_incompatible)
        .map_err(Exit::Usage)?;
    let mut key = args.key.clone();
    if key.passphrase_file.is_none() {
        key.passphrase_file = answers.passphrase_file.clone();
    }
    if key.identity.is_empty() {
        key.identity = answers.identity.clone().unwrap_or_default();
    }
    Ok(Settings {
        backup: args.backup.clone().or(answers.backup),
        root: args
            .root
            .clone()
            .or(answers.root)
            .unwrap_or_else(|| PathBuf::from("/")),
        mode: args.mode.or(answers.mode),
        categories: if args.categories.is_empty() {
            answers.categories.unwrap_or_default()
        } else {
            args.categories.clone()
        },
        cluster_mode: args.cluster_mode.or(answers.cluster_mode),
        pbs_behavior: args.pbs_behavior.or(answers.pbs_behavior),
        host_actions: args
            .host_actions
            .or(answers.host_actions)
            .unwrap_or(HostActionsArg::Auto),
        work_dir: args
            .work_dir
            .clone()
            .or(answers.work_dir)
            .unwrap_or_else(|| PathBuf::from("/tmp/proxsave")),
        export_dir: args.export_dir.clone().or(answers.export_dir),
        keep_stage: args.keep_stage || answers.keep_stage.unwrap_or(false),
        commit_window: match args.commit_window.or(answers.commit_window) {
            Some(0) => {
                return Err(Exit::Usage(
                    "commit_window: a COMMIT window needs at least 1 second".into(),
                ));
            }
            Some(s) => std::time::Duration::from_secs(s),
            None => proxsave_restore::commit::DEFAULT_WINDOW,
        },
        key,
        answers: store,
    })
}
