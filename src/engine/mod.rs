//! The store's engine, below HTTP and the command line: one wiring of models, gallery, CRM,
//! cameras and terminals, in rooms that each do one job.
//!
//! - `gate`: CPU-bound work off the async runtime, bounded, and given up cleanly at a deadline
//! - `faces`: bytes → decoded frame → faces (and a photo's largest face as a portrait)
//! - `recognize`: frame → decisions → cards (reads only)
//! - `customers`: enrolment, portraits, erasure; `checkout`: the till
//! - `admin`: calibration, matching rules, audit, catalogue
//! - `follow`: a camera's frames as tracks, one decision per track
//! - `cameras`: sources feeding recognition, cards to the terminals
//!
//! `api` and `cli` call these rooms; nothing here knows HTTP or argument parsing.

pub mod admin;
pub mod cameras;
pub mod checkout;
pub mod customers;
pub mod faces;
pub mod follow;
pub mod gate;
pub mod idempotency;
pub mod recognize;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::capture::CameraSettings;
use crate::crm::{Crm, CrmError, CrmSettings};
use crate::db::DataDirLock;
use crate::gallery::{Gallery, GalleryError, GallerySettings, MatchRules, Refusal};
use crate::live::LiveFeed;
use crate::terminals::{TerminalSettings, Terminals};
use crate::vision::decode::DecodeError;
use crate::vision::{Pipeline, RuntimeSettings, VisionError, VisionSettings, embedder_identity};

pub use admin::Admin;
pub use cameras::Cameras;
pub use checkout::{Checkout, CheckoutReceipt, Till};
pub use customers::{CustomerRecord, Customers, Enrolment};
pub use faces::{FaceReader, Photo};
pub use follow::{Followed, Follower, Greeting};
pub use gate::{Caller, Claim, Gate, GateSettings};
pub use recognize::{Outcome, Recognition, Recognizer, Sighting};

/// What the engine is built from; `config` assembles it from the layered settings.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub runtime: RuntimeSettings,
    pub vision: VisionSettings,
    pub matching: MatchRules,
    pub gallery: GallerySettings,
    pub crm: CrmSettings,
    pub gate: GateSettings,
    pub cameras: Vec<CameraSettings>,
    pub terminals: Vec<TerminalSettings>,
    /// a customer is announced to a terminal at most once in this long
    pub announce_cooldown: Duration,
    /// how often a changed vector index is saved (the store is saved at every write)
    pub index_save_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{origin}: cannot decode the image")]
    Decode {
        origin: String,
        #[source]
        source: DecodeError,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: no face found")]
    NoFace { origin: String },
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("no camera {0:?}")]
    UnknownCamera(String),
    #[error("busy: too many frames waiting for analysis")]
    Overloaded,
    #[error("the request took too long and was given up; nothing was changed")]
    TimedOut,
    #[error("the request was given up before its work started")]
    Abandoned,
    #[error("face analysis failed")]
    Vision(#[from] VisionError),
    #[error(transparent)]
    Gallery(#[from] GalleryError),
    #[error(transparent)]
    Crm(#[from] CrmError),
    #[error("a worker thread panicked")]
    Panicked(#[source] tokio::task::JoinError),
    #[error("cannot build the export archive")]
    Archive(#[source] std::io::Error),
    #[error("an Idempotency-Key is 1 to 200 printable characters")]
    BadIdempotencyKey,
    #[error("a request with this Idempotency-Key is still being answered: retry in a moment")]
    KeyInFlight,
    #[error("this Idempotency-Key was used for {endpoint}: use a new key for a new request")]
    KeyReused { endpoint: String },
}

/// A request the engine cannot act on as asked: the caller's to fix.
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    #[error("gender {0:?} is not female or male (leave it out when unknown)")]
    Gender(String),
    #[error("target must be a rate between 0 and 1, e.g. 0.0001 (got {0})")]
    TargetRate(f64),
    #[error(transparent)]
    Rules(crate::gallery::matching::BadRules),
    #[error("a checkout needs a customer_id or a portrait")]
    NobodyAtTheTill,
    #[error("an unknown customer can only be enrolled with a name")]
    NameNeeded,
    #[error("basket item {0:?}: needs a sku, a quantity of at least 1 and a price of at least 0")]
    BasketItem(crate::gallery::BasketItem),
}

impl From<Refusal> for EngineError {
    fn from(refusal: Refusal) -> Self {
        EngineError::Gallery(refusal.into())
    }
}

/// The rooms, wired once. Each is shared (`Arc`) with the tasks that need it.
pub struct Engine {
    pub gate: Arc<Gate>,
    pub recognizer: Arc<Recognizer>,
    pub customers: Arc<Customers>,
    pub till: Arc<Till>,
    pub admin: Arc<Admin>,
    pub cameras: Cameras,
    pub terminals: Arc<Terminals>,
    pub live: Arc<LiveFeed>,
    pub idempotency: idempotency::Idempotency,
    pub(crate) faces: Arc<FaceReader>,
    pub(crate) gallery: Arc<Gallery>,
    pub(crate) crm: Arc<Crm>,
    /// detector, landmarks and embedder names, for readiness
    pub models: Vec<String>,
    index_save_interval: Duration,
    data_dir: DataDirLock,
}

impl Engine {
    /// Loads the models and opens the gallery (rebuilding its index if needed) and the CRM.
    pub fn load(settings: EngineSettings) -> anyhow::Result<Engine> {
        let data_dir = DataDirLock::acquire(&settings.gallery.data_dir)?;
        let pipeline = Pipeline::load(&settings.vision, &settings.runtime)?;
        let (model_id, dimensions) = embedder_identity(&settings.vision)?;
        let (gallery, report) = Gallery::open(
            settings.gallery.clone(),
            settings.matching.clone(),
            &model_id,
            dimensions,
        )
        .map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "cannot open the gallery in {}",
                settings.gallery.data_dir.display()
            ))
        })?;
        tracing::info!(portraits = report.portraits, rebuilt = ?report.rebuilt, "gallery open");
        let gallery = Arc::new(gallery);
        let crm = Arc::new(Crm::open(&settings.gallery.data_dir, settings.crm.clone())?);
        let faces = Arc::new(FaceReader::new(pipeline, settings.vision.max_image_pixels));
        let live = Arc::new(LiveFeed::default());
        let idempotency = idempotency::Idempotency::open(&settings.gallery.data_dir)?;
        let vision = &settings.vision;
        Ok(Engine {
            gate: Arc::new(Gate::new(settings.gate.clone())),
            recognizer: Arc::new(Recognizer::new(
                faces.clone(),
                gallery.clone(),
                crm.clone(),
                live.clone(),
                settings.vision.tracking.clone(),
            )),
            customers: Arc::new(Customers::new(
                faces.clone(),
                gallery.clone(),
                crm.clone(),
                live.clone(),
            )),
            till: Arc::new(Till::new(faces.clone(), gallery.clone(), crm.clone())),
            admin: Arc::new(Admin::new(gallery.clone(), crm.clone())),
            cameras: Cameras::new(
                settings.cameras.clone(),
                settings.vision.tracking.clone(),
                settings.vision.max_image_pixels,
                settings.announce_cooldown,
            ),
            terminals: Arc::new(Terminals::new(
                &settings.terminals,
                settings.announce_cooldown,
            )),
            models: vec![
                vision.detector.clone(),
                vision.landmarks.clone(),
                vision.embedder.clone(),
            ],
            live,
            idempotency,
            faces,
            gallery,
            crm,
            index_save_interval: settings.index_save_interval,
            data_dir,
        })
    }

    /// Saves what is not saved yet (the vector index); the command line calls it before it
    /// exits, the service every few seconds and when it stops.
    pub fn flush(&self) -> Result<(), EngineError> {
        self.gallery.save_index_if_changed()?;
        Ok(())
    }

    /// Erases what is past its retention period; a changed index is rewritten at once (an
    /// expired face must not linger on disk). The service runs it at start and every hour.
    pub fn purge_expired(&self) -> Result<crate::gallery::Purged, EngineError> {
        let purged = self.gallery.purge_expired(chrono::Utc::now())?;
        if purged.portraits > 0 {
            self.gallery.save_index()?;
        }
        if purged != crate::gallery::Purged::default() {
            tracing::info!(
                portraits = purged.portraits,
                visits = purged.visits,
                "retention: expired data erased"
            );
        }
        Ok(purged)
    }

    /// Saves what is not saved and lets another process have the data dir: the service calls
    /// it once it has stopped serving.
    pub fn close(&self) -> Result<(), EngineError> {
        let saved = self.flush();
        self.data_dir.release();
        saved
    }

    /// Portraits in the store and vectors in the index.
    pub fn counts(&self) -> (u64, u64) {
        self.gallery.counts()
    }

    /// Starts the cameras and the periodic refresh of the store statistics behind segments
    /// and best-sellers; everything ends with `stop`.
    pub fn start(self: &Arc<Self>, stop: &CancellationToken) {
        let engine = self.clone();
        let stop_retention = stop.child_token();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tokio::select! {
                    _ = stop_retention.cancelled() => return,
                    _ = every.tick() => {}
                }
                let engine = engine.clone();
                if let Err(e) = gate::blocking(move || engine.purge_expired()).await {
                    tracing::warn!(error = %crate::telemetry::chain(&e), "retention purge failed (tried again in an hour)");
                }
            }
        });
        let crm = self.crm.clone();
        let stop_refresh = stop.child_token();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(600));
            every.tick().await;
            loop {
                tokio::select! {
                    _ = stop_refresh.cancelled() => return,
                    _ = every.tick() => {}
                }
                let crm = crm.clone();
                if let Err(e) = gate::blocking(move || Ok(crm.refresh_stats()?)).await {
                    tracing::warn!(error = %crate::telemetry::chain(&e), "store statistics not refreshed");
                }
            }
        });
        self.cameras
            .start(&self.gate, &self.recognizer, &self.terminals, stop);
        tokio::spawn(save_index_every(
            self.gallery.clone(),
            self.index_save_interval,
            stop.child_token(),
        ));
    }
}

/// Saves the changed index every `interval`, and once more when the service stops.
async fn save_index_every(gallery: Arc<Gallery>, interval: Duration, stop: CancellationToken) {
    let mut every = tokio::time::interval(interval.max(Duration::from_millis(100)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = every.tick() => false,
        };
        let gallery = gallery.clone();
        if let Err(e) = gate::blocking(move || Ok(gallery.save_index_if_changed()?)).await {
            tracing::warn!(error = %crate::telemetry::chain(&e), "vector index not saved (rebuilt from the store at the next start if need be)");
        }
        if stopping {
            return;
        }
    }
}
