use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Errors returned by the WAL.
///
/// `Clone` because one failed flush fails every append waiting on it; the
/// non-clonable sources are therefore held in `Arc`s.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WalError {
    /// Too many entries are waiting for a flush; the caller should back off.
    #[error("wal buffer full with {ops} ops")]
    BufferFull { ops: usize },

    /// The WAL was shut down (or dropped); nothing more can be appended.
    #[error("wal is closed")]
    Closed,

    #[error("entry of {size} bytes exceeds the maximum of {max} bytes")]
    EntryTooLarge { size: usize, max: usize },

    #[error("wal I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },

    #[error("wal object store error: {0}")]
    ObjectStore(#[source] Arc<object_store::Error>),

    /// Only returned by `open` when `fail_on_corruption` is set.
    #[error("corrupt wal data: {0}")]
    Corrupt(Corruption),

    /// A file written by a newer (or foreign) format version. Never skipped:
    /// silently ignoring it would lose acknowledged writes.
    #[error("wal file {file} has unsupported format version {version}")]
    UnsupportedVersion { file: String, version: u32 },

    /// The flusher died (a panic in the sink or in the WAL itself). The WAL
    /// refuses further appends because the sink may have missed entries.
    #[error("wal flusher failed: {0}")]
    Internal(String),
}

impl WalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source: Arc::new(source),
        }
    }
}

impl From<object_store::Error> for WalError {
    fn from(e: object_store::Error) -> Self {
        Self::ObjectStore(Arc::new(e))
    }
}

/// One problem found while replaying, and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// File name (local dir) or object path (object store).
    pub file: String,
    /// Byte offset of the bad record / header within the file.
    pub offset: u64,
    pub kind: CorruptionKind,
    pub action: RecoveryAction,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at offset {} in {} ({})",
            self.kind, self.offset, self.file, self.action
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorruptionKind {
    /// A record that runs past the end of the file: a write interrupted by a crash.
    TornRecord,
    ChecksumMismatch {
        stored: u32,
        computed: u32,
    },
    /// A record length that cannot be valid (zero fill, garbage).
    InvalidLength(u32),
    /// Checksum matched but the record structure is wrong.
    MalformedRecord(String),
    /// The file is shorter than a header (interrupted file creation), possibly empty.
    TruncatedHeader {
        len: u64,
    },
    /// The file does not start with the WAL magic.
    BadMagic,
    /// The sink's payload type rejected an entry's bytes.
    UndecodableEntry {
        sequence: u64,
        error: String,
    },
    /// An entry whose sequence is not above one already replayed.
    SequenceRegression {
        sequence: u64,
        last: u64,
    },
}

impl fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TornRecord => write!(f, "torn record"),
            Self::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            Self::InvalidLength(len) => write!(f, "invalid record length {len}"),
            Self::MalformedRecord(msg) => write!(f, "malformed record: {msg}"),
            Self::TruncatedHeader { len } => write!(f, "truncated header ({len} bytes)"),
            Self::BadMagic => write!(f, "not a gnomon wal file (bad magic)"),
            Self::UndecodableEntry { sequence, error } => {
                write!(f, "entry {sequence} could not be decoded: {error}")
            }
            Self::SequenceRegression { sequence, last } => {
                write!(f, "sequence {sequence} not after already replayed {last}")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryAction {
    /// The file was cut back to its last good record; appends continue in it.
    Truncated,
    /// The rest of the file/object was ignored and left untouched for
    /// inspection; appends go to a new segment.
    SkippedRestOfFile,
    /// The file was renamed out of the WAL's namespace to this name.
    Quarantined { renamed_to: String },
    /// The file held no data (interrupted creation) and was deleted.
    Removed,
    /// The whole file/object was ignored (left in place).
    SkippedFile,
    /// Only this entry was skipped; replay continued with the next one.
    SkippedEntry,
}

impl fmt::Display for RecoveryAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => write!(f, "truncated to last good record"),
            Self::SkippedRestOfFile => write!(f, "rest of file skipped"),
            Self::Quarantined { renamed_to } => write!(f, "quarantined as {renamed_to}"),
            Self::Removed => write!(f, "removed"),
            Self::SkippedFile => write!(f, "file skipped"),
            Self::SkippedEntry => write!(f, "entry skipped"),
        }
    }
}
