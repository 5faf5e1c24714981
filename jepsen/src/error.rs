//! The crate's one error type: what can go wrong reading or writing a
//! history. Checkers do not fail with errors; a history they cannot judge
//! (a malformed value, an exhausted budget) gives `Validity::Unknown`.

/// Why a history could not be read, built or written.
///
/// Grouped by what the caller should do: the first two mean the input is
/// wrong (fix the harness that wrote it); the last one is the environment.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- Fix the input. ---
    /// A line is not an op: bad JSON, a missing or mistyped field, invalid
    /// UTF-8, or longer than `limits::HISTORY_LINE_BYTES_MAX`. `line` is
    /// 1-based.
    #[error("line {line}: {reason}")]
    Corrupt { line: usize, reason: String },

    /// The ops parse but break a rule of the history model (indexes not
    /// dense, time going backwards, a process with two outstanding ops, a
    /// completion without an invocation, ...). `line` is set when the
    /// history was read from JSON lines.
    #[error("{}op {index}: {reason}", line_prefix(*.line))]
    Invalid { index: u64, line: Option<usize>, reason: String },

    // --- The environment. ---
    /// Reading or writing failed at `line` (1-based).
    #[error("line {line}: I/O error: {source}")]
    Io {
        line: usize,
        #[source]
        source: std::io::Error,
    },
}

fn line_prefix(line: Option<usize>) -> String {
    match line {
        Some(line) => format!("line {line}: "),
        None => String::new(),
    }
}

impl Error {
    /// Whether doing the same thing again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            // The bytes are wrong; reading them again gives the same error.
            Error::Corrupt { .. } => false,
            // The ops are wrong; the harness that recorded them has a bug.
            Error::Invalid { .. } => false,
            // A disk or pipe may recover; the history itself may be fine.
            Error::Io { .. } => true,
        }
    }
}
