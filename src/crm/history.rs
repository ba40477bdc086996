//! Bulk import of past sales (from the till's export): one CSV row per item sold, grouped into
//! one visit per customer and time. A bad row is reported by line; the rest is imported.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::OptionalExtension;

use crate::gallery::BasketItem;
use crate::gallery::store::insert_visit;

use super::catalog::{CatalogError, ImportReport, RowError};
use super::{Crm, CrmError};

/// One item sold: customer, when, sku, quantity, price paid per unit in cents.
type Sale = (i64, DateTime<Utc>, String, u32, i64);

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(12, 0, 0))
                .map(|t| t.and_utc())
        })
}

impl Crm {
    /// Imports `customer,visited_at,sku,quantity,unit_price` rows; `customer` is a customer id
    /// or external ref, `visited_at` a date (YYYY-MM-DD) or an RFC 3339 time, `unit_price` in
    /// currency units.
    pub fn import_history(&self, text: &str) -> Result<ImportReport, CrmError> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let headers = reader.headers().map_err(CatalogError::Csv)?.clone();
        let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let columns: Option<Vec<usize>> =
            ["customer", "visited_at", "sku", "quantity", "unit_price"]
                .iter()
                .map(|c| column(c))
                .collect();
        let Some(columns) = columns else {
            return Err(CrmError::HistoryHeader);
        };
        let mut conn = self.conn();
        let mut sales: Vec<Sale> = Vec::new();
        let mut errors = Vec::new();
        for record in reader.records() {
            let (record, line) = match record {
                Ok(r) => {
                    let line = r.position().map_or(0, |p| p.line());
                    (r, line)
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    errors.push(RowError {
                        at: format!("line {line}"),
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            let field = |i: usize| record.get(columns[i]).unwrap_or("");
            let customer = field(0);
            let found: Option<i64> = conn
                .query_row(
                    "SELECT id FROM customers WHERE CAST(id AS TEXT) = ?1 OR external_ref = ?1",
                    [customer],
                    |r| r.get(0),
                )
                .optional()?;
            let sale = (|| -> Result<Sale, String> {
                let id = found.ok_or_else(|| format!("no customer {customer:?}"))?;
                let at = parse_time(field(1))
                    .ok_or_else(|| format!("visited_at {:?} is not a date", field(1)))?;
                let sku = Some(field(2).to_owned())
                    .filter(|s| !s.is_empty())
                    .ok_or("missing sku")?;
                let quantity: u32 = field(3)
                    .parse()
                    .ok()
                    .filter(|&q| q > 0)
                    .ok_or("quantity must be a whole number of at least 1")?;
                let price: f64 = field(4)
                    .parse()
                    .ok()
                    .filter(|p: &f64| (0.0..1e9).contains(p))
                    .ok_or("unit_price must be a number")?;
                Ok((id, at, sku, quantity, (price * 100.0).round() as i64))
            })();
            match sale {
                Ok(sale) => sales.push(sale),
                Err(error) => errors.push(RowError {
                    at: format!("line {line}"),
                    error,
                }),
            }
        }
        let mut visits: BTreeMap<(i64, DateTime<Utc>), Vec<BasketItem>> = BTreeMap::new();
        for (customer, at, sku, quantity, unit_price_cents) in &sales {
            visits
                .entry((*customer, *at))
                .or_default()
                .push(BasketItem {
                    sku: sku.clone(),
                    quantity: *quantity,
                    unit_price_cents: *unit_price_cents,
                });
        }
        let tx = conn.transaction()?;
        for ((customer, at), basket) in &visits {
            insert_visit(&tx, *customer, *at, Some("import"), basket)?;
        }
        tx.commit()?;
        drop(conn);
        self.refresh_stats()?;
        Ok(ImportReport {
            imported: sales.len(),
            errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sales_become_visits_and_bad_rows_are_reported_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let settings: crate::config::Settings = {
            use figment::providers::Format;
            figment::Figment::from(figment::providers::Toml::string(crate::config::DEFAULTS))
                .extract()
                .unwrap()
        };
        let crm = Crm::open(dir.path(), settings.crm).unwrap();
        let now = Utc::now();
        crm.conn()
            .execute(
                "INSERT INTO customers(display_name, external_ref, consent_how, consent_by, consent_at, created_at)
                 VALUES ('Zhou Min', 'POS-7', 'signed', 'test', ?1, ?1)",
                [now],
            )
            .unwrap();
        let csv = "customer,visited_at,sku,quantity,unit_price\n\
                   POS-7,2026-03-10,DR-1,1,599\n\
                   1,2026-03-10,TS-2,2,99.5\n\
                   POS-8,2026-03-10,DR-1,1,599\n\
                   POS-7,2026-06-01,CT-1,0,1299\n\
                   POS-7,2026-08-01T15:30:00+08:00,CT-1,1,1299\n";
        let report = crm.import_history(csv).unwrap();
        assert_eq!(report.imported, 3);
        let at: Vec<(&str, &str)> = report
            .errors
            .iter()
            .map(|e| (e.at.as_str(), e.error.as_str()))
            .collect();
        assert_eq!(
            at,
            [
                ("line 4", "no customer \"POS-8\""),
                ("line 5", "quantity must be a whole number of at least 1")
            ]
        );
        let card = crm.card(1, 0.95, now).unwrap();
        assert_eq!(card.visits, 2, "two items on 2026-03-10 are one visit");
        assert_eq!(
            card.last_visit,
            Some("2026-08-01T07:30:00Z".parse().unwrap())
        );
    }
}
