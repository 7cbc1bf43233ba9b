//! Reading request bodies: size limit while streaming, `Content-Encoding`, gzip inflation
//! under the same limit (so a gzip bomb costs at most the limit in memory).

use std::io::Read;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use bytes::{Bytes, BytesMut};
use flate2::read::MultiGzDecoder;
use futures::StreamExt;
use http_body_util::BodyExt;

use crate::error::HttpError;

/// The 413 error of an oversized body.
pub fn too_large(limit: usize) -> HttpError {
    HttpError::plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("max request size ({limit} bytes) exceeded"),
    )
}

/// Reads the whole body, refusing more than `limit` bytes before and after decompression.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, HttpError> {
    let gzip = match headers.get(header::CONTENT_ENCODING) {
        None => false,
        Some(v) => match v.to_str().map(str::trim) {
            Ok("gzip") => true,
            Ok("identity") | Ok("") => false,
            _ => {
                return Err(HttpError::plain(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unacceptable content-encoding: {}",
                        String::from_utf8_lossy(v.as_bytes())
                    ),
                ))
            }
        },
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large(limit));
    }
    // Sized up front when the client says how much is coming: growing a multi-megabyte buffer
    // by doubling costs copies and page faults on every write.
    let mut raw = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            HttpError::plain(
                StatusCode::BAD_REQUEST,
                format!("error reading request body: {e}"),
            )
        })?;
        if raw.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        raw.extend_from_slice(&chunk);
    }
    let raw = raw.freeze();
    if !gzip {
        return Ok(raw);
    }
    inflate(&raw, limit)
}

/// Inflates a (possibly multi-member) gzip stream, stopping one byte past `limit`.
fn inflate(raw: &[u8], limit: usize) -> Result<Bytes, HttpError> {
    let mut out = Vec::with_capacity((raw.len() * 4).min(limit + 1));
    let decoder = MultiGzDecoder::new(raw);
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            HttpError::plain(
                StatusCode::BAD_REQUEST,
                format!("error decoding gzip stream: {e}"),
            )
        })?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok(Bytes::from(out))
}

/// Reads a body without any decoding for endpoints that take small JSON documents.
pub async fn read_plain(body: Body, limit: usize) -> Result<Bytes, HttpError> {
    let collected = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|_| too_large(limit))?;
    Ok(collected.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn inflates_multi_member_streams() {
        let mut both = gz(b"a b=1\n");
        both.extend(gz(b""));
        both.extend(gz(b"c d=2\n"));
        assert_eq!(&inflate(&both, 100).unwrap()[..], b"a b=1\nc d=2\n");
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        let bomb = gz(&vec![b'x'; 10 << 20]);
        assert!(
            bomb.len() < 1 << 20,
            "the compressed body itself is under the limit"
        );
        let err = inflate(&bomb, 1 << 20).unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn corrupt_gzip_is_400() {
        let err = inflate(b"not gzip at all", 100).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message_text().starts_with("error decoding gzip stream"));
    }
}
