//! Exit codes scripts can use (documented in `cli/README.md` and `--help`).

use std::process::ExitCode;

/// An error or a verdict that ends the command with a nonzero status.
#[derive(Debug)]
pub struct Failure {
    /// The status.
    pub code: Code,
    /// What went wrong, printed to stderr after `shmring: ` (empty: nothing to
    /// add to what the command printed).
    pub message: String,
}

/// The exit statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 1: an error (a system call failed, a bad name, a removal that failed).
    Error = 1,
    /// 2: bad usage (clap exits with 2 on its own errors too).
    Usage = 2,
    /// 3: a named object does not exist (or went away).
    NotFound = 3,
    /// 4: a named object's header failed validation (corrupt, foreign, half made).
    Invalid = 4,
    /// 5: `clean` kept a named object because a live process holds it.
    Kept = 5,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Code::Error, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Code::Usage, message)
    }

    /// Maps a library error on object `name` to its status.
    pub fn from_library(name: &str, error: &shmring::Error) -> Self {
        match error {
            shmring::Error::NotFound { .. } => {
                Self::new(Code::NotFound, format!("no such object: {name}"))
            }
            shmring::Error::InvalidName { .. } => Self::new(Code::Usage, error.to_string()),
            _ => Self::new(Code::Error, format!("{name}: {error}")),
        }
    }

    /// Prints the message and gives the status.
    pub fn report(self) -> ExitCode {
        if !self.message.is_empty() {
            eprintln!("shmring: {}", self.message);
        }
        ExitCode::from(self.code as u8)
    }
}
