//! The HTTP API (axum): the only module that knows HTTP. Handlers parse the request, check the
//! caller's role, and hand the work to one of the engine's rooms; response views (with their
//! OpenAPI schemas) live here.

mod auth;
pub mod connections;
mod console;
pub(crate) mod customers;
mod error;
mod frames;
mod live;
mod ops;
mod settings;
pub mod views;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Multipart, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

pub use auth::{Action, AuthSettings, Keys, KeysError, Role};
pub use error::{ApiError, ErrorBody};

use crate::engine::gate::blocking;
use crate::engine::idempotency::{Answer, Begun, Key, Pending};
use crate::engine::{Caller as GateCaller, Engine, EngineError, Photo};

/// The HTTP side's own settings (`[server]`): what the listener and the limits are.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct ServerSettings {
    pub bind: String,
    /// connections open at once; more are closed as they arrive
    pub max_connections: usize,
    /// a client must send a request's headers within this, or its connection is closed
    pub header_read_timeout_ms: u64,
    pub max_body_bytes: usize,
    pub request_timeout_ms: u64,
    pub inference_workers: usize,
    pub inference_queue: usize,
    pub announce_cooldown_s: u64,
    pub keepalive_s: u64,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub server: Arc<ServerSettings>,
    pub keys: Arc<Keys>,
    /// cancelled when the service stops: event streams end then, or a graceful shutdown would
    /// wait for every pair of glasses to hang up
    pub stop: CancellationToken,
}

pub fn router(state: AppState) -> Router {
    let timeout = Duration::from_millis(state.server.request_timeout_ms);
    let body_limit = state.server.max_body_bytes;
    Router::new()
        .route("/v1/recognize", post(frames::recognize))
        .route("/v1/cameras", get(frames::cameras))
        .route("/v1/cameras/{id}/frames", post(frames::push))
        .route("/v1/terminals", get(frames::terminals))
        .route("/v1/terminals/{id}/events", get(frames::events))
        .route("/v1/live/events", get(live::events))
        .route("/v1/live/{id}/crop", get(live::crop))
        .route(
            "/v1/customers",
            post(customers::create).get(customers::search),
        )
        .route(
            "/v1/customers/{id}",
            get(customers::show).delete(customers::delete),
        )
        .route(
            "/v1/customers/{id}/portraits",
            post(customers::add_portraits),
        )
        .route("/v1/customers/{id}/export", get(customers::export))
        .route(
            "/v1/customers/{id}/withdraw-consent",
            post(customers::withdraw_consent),
        )
        .route("/v1/checkout", post(customers::checkout))
        .route("/v1/catalog", post(customers::import_catalog))
        .route("/v1/calibration", get(settings::calibration))
        .route("/v1/audit", get(settings::audit))
        .route("/v1/login", post(settings::login))
        .route(
            "/v1/settings/matching",
            get(settings::matching).put(settings::set_matching),
        )
        .route("/console", get(console::console))
        .route("/console/events.js", get(console::events_js))
        .route("/terminal/{id}", get(console::terminal))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(timeout, with_deadline))
        .layer(axum::middleware::from_fn(protective_headers))
        // a 5xx is logged once, by ApiError, with its cause; 503s (overload) are counted, not
        // logged line by line
        .layer(
            TraceLayer::new_for_http()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .with_state(state)
}

/// Headers every answer carries: no content sniffing, and no cache on the way (or in the
/// browser) keeps an API answer: they hold names, cards, faces.
async fn protective_headers(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/v1/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    if api {
        headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    response
}

/// When a request must be answered by: work behind the inference gate is given up at this
/// instant (and answered 408) unless it has begun committing.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    /// How the gate should treat this request.
    fn caller(self) -> GateCaller {
        GateCaller::Request {
            deadline: Some(self.0),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Deadline {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Deadline>()
            .copied()
            .ok_or(ApiError::NoDeadline)
    }
}

/// Gives each request its deadline, and answers 408 (as JSON) for anything still running a
/// little after it: a slow body, or a job that committed just before the deadline and takes
/// unusually long to finish (it still completes; the gate's own 408 is the usual one).
async fn with_deadline(
    State(timeout): State<Duration>,
    mut request: Request,
    next: Next,
) -> Response {
    const GRACE: Duration = Duration::from_secs(5);
    request
        .extensions_mut()
        .insert(Deadline(Instant::now() + timeout));
    match tokio::time::timeout(timeout + GRACE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Engine(crate::engine::EngineError::TimedOut).into_response(),
    }
}

/// An `Idempotency-Key` request: the first answer is kept, and a retry with the same key (same
/// caller, same endpoint) gets it again, marked `Idempotent-Replayed: true`, instead of a
/// second customer or sale. Without the header the work simply runs. Errors are not kept: a
/// retry after a 408 or a 503 runs again (a 408 changed nothing).
struct Once {
    replay: Option<Answer>,
    pending: Option<Pending>,
}

impl Once {
    async fn new(
        state: &AppState,
        caller: &auth::Caller,
        headers: &header::HeaderMap,
        endpoint: &'static str,
    ) -> Result<Once, ApiError> {
        let Some(key) = headers.get("idempotency-key") else {
            return Ok(Once {
                replay: None,
                pending: None,
            });
        };
        let key = key
            .to_str()
            .map_err(|_| EngineError::BadIdempotencyKey)
            .and_then(|k| Key::new(&caller.who(), k))?;
        let idempotency = state.engine.idempotency.clone();
        let begun = blocking(move || idempotency.begin(key, endpoint)).await?;
        Ok(match begun {
            Begun::Replay(answer) => Once {
                replay: Some(answer),
                pending: None,
            },
            Begun::Fresh(pending) => Once {
                replay: None,
                pending: Some(pending),
            },
        })
    }

    /// With a key, the work runs in its own task: a client that hangs up does not stop it
    /// between the commit and the answer being kept, so its retry finds the answer.
    async fn answer<T: serde::Serialize + Send + 'static>(
        self,
        status: axum::http::StatusCode,
        work: impl std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
    ) -> Result<Response, ApiError> {
        if let Some(answer) = self.replay {
            let status = axum::http::StatusCode::from_u16(answer.status)
                .unwrap_or(axum::http::StatusCode::OK);
            return Ok((
                status,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (
                        header::HeaderName::from_static("idempotent-replayed"),
                        "true",
                    ),
                ],
                answer.body,
            )
                .into_response());
        }
        let body = match self.pending {
            None => serde_json::to_string(&work.await?).expect("answers serialise"),
            Some(pending) => tokio::spawn(async move {
                let body = serde_json::to_string(&work.await?).expect("answers serialise");
                let answer = Answer {
                    status: status.as_u16(),
                    body: body.clone(),
                };
                blocking(move || pending.finish(&answer)).await?;
                Ok::<_, ApiError>(body)
            })
            .await
            .map_err(EngineError::Panicked)??,
        };
        Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response())
    }
}

/// A multipart form: its text fields and its files (photos).
#[derive(Default)]
struct Form {
    texts: HashMap<String, String>,
    photos: Vec<Photo>,
}

impl Form {
    async fn read(mut multipart: Multipart) -> Result<Form, ApiError> {
        let mut form = Form::default();
        while let Some(field) = multipart.next_field().await? {
            let name = field.name().unwrap_or_default().to_owned();
            match field.file_name().map(str::to_owned) {
                Some(file) => {
                    let origin = if file.is_empty() { name } else { file };
                    let bytes = field.bytes().await?;
                    form.photos.push(Photo { origin, bytes });
                }
                None => {
                    let text = field.text().await?;
                    form.texts.insert(name, text);
                }
            }
        }
        Ok(form)
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.texts
            .get(name)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.text(name)
            .ok_or_else(|| ApiError::BadRequest(format!("missing form field {name:?}")))
    }

    fn parsed<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.text(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::BadRequest(format!("form field {name:?}: cannot read {v:?}"))
                })
            })
            .transpose()
    }

    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        Ok(self.parsed(name)?.unwrap_or(false))
    }
}

fn is_multipart(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"))
}

/// An image sent as the raw body (`image/jpeg`, `image/png`) or as the one file of a form.
async fn image_body(request: Request, state: &AppState) -> Result<Bytes, ApiError> {
    if !is_multipart(&request) {
        return Ok(Bytes::from_request(request, state).await?);
    }
    let form = Form::read(Multipart::from_request(request, state).await?).await?;
    let mut photos = form.photos.into_iter();
    match (photos.next(), photos.next()) {
        (Some(photo), None) => Ok(photo.bytes),
        (None, _) => Err(ApiError::BadRequest("the form has no image file".into())),
        (Some(_), Some(_)) => Err(ApiError::BadRequest("send one image per request".into())),
    }
}
