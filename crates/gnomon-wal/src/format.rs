//! Byte layout of segment files and objects (see the crate docs for the
//! normative description). Pure functions only: no I/O, no policy. Deciding
//! what to do about a bad record (truncate, skip, fail) is the caller's job.

use bytes::Bytes;

/// Identifies a Gnomon WAL file; a file that does not start with it is not ours.
pub(crate) const MAGIC: [u8; 8] = *b"GNOMWAL\0";
pub(crate) const VERSION: u32 = 1;
pub(crate) const HEADER_LEN: usize = MAGIC.len() + 4;
/// `[len u32][crc u32]` in front of every record body.
pub(crate) const RECORD_PREFIX_LEN: usize = 8;
/// `first_seq u64` + `count u32`.
pub(crate) const BODY_FIXED_LEN: usize = 12;
pub(crate) const ENTRY_PREFIX_LEN: usize = 4;
/// Bodies above this are split into several records by the writer and treated
/// as a corrupt length by the reader, so garbage lengths never drive a huge
/// allocation or a scan far past the real data.
pub(crate) const MAX_RECORD_BODY: usize = 1 << 30;
/// Largest single entry that still fits in one record.
pub const MAX_ENTRY_BYTES: usize = MAX_RECORD_BODY - BODY_FIXED_LEN - ENTRY_PREFIX_LEN;

pub(crate) fn header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..MAGIC.len()].copy_from_slice(&MAGIC);
    h[MAGIC.len()..].copy_from_slice(&VERSION.to_le_bytes());
    h
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    Ok,
    /// Fewer bytes than a header, all of them a prefix of a valid header: the
    /// file was being created when the process died. Nothing was ever stored.
    TornCreation,
    /// Bytes that are not a Gnomon WAL header.
    BadMagic,
    /// A Gnomon WAL from a format version this code does not understand; this
    /// is not corruption and must never be "repaired" by deleting it.
    UnsupportedVersion(u32),
}

pub(crate) fn check_header(buf: &[u8]) -> HeaderCheck {
    let expected = header();
    if buf.len() < HEADER_LEN {
        return if expected.starts_with(buf) {
            HeaderCheck::TornCreation
        } else {
            HeaderCheck::BadMagic
        };
    }
    if buf[..MAGIC.len()] != MAGIC {
        return HeaderCheck::BadMagic;
    }
    let version = u32::from_le_bytes(buf[MAGIC.len()..HEADER_LEN].try_into().expect("4 bytes"));
    if version != VERSION {
        return HeaderCheck::UnsupportedVersion(version);
    }
    HeaderCheck::Ok
}

/// Appends the records for one flush to `out`: normally exactly one record,
/// more only if the bodies would exceed [`MAX_RECORD_BODY`].
/// Entries must each be at most [`MAX_ENTRY_BYTES`] (checked at append time).
pub(crate) fn encode_records(first_seq: u64, entries: &[Bytes], out: &mut Vec<u8>) {
    let mut seq = first_seq;
    let mut rest = entries;
    while !rest.is_empty() {
        let mut body_len = BODY_FIXED_LEN;
        let mut n = 0;
        for e in rest {
            let add = ENTRY_PREFIX_LEN + e.len();
            if n > 0 && body_len + add > MAX_RECORD_BODY {
                break;
            }
            body_len += add;
            n += 1;
        }
        let (now, later) = rest.split_at(n);
        out.reserve(RECORD_PREFIX_LEN + body_len);
        out.extend_from_slice(&(body_len as u32).to_le_bytes());
        let crc_at = out.len();
        out.extend_from_slice(&[0u8; 4]);
        let body_at = out.len();
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&(n as u32).to_le_bytes());
        for e in now {
            out.extend_from_slice(&(e.len() as u32).to_le_bytes());
            out.extend_from_slice(e);
        }
        let crc = crc32fast::hash(&out[body_at..]);
        out[crc_at..body_at].copy_from_slice(&crc.to_le_bytes());
        seq += n as u64;
        rest = later;
    }
}

/// One checksum-verified record.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    pub first_seq: u64,
    pub entries: Vec<&'a [u8]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordError {
    /// The record (or its prefix) extends past the end of the data.
    Incomplete,
    LengthOutOfRange(u32),
    Checksum {
        stored: u32,
        computed: u32,
    },
    /// CRC matched but the body does not parse: a writer bug, not bit rot.
    Malformed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRecord {
    /// Offset of the bad record's first byte within the buffer.
    pub offset: usize,
    pub error: RecordError,
    /// True when nothing after the bad record could be valid data: the record
    /// runs to (or past) the end, or the rest is zero fill. This is what a
    /// crash during a write looks like, so it may be cut off; anything else
    /// is treated as damage in the middle and left in place.
    pub at_tail: bool,
}

/// Iterates the records of a file/object body that starts after the header.
pub(crate) struct RecordReader<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> RecordReader<'a> {
    /// `buf` is the whole file; reading starts at `start` (after the header).
    pub(crate) fn new(buf: &'a [u8], start: usize) -> Self {
        Self {
            buf,
            pos: start,
            failed: false,
        }
    }

    /// End of the last record returned successfully (== length of the good prefix).
    pub(crate) fn good_len(&self) -> usize {
        self.pos
    }

    fn bad(&mut self, error: RecordError, at_tail: bool) -> Option<Result<Record<'a>, BadRecord>> {
        self.failed = true;
        let rest_is_zero = self.buf[self.pos..].iter().all(|b| *b == 0);
        Some(Err(BadRecord {
            offset: self.pos,
            error,
            at_tail: at_tail || rest_is_zero,
        }))
    }
}

impl<'a> Iterator for RecordReader<'a> {
    type Item = Result<Record<'a>, BadRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        if rest.len() < RECORD_PREFIX_LEN {
            return self.bad(RecordError::Incomplete, true);
        }
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
        let stored = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if (len as usize) < BODY_FIXED_LEN || len as usize > MAX_RECORD_BODY {
            return self.bad(RecordError::LengthOutOfRange(len), false);
        }
        let end = RECORD_PREFIX_LEN + len as usize;
        if rest.len() < end {
            return self.bad(RecordError::Incomplete, true);
        }
        let body = &rest[RECORD_PREFIX_LEN..end];
        let computed = crc32fast::hash(body);
        if computed != stored {
            let at_tail = rest.len() == end;
            return self.bad(RecordError::Checksum { stored, computed }, at_tail);
        }
        match parse_body(body) {
            Ok(record) => {
                self.pos += end;
                Some(Ok(record))
            }
            Err(msg) => {
                let at_tail = rest.len() == end;
                self.bad(RecordError::Malformed(msg), at_tail)
            }
        }
    }
}

fn parse_body(body: &[u8]) -> Result<Record<'_>, String> {
    let first_seq = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
    let count = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes")) as usize;
    if count == 0 {
        return Err("record with zero entries".into());
    }
    if first_seq == 0 || first_seq.checked_add(count as u64 - 1).is_none() {
        return Err(format!("sequence range {first_seq}+{count} out of bounds"));
    }
    // Each entry needs at least its length prefix; bounding `count` first keeps
    // a bogus count from driving a huge allocation.
    if count > (body.len() - BODY_FIXED_LEN) / ENTRY_PREFIX_LEN {
        return Err(format!("entry count {count} does not fit in body"));
    }
    let mut entries = Vec::with_capacity(count);
    let mut pos = BODY_FIXED_LEN;
    for i in 0..count {
        if body.len() - pos < ENTRY_PREFIX_LEN {
            return Err(format!("entry {i} length prefix truncated"));
        }
        let len = u32::from_le_bytes(body[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        pos += ENTRY_PREFIX_LEN;
        if body.len() - pos < len {
            return Err(format!("entry {i} of {len} bytes overruns the record"));
        }
        entries.push(&body[pos..pos + len]);
        pos += len;
    }
    if pos != body.len() {
        return Err(format!(
            "{} trailing bytes after the last entry",
            body.len() - pos
        ));
    }
    Ok(Record { first_seq, entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(records: &[(u64, &[&[u8]])]) -> Vec<u8> {
        let mut buf = header().to_vec();
        for (seq, entries) in records {
            let entries: Vec<Bytes> = entries.iter().map(|e| Bytes::copy_from_slice(e)).collect();
            encode_records(*seq, &entries, &mut buf);
        }
        buf
    }

    type Records = Vec<(u64, Vec<Vec<u8>>)>;

    fn read_all(buf: &[u8]) -> (Records, Option<BadRecord>, usize) {
        let mut reader = RecordReader::new(buf, HEADER_LEN);
        let mut ok = Vec::new();
        let mut bad = None;
        for r in reader.by_ref() {
            match r {
                Ok(rec) => ok.push((
                    rec.first_seq,
                    rec.entries.iter().map(|e| e.to_vec()).collect(),
                )),
                Err(b) => bad = Some(b),
            }
        }
        (ok, bad, reader.good_len())
    }

    #[test]
    fn round_trip_including_empty_entries() {
        let buf = file(&[(1, &[b"a", b"", b"ccc"]), (4, &[b"dd"])]);
        assert_eq!(check_header(&buf), HeaderCheck::Ok);
        let (ok, bad, good) = read_all(&buf);
        assert_eq!(bad, None);
        assert_eq!(good, buf.len());
        assert_eq!(
            ok,
            vec![
                (1, vec![b"a".to_vec(), vec![], b"ccc".to_vec()]),
                (4, vec![b"dd".to_vec()])
            ]
        );
    }

    #[test]
    fn header_classification() {
        assert_eq!(check_header(&[]), HeaderCheck::TornCreation);
        assert_eq!(check_header(&MAGIC[..5]), HeaderCheck::TornCreation);
        assert_eq!(check_header(b"xx"), HeaderCheck::BadMagic);
        assert_eq!(
            check_header(b"not a wal file at all"),
            HeaderCheck::BadMagic
        );
        let mut h = header();
        h[8] = 9;
        assert_eq!(check_header(&h), HeaderCheck::UnsupportedVersion(9));
    }

    #[test]
    fn every_truncation_point_is_a_tail_problem() {
        let buf = file(&[(1, &[b"first"]), (2, &[b"second", b"third"])]);
        let first_end = HEADER_LEN + RECORD_PREFIX_LEN + BODY_FIXED_LEN + 4 + 5;
        for cut in first_end + 1..buf.len() {
            let (ok, bad, good) = read_all(&buf[..cut]);
            assert_eq!(ok.len(), 1, "cut at {cut}");
            assert_eq!(good, first_end);
            let bad = bad.expect("bad record");
            assert!(bad.at_tail, "cut at {cut}: {bad:?}");
            assert_eq!(bad.offset, first_end);
        }
    }

    #[test]
    fn flipped_byte_mid_file_is_not_tail_but_last_record_is() {
        let buf = file(&[(1, &[b"first"]), (2, &[b"second"]), (3, &[b"third"])]);
        let rec = RECORD_PREFIX_LEN + BODY_FIXED_LEN + 4 + 5;
        let rec2 = RECORD_PREFIX_LEN + BODY_FIXED_LEN + 4 + 6;
        let mut mid = buf.clone();
        mid[HEADER_LEN + rec + RECORD_PREFIX_LEN + 14] ^= 0x40;
        let (ok, bad, _) = read_all(&mid);
        assert_eq!(ok.len(), 1);
        let bad = bad.unwrap();
        assert!(matches!(bad.error, RecordError::Checksum { .. }));
        assert!(!bad.at_tail);

        let mut last = buf.clone();
        let n = last.len();
        last[n - 1] ^= 0x01;
        let (ok, bad, good) = read_all(&last);
        assert_eq!(ok.len(), 2);
        assert_eq!(good, HEADER_LEN + rec + rec2);
        assert!(bad.unwrap().at_tail);
    }

    #[test]
    fn zero_fill_tail_is_tail() {
        let mut buf = file(&[(1, &[b"x"])]);
        let good = buf.len();
        buf.extend_from_slice(&[0u8; 100]);
        let (ok, bad, g) = read_all(&buf);
        assert_eq!(ok.len(), 1);
        assert_eq!(g, good);
        let bad = bad.unwrap();
        assert_eq!(bad.error, RecordError::LengthOutOfRange(0));
        assert!(bad.at_tail);
    }

    #[test]
    fn garbage_length_mid_file_is_not_tail() {
        let mut buf = file(&[(1, &[b"x"])]);
        buf.extend_from_slice(&u32::MAX.to_le_bytes());
        buf.extend_from_slice(b"some garbage that is not zero");
        let (_, bad, _) = read_all(&buf);
        let bad = bad.unwrap();
        assert_eq!(bad.error, RecordError::LengthOutOfRange(u32::MAX));
        assert!(!bad.at_tail);
    }

    #[test]
    fn malformed_body_with_valid_crc_is_rejected() {
        let mut buf = header().to_vec();
        // count says 3 entries but body holds one
        let mut body = Vec::new();
        body.extend_from_slice(&7u64.to_le_bytes());
        body.extend_from_slice(&3u32.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        body.push(b'z');
        buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
        buf.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        buf.extend_from_slice(&body);
        let (ok, bad, _) = read_all(&buf);
        assert!(ok.is_empty());
        assert!(matches!(bad.unwrap().error, RecordError::Malformed(_)));
    }
}
