//! `GET /jobs/{job_id}`, `DELETE /jobs/{job_id}` (a job not being converted, with its video and
//! MP3) and `GET /jobs` (the caller's own, newest first, paged by cursor).

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{Value, json};

use super::{parse_id, query_param};
use crate::http::credentials::Identity;
use crate::http::error::ApiError;
use crate::http::response::{Response, json as json_response};
use crate::ids::Id;
use crate::security::token::Claims;
use crate::storage::{Bucket, Deletion, Job, JobStore, Stores, jobs};

const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

/// The job named in the path, if the caller may see it (its owner, or an admin).
async fn requested_job(identity: &Identity, jobs: &dyn JobStore, request: &Request<Incoming>) -> Result<Job, ApiError> {
    let (claims, id) = caller_and_job_id(identity, request).await?;
    visible(jobs.get(id).await?, &claims)
}

/// The caller's claims and the id of the job named in the path (`/jobs/{id}` and below).
pub(super) async fn caller_and_job_id(
    identity: &Identity,
    request: &Request<Incoming>,
) -> Result<(Claims, Id), ApiError> {
    let claims = identity.bearer(request.headers()).await?;
    let path = request.uri().path().trim_start_matches("/jobs/");
    let id = parse_id(path.split('/').next().unwrap_or_default(), "job_id")?;
    Ok((claims, id))
}

/// The job, if there is one and the caller may see it (its owner, or an admin); else 404.
pub(super) fn visible(job: Option<Job>, claims: &Claims) -> Result<Job, ApiError> {
    job.filter(|job| job.readable_by(&claims.username, claims.admin)).ok_or_else(|| ApiError::not_found("no such job"))
}

pub async fn show(identity: &Identity, jobs: &dyn JobStore, request: Request<Incoming>) -> Result<Response, ApiError> {
    let job = requested_job(identity, jobs, &request).await?;
    Ok(json_response(StatusCode::OK, &job_json(&job)))
}

/// Deletes a job and its blobs: a finished one, or a queued one (which cancels it; its message
/// then finds no job). A job being converted cannot be deleted (409). The record goes first
/// ([`jobs::delete`], the rule), so that a converter that took the job meanwhile loses the
/// race cleanly.
pub async fn delete(identity: &Identity, stores: &Stores, request: Request<Incoming>) -> Result<Response, ApiError> {
    let job = requested_job(identity, stores.jobs.as_ref(), &request).await?;
    let job = match jobs::delete(stores.jobs.as_ref(), job).await? {
        Deletion::Deleted(job) => job,
        Deletion::InProgress => {
            return Err(ApiError::new(StatusCode::CONFLICT, "job_in_progress", "the job is being converted"));
        }
        Deletion::Gone => return Err(ApiError::not_found("no such job")),
    };
    let blobs = &stores.blobs;
    if let Some(mp3_fid) = job.mp3_fid {
        blobs.delete(Bucket::Mp3s, mp3_fid).await?;
    }
    blobs.delete(Bucket::Videos, job.video_fid).await?;
    tracing::info!(job_id = %job.id, state = job.state.as_str(), "job deleted");
    Ok(crate::http::response::no_content())
}

pub async fn list(identity: &Identity, jobs: &dyn JobStore, request: Request<Incoming>) -> Result<Response, ApiError> {
    let claims = identity.bearer(request.headers()).await?;
    let limit = match query_param(request.uri(), "limit") {
        None => DEFAULT_PAGE,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::bad_request("bad_limit", format!("limit must be 1 to {MAX_PAGE}")))?,
    };
    let cursor = query_param(request.uri(), "cursor").map(|c| parse_id(&c, "cursor")).transpose()?;
    // One more than the page, to tell whether anything comes after it.
    let mut page = jobs.list_by_owner(&claims.username, limit + 1, cursor).await?;
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let next_cursor = more.then(|| page.last().map(|job| job.id.to_string())).flatten();
    let body = json!({ "jobs": page.iter().map(job_json).collect::<Vec<_>>(), "next_cursor": next_cursor });
    Ok(json_response(StatusCode::OK, &body))
}

fn job_json(job: &Job) -> Value {
    json!({
        "job_id": job.id,
        "state": job.state.as_str(),
        "video_fid": job.video_fid,
        "mp3_fid": job.mp3_if_done(),
        "filename": job.filename,
        "error": job.error,
        "attempts": job.attempts,
        "notification": job.notification.as_str(),
        "media_seconds": job.media_seconds,
        "created_at": rfc3339(job.created_at),
        "updated_at": rfc3339(job.updated_at),
        "retrying": job.retrying.as_ref().map(|retrying| json!({
            "reason": retrying.reason,
            "since": rfc3339(retrying.since),
            "next_at": rfc3339(retrying.next_at),
        })),
    })
}

fn rfc3339(millis: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}
