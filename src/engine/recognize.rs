//! Frame → faces → decisions → cards: what a camera or a pair of glasses sees, recognised.
//! Reads only: the gallery's matching never waits for a write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use image::RgbImage;
use serde::Serialize;

use super::EngineError;
use super::faces::{FaceReader, record_stage};
use crate::crm::{Card, Crm, CrmError};
use crate::gallery::{Decision, Gallery};
use crate::live::{LiveFeed, Seen};
use crate::vision::{BBox, Purpose, Quality, TrackSettings, Tracker};

/// A caller of `recognize` silent for this long has its tracks forgotten.
const CALLER_IDLE: Duration = Duration::from_secs(60);

/// One face in a frame and what was made of it.
#[derive(Debug, Clone, Serialize)]
pub struct Sighting {
    #[serde(rename = "box")]
    pub bbox: BBox,
    pub detector_score: f32,
    pub quality: Quality,
    /// the face's track across this caller's frames (camera frames only)
    pub track: Option<u64>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Known { card: Card },
    Unknown { reason: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Recognition {
    pub width: u32,
    pub height: u32,
    /// largest face first
    pub faces: Vec<Sighting>,
}

pub struct Recognizer {
    pub(super) faces: Arc<FaceReader>,
    pub(super) gallery: Arc<Gallery>,
    crm: Arc<Crm>,
    live: Arc<LiveFeed>,
    /// per caller (a pair of glasses) of `recognize` on camera frames: its faces' tracks, so
    /// that its answers carry track ids
    callers: Mutex<HashMap<String, (Tracker, Instant)>>,
    tracking: TrackSettings,
    started: Instant,
}

impl Recognizer {
    pub fn new(
        faces: Arc<FaceReader>,
        gallery: Arc<Gallery>,
        crm: Arc<Crm>,
        live: Arc<LiveFeed>,
        tracking: TrackSettings,
    ) -> Self {
        Recognizer {
            faces,
            gallery,
            crm,
            live,
            callers: Mutex::new(HashMap::new()),
            tracking,
            started: Instant::now(),
        }
    }

    /// The track id of each face, on `source`'s own tracker.
    fn track_ids(&self, source: &str, boxes: &[BBox]) -> Vec<u64> {
        let now = Instant::now();
        let t = now.duration_since(self.started).as_secs_f64();
        let mut callers = self.callers.lock().unwrap_or_else(|p| p.into_inner());
        callers.retain(|_, (_, used)| now.duration_since(*used) < CALLER_IDLE);
        let (tracker, used) = callers
            .entry(source.to_owned())
            .or_insert_with(|| (Tracker::new(self.tracking.clone()), now));
        *used = now;
        tracker.update(t, boxes).0
    }

    /// Every face in an encoded frame, recognised.
    pub fn recognize_bytes(
        &self,
        bytes: &[u8],
        source: &str,
        purpose: Purpose,
    ) -> Result<Recognition, EngineError> {
        let frame = self.faces.decode("frame", bytes)?;
        self.recognize(&frame, source, purpose)
    }

    /// Every face in a frame, recognised on its own; `source` (a camera, a caller) is what the
    /// console shows it came from.
    pub fn recognize(
        &self,
        frame: &RgbImage,
        source: &str,
        purpose: Purpose,
    ) -> Result<Recognition, EngineError> {
        let faces = self.faces.analyse(frame, purpose)?;
        let started = Instant::now();
        let tracks: Vec<Option<u64>> = match purpose {
            Purpose::Camera => {
                let boxes: Vec<BBox> = faces.iter().map(|f| f.bbox).collect();
                self.track_ids(source, &boxes)
                    .into_iter()
                    .map(Some)
                    .collect()
            }
            Purpose::Still => vec![None; faces.len()],
        };
        let mut sightings = Vec::with_capacity(faces.len());
        for (face, track) in faces.into_iter().zip(tracks) {
            let outcome = if !face.quality.passed {
                // a blurred or turned face is where wrong names come from: say nothing
                Outcome::Unknown {
                    reason: format!("face quality too low: {}", face.quality.reasons.join("; ")),
                }
            } else {
                match self.gallery.identify(&face.embedding)? {
                    Decision::Known { best, .. } => {
                        let seen = (frame, face.bbox, track);
                        match self.greet(best.customer_id, best.score, seen, source)? {
                            Some(card) => Outcome::Known { card },
                            None => Outcome::Unknown {
                                reason: "the customer was just erased".into(),
                            },
                        }
                    }
                    Decision::Unknown { reason, .. } => Outcome::Unknown { reason },
                }
            };
            let label = match outcome {
                Outcome::Known { .. } => "known",
                Outcome::Unknown { .. } => "unknown",
            };
            metrics::counter!("greeter_faces_total", "outcome" => label).increment(1);
            sightings.push(Sighting {
                bbox: face.bbox,
                detector_score: face.score,
                quality: face.quality,
                track,
                outcome,
            });
        }
        record_stage("match", started.elapsed());
        Ok(Recognition {
            width: frame.width(),
            height: frame.height(),
            faces: sightings,
        })
    }

    /// The card of a matched customer, also shown on the live page; `None` when the customer
    /// was erased between the match and the card (nobody to greet).
    pub(super) fn greet(
        &self,
        customer_id: i64,
        score: f32,
        (frame, bbox, track): (&RgbImage, BBox, Option<u64>),
        source: &str,
    ) -> Result<Option<Card>, EngineError> {
        match self.crm.card(customer_id, score, Utc::now()) {
            Ok(card) => {
                self.live.show(Seen {
                    source,
                    card: &card,
                    frame,
                    bbox,
                    track,
                });
                Ok(Some(card))
            }
            Err(CrmError::UnknownCustomer(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
