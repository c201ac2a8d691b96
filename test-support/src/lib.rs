//! Helpers shared by the integration tests of `shmring` (`os/tests`, and the
//! `cli` and `tokio` tests that include its `common` module) and of the Zenoh
//! bridge (`zenoh/tests`):
//!
//! - [`child`]: child processes that run one test of the same test binary
//!   (`--exact child_...`), with parameters in their environment and `@@key
//!   value` reports on their standard output ([`child::Peer`]);
//! - [`messages`]: deterministic messages that carry their sequence number and
//!   a checksum, and the checks that say what arrived instead.
//!
//! Each test binary's `tests/common/mod.rs` re-exports both modules, so that the
//! tests use the helpers as before.

pub mod child;
pub mod messages;
