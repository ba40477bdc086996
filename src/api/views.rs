//! What the OpenAPI document says the answers look like. The handlers send the engine's own
//! types (serde); these mirror their JSON for the schema only, so nothing below `api` carries
//! an OpenAPI derive. `tests/api/ops.rs` compares them with real answers, so they cannot drift.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

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
    /// sharpness, frontalness, size, roll, weight, passed, reasons
    #[schema(value_type = Object)]
    pub quality: (),
    /// the face's track across this caller's frames: the same id for the same face in the
    /// caller's next frames
    pub track: Option<u64>,
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

/// What the glasses show about a recognised customer.
#[derive(Serialize, ToSchema)]
pub struct Card {
    pub customer_id: i64,
    pub name: String,
    /// the last recorded visit (checkout), if any
    pub last_visit: Option<DateTime<Utc>>,
    /// whole days since `last_visit`
    pub days_since_last_visit: Option<i64>,
    pub visits: u64,
    /// "new", "first_return", "regular", "vip" or "lapsed"
    pub segment: String,
    /// similarity of the face to the customer's best portrait
    pub score: f32,
    pub greeting: Option<String>,
    /// best first
    pub suggestions: Vec<Suggestion>,
}

#[derive(Serialize, ToSchema)]
pub struct Suggestion {
    pub sku: String,
    pub name: String,
    /// one line on why this item, for the assistant
    pub reason: String,
}

/// A card pushed to a terminal's event stream.
#[derive(Serialize, ToSchema)]
pub struct Announcement {
    pub terminal: String,
    pub camera: String,
    pub card: Card,
    #[serde(rename = "box")]
    #[schema(value_type = Object)]
    pub bbox: (),
    /// when the frame entered the service
    pub frame_at: DateTime<Utc>,
}

/// A recognition on the console's live stream.
#[derive(Serialize, ToSchema)]
pub struct LiveRecognition {
    pub id: u64,
    /// the camera id, or who sent the frame to `/v1/recognize`
    pub source: String,
    pub at: DateTime<Utc>,
    pub card: Card,
    #[serde(rename = "box")]
    #[schema(value_type = Object)]
    pub bbox: (),
    /// the face's track on its source, when it was followed across frames
    pub track: Option<u64>,
    /// where the face crop can be fetched while it is kept
    pub crop: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CameraHealth {
    pub id: String,
    pub source: String,
    /// "waiting" (push: no frame yet), "connecting", "streaming", "retrying", "finished"
    pub state: String,
    /// the last error, when retrying
    pub error: Option<String>,
    pub frames_in: u64,
    pub frames_dropped: u64,
    pub frames_skipped: u64,
    /// frames through recognition
    pub frames_analysed: u64,
    /// frames per second from the source, and through recognition (recent average)
    pub fps_in: f32,
    pub fps_analysed: f32,
    pub last_frame_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct TerminalHealth {
    pub id: String,
    pub cameras: Vec<String>,
    /// event streams opened with a terminal key (0: the glasses are off or not connected)
    pub glasses: usize,
    /// other open streams: the console's previews
    pub previews: usize,
}

/// Who changed what, when.
#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub who: String,
    pub what: String,
    pub old: String,
    pub new: String,
}

/// One line of a basket at the till.
#[derive(Serialize, ToSchema)]
pub struct BasketItem {
    pub sku: String,
    pub quantity: u32,
    /// price per unit in the smallest currency unit (cents, fen)
    pub unit_price_cents: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ImportReport {
    pub imported: usize,
    pub errors: Vec<RowError>,
}

#[derive(Serialize, ToSchema)]
pub struct RowError {
    /// "line 7" (CSV) or "item 3" (JSON)
    pub at: String,
    pub error: String,
}

/// Score distributions, error rates and the threshold that meets the target.
#[derive(Serialize, ToSchema)]
pub struct Calibration {
    pub people: usize,
    /// people with 2+ embeddings: the genuine scores come from them
    pub people_with_pairs: usize,
    pub genuine_pairs: usize,
    pub impostor_comparisons: usize,
    /// the gallery size the wrong-name rate is for
    pub customers: usize,
    /// histogram bins of width `bin_width` from `bin_start`
    pub bin_start: f32,
    pub bin_width: f32,
    pub genuine_histogram: Vec<u32>,
    pub impostor_histogram: Vec<u32>,
    pub curve: Vec<Point>,
    pub eer: Option<Point>,
    /// the target wrong-name rate per stranger
    pub target_wrong_name: f64,
    /// the lowest threshold whose estimated wrong-name rate is at or under the target
    pub recommended_threshold: Option<f32>,
    pub current: Current,
    /// what the estimates cannot tell, in words
    pub warnings: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Point {
    pub threshold: f32,
    /// impostor comparisons at or above the threshold
    pub far: f64,
    /// genuine comparisons below the threshold
    pub frr: f64,
    /// chance a stranger is greeted by some customer's name
    pub wrong_name: f64,
}

/// The configured rules applied to each genuine probe.
#[derive(Serialize, ToSchema)]
pub struct Current {
    pub threshold: f32,
    pub margin: f32,
    pub at_threshold: Point,
    pub probes: usize,
    pub right_name: usize,
    pub below_threshold: usize,
    /// above the threshold but refused by the margin rule
    pub ambiguous: usize,
    pub wrong_name: usize,
}
