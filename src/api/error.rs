//! One error type for the HTTP API, mapped to status codes in one exhaustive match: 4xx carry a
//! message for the caller, 5xx are opaque to the caller and logged with their whole chain.

use axum::Json;
use axum::extract::multipart::MultipartError;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::auth::{Action, Role};
use crate::crm::CrmError;
use crate::crm::catalog::CatalogError;
use crate::engine::EngineError;
use crate::gallery::{GalleryError, Refusal};
use crate::vision::decode::DecodeError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or unknown API key (send `Authorization: Bearer <key>`)")]
    Unauthorized,
    #[error("a {role:?} key may not {action:?}")]
    Forbidden { role: Role, action: Action },
    #[error("{0}")]
    BadRequest(String),
    #[error("no terminal {0:?}")]
    UnknownTerminal(String),
    #[error("face crop {0} is no longer kept (only the latest recognitions' are)")]
    CropGone(u64),
    #[error("no such endpoint")]
    NoRoute,
    #[error("this endpoint does not take that method")]
    MethodNotAllowed,
    #[error("the request has no deadline (a server bug)")]
    NoDeadline,
    #[error("bad path")]
    Path(#[from] PathRejection),
    #[error("bad query")]
    Query(#[from] QueryRejection),
    #[error("bad JSON body")]
    Json(#[from] JsonRejection),
    #[error("cannot read the request body")]
    Body(#[from] BytesRejection),
    #[error("not a multipart form")]
    Form(#[from] MultipartRejection),
    #[error("cannot read the form")]
    Multipart(#[from] MultipartError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnknownTerminal(_) | ApiError::CropGone(_) | ApiError::NoRoute => {
                StatusCode::NOT_FOUND
            }
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NoDeadline => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Path(rejection) => rejection.status(),
            ApiError::Query(rejection) => rejection.status(),
            ApiError::Json(JsonRejection::MissingJsonContentType(_)) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            // a body that is not JSON, or not the right JSON: the caller's to fix either way
            ApiError::Json(_) => StatusCode::BAD_REQUEST,
            ApiError::Body(rejection) => rejection.status(),
            ApiError::Form(rejection) => rejection.status(),
            ApiError::Multipart(e) => e.status(),
            ApiError::Engine(e) => engine_status(e),
        }
    }
}

fn engine_status(error: &EngineError) -> StatusCode {
    match error {
        EngineError::Decode {
            source: DecodeError::TooLarge { .. },
            ..
        } => StatusCode::PAYLOAD_TOO_LARGE,
        EngineError::Decode { .. } | EngineError::Invalid(_) => StatusCode::BAD_REQUEST,
        // a file the CLI names: the engine reads no paths for HTTP callers
        EngineError::Read { .. } => StatusCode::BAD_REQUEST,
        EngineError::TimedOut | EngineError::Abandoned => StatusCode::REQUEST_TIMEOUT,
        EngineError::BadIdempotencyKey => StatusCode::BAD_REQUEST,
        EngineError::Archive(_) => StatusCode::INTERNAL_SERVER_ERROR,
        EngineError::KeyInFlight | EngineError::KeyReused { .. } => StatusCode::CONFLICT,
        EngineError::NoFace { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        EngineError::UnknownCamera(_) => StatusCode::NOT_FOUND,
        EngineError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        EngineError::Gallery(e) => gallery_status(e),
        EngineError::Crm(e) => match e {
            CrmError::UnknownCustomer(_) => StatusCode::NOT_FOUND,
            CrmError::HistoryHeader
            | CrmError::Catalog(CatalogError::Csv(_) | CatalogError::Json(_)) => {
                StatusCode::BAD_REQUEST
            }
            CrmError::Catalog(CatalogError::Store(_)) | CrmError::Store(_) | CrmError::Db(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        },
        EngineError::Vision(_) | EngineError::Panicked(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn gallery_status(error: &GalleryError) -> StatusCode {
    match error {
        GalleryError::UnknownCustomer(_) => StatusCode::NOT_FOUND,
        GalleryError::Refused(refusal) => match refusal {
            Refusal::EmptyName
            | Refusal::NoConsent
            | Refusal::ConsentRefused(_)
            | Refusal::LongName { .. }
            | Refusal::NoPortraits => StatusCode::BAD_REQUEST,
            Refusal::Quality { .. } | Refusal::Disagree { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Refusal::Duplicate { .. } => StatusCode::CONFLICT,
        },
        GalleryError::Store(_)
        | GalleryError::Db(_)
        | GalleryError::NotReembedded { .. }
        | GalleryError::Index(_)
        | GalleryError::Search { .. }
        | GalleryError::Io { .. }
        | GalleryError::ModelMismatch { .. }
        | GalleryError::Dimensions { .. }
        | GalleryError::Seal(_)
        | GalleryError::KeyMissing { .. }
        | GalleryError::WrongKey { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %crate::telemetry::chain(&self), "request failed");
            "internal error (details in the service log)".to_owned()
        } else {
            // the caller's to fix: the whole chain helps them (which field, which decoder error)
            crate::telemetry::chain(&self)
        };
        let mut response = (status, Json(ErrorBody { error: message })).into_response();
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            StatusCode::UNAUTHORIZED => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
