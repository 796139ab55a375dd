//! Bad-input cases: split files, profile tables (.npy), dataset folders, sizes taken from input.
