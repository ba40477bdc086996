//! The enrolment rules: what a portrait must be (a passing face of the right model, not
//! someone else's face) and which portraits a customer keeps under the cap.

use chrono::Utc;
use image::RgbImage;
use serde::Serialize;

use super::store::{Consent, NewPortrait, Portrait, Store};
use super::{Gallery, GalleryError};
use crate::vision::{FaceObservation, Quality, face_crop_jpeg};

/// Why an enrolment was refused: the caller's to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("a customer needs a name")]
    EmptyName,
    #[error("no consent recorded: enrolment needs the customer's consent (how it was given)")]
    NoConsent,
    #[error("consent {0:?} says no: enrolment needs the customer's consent")]
    ConsentRefused(String),
    #[error("a name of {chars} characters is too long (at most {MAX_NAME_CHARS})")]
    LongName { chars: usize },
    #[error("no portraits given")]
    NoPortraits,
    #[error("{origin}: face quality too low ({})", reasons.join("; "))]
    Quality {
        origin: String,
        reasons: Vec<String>,
    },
    #[error(
        "{a} and {b} do not look like the same person (similarity {score:.3} < {floor}); use force to enrol anyway"
    )]
    Disagree {
        a: String,
        b: String,
        score: f32,
        floor: f32,
    },
    #[error(
        "{origin}: looks like existing customer {customer_id} ({name}), similarity {score:.3}; use force to enrol anyway"
    )]
    Duplicate {
        origin: String,
        customer_id: i64,
        name: String,
        score: f32,
    },
}

/// A face offered as a portrait.
pub struct PortraitInput {
    pub face: FaceObservation,
    /// where it came from (camera id, file name)
    pub source: String,
    pub crop_jpeg: Option<Vec<u8>>,
}

impl PortraitInput {
    /// A face of `frame` as a portrait, with its crop kept for re-embedding.
    pub fn from_frame(frame: &RgbImage, face: FaceObservation, source: String) -> Self {
        let crop_jpeg = face_crop_jpeg(frame, face.bbox, None).unwrap_or_else(|e| {
            tracing::warn!(error = %e, %source, "face crop not kept");
            None
        });
        PortraitInput {
            face,
            source,
            crop_jpeg,
        }
    }
}

pub struct NewCustomer {
    pub name: String,
    /// a stable key from the caller (an import folder, a POS id) making enrolment idempotent
    pub external_ref: Option<String>,
    pub consent_how: String,
    pub consent_by: String,
    pub portraits: Vec<PortraitInput>,
    /// enrol even if a portrait looks like another customer
    pub force: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Enrolled {
    pub customer_id: i64,
    pub portrait_ids: Vec<i64>,
    /// lower-quality portraits dropped to respect the per-customer cap
    pub dropped_portraits: Vec<i64>,
}

/// One number to rank portraits of the same customer by.
pub fn quality_score(q: &Quality) -> f32 {
    let size = q.face_px / (q.face_px + 64.0);
    let sharp = q.sharpness / (q.sharpness + 50.0);
    q.detector_score * q.frontalness * size * sharp
}

/// Whether a customer with this name and consent may be enrolled at all: the first check, made
/// before any image is read.
pub fn check_name_and_consent(name: &str, consent: &str) -> Result<(), Refusal> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Refusal::EmptyName);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Refusal::LongName {
            chars: name.chars().count(),
        });
    }
    let consent = consent.trim();
    if consent.is_empty() {
        return Err(Refusal::NoConsent);
    }
    if !consent_given(consent) {
        return Err(Refusal::ConsentRefused(consent.to_owned()));
    }
    Ok(())
}

/// Whether a consent field records consent, rather than its absence or a refusal.
pub fn consent_given(consent: &str) -> bool {
    let consent = consent.trim();
    !consent.is_empty() && !REFUSALS.contains(&consent.to_lowercase().as_str())
}

/// A name is a line on a glasses display, inside a 1 KiB card.
pub const MAX_NAME_CHARS: usize = 100;

/// Consent fields that say the opposite; consent is how it was given ("signed at till 3").
const REFUSALS: &[&str] = &[
    "no",
    "n",
    "false",
    "0",
    "none",
    "refused",
    "declined",
    "withdrawn",
    "denied",
    "not given",
    "否",
    "不",
    "无",
    "没有",
    "拒绝",
    "不同意",
];

/// A new customer's trimmed name and consent, or why they cannot be enrolled.
pub(super) fn named_with_consent(customer: &NewCustomer) -> Result<(String, Consent), Refusal> {
    check_name_and_consent(&customer.name, &customer.consent_how)?;
    let name = customer.name.trim();
    Ok((
        name.to_owned(),
        Consent {
            how: customer.consent_how.trim().to_owned(),
            by: customer.consent_by.clone(),
            at: Utc::now(),
        },
    ))
}

impl Gallery {
    /// Quality gate and duplicate check; the survivors as rows to store.
    pub(super) fn admissible(
        &self,
        store: &Store,
        owner: Option<i64>,
        portraits: Vec<PortraitInput>,
        force: bool,
    ) -> Result<Vec<NewPortrait>, GalleryError> {
        if portraits.is_empty() {
            return Err(Refusal::NoPortraits.into());
        }
        if !force {
            self.one_person(&portraits)?;
        }
        let rules = self.rules();
        let mut out = Vec::with_capacity(portraits.len());
        for p in portraits {
            let q = &p.face.quality;
            if !q.passed {
                return Err(Refusal::Quality {
                    origin: p.source,
                    reasons: q.reasons.clone(),
                }
                .into());
            }
            if p.face.embedding.len() != self.dimensions as usize {
                return Err(GalleryError::Dimensions {
                    expected: self.dimensions as usize,
                    got: p.face.embedding.len(),
                });
            }
            if !force {
                let ranked = self.vectors.read().ranked(&p.face.embedding, rules.top_k)?;
                if let Some(other) = ranked
                    .iter()
                    .find(|c| Some(c.customer_id) != owner && c.score >= rules.threshold)
                {
                    let name = store
                        .customer(other.customer_id)?
                        .map(|c| c.display_name)
                        .unwrap_or_default();
                    return Err(Refusal::Duplicate {
                        origin: p.source,
                        customer_id: other.customer_id,
                        name,
                        score: other.score,
                    }
                    .into());
                }
            }
            out.push(NewPortrait {
                quality: quality_score(q),
                quality_detail: serde_json::to_string(q).expect("plain data serialises"),
                embedding: p.face.embedding,
                source: p.source,
                crop_jpeg: if self.settings.keep_crops {
                    p.crop_jpeg
                } else {
                    None
                },
            });
        }
        Ok(out)
    }

    /// Portraits given together must be of one person: every pair at least
    /// `min_portrait_agreement` alike, a floor below which no two photos of one person fell.
    fn one_person(&self, portraits: &[PortraitInput]) -> Result<(), Refusal> {
        let floor = self.settings.min_portrait_agreement;
        for (i, a) in portraits.iter().enumerate() {
            for b in &portraits[i + 1..] {
                let score = crate::vision::similarity(&a.face.embedding, &b.face.embedding);
                if score < floor {
                    return Err(Refusal::Disagree {
                        a: a.source.clone(),
                        b: b.source.clone(),
                        score,
                        floor,
                    });
                }
            }
        }
        Ok(())
    }

    /// The best new portraits that fit under the cap next to `existing`, and the existing ones
    /// to drop to make room for better new ones.
    pub(super) fn cap(
        &self,
        mut new: Vec<NewPortrait>,
        existing: Vec<Portrait>,
    ) -> (Vec<NewPortrait>, Vec<i64>) {
        let max = self.settings.max_portraits_per_customer.max(1);
        enum Slot {
            Old(i64),
            New(NewPortrait),
        }
        let mut all: Vec<(f32, Slot)> = existing
            .into_iter()
            .map(|p| (p.quality, Slot::Old(p.id)))
            .collect();
        all.extend(new.drain(..).map(|p| (p.quality, Slot::New(p))));
        all.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (mut kept, mut dropped) = (Vec::new(), Vec::new());
        for (rank, (_, slot)) in all.into_iter().enumerate() {
            match (slot, rank < max) {
                (Slot::New(p), true) => kept.push(p),
                (Slot::Old(id), false) => dropped.push(id),
                _ => {}
            }
        }
        (kept, dropped)
    }
}
