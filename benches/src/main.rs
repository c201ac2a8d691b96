//! The comparison program (to come); for now see `cargo bench -p shmring-benches`.
fn main() {}
