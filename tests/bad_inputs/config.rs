//! Bad-input cases: config files, `--set`, ranges of every number, LLM settings and answers, augment outputs.
