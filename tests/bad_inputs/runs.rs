//! Bad-input cases: run folders (overwrite, mixed files, resume, locks), checkpoints, compare folders.
