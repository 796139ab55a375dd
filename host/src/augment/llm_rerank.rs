//! LLM re-ranking of the dense candidates (ProMax §2.3, Fig. 3): the user's written profile
//! and the candidates' descriptions go into a prompt (a file the user can edit), the answer
//! is a JSON list of ids, and only candidate ids are accepted.
//!
//! What an answer can do, and what happens:
//! - ids that are not candidates (hallucinated or mistyped), repeated, or not integers are
//!   dropped and counted ([`Choice::rejected`]);
//! - fewer valid ids than the budget: the rest come from the dense order
//!   ([`Choice::topped_up`]);
//! - no JSON list at all, or an answer cut at `max_tokens`: the dense order is used
//!   ([`Choice::fell_back`]);
//! - a transport failure that outlasts the client's retries stops the run: every answer
//!   received so far is in the client's disk cache, so a rerun resumes without repeating a
//!   call.

use std::path::Path;

use serde_json::Value;

use super::{dense_choice, AugmentError, Choice, Request, Rerank};
use crate::llm::{map_bounded, AnswerSchema, ChatMessage, LlmClient, LlmError, Progress};

/// The built-in prompt (`configs/prompts/rerank.txt`): a system part, a line `---`, and the
/// user part with `{user_profile}`, `{candidates}` and `{budget}`.
pub const DEFAULT_RERANK_PROMPT: &str = include_str!("../../../configs/prompts/rerank.txt");

/// Longest item description put into a prompt, in characters: candidate lists stay within
/// a small model's context (30 candidates × 300 characters).
const MAX_ITEM_CHARS: usize = 300;

/// A prompt template.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    system: Option<String>,
    user: String,
}

impl Prompt {
    /// Parses a re-ranking template: an optional system part ended by a line `---`, then the
    /// user part, which must contain `{user_profile}`, `{candidates}` and `{budget}`.
    pub fn parse(text: &str) -> Result<Prompt, String> {
        Self::parse_with(text, &["user_profile", "candidates", "budget"])
    }

    /// Parses a template whose user part must contain `{name}` for every name in
    /// `placeholders` (names without braces).
    pub fn parse_with(text: &str, placeholders: &[&str]) -> Result<Prompt, String> {
        let (system, user) = match text.split_once("\n---\n") {
            Some((s, u)) => (Some(s.trim().to_string()), u.to_string()),
            None => (None, text.to_string()),
        };
        for name in placeholders {
            if !user.contains(&format!("{{{name}}}")) {
                return Err(format!("the prompt has no {{{name}}} placeholder"));
            }
        }
        Ok(Prompt { system, user })
    }

    fn render(&self, profile: &str, candidates: &str, budget: usize) -> Vec<ChatMessage> {
        let budget = budget.to_string();
        self.render_with(&[
            ("user_profile", profile),
            ("candidates", candidates),
            ("budget", &budget),
        ])
    }

    /// The conversation with every `{name}` of the user part replaced by its value, in one
    /// pass (a value that itself contains `{name}` is left as it is).
    pub fn render_with(&self, values: &[(&str, &str)]) -> Vec<ChatMessage> {
        let mut user = String::with_capacity(self.user.len());
        let mut rest = self.user.as_str();
        while let Some(open) = rest.find('{') {
            user.push_str(&rest[..open]);
            rest = &rest[open..];
            let hit = values.iter().find(|(name, _)| {
                rest[1..].starts_with(name) && rest[1 + name.len()..].starts_with('}')
            });
            match hit {
                Some((name, value)) => {
                    user.push_str(value);
                    rest = &rest[name.len() + 2..];
                }
                None => {
                    user.push('{');
                    rest = &rest[1..];
                }
            }
        }
        user.push_str(rest);
        let mut m = Vec::with_capacity(2);
        if let Some(s) = &self.system {
            m.push(ChatMessage::system(s.clone()));
        }
        m.push(ChatMessage::user(user));
        m
    }
}

/// Re-ranks with a chat model.
pub struct LlmRerank {
    client: LlmClient,
    prompt: Prompt,
    user_texts: Vec<String>,
    item_texts: Vec<String>,
}

impl LlmRerank {
    /// `user_texts[u]` / `item_texts[i]`: written profiles (an empty one is described by
    /// its id).
    pub fn new(
        client: LlmClient,
        prompt: Prompt,
        user_texts: Vec<String>,
        item_texts: Vec<String>,
    ) -> Self {
        LlmRerank {
            client,
            prompt,
            user_texts,
            item_texts,
        }
    }

    fn conversation(&self, r: &Request<'_>) -> Vec<ChatMessage> {
        let profile = text_or(&self.user_texts, r.user, "user");
        let list: Vec<String> = r
            .candidates
            .iter()
            .map(|c| {
                let t = text_or(&self.item_texts, c.item, "item");
                format!(
                    "{}: {}",
                    c.item,
                    t.chars().take(MAX_ITEM_CHARS).collect::<String>()
                )
            })
            .collect();
        self.prompt.render(&profile, &list.join("\n"), r.budget)
    }
}

fn text_or(texts: &[String], id: u32, what: &str) -> String {
    match texts.get(id as usize).map(|t| t.trim()) {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => format!("{what} {id} (no description)"),
    }
}

impl Rerank for LlmRerank {
    fn describe(&self) -> String {
        format!("LLM `{}`", self.client.config().chat_model)
    }

    fn choose_all(&self, requests: &[Request<'_>]) -> Result<Vec<Choice>, AugmentError> {
        let conversations: Vec<Vec<ChatMessage>> =
            requests.iter().map(|r| self.conversation(r)).collect();
        // An answer without an `items` list is refused before it is cached, so a rerun
        // asks again instead of replaying it.
        let check = |content: &str| match answer_ids(content) {
            Some(_) => Ok(()),
            None => Err("no JSON object with an \"items\" list".to_string()),
        };
        let schema = rerank_schema();
        let progress = Progress::new("re-ranking", conversations.len());
        let answers = map_bounded(&conversations, self.client.config().concurrency, |m| {
            let answer = self.client.chat_structured(m, Some(&schema), &check);
            progress.advance(1, usize::from(answer.is_err()));
            answer
        });
        drop(progress);
        requests
            .iter()
            .zip(answers)
            .map(|(r, answer)| match answer {
                Ok(a) => Ok(choose(r, &a.content)),
                Err(
                    LlmError::Truncated { .. }
                    | LlmError::Malformed { .. }
                    | LlmError::Rejected { .. },
                ) => Ok(Choice {
                    fell_back: true,
                    ..dense_choice(r, &[])
                }),
                Err(e) => Err(AugmentError::Rerank(format!(
                    "user {}: {e} (answers so far are cached: rerun to resume)",
                    r.user
                ))),
            })
            .collect()
    }

    fn calls(&self) -> Option<String> {
        Some(self.client.stats().to_string())
    }
}

/// The re-rank answer: `{"items": [ids]}`.
fn rerank_schema() -> AnswerSchema {
    AnswerSchema {
        name: "rerank",
        schema: serde_json::json!({
            "type": "object",
            "properties": {"items": {"type": "array", "items": {"type": "integer"}}},
            "required": ["items"],
            "additionalProperties": false,
        }),
    }
}

/// The user's choice from an answer's text.
pub(crate) fn choose(r: &Request<'_>, content: &str) -> Choice {
    let Some(ids) = answer_ids(content) else {
        return Choice {
            fell_back: true,
            ..dense_choice(r, &[])
        };
    };
    let mut accepted = Vec::new();
    let mut rejected = 0;
    for id in ids {
        match id {
            Some(i) if r.candidates.iter().any(|c| c.item == i) && !accepted.contains(&i) => {
                accepted.push(i)
            }
            _ => rejected += 1,
        }
    }
    accepted.truncate(r.budget);
    Choice {
        rejected,
        no_candidate_ids: accepted.is_empty() && !r.candidates.is_empty() && r.budget > 0,
        ..dense_choice(r, &accepted)
    }
}

/// The `items` list of the first JSON object in `content` (code fences and prose around it
/// are ignored): each entry an id, or `None` when it is not a non-negative integer that fits
/// an id. `None` when there is no such list.
fn answer_ids(content: &str) -> Option<Vec<Option<u32>>> {
    let v =
        crate::llm::json_objects(content).find(|m| m.get("items").is_some_and(Value::is_array))?;
    let items = v.get("items")?.as_array()?;
    Some(
        items
            .iter()
            .map(|x| match x {
                Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
            .collect(),
    )
}

/// `id<TAB>text` lines into a table of `n` texts (missing ids stay empty). Errors name the
/// file and line of a malformed line, an id out of range or a repeated id.
pub fn read_texts(path: &Path, n: usize) -> Result<Vec<String>, AugmentError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| AugmentError::Input(format!("{}: {e}", path.display())))?;
    let mut out = vec![String::new(); n];
    let mut seen = vec![false; n];
    for (no, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad =
            |why: String| AugmentError::Input(format!("{}:{}: {why}", path.display(), no + 1));
        let (id, t) = line
            .split_once('\t')
            .ok_or_else(|| bad("expected `id<TAB>text`".into()))?;
        let id: usize = id
            .trim()
            .parse()
            .map_err(|_| bad(format!("`{id}` is not an id")))?;
        if id >= n {
            return Err(bad(format!("id {id} is out of range (0..{n})")));
        }
        if std::mem::replace(&mut seen[id], true) {
            return Err(bad(format!("id {id} appears twice")));
        }
        out[id] = t.to_string();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::tests::cands;
    use crate::augment::Candidate;
    use crate::llm::testserver::{Recorded, Reply, TestServer};
    use crate::llm::LlmConfig;

    #[test]
    fn answers_keep_only_candidate_ids() {
        let c = cands(&[10, 11, 12, 13]);
        let r = Request {
            user: 0,
            candidates: &c,
            budget: 2,
        };
        let got = choose(
            &r,
            "Sure!\n```json\n{\"items\": [12, 99, \"10\", 12, -1, 11]}\n```",
        );
        assert_eq!(got.items, vec![12, 10]);
        assert_eq!(got.rejected, 3, "99, the repeated 12, and -1");
        assert!(!got.fell_back);
        let short = choose(&r, "{\"items\": [13]}");
        assert!(!short.unusable());
        assert_eq!((short.items, short.topped_up), (vec![13, 10], 1));
        for none in ["{\"items\": [99, 98]}", "{\"items\": []}"] {
            let n = choose(&r, none);
            assert!(n.unusable() && !n.fell_back, "{none}");
            assert_eq!(n.items, vec![10, 11]);
        }
        for garbage in [
            "I like them all",
            "{\"item\": [10]}",
            "{\"items\": 10}",
            "{not json}",
        ] {
            let g = choose(&r, garbage);
            assert!(g.fell_back && g.unusable(), "{garbage}");
            assert_eq!(g.items, vec![10, 11]);
        }
    }

    #[test]
    fn prompt_templates_need_their_placeholders() {
        let p = Prompt::parse(DEFAULT_RERANK_PROMPT).unwrap();
        let m = p.render("likes jazz", "1: a\n2: b", 3);
        assert_eq!(m.len(), 2);
        assert!(m[1].content.contains("likes jazz") && m[1].content.contains("2: b"));
        assert!(m[1].content.contains("Choose the 3 candidates"));
        let e = Prompt::parse("rank {candidates} for {user_profile}").unwrap_err();
        assert!(e.contains("{budget}"), "{e}");
    }

    #[test]
    fn texts_file_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.tsv");
        std::fs::write(&p, "0\ta\n2\tc\n").unwrap();
        assert_eq!(read_texts(&p, 3).unwrap(), vec!["a", "", "c"]);
        for (body, want) in [
            ("0\ta\nx\tb\n", ":2: `x` is not an id"),
            ("0 a\n", ":1: expected `id<TAB>text`"),
            ("5\ta\n", ":1: id 5 is out of range (0..3)"),
            ("1\ta\n1\tb\n", ":2: id 1 appears twice"),
        ] {
            std::fs::write(&p, body).unwrap();
            let e = read_texts(&p, 3).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    fn chat(content: &str, finish: &str) -> String {
        serde_json::json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish}]
        })
        .to_string()
    }

    /// Answers by the user named in the prompt: user 0 hallucinates, user 1's answer is
    /// cut, user 2 answers well.
    fn script(req: &Recorded) -> Reply {
        let body = req.body.clone();
        let content = if body.contains("profile of user 0") {
            chat(r#"{"items": [7, 500]}"#, "stop")
        } else if body.contains("profile of user 1") {
            chat(r#"{"items": ["#, "length")
        } else {
            chat(r#"{"items": [9, 8]}"#, "stop")
        };
        Reply::json(200, content)
    }

    fn reranker(server: &TestServer, cache: &Path) -> LlmRerank {
        let cfg = LlmConfig {
            base_url: server.base_url(),
            chat_model: "m".into(),
            max_retries: 1,
            backoff_base_ms: 1,
            backoff_max_ms: 2,
            cache_dir: cache.to_path_buf(),
            ..LlmConfig::default()
        };
        let users = (0..3).map(|u| format!("profile of user {u}")).collect();
        let items = (0..10).map(|i| format!("item number {i}")).collect();
        let prompt = Prompt::parse(DEFAULT_RERANK_PROMPT).unwrap();
        LlmRerank::new(LlmClient::new(cfg).unwrap(), prompt, users, items)
    }

    /// Users `0..n`, each over `candidates` with a budget of 2.
    fn users_0_to(n: u32, candidates: &[Candidate]) -> Vec<Request<'_>> {
        (0..n)
            .map(|user| Request {
                user,
                candidates,
                budget: 2,
            })
            .collect()
    }

    #[test]
    fn llm_answers_through_a_server_and_a_rerun_makes_no_calls() {
        let server = TestServer::start(script);
        let cache = tempfile::tempdir().unwrap();
        let c = cands(&[7, 8, 9]);
        let reqs = users_0_to(3, &c);
        let first = reranker(&server, cache.path()).choose_all(&reqs).unwrap();
        assert_eq!(first[0].items, vec![7, 8]);
        assert_eq!((first[0].rejected, first[0].topped_up), (1, 1));
        assert!(first[1].fell_back);
        assert_eq!(first[2].items, vec![9, 8]);
        let calls = server.count();
        assert_eq!(calls, 3, "a cut answer is not retried");
        let again = reranker(&server, cache.path()).choose_all(&reqs).unwrap();
        assert_eq!(again, first);
        // The cut answer is not cached, so only it is asked again.
        assert_eq!(server.count(), calls + 1);
        assert!(server.requests()[0].body.contains("7: item number 7"));
    }

    #[test]
    fn a_garbage_answer_is_not_cached_and_a_brace_after_the_json_is_prose() {
        let server = TestServer::start(|req: &Recorded| {
            let content = if req.body.contains("profile of user 0") {
                "I would pick the first two."
            } else {
                r#"{"items": [9, 8]} -- hope this helps {smile}"#
            };
            Reply::json(200, chat(content, "stop"))
        });
        let cache = tempfile::tempdir().unwrap();
        let c = cands(&[7, 8, 9]);
        let reqs = users_0_to(2, &c);
        let first = reranker(&server, cache.path()).choose_all(&reqs).unwrap();
        assert!(first[0].fell_back);
        assert_eq!(first[1].items, vec![9, 8]);
        assert!(!first[1].fell_back);
        // At temperature 0 the garbage answer is asked once, and not cached: a rerun asks
        // for it again and answers the good one from the cache.
        assert_eq!(server.count(), 2);
        reranker(&server, cache.path()).choose_all(&reqs).unwrap();
        assert_eq!(server.count(), 3);
        let schema = &server.requests()[0].json()["response_format"]["json_schema"];
        assert_eq!(schema["name"], "rerank");
    }

    #[test]
    fn a_dead_endpoint_stops_the_run() {
        let server = TestServer::start(|_| Reply::json(503, "overloaded"));
        let cache = tempfile::tempdir().unwrap();
        let c = cands(&[1]);
        let reqs = [Request {
            user: 0,
            candidates: &c,
            budget: 1,
        }];
        let e = reranker(&server, cache.path())
            .choose_all(&reqs)
            .unwrap_err()
            .to_string();
        assert!(e.contains("user 0") && e.contains("rerun to resume"), "{e}");
    }

    mod props {
        use super::*;
        use crate::augment::tests::cands;
        use proptest::prelude::*;

        /// An id list in one of the forms the parser accepts: numbers or numeric strings,
        /// with or without prose and a code fence around the object.
        fn answer(ids: &[u32], quoted: &[bool], wrap: u8) -> String {
            let items: Vec<String> = ids
                .iter()
                .zip(quoted.iter().cycle())
                .map(|(i, &q)| if q { format!("\"{i}\"") } else { i.to_string() })
                .collect();
            let object = format!("{{\"items\": [{}]}}", items.join(", "));
            match wrap % 3 {
                0 => object,
                1 => format!("Here you go:\n```json\n{object}\n```\nEnjoy."),
                _ => format!("  {object}\n"),
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_answer_gives_a_choice_within_budget(
                content in prop_oneof![any::<String>(), "\\{\"items\": \\[\\PC{0,30}\\]\\}"],
                ids in proptest::collection::btree_set(0u32..50, 0..10),
                budget in 0usize..12,
            ) {
                let ids: Vec<u32> = ids.into_iter().collect();
                let c = cands(&ids);
                let r = Request { user: 0, candidates: &c, budget };
                let got = choose(&r, &content);
                prop_assert!(got.items.len() <= budget);
                prop_assert!(got.items.iter().all(|i| ids.contains(i)));
            }

            #[test]
            fn valid_id_lists_round_trip(
                // A set in a random order: an LLM's ranking is any permutation.
                ids in proptest::collection::btree_set(0u32..1_000_000, 1..20)
                    .prop_map(|s| s.into_iter().collect::<Vec<u32>>())
                    .prop_shuffle(),
                quoted in proptest::collection::vec(any::<bool>(), 1..4),
                wrap in any::<u8>(),
                extra in 0usize..5,
            ) {
                let c = cands(&ids);
                let budget = ids.len();
                let r = Request { user: 0, candidates: &c, budget: budget + extra };
                let got = choose(&r, &answer(&ids, &quoted, wrap));
                prop_assert_eq!(&got.items, &ids);
                prop_assert_eq!((got.rejected, got.topped_up), (0, 0));
                prop_assert!(!got.unusable());
            }
        }
    }
}
