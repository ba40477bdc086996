//! Frame → faces → decisions → cards: what a camera or a pair of glasses sees, recognised.
//! Reads only: the gallery's matching never waits for a write.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use image::RgbImage;
use serde::Serialize;

use super::EngineError;
use super::faces::{FaceReader, record_stage};
use crate::crm::{Card, Crm, CrmError};
use crate::gallery::{Decision, Gallery};
use crate::live::LiveFeed;
use crate::vision::{BBox, Quality};

/// One face in a frame and what was made of it.
#[derive(Debug, Clone, Serialize)]
pub struct Sighting {
    #[serde(rename = "box")]
    pub bbox: BBox,
    pub detector_score: f32,
    pub quality: Quality,
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
    faces: Arc<FaceReader>,
    gallery: Arc<Gallery>,
    crm: Arc<Crm>,
    live: Arc<LiveFeed>,
}

impl Recognizer {
    pub fn new(
        faces: Arc<FaceReader>,
        gallery: Arc<Gallery>,
        crm: Arc<Crm>,
        live: Arc<LiveFeed>,
    ) -> Self {
        Recognizer {
            faces,
            gallery,
            crm,
            live,
        }
    }

    /// Every face in an encoded frame, recognised.
    pub fn recognize_bytes(&self, bytes: &[u8], source: &str) -> Result<Recognition, EngineError> {
        let frame = self.faces.decode("frame", bytes)?;
        self.recognize(&frame, source)
    }

    /// Every face in a frame, recognised; `source` (a camera, a caller) is what the console
    /// shows it came from.
    pub fn recognize(&self, frame: &RgbImage, source: &str) -> Result<Recognition, EngineError> {
        let faces = self.faces.analyse(frame)?;
        let started = Instant::now();
        let now = Utc::now();
        let mut sightings = Vec::with_capacity(faces.len());
        for face in faces {
            let outcome = if !face.quality.passed {
                // a blurred or turned face is where wrong names come from: say nothing
                Outcome::Unknown {
                    reason: format!("face quality too low: {}", face.quality.reasons.join("; ")),
                }
            } else {
                match self.gallery.identify(&face.embedding)? {
                    Decision::Known { best, .. } => {
                        match self.crm.card(best.customer_id, best.score, now) {
                            Ok(card) => {
                                self.live.show(source, &card, frame, face.bbox);
                                Outcome::Known { card }
                            }
                            // erased between the match and the card: nobody to greet
                            Err(CrmError::UnknownCustomer(_)) => Outcome::Unknown {
                                reason: "the customer was just erased".into(),
                            },
                            Err(e) => return Err(e.into()),
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
}
