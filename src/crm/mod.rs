//! What the glasses say about a recognised customer: the card — name, last visit, segment,
//! suggested items and a greeting line — from the store's own catalogue and history.

mod card;
pub mod catalog;
pub mod demo;
pub mod eval;
pub mod history;
pub mod suggest;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

pub use card::Card;
use catalog::{CatalogError, ImportReport, Product};
pub use suggest::Suggestion;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CrmSettings {
    /// language of greetings and reasons: "zh-CN" or "en"
    pub language: String,
    pub suggestions: usize,
    pub new_arrival_days: i64,
    /// the card's JSON stays under this many bytes: suggestions are dropped to fit
    pub card_budget_bytes: usize,
    pub segments: SegmentSettings,
    /// language → situation ("new", "first_return", "regular", "vip", "lapsed") → template
    pub greetings: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SegmentSettings {
    /// customers whose spend over the last year is above this quantile of the store's are VIP
    pub vip_spend_quantile: f64,
    /// lapsed: no visit for this many times the store's median gap between visits …
    pub lapsed_gap_factor: f64,
    /// … and never fewer days than this
    pub min_lapsed_days: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    #[error("the header row must name customer, visited_at, sku, quantity, unit_price")]
    HistoryHeader,
    #[error("no customer with id {0}")]
    UnknownCustomer(i64),
    #[error("catalogue")]
    Catalog(#[from] CatalogError),
    #[error("database error")]
    Store(#[from] rusqlite::Error),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

/// The store's own distribution, recomputed after imports and now and then.
#[derive(Debug, Clone, Default)]
pub struct StoreStats {
    pub vip_spend_cents: i64,
    pub lapsed_after_days: i64,
    pub median_gap_days: Option<f64>,
    pub popularity: HashMap<String, u32>,
}

struct Catalog {
    products: Vec<Product>,
    by_sku: HashMap<String, usize>,
}

impl Catalog {
    fn new(products: Vec<Product>) -> Self {
        let by_sku = products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.sku.clone(), i))
            .collect();
        Catalog { products, by_sku }
    }
}

/// Connections that only read (cards, statistics): a card never waits behind an import or a
/// statistics refresh, nor behind another card.
const READERS: usize = 2;

pub struct Crm {
    /// the one writer (imports, attributes, the demo store)
    conn: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    settings: CrmSettings,
    catalog: RwLock<Arc<Catalog>>,
    stats: RwLock<Arc<StoreStats>>,
}

impl Crm {
    pub fn open(data_dir: &Path, settings: CrmSettings) -> Result<Crm, CrmError> {
        let conn = crate::db::connect(data_dir)?;
        let readers = (0..READERS)
            .map(|_| crate::db::connect(data_dir).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        let crm = Crm {
            catalog: RwLock::new(Arc::new(Catalog::new(catalog::load(&conn)?))),
            conn: Mutex::new(conn),
            readers,
            settings,
            stats: RwLock::new(Arc::default()),
        };
        crm.refresh_stats()?;
        Ok(crm)
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A free reading connection, or the first one to become free.
    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        for reader in &self.readers {
            if let Ok(conn) = reader.try_lock() {
                return conn;
            }
        }
        self.readers[0].lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn settings(&self) -> &CrmSettings {
        &self.settings
    }

    pub fn products(&self) -> usize {
        self.catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .products
            .len()
    }

    pub fn stats(&self) -> Arc<StoreStats> {
        self.stats.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Imports a CSV or JSON catalogue: good rows are stored, bad rows reported.
    pub fn import_catalog(&self, text: &str) -> Result<ImportReport, CrmError> {
        let (products, errors) = catalog::parse(text)?;
        let mut conn = self.conn();
        catalog::upsert(&mut conn, &products)?;
        self.reload_catalog(&conn)?;
        Ok(ImportReport {
            imported: products.len(),
            errors,
        })
    }

    /// Swaps in the catalogue as stored, after a change to it.
    fn reload_catalog(&self, conn: &Connection) -> Result<(), CrmError> {
        let catalog = Arc::new(Catalog::new(catalog::load(conn)?));
        *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = catalog;
        Ok(())
    }

    /// Recomputes the segment thresholds and best-sellers from the store's own history.
    pub fn refresh_stats(&self) -> Result<(), CrmError> {
        let conn = self.reader();
        let year_ago = Utc::now() - chrono::Duration::days(365);
        let mut spends: Vec<i64> = conn
            .prepare(
                "SELECT SUM(quantity * unit_price_cents) FROM purchases
                 WHERE purchased_at >= ?1 GROUP BY customer_id",
            )?
            .query_map([year_ago], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        spends.sort_unstable();
        let mut gaps: Vec<f64> = conn
            .prepare(
                "SELECT COUNT(*), MIN(visited_at), MAX(visited_at) FROM visits
                 GROUP BY customer_id HAVING COUNT(*) >= 2",
            )?
            .query_map([], |r| {
                let (n, first, last): (i64, DateTime<Utc>, DateTime<Utc>) =
                    (r.get(0)?, r.get(1)?, r.get(2)?);
                Ok((last - first).num_hours() as f64 / 24.0 / (n - 1) as f64)
            })?
            .collect::<Result<_, _>>()?;
        gaps.sort_by(f64::total_cmp);
        let popularity: HashMap<String, u32> = conn
            .prepare("SELECT sku, SUM(quantity) FROM purchases GROUP BY sku")?
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u32)))?
            .collect::<Result<_, _>>()?;
        drop(conn);
        let s = &self.settings.segments;
        let quantile = |sorted: &[i64], q: f64| {
            sorted
                .get(((sorted.len().saturating_sub(1)) as f64 * q).round() as usize)
                .copied()
        };
        let median_gap = gaps.get(gaps.len() / 2).copied();
        let stats = StoreStats {
            // with no sales yet nobody is VIP
            vip_spend_cents: quantile(&spends, s.vip_spend_quantile)
                .unwrap_or(i64::MAX)
                .max(1),
            lapsed_after_days: median_gap
                .map_or(s.min_lapsed_days, |g| {
                    (g * s.lapsed_gap_factor).round() as i64
                })
                .max(s.min_lapsed_days),
            median_gap_days: median_gap,
            popularity,
        };
        tracing::info!(
            vip_spend_cents = stats.vip_spend_cents,
            lapsed_after_days = stats.lapsed_after_days,
            "store statistics refreshed"
        );
        *self.stats.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(stats);
        Ok(())
    }

    /// Sets what is known about a customer for suggestions (each `None` leaves it unknown).
    pub fn set_attributes(
        &self,
        customer_id: i64,
        gender: Option<&str>,
        birth_year: Option<i32>,
        body_type: Option<&str>,
    ) -> Result<(), CrmError> {
        let changed = self.conn().execute(
            "UPDATE customers SET gender = ?2, birth_year = ?3, body_type = ?4 WHERE id = ?1",
            params![customer_id, gender, birth_year, body_type],
        )?;
        if changed == 0 {
            return Err(CrmError::UnknownCustomer(customer_id));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CrmSettings {
        use figment::providers::Format;
        let all: crate::config::Settings =
            figment::Figment::from(figment::providers::Toml::string(crate::config::DEFAULTS))
                .extract()
                .unwrap();
        all.crm
    }

    #[test]
    fn cards_greet_in_the_stores_language_and_stay_under_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = settings();
        settings.language = "en".into();
        settings.suggestions = 10;
        let crm = Crm::open(dir.path(), settings.clone()).unwrap();
        let long = "x".repeat(150);
        let csv: String =
            std::iter::once("sku,name,category,price,arrival_date,stock,styles,colours".to_owned())
                .chain(
                    (0..10).map(|i| format!("S{i},{long} {i},dress,100,2026-01-01,5,simple,white")),
                )
                .collect::<Vec<_>>()
                .join("\n");
        assert_eq!(crm.import_catalog(&csv).unwrap().imported, 10);
        let now = Utc::now();
        crm.conn()
            .execute(
                "INSERT INTO customers(display_name, consent_how, consent_by, consent_at, created_at)
                 VALUES ('Zhou Min', 'signed', 'test', ?1, ?1)",
                [now],
            )
            .unwrap();
        let long_ago = now - chrono::Duration::days(200);
        crm.conn()
            .execute(
                "INSERT INTO visits(customer_id, visited_at) VALUES (1, ?1)",
                [long_ago],
            )
            .unwrap();
        let card = crm.card(1, 0.95, now).unwrap();
        assert_eq!(card.segment, "lapsed");
        assert_eq!(
            card.greeting.as_deref(),
            Some(
                "Zhou Min, it has been about 7 months since your last visit: we have many new arrivals."
            )
        );
        let size = serde_json::to_vec(&card).unwrap().len();
        assert!(size <= settings.card_budget_bytes, "{size} bytes");
        assert!(!card.suggestions.is_empty() && card.suggestions.len() < 10);
        assert!(matches!(
            crm.card(99, 0.9, now),
            Err(CrmError::UnknownCustomer(99))
        ));
    }
}
