//! Loom model checks of `shmring-core`; see `tests/` and the README.
