//! Items worth suggesting: in-stock items the customer has not bought, scored by how well the
//! designers' keywords fit what the customer bought (category, styles, colours, price band) and
//! who they are (gender, age, body type), with a boost for new arrivals. Without history: the
//! best new arrivals for who they are, then best-sellers.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Serialize;

use super::catalog::Product;

#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    pub sku: String,
    pub name: String,
    /// one line on why this item, for the assistant
    pub reason: String,
}

/// What is known about a customer, for scoring.
pub struct Shopper<'a> {
    pub gender: Option<&'a str>,
    pub age: Option<u32>,
    pub body_type: Option<&'a str>,
    /// what they bought, oldest first
    pub bought: Vec<(&'a Product, DateTime<Utc>)>,
}

pub struct Options {
    /// arrivals younger than this get a boost, fading to none
    pub new_arrival_days: i64,
    pub in_stock_only: bool,
}

/// Shares of each keyword in the customer's purchases.
struct Taste {
    categories: HashMap<String, f32>,
    styles: HashMap<String, f32>,
    colours: HashMap<String, f32>,
    /// median price paid, cents
    price: Option<f32>,
}

fn shares<'a>(items: impl Iterator<Item = &'a String>) -> HashMap<String, f32> {
    let mut counts: HashMap<String, f32> = HashMap::new();
    let mut total = 0.0;
    for item in items {
        *counts.entry(item.clone()).or_default() += 1.0;
        total += 1.0;
    }
    counts.values_mut().for_each(|c| *c /= total);
    counts
}

impl Taste {
    fn of(bought: &[(&Product, DateTime<Utc>)]) -> Taste {
        let mut prices: Vec<f32> = bought.iter().map(|(p, _)| p.price_cents as f32).collect();
        prices.sort_by(f32::total_cmp);
        Taste {
            categories: shares(bought.iter().map(|(p, _)| &p.category)),
            styles: shares(bought.iter().flat_map(|(p, _)| &p.styles)),
            colours: shares(bought.iter().flat_map(|(p, _)| &p.colours)),
            price: prices.get(prices.len() / 2).copied(),
        }
    }

    fn fit(&self, p: &Product) -> f32 {
        let sum = |shares: &HashMap<String, f32>, keys: &[String]| -> f32 {
            keys.iter().filter_map(|k| shares.get(k)).sum()
        };
        let price = self.price.map_or(0.0, |median| {
            // 1 at the customer's usual price, 0 at three times (or a third of) it
            let ratio = (p.price_cents.max(1) as f32 / median.max(1.0)).ln().abs();
            (1.0 - ratio / 3f32.ln()).max(0.0)
        });
        3.0 * self.categories.get(&p.category).copied().unwrap_or(0.0)
            + 2.0 * sum(&self.styles, &p.styles)
            + 1.0 * sum(&self.colours, &p.colours)
            + 1.0 * price
    }
}

/// Whether the item is meant for this customer at all, and how well it suits who they are.
fn suits(p: &Product, shopper: &Shopper) -> Option<f32> {
    if let (Some(theirs), Some(its)) = (shopper.gender, p.gender.as_deref())
        && its != "unisex"
        && its != theirs
    {
        return None;
    }
    let mut fit = 0.0;
    if let (Some(age), Some(low), Some(high)) = (shopper.age, p.age_min, p.age_max) {
        fit += if (low..=high).contains(&age) {
            0.5
        } else {
            -0.5
        };
    }
    if let Some(body) = shopper.body_type
        && !p.body_types.is_empty()
    {
        fit += if p.body_types.iter().any(|b| b == body) {
            0.5
        } else {
            -0.5
        };
    }
    Some(fit)
}

fn newness(p: &Product, today: NaiveDate, days: i64) -> f32 {
    let age = (today - p.arrived_on).num_days();
    if (0..days).contains(&age) {
        1.0 - age as f32 / days as f32
    } else {
        0.0
    }
}

/// Every candidate, best first: (index in `catalog`, score).
pub fn rank(
    catalog: &[Product],
    shopper: &Shopper,
    popularity: &HashMap<String, u32>,
    today: NaiveDate,
    options: &Options,
) -> Vec<(usize, f32)> {
    let bought: HashSet<&str> = shopper.bought.iter().map(|(p, _)| p.sku.as_str()).collect();
    let taste = (!shopper.bought.is_empty()).then(|| Taste::of(&shopper.bought));
    let most_sold = popularity.values().copied().max().unwrap_or(1).max(1) as f32;
    let mut ranked: Vec<(usize, f32)> = catalog
        .iter()
        .enumerate()
        .filter(|(_, p)| !bought.contains(p.sku.as_str()))
        .filter(|(_, p)| !options.in_stock_only || p.stock > 0)
        .filter(|(_, p)| p.arrived_on <= today)
        .filter_map(|(i, p)| {
            let suits = suits(p, shopper)?;
            let sold = popularity.get(&p.sku).copied().unwrap_or(0) as f32 / most_sold;
            let new = newness(p, today, options.new_arrival_days);
            let score = match &taste {
                Some(taste) => taste.fit(p) + suits + 0.75 * new + 1.0 * sold,
                // no history: new arrivals that suit them, then best-sellers
                None => suits + new + 0.5 * sold,
            };
            Some((i, score))
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

/// The past purchase most like `p` (same category counts most, then shared keywords).
fn closest_purchase<'a>(
    p: &Product,
    bought: &[(&'a Product, DateTime<Utc>)],
) -> Option<(&'a Product, DateTime<Utc>)> {
    let shared = |a: &[String], b: &[String]| a.iter().filter(|x| b.contains(x)).count();
    bought
        .iter()
        .map(|&(past, at)| {
            let overlap = 2 * usize::from(past.category == p.category)
                + shared(&past.styles, &p.styles)
                + shared(&past.colours, &p.colours);
            (overlap, at, past)
        })
        .filter(|(overlap, _, _)| *overlap > 0)
        .max_by_key(|(overlap, at, _)| (*overlap, *at))
        .map(|(_, at, past)| (past, at))
}

/// The reason line, in the store's language ("zh-CN" or anything else for English).
pub fn reason(
    p: &Product,
    shopper: &Shopper,
    today: NaiveDate,
    options: &Options,
    language: &str,
) -> String {
    let new = newness(p, today, options.new_arrival_days) > 0.0;
    let zh = language == "zh-CN";
    match (closest_purchase(p, &shopper.bought), zh) {
        (Some((past, at)), true) => format!(
            "和您{}年{}月买的{}风格相近{}",
            at.year(),
            at.month(),
            past.name,
            if new { "，新品" } else { "" }
        ),
        (Some((past, at)), false) => format!(
            "{}like the {} you bought in {}",
            if new { "New in, " } else { "" },
            past.name,
            at.format("%B %Y")
        ),
        (None, true) if new => "新品到店，适合您".to_owned(),
        (None, true) => "店内热销".to_owned(),
        (None, false) if new => "New arrival that suits you".to_owned(),
        (None, false) => "One of our best-sellers".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(
        sku: &str,
        category: &str,
        styles: &[&str],
        colours: &[&str],
        price: i64,
    ) -> Product {
        Product {
            sku: sku.into(),
            name: format!("{} {} {category}", colours.join(" "), styles.join(" ")),
            category: category.into(),
            price_cents: price,
            arrived_on: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
            stock: 5,
            gender: Some("female".into()),
            age_min: None,
            age_max: None,
            body_types: vec![],
            styles: styles.iter().map(|s| s.to_string()).collect(),
            colours: colours.iter().map(|s| s.to_string()).collect(),
            extra: Default::default(),
        }
    }

    fn options() -> Options {
        Options {
            new_arrival_days: 45,
            in_stock_only: true,
        }
    }

    #[test]
    fn items_like_past_purchases_come_first_with_a_reason_naming_the_purchase() {
        let catalog = vec![
            product("A", "dress", &["simple"], &["white"], 50000),
            product("B", "dress", &["simple", "elegant"], &["white"], 60000),
            product("C", "jeans", &["street"], &["blue"], 30000),
            product("D", "dress", &["romantic"], &["pink"], 55000),
        ];
        let march: DateTime<Utc> = "2026-03-10T10:00:00Z".parse().unwrap();
        let shopper = Shopper {
            gender: Some("female"),
            age: Some(30),
            body_type: None,
            bought: vec![(&catalog[0], march)],
        };
        let today = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        let ranked = rank(&catalog, &shopper, &HashMap::new(), today, &options());
        let order: Vec<&str> = ranked
            .iter()
            .map(|(i, _)| catalog[*i].sku.as_str())
            .collect();
        assert_eq!(order, ["B", "D", "C"], "bought A is never suggested");
        let why = reason(&catalog[1], &shopper, today, &options(), "en");
        assert_eq!(why, "like the white simple dress you bought in March 2026");
        let why = reason(&catalog[1], &shopper, today, &options(), "zh-CN");
        assert_eq!(why, "和您2026年3月买的white simple dress风格相近");
    }

    #[test]
    fn without_history_new_arrivals_that_fit_then_best_sellers_and_no_wrong_gender() {
        let today = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        let mut new = product("NEW", "coat", &["elegant"], &["camel"], 90000);
        new.arrived_on = today - chrono::Days::new(5);
        let best_seller = product("HOT", "shirt", &["casual"], &["white"], 20000);
        let mut menswear = product("MEN", "shirt", &["casual"], &["white"], 20000);
        menswear.gender = Some("male".into());
        let mut sold_out = product("OUT", "coat", &["elegant"], &["camel"], 90000);
        sold_out.stock = 0;
        sold_out.arrived_on = new.arrived_on;
        let catalog = vec![best_seller, new, menswear, sold_out];
        let popularity = HashMap::from([("HOT".to_owned(), 40), ("MEN".to_owned(), 90)]);
        let shopper = Shopper {
            gender: Some("female"),
            age: None,
            body_type: None,
            bought: vec![],
        };
        let ranked = rank(&catalog, &shopper, &popularity, today, &options());
        let order: Vec<&str> = ranked
            .iter()
            .map(|(i, _)| catalog[*i].sku.as_str())
            .collect();
        assert_eq!(order, ["NEW", "HOT"]);
        assert_eq!(
            reason(&catalog[1], &shopper, today, &options(), "en"),
            "New arrival that suits you"
        );
    }
}
