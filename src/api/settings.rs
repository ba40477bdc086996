//! Store IT's levers: calibration evidence and the matching rules, changed live and audited.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};

use super::auth::{Action, Caller};
use super::{ApiError, AppState, ErrorBody};
use crate::calibration::Calibration;
use crate::engine::Caller as GateCaller;
use crate::engine::gate::blocking;
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
    responses((status = 200, body = super::views::Calibration), (status = 400, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn calibration(
    caller: Caller,
    State(state): State<AppState>,
    query: Result<Query<CalibrationQuery>, QueryRejection>,
) -> Result<Json<Calibration>, ApiError> {
    caller.may(Action::Calibrate)?;
    let Query(query) = query?;
    let target = query.target.unwrap_or(1e-4);
    let admin = state.engine.admin.clone();
    // O(portraits²): as CPU-bound as a frame, so it waits for a worker like one
    let calibration = state
        .engine
        .gate
        .run(GateCaller::Request { deadline: None }, move |_| {
            admin.calibration(target, Vec::new(), None)
        })
        .await?;
    Ok(Json(calibration))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// how many entries, newest first (default 100, at most 1000)
    pub limit: Option<usize>,
    /// one kind only: "enrol", "erase", "withdraw", "export", "purge", "matching", "login"
    pub what: Option<String>,
}

/// Who enrolled or erased which customer (by id: the log keeps no personal data, so it outlives
/// an erasure), and who changed the matching rules, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "settings", params(AuditQuery),
    responses((status = 200, body = Vec<super::views::AuditEntry>), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn audit(
    caller: Caller,
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    caller.may(Action::ReadAudit)?;
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(100).min(1000);
    let admin = state.engine.admin.clone();
    let entries = blocking(move || admin.audit_log(limit, query.what.as_deref())).await?;
    Ok(Json(entries))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Session {
    /// what the key may do: terminal, camera, pos or admin
    #[schema(value_type = String)]
    pub role: super::auth::Role,
    /// how the audit log names this key (its role and the first bytes of its digest)
    pub who: String,
}

/// Signing in (the console does it with the key it is given): checks the key and records the
/// login, with the caller's address and browser, in the audit log (`what` = "login").
#[utoipa::path(post, path = "/v1/login", tag = "settings",
    responses((status = 200, body = Session), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn login(
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    State(state): State<AppState>,
) -> Result<Json<Session>, ApiError> {
    let who = caller.who();
    let agent: String = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown client")
        .chars()
        .take(120)
        .collect();
    let from = format!("from {} ({agent})", peer.ip());
    let admin = state.engine.admin.clone();
    let recorded = who.clone();
    blocking(move || admin.record_login(&recorded, &from)).await?;
    Ok(Json(Session {
        role: caller.role,
        who,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MatchingView {
    pub threshold: f32,
    pub margin: f32,
    /// the latest changes, newest first
    #[schema(value_type = Vec<super::views::AuditEntry>)]
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
    let admin = state.engine.admin.clone();
    let view =
        blocking(move || Ok(view(admin.rules(), admin.audit_log(20, Some("matching"))?))).await?;
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
    change: Result<Json<MatchingChange>, JsonRejection>,
) -> Result<Json<MatchingView>, ApiError> {
    caller.may(Action::Calibrate)?;
    let Json(change) = change?;
    let who = caller.who();
    let admin = state.engine.admin.clone();
    let view = blocking(move || {
        let new = admin.set_matching(change.threshold, change.margin, &who)?;
        Ok(view(new, admin.audit_log(20, Some("matching"))?))
    })
    .await?;
    Ok(Json(view))
}
