//! What the glasses say about a recognised customer: the card — name, last visit, segment,
//! suggested items and a greeting line — from the store's own catalogue and history.

pub mod catalog;
pub mod demo;
pub mod eval;
pub mod history;
pub mod suggest;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Datelike, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use catalog::{CatalogError, ImportReport, Product};
pub use suggest::Suggestion;
use suggest::{Options, Shopper};

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
    #[error("{0}")]
    Invalid(String),
    #[error("no customer with id {0}")]
    UnknownCustomer(i64),
    #[error("catalogue")]
    Catalog(#[from] CatalogError),
    #[error("database error")]
    Store(#[from] rusqlite::Error),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

/// Small on purpose: a glance on a glasses display, under `crm.card_budget_bytes` as JSON.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Card {
    pub customer_id: i64,
    pub name: String,
    /// the last recorded visit (checkout), if any
    pub last_visit: Option<DateTime<Utc>>,
    /// whole days since `last_visit`
    pub days_since_last_visit: Option<i64>,
    pub visits: u64,
    /// "new", "first_return", "regular", "vip" or "lapsed"
    pub segment: &'static str,
    /// similarity of the face to the customer's best portrait
    pub score: f32,
    pub greeting: Option<String>,
    /// best first
    pub suggestions: Vec<Suggestion>,
}

#[cfg(test)]
impl Card {
    /// A new customer's card, for tests of what carries cards around.
    pub fn example(customer_id: i64) -> Card {
        Card {
            customer_id,
            name: format!("customer {customer_id}"),
            last_visit: None,
            days_since_last_visit: None,
            visits: 0,
            segment: "new",
            score: 0.97,
            suggestions: vec![],
            greeting: None,
        }
    }
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

pub struct Crm {
    conn: Mutex<Connection>,
    settings: CrmSettings,
    catalog: RwLock<Arc<Catalog>>,
    stats: RwLock<Arc<StoreStats>>,
}

/// A customer's facts for a card.
struct Profile {
    name: String,
    gender: Option<String>,
    birth_year: Option<i32>,
    body_type: Option<String>,
    visits: u64,
    last_visit: Option<DateTime<Utc>>,
    spend_last_year: i64,
    bought: Vec<(String, DateTime<Utc>)>,
}

impl Crm {
    pub fn open(data_dir: &Path, settings: CrmSettings) -> Result<Crm, CrmError> {
        let conn = crate::db::connect(data_dir)?;
        let crm = Crm {
            catalog: RwLock::new(Arc::new(Catalog::new(catalog::load(&conn)?))),
            conn: Mutex::new(conn),
            settings,
            stats: RwLock::new(Arc::default()),
        };
        crm.refresh_stats()?;
        Ok(crm)
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
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
        let conn = self.conn();
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

    fn profile(&self, customer_id: i64, now: DateTime<Utc>) -> Result<Profile, CrmError> {
        let conn = self.conn();
        let mut profile = conn
            .query_row(
                "SELECT display_name, gender, birth_year, body_type FROM customers WHERE id = ?1",
                [customer_id],
                |r| {
                    Ok(Profile {
                        name: r.get(0)?,
                        gender: r.get(1)?,
                        birth_year: r.get(2)?,
                        body_type: r.get(3)?,
                        visits: 0,
                        last_visit: None,
                        spend_last_year: 0,
                        bought: Vec::new(),
                    })
                },
            )
            .optional()?
            .ok_or(CrmError::UnknownCustomer(customer_id))?;
        (profile.visits, profile.last_visit) = conn.query_row(
            "SELECT COUNT(*), MAX(visited_at) FROM visits WHERE customer_id = ?1",
            [customer_id],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
        )?;
        let year_ago = now - chrono::Duration::days(365);
        let mut stmt = conn.prepare_cached(
            "SELECT sku, quantity * unit_price_cents, purchased_at FROM purchases
             WHERE customer_id = ?1 ORDER BY purchased_at",
        )?;
        let rows = stmt.query_map([customer_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get(2)?))
        })?;
        for row in rows {
            let (sku, spent, at): (String, i64, DateTime<Utc>) = row?;
            if at >= year_ago {
                profile.spend_last_year += spent;
            }
            profile.bought.push((sku, at));
        }
        Ok(profile)
    }

    /// The card for a recognised customer.
    pub fn card(&self, customer_id: i64, score: f32, now: DateTime<Utc>) -> Result<Card, CrmError> {
        let profile = self.profile(customer_id, now)?;
        let stats = self.stats();
        let catalog = self
            .catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let days = profile.last_visit.map(|at| (now - at).num_days());
        let segment = segment(&profile, days, &stats);
        let shopper = Shopper {
            gender: profile.gender.as_deref(),
            age: profile.birth_year.map(|y| (now.year() - y).max(0) as u32),
            body_type: profile.body_type.as_deref(),
            bought: profile
                .bought
                .iter()
                .filter_map(|(sku, at)| Some((&catalog.products[*catalog.by_sku.get(sku)?], *at)))
                .collect(),
        };
        let options = Options {
            new_arrival_days: self.settings.new_arrival_days,
            in_stock_only: true,
        };
        let today = now.date_naive();
        let suggestions = suggest::rank(
            &catalog.products,
            &shopper,
            &stats.popularity,
            today,
            &options,
        )
        .into_iter()
        .take(self.settings.suggestions)
        .map(|(i, _)| {
            let p = &catalog.products[i];
            Suggestion {
                sku: p.sku.clone(),
                name: p.name.clone(),
                reason: suggest::reason(p, &shopper, today, &options, &self.settings.language),
            }
        })
        .collect();
        let mut card = Card {
            customer_id,
            greeting: self.greeting(segment, &profile.name, days, profile.visits),
            name: profile.name,
            last_visit: profile.last_visit,
            days_since_last_visit: days,
            visits: profile.visits,
            segment,
            score,
            suggestions,
        };
        while serde_json::to_vec(&card).map_or(0, |v| v.len()) > self.settings.card_budget_bytes
            && card.suggestions.pop().is_some()
        {}
        Ok(card)
    }

    fn greeting(
        &self,
        segment: &str,
        name: &str,
        days: Option<i64>,
        visits: u64,
    ) -> Option<String> {
        let template = self
            .settings
            .greetings
            .get(&self.settings.language)?
            .get(segment)?;
        let days = days.unwrap_or(0);
        let months = (days as f64 / 30.4).round().max(1.0) as i64;
        Some(fill(
            template,
            &[
                ("name", name.to_owned()),
                ("days", days.to_string()),
                ("months", months.to_string()),
                ("visits", visits.to_string()),
            ],
        ))
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

/// `template` with each `{key}` replaced by its value, in one pass: a value is never read as a
/// template itself (a customer named "{days}" stays "{days}"), and unknown keys stay as written.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let key = &after[..close];
            values
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (v, close))
        });
        match value {
            Some((v, close)) => {
                out.push_str(v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn segment(profile: &Profile, days: Option<i64>, stats: &StoreStats) -> &'static str {
    match (profile.visits, days) {
        (0, _) | (_, None) => "new",
        (_, Some(d)) if d > stats.lapsed_after_days => "lapsed",
        _ if profile.spend_last_year >= stats.vip_spend_cents => "vip",
        (1, _) => "first_return",
        _ => "regular",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(visits: u64, spend: i64) -> Profile {
        Profile {
            name: "Zhou Min".into(),
            gender: None,
            birth_year: None,
            body_type: None,
            visits,
            last_visit: None,
            spend_last_year: spend,
            bought: vec![],
        }
    }

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

    #[test]
    fn greeting_values_are_never_read_as_templates() {
        let values = [("name", "{days}".to_owned()), ("days", "91".to_owned())];
        assert_eq!(
            fill("{name}, {days} days; {unknown} {", &values),
            "{days}, 91 days; {unknown} {"
        );
    }

    #[test]
    fn segments_follow_the_stores_thresholds() {
        let stats = StoreStats {
            vip_spend_cents: 100_000,
            lapsed_after_days: 90,
            ..Default::default()
        };
        assert_eq!(segment(&profile(0, 0), None, &stats), "new");
        assert_eq!(segment(&profile(3, 500_000), Some(120), &stats), "lapsed");
        assert_eq!(segment(&profile(3, 500_000), Some(10), &stats), "vip");
        assert_eq!(
            segment(&profile(1, 20_000), Some(10), &stats),
            "first_return"
        );
        assert_eq!(segment(&profile(5, 20_000), Some(10), &stats), "regular");
    }
}
