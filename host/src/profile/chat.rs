//! Written profiles through the chat endpoint: prompts, answers, the profile files.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use super::texts::{cut, parse_summary, read_items, texts_tsv};
use super::{list_ids, out_folder, resolve, write_file, ProfileError, What};
use crate::augment::{read_texts, Prompt};
use crate::config::Config;
use crate::data::{read_pairs, Pairs};
use crate::llm::{map_bounded, AnswerSchema, ChatMessage, LlmClient, LlmError, LlmStats, Progress};

/// The built-in item prompt (`configs/prompts/item_profile.txt`): a system part, a line
/// `---`, and the user part with `{title}` and `{description}` (and optionally `{id}`).
pub const DEFAULT_ITEM_PROMPT: &str = include_str!("../../../configs/prompts/item_profile.txt");

/// The built-in user prompt (`configs/prompts/user_profile.txt`), with `{items}` (and
/// optionally `{id}`, `{count}`).
pub const DEFAULT_USER_PROMPT: &str = include_str!("../../../configs/prompts/user_profile.txt");

/// Longest item description put into an item prompt, in characters.
const MAX_DESCRIPTION_CHARS: usize = 2000;

/// Longest item profile put into a user prompt, in characters: 30 items stay within a small
/// model's context (30 × 300 characters).
const MAX_ITEM_PROFILE_CHARS: usize = 300;

/// Missing ids named in an error or a report.
const IDS_SHOWN: usize = 10;

/// What one profiling step did.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileReport {
    /// `"item"` or `"user"`.
    pub kind: &'static str,
    /// Profiles asked for.
    pub total: usize,
    /// Ids without a usable answer, with why (answers that were no JSON object, had no
    /// summarization, or were cut at `max_tokens`).
    pub missing: Vec<(u32, String)>,
    /// The profile file (written only when nothing is missing).
    pub path: PathBuf,
    /// Whether `path` was written.
    pub written: bool,
    /// What the client did in this step.
    pub llm: LlmStats,
}

impl ProfileReport {
    /// The error a step with missing profiles ends in; `None` when it is complete.
    pub fn incomplete(&self) -> Option<ProfileError> {
        if self.missing.is_empty() {
            return None;
        }
        let ids: Vec<u32> = self.missing.iter().map(|m| m.0).collect();
        Some(ProfileError::Incomplete {
            kind: self.kind,
            missing: self.missing.len(),
            total: self.total,
            ids: list_ids(&ids, IDS_SHOWN),
            path: self.path.clone(),
        })
    }
}

impl fmt::Display for ProfileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let done = self.total - self.missing.len();
        if self.written {
            writeln!(
                f,
                "{} profiles: {done} of {}, written to {}",
                self.kind,
                self.total,
                self.path.display()
            )?;
        } else {
            writeln!(
                f,
                "{} profiles: {done} of {}, {} missing; {} NOT written",
                self.kind,
                self.total,
                self.missing.len(),
                self.path.display()
            )?;
            for (id, why) in self.missing.iter().take(IDS_SHOWN) {
                writeln!(f, "  {} {id}: {}", self.kind, cut(why, 200))?;
            }
        }
        write!(f, "  {}", self.llm)
    }
}

/// `promax profile`: items, then users (as `what` says); `on_report` sees each step's
/// report. A step with missing profiles ends the run with [`ProfileError::Incomplete`]
/// (users are not profiled over incomplete item profiles).
pub fn run_profile(
    dataset_dir: &Path,
    cfg: &Config,
    what: What,
    mut on_report: impl FnMut(&ProfileReport),
) -> Result<(), ProfileError> {
    let mut steps: Vec<Step> = Vec::with_capacity(2);
    if what.items() {
        steps.push(profile_items);
    }
    if what.users() {
        steps.push(profile_users);
    }
    for step in steps {
        let report = step(dataset_dir, cfg)?;
        on_report(&report);
        if let Some(e) = report.incomplete() {
            return Err(e);
        }
    }
    Ok(())
}

type Step = fn(&Path, &Config) -> Result<ProfileReport, ProfileError>;

/// Item profiles from the metadata file (`profile.items_file`): one prompt per item with
/// its title and description. Writes `item_profiles.tsv` when every item got one.
pub fn profile_items(dataset_dir: &Path, cfg: &Config) -> Result<ProfileReport, ProfileError> {
    let p = &cfg.profile;
    let prompt = load_prompt(
        "profile.item_prompt",
        &p.item_prompt,
        DEFAULT_ITEM_PROMPT,
        &["title", "description"],
    )?;
    let items = read_items(&resolve(dataset_dir, &p.items_file), &p.item_columns)?;
    let conversations: Vec<Vec<ChatMessage>> = items
        .iter()
        .enumerate()
        .map(|(id, m)| {
            let description = if m.description.is_empty() {
                "(no description)".to_string()
            } else {
                cut(&m.description, MAX_DESCRIPTION_CHARS)
            };
            prompt.render_with(&[
                ("id", &id.to_string()),
                ("title", &m.title),
                ("description", &description),
            ])
        })
        .collect();
    let path = out_folder(dataset_dir, &p.out_dir).join("item_profiles.tsv");
    ask_and_write("item", cfg, &conversations, path)
}

/// User profiles from TRAIN interactions only (`train.tsv`; valid and test are never
/// read): the titles and written profiles of up to `profile.max_user_items` of the user's
/// items, lowest ids first. Needs `item_profiles.tsv` (run the items first). Writes
/// `user_profiles.tsv` when every user got one.
pub fn profile_users(dataset_dir: &Path, cfg: &Config) -> Result<ProfileReport, ProfileError> {
    let p = &cfg.profile;
    let prompt = load_prompt(
        "profile.user_prompt",
        &p.user_prompt,
        DEFAULT_USER_PROMPT,
        &["items"],
    )?;
    let items_path = resolve(dataset_dir, &p.items_file);
    let items = read_items(&items_path, &p.item_columns)?;
    let out = out_folder(dataset_dir, &p.out_dir);
    let profiles_path = out.join("item_profiles.tsv");
    if !profiles_path.is_file() {
        return Err(ProfileError::Input(format!(
            "user profiles need the item profiles, and {} does not exist: run `promax profile \
             {} --what items` first (or --what both)",
            profiles_path.display(),
            dataset_dir.display()
        )));
    }
    let item_profiles =
        read_texts(&profiles_path, items.len()).map_err(|e| ProfileError::Input(e.to_string()))?;
    let train_path = dataset_dir.join("train.tsv");
    let train = read_pairs(&train_path, None, None, cfg.data.duplicates)?;
    let by_user = train_items(&train, &train_path, items.len(), &items_path)?;
    let mut conversations = Vec::with_capacity(by_user.len());
    for (user, own) in by_user.iter().enumerate() {
        let shown = &own[..own.len().min(p.max_user_items)];
        let mut lines = Vec::with_capacity(shown.len());
        for &i in shown {
            let profile = item_profiles[i as usize].trim();
            if profile.is_empty() {
                return Err(ProfileError::Input(format!(
                    "{} has no profile for item {i} (in user {user}'s train items): run \
                     `promax profile {} --what items` first",
                    profiles_path.display(),
                    dataset_dir.display()
                )));
            }
            // Title first (serde_json's maps would sort the keys).
            let line = format!(
                "{{\"title\": {}, \"description\": {}}}",
                Value::from(items[i as usize].title.as_str()),
                Value::from(cut(profile, MAX_ITEM_PROFILE_CHARS))
            );
            lines.push(line);
        }
        conversations.push(prompt.render_with(&[
            ("id", &user.to_string()),
            ("count", &shown.len().to_string()),
            ("items", &lines.join("\n")),
        ]));
    }
    ask_and_write("user", cfg, &conversations, out.join("user_profiles.tsv"))
}

/// Train items per user (sorted, distinct), for users 0..=the largest user id. Every
/// such user needs a train item and every item a metadata line.
fn train_items(
    train: &Pairs,
    train_path: &Path,
    n_items: usize,
    items_path: &Path,
) -> Result<Vec<Vec<u32>>, ProfileError> {
    let n_users = train
        .iter()
        .map(|&(u, _)| u as usize + 1)
        .max()
        .unwrap_or(0);
    if n_users == 0 {
        return Err(ProfileError::Input(format!(
            "{} has no interactions",
            train_path.display()
        )));
    }
    let mut by_user = vec![Vec::new(); n_users];
    for &(u, i) in train {
        if i as usize >= n_items {
            return Err(ProfileError::Input(format!(
                "{}: item {i} (user {u}) has no line in {} (items 0..{n_items})",
                train_path.display(),
                items_path.display()
            )));
        }
        by_user[u as usize].push(i);
    }
    by_user.iter_mut().for_each(|v| {
        v.sort_unstable();
        v.dedup();
    });
    let empty: Vec<u32> = (0..n_users as u32)
        .filter(|&u| by_user[u as usize].is_empty())
        .collect();
    if !empty.is_empty() {
        return Err(ProfileError::Input(format!(
            "{}: {} users below the largest user id have no train interactions (users {}); \
             a profile is written from train items only",
            train_path.display(),
            empty.len(),
            list_ids(&empty, IDS_SHOWN)
        )));
    }
    Ok(by_user)
}

/// The template at `path` (or `builtin` when `path` is empty), checked for `placeholders`.
fn load_prompt(
    key: &str,
    path: &Path,
    builtin: &str,
    placeholders: &[&str],
) -> Result<Prompt, ProfileError> {
    let text = if path.as_os_str().is_empty() {
        builtin.to_string()
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| ProfileError::Input(format!("{key} = {}: {e}", path.display())))?
    };
    Prompt::parse_with(&text, placeholders)
        .map_err(|e| ProfileError::Input(format!("{key} = {}: {e}", path.display())))
}

/// One conversation's answer; a failure that is not the answer's fault stops the rest.
fn ask_one(
    client: &LlmClient,
    conversation: &[ChatMessage],
    schema: &AnswerSchema,
    check: &(dyn Fn(&str) -> Result<(), String> + Sync),
    stop: &AtomicBool,
) -> Outcome {
    match client.chat_structured(conversation, Some(schema), check) {
        Ok(answer) => match parse_summary(&answer.content) {
            Ok(profile) => Outcome::Profile(profile),
            Err(why) => Outcome::Unusable(why),
        },
        Err(
            e @ (LlmError::Malformed { .. }
            | LlmError::Rejected { .. }
            | LlmError::Truncated { .. }),
        ) => Outcome::Unusable(e.to_string()),
        Err(e) => {
            stop.store(true, Ordering::Relaxed);
            Outcome::Fatal(e)
        }
    }
}

/// Longest `summarization` or `reasoning` the answer schema allows: about 250 tokens
/// each, so that both fit the default `llm.max_tokens` of 1,024.
const PROFILE_FIELD_CHARS: usize = 1000;

/// What became of one conversation.
enum Outcome {
    Profile(String),
    /// No usable answer (garbage, no summarization, cut at `max_tokens`).
    Unusable(String),
    /// The server failed for good: the run stops.
    Fatal(LlmError),
    /// Not asked: an earlier request failed for good.
    Skipped,
}

/// Asks every conversation (`llm.concurrency` at a time; after a failure that is not the
/// answer's fault the rest are skipped), then writes `path` if every id got a profile.
fn ask_and_write(
    kind: &'static str,
    cfg: &Config,
    conversations: &[Vec<ChatMessage>],
    path: PathBuf,
) -> Result<ProfileReport, ProfileError> {
    if cfg.llm.chat_model.trim().is_empty() {
        return Err(ProfileError::Input(
            "promax profile needs a chat model: set llm.chat_model (and llm.base_url)".into(),
        ));
    }
    let client =
        LlmClient::new(cfg.llm.clone()).map_err(|e| ProfileError::Input(format!("llm: {e}")))?;
    let stop = AtomicBool::new(false);
    let check = |content: &str| parse_summary(content).map(|_| ());
    let schema = AnswerSchema::strings(
        "profile",
        &["summarization", "reasoning"],
        PROFILE_FIELD_CHARS,
    );
    let label = if kind == "item" {
        "item profiles"
    } else {
        "user profiles"
    };
    let progress = Progress::new(label, conversations.len());
    let outcomes = map_bounded(conversations, cfg.llm.concurrency, |conversation| {
        if stop.load(Ordering::Relaxed) {
            return Outcome::Skipped;
        }
        let outcome = ask_one(&client, conversation, &schema, &check, &stop);
        progress.advance(1, usize::from(matches!(outcome, Outcome::Unusable(_))));
        outcome
    });
    drop(progress);
    let done = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Profile(_)))
        .count();
    let mut profiles = Vec::with_capacity(outcomes.len());
    let mut missing = Vec::new();
    for (id, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Outcome::Profile(p) => profiles.push(p),
            Outcome::Unusable(why) => missing.push((id as u32, why)),
            Outcome::Fatal(error) => {
                return Err(ProfileError::Llm {
                    what: format!("{kind} {id}"),
                    done,
                    error,
                })
            }
            Outcome::Skipped => {}
        }
    }
    let written = missing.is_empty();
    if written {
        write_file(&path, texts_tsv(&profiles).as_bytes())?;
    }
    Ok(ProfileReport {
        kind,
        total: conversations.len(),
        missing,
        path,
        written,
        llm: client.stats(),
    })
}
