//! The store's memory of its customers: who they are (SQLite, the source of truth) and what
//! their faces look like (a faiss index derived from it), with the enrolment rules.

mod enrolment;
mod erasure;
pub mod index;
pub mod matching;
mod neighbours;
mod reembed;
pub mod seal;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::Utc;
// parking_lot's locks hand over fairly under contention (a writer is not starved by a stream
// of searches) and are not poisoned: the store is transactional and the index is re-checked
// against it at the next open, so a panic elsewhere cannot leave either half-updated for long.
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use enrolment::named_with_consent;
pub use enrolment::{
    Enrolled, NewCustomer, PortraitInput, Refusal, check_name_and_consent, consent_given,
    quality_score,
};
pub use erasure::{Export, Purged};
use index::{IndexMeta, VectorIndex};
pub use matching::{Candidate, Decision, MatchRules};
use neighbours::Neighbours;
pub use reembed::reembed;
pub use store::{BasketItem, Consent, Customer, NewPortrait, Portrait, Store};

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GallerySettings {
    pub data_dir: PathBuf,
    /// the data key that seals faces and embeddings, outside the data dir (`GREETER_DATA_KEY`
    /// wins over it); generated on the first start of an empty data dir
    pub key_file: PathBuf,
    /// faiss index-factory string: "IDMap,Flat" (exact), "IDMap,HNSW32" (approximate, large galleries)
    pub index_factory: String,
    /// faiss search parameters for that index, e.g. `efSearch = 128` for HNSW
    #[serde(default)]
    pub index_parameters: std::collections::BTreeMap<String, f64>,
    pub max_portraits_per_customer: usize,
    /// portraits given together (one enrolment) must be at least this alike, pair by pair, or
    /// they are refused as not one person (unless forced)
    pub min_portrait_agreement: f32,
    /// threads faiss uses per search (1 is best for one query at a time)
    pub search_threads: usize,
    /// seconds between saves of a changed vector index (the service's; the CLI saves on exit)
    pub index_save_s: f64,
    /// keep each portrait's face crop (JPEG) so embeddings can be redone for a new model
    pub keep_crops: bool,
    /// portraits older than this many days are erased (0: kept until erased)
    pub portrait_retention_days: u32,
    /// visits and purchases older than this many days are deleted (0: kept)
    pub visit_retention_days: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    #[error("database error")]
    Store(#[from] rusqlite::Error),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("vector index error")]
    Index(#[source] faiss::error::Error),
    #[error("vector search failed (faiss error {code}: {message})")]
    Search { code: i32, message: String },
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
    #[error("nothing changed, {} of {total} portraits cannot be re-embedded: {}", problems.len(), problems.join("; "))]
    NotReembedded { total: usize, problems: Vec<String> },
    #[error("refused")]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Seal(#[from] seal::SealError),
    #[error(
        "{data_dir} is sealed, but no data key was found in ${} or {key_file}: restore the key it was sealed with (a new key would not open it)",
        seal::KEY_ENV
    )]
    KeyMissing {
        data_dir: PathBuf,
        key_file: PathBuf,
    },
    #[error("the data key from {key} does not open {data_dir}: it was sealed with another key")]
    WrongKey { data_dir: PathBuf, key: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct OpenReport {
    pub portraits: u64,
    /// why the index had to be rebuilt from the store, if it did
    pub rebuilt: Option<String>,
}

/// The vectors and who each belongs to: held only for a search or an add/remove, never across
/// a store write, so recognition does not wait for fsyncs.
struct Vectors {
    index: VectorIndex,
    /// customer id of each indexed portrait id; a portrait without an owner is never returned
    owners: HashMap<i64, i64>,
    neighbours: Neighbours,
}

impl Vectors {
    /// Best score per customer among the `k` nearest portraits, best first.
    fn ranked(&self, embedding: &[f32], k: usize) -> Result<Vec<Candidate>, GalleryError> {
        let hits = self.index.search(embedding, k)?;
        Ok(matching::rank_customers(&hits, |p| {
            self.owners.get(&p).copied()
        }))
    }
}

/// Three locks, always taken in this order: `store` (the one writer at a time, and every row
/// read), then `vectors`, read-locked by every search (searches run side by side) and
/// write-locked only to add or remove a few vectors. `rules` is read on every match and written
/// only by store IT. Nothing slow (SQLite, files, fsync) happens under `vectors`.
pub struct Gallery {
    store: Mutex<Store>,
    vectors: RwLock<Vectors>,
    rules: RwLock<MatchRules>,
    /// portraits in the store, kept by every write: readiness without a table scan
    stored: AtomicU64,
    /// the index changed since it was last saved
    unsaved: AtomicBool,
    /// one index snapshot written at a time
    saving: Mutex<()>,
    settings: GallerySettings,
    model_id: String,
    dimensions: u32,
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
        let store = Store::open(&settings.data_dir, &settings.key_file, model_id)?;
        let sealer = store.sealer();
        let portraits = store.all_portraits()?;
        let owners: HashMap<i64, i64> = portraits.iter().map(|p| (p.id, p.customer_id)).collect();
        let mut neighbours = Neighbours::default();
        for p in &portraits {
            neighbours.added(p.customer_id, &[p.id], std::slice::from_ref(&p.embedding));
        }
        let expected = IndexMeta {
            change_counter: store.change_counter()?,
            model_id: model_id.to_owned(),
            factory: settings.index_factory.clone(),
            count: owners.len() as u64,
        };
        let (mut index, rebuilt) = match VectorIndex::load(
            &settings.data_dir,
            &expected,
            dimensions,
            &sealer,
        ) {
            Ok(index) => (index, None),
            Err(unusable) => {
                let reason = crate::telemetry::chain(&unusable);
                if owners.is_empty() {
                    tracing::info!(%reason, "new vector index");
                } else {
                    tracing::warn!(%reason, portraits = owners.len(), "rebuilding the vector index from the store");
                }
                let mut index = VectorIndex::new(dimensions, &settings.index_factory)?;
                let ids: Vec<i64> = portraits.iter().map(|p| p.id).collect();
                let vectors: Vec<f32> = portraits
                    .iter()
                    .flat_map(|p| p.embedding.iter().copied())
                    .collect();
                index.add(&ids, &vectors)?;
                index.save(&settings.data_dir, &expected, &sealer)?;
                (index, Some(reason))
            }
        };
        index.set_parameters(&settings.index_parameters)?;
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
                    neighbour_gap: rules.neighbour_gap,
                    ..saved
                }
            }
            None => rules,
        };
        let gallery = Gallery {
            stored: AtomicU64::new(owners.len() as u64),
            store: Mutex::new(store),
            vectors: RwLock::new(Vectors {
                index,
                owners,
                neighbours,
            }),
            rules: RwLock::new(rules),
            unsaved: AtomicBool::new(false),
            saving: Mutex::new(()),
            settings,
            model_id: model_id.to_owned(),
            dimensions,
        };
        Ok((gallery, report))
    }

    /// Saves a snapshot of the index with the store's change counter (call after a batch of
    /// changes). The snapshot is taken under the locks; the slow part, writing and syncing the
    /// file, runs outside them, so matching and enrolment go on meanwhile.
    pub fn save_index(&self) -> Result<(), GalleryError> {
        let _one_at_a_time = self.saving.lock();
        // cleared first: a change made while this snapshot is written marks it again
        self.unsaved.store(false, Ordering::Release);
        let (snapshot, meta, sealer) = {
            let store = self.store.lock();
            let vectors = self.vectors.read();
            let meta = IndexMeta {
                change_counter: store.change_counter()?,
                model_id: self.model_id.clone(),
                factory: self.settings.index_factory.clone(),
                count: vectors.owners.len() as u64,
            };
            (vectors.index.snapshot()?, meta, store.sealer())
        };
        // An HNSW index with hidden removals is saved with them; its vector count then differs
        // from `meta.count`, so the next open rebuilds it clean.
        snapshot
            .save(&self.settings.data_dir, &meta, &sealer)
            .inspect_err(|_| {
                self.unsaved.store(true, Ordering::Release);
            })
    }

    /// Saves the index if it changed since the last save; whether it did. The service calls
    /// this every few seconds rather than after each write: the copy it takes costs a few
    /// milliseconds of the index lock per 100k portraits, and an index a crash left behind the
    /// store is rebuilt from it at the next start.
    pub fn save_index_if_changed(&self) -> Result<bool, GalleryError> {
        if !self.unsaved.load(Ordering::Acquire) {
            return Ok(false);
        }
        self.save_index()?;
        Ok(true)
    }

    pub fn identify(&self, embedding: &[f32]) -> Result<Decision, GalleryError> {
        let rules = self.rules();
        let vectors = self.vectors.read();
        let decision = matching::decide(&vectors.ranked(embedding, rules.top_k)?, &rules);
        let Some(customer) = decision.customer_id() else {
            return Ok(decision);
        };
        let bar = vectors.neighbours.bar(
            customer,
            |queries, k| vectors.index.search_many(queries, k),
            |p| vectors.owners.get(&p).copied(),
        )?;
        Ok(matching::beyond_neighbours(
            decision,
            bar,
            rules.neighbour_gap,
        ))
    }

    /// Enrols a new customer with consent and at least one good portrait, atomically.
    pub fn enrol(&self, customer: NewCustomer) -> Result<Enrolled, GalleryError> {
        let (name, consent) = named_with_consent(&customer)?;
        let mut store = self.store.lock();
        let portraits = self.admissible(&store, None, customer.portraits, customer.force)?;
        let (kept, dropped) = self.cap(portraits, Vec::new());
        let (vectors, new): (Vec<Vec<f32>>, Vec<NewPortrait>) =
            kept.into_iter().map(|p| (p.embedding.clone(), p)).unzip();
        let (customer_id, ids) =
            store.create_customer(&name, customer.external_ref.as_deref(), &consent, new)?;
        self.index_added(customer_id, &ids, &vectors)?;
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
        let mut store = self.store.lock();
        if store.customer(customer_id)?.is_none() {
            return Err(GalleryError::UnknownCustomer(customer_id));
        }
        let existing = store.portraits_of(customer_id)?;
        let portraits = self.admissible(&store, Some(customer_id), portraits, force)?;
        let (kept, dropped) = self.cap(portraits, existing);
        let (vectors, new): (Vec<Vec<f32>>, Vec<NewPortrait>) =
            kept.into_iter().map(|p| (p.embedding.clone(), p)).unzip();
        let ids = store.add_portraits(customer_id, new)?;
        self.index_added(customer_id, &ids, &vectors)?;
        if !dropped.is_empty() {
            store.remove_portraits(&dropped)?;
            self.index_removed(&dropped)?;
        }
        Ok(Enrolled {
            customer_id,
            portrait_ids: ids,
            dropped_portraits: dropped,
        })
    }

    pub fn customers(&self, query: &str) -> Result<Vec<Customer>, GalleryError> {
        self.store.lock().customers(query)
    }

    pub fn customer(&self, id: i64) -> Result<(Customer, Vec<Portrait>), GalleryError> {
        let store = self.store.lock();
        let customer = store
            .customer(id)?
            .ok_or(GalleryError::UnknownCustomer(id))?;
        Ok((customer, store.portraits_of(id)?))
    }

    pub fn customer_by_ref(&self, external_ref: &str) -> Result<Option<Customer>, GalleryError> {
        self.store.lock().customer_by_ref(external_ref)
    }

    /// Records a visit of a known customer with what they bought.
    pub fn record_visit(
        &self,
        customer_id: i64,
        camera: Option<&str>,
        basket: &[BasketItem],
    ) -> Result<i64, GalleryError> {
        let mut store = self.store.lock();
        if store.customer(customer_id)?.is_none() {
            return Err(GalleryError::UnknownCustomer(customer_id));
        }
        store.record_visit(customer_id, Utc::now(), camera, basket)
    }

    pub fn rules(&self) -> MatchRules {
        self.rules.read().clone()
    }

    /// Changes threshold and margin at once for every later match, saves them in the store and
    /// records who changed what in the audit log. Returns the previous rules.
    pub fn set_rules(
        &self,
        threshold: f32,
        margin: f32,
        who: &str,
    ) -> Result<MatchRules, GalleryError> {
        // the store lock orders concurrent changes: the audit log's old → new chain holds
        let mut store = self.store.lock();
        let old = self.rules();
        let new = MatchRules {
            threshold,
            margin,
            ..old.clone()
        };
        store.save_matching_rules(&old, &new, who)?;
        *self.rules.write() = new;
        Ok(old)
    }

    /// An audit entry for something that changes no customer (a login).
    pub fn record(&self, who: &str, what: &str, detail: &str) -> Result<(), GalleryError> {
        let store = self.store.lock();
        Ok(store::audit(store.connection(), who, what, "", detail)?)
    }

    pub fn audit_log(
        &self,
        limit: usize,
        what: Option<&str>,
    ) -> Result<Vec<store::AuditEntry>, GalleryError> {
        self.store.lock().audit_log(limit, what)
    }

    /// The embeddings of each customer's portraits, by customer id (for calibration).
    pub fn embeddings_by_customer(&self) -> Result<BTreeMap<i64, Vec<Vec<f32>>>, GalleryError> {
        let portraits = self.store.lock().all_portraits()?;
        let mut by_customer: BTreeMap<i64, Vec<Vec<f32>>> = BTreeMap::new();
        for p in portraits {
            by_customer
                .entry(p.customer_id)
                .or_default()
                .push(p.embedding);
        }
        Ok(by_customer)
    }

    /// Portraits in the store and vectors in the index, from counters (no table scan); both
    /// change under the same lock, so they differ only when something went wrong.
    pub fn counts(&self) -> (u64, u64) {
        let v = self.vectors.read();
        (self.stored.load(Ordering::Relaxed), v.index.len())
    }

    pub fn portrait_count(&self) -> u64 {
        self.vectors.read().index.len()
    }

    fn index_added(
        &self,
        customer_id: i64,
        ids: &[i64],
        vectors: &[Vec<f32>],
    ) -> Result<(), GalleryError> {
        let mut v = self.vectors.write();
        v.index.add(ids, &vectors.concat())?;
        v.owners.extend(ids.iter().map(|&id| (id, customer_id)));
        v.neighbours.added(customer_id, ids, vectors);
        self.stored.fetch_add(ids.len() as u64, Ordering::Relaxed);
        self.unsaved.store(true, Ordering::Release);
        Ok(())
    }

    fn index_removed(&self, ids: &[i64]) -> Result<(), GalleryError> {
        let mut v = self.vectors.write();
        for id in ids {
            v.owners.remove(id);
        }
        v.neighbours.removed(ids);
        self.stored.fetch_sub(ids.len() as u64, Ordering::Relaxed);
        self.unsaved.store(true, Ordering::Release);
        v.index.remove(ids)
    }
}
