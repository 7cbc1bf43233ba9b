//! Cutting a delta-encoded page into short pages, so that reading a few rows of it does
//! not decode all the rows before them.
//!
//! `DELTA_BINARY_PACKED` stores a first value and then deltas, so parquet reaches row `r`
//! of a page only by decoding (or summing) every delta before it: a query selecting a few
//! rows from each page of a column (a narrow window over every series) spent most of its
//! time skipping. The encoding is made of independent blocks (a minimum delta, bit widths,
//! bit-packed residuals), so the values from any block boundary on are themselves a valid
//! delta-encoded page, given the value at that boundary as its first value. [`split`] cuts a
//! decompressed page every few blocks, copying the blocks' bytes as they are and computing
//! each piece's first value from the block sums (once, when the page enters the
//! [`crate::page_cache`]); parquet's column reader then skips whole pieces by their row
//! counts without decoding them.
//!
//! Only what Gnomon's writer produces for integer fields and times is cut: format v1 data
//! pages of flat `INT64` columns (definition levels 0 or 1, RLE), whose deltas fill whole
//! blocks. Anything else, or anything unexpected in the bytes, leaves the page whole.

use bytes::{BufMut, BytesMut};
use parquet::basic::Encoding;
use parquet::column::page::Page;

/// Values per piece (rounded up to whole blocks): a read of a few rows decodes at most this
/// many values before them. Each piece costs about 20 bytes of headers and levels, 5% of
/// what 1024 values of TSBS' fields take.
pub(crate) const PIECE_VALUES: usize = 1024;

/// `page` cut into pieces of about `piece_values` values, each with its row count; `None`
/// when `page` is not a page this module cuts or would give a single piece.
pub(crate) fn split(
    page: &Page,
    max_def_level: i16,
    piece_values: usize,
) -> Option<Vec<(usize, Page)>> {
    let Page::DataPage {
        buf,
        num_values,
        encoding: Encoding::DELTA_BINARY_PACKED,
        def_level_encoding,
        rep_level_encoding,
        ..
    } = page
    else {
        return None;
    };
    let rows = *num_values as usize;
    // Definition levels (one per row), and where the values start.
    let (levels, present, values) = match max_def_level {
        0 => (None, rows, buf.slice(..)),
        1 if *def_level_encoding == Encoding::RLE => {
            let length = u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as usize;
            let (levels, present) = decode_levels(buf.get(4..4 + length)?, rows)?;
            (Some(levels), present, buf.slice(4 + length..))
        }
        _ => return None,
    };
    let header = DeltaHeader::parse(&values)?;
    if header.total != present || header.block_values == 0 {
        return None;
    }
    let blocks_per_piece = piece_values.div_ceil(header.block_values).max(1);
    let piece_span = blocks_per_piece * header.block_values;
    if present <= piece_span {
        return None;
    }
    // Each full block's start in `values` and the value before its deltas.
    let full_blocks = (present - 1) / header.block_values;
    let mut block_starts = Vec::with_capacity(full_blocks + 1);
    let mut block_first = Vec::with_capacity(full_blocks + 1);
    let mut at = header.length;
    let mut value = header.first;
    for _ in 0..full_blocks {
        block_starts.push(at);
        block_first.push(value);
        let (length, sum) = header.block(&values, at)?;
        at += length;
        value = value.wrapping_add(sum);
    }
    block_starts.push(at);
    block_first.push(value);

    // The row of the first value of each piece after the first (where the levels are cut).
    let cuts: Vec<usize> = match &levels {
        Some(levels) if present < rows => {
            let mut cuts = Vec::with_capacity(present / piece_span);
            let mut until_cut = piece_span;
            for (row, _) in levels.iter().enumerate().filter(|(_, &level)| level == 1) {
                if until_cut == 0 {
                    cuts.push(row);
                    until_cut = piece_span;
                }
                until_cut -= 1;
            }
            cuts
        }
        // Every row has a value.
        _ => (piece_span..present).step_by(piece_span).collect(),
    };
    let mut pieces = Vec::new();
    let mut row_start = 0;
    let mut block = 0;
    while block * header.block_values < present {
        let first_value = block * header.block_values;
        let next_block = block + blocks_per_piece;
        let end_value = (next_block * header.block_values).min(present);
        let row_end = cuts.get(pieces.len()).copied().unwrap_or(rows);
        let bytes_end = if next_block <= full_blocks {
            block_starts[next_block]
        } else {
            values.len()
        };
        let mut out = BytesMut::new();
        if let Some(levels) = &levels {
            let encoded = match present < rows {
                true => encode_levels(&levels[row_start..row_end]),
                false => encode_run(row_end - row_start, 1),
            };
            out.put_u32_le(encoded.len() as u32);
            out.put_slice(&encoded);
        }
        put_uleb(&mut out, header.block_values as u64);
        put_uleb(&mut out, header.mini_blocks as u64);
        put_uleb(&mut out, (end_value - first_value) as u64);
        put_uleb(&mut out, zigzag(block_first[block]));
        out.put_slice(&values[block_starts[block]..bytes_end]);
        pieces.push((
            row_end - row_start,
            Page::DataPage {
                buf: out.freeze(),
                num_values: (row_end - row_start) as u32,
                encoding: Encoding::DELTA_BINARY_PACKED,
                def_level_encoding: *def_level_encoding,
                rep_level_encoding: *rep_level_encoding,
                statistics: None,
            },
        ));
        row_start = row_end;
        block = next_block;
    }
    Some(pieces)
}

/// A `DELTA_BINARY_PACKED` header.
struct DeltaHeader {
    block_values: usize,
    mini_blocks: usize,
    total: usize,
    first: i64,
    /// Its length in bytes.
    length: usize,
}

impl DeltaHeader {
    fn parse(bytes: &[u8]) -> Option<Self> {
        let mut at = 0;
        let block_values = read_uleb(bytes, &mut at)? as usize;
        let mini_blocks = read_uleb(bytes, &mut at)? as usize;
        let total = read_uleb(bytes, &mut at)? as usize;
        let first = unzigzag(read_uleb(bytes, &mut at)?);
        let valid = mini_blocks > 0
            && block_values.is_multiple_of(mini_blocks)
            && (block_values / mini_blocks).is_multiple_of(8);
        valid.then_some(Self {
            block_values,
            mini_blocks,
            total,
            first,
            length: at,
        })
    }

    /// The length of the full block at `at`, and the sum of its deltas (wrapping).
    fn block(&self, bytes: &[u8], at: usize) -> Option<(usize, i64)> {
        let mut pos = at;
        let min_delta = unzigzag(read_uleb(bytes, &mut pos)?);
        let widths = bytes.get(pos..pos + self.mini_blocks)?;
        pos += self.mini_blocks;
        let mini_values = self.block_values / self.mini_blocks;
        let mut sum = min_delta.wrapping_mul(self.block_values as i64) as u64;
        for &width in widths {
            let width = width as usize;
            if width > 64 {
                return None;
            }
            let length = mini_values * width / 8;
            let packed = bytes.get(pos..pos + length)?;
            sum = sum.wrapping_add(packed_sum(packed, width, mini_values));
            pos += length;
        }
        Some((pos - at, sum as i64))
    }
}

/// The sum (wrapping) of the `count` `width`-bit values packed least significant bit first
/// in `bytes`.
fn packed_sum(bytes: &[u8], width: usize, count: usize) -> u64 {
    match width {
        0 => 0,
        1..=8 if count.is_multiple_of(32) && bytes.len() == count * width / 8 => {
            narrow_packed_sum(bytes, width)
        }
        _ => wide_packed_sum(bytes, width, count),
    }
}

/// [`packed_sum`] by counting bits: of `width`-bit values, bit `b` of the packed stream is
/// bit `b % width` of a value, so the sum is the number of set bits at each `b % width`
/// times its weight. 32 values take `width` 32-bit words, each bit's residue the same in
/// every such group: `width²` masked popcounts per 32 values instead of 32 extractions.
fn narrow_packed_sum(bytes: &[u8], width: usize) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("popcnt") {
        // SAFETY: the CPU has `popcnt`, checked just above.
        return unsafe { narrow_packed_sum_popcnt(bytes, width) };
    }
    narrow_packed_sum_body(bytes, width)
}

/// [`narrow_packed_sum`] compiled with the `popcnt` instruction (the default x86-64 target
/// lacks it, and counting bits without it costs more than extracting the values).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn narrow_packed_sum_popcnt(bytes: &[u8], width: usize) -> u64 {
    narrow_packed_sum_body(bytes, width)
}

#[inline(always)]
fn narrow_packed_sum_body(bytes: &[u8], width: usize) -> u64 {
    let masks = &NARROW_MASKS[width];
    let mut sum = 0u64;
    for group in bytes.chunks_exact(4 * width) {
        for (word, masks) in group.chunks_exact(4).zip(masks.chunks_exact(width)) {
            let word = u32::from_le_bytes(word.try_into().expect("four bytes"));
            for (residue, mask) in masks.iter().enumerate() {
                sum += u64::from((word & mask).count_ones()) << residue;
            }
        }
    }
    sum
}

/// For each width up to 8: for word `j` of a 32-value group, the mask of its bits at each
/// residue `r` (`masks[j * width + r]`).
static NARROW_MASKS: std::sync::LazyLock<Vec<Vec<u32>>> = std::sync::LazyLock::new(|| {
    (0..=8usize)
        .map(|width| {
            let mut masks = vec![0u32; width * width];
            for bit in 0..32 * width {
                let (word, offset) = (bit / 32, bit % 32);
                masks[word * width + bit % width] |= 1 << offset;
            }
            masks
        })
        .collect()
});

/// [`packed_sum`] value by value.
fn wide_packed_sum(bytes: &[u8], width: usize, count: usize) -> u64 {
    let mask = if width == 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    // The eight bytes from `byte` on (zeros past the end).
    let word = |byte: usize| match bytes.get(byte..byte + 8) {
        Some(eight) => u64::from_le_bytes(eight.try_into().expect("eight bytes")),
        None => {
            let mut eight = [0u8; 8];
            let rest = bytes.get(byte..).unwrap_or_default();
            eight[..rest.len()].copy_from_slice(rest);
            u64::from_le_bytes(eight)
        }
    };
    let mut sum = 0u64;
    for i in 0..count {
        let bit = i * width;
        let (byte, shift) = (bit / 8, bit % 8);
        // A value spans at most 9 bytes: the 9th holds its top bits when shift + width > 64.
        let mut value = word(byte) >> shift;
        if shift + width > 64 {
            value |= word(byte + 8) << (64 - shift);
        }
        sum = sum.wrapping_add(value & mask);
    }
    sum
}

/// Levels of bit width 1 in the RLE / bit-packed hybrid encoding, `count` of them, and how
/// many are 1.
fn decode_levels(bytes: &[u8], count: usize) -> Option<(Vec<u8>, usize)> {
    let mut levels = Vec::with_capacity(count);
    let mut ones = 0;
    let mut at = 0;
    while levels.len() < count {
        let header = read_uleb(bytes, &mut at)?;
        if header & 1 == 0 {
            let run = (header >> 1) as usize;
            let value = *bytes.get(at)?;
            at += 1;
            if value > 1 {
                return None;
            }
            let run = run.min(count - levels.len());
            levels.extend(std::iter::repeat_n(value, run));
            ones += run * value as usize;
        } else {
            let groups = (header >> 1) as usize;
            let packed = bytes.get(at..at + groups)?;
            at += groups;
            for byte in packed {
                for bit in 0..8 {
                    if levels.len() < count {
                        levels.push((byte >> bit) & 1);
                        ones += ((byte >> bit) & 1) as usize;
                    }
                }
            }
        }
    }
    Some((levels, ones))
}

/// `levels` (0 or 1) as RLE runs.
fn encode_levels(levels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < levels.len() {
        let value = levels[at];
        let run = levels[at..].iter().take_while(|&&l| l == value).count();
        out.extend(encode_run(run, value));
        at += run;
    }
    out
}

/// One RLE run of `length` levels `value` (0 or 1).
fn encode_run(length: usize, value: u8) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(4);
    put_uleb(&mut out, (length as u64) << 1);
    out.put_u8(value);
    out.to_vec()
}

fn read_uleb(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn put_uleb(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_and_uleb_round_trip() {
        for v in [0i64, 1, -1, 63, -64, i64::MAX, i64::MIN, 123456789] {
            let mut out = BytesMut::new();
            put_uleb(&mut out, zigzag(v));
            let mut at = 0;
            assert_eq!(unzigzag(read_uleb(&out, &mut at).unwrap()), v);
            assert_eq!(at, out.len());
        }
    }

    #[test]
    fn packed_sums_add_every_value() {
        // 3-bit values 1..=8 (8 wraps to 0), packed least significant bit first.
        let values: Vec<u64> = (1..=8).map(|v| v % 8).collect();
        let mut bits = 0u32;
        for (i, v) in values.iter().enumerate() {
            bits |= (*v as u32) << (3 * i);
        }
        let bytes = bits.to_le_bytes();
        assert_eq!(packed_sum(&bytes[..3], 3, 8), values.iter().sum::<u64>());
    }

    #[test]
    fn packed_sums_of_every_width() {
        let mut state = 0x9e3779b97f4a7c15u64;
        for width in 1..=64usize {
            let mask = if width == 64 {
                u64::MAX
            } else {
                (1u64 << width) - 1
            };
            let values: Vec<u64> = (0..32)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (state ^ (state >> 29)) & mask
                })
                .collect();
            // Pack least significant bit first, bit by bit.
            let mut bytes = vec![0u8; 32 * width / 8];
            for (i, v) in values.iter().enumerate() {
                for b in 0..width {
                    if v >> b & 1 == 1 {
                        let bit = i * width + b;
                        bytes[bit / 8] |= 1 << (bit % 8);
                    }
                }
            }
            let expected = values.iter().fold(0u64, |s, v| s.wrapping_add(*v));
            assert_eq!(packed_sum(&bytes, width, 32), expected, "width {width}");
            assert_eq!(
                wide_packed_sum(&bytes, width, 32),
                expected,
                "width {width}"
            );
        }
    }

    #[test]
    fn levels_round_trip_through_runs() {
        let levels: Vec<u8> = (0..1000).map(|i| u8::from(i % 7 != 3 && i < 900)).collect();
        let ones = levels.iter().filter(|&&l| l == 1).count();
        assert_eq!(
            decode_levels(&encode_levels(&levels), 1000).unwrap(),
            (levels, ones)
        );
    }
}
