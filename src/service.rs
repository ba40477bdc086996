//! The store service's engine, below HTTP: frames in (from cameras or requests), faces through
//! the pipeline, matched against the gallery, cards out (to the caller or pushed to terminals).
//! Inference is CPU-bound and runs off the async runtime, behind a bounded gate: a few frames
//! at a time, a short queue for requests, and "overloaded" beyond it instead of an endless queue.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use image::RgbImage;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::calibration::{self, Calibration};
use crate::capture::{self, CameraHealth, FrameSlot, Pixels};
use crate::config::Settings;
use crate::crm::{Card, Crm, CrmError};
use crate::gallery::{
    BasketItem, Decision, Enrolled, Gallery, GalleryError, MatchRules, NewCustomer, PortraitInput,
    Refusal,
};
use crate::live::LiveFeed;
use crate::terminals::Terminals;
use crate::vision::decode::{self, DecodeError};
use crate::vision::{BBox, FaceObservation, Pipeline, Quality, VisionError, embedder_identity};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{origin}: cannot decode the image")]
    Decode {
        origin: String,
        #[source]
        source: DecodeError,
    },
    #[error("{origin}: no face found")]
    NoFace { origin: String },
    #[error("{0}")]
    Invalid(String),
    #[error("no camera {0:?}")]
    UnknownCamera(String),
    #[error("busy: too many frames waiting for analysis")]
    Overloaded,
    #[error("face analysis failed")]
    Vision(#[from] VisionError),
    #[error(transparent)]
    Gallery(#[from] GalleryError),
    #[error(transparent)]
    Crm(#[from] CrmError),
    #[error("a worker thread panicked")]
    Panicked(#[source] tokio::task::JoinError),
}

impl From<Refusal> for ServiceError {
    fn from(refusal: Refusal) -> Self {
        ServiceError::Gallery(refusal.into())
    }
}

/// An uploaded image and where it came from (a form field's file name, a camera).
pub struct Photo {
    pub origin: String,
    pub bytes: Bytes,
}

/// One face in a frame and what the service made of it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Sighting {
    #[serde(rename = "box")]
    #[schema(value_type = Object)]
    pub bbox: BBox,
    pub detector_score: f32,
    #[schema(value_type = Object)]
    pub quality: Quality,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Known { card: Card },
    Unknown { reason: String },
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Recognition {
    pub width: u32,
    pub height: u32,
    /// largest face first
    pub faces: Vec<Sighting>,
}

pub struct Enrolment {
    pub name: String,
    /// what is known for suggestions: "female"/"male", year of birth, body type
    pub gender: Option<String>,
    pub birth_year: Option<i32>,
    pub body_type: Option<String>,
    pub consent: String,
    pub consent_by: String,
    pub external_ref: Option<String>,
    pub force: bool,
    pub photos: Vec<Photo>,
}

pub struct Checkout {
    pub customer_id: Option<i64>,
    pub portrait: Option<Photo>,
    pub basket: Vec<BasketItem>,
    /// how the customer consented to being enrolled or to a new portrait
    pub consent: Option<String>,
    /// the name to enrol an unknown customer under (with consent)
    pub name: Option<String>,
    pub recorded_by: String,
    pub camera: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

pub struct Service {
    pub settings: Settings,
    pipeline: Pipeline,
    gallery: Gallery,
    crm: Crm,
    terminals: Terminals,
    live: LiveFeed,
    cameras: BTreeMap<String, Arc<FrameSlot>>,
    workers: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
}

impl Service {
    /// Loads the models and opens the gallery (rebuilding its index if needed).
    pub fn load(settings: Settings) -> anyhow::Result<Self> {
        let pipeline = Pipeline::load(&settings)?;
        let (model_id, dimensions) = embedder_identity(&settings)?;
        let (gallery, report) = Gallery::open(
            settings.gallery.clone(),
            settings.matching.clone(),
            &model_id,
            dimensions,
        )?;
        tracing::info!(portraits = report.portraits, rebuilt = ?report.rebuilt, "gallery open");
        let crm = Crm::open(&settings.gallery.data_dir, settings.crm.clone())?;
        let server = &settings.server;
        let cameras = settings
            .cameras
            .iter()
            .map(|c| (c.id.clone(), Arc::new(FrameSlot::new(c))))
            .collect();
        Ok(Service {
            terminals: Terminals::new(
                &settings.terminals,
                std::time::Duration::from_secs(server.announce_cooldown_s),
            ),
            live: LiveFeed::default(),
            workers: Arc::new(Semaphore::new(server.inference_workers)),
            admitted: Arc::new(Semaphore::new(
                server.inference_workers + server.inference_queue,
            )),
            cameras,
            pipeline,
            gallery,
            crm,
            settings,
        })
    }

    pub fn gallery(&self) -> &Gallery {
        &self.gallery
    }

    pub fn crm(&self) -> &Crm {
        &self.crm
    }

    pub fn terminals(&self) -> &Terminals {
        &self.terminals
    }

    pub fn live(&self) -> &LiveFeed {
        &self.live
    }

    pub fn camera_health(&self) -> Vec<CameraHealth> {
        self.cameras.values().map(|c| c.health()).collect()
    }

    /// Starts every camera's source and its recognition loop, and the periodic refresh of the
    /// store statistics behind segments and best-sellers.
    pub fn start(self: &Arc<Self>, stop: &CancellationToken) {
        let service = self.clone();
        let stop_refresh = stop.child_token();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
            every.tick().await;
            loop {
                tokio::select! {
                    _ = stop_refresh.cancelled() => return,
                    _ = every.tick() => {}
                }
                if let Err(e) = service.blocking(|s| Ok(s.crm.refresh_stats()?)).await {
                    tracing::warn!(error = %crate::telemetry::chain(&e), "store statistics not refreshed");
                }
            }
        });
        for camera in &self.settings.cameras {
            let slot = self.cameras[&camera.id].clone();
            capture::spawn_source(camera, slot.clone(), stop.child_token());
            tokio::spawn(
                self.clone()
                    .watch(camera.id.clone(), slot, stop.child_token()),
            );
        }
    }

    /// A frame pushed over HTTP into a push camera's queue.
    pub fn push_frame(&self, camera: &str, bytes: Bytes) -> Result<capture::Offer, ServiceError> {
        let slot = self
            .cameras
            .get(camera)
            .ok_or_else(|| ServiceError::UnknownCamera(camera.to_owned()))?;
        Ok(slot.offer(capture::Frame::new(Pixels::Encoded(bytes))))
    }

    /// Runs `job` on a blocking thread as one of the inference workers. A request waits only if
    /// the queue has room, else it is refused as overloaded; cameras always wait (their own
    /// queue already drops stale frames).
    pub async fn infer<T: Send + 'static>(
        self: &Arc<Self>,
        from_request: bool,
        job: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let _admission = if from_request {
            let permit = self.admitted.clone().try_acquire_owned().map_err(|_| {
                metrics::counter!("greeter_overloaded_total").increment(1);
                ServiceError::Overloaded
            })?;
            self.record_queue_depth();
            Some(permit)
        } else {
            None
        };
        let _worker = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .expect("the worker semaphore is never closed");
        let outcome = self.blocking(job).await;
        drop(_admission);
        self.record_queue_depth();
        outcome
    }

    fn record_queue_depth(&self) {
        let capacity =
            self.settings.server.inference_workers + self.settings.server.inference_queue;
        let in_use = capacity - self.admitted.available_permits();
        metrics::gauge!("greeter_requests_in_flight").set(in_use as f64);
    }

    /// Runs quick gallery work (a query, a delete) on a blocking thread, keeping the span.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        job: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let service = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| job(&service)))
            .await
            .map_err(ServiceError::Panicked)?
    }

    fn decode(&self, origin: &str, bytes: &[u8]) -> Result<RgbImage, ServiceError> {
        let started = Instant::now();
        let frame =
            decode::decode(bytes, self.settings.vision.max_image_pixels).map_err(|source| {
                ServiceError::Decode {
                    origin: origin.to_owned(),
                    source,
                }
            })?;
        record_stage("decode", started.elapsed());
        Ok(frame)
    }

    fn analyse(&self, frame: &RgbImage) -> Result<Vec<FaceObservation>, ServiceError> {
        let analysis = self.pipeline.process(frame)?;
        let times = analysis.times;
        record_stage("detect", times.detect);
        record_stage("landmarks", times.landmarks);
        record_stage("align", times.align);
        record_stage("embed", times.embed);
        let mut faces = analysis.faces;
        faces.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
        Ok(faces)
    }

    /// Every face in an uploaded frame, recognised.
    pub fn recognize_bytes(&self, bytes: &[u8], source: &str) -> Result<Recognition, ServiceError> {
        let frame = self.decode("frame", bytes)?;
        self.recognize(&frame, source)
    }

    /// Every face in a frame, recognised; `source` (a camera, a caller) is what the console
    /// shows it came from.
    pub fn recognize(&self, frame: &RgbImage, source: &str) -> Result<Recognition, ServiceError> {
        let faces = self.analyse(frame)?;
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
                        let card = self.card(best.customer_id, best.score, now)?;
                        self.live.show(source, &card, frame, face.bbox);
                        Outcome::Known { card }
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

    fn card(
        &self,
        customer_id: i64,
        score: f32,
        now: chrono::DateTime<Utc>,
    ) -> Result<Card, ServiceError> {
        Ok(self.crm.card(customer_id, score, now)?)
    }

    /// The card of a customer as the glasses would show it (score 1: not from a face).
    pub fn card_of(&self, customer_id: i64) -> Result<Card, ServiceError> {
        self.card(customer_id, 1.0, Utc::now())
    }

    /// The largest face of a photo as a portrait.
    fn portrait(&self, photo: &Photo) -> Result<PortraitInput, ServiceError> {
        let frame = self.decode(&photo.origin, &photo.bytes)?;
        let face =
            self.analyse(&frame)?
                .into_iter()
                .next()
                .ok_or_else(|| ServiceError::NoFace {
                    origin: photo.origin.clone(),
                })?;
        Ok(PortraitInput::from_frame(
            &frame,
            face,
            photo.origin.clone(),
        ))
    }

    fn portraits(&self, photos: &[Photo]) -> Result<Vec<PortraitInput>, ServiceError> {
        if photos.is_empty() {
            return Err(Refusal::NoPortraits.into());
        }
        photos.iter().map(|p| self.portrait(p)).collect()
    }

    pub fn enrol(&self, enrolment: Enrolment) -> Result<Enrolled, ServiceError> {
        // refuse before the expensive part
        if enrolment.name.trim().is_empty() {
            return Err(Refusal::EmptyName.into());
        }
        if enrolment.consent.trim().is_empty() {
            return Err(Refusal::NoConsent.into());
        }
        if let Some(g) = &enrolment.gender
            && !["female", "male"].contains(&g.as_str())
        {
            return Err(ServiceError::Invalid(format!(
                "gender {g:?} is not female or male (leave it out when unknown)"
            )));
        }
        let portraits = self.portraits(&enrolment.photos)?;
        let enrolled = self.gallery.enrol(NewCustomer {
            name: enrolment.name,
            external_ref: enrolment.external_ref,
            consent_how: enrolment.consent,
            consent_by: enrolment.consent_by,
            portraits,
            force: enrolment.force,
        })?;
        self.gallery.save_index()?;
        self.crm.set_attributes(
            enrolled.customer_id,
            enrolment.gender.as_deref(),
            enrolment.birth_year,
            enrolment.body_type.as_deref(),
        )?;
        Ok(enrolled)
    }

    pub fn add_portraits(
        &self,
        customer_id: i64,
        photos: &[Photo],
        force: bool,
    ) -> Result<Enrolled, ServiceError> {
        // an unknown customer is a 404 before any image work
        self.gallery.customer(customer_id)?;
        let portraits = self.portraits(photos)?;
        let added = self.gallery.add_portraits(customer_id, portraits, force)?;
        self.gallery.save_index()?;
        Ok(added)
    }

    pub fn delete_customer(&self, customer_id: i64) -> Result<(), ServiceError> {
        self.gallery.delete_customer(customer_id)?;
        self.gallery.save_index()?;
        self.live.forget(customer_id);
        Ok(())
    }

    /// Score distributions and error rates from the enrolled customers with 2+ portraits, for
    /// this gallery's size and a target wrong-name rate per stranger.
    pub fn calibration(&self, target_wrong_name: f64) -> Result<Calibration, ServiceError> {
        if !(target_wrong_name > 0.0 && target_wrong_name < 1.0) {
            return Err(ServiceError::Invalid(
                "target must be a rate between 0 and 1, e.g. 0.0001".into(),
            ));
        }
        let people = calibration::enrolled_people(&self.gallery)?;
        let customers = people.len();
        Ok(calibration::calibrate(
            &people,
            &self.gallery.rules(),
            customers,
            target_wrong_name,
        ))
    }

    /// New threshold and margin for every later match, saved and audited.
    pub fn set_matching(
        &self,
        threshold: f32,
        margin: f32,
        who: &str,
    ) -> Result<MatchRules, ServiceError> {
        if !(0.0..=1.0).contains(&threshold) || !(0.0..=1.0).contains(&margin) {
            return Err(ServiceError::Invalid(format!(
                "threshold ({threshold}) and margin ({margin}) must be within 0..=1"
            )));
        }
        let old = self.gallery.set_rules(threshold, margin, who)?;
        tracing::info!(
            who,
            old.threshold,
            old.margin,
            threshold,
            margin,
            "matching rules changed"
        );
        Ok(self.gallery.rules())
    }

    /// Records a sale: finds the customer (by id, or by the checkout camera's portrait), enrols
    /// an unknown customer or adds the portrait when there is consent, then records the visit
    /// and the basket.
    pub fn checkout(&self, checkout: Checkout) -> Result<CheckoutReceipt, ServiceError> {
        if checkout.customer_id.is_none() && checkout.portrait.is_none() {
            return Err(ServiceError::Invalid(
                "a checkout needs a customer_id or a portrait".into(),
            ));
        }
        if let Some(bad) = checkout
            .basket
            .iter()
            .find(|i| i.sku.trim().is_empty() || i.quantity == 0 || i.unit_price_cents < 0)
        {
            return Err(ServiceError::Invalid(format!(
                "basket item {bad:?}: needs a sku, a quantity of at least 1 and a price of at least 0"
            )));
        }
        let consent = checkout
            .consent
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        if let Some(id) = checkout.customer_id {
            self.gallery.customer(id)?;
        }
        let portrait = match &checkout.portrait {
            None => None,
            Some(photo) => match self.portrait(photo) {
                Ok(p) => Some(p),
                // the till knows who it is: the sale still counts
                Err(ServiceError::NoFace { .. }) if checkout.customer_id.is_some() => None,
                Err(e) => return Err(e),
            },
        };
        let mut receipt = CheckoutReceipt {
            recorded: false,
            customer_id: checkout.customer_id,
            visit_id: None,
            enrolled: false,
            portrait: match (&checkout.portrait, &portrait) {
                (None, _) => "none".into(),
                (Some(_), None) => "not added: no face found".into(),
                (Some(_), Some(_)) => "not added: no consent".into(),
            },
            card: None,
        };
        if receipt.customer_id.is_none()
            && let Some(p) = &portrait
            && let Decision::Known { best, .. } = self.gallery.identify(&p.face.embedding)?
        {
            receipt.customer_id = Some(best.customer_id);
        }
        match (receipt.customer_id, portrait, consent) {
            (None, Some(portrait), Some(consent)) => {
                let name = checkout
                    .name
                    .filter(|n| !n.trim().is_empty())
                    .ok_or_else(|| {
                        ServiceError::Invalid(
                            "an unknown customer can only be enrolled with a name".into(),
                        )
                    })?;
                let enrolled = self.gallery.enrol(NewCustomer {
                    name,
                    external_ref: None,
                    consent_how: consent.to_owned(),
                    consent_by: checkout.recorded_by.clone(),
                    portraits: vec![portrait],
                    force: false,
                })?;
                self.gallery.save_index()?;
                receipt.customer_id = Some(enrolled.customer_id);
                receipt.enrolled = true;
                receipt.portrait = "enrolled".into();
            }
            (None, _, _) => return Ok(receipt),
            (Some(id), Some(portrait), Some(_)) => {
                receipt.portrait = match self.gallery.add_portraits(id, vec![portrait], false) {
                    Ok(added) if added.portrait_ids.is_empty() => {
                        "not added: the customer's portraits are better".into()
                    }
                    Ok(_) => {
                        self.gallery.save_index()?;
                        "added".into()
                    }
                    Err(GalleryError::Refused(refusal)) => format!("not added: {refusal}"),
                    Err(e) => return Err(e.into()),
                };
            }
            (Some(_), _, _) => {}
        }
        let id = receipt.customer_id.expect("set above");
        receipt.visit_id = Some(self.gallery.record_visit(
            id,
            checkout.camera.as_deref(),
            &checkout.basket,
        )?);
        receipt.recorded = true;
        receipt.card = Some(self.card_of(id)?);
        Ok(receipt)
    }

    /// A camera's recognition loop: the newest frame, through the pipeline, cards to the
    /// terminals bound to the camera.
    async fn watch(self: Arc<Self>, camera: String, slot: Arc<FrameSlot>, stop: CancellationToken) {
        loop {
            let frame = tokio::select! {
                _ = stop.cancelled() => return,
                frame = slot.take() => frame,
            };
            let (arrived, arrived_at) = (frame.arrived, frame.arrived_at);
            let origin = camera.clone();
            let recognition = self
                .infer(false, move |service| match frame.pixels {
                    Pixels::Encoded(bytes) => {
                        let image = service.decode(&origin, &bytes)?;
                        service.recognize(&image, &origin)
                    }
                    Pixels::Rgb(image) => service.recognize(&image, &origin),
                })
                .await;
            let recognition = match recognition {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(camera = %camera, error = %crate::telemetry::chain(&e), "camera frame not analysed");
                    continue;
                }
            };
            for face in recognition.faces {
                if let Outcome::Known { card } = face.outcome {
                    let told = self
                        .terminals
                        .announce(&camera, &card, face.bbox, arrived_at, arrived);
                    if told > 0 {
                        metrics::counter!("greeter_announcements_total").increment(told as u64);
                        metrics::histogram!("greeter_frame_to_push_seconds")
                            .record(arrived.elapsed().as_secs_f64());
                    }
                }
            }
        }
    }
}

fn record_stage(stage: &'static str, elapsed: std::time::Duration) {
    metrics::histogram!("greeter_stage_seconds", "stage" => stage).record(elapsed.as_secs_f64());
}
