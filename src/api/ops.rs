//! For store IT and the machines watching the service: health, readiness, metrics, API docs.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use super::AppState;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// detector, landmarks and embedder names
    pub models: Vec<String>,
    /// portraits in the store
    pub portraits: Option<u64>,
    /// vectors in the index (more than portraits while an HNSW index hides removed ones)
    pub indexed: Option<u64>,
    pub error: Option<String>,
}

/// Ready to recognise: models loaded and the gallery open (both before the port opens); the
/// counts come from counters kept by every write, so this never waits for the store.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (portraits, indexed) = state.engine.counts();
    let error = (portraits != indexed).then(|| {
        format!(
            "the index holds {indexed} vectors for {portraits} portraits: restart to rebuild it"
        )
    });
    let status = match error {
        None => StatusCode::OK,
        Some(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    let readiness = Readiness {
        ready: error.is_none(),
        models: state.engine.models.clone(),
        portraits: Some(portraits),
        indexed: Some(indexed),
        error,
    };
    (status, Json(readiness))
}

/// Prometheus text format: per-stage latency histograms, frames in/dropped/skipped per camera,
/// queue depths, faces known/unknown, announcements, overload refusals.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, body = String)))]
pub async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics().render(),
    )
}

#[derive(OpenApi)]
#[openapi(
    info(title = "greeter", description = "Edge face recognition for stores"),
    paths(
        super::frames::recognize,
        super::frames::push,
        super::frames::cameras,
        super::frames::terminals,
        super::frames::events,
        super::live::events,
        super::live::crop,
        super::customers::create,
        super::customers::add_portraits,
        super::customers::search,
        super::customers::show,
        super::customers::delete,
        super::customers::withdraw_consent,
        super::customers::export,
        super::customers::checkout,
        super::customers::import_catalog,
        super::settings::calibration,
        super::settings::matching,
        super::settings::set_matching,
        super::settings::audit,
        super::settings::login,
        healthz,
        readyz,
        metrics,
        openapi,
    ),
    modifiers(&BearerKeys)
)]
struct ApiDoc;

struct BearerKeys;

impl utoipa::Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "api_key",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, body = Object)))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
