//! Store IT's levers: calibration evidence and the matching rules, changed live and audited.

use axum::Json;
use axum::extract::{FromRequest, Query, Request, State};
use serde::{Deserialize, Serialize};

use super::auth::{Action, Caller};
use super::{ApiError, AppState, ErrorBody};
use crate::calibration::Calibration;
use crate::gallery::MatchRules;
use crate::gallery::store::AuditEntry;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct CalibrationQuery {
    /// acceptable chance that a stranger is greeted by some customer's name (default 1e-4)
    pub target: Option<f64>,
}

/// Genuine and impostor score distributions of the enrolled customers (those with 2+
/// portraits give genuine pairs), FAR/FRR per threshold, the EER, the expected wrong-name rate
/// per stranger for this gallery's size, and the threshold that meets the target.
#[utoipa::path(get, path = "/v1/calibration", tag = "settings", params(CalibrationQuery),
    responses((status = 200, body = Calibration), (status = 400, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn calibration(
    caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<CalibrationQuery>,
) -> Result<Json<Calibration>, ApiError> {
    caller.may(Action::Calibrate)?;
    let target = query.target.unwrap_or(1e-4);
    let calibration = state
        .service
        .blocking(move |service| service.calibration(target))
        .await?;
    Ok(Json(calibration))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MatchingView {
    pub threshold: f32,
    pub margin: f32,
    /// the latest changes, newest first
    pub audit: Vec<AuditEntry>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct MatchingChange {
    pub threshold: f32,
    pub margin: f32,
}

fn view(rules: MatchRules, audit: Vec<AuditEntry>) -> MatchingView {
    MatchingView {
        threshold: rules.threshold,
        margin: rules.margin,
        audit,
    }
}

#[utoipa::path(get, path = "/v1/settings/matching", tag = "settings",
    responses((status = 200, body = MatchingView)), security(("api_key" = [])))]
pub async fn matching(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<MatchingView>, ApiError> {
    caller.may(Action::Calibrate)?;
    let view = state
        .service
        .blocking(|service| {
            let gallery = service.gallery();
            Ok(view(gallery.rules(), gallery.audit_log(20)?))
        })
        .await?;
    Ok(Json(view))
}

/// Changes threshold and margin: effective for the next frame, kept in the data dir across
/// restarts (over the config file), and recorded in the audit log (who, when, old → new).
#[utoipa::path(put, path = "/v1/settings/matching", tag = "settings",
    request_body = MatchingChange,
    responses((status = 200, body = MatchingView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn set_matching(
    caller: Caller,
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<MatchingView>, ApiError> {
    caller.may(Action::Calibrate)?;
    let Json(change) = Json::<MatchingChange>::from_request(request, &state)
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let who = caller.who();
    let view = state
        .service
        .blocking(move |service| {
            let new = service.set_matching(change.threshold, change.margin, &who)?;
            Ok(view(new, service.gallery().audit_log(20)?))
        })
        .await?;
    Ok(Json(view))
}
