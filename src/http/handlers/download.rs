//! `GET /download?fid=<mp3 fid>`: the caller's MP3, streamed, with Range support.
//!
//! A file the caller does not own answers exactly as one that does not exist (404), so ids
//! cannot be probed. Admins may read every file.

use hyper::body::Incoming;
use hyper::header::{
    ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderValue, RANGE,
};
use hyper::{HeaderMap, Method, Request, StatusCode};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::{parse_id, query_param};
use crate::http::credentials::Identity;
use crate::http::error::ApiError;
use crate::http::response::{Response, full, streamed};
use crate::storage::{BlobStore, Bucket, ByteRange, StorageError, may_read};

/// What the Range header asks of a file of a given length.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    Whole,
    Part(ByteRange),
    Unsatisfiable,
}

pub async fn download(
    identity: &Identity,
    blobs: &dyn BlobStore,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    let claims = identity.bearer(request.headers()).await?;
    let fid =
        query_param(request.uri(), "fid").ok_or_else(|| ApiError::bad_request("missing_fid", "fid is required"))?;
    let fid = parse_id(&fid, "fid")?;
    let not_found = || {
        ApiError::not_found(
            "no such MP3: fid is the mp3_fid of a done job (GET /jobs/{job_id}), not its job_id or video_fid",
        )
    };
    let info = blobs.stat(Bucket::Mp3s, fid).await.map_err(|e| match e {
        StorageError::NotFound => not_found(),
        other => other.into(),
    })?;
    if !may_read(&info.meta.owner, &claims.username, claims.admin) {
        return Err(not_found());
    }

    let length = info.length;
    let (status, range) = match wanted(request.headers(), length) {
        Wanted::Whole => (StatusCode::OK, None),
        Wanted::Part(range) => (StatusCode::PARTIAL_CONTENT, Some(range)),
        Wanted::Unsatisfiable => {
            let mut response =
                ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, "bad_range", "the range is outside the file")
                    .into_response();
            response.headers_mut().insert(CONTENT_RANGE, header(&format!("bytes */{length}")));
            return Ok(response);
        }
    };
    let body = if request.method() == Method::HEAD {
        full(bytes::Bytes::new())
    } else {
        streamed(blobs.open(Bucket::Mp3s, fid, range).await?)
    };
    let mut response = hyper::Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("audio/mpeg"));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(CONTENT_DISPOSITION, header(&content_disposition(&info.meta.filename)));
    headers.insert(CONTENT_LENGTH, header(&range.map_or(length, |r| r.len()).to_string()));
    if let Some(range) = range {
        headers.insert(CONTENT_RANGE, header(&format!("bytes {}-{}/{length}", range.first, range.last)));
    }
    Ok(response)
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).expect("built from ASCII")
}

/// Reads a single-range `Range` header. A malformed header, or several ranges, is ignored and
/// the whole file served, as RFC 9110 allows.
fn wanted(headers: &HeaderMap, length: u64) -> Wanted {
    let Some(value) = headers.get(RANGE).and_then(|v| v.to_str().ok()) else {
        return Wanted::Whole;
    };
    let Ok(parsed) = http_range_header::parse_range_header(value) else {
        return Wanted::Whole;
    };
    match parsed.validate(length) {
        Ok(ranges) if ranges.len() == 1 => {
            Wanted::Part(ByteRange { first: *ranges[0].start(), last: *ranges[0].end() })
        }
        Ok(_) => Wanted::Whole,
        Err(_) => Wanted::Unsatisfiable,
    }
}

/// `attachment` with an ASCII fallback name and the exact UTF-8 name (RFC 6266).
fn content_disposition(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    let exact = utf8_percent_encode(filename, NON_ALPHANUMERIC);
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RANGE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn reads_single_ranges_and_refuses_ranges_past_the_end() {
        assert_eq!(wanted(&HeaderMap::new(), 100), Wanted::Whole);
        assert_eq!(wanted(&range("bytes=0-9"), 100), Wanted::Part(ByteRange { first: 0, last: 9 }));
        assert_eq!(wanted(&range("bytes=90-"), 100), Wanted::Part(ByteRange { first: 90, last: 99 }));
        assert_eq!(wanted(&range("bytes=-10"), 100), Wanted::Part(ByteRange { first: 90, last: 99 }));
        assert_eq!(wanted(&range("bytes=200-300"), 100), Wanted::Unsatisfiable);
        assert_eq!(wanted(&range("lines=1-2"), 100), Wanted::Whole);
    }

    #[test]
    fn names_the_file_safely() {
        assert_eq!(content_disposition("clip.mp3"), "attachment; filename=\"clip.mp3\"; filename*=UTF-8''clip%2Emp3");
        assert!(content_disposition("été \"x\".mp3").starts_with("attachment; filename=\"_t_ _x_.mp3\""));
    }
}
