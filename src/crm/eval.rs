//! Offline quality of the suggestions: hold out each customer's last purchase, suggest from
//! the rest, and count how often the held-out item is in the top 5 / top 10 — against a
//! popularity baseline and a random one.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;

use super::suggest::{self, Options, Shopper};
use super::{Crm, CrmError};

#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct HitRates {
    pub at5: f64,
    pub at10: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// customers with at least two purchases (one held out)
    pub customers: usize,
    pub suggestions: HitRates,
    pub popularity: HitRates,
    /// the expected hit rate of picking uniformly among the same candidates
    pub random: HitRates,
}

struct History {
    gender: Option<String>,
    birth_year: Option<i32>,
    body_type: Option<String>,
    /// (sku, when), oldest first
    bought: Vec<(String, DateTime<Utc>)>,
}

impl Crm {
    fn histories(&self) -> Result<Vec<History>, CrmError> {
        let conn = self.conn();
        let mut customers: HashMap<i64, History> = conn
            .prepare("SELECT id, gender, birth_year, body_type FROM customers")?
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    History {
                        gender: r.get(1)?,
                        birth_year: r.get(2)?,
                        body_type: r.get(3)?,
                        bought: Vec::new(),
                    },
                ))
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare(
            "SELECT customer_id, sku, purchased_at FROM purchases ORDER BY purchased_at, id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)))?;
        for row in rows {
            let (customer, sku, at) = row?;
            if let Some(h) = customers.get_mut(&customer) {
                h.bought.push((sku, at));
            }
        }
        let mut histories: Vec<(i64, History)> = customers.into_iter().collect();
        histories.sort_by_key(|(id, _)| *id);
        Ok(histories.into_iter().map(|(_, h)| h).collect())
    }

    pub fn evaluate(&self) -> Result<Evaluation, CrmError> {
        let catalog = self
            .catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let histories: Vec<History> = self
            .histories()?
            .into_iter()
            .filter(|h| h.bought.len() >= 2)
            .collect();
        // popularity without the held-out purchases
        let mut popularity: HashMap<String, u32> = HashMap::new();
        for h in &histories {
            for (sku, _) in &h.bought[..h.bought.len() - 1] {
                *popularity.entry(sku.clone()).or_default() += 1;
            }
        }
        let mut popular: Vec<(&String, &u32)> = popularity.iter().collect();
        popular.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let options = Options {
            new_arrival_days: self.settings.new_arrival_days,
            // what was in stock then is unknown: every item is a candidate
            in_stock_only: false,
        };
        let (mut ours, mut baseline, mut random) = (
            HitRates::default(),
            HitRates::default(),
            HitRates::default(),
        );
        let mut counted = 0usize;
        for h in &histories {
            let (held_out, at) = h.bought.last().expect("two or more");
            let before: Vec<_> = h.bought[..h.bought.len() - 1]
                .iter()
                .filter(|(sku, _)| sku != held_out)
                .filter_map(|(sku, at)| Some((&catalog.products[*catalog.by_sku.get(sku)?], *at)))
                .collect();
            if before.is_empty() || !catalog.by_sku.contains_key(held_out) {
                continue;
            }
            counted += 1;
            let shopper = Shopper {
                gender: h.gender.as_deref(),
                age: h.birth_year.map(|y| (at.year() - y).max(0) as u32),
                body_type: h.body_type.as_deref(),
                bought: before,
            };
            let ranked = suggest::rank(
                &catalog.products,
                &shopper,
                &popularity,
                at.date_naive(),
                &options,
            );
            let position =
                |mut skus: Box<dyn Iterator<Item = &str> + '_>| skus.position(|s| s == held_out);
            let add = |rates: &mut HitRates, rank: Option<usize>| {
                rates.at5 += f64::from(rank.is_some_and(|r| r < 5));
                rates.at10 += f64::from(rank.is_some_and(|r| r < 10));
            };
            add(
                &mut ours,
                position(Box::new(
                    ranked
                        .iter()
                        .map(|(i, _)| catalog.products[*i].sku.as_str()),
                )),
            );
            let bought: std::collections::HashSet<&str> =
                shopper.bought.iter().map(|(p, _)| p.sku.as_str()).collect();
            add(
                &mut baseline,
                position(Box::new(
                    popular
                        .iter()
                        .map(|(sku, _)| sku.as_str())
                        .filter(|s| !bought.contains(s)),
                )),
            );
            let candidates = (catalog.products.len() - bought.len()).max(1) as f64;
            random.at5 += (5.0 / candidates).min(1.0);
            random.at10 += (10.0 / candidates).min(1.0);
        }
        let n = counted.max(1) as f64;
        let scale = |r: HitRates| HitRates {
            at5: r.at5 / n,
            at10: r.at10 / n,
        };
        Ok(Evaluation {
            customers: counted,
            suggestions: scale(ours),
            popularity: scale(baseline),
            random: scale(random),
        })
    }
}
