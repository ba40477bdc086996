//! A realistic demo store from a seeded RNG (the same seed gives the same store): a catalogue
//! with the designers' keywords, and customers with attributes, tastes and visit histories in
//! which they mostly buy what suits their taste, sometimes a best-seller, now and then anything.

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rusqlite::params;

use super::catalog::{self, Product};
use super::{Crm, CrmError};
use crate::gallery::BasketItem;
use crate::gallery::store::insert_visit;

const CATEGORIES: &[(&str, i64, &str)] = &[
    // (category, typical price in yuan, who it is for)
    ("dress", 599, "female"),
    ("blouse", 299, "female"),
    ("skirt", 349, "female"),
    ("trousers", 399, "unisex"),
    ("coat", 1299, "unisex"),
    ("knitwear", 499, "unisex"),
    ("shirt", 259, "unisex"),
    ("jacket", 899, "unisex"),
    ("jeans", 359, "unisex"),
    ("t-shirt", 129, "unisex"),
    ("suit", 1599, "male"),
    ("polo", 229, "male"),
];
const STYLES: &[&str] = &[
    "simple",
    "professional",
    "elegant",
    "casual",
    "sporty",
    "romantic",
    "vintage",
    "street",
];
const COLOURS: &[&str] = &[
    "white", "black", "navy", "beige", "red", "green", "pink", "grey", "camel", "blue",
];
const BODY_TYPES: &[&str] = &["slim", "medium", "curvy", "petite", "tall"];
const AGE_RANGES: &[(u32, u32)] = &[(18, 25), (25, 35), (30, 45), (40, 60), (18, 60)];
const SURNAMES: &[&str] = &[
    "Zhou", "Li", "Wang", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Xu", "Sun", "Ma",
    "Hu", "Guo", "Lin", "He", "Gao", "Luo", "Zheng",
];
const GIVEN: &[&str] = &[
    "Min", "Na", "Jing", "Li", "Hui", "Yan", "Fang", "Lei", "Jun", "Tao", "Qiang", "Wei", "Xin",
    "Yu", "Ting", "Hao", "Lin", "Mei", "Jie", "Ping",
];

pub struct DemoCustomer {
    pub name: String,
    pub gender: &'static str,
    pub birth_year: i32,
    pub body_type: &'static str,
    /// visits, oldest first, each with its basket
    pub visits: Vec<(DateTime<Utc>, Vec<BasketItem>)>,
}

pub struct DemoStore {
    pub products: Vec<Product>,
    pub customers: Vec<DemoCustomer>,
}

impl DemoStore {
    /// Items sold over all visits.
    pub fn purchases(&self) -> usize {
        self.customers
            .iter()
            .flat_map(|c| &c.visits)
            .map(|(_, basket)| basket.len())
            .sum()
    }
}

struct Taste {
    categories: Vec<&'static str>,
    styles: Vec<&'static str>,
    colours: Vec<&'static str>,
    /// price multiplier they are comfortable with
    price: f64,
}

fn shared(a: &[String], b: &[&str]) -> usize {
    a.iter().filter(|x| b.contains(&x.as_str())).count()
}

/// Generates the store; `now` anchors arrival and visit dates.
pub fn generate(seed: u64, items: usize, customers: usize, now: DateTime<Utc>) -> DemoStore {
    let mut rng = StdRng::seed_from_u64(seed);
    let today = now.date_naive();
    let products: Vec<Product> = (0..items)
        .map(|i| {
            let &(category, base, gender) = CATEGORIES.choose(&mut rng).expect("not empty");
            let style_count = rng.random_range(1..=2);
            let styles: Vec<String> = STYLES
                .choose_multiple(&mut rng, style_count)
                .map(|s| s.to_string())
                .collect();
            let colour = *COLOURS.choose(&mut rng).expect("not empty");
            let (age_min, age_max) = *AGE_RANGES.choose(&mut rng).expect("not empty");
            let mut bodies: Vec<String> = BODY_TYPES.iter().map(|b| b.to_string()).collect();
            bodies.shuffle(&mut rng);
            bodies.truncate(rng.random_range(2..=BODY_TYPES.len()));
            Product {
                sku: format!("{}-{:04}", category.to_uppercase().replace('-', ""), i + 1),
                name: format!("{colour} {} {category}", styles[0]),
                category: category.to_owned(),
                price_cents: (base as f64 * rng.random_range(0.6..1.8)).round() as i64 * 100,
                // two years of arrivals, a few in the last weeks
                arrived_on: today - Duration::days(rng.random_range(0..730)),
                stock: if rng.random_bool(0.1) {
                    0
                } else {
                    rng.random_range(1..40)
                },
                gender: Some(gender.to_owned()),
                age_min: Some(age_min),
                age_max: Some(age_max),
                body_types: bodies,
                styles,
                colours: vec![colour.to_owned()],
                extra: Default::default(),
            }
        })
        .collect();
    // a few items everybody buys
    let hits: Vec<usize> = (0..products.len().min(15))
        .map(|_| rng.random_range(0..products.len()))
        .collect();
    let customers = (0..customers)
        .map(|_| {
            let gender = if rng.random_bool(0.75) {
                "female"
            } else {
                "male"
            };
            let theirs = |c: &&(&str, i64, &str)| c.2 == "unisex" || c.2 == gender;
            let categories: Vec<&str> = CATEGORIES
                .iter()
                .filter(theirs)
                .collect::<Vec<_>>()
                .choose_multiple(&mut rng, 2)
                .map(|c| c.0)
                .collect();
            let taste = Taste {
                categories,
                styles: STYLES.choose_multiple(&mut rng, 2).copied().collect(),
                colours: COLOURS.choose_multiple(&mut rng, 2).copied().collect(),
                price: rng.random_range(0.6..1.6),
            };
            let visits_count = 1 + (rng.random::<f64>().powi(2) * 14.0) as usize;
            let mut dates: Vec<DateTime<Utc>> = (0..visits_count)
                .map(|_| now - Duration::hours(rng.random_range(24..730 * 24)))
                .collect();
            dates.sort();
            let mut bought = std::collections::HashSet::new();
            let visits = dates
                .into_iter()
                .map(|at| {
                    let on_sale: Vec<usize> = (0..products.len())
                        .filter(|&i| {
                            let p = &products[i];
                            p.arrived_on <= at.date_naive()
                                && !bought.contains(&i)
                                && p.gender
                                    .as_deref()
                                    .is_none_or(|g| g == "unisex" || g == gender)
                        })
                        .collect();
                    let basket: Vec<BasketItem> = (0..rng.random_range(1..=3))
                        .filter_map(|_| {
                            let pick = match rng.random::<f64>() {
                                x if x < 0.15 => **hits
                                    .iter()
                                    .filter(|h| on_sale.contains(h))
                                    .collect::<Vec<_>>()
                                    .choose(&mut rng)?,
                                x if x < 0.25 => *on_sale.choose(&mut rng)?,
                                _ => *on_sale
                                    .choose_weighted(&mut rng, |&i| {
                                        let p = &products[i];
                                        let fit =
                                            3.0 * f64::from(u8::from(
                                                taste.categories.contains(&p.category.as_str()),
                                            )) + 1.5 * shared(&p.styles, &taste.styles) as f64
                                                + shared(&p.colours, &taste.colours) as f64;
                                        let price = p.price_cents as f64
                                            / (CATEGORIES
                                                .iter()
                                                .find(|c| c.0 == p.category)
                                                .map_or(500, |c| c.1)
                                                as f64
                                                * 100.0);
                                        let price_fit =
                                            1.0 / (1.0 + (price - taste.price).abs() * 3.0);
                                        (0.05 + fit * price_fit).powi(2)
                                    })
                                    .ok()?,
                            };
                            if !bought.insert(pick) {
                                return None;
                            }
                            Some(BasketItem {
                                sku: products[pick].sku.clone(),
                                quantity: 1,
                                unit_price_cents: products[pick].price_cents,
                            })
                        })
                        .collect();
                    (at, basket)
                })
                .collect();
            DemoCustomer {
                name: format!(
                    "{} {}",
                    SURNAMES.choose(&mut rng).expect("not empty"),
                    GIVEN.choose(&mut rng).expect("not empty")
                ),
                gender,
                birth_year: rng.random_range(1965..2006),
                body_type: BODY_TYPES.choose(&mut rng).expect("not empty"),
                visits,
            }
        })
        .collect();
    DemoStore {
        products,
        customers,
    }
}

impl Crm {
    /// Writes the demo store in one transaction: the catalogue, and each demo customer's
    /// attributes and visits. The first customers are `enrolled` (ids of customers already
    /// created with their faces, in order); the rest are created here, without portraits.
    /// Returns every customer's id.
    pub fn write_demo(&self, store: &DemoStore, enrolled: &[i64]) -> Result<Vec<i64>, CrmError> {
        let mut conn = self.conn();
        catalog::upsert(&mut conn, &store.products)?;
        let tx = conn.transaction()?;
        let now = Utc::now();
        let mut ids = Vec::with_capacity(store.customers.len());
        for (i, customer) in store.customers.iter().enumerate() {
            let id = match enrolled.get(i) {
                Some(&id) => id,
                None => {
                    tx.execute(
                        "INSERT INTO customers(display_name, consent_how, consent_by, consent_at, created_at)
                         VALUES (?1, 'demo data', 'greeter demo seed', ?2, ?2)",
                        params![customer.name, now],
                    )?;
                    tx.last_insert_rowid()
                }
            };
            ids.push(id);
            tx.execute(
                "UPDATE customers SET gender = ?2, birth_year = ?3, body_type = ?4 WHERE id = ?1",
                params![id, customer.gender, customer.birth_year, customer.body_type],
            )?;
            for (at, basket) in &customer.visits {
                insert_visit(&tx, id, *at, Some("till"), basket)?;
            }
        }
        tx.commit()?;
        self.reload_catalog(&conn)?;
        drop(conn);
        self.refresh_stats()?;
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_store() {
        let now: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        let a = generate(7, 50, 20, now);
        let b = generate(7, 50, 20, now);
        assert_eq!(a.products, b.products);
        let visits = |s: &DemoStore| -> Vec<Vec<String>> {
            s.customers
                .iter()
                .flat_map(|c| {
                    c.visits
                        .iter()
                        .map(|(_, b)| b.iter().map(|i| i.sku.clone()).collect())
                })
                .collect()
        };
        assert_eq!(visits(&a), visits(&b));
        assert_ne!(visits(&a), visits(&generate(8, 50, 20, now)));
        // nobody buys an item before it arrived
        for c in &a.customers {
            for (at, basket) in &c.visits {
                for item in basket {
                    let p = a.products.iter().find(|p| p.sku == item.sku).unwrap();
                    assert!(p.arrived_on <= at.date_naive());
                }
            }
        }
    }
}
