//! What the OpenAPI document says the engine's answers look like. The handlers send the
//! engine's own types (serde); these mirror their JSON for the schema only, so the engine needs
//! no OpenAPI derive. A test compares them with real answers (`tests/api/ops.rs`).

use serde::Serialize;
use utoipa::ToSchema;

use crate::crm::Card;

/// Every face in a frame, largest first.
#[derive(Serialize, ToSchema)]
pub struct Recognition {
    pub width: u32,
    pub height: u32,
    pub faces: Vec<Sighting>,
}

/// One face: where, how good, and who (or why not).
#[derive(Serialize, ToSchema)]
pub struct Sighting {
    /// x, y, width, height in frame pixels
    #[serde(rename = "box")]
    #[schema(value_type = Object)]
    pub bbox: (),
    pub detector_score: f32,
    /// sharpness, frontalness, size, roll, passed, reasons
    #[schema(value_type = Object)]
    pub quality: (),
    /// "known" (with `card`) or "unknown" (with `reason`)
    pub status: String,
    pub card: Option<Card>,
    pub reason: Option<String>,
}

/// What a checkout did.
#[derive(Serialize, ToSchema)]
pub struct CheckoutReceipt {
    /// false when the customer is unknown and there was no consent to enrol them
    pub recorded: bool,
    pub customer_id: Option<i64>,
    pub visit_id: Option<i64>,
    pub enrolled: bool,
    /// what happened to the portrait: "none", "enrolled", "added", "not added: …"
    pub portrait: String,
    pub card: Option<Card>,
}

/// What an enrolment returns.
#[derive(Serialize, ToSchema)]
pub struct Enrolled {
    pub customer_id: i64,
    pub portrait_ids: Vec<i64>,
    pub dropped_portraits: Vec<i64>,
}
