//! Backend-independent part of replay: turning verified records into decoded
//! entries for the sink, and bookkeeping of everything that was wrong.

use std::sync::Arc;

use crate::error::{Corruption, CorruptionKind, RecoveryAction, WalError};
use crate::format::{BadRecord, RecordError, RecordReader, HEADER_LEN};
use crate::{WalEntry, WalPayload, WalSink};

/// Entries handed to the sink per `apply` call during replay: large enough to
/// amortise per-call costs in the sink, small enough to bound memory held here.
const REPLAY_BATCH_ENTRIES: usize = 8192;

/// Beyond this many, corruptions are counted but not listed, so a WAL full of
/// undecodable entries (e.g. a payload format change) cannot balloon the report.
const MAX_LISTED_CORRUPTIONS: usize = 1000;

/// What `Wal::open` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Entries decoded and handed to the sink.
    pub entries_replayed: u64,
    /// Segment files / objects read (including ones found to be corrupt).
    pub files_read: u64,
    pub bytes_read: u64,
    /// Problems found, in the order found, with the action taken for each.
    pub corruptions: Vec<Corruption>,
    /// Problems found beyond the ones listed in `corruptions`.
    pub corruptions_not_listed: u64,
    /// Highest sequence number found in a valid record (replayed or not).
    pub last_sequence: Option<u64>,
    /// Sequence number the next append will get.
    pub next_sequence: u64,
}

impl ReplayReport {
    /// True when nothing was found to be wrong.
    pub fn is_clean(&self) -> bool {
        self.corruptions.is_empty() && self.corruptions_not_listed == 0
    }
}

/// Result of reading the records of one file whose header was valid.
pub(crate) struct FileOutcome {
    /// Length of the prefix made of the header and valid records.
    pub good_len: u64,
    /// The first bad record, not yet reported: the backend decides the action.
    pub bad: Option<BadRecord>,
}

pub(crate) struct Replayer<P: WalPayload> {
    sink: Arc<dyn WalSink<P>>,
    fail_on_corruption: bool,
    batch: Vec<WalEntry<P>>,
    report: ReplayReport,
}

impl<P: WalPayload> Replayer<P> {
    pub(crate) fn new(sink: Arc<dyn WalSink<P>>, fail_on_corruption: bool) -> Self {
        Self {
            sink,
            fail_on_corruption,
            batch: Vec::new(),
            report: ReplayReport::default(),
        }
    }

    pub(crate) fn file_read(&mut self, bytes: usize) {
        self.report.files_read += 1;
        self.report.bytes_read += bytes as u64;
    }

    /// Feeds every valid record of `buf` (a whole file, header already
    /// checked) to the sink, stopping at the first bad record.
    pub(crate) fn replay_records(
        &mut self,
        file: &str,
        buf: &[u8],
    ) -> Result<FileOutcome, WalError> {
        let mut reader = RecordReader::new(buf, HEADER_LEN);
        let mut bad = None;
        loop {
            let offset = reader.good_len();
            match reader.next() {
                None => break,
                Some(Ok(record)) => {
                    let mut regressed: Option<(u64, u64)> = None;
                    for (i, bytes) in record.entries.iter().enumerate() {
                        let sequence = record.first_seq + i as u64;
                        if let Some(last) = self.report.last_sequence {
                            if sequence <= last {
                                regressed.get_or_insert((sequence, last));
                                continue;
                            }
                        }
                        self.report.last_sequence = Some(sequence);
                        match P::decode(bytes) {
                            Ok(payload) => self.push(sequence, payload),
                            Err(error) => self.problem(Corruption {
                                file: file.to_string(),
                                offset: offset as u64,
                                kind: CorruptionKind::UndecodableEntry { sequence, error },
                                action: RecoveryAction::SkippedEntry,
                            })?,
                        }
                    }
                    // Reported once per record: a duplicated file would otherwise
                    // produce one report line per entry.
                    if let Some((sequence, last)) = regressed {
                        self.problem(Corruption {
                            file: file.to_string(),
                            offset: offset as u64,
                            kind: CorruptionKind::SequenceRegression { sequence, last },
                            action: RecoveryAction::SkippedEntry,
                        })?;
                    }
                }
                Some(Err(b)) => bad = Some(b),
            }
        }
        self.flush_batch();
        Ok(FileOutcome {
            good_len: reader.good_len() as u64,
            bad,
        })
    }

    fn push(&mut self, sequence: u64, payload: P) {
        self.batch.push(WalEntry {
            sequence,
            payload: Arc::new(payload),
        });
        self.report.entries_replayed += 1;
        if self.batch.len() >= REPLAY_BATCH_ENTRIES {
            self.flush_batch();
        }
    }

    fn flush_batch(&mut self) {
        if !self.batch.is_empty() {
            self.sink.apply(&self.batch);
            self.batch.clear();
        }
    }

    /// Errors out (before the caller repairs anything) when corruption is not
    /// to be tolerated.
    pub(crate) fn ensure_tolerated(&self, c: &Corruption) -> Result<(), WalError> {
        if self.fail_on_corruption {
            tracing::error!(corruption = %c, "wal corruption found and fail_on_corruption is set");
            return Err(WalError::Corrupt(c.clone()));
        }
        Ok(())
    }

    /// Logs and records a tolerated problem (the action must already be done).
    pub(crate) fn record(&mut self, c: Corruption) {
        let expected_after_crash = matches!(
            c.kind,
            CorruptionKind::TornRecord | CorruptionKind::TruncatedHeader { .. }
        ) || matches!(c.action, RecoveryAction::Truncated);
        if expected_after_crash {
            tracing::warn!(corruption = %c, "wal replay: incomplete write from an earlier crash");
        } else {
            tracing::error!(corruption = %c, "wal replay: corrupt data skipped");
        }
        if self.report.corruptions.len() < MAX_LISTED_CORRUPTIONS {
            self.report.corruptions.push(c);
        } else {
            self.report.corruptions_not_listed += 1;
        }
    }

    pub(crate) fn problem(&mut self, c: Corruption) -> Result<(), WalError> {
        self.ensure_tolerated(&c)?;
        self.record(c);
        Ok(())
    }

    pub(crate) fn finish(mut self) -> ReplayReport {
        self.flush_batch();
        self.report
    }
}

pub(crate) fn kind_of(bad: &BadRecord) -> CorruptionKind {
    match &bad.error {
        RecordError::Incomplete => CorruptionKind::TornRecord,
        RecordError::LengthOutOfRange(len) => CorruptionKind::InvalidLength(*len),
        RecordError::Checksum { stored, computed } => CorruptionKind::ChecksumMismatch {
            stored: *stored,
            computed: *computed,
        },
        RecordError::Malformed(msg) => CorruptionKind::MalformedRecord(msg.clone()),
    }
}
