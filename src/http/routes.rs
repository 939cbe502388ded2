//! Routing: a request's method and path to a [`Route`], and a route to its handler.

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use super::Gateway;
use super::error::ApiError;
use super::handlers::{cluster, download, events, jobs, ops, session, upload, web};
use super::response::Response;
use crate::node::Node;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Login,
    /// Ends this session, or every session of the user.
    Logout,
    Validate,
    Upload,
    Download,
    Jobs,
    Job,
    DeleteJob,
    /// A job's live events (server-sent events).
    JobEvents,
    /// The web page ([`web`]).
    Page,
    /// One of the web page's files, under its content-hashed name.
    Asset,
    /// The OpenAPI document of these routes.
    OpenApi,
    /// The OpenAPI document as a page to read.
    ApiReference,
    Healthz,
    Readyz,
    Metrics,
    Cluster,
    DrainNode,
    /// Test-only fault injection, present only with `--fault-hooks`.
    Crash,
    /// A known path with the wrong method; the path's template.
    WrongMethod(&'static str),
    Unknown,
}

/// Where a route exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// On every node (operations).
    Always,
    /// Where the gateway role is on (the API and the web page).
    Gateway,
    /// Only with `--fault-hooks`.
    FaultHooks,
}

impl Scope {
    fn open(self, api: bool, fault_hooks: bool) -> bool {
        match self {
            Scope::Always => true,
            Scope::Gateway => api,
            Scope::FaultHooks => api && fault_hooks,
        }
    }
}

/// One line of the route table: a method and a path template (`{name}` is one non-empty path
/// segment). A GET route also answers HEAD.
#[derive(Debug)]
pub struct Entry {
    pub method: Method,
    pub template: &'static str,
    pub route: Route,
    pub scope: Scope,
}

const fn entry(method: Method, template: &'static str, route: Route, scope: Scope) -> Entry {
    Entry { method, template, route, scope }
}

/// Every route. The OpenAPI document ([`web`]) describes exactly the ones in the gateway scope.
pub static ROUTES: [Entry; 19] = [
    entry(Method::GET, "/healthz", Route::Healthz, Scope::Always),
    entry(Method::GET, "/readyz", Route::Readyz, Scope::Always),
    entry(Method::GET, "/metrics", Route::Metrics, Scope::Always),
    entry(Method::GET, "/", Route::Page, Scope::Gateway),
    entry(Method::GET, "/assets/{name}", Route::Asset, Scope::Gateway),
    entry(Method::GET, "/openapi.json", Route::OpenApi, Scope::Gateway),
    entry(Method::GET, "/api", Route::ApiReference, Scope::Gateway),
    entry(Method::POST, "/login", Route::Login, Scope::Gateway),
    entry(Method::POST, "/logout", Route::Logout, Scope::Gateway),
    entry(Method::POST, "/validate", Route::Validate, Scope::Gateway),
    entry(Method::POST, "/upload", Route::Upload, Scope::Gateway),
    entry(Method::GET, "/download", Route::Download, Scope::Gateway),
    entry(Method::GET, "/jobs", Route::Jobs, Scope::Gateway),
    entry(Method::GET, "/jobs/{id}", Route::Job, Scope::Gateway),
    entry(Method::DELETE, "/jobs/{id}", Route::DeleteJob, Scope::Gateway),
    entry(Method::GET, "/jobs/{id}/events", Route::JobEvents, Scope::Gateway),
    entry(Method::GET, "/cluster", Route::Cluster, Scope::Gateway),
    entry(Method::POST, "/cluster/nodes/{name}/drain", Route::DrainNode, Scope::Gateway),
    entry(Method::POST, "/debug/crash", Route::Crash, Scope::FaultHooks),
];

impl Route {
    /// The route of a request; the API routes exist only where `api` (the gateway role) is on.
    pub fn of(method: &Method, path: &str, api: bool, fault_hooks: bool) -> Route {
        let mut known = ROUTES
            .iter()
            .filter(|entry| entry.scope.open(api, fault_hooks) && matches(entry.template, path))
            .peekable();
        let Some(template) = known.peek().map(|entry| entry.template) else {
            return Route::Unknown;
        };
        known
            .find(|entry| entry.method == *method || (entry.method == Method::GET && *method == Method::HEAD))
            .map_or(Route::WrongMethod(template), |entry| entry.route)
    }

    /// The label under which requests are counted: the route's template, never the raw path.
    pub fn label(self) -> &'static str {
        match self {
            Route::DeleteJob => "DELETE /jobs/{id}",
            Route::WrongMethod(_) => "wrong_method",
            route => ROUTES.iter().find(|entry| entry.route == route).map_or("unknown", |entry| entry.template),
        }
    }
}

/// Whether `path` fits `template`: the same segments, a `{name}` standing for any non-empty one.
fn matches(template: &str, path: &str) -> bool {
    let (wanted, given) = (template.split('/'), path.split('/'));
    wanted.clone().count() == given.clone().count()
        && wanted.zip(given).all(|(w, g)| if w.starts_with('{') { !g.is_empty() } else { w == g })
}

/// The methods a path template takes, for `Allow`.
fn allowed(template: &str) -> String {
    let methods: Vec<&str> =
        ROUTES.iter().filter(|entry| entry.template == template).map(|entry| entry.method.as_str()).collect();
    methods.join(", ")
}

/// Hands a request to its route's handler, with the parts of the node and the gateway it uses.
pub async fn dispatch(
    node: &Node,
    gateway: &Gateway,
    route: Route,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    let (identity, stores) = (&gateway.identity, &node.stores);
    match route {
        Route::Login => session::login(gateway, &node.services.metrics, request).await,
        Route::Logout => session::logout(identity, request).await,
        Route::Validate => session::validate(identity, request).await,
        Route::Upload => upload::upload(node, gateway, request).await,
        Route::Download => download::download(identity, stores.blobs.as_ref(), request).await,
        Route::Jobs => jobs::list(identity, stores.jobs.as_ref(), request).await,
        Route::Job => jobs::show(identity, stores.jobs.as_ref(), request).await,
        Route::DeleteJob => jobs::delete(identity, stores, request).await,
        Route::JobEvents => events::follow(gateway, &stores.jobs, request).await,
        Route::Page => Ok(web::page(&request)),
        Route::Asset => web::asset(&request),
        Route::OpenApi => Ok(web::openapi(&request)),
        Route::ApiReference => Ok(web::api_reference(&request)),
        Route::Healthz => Ok(ops::healthz()),
        Route::Readyz => ops::readyz(stores).await,
        Route::Metrics => ops::metrics(gateway.metrics_token.as_ref(), &node.services.metrics, &request),
        Route::Cluster => cluster::show(node, identity, request).await,
        Route::DrainNode => cluster::drain(node, identity, request).await,
        Route::Crash => ops::crash(identity, request).await,
        Route::WrongMethod(template) => {
            let allowed = allowed(template);
            let mut response =
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("use {allowed}"))
                    .into_response();
            let value = hyper::header::HeaderValue::from_str(&allowed).map_err(ApiError::internal)?;
            response.headers_mut().insert(hyper::header::ALLOW, value);
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
        assert_eq!(Route::of(&Method::GET, "/login", true, false), Route::WrongMethod("/login"));
        assert_eq!(allowed("/login"), "POST");
        assert_eq!(Route::of(&Method::GET, "/jobs/abc", true, false), Route::Job);
        assert_eq!(Route::of(&Method::DELETE, "/jobs/abc", true, false), Route::DeleteJob);
        assert_eq!(Route::of(&Method::PUT, "/jobs/abc", true, false), Route::WrongMethod("/jobs/{id}"));
        assert_eq!(allowed("/jobs/{id}"), "GET, DELETE");
        assert_eq!(Route::of(&Method::GET, "/jobs/abc/x", true, false), Route::Unknown);
        assert_eq!(Route::of(&Method::GET, "/jobs/abc/events", true, false), Route::JobEvents);
        assert_eq!(Route::of(&Method::POST, "/jobs/abc/events", true, false), Route::WrongMethod("/jobs/{id}/events"));
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
        assert_eq!(Route::of(&Method::GET, "/", true, false), Route::Page);
        assert_eq!(Route::of(&Method::GET, "/", false, false), Route::Unknown);
        assert_eq!(Route::of(&Method::GET, "/assets/app.0123.js", true, false), Route::Asset);
        assert_eq!(Route::of(&Method::GET, "/assets/", true, false), Route::Unknown);
    }

    #[test]
    fn labels_are_templates() {
        assert_eq!(Route::Job.label(), "/jobs/{id}");
        assert_eq!(Route::DeleteJob.label(), "DELETE /jobs/{id}");
        assert_eq!(Route::DrainNode.label(), "/cluster/nodes/{name}/drain");
        assert_eq!(Route::WrongMethod("/login").label(), "wrong_method");
        assert_eq!(Route::Unknown.label(), "unknown");
    }
}
