//! The web page (`GET /`, `GET /assets/{name}`), the OpenAPI document (`GET /openapi.json`) and
//! a readable view of it (`GET /api`): static files built into the binary from `web/`, a thin
//! client of the API (nothing in it bypasses the routes it documents).
//!
//! The pages' style sheet and scripts are served under names that carry a hash of their content
//! and may be cached for good; the pages and the document are revalidated (`no-cache`) by ETag.
//! A hashed name of another version of an asset (a page from an older or newer pod, during a
//! rolling update) gets this version's file, revalidated, rather than a 404 that would leave the
//! page without its script.
//! Every answer carries a strict Content-Security-Policy (scripts and styles only from files of
//! this origin, nothing inline), `X-Content-Type-Options: nosniff` and `Referrer-Policy`.

use std::sync::LazyLock;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HeaderName, HeaderValue, IF_NONE_MATCH,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use hyper::{Request, StatusCode};
use sha2::{Digest, Sha256};

use crate::http::error::ApiError;
use crate::http::response::{Response, full};

pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";
/// For the page and the document: cached, but asked again every time (by ETag).
const REVALIDATE: &str = "no-cache";
/// For a file under its content-hashed name: it never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One file as it is served.
struct StaticFile {
    body: Bytes,
    content_type: &'static str,
    cache_control: &'static str,
    /// A strong ETag: a quoted hash of the content.
    etag: String,
}

impl StaticFile {
    fn new(body: impl Into<Bytes>, content_type: &'static str, cache_control: &'static str) -> StaticFile {
        let body = body.into();
        let etag = format!("\"{}\"", content_hash(&body));
        StaticFile { body, content_type, cache_control, etag }
    }
}

/// An asset and the hashed name it is served under.
struct Asset {
    /// The name `web/index.html` uses, e.g. `app.js`.
    plain: &'static str,
    name: String,
    file: StaticFile,
    /// The same content, revalidated: for the hashed names of other versions.
    other_version: StaticFile,
}

struct Site {
    page: StaticFile,
    api_reference: StaticFile,
    assets: Vec<Asset>,
    openapi: StaticFile,
}

/// The pages' assets: their plain name (as the pages refer to them), content and type.
const ASSETS: [(&str, &str, &str); 3] = [
    ("app.css", include_str!("../../../web/app.css"), "text/css; charset=utf-8"),
    ("app.js", include_str!("../../../web/app.js"), "text/javascript; charset=utf-8"),
    ("api.js", include_str!("../../../web/api.js"), "text/javascript; charset=utf-8"),
];
const PAGE: &str = include_str!("../../../web/index.html");
/// The API reference: `/openapi.json` as a list of routes to read.
const API_REFERENCE: &str = include_str!("../../../web/api.html");
/// The OpenAPI 3.1 document of every route.
pub const OPENAPI: &str = include_str!("../../../web/openapi.json");

static SITE: LazyLock<Site> = LazyLock::new(|| {
    let assets: Vec<Asset> = ASSETS
        .iter()
        .map(|(plain, content, content_type)| {
            let body = Bytes::from_static(content.as_bytes());
            let file = StaticFile::new(body.clone(), content_type, IMMUTABLE);
            let name = hashed_name(plain, file.etag.trim_matches('"'));
            Asset { plain, name, file, other_version: StaticFile::new(body, content_type, REVALIDATE) }
        })
        .collect();
    Site {
        page: html_naming_hashes(PAGE, &assets),
        api_reference: html_naming_hashes(API_REFERENCE, &assets),
        assets,
        openapi: StaticFile::new(Bytes::from_static(OPENAPI.as_bytes()), "application/json", REVALIDATE),
    }
});

/// A page whose references to the assets (`/assets/app.js`) name their hashed names.
fn html_naming_hashes(page: &str, assets: &[Asset]) -> StaticFile {
    let named = assets.iter().fold(page.to_owned(), |page, asset| {
        page.replace(&format!("/assets/{}\"", asset.plain), &format!("/assets/{}\"", asset.name))
    });
    StaticFile::new(named, "text/html; charset=utf-8", REVALIDATE)
}

/// The first 16 hexadecimal digits of the content's SHA-256.
fn content_hash(content: &[u8]) -> String {
    Sha256::digest(content).iter().take(8).map(|byte| format!("{byte:02x}")).collect()
}

/// `app.js` with hash `0123` is `app.0123.js`.
fn hashed_name(plain: &str, hash: &str) -> String {
    let (stem, extension) = plain.rsplit_once('.').expect("asset names have an extension");
    format!("{stem}.{hash}.{extension}")
}

/// The plain name of a content-hashed one (`app.0123456789abcdef.js` is `app.js`), whatever the hash.
fn plain_name(name: &str) -> Option<String> {
    let (rest, extension) = name.rsplit_once('.')?;
    let (stem, hash) = rest.rsplit_once('.')?;
    let is_hash = hash.len() == 16 && hash.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
    is_hash.then(|| format!("{stem}.{extension}"))
}

pub fn page(request: &Request<Incoming>) -> Response {
    serve(&SITE.page, request)
}

pub fn api_reference(request: &Request<Incoming>) -> Response {
    serve(&SITE.api_reference, request)
}

pub fn openapi(request: &Request<Incoming>) -> Response {
    serve(&SITE.openapi, request)
}

pub fn asset(request: &Request<Incoming>) -> Result<Response, ApiError> {
    let name = request.uri().path().trim_start_matches("/assets/");
    if let Some(asset) = SITE.assets.iter().find(|asset| asset.name == name) {
        return Ok(serve(&asset.file, request));
    }
    let plain = plain_name(name).ok_or_else(|| ApiError::not_found("no such file"))?;
    let asset =
        SITE.assets.iter().find(|asset| asset.plain == plain).ok_or_else(|| ApiError::not_found("no such file"))?;
    Ok(serve(&asset.other_version, request))
}

/// The file, or 304 when the client's copy (`If-None-Match`) is current.
fn serve(file: &StaticFile, request: &Request<Incoming>) -> Response {
    let current = request
        .headers()
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == file.etag || tag == "*");
    let (status, body) =
        if current { (StatusCode::NOT_MODIFIED, Bytes::new()) } else { (StatusCode::OK, file.body.clone()) };
    let mut response = hyper::Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if !current {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(file.content_type));
    }
    let fixed: [(HeaderName, &'static str); 4] = [
        (CACHE_CONTROL, file.cache_control),
        (CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_VALUE),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(ETAG, HeaderValue::from_str(&file.etag).expect("hex digits"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_name_their_assets_by_their_hashes() {
        let page = std::str::from_utf8(&SITE.page.body).unwrap();
        let reference = std::str::from_utf8(&SITE.api_reference.body).unwrap();
        for asset in &SITE.assets {
            let hash = content_hash(&asset.file.body);
            assert!(asset.name.contains(&hash), "{}", asset.name);
        }
        let hashed = |plain: &str| format!("/assets/{}\"", SITE.assets.iter().find(|a| a.plain == plain).unwrap().name);
        for (html, plains) in [(page, ["app.css", "app.js"]), (reference, ["app.css", "api.js"])] {
            for plain in plains {
                assert!(html.contains(&hashed(plain)), "{plain} in {html}");
                assert!(!html.contains(&format!("/assets/{plain}\"")), "{plain} unhashed in {html}");
            }
        }
    }

    #[test]
    fn a_hashed_name_is_read_back_to_its_plain_name() {
        assert_eq!(plain_name(&hashed_name("app.js", "0123456789abcdef")).as_deref(), Some("app.js"));
        assert_eq!(plain_name("app.0123456789ABCDEF.js"), None);
        assert_eq!(plain_name("app.0123.js"), None);
        assert_eq!(plain_name("app.js"), None);
    }

    #[test]
    fn the_openapi_document_is_json() {
        let document: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(document["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
    }
}
