//! Frames in, cards out: recognition on request, frames pushed into cameras, and the live
//! event stream each terminal subscribes to.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::auth::{Action, Caller, Role};
use super::{ApiError, AppState, Deadline, ErrorBody, image_body};
use crate::capture::{CameraHealth, Offer};
use crate::engine::Recognition;
use crate::terminals::{TerminalHealth, Viewer};
use crate::vision::Purpose;

/// Every face in a frame from a glasses terminal: its box, its quality, and the customer's card
/// or `unknown` with the reason.
#[utoipa::path(post, path = "/v1/recognize", tag = "frames",
    request_body(content = Vec<u8>, content_type = "image/jpeg",
        description = "a JPEG, PNG or WebP frame, as the raw body or the one file of a multipart form"),
    responses(
        (status = 200, body = super::views::Recognition),
        (status = 400, description = "not a decodable image", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 408, description = "not analysed in time: retry", body = ErrorBody),
        (status = 413, description = "body or image above the limits", body = ErrorBody),
        (status = 503, description = "overloaded: retry after the Retry-After seconds", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn recognize(
    caller: Caller,
    deadline: Deadline,
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Recognition>, ApiError> {
    caller.may(Action::Recognize)?;
    let image = image_body(request, &state).await?;
    let started = std::time::Instant::now();
    let source = caller.who();
    let recognizer = state.engine.recognizer.clone();
    let recognition = state
        .engine
        .gate
        .run(deadline.caller(), move |_| {
            recognizer.recognize_bytes(&image, &source, Purpose::Camera)
        })
        .await?;
    metrics::histogram!("greeter_recognize_seconds").record(started.elapsed().as_secs_f64());
    Ok(Json(recognition))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Pushed {
    /// "queued", "replaced" (an older frame not yet analysed was dropped) or "skipped" (above
    /// the camera's sample rate)
    pub frame: &'static str,
}

/// A frame for a push camera; cards for the faces in it go to the terminals bound to the camera.
#[utoipa::path(post, path = "/v1/cameras/{id}/frames", tag = "frames",
    params(("id" = String, Path, description = "a camera with source = \"push\"")),
    request_body(content = Vec<u8>, content_type = "image/jpeg"),
    responses((status = 202, body = Pushed), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn push(
    caller: Caller,
    State(state): State<AppState>,
    camera: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<(StatusCode, Json<Pushed>), ApiError> {
    caller.may(Action::PushFrames)?;
    let Path(camera) = camera?;
    let image = image_body(request, &state).await?;
    let frame = match state.engine.cameras.push(&camera, image)? {
        Offer::Queued => "queued",
        Offer::Replaced => "replaced",
        Offer::Skipped => "skipped",
    };
    Ok((StatusCode::ACCEPTED, Json(Pushed { frame })))
}

/// Every camera: its source, state, last error and frame counts.
#[utoipa::path(get, path = "/v1/cameras", tag = "frames",
    responses((status = 200, body = Vec<super::views::CameraHealth>)), security(("api_key" = [])))]
pub async fn cameras(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<CameraHealth>>, ApiError> {
    caller.may(Action::ReadCameras)?;
    Ok(Json(state.engine.cameras.health()))
}

/// Every terminal: the cameras it hears about and how many event streams it has open.
#[utoipa::path(get, path = "/v1/terminals", tag = "frames",
    responses((status = 200, body = Vec<super::views::TerminalHealth>)), security(("api_key" = [])))]
pub async fn terminals(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<TerminalHealth>>, ApiError> {
    caller.may(Action::ReadCameras)?;
    Ok(Json(state.engine.terminals.health()))
}

/// Server-Sent Events for one terminal: `ready` once subscribed, then a `card` event (an
/// `Announcement`) whenever a camera bound to the terminal recognises a customer it has not
/// been told about within the cool-down.
#[utoipa::path(get, path = "/v1/terminals/{id}/events", tag = "frames",
    params(("id" = String, Path, description = "a configured terminal")),
    responses((status = 200, content_type = "text/event-stream", body = super::views::Announcement),
        (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn events(
    caller: Caller,
    State(state): State<AppState>,
    terminal: Result<Path<String>, PathRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.may(Action::Subscribe)?;
    let Path(terminal) = terminal?;
    let viewer = match caller.role {
        Role::Terminal => Viewer::Glasses,
        _ => Viewer::Preview,
    };
    let subscription = state
        .engine
        .terminals
        .subscribe(&terminal, viewer)
        .ok_or_else(|| ApiError::UnknownTerminal(terminal.clone()))?;
    Ok(event_stream(
        &state,
        &terminal,
        "card",
        subscription.receiver,
        subscription.connected,
    ))
}

/// Server-Sent Events from a broadcast channel: `ready` (with `subscriber` as data) once
/// subscribed, then one `kind` event per message, and a comment when a slow reader missed some.
/// `held` lives exactly as long as the stream: until the client goes away or the service stops.
pub fn event_stream<T: Serialize + Send + Sync + 'static, H: Send + 'static>(
    state: &AppState,
    subscriber: &str,
    kind: &'static str,
    receiver: broadcast::Receiver<Arc<T>>,
    held: H,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<T, H>> {
    let ready = Event::default().event("ready").data(subscriber);
    let subscriber = subscriber.to_owned();
    let messages = BroadcastStream::new(receiver).map(move |message| {
        let _held = &held;
        Ok(match message {
            Ok(message) => Event::default()
                .event(kind)
                .json_data(&*message)
                .expect("events serialise"),
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                tracing::warn!(%subscriber, missed, "slow reader missed events");
                Event::default().comment(format!("missed {missed} events"))
            }
        })
    });
    let keepalive = Duration::from_secs(state.server.keepalive_s.max(1));
    let events = futures_util::stream::once(async { Ok(ready) })
        .chain(messages)
        .take_until(state.stop.clone().cancelled_owned());
    Sse::new(events).keep_alive(KeepAlive::new().interval(keepalive))
}
