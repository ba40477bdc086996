//! The product catalogue with the designers' keywords, imported from CSV or JSON. A bad row is
//! reported with its line (CSV) or item number (JSON) and the rest is imported; columns the
//! catalogue does not know are kept with the product.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub category: String,
    pub price_cents: i64,
    pub arrived_on: NaiveDate,
    pub stock: i64,
    /// "female", "male" or "unisex"; none: anyone
    pub gender: Option<String>,
    pub age_min: Option<u32>,
    pub age_max: Option<u32>,
    pub body_types: Vec<String>,
    pub styles: Vec<String>,
    pub colours: Vec<String>,
    /// columns the catalogue does not know, kept as they came
    pub extra: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RowError {
    /// "line 7" (CSV) or "item 3" (JSON)
    pub at: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub imported: usize,
    pub errors: Vec<RowError>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("not a CSV file with a header row")]
    Csv(#[source] csv::Error),
    #[error("not a JSON array of products")]
    Json(#[source] serde_json::Error),
    #[error("database error")]
    Store(#[source] rusqlite::Error),
}

const KNOWN: &[&str] = &[
    "sku",
    "name",
    "category",
    "price",
    "arrival_date",
    "stock",
    "gender",
    "age_range",
    "body_types",
    "styles",
    "colours",
];

/// One row as column → text; CSV and JSON both come through here.
fn product_from_row(row: &BTreeMap<String, String>) -> Result<Product, String> {
    let get = |key: &str| row.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    let required = |key: &str| get(key).ok_or_else(|| format!("missing {key}"));
    let list = |key: &str| -> Vec<String> {
        get(key)
            .map(|v| {
                v.split([';', '|', ','])
                    .map(|s| s.trim().to_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let price: f64 = required("price")?
        .parse()
        .map_err(|_| format!("price {:?} is not a number", get("price").unwrap_or("")))?;
    if !(0.0..1e9).contains(&price) {
        return Err(format!("price {price} is out of range"));
    }
    let arrived_on = NaiveDate::parse_from_str(required("arrival_date")?, "%Y-%m-%d")
        .map_err(|_| "arrival_date must be YYYY-MM-DD".to_owned())?;
    let stock: i64 = required("stock")?
        .parse()
        .map_err(|_| "stock must be a whole number".to_owned())?;
    let gender = get("gender").map(str::to_lowercase);
    if let Some(g) = &gender
        && !["female", "male", "unisex"].contains(&g.as_str())
    {
        return Err(format!("gender {g:?} is not female, male or unisex"));
    }
    let (age_min, age_max) = match get("age_range") {
        None => (None, None),
        Some(range) => {
            let (low, high) = range
                .split_once(['-', '–'])
                .ok_or_else(|| format!("age_range {range:?} is not like 25-35"))?;
            let parse = |v: &str| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("age_range {range:?} is not like 25-35"))
            };
            let (low, high) = (parse(low)?, parse(high)?);
            if low > high {
                return Err(format!("age_range {range:?} runs backwards"));
            }
            (Some(low), Some(high))
        }
    };
    Ok(Product {
        sku: required("sku")?.to_owned(),
        name: required("name")?.to_owned(),
        category: required("category")?.to_lowercase(),
        price_cents: (price * 100.0).round() as i64,
        arrived_on,
        stock,
        gender,
        age_min,
        age_max,
        body_types: list("body_types"),
        styles: list("styles"),
        colours: list("colours"),
        extra: row
            .iter()
            .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

/// Parses a catalogue: JSON (an array of objects) when it starts with `[`, else CSV with a
/// header row. Returns the good products and the bad rows.
pub fn parse(text: &str) -> Result<(Vec<Product>, Vec<RowError>), CatalogError> {
    let mut rows: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    if text.trim_start().starts_with('[') {
        let items: Vec<BTreeMap<String, serde_json::Value>> =
            serde_json::from_str(text).map_err(CatalogError::Json)?;
        for (i, item) in items.into_iter().enumerate() {
            let row = item
                .into_iter()
                .map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Array(a) => a
                            .iter()
                            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                            .collect::<Vec<_>>()
                            .join(";"),
                        serde_json::Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    (k, text)
                })
                .collect();
            rows.push((format!("item {}", i + 1), row));
        }
    } else {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let headers: Vec<String> = reader
            .headers()
            .map_err(CatalogError::Csv)?
            .iter()
            .map(|h| h.to_lowercase())
            .collect();
        for record in reader.records() {
            match record {
                Ok(record) => {
                    let line = record.position().map_or(0, |p| p.line());
                    let row = headers
                        .iter()
                        .cloned()
                        .zip(record.iter().map(str::to_owned))
                        .collect();
                    rows.push((format!("line {line}"), row));
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    rows.push((
                        format!("line {line}"),
                        BTreeMap::from([("!".to_owned(), e.to_string())]),
                    ));
                }
            }
        }
    }
    let (mut products, mut errors) = (Vec::new(), Vec::new());
    for (at, row) in rows {
        if let Some(broken) = row.get("!") {
            errors.push(RowError {
                at,
                error: broken.clone(),
            });
            continue;
        }
        match product_from_row(&row) {
            Ok(p) => products.push(p),
            Err(error) => errors.push(RowError { at, error }),
        }
    }
    Ok((products, errors))
}

/// Inserts or replaces the products, in one transaction.
pub fn upsert(conn: &mut Connection, products: &[Product]) -> Result<(), CatalogError> {
    let tx = conn.transaction().map_err(CatalogError::Store)?;
    for p in products {
        tx.execute(
            "INSERT OR REPLACE INTO products(sku, name, category, price_cents, arrived_on, stock,
                gender, age_min, age_max, body_types, styles, colours, extra)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                p.sku,
                p.name,
                p.category,
                p.price_cents,
                p.arrived_on,
                p.stock,
                p.gender,
                p.age_min,
                p.age_max,
                p.body_types.join(";"),
                p.styles.join(";"),
                p.colours.join(";"),
                serde_json::to_string(&p.extra).expect("strings serialise"),
            ],
        )
        .map_err(CatalogError::Store)?;
    }
    tx.commit().map_err(CatalogError::Store)
}

pub fn load(conn: &Connection) -> Result<Vec<Product>, CatalogError> {
    let split = |s: String| -> Vec<String> {
        s.split(';')
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut stmt = conn
        .prepare(
            "SELECT sku, name, category, price_cents, arrived_on, stock, gender, age_min, age_max,
                    body_types, styles, colours, extra FROM products ORDER BY sku",
        )
        .map_err(CatalogError::Store)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Product {
                sku: r.get(0)?,
                name: r.get(1)?,
                category: r.get(2)?,
                price_cents: r.get(3)?,
                arrived_on: r.get(4)?,
                stock: r.get(5)?,
                gender: r.get(6)?,
                age_min: r.get(7)?,
                age_max: r.get(8)?,
                body_types: split(r.get(9)?),
                styles: split(r.get(10)?),
                colours: split(r.get(11)?),
                extra: serde_json::from_str(&r.get::<_, String>(12)?).unwrap_or_default(),
            })
        })
        .map_err(CatalogError::Store)?;
    rows.collect::<Result<_, _>>().map_err(CatalogError::Store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_are_parsed_bad_ones_reported_by_line_and_extra_columns_kept() {
        let csv = "sku,name,category,price,arrival_date,stock,gender,age_range,body_types,styles,colours,season\n\
                   DR-1,White simple dress,Dress,599.00,2026-09-01,12,female,25-35,slim;medium,simple;elegant,white,autumn\n\
                   DR-2,Broken,dress,cheap,2026-09-01,3,,,,,,\n\
                   DR-3,No date,dress,10,,3,,,,,,\n\
                   TS-1,Grey tee,t-shirt,99.5,2026-10-10,0,unisex,,,casual,grey|black,\n";
        let (products, errors) = parse(csv).unwrap();
        assert_eq!(products.len(), 2);
        let dress = &products[0];
        assert_eq!(dress.price_cents, 59900);
        assert_eq!((dress.age_min, dress.age_max), (Some(25), Some(35)));
        assert_eq!(dress.styles, ["simple", "elegant"]);
        assert_eq!(dress.category, "dress");
        assert_eq!(
            dress.extra.get("season").map(String::as_str),
            Some("autumn")
        );
        assert_eq!(products[1].colours, ["grey", "black"]);
        let at: Vec<&str> = errors.iter().map(|e| e.at.as_str()).collect();
        assert_eq!(at, ["line 3", "line 4"]);
        assert!(errors[0].error.contains("price"), "{errors:?}");
        assert!(errors[1].error.contains("arrival_date"), "{errors:?}");
    }

    #[test]
    fn json_items_use_the_same_rules() {
        let json = r#"[
            {"sku": "CT-1", "name": "Camel coat", "category": "coat", "price": 1299, "arrival_date": "2026-11-01",
             "stock": 4, "styles": ["elegant", "professional"], "colours": ["camel"], "fabric": "wool"},
            {"sku": "CT-2", "name": "Coat", "category": "coat", "price": 1, "arrival_date": "2026-11-01",
             "stock": 4, "gender": "robot"}
        ]"#;
        let (products, errors) = parse(json).unwrap();
        assert_eq!(products[0].styles, ["elegant", "professional"]);
        assert_eq!(products[0].extra["fabric"], "wool");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].at, "item 2");
        assert!(errors[0].error.contains("gender"));
    }
}
