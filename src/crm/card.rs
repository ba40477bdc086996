//! The card: what the glasses show about a recognised customer, from their profile, the
//! store's statistics and the catalogue.

use chrono::{DateTime, Datelike, Utc};
use rusqlite::OptionalExtension;
use serde::Serialize;

use super::suggest::{self, Options, Shopper};
use super::{Crm, CrmError, StoreStats, Suggestion};

/// Small on purpose: a glance on a glasses display, under `crm.card_budget_bytes` as JSON.
#[derive(Debug, Clone, Serialize)]
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

/// A customer's facts for a card.
pub(super) struct Profile {
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
    fn profile(&self, customer_id: i64, now: DateTime<Utc>) -> Result<Profile, CrmError> {
        let conn = self.reader();
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
