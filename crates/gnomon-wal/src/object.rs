//! Object-store backend: one immutable object per flush. Objects are written
//! atomically by the store, so there are no torn tails to repair; damaged
//! objects are skipped and left in place.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, PutOptions, PutPayload};
use parking_lot::Mutex;

use crate::error::{Corruption, CorruptionKind, RecoveryAction, WalError};
use crate::format::{self, HeaderCheck};
use crate::local::{parse_segment_name, segment_file_name, WriteStats};
use crate::replay::{kind_of, Replayer};
use crate::WalPayload;

/// Objects fetched ahead of the one being replayed; replay order stays strict.
const REPLAY_FETCH_AHEAD: usize = 4;

pub(crate) struct ObjectLog {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// Sequence in each object's name (its first entry's sequence).
    names: Mutex<BTreeSet<u64>>,
}

impl ObjectLog {
    fn path_for(&self, seq: u64) -> Path {
        self.prefix.clone().join(segment_file_name(seq))
    }

    pub(crate) async fn open<P: WalPayload>(
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        mut replayer: Replayer<P>,
    ) -> Result<(Self, Replayer<P>), WalError> {
        let listed: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
        let mut objects: Vec<(u64, Path)> = listed
            .into_iter()
            .filter_map(|meta| {
                // Only direct children: other things may live below the prefix.
                let mut parts = meta.location.prefix_match(&prefix)?;
                let name = parts.next()?;
                if parts.next().is_some() {
                    return None;
                }
                Some((parse_segment_name(name.as_ref())?, meta.location.clone()))
            })
            .collect();
        objects.sort();
        let names: BTreeSet<u64> = objects.iter().map(|(seq, _)| *seq).collect();

        let fetch_store = Arc::clone(&store);
        let mut fetched = futures::stream::iter(objects)
            .map(move |(_, path)| {
                let store = Arc::clone(&fetch_store);
                async move {
                    let bytes = store
                        .get_opts(&path, GetOptions::default())
                        .await?
                        .bytes()
                        .await?;
                    Ok::<_, WalError>((path, bytes))
                }
            })
            .buffered(REPLAY_FETCH_AHEAD);

        while let Some(next) = fetched.next().await {
            let (path, bytes) = next?;
            // Decoding and the sink's apply are CPU work: keep them off the async workers.
            replayer = tokio::task::spawn_blocking(move || {
                replay_object(&mut replayer, path.as_ref(), &bytes).map(|()| replayer)
            })
            .await
            .map_err(|e| WalError::Internal(format!("wal replay task failed: {e}")))??;
        }

        Ok((
            Self {
                store,
                prefix,
                names: Mutex::new(names),
            },
            replayer,
        ))
    }

    pub(crate) fn max_name(&self) -> Option<u64> {
        self.names.lock().last().copied()
    }

    pub(crate) async fn write_batch(
        &self,
        first_seq: u64,
        entries: &[Bytes],
    ) -> Result<WriteStats, WalError> {
        let mut buf = format::header().to_vec();
        format::encode_records(first_seq, entries, &mut buf);
        let bytes = buf.len() as u64;
        let path = self.path_for(first_seq);
        let t = Instant::now();
        self.store
            .put_opts(&path, PutPayload::from(buf), PutOptions::default())
            .await?;
        let sync: Duration = t.elapsed();
        self.names.lock().insert(first_seq);
        Ok(WriteStats { bytes, sync })
    }

    /// Same contract as the local backend: whole objects all of whose entries
    /// are `<= seq`, never the newest.
    pub(crate) async fn remove_up_to(&self, seq: u64) -> Result<usize, WalError> {
        let doomed: Vec<u64> = {
            let names = self.names.lock();
            let names: Vec<u64> = names.iter().copied().collect();
            names
                .windows(2)
                .take_while(|pair| pair[1] - 1 <= seq)
                .map(|pair| pair[0])
                .collect()
        };
        if doomed.is_empty() {
            return Ok(0);
        }
        // One stream so stores with bulk delete (S3) batch the requests.
        let paths: Vec<Path> = doomed.iter().map(|n| self.path_for(*n)).collect();
        let results: Vec<_> = self
            .store
            .delete_stream(futures::stream::iter(paths.into_iter().map(Ok)).boxed())
            .collect()
            .await;
        for result in results {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                // Names stay listed: a retry deletes what is left and finds
                // the rest already gone.
                Err(e) => return Err(e.into()),
            }
        }
        let mut names = self.names.lock();
        for name in &doomed {
            names.remove(name);
        }
        Ok(doomed.len())
    }
}

fn replay_object<P: WalPayload>(
    replayer: &mut Replayer<P>,
    name: &str,
    bytes: &Bytes,
) -> Result<(), WalError> {
    replayer.file_read(bytes.len());
    match format::check_header(bytes) {
        HeaderCheck::Ok => {}
        HeaderCheck::UnsupportedVersion(version) => {
            return Err(WalError::UnsupportedVersion {
                file: name.to_string(),
                version,
            })
        }
        HeaderCheck::TornCreation | HeaderCheck::BadMagic => {
            let kind = if format::header().starts_with(bytes) {
                CorruptionKind::TruncatedHeader {
                    len: bytes.len() as u64,
                }
            } else {
                CorruptionKind::BadMagic
            };
            return replayer.problem(Corruption {
                file: name.to_string(),
                offset: 0,
                kind,
                action: RecoveryAction::SkippedFile,
            });
        }
    }
    let outcome = replayer.replay_records(name, bytes)?;
    if let Some(bad) = outcome.bad {
        replayer.problem(Corruption {
            file: name.to_string(),
            offset: bad.offset as u64,
            kind: kind_of(&bad),
            action: RecoveryAction::SkippedRestOfFile,
        })?;
    }
    Ok(())
}
