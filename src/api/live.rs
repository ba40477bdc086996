//! The console's live view: every recognition of a known customer as it happens, and its face
//! crop while the service keeps it (in memory, the latest few).

use std::convert::Infallible;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::sse::{Event, Sse};
use futures_util::Stream;

use super::auth::{Action, Caller};
use super::frames::event_stream;
use super::{ApiError, AppState, ErrorBody};

/// Server-Sent Events for the console: `ready`, then a `recognition` event (a `LiveRecognition`)
/// for each known customer a camera or terminal sees, once per source and minute.
#[utoipa::path(get, path = "/v1/live/events", tag = "live",
    responses((status = 200, content_type = "text/event-stream", body = super::views::LiveRecognition),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn events(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.may(Action::WatchLive)?;
    let receiver = state.engine.live.subscribe();
    Ok(event_stream(
        &state,
        &caller.who(),
        "recognition",
        receiver,
        (),
    ))
}

/// The face crop of a live recognition (JPEG), while it is kept.
#[utoipa::path(get, path = "/v1/live/{id}/crop", tag = "live",
    params(("id" = u64, Path, description = "a live recognition's id")),
    responses((status = 200, content_type = "image/jpeg", body = Vec<u8>),
        (status = 404, description = "no longer kept", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn crop(
    caller: Caller,
    State(state): State<AppState>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::WatchLive)?;
    let Path(id) = id?;
    let jpeg = state.engine.live.crop(id).ok_or(ApiError::CropGone(id))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            // a face: not for any cache on the way
            (header::CACHE_CONTROL, "no-store"),
        ],
        jpeg,
    ))
}
