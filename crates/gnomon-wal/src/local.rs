//! Local-directory backend: append-only segment files. All functions here do
//! blocking I/O and are only called from blocking threads.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::error::{Corruption, CorruptionKind, RecoveryAction, WalError};
use crate::format::{self, HeaderCheck};
use crate::replay::{kind_of, Replayer};
use crate::WalPayload;

const SEGMENT_SUFFIX: &str = ".wal";
const SEQ_DIGITS: usize = 20;

pub(crate) struct WriteStats {
    pub bytes: u64,
    pub sync: Duration,
}

struct Segment {
    path: PathBuf,
}

struct Active {
    name: u64,
    file: File,
    len: u64,
}

pub(crate) struct LocalLog {
    dir: PathBuf,
    target_bytes: u64,
    /// Keyed by the sequence in the file name, which is a lower bound of the
    /// sequences in the file and above every sequence of the files before it.
    segments: BTreeMap<u64, Segment>,
    /// The segment appended to; always the newest. `None` means the next flush
    /// creates a segment (after rotation, a failed write, or at open when the
    /// newest file ended in damage that was left in place).
    active: Option<Active>,
}

pub(crate) fn segment_file_name(seq: u64) -> String {
    format!("{seq:0width$}{SEGMENT_SUFFIX}", width = SEQ_DIGITS)
}

pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEQ_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| WalError::io(dir, e))
}

impl LocalLog {
    /// Scans and replays the directory, repairing what must be repaired so
    /// that appends never land after garbage.
    pub(crate) fn open<P: WalPayload>(
        dir: PathBuf,
        target_bytes: u64,
        replayer: &mut Replayer<P>,
    ) -> Result<Self, WalError> {
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(|e| WalError::io(&dir, e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let mut files = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| WalError::io(&dir, e))? {
            let entry = entry.map_err(|e| WalError::io(&dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(seq) = parse_segment_name(name) else {
                continue;
            };
            let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
            if !is_file {
                tracing::warn!(path = %entry.path().display(), "ignoring non-file in wal directory");
                continue;
            }
            files.push((seq, name.to_string(), entry.path()));
        }
        files.sort();

        // Header problems are settled first, so that "newest segment" below
        // means the newest one that holds data, and so that an unsupported
        // version stops `open` before anything is replayed or modified.
        let mut valid = Vec::with_capacity(files.len());
        let mut dir_changed = false;
        for (seq, name, path) in files {
            let (head, len) = read_head(&path)?;
            match format::check_header(&head) {
                HeaderCheck::Ok => {
                    valid.push((seq, name, path));
                    continue;
                }
                HeaderCheck::UnsupportedVersion(version) => {
                    return Err(WalError::UnsupportedVersion {
                        file: path.display().to_string(),
                        version,
                    })
                }
                HeaderCheck::TornCreation => {
                    replayer.file_read(len as usize);
                    let c = Corruption {
                        file: name,
                        offset: 0,
                        kind: CorruptionKind::TruncatedHeader { len },
                        action: RecoveryAction::Removed,
                    };
                    replayer.ensure_tolerated(&c)?;
                    // Holds no entry, and leaving it could collide with the
                    // name of the next segment.
                    fs::remove_file(&path).map_err(|e| WalError::io(&path, e))?;
                    dir_changed = true;
                    replayer.record(c);
                }
                HeaderCheck::BadMagic => {
                    replayer.file_read(len as usize);
                    let renamed_to = format!("{name}.{}.corrupt", unique_suffix());
                    let c = Corruption {
                        file: name,
                        offset: 0,
                        kind: CorruptionKind::BadMagic,
                        action: RecoveryAction::Quarantined {
                            renamed_to: renamed_to.clone(),
                        },
                    };
                    replayer.ensure_tolerated(&c)?;
                    // Out of the namespace but kept: it may be someone's data.
                    fs::rename(&path, dir.join(&renamed_to)).map_err(|e| WalError::io(&path, e))?;
                    dir_changed = true;
                    replayer.record(c);
                }
            }
        }

        let mut segments = BTreeMap::new();
        let mut reusable: Option<(u64, u64)> = None;
        let count = valid.len();
        for (i, (seq, name, path)) in valid.into_iter().enumerate() {
            let is_newest = i + 1 == count;
            let buf = fs::read(&path).map_err(|e| WalError::io(&path, e))?;
            replayer.file_read(buf.len());
            let outcome = replayer.replay_records(&name, &buf)?;
            match outcome.bad {
                None => {
                    if is_newest {
                        reusable = Some((seq, outcome.good_len));
                    }
                }
                Some(bad) if bad.at_tail && is_newest => {
                    let c = Corruption {
                        file: name,
                        offset: bad.offset as u64,
                        kind: kind_of(&bad),
                        action: RecoveryAction::Truncated,
                    };
                    replayer.ensure_tolerated(&c)?;
                    truncate(&path, outcome.good_len)?;
                    replayer.record(c);
                    reusable = Some((seq, outcome.good_len));
                }
                Some(bad) => {
                    // Damage with possibly valid data after it (or in a file
                    // nobody appends to any more): keep it for inspection.
                    let c = Corruption {
                        file: name,
                        offset: bad.offset as u64,
                        kind: kind_of(&bad),
                        action: RecoveryAction::SkippedRestOfFile,
                    };
                    replayer.problem(c)?;
                }
            }
            segments.insert(seq, Segment { path });
        }
        if dir_changed {
            sync_dir(&dir)?;
        }

        let active = match reusable {
            Some((name, len)) if len < target_bytes => {
                let path = &segments[&name].path;
                let mut file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| WalError::io(path, e))?;
                file.seek(SeekFrom::Start(len))
                    .map_err(|e| WalError::io(path, e))?;
                Some(Active { name, file, len })
            }
            _ => None,
        };
        Ok(Self {
            dir,
            target_bytes,
            segments,
            active,
        })
    }

    /// Highest segment name; the next sequence must be above it so a new
    /// segment can never collide with an existing file.
    pub(crate) fn max_name(&self) -> Option<u64> {
        self.segments.keys().next_back().copied()
    }

    /// Appends one flush and makes it durable.
    pub(crate) fn write_batch(
        &mut self,
        first_seq: u64,
        entries: &[Bytes],
    ) -> Result<WriteStats, WalError> {
        let creating = self.active.is_none();
        let mut buf = Vec::new();
        if creating {
            buf.extend_from_slice(&format::header());
        }
        format::encode_records(first_seq, entries, &mut buf);

        if creating {
            let path = self.dir.join(segment_file_name(first_seq));
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| WalError::io(&path, e))?;
            self.segments.insert(first_seq, Segment { path });
            self.active = Some(Active {
                name: first_seq,
                file,
                len: 0,
            });
        }
        let active = self.active.as_mut().expect("active segment set above");
        let path = &self.segments[&active.name].path;

        let mut sync = Duration::ZERO;
        let result = (|| -> io::Result<()> {
            active.file.write_all(&buf)?;
            let t = Instant::now();
            active.file.sync_data()?;
            sync = t.elapsed();
            Ok(())
        })()
        .map_err(|e| WalError::io(path, e))
        .and_then(|()| {
            if creating {
                // The file's data is durable, but not its name until the directory is.
                let t = Instant::now();
                sync_dir(&self.dir)?;
                sync += t.elapsed();
            }
            Ok(())
        });

        match result {
            Ok(()) => {
                active.len += buf.len() as u64;
                if active.len >= self.target_bytes {
                    self.active = None;
                }
                Ok(WriteStats {
                    bytes: buf.len() as u64,
                    sync,
                })
            }
            Err(e) => {
                self.abandon_active(creating);
                Err(e)
            }
        }
    }

    /// After a failed write or fsync the file's contents are unknown (and on
    /// Linux a retried fsync can falsely succeed), so the segment is never
    /// appended to again. Cutting the failed bytes off is best effort: if it
    /// fails, replay later sees them as a damaged tail or as a complete record
    /// whose writers were told it failed.
    fn abandon_active(&mut self, created_now: bool) {
        let Some(active) = self.active.take() else {
            return;
        };
        let path = self.segments[&active.name].path.clone();
        if created_now {
            drop(active.file);
            match fs::remove_file(&path) {
                Ok(()) => {
                    self.segments.remove(&active.name);
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "could not remove wal segment after failed write")
                }
            }
        } else if let Err(e) = active
            .file
            .set_len(active.len)
            .and_then(|()| active.file.sync_data())
        {
            tracing::error!(path = %path.display(), error = %e, "could not truncate wal segment after failed write");
        }
    }

    /// Deletes segments all of whose entries are `<= seq`. The newest segment
    /// is always kept: it is what tells the next `open` where sequence numbers
    /// continue.
    pub(crate) fn remove_up_to(&mut self, seq: u64) -> Result<usize, WalError> {
        let names: Vec<u64> = self.segments.keys().copied().collect();
        let mut removed = 0;
        for pair in names.windows(2) {
            let (name, next_name) = (pair[0], pair[1]);
            // Every sequence in a segment is below the next segment's name.
            if next_name - 1 > seq {
                break;
            }
            let path = self.segments[&name].path.clone();
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    if removed > 0 {
                        let _ = sync_dir(&self.dir);
                    }
                    return Err(WalError::io(&path, e));
                }
            }
            self.segments.remove(&name);
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

/// First bytes of a file (up to a header's worth) and its length.
fn read_head(path: &Path) -> Result<(Vec<u8>, u64), WalError> {
    let file = File::open(path).map_err(|e| WalError::io(path, e))?;
    let len = file.metadata().map_err(|e| WalError::io(path, e))?.len();
    let mut head = Vec::with_capacity(format::HEADER_LEN);
    file.take(format::HEADER_LEN as u64)
        .read_to_end(&mut head)
        .map_err(|e| WalError::io(path, e))?;
    Ok((head, len))
}

fn truncate(path: &Path, len: u64) -> Result<(), WalError> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| {
            f.set_len(len)?;
            f.sync_all()
        })
        .map_err(|e| WalError::io(path, e))
}

fn unique_suffix() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names() {
        assert_eq!(segment_file_name(42), "00000000000000000042.wal");
        assert_eq!(parse_segment_name("00000000000000000042.wal"), Some(42));
        assert_eq!(parse_segment_name("0000000000000000042.wal"), None);
        assert_eq!(
            parse_segment_name("00000000000000000042.wal.1.corrupt"),
            None
        );
        assert_eq!(parse_segment_name("0000000000000000004x.wal"), None);
        assert_eq!(
            parse_segment_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
    }
}
