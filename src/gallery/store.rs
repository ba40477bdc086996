//! The source of truth: customers, consent, portraits (embeddings), visits and purchases in
//! SQLite (WAL). Every change to the portraits bumps a change counter in the same transaction,
//! so the derived vector index can tell whether it is current.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use super::GalleryError;
use super::seal::Sealer;

mod erasure;
mod sealing;

const CHANGE_COUNTER: &str = "change_counter";
const MODEL_ID: &str = "model_id";
const MATCHING: &str = "matching_rules";

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub who: String,
    pub what: String,
    pub old: String,
    pub new: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Consent {
    /// how it was given, e.g. "signed at till 3"
    pub how: String,
    /// who recorded it
    pub by: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Customer {
    pub id: i64,
    pub display_name: String,
    pub external_ref: Option<String>,
    pub consent: Consent,
    pub created_at: DateTime<Utc>,
    pub portraits: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Portrait {
    pub id: i64,
    pub customer_id: i64,
    #[serde(skip)]
    pub embedding: Vec<f32>,
    pub quality: f32,
    pub source: String,
    pub captured_at: DateTime<Utc>,
    pub crop_file: Option<String>,
}

/// A visit and what was bought in it.
#[derive(Debug, Clone, Serialize)]
pub struct VisitRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub camera: Option<String>,
    pub basket: Vec<BasketItem>,
}

/// One line of a basket at the till.
#[derive(Debug, Clone, serde::Deserialize, Serialize)]
pub struct BasketItem {
    pub sku: String,
    pub quantity: u32,
    /// price per unit in the smallest currency unit (cents, fen)
    pub unit_price_cents: i64,
}

/// A portrait to store; the embedding's model is the store's.
pub struct NewPortrait {
    pub embedding: Vec<f32>,
    pub quality: f32,
    pub quality_detail: String,
    pub source: String,
    pub crop_jpeg: Option<Vec<u8>>,
}

pub struct Store {
    conn: Connection,
    crops_dir: std::path::PathBuf,
    /// seals embeddings and crops (and, through the gallery, the saved index)
    sealer: std::sync::Arc<Sealer>,
}

impl Store {
    /// Opens (creating and migrating) the database under `data_dir`, unlocks it with the data
    /// key (see `seal`), and checks that its embeddings were made by `model_id`.
    pub fn open(data_dir: &Path, key_file: &Path, model_id: &str) -> Result<Self, GalleryError> {
        let store = Self::open_any_model(data_dir, key_file)?;
        match store.meta(MODEL_ID)? {
            None => Self::set_meta(&store.conn, MODEL_ID, model_id)?,
            Some(stored) if stored != model_id => {
                return Err(GalleryError::ModelMismatch {
                    stored,
                    current: model_id.to_owned(),
                });
            }
            Some(_) => {}
        }
        Ok(store)
    }

    /// Opens the database whatever model made its embeddings (to re-embed them).
    pub fn open_any_model(data_dir: &Path, key_file: &Path) -> Result<Self, GalleryError> {
        crate::db::private_dir(&data_dir.join("crops")).map_err(|source| GalleryError::Io {
            path: data_dir.to_owned(),
            source,
        })?;
        let conn = crate::db::connect(data_dir)?;
        let (sealer, unsealed_before) = sealing::unlock(&conn, data_dir, key_file)?;
        let mut store = Store {
            conn,
            crops_dir: data_dir.join("crops"),
            sealer: std::sync::Arc::new(sealer),
        };
        if unsealed_before {
            store.seal_what_is_clear()?;
        }
        store.sweep_crops()?;
        Ok(store)
    }

    /// The data key, for what the gallery keeps beside the store (the saved index).
    pub fn sealer(&self) -> std::sync::Arc<Sealer> {
        self.sealer.clone()
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Swaps every portrait's embedding for one made by `model_id`, in one transaction.
    pub fn replace_embeddings(
        &mut self,
        model_id: &str,
        embeddings: &[(i64, Vec<f32>)],
    ) -> Result<(), GalleryError> {
        let tx = self.conn.transaction()?;
        for (id, embedding) in embeddings {
            let blob = sealing::seal_embedding(&self.sealer, *id, embedding)?;
            tx.execute(
                "UPDATE portraits SET embedding = ?1, model_id = ?2 WHERE id = ?3",
                params![blob, model_id, id],
            )?;
        }
        tx.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
            params![MODEL_ID, model_id],
        )?;
        Self::bump_counter(&tx)?;
        Ok(tx.commit()?)
    }

    fn meta(&self, key: &str) -> Result<Option<String>, GalleryError> {
        meta(&self.conn, key)
    }

    fn set_meta(conn: &Connection, key: &str, value: &str) -> Result<(), GalleryError> {
        conn.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
            params![key, value],
        )?;
        Ok(())
    }

    pub(super) fn bump_counter(tx: &Transaction) -> Result<(), GalleryError> {
        tx.execute(
            "INSERT INTO meta(key, value) VALUES (?1, '1')
             ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            [CHANGE_COUNTER],
        )?;
        Ok(())
    }

    /// Increases with every portrait added or removed.
    pub fn change_counter(&self) -> Result<u64, GalleryError> {
        Ok(self
            .meta(CHANGE_COUNTER)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    pub fn model_id(&self) -> Result<String, GalleryError> {
        Ok(self.meta(MODEL_ID)?.unwrap_or_default())
    }

    /// Creates a customer with their first portraits in one transaction: all or nothing.
    /// Returns the customer id and the new portrait ids.
    pub fn create_customer(
        &mut self,
        display_name: &str,
        external_ref: Option<&str>,
        consent: &Consent,
        portraits: Vec<NewPortrait>,
    ) -> Result<(i64, Vec<i64>), GalleryError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO customers(display_name, external_ref, consent_how, consent_by, consent_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![display_name, external_ref, consent.how, consent.by, consent.at, Utc::now()],
        )?;
        let customer_id = tx.last_insert_rowid();
        let ids = insert_portraits(&tx, &self.crops_dir, &self.sealer, customer_id, portraits)?;
        // ids only: the audit log must outlive an erasure without holding the person
        audit(
            &tx,
            &consent.by,
            "enrol",
            "",
            &format!("customer {customer_id}, {} portrait(s)", ids.len()),
        )?;
        tx.commit()?;
        Ok((customer_id, ids))
    }

    pub fn add_portraits(
        &mut self,
        customer_id: i64,
        portraits: Vec<NewPortrait>,
    ) -> Result<Vec<i64>, GalleryError> {
        let tx = self.conn.transaction()?;
        let ids = insert_portraits(&tx, &self.crops_dir, &self.sealer, customer_id, portraits)?;
        tx.commit()?;
        Ok(ids)
    }

    pub fn customer(&self, id: i64) -> Result<Option<Customer>, GalleryError> {
        self.customers_where("c.id = ?1", params![id])
            .map(|mut v| v.pop())
    }

    pub fn customer_by_ref(&self, external_ref: &str) -> Result<Option<Customer>, GalleryError> {
        self.customers_where("c.external_ref = ?1", params![external_ref])
            .map(|mut v| v.pop())
    }

    /// Customers whose name contains `query` (all when empty), by id.
    pub fn customers(&self, query: &str) -> Result<Vec<Customer>, GalleryError> {
        self.customers_where("c.display_name LIKE '%' || ?1 || '%'", params![query])
    }

    fn customers_where(
        &self,
        condition: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Customer>, GalleryError> {
        let query = format!(
            "SELECT c.id, c.display_name, c.external_ref, c.consent_how, c.consent_by, c.consent_at, c.created_at,
                    (SELECT COUNT(*) FROM portraits p WHERE p.customer_id = c.id)
             FROM customers c WHERE {condition} ORDER BY c.id"
        );
        let mut stmt = self.conn.prepare(&query)?;
        let rows = stmt.query_map(args, |r| {
            Ok(Customer {
                id: r.get(0)?,
                display_name: r.get(1)?,
                external_ref: r.get(2)?,
                consent: Consent {
                    how: r.get(3)?,
                    by: r.get(4)?,
                    at: r.get(5)?,
                },
                created_at: r.get(6)?,
                portraits: r.get::<_, i64>(7)? as usize,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn portraits_of(&self, customer_id: i64) -> Result<Vec<Portrait>, GalleryError> {
        self.portraits_where("customer_id = ?1", params![customer_id])
    }

    pub fn all_portraits(&self) -> Result<Vec<Portrait>, GalleryError> {
        self.portraits_where("1 = 1", params![])
    }

    fn portraits_where(
        &self,
        condition: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Portrait>, GalleryError> {
        let query = format!(
            "SELECT id, customer_id, embedding, quality, source, captured_at, crop_file
             FROM portraits WHERE {condition} ORDER BY id"
        );
        let mut stmt = self.conn.prepare(&query)?;
        let rows = stmt.query_map(args, |r| {
            let sealed: Vec<u8> = r.get(2)?;
            let portrait = Portrait {
                id: r.get(0)?,
                customer_id: r.get(1)?,
                embedding: Vec::new(),
                quality: r.get(3)?,
                source: r.get(4)?,
                captured_at: r.get(5)?,
                crop_file: r.get(6)?,
            };
            Ok((portrait, sealed))
        })?;
        rows.map(|row| {
            let (mut portrait, sealed) = row?;
            portrait.embedding = sealing::open_embedding(&self.sealer, portrait.id, &sealed)?;
            Ok(portrait)
        })
        .collect()
    }

    /// Records a visit and what was bought in it, in one transaction; returns the visit id.
    pub fn record_visit(
        &mut self,
        customer_id: i64,
        at: DateTime<Utc>,
        camera: Option<&str>,
        basket: &[BasketItem],
    ) -> Result<i64, GalleryError> {
        let tx = self.conn.transaction()?;
        let visit_id = insert_visit(&tx, customer_id, at, camera, basket)?;
        tx.commit()?;
        Ok(visit_id)
    }

    /// Matching rules saved at run time, if any (unreadable ones are said, and not used).
    pub fn matching_rules(&self) -> Result<Option<super::MatchRules>, GalleryError> {
        let Some(json) = self.meta(MATCHING)? else {
            return Ok(None);
        };
        match serde_json::from_str(&json) {
            Ok(rules) => Ok(Some(rules)),
            Err(e) => {
                tracing::warn!(error = %e, %json, "saved matching rules unreadable: using the config file's");
                Ok(None)
            }
        }
    }

    /// Saves new matching rules with an audit entry, in one transaction.
    pub fn save_matching_rules(
        &mut self,
        old: &super::MatchRules,
        new: &super::MatchRules,
        who: &str,
    ) -> Result<(), GalleryError> {
        let json = |r: &super::MatchRules| serde_json::to_string(r).expect("plain data");
        let tx = self.conn.transaction()?;
        Self::set_meta(&tx, MATCHING, &json(new))?;
        audit(&tx, who, "matching", &json(old), &json(new))?;
        Ok(tx.commit()?)
    }

    /// The latest audit entries (of one kind, `what`, or all), newest first.
    pub fn audit_log(
        &self,
        limit: usize,
        what: Option<&str>,
    ) -> Result<Vec<AuditEntry>, GalleryError> {
        let mut stmt = self.conn.prepare(
            "SELECT at, who, what, old, new FROM audit_log
             WHERE ?2 IS NULL OR what = ?2 ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit as i64, what], |r| {
            Ok(AuditEntry {
                at: r.get(0)?,
                who: r.get(1)?,
                what: r.get(2)?,
                old: r.get(3)?,
                new: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Records who changed what in the caller's transaction: it commits with the change or not at
/// all.
pub fn audit(
    conn: &Connection,
    who: &str,
    what: &str,
    old: &str,
    new: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO audit_log(at, who, what, old, new) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![Utc::now(), who, what, old, new],
    )?;
    Ok(())
}

/// Inserts a visit and its purchases inside the caller's transaction; returns the visit id.
/// The till, history imports and the demo store all record visits through here.
pub fn insert_visit(
    conn: &Connection,
    customer_id: i64,
    at: DateTime<Utc>,
    camera: Option<&str>,
    basket: &[BasketItem],
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO visits(customer_id, visited_at, camera) VALUES (?1, ?2, ?3)",
        params![customer_id, at, camera],
    )?;
    let visit_id = conn.last_insert_rowid();
    for item in basket {
        conn.execute(
            "INSERT INTO purchases(customer_id, visit_id, sku, quantity, unit_price_cents, purchased_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![customer_id, visit_id, item.sku, item.quantity, item.unit_price_cents, at],
        )?;
    }
    Ok(visit_id)
}

/// A value of the store's own settings (model, change counter, rules, key check).
fn meta(conn: &Connection, key: &str) -> Result<Option<String>, GalleryError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), GalleryError> {
    crate::files::write_atomically(path, bytes).map_err(|source| GalleryError::Io {
        path: path.to_owned(),
        source,
    })
}

fn insert_portraits(
    tx: &Transaction,
    crops_dir: &Path,
    sealer: &Sealer,
    customer_id: i64,
    portraits: Vec<NewPortrait>,
) -> Result<Vec<i64>, GalleryError> {
    // the store's model made these embeddings (checked when it was opened)
    let model_id = meta(tx, MODEL_ID)?.unwrap_or_default();
    let mut ids = Vec::with_capacity(portraits.len());
    for p in portraits {
        // the row first, for the id that the sealed embedding is bound to
        tx.execute(
            "INSERT INTO portraits(customer_id, embedding, model_id, quality, quality_detail, source, captured_at)
             VALUES (?1, x'', ?2, ?3, ?4, ?5, ?6)",
            params![customer_id, model_id, p.quality, p.quality_detail, p.source, Utc::now()],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "UPDATE portraits SET embedding = ?1 WHERE id = ?2",
            params![sealing::seal_embedding(sealer, id, &p.embedding)?, id],
        )?;
        if let Some(jpeg) = p.crop_jpeg {
            // Written (whole, synced) before the commit: a crash leaves at worst an orphan
            // file, swept at the next open, never a row pointing at nothing or at half a file.
            let file = format!("{id}.crop");
            write_synced(
                &crops_dir.join(&file),
                &sealing::seal_crop(sealer, &file, &jpeg)?,
            )?;
            tx.execute(
                "UPDATE portraits SET crop_file = ?1 WHERE id = ?2",
                params![file, id],
            )?;
        }
        ids.push(id);
    }
    // the renames reach the disk before the rows that name them are committed
    std::fs::File::open(crops_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| GalleryError::Io {
            path: crops_dir.to_owned(),
            source,
        })?;
    Store::bump_counter(tx)?;
    Ok(ids)
}
