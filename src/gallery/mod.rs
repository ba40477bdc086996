//! The store's memory of its customers: who they are (SQLite, the source of truth) and what
//! their faces look like (a faiss index derived from it), with the enrolment rules.

pub mod index;
pub mod matching;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use image::RgbImage;

use crate::vision::{FaceObservation, Quality, face_crop_jpeg};
use index::{IndexMeta, VectorIndex};
pub use matching::{Candidate, Decision, MatchRules};
pub use store::{BasketItem, Consent, Customer, NewPortrait, Portrait, Store};

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GallerySettings {
    pub data_dir: PathBuf,
    /// faiss index-factory string: "IDMap,Flat" (exact), "IDMap,HNSW32" (approximate, large galleries)
    pub index_factory: String,
    /// faiss search parameters for that index, e.g. `efSearch = 128` for HNSW
    #[serde(default)]
    pub index_parameters: std::collections::BTreeMap<String, f64>,
    pub max_portraits_per_customer: usize,
    /// threads faiss uses per search (1 is best for one query at a time)
    pub search_threads: usize,
    /// keep each portrait's face crop (JPEG) so embeddings can be redone for a new model
    pub keep_crops: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    #[error("database error")]
    Store(#[source] rusqlite::Error),
    #[error("database migration failed")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("vector index error")]
    Index(#[source] faiss::error::Error),
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the gallery's embeddings were made by model {stored}, this build uses {current}: run `greeter gallery reembed` (needs kept crops) or use another data_dir"
    )]
    ModelMismatch { stored: String, current: String },
    #[error("embedding has {got} dimensions, the index {expected}")]
    Dimensions { expected: usize, got: usize },
    #[error("no customer with id {0}")]
    UnknownCustomer(i64),
    #[error("refused")]
    Refused(#[from] Refusal),
}

/// Why an enrolment was refused: the caller's to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("a customer needs a name")]
    EmptyName,
    #[error("no consent recorded: enrolment needs the customer's consent (how it was given)")]
    NoConsent,
    #[error("no portraits given")]
    NoPortraits,
    #[error("{origin}: face quality too low ({})", reasons.join("; "))]
    Quality {
        origin: String,
        reasons: Vec<String>,
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

#[derive(Debug, Clone, Serialize)]
pub struct OpenReport {
    pub portraits: u64,
    /// why the index had to be rebuilt from the store, if it did
    pub rebuilt: Option<String>,
}

struct Inner {
    rules: MatchRules,
    store: Store,
    index: VectorIndex,
    owners: HashMap<i64, i64>,
}

pub struct Gallery {
    inner: Mutex<Inner>,
    settings: GallerySettings,
    model_id: String,
    dimensions: u32,
}

/// One number to rank portraits of the same customer by.
pub fn quality_score(q: &Quality) -> f32 {
    let size = q.face_px / (q.face_px + 64.0);
    let sharp = q.sharpness / (q.sharpness + 50.0);
    q.detector_score * q.frontalness * size * sharp
}

impl Gallery {
    /// Opens the store and the index; a missing, unreadable or stale index is rebuilt from the
    /// store (and saved), and the report says why.
    pub fn open(
        settings: GallerySettings,
        rules: MatchRules,
        model_id: &str,
        dimensions: u32,
    ) -> Result<(Self, OpenReport), GalleryError> {
        index::set_search_threads(settings.search_threads);
        let store = Store::open(&settings.data_dir, model_id)?;
        let owners = store.portrait_owners()?;
        let expected = IndexMeta {
            change_counter: store.change_counter()?,
            model_id: model_id.to_owned(),
            factory: settings.index_factory.clone(),
            count: owners.len() as u64,
        };
        let (index, rebuilt) = match VectorIndex::load(&settings.data_dir, &expected, dimensions) {
            Ok(index) => (index, None),
            Err(reason) => {
                if owners.is_empty() {
                    tracing::info!(%reason, "new vector index");
                } else {
                    tracing::warn!(%reason, portraits = owners.len(), "rebuilding the vector index from the store");
                }
                let mut index = VectorIndex::new(dimensions, &settings.index_factory)?;
                let portraits = store.all_portraits()?;
                let ids: Vec<i64> = portraits.iter().map(|p| p.id).collect();
                let vectors: Vec<f32> = portraits
                    .iter()
                    .flat_map(|p| p.embedding.iter().copied())
                    .collect();
                index.add(&ids, &vectors)?;
                index.save(&settings.data_dir, &expected)?;
                (index, Some(reason))
            }
        };
        let report = OpenReport {
            portraits: index.len(),
            rebuilt,
        };
        // rules set at run time (by store IT) outlive restarts and win over the file
        let rules = match store.matching_rules()? {
            Some(saved) => {
                tracing::info!(
                    threshold = saved.threshold,
                    margin = saved.margin,
                    "matching rules from the data dir"
                );
                MatchRules {
                    top_k: rules.top_k,
                    ..saved
                }
            }
            None => rules,
        };
        let gallery = Gallery {
            inner: Mutex::new(Inner {
                rules,
                store,
                index,
                owners,
            }),
            settings,
            model_id: model_id.to_owned(),
            dimensions,
        };
        Ok((gallery, report))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave Inner half-updated: the store is transactional and the
        // index is re-checked against it at the next open.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Saves the index with the store's change counter (call after a batch of changes).
    pub fn save_index(&self) -> Result<(), GalleryError> {
        let inner = self.lock();
        let meta = IndexMeta {
            change_counter: inner.store.change_counter()?,
            model_id: self.model_id.clone(),
            factory: self.settings.index_factory.clone(),
            count: inner.owners.len() as u64,
        };
        // An HNSW index with hidden removals is saved with them; its vector count then differs
        // from `meta.count`, so the next open rebuilds it clean.
        inner.index.save(&self.settings.data_dir, &meta)
    }

    pub fn identify(&self, embedding: &[f32]) -> Result<Decision, GalleryError> {
        let mut inner = self.lock();
        let ranked = ranked(&mut inner, embedding)?;
        Ok(matching::decide(&ranked, &inner.rules))
    }

    /// Enrols a new customer with consent and at least one good portrait, atomically.
    pub fn enrol(&self, customer: NewCustomer) -> Result<Enrolled, GalleryError> {
        let (name, consent) = named_with_consent(&customer)?;
        let mut inner = self.lock();
        let portraits = self.admissible(&mut inner, None, customer.portraits, customer.force)?;
        let (kept, dropped) = self.cap(portraits, Vec::new());
        let (vectors, new): (Vec<Vec<f32>>, Vec<NewPortrait>) =
            kept.into_iter().map(|p| (p.embedding.clone(), p)).unzip();
        let (customer_id, ids) =
            inner
                .store
                .create_customer(&name, customer.external_ref.as_deref(), &consent, new)?;
        Self::index_added(&mut inner, customer_id, &ids, &vectors)?;
        Ok(Enrolled {
            customer_id,
            portrait_ids: ids,
            dropped_portraits: dropped,
        })
    }

    /// Adds portraits to a customer, keeping the best `max_portraits_per_customer`.
    pub fn add_portraits(
        &self,
        customer_id: i64,
        portraits: Vec<PortraitInput>,
        force: bool,
    ) -> Result<Enrolled, GalleryError> {
        let mut inner = self.lock();
        if inner.store.customer(customer_id)?.is_none() {
            return Err(GalleryError::UnknownCustomer(customer_id));
        }
        let existing = inner.store.portraits_of(customer_id)?;
        let portraits = self.admissible(&mut inner, Some(customer_id), portraits, force)?;
        let (kept, dropped) = self.cap(portraits, existing);
        let (vectors, new): (Vec<Vec<f32>>, Vec<NewPortrait>) =
            kept.into_iter().map(|p| (p.embedding.clone(), p)).unzip();
        let ids = inner.store.add_portraits(customer_id, new)?;
        Self::index_added(&mut inner, customer_id, &ids, &vectors)?;
        if !dropped.is_empty() {
            inner.store.remove_portraits(&dropped)?;
            inner.index.remove(&dropped)?;
            for id in &dropped {
                inner.owners.remove(id);
            }
        }
        Ok(Enrolled {
            customer_id,
            portrait_ids: ids,
            dropped_portraits: dropped,
        })
    }

    /// Erases a customer and everything about them; searches right after never return them.
    pub fn delete_customer(&self, customer_id: i64) -> Result<(), GalleryError> {
        let mut inner = self.lock();
        let ids = inner
            .store
            .delete_customer(customer_id)?
            .ok_or(GalleryError::UnknownCustomer(customer_id))?;
        inner.index.remove(&ids)?;
        for id in &ids {
            inner.owners.remove(id);
        }
        Ok(())
    }

    pub fn customers(&self, query: &str) -> Result<Vec<Customer>, GalleryError> {
        self.lock().store.customers(query)
    }

    pub fn customer(&self, id: i64) -> Result<(Customer, Vec<Portrait>), GalleryError> {
        let inner = self.lock();
        let customer = inner
            .store
            .customer(id)?
            .ok_or(GalleryError::UnknownCustomer(id))?;
        Ok((customer, inner.store.portraits_of(id)?))
    }

    pub fn customer_by_ref(&self, external_ref: &str) -> Result<Option<Customer>, GalleryError> {
        self.lock().store.customer_by_ref(external_ref)
    }

    /// Records a visit of a known customer with what they bought.
    pub fn record_visit(
        &self,
        customer_id: i64,
        camera: Option<&str>,
        basket: &[BasketItem],
    ) -> Result<i64, GalleryError> {
        let mut inner = self.lock();
        if inner.store.customer(customer_id)?.is_none() {
            return Err(GalleryError::UnknownCustomer(customer_id));
        }
        inner
            .store
            .record_visit(customer_id, Utc::now(), camera, basket)
    }

    pub fn rules(&self) -> MatchRules {
        self.lock().rules.clone()
    }

    /// Changes threshold and margin at once for every later match, saves them in the store and
    /// records who changed what in the audit log. Returns the previous rules.
    pub fn set_rules(
        &self,
        threshold: f32,
        margin: f32,
        who: &str,
    ) -> Result<MatchRules, GalleryError> {
        let mut inner = self.lock();
        let new = MatchRules {
            threshold,
            margin,
            top_k: inner.rules.top_k,
        };
        let old = inner.rules.clone();
        inner.store.save_matching_rules(&old, &new, who)?;
        Ok(std::mem::replace(&mut inner.rules, new))
    }

    pub fn audit_log(&self, limit: usize) -> Result<Vec<store::AuditEntry>, GalleryError> {
        self.lock().store.audit_log(limit)
    }

    /// The embeddings of each customer's portraits, by customer id (for calibration).
    pub fn embeddings_by_customer(&self) -> Result<BTreeMap<i64, Vec<Vec<f32>>>, GalleryError> {
        let mut by_customer: BTreeMap<i64, Vec<Vec<f32>>> = BTreeMap::new();
        for p in self.lock().store.all_portraits()? {
            by_customer
                .entry(p.customer_id)
                .or_default()
                .push(p.embedding);
        }
        Ok(by_customer)
    }

    /// Portraits in the store (asking the database) and vectors in the index.
    pub fn counts(&self) -> Result<(u64, u64), GalleryError> {
        let inner = self.lock();
        Ok((
            inner.store.portrait_owners()?.len() as u64,
            inner.index.len(),
        ))
    }

    pub fn portrait_count(&self) -> u64 {
        self.lock().index.len()
    }

    /// Quality gate and duplicate check; the survivors as rows to store.
    fn admissible(
        &self,
        inner: &mut Inner,
        owner: Option<i64>,
        portraits: Vec<PortraitInput>,
        force: bool,
    ) -> Result<Vec<NewPortrait>, GalleryError> {
        if portraits.is_empty() {
            return Err(Refusal::NoPortraits.into());
        }
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
                let ranked = ranked(inner, &p.face.embedding)?;
                if let Some(other) = ranked
                    .iter()
                    .find(|c| Some(c.customer_id) != owner && c.score >= inner.rules.threshold)
                {
                    let name = inner
                        .store
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

    /// The best new portraits that fit under the cap next to `existing`, and the existing ones
    /// to drop to make room for better new ones.
    fn cap(
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

    fn index_added(
        inner: &mut Inner,
        customer_id: i64,
        ids: &[i64],
        vectors: &[Vec<f32>],
    ) -> Result<(), GalleryError> {
        inner.index.add(ids, &vectors.concat())?;
        inner.owners.extend(ids.iter().map(|&id| (id, customer_id)));
        Ok(())
    }
}

/// A new customer's trimmed name and consent, or why they cannot be enrolled.
fn named_with_consent(customer: &NewCustomer) -> Result<(String, Consent), Refusal> {
    let name = customer.name.trim();
    if name.is_empty() {
        return Err(Refusal::EmptyName);
    }
    if customer.consent_how.trim().is_empty() {
        return Err(Refusal::NoConsent);
    }
    Ok((
        name.to_owned(),
        Consent {
            how: customer.consent_how.trim().to_owned(),
            by: customer.consent_by.clone(),
            at: Utc::now(),
        },
    ))
}

fn ranked(inner: &mut Inner, embedding: &[f32]) -> Result<Vec<Candidate>, GalleryError> {
    let k = inner.rules.top_k;
    let hits = inner.index.search(embedding, k)?;
    Ok(matching::rank_customers(&hits, |p| {
        inner.owners.get(&p).copied()
    }))
}
