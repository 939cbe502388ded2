//! Routing: a request's method and path to a [`Route`], and a route to its handler.

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use super::error::ApiError;
use super::handlers::{cluster, download, events, jobs, ops, session, upload};
use super::response::Response;
use crate::actors::NodeContext;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Login,
    Validate,
    Upload,
    Download,
    Jobs,
    Job,
    DeleteJob,
    /// A job's live events (server-sent events).
    JobEvents,
    Healthz,
    Readyz,
    Metrics,
    Cluster,
    DrainNode,
    /// Test-only fault injection, present only with `--fault-hooks`.
    Crash,
    /// A known path with the wrong method; the method it takes.
    WrongMethod(&'static str),
    Unknown,
}

impl Route {
    /// The route of a request; the API routes exist only where `api` (the gateway role) is on.
    pub fn of(method: &Method, path: &str, api: bool, fault_hooks: bool) -> Route {
        let (route, wanted) = match path {
            "/healthz" => (Route::Healthz, Method::GET),
            "/readyz" => (Route::Readyz, Method::GET),
            "/metrics" => (Route::Metrics, Method::GET),
            _ if !api => return Route::Unknown,
            "/login" => (Route::Login, Method::POST),
            "/validate" => (Route::Validate, Method::POST),
            "/upload" => (Route::Upload, Method::POST),
            "/download" => (Route::Download, Method::GET),
            "/jobs" => (Route::Jobs, Method::GET),
            "/cluster" => (Route::Cluster, Method::GET),
            p if p
                .strip_prefix("/cluster/nodes/")
                .and_then(|rest| rest.strip_suffix("/drain"))
                .is_some_and(|name| !name.is_empty() && !name.contains('/')) =>
            {
                (Route::DrainNode, Method::POST)
            }
            p if job_id_before(p, "").is_some() => {
                if *method == Method::DELETE {
                    return Route::DeleteJob;
                }
                (Route::Job, Method::GET)
            }
            p if job_id_before(p, "/events").is_some() => (Route::JobEvents, Method::GET),
            "/debug/crash" if fault_hooks => (Route::Crash, Method::POST),
            _ => return Route::Unknown,
        };
        if *method == wanted || (wanted == Method::GET && *method == Method::HEAD) {
            route
        } else {
            Route::WrongMethod(match route {
                Route::Job => "GET, DELETE",
                _ if wanted == Method::GET => "GET",
                _ => "POST",
            })
        }
    }

    /// The label under which requests are counted: the route's template, never the raw path.
    pub fn label(self) -> &'static str {
        match self {
            Route::Login => "/login",
            Route::Validate => "/validate",
            Route::Upload => "/upload",
            Route::Download => "/download",
            Route::Jobs => "/jobs",
            Route::Job => "/jobs/{id}",
            Route::DeleteJob => "DELETE /jobs/{id}",
            Route::JobEvents => "/jobs/{id}/events",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::Cluster => "/cluster",
            Route::DrainNode => "/cluster/nodes/{name}/drain",
            Route::Crash => "/debug/crash",
            Route::WrongMethod(_) => "wrong_method",
            Route::Unknown => "unknown",
        }
    }
}

/// The `{id}` of a path `/jobs/{id}<rest>` (one non-empty segment), if the path is that.
fn job_id_before<'a>(path: &'a str, rest: &str) -> Option<&'a str> {
    let id = path.strip_prefix("/jobs/")?.strip_suffix(rest)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

pub async fn dispatch(ctx: &NodeContext, route: Route, request: Request<Incoming>) -> Result<Response, ApiError> {
    match route {
        Route::Login => session::login(ctx, request).await,
        Route::Validate => session::validate(ctx, request),
        Route::Upload => upload::upload(ctx, request).await,
        Route::Download => download::download(ctx, request).await,
        Route::Jobs => jobs::list(ctx, request).await,
        Route::Job => jobs::show(ctx, request).await,
        Route::DeleteJob => jobs::delete(ctx, request).await,
        Route::JobEvents => events::follow(ctx, request).await,
        Route::Healthz => Ok(ops::healthz()),
        Route::Readyz => ops::readyz(ctx).await,
        Route::Metrics => Ok(ops::metrics(ctx)),
        Route::Cluster => cluster::show(ctx, request).await,
        Route::DrainNode => cluster::drain(ctx, request).await,
        Route::Crash => ops::crash(ctx, request),
        Route::WrongMethod(allowed) => {
            let mut response =
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("use {allowed}"))
                    .into_response();
            response.headers_mut().insert(hyper::header::ALLOW, hyper::header::HeaderValue::from_static(allowed));
            Ok(response)
        }
        Route::Unknown => Err(ApiError::not_found("no such route")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_method_and_path() {
        assert_eq!(Route::of(&Method::POST, "/login", true, false), Route::Login);
        assert_eq!(Route::of(&Method::GET, "/login", true, false), Route::WrongMethod("POST"));
        assert_eq!(Route::of(&Method::GET, "/jobs/abc", true, false), Route::Job);
        assert_eq!(Route::of(&Method::DELETE, "/jobs/abc", true, false), Route::DeleteJob);
        assert_eq!(Route::of(&Method::PUT, "/jobs/abc", true, false), Route::WrongMethod("GET, DELETE"));
        assert_eq!(Route::of(&Method::GET, "/jobs/abc/x", true, false), Route::Unknown);
        assert_eq!(Route::of(&Method::GET, "/jobs/abc/events", true, false), Route::JobEvents);
        assert_eq!(Route::of(&Method::POST, "/jobs/abc/events", true, false), Route::WrongMethod("GET"));
        assert_eq!(Route::of(&Method::GET, "/jobs//events", true, false), Route::Unknown);
        assert_eq!(Route::of(&Method::GET, "/jobs/a/b/events", true, false), Route::Unknown);
        assert_eq!(Route::of(&Method::GET, "/jobs/abc/events", false, false), Route::Unknown);
        assert_eq!(Route::of(&Method::POST, "/debug/crash", true, false), Route::Unknown);
        assert_eq!(Route::of(&Method::POST, "/debug/crash", true, true), Route::Crash);
        assert_eq!(Route::of(&Method::HEAD, "/healthz", true, false), Route::Healthz);
        assert_eq!(Route::of(&Method::POST, "/upload", false, false), Route::Unknown);
        assert_eq!(Route::of(&Method::GET, "/metrics", false, false), Route::Metrics);
        assert_eq!(Route::of(&Method::GET, "/cluster", true, false), Route::Cluster);
        assert_eq!(Route::of(&Method::POST, "/cluster/nodes/node-2/drain", true, false), Route::DrainNode);
        assert_eq!(Route::of(&Method::POST, "/cluster/nodes//drain", true, false), Route::Unknown);
    }
}
