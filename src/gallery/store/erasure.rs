//! Taking data away: erasure (physical: zeroed rows, an emptied write-ahead log, synced crop
//! unlinks), consent withdrawal, retention, portraits replaced under the cap, orphan crops;
//! and a customer's visits for their copy of their data.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{BasketItem, Store, VisitRecord, audit};
use crate::gallery::GalleryError;

impl Store {
    /// Erases the customer, every portrait, crop file, visit and purchase. Returns the removed
    /// portrait ids, or `None` for an unknown customer.
    pub fn delete_customer(
        &mut self,
        id: i64,
        who: &str,
    ) -> Result<Option<Vec<i64>>, GalleryError> {
        let tx = self.conn.transaction()?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM customers WHERE id = ?1)",
            [id],
            |r| r.get(0),
        )?;
        if !exists {
            return Ok(None);
        }
        let (ids, crops) = portraits_and_crops(&tx, id)?;
        // Visits, purchases and portraits go with the customer (ON DELETE CASCADE).
        tx.execute("DELETE FROM customers WHERE id = ?1", [id])?;
        Self::commit_erasure(tx, who, "erase", id, ids.len(), "")?;
        self.erased(&crops);
        Ok(Some(ids))
    }

    /// Consent withdrawn: every portrait (and crop) of the customer erased and what identifies
    /// them blanked, keeping the visits and purchases the store must keep for its accounts
    /// under an anonymous record. The removed portrait ids, or `None` for an unknown customer.
    pub fn withdraw_consent(
        &mut self,
        id: i64,
        who: &str,
    ) -> Result<Option<Vec<i64>>, GalleryError> {
        let tx = self.conn.transaction()?;
        let (ids, crops) = portraits_and_crops(&tx, id)?;
        let changed = tx.execute(
            "UPDATE customers SET display_name = 'withdrawn customer ' || id, external_ref = NULL,
                 consent_how = 'withdrawn', consent_by = ?2, consent_at = ?3,
                 gender = NULL, birth_year = NULL, body_type = NULL
             WHERE id = ?1",
            params![id, who, Utc::now()],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        tx.execute("DELETE FROM portraits WHERE customer_id = ?1", [id])?;
        tx.execute("DELETE FROM idempotency WHERE customer_id = ?1", [id])?;
        Self::commit_erasure(tx, who, "withdraw", id, ids.len(), "sales kept, anonymous")?;
        self.erased(&crops);
        Ok(Some(ids))
    }

    /// Portraits taken before `before`.
    pub fn portraits_captured_before(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<i64>, GalleryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM portraits WHERE captured_at < ?1")?;
        let rows = stmt.query_map([before], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Retention: erases these portraits (rows and crops) and the visits (with their
    /// purchases) older than `visits_before`, audited, in one transaction.
    pub fn purge(
        &mut self,
        portraits: &[i64],
        visits_before: Option<DateTime<Utc>>,
    ) -> Result<crate::gallery::Purged, GalleryError> {
        let tx = self.conn.transaction()?;
        let crops = delete_portraits(&tx, portraits)?;
        let visits = match visits_before {
            Some(before) => {
                tx.execute("DELETE FROM purchases WHERE purchased_at < ?1", [before])?;
                tx.execute("DELETE FROM visits WHERE visited_at < ?1", [before])?
            }
            None => 0,
        };
        let purged = crate::gallery::Purged {
            portraits: portraits.len(),
            visits,
        };
        if purged == crate::gallery::Purged::default() {
            return Ok(purged);
        }
        audit(
            &tx,
            "retention",
            "purge",
            &format!("{} portrait(s), {visits} visit(s)", portraits.len()),
            "",
        )?;
        Self::bump_counter(&tx)?;
        tx.commit()?;
        self.erased(&crops);
        Ok(purged)
    }

    /// Audits an erasure of `portraits` portraits of `customer` and commits it with the change
    /// counter bumped (the index is behind until it drops them).
    fn commit_erasure(
        tx: Transaction,
        who: &str,
        what: &str,
        customer: i64,
        portraits: usize,
        left: &str,
    ) -> Result<(), GalleryError> {
        audit(
            &tx,
            who,
            what,
            &format!("customer {customer}, {portraits} portrait(s)"),
            left,
        )?;
        Self::bump_counter(&tx)?;
        Ok(tx.commit()?)
    }

    /// After an erasure: the crops unlinked, and the write-ahead log folded into the database
    /// and emptied, so the erased rows (zeroed there by `secure_delete`) linger nowhere.
    fn erased(&self, crops: &[String]) {
        self.remove_crop_files(crops);
        let busy: Result<i64, _> =
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0));
        match busy {
            Ok(0) => {}
            Ok(_) => tracing::warn!(
                "the write-ahead log was busy: it is emptied at the next erasure or checkpoint"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "write-ahead log not checkpointed after an erasure")
            }
        }
    }

    fn remove_crop_files(&self, files: &[String]) {
        for file in files {
            let path = self.crops_dir.join(file);
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a face crop");
            }
        }
        if !files.is_empty()
            && let Err(e) = std::fs::File::open(&self.crops_dir).and_then(|d| d.sync_all())
        {
            tracing::warn!(error = %e, "crop removals not synced");
        }
    }

    /// Removes crop files no portrait points at: left by a crash or a full disk between the
    /// file and the commit, or half-written. A face nobody consented to keep is not kept.
    pub(super) fn sweep_crops(&self) -> Result<(), GalleryError> {
        let kept: std::collections::HashSet<String> = self
            .conn
            .prepare("SELECT crop_file FROM portraits WHERE crop_file IS NOT NULL")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let entries = std::fs::read_dir(&self.crops_dir).map_err(|source| GalleryError::Io {
            path: self.crops_dir.clone(),
            source,
        })?;
        let orphans: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| !kept.contains(name))
            .collect();
        if !orphans.is_empty() {
            tracing::info!(
                files = orphans.len(),
                "removing face crops that no portrait keeps"
            );
            self.remove_crop_files(&orphans);
        }
        Ok(())
    }

    /// A customer's visits with what was bought in each, oldest first, for an export.
    pub fn visits_of(&self, customer_id: i64) -> Result<Vec<VisitRecord>, GalleryError> {
        let mut visits: Vec<VisitRecord> = self
            .conn
            .prepare(
                "SELECT id, visited_at, camera FROM visits WHERE customer_id = ?1 ORDER BY visited_at",
            )?
            .query_map([customer_id], |r| {
                Ok(VisitRecord {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    camera: r.get(2)?,
                    basket: Vec::new(),
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = self.conn.prepare(
            "SELECT visit_id, sku, quantity, unit_price_cents FROM purchases WHERE customer_id = ?1",
        )?;
        let rows = stmt.query_map([customer_id], |r| {
            Ok((
                r.get::<_, Option<i64>>(0)?,
                BasketItem {
                    sku: r.get(1)?,
                    quantity: r.get(2)?,
                    unit_price_cents: r.get(3)?,
                },
            ))
        })?;
        for row in rows {
            let (visit, item) = row?;
            if let Some(v) = visits.iter_mut().find(|v| Some(v.id) == visit) {
                v.basket.push(item);
            }
        }
        Ok(visits)
    }

    pub fn remove_portraits(&mut self, ids: &[i64]) -> Result<(), GalleryError> {
        let tx = self.conn.transaction()?;
        let crops = delete_portraits(&tx, ids)?;
        Self::bump_counter(&tx)?;
        tx.commit()?;
        self.erased(&crops);
        Ok(())
    }
}

/// Deletes these portrait rows; the crop files they kept, to unlink after the commit.
fn delete_portraits(conn: &Connection, ids: &[i64]) -> Result<Vec<String>, GalleryError> {
    let mut crops = Vec::new();
    for id in ids {
        let crop: Option<Option<String>> = conn
            .query_row("SELECT crop_file FROM portraits WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        crops.extend(crop.flatten());
        conn.execute("DELETE FROM portraits WHERE id = ?1", [id])?;
    }
    Ok(crops)
}

/// A customer's portrait ids and the crop files they keep.
fn portraits_and_crops(
    conn: &Connection,
    customer_id: i64,
) -> Result<(Vec<i64>, Vec<String>), GalleryError> {
    let mut stmt = conn.prepare("SELECT id, crop_file FROM portraits WHERE customer_id = ?1")?;
    let rows = stmt.query_map([customer_id], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
    })?;
    let (ids, crops): (Vec<i64>, Vec<Option<String>>) =
        rows.collect::<Result<Vec<_>, _>>()?.into_iter().unzip();
    Ok((ids, crops.into_iter().flatten().collect()))
}
