//! Taking faces and records away, and handing a customer their copy: erasure, consent
//! withdrawal, retention, export. Vectors are hidden from matching before their rows go.

use chrono::Utc;
use serde::Serialize;

use super::store::{self, Store};
use super::{Customer, Gallery, GalleryError, Portrait};

/// A customer's data as kept, for their copy.
pub struct Export {
    pub customer: Customer,
    /// each portrait and its face crop's JPEG, where kept
    pub portraits: Vec<(Portrait, Option<Vec<u8>>)>,
    pub visits: Vec<store::VisitRecord>,
}

/// What a retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Purged {
    pub portraits: usize,
    pub visits: usize,
}

impl Gallery {
    /// Erases a customer and everything about them; searches right after never return them.
    /// `who` goes to the audit log.
    pub fn delete_customer(&self, customer_id: i64, who: &str) -> Result<(), GalleryError> {
        self.erase_faces(customer_id, |store| store.delete_customer(customer_id, who))?;
        Ok(())
    }

    /// Consent withdrawn: the customer's faces and what identifies them erased at once (as by
    /// `delete_customer`), their sales kept under an anonymous record for the accounts. How
    /// many portraits were erased.
    pub fn withdraw_consent(&self, customer_id: i64, who: &str) -> Result<usize, GalleryError> {
        let removed = self.erase_faces(customer_id, |store| {
            store.withdraw_consent(customer_id, who)
        })?;
        Ok(removed.len())
    }

    /// Runs `erase` (which removes the customer's portrait rows, or says there is no such
    /// customer) through `erasing`. Returns the removed portrait ids.
    fn erase_faces(
        &self,
        customer_id: i64,
        erase: impl FnOnce(&mut Store) -> Result<Option<Vec<i64>>, GalleryError>,
    ) -> Result<Vec<i64>, GalleryError> {
        let mut store = self.store.lock();
        let portraits: Vec<i64> = store
            .portraits_of(customer_id)?
            .iter()
            .map(|p| p.id)
            .collect();
        self.erasing(&mut store, &portraits, |store| {
            erase(store)?.ok_or(GalleryError::UnknownCustomer(customer_id))
        })
    }

    /// Runs `erase`, which deletes these portraits' rows, with their vectors hidden from
    /// matching first: a search during the erasure must not name someone whose record is half
    /// gone. On success the vectors go; on failure they come back.
    fn erasing<T>(
        &self,
        store: &mut Store,
        portraits: &[i64],
        erase: impl FnOnce(&mut Store) -> Result<T, GalleryError>,
    ) -> Result<T, GalleryError> {
        let hidden = self.disown(portraits);
        match erase(store) {
            Ok(done) => {
                self.index_removed(portraits)?;
                Ok(done)
            }
            Err(e) => {
                self.restore(hidden);
                Err(e)
            }
        }
    }

    /// Erases what is older than the retention periods (portraits: faces, crops, vectors;
    /// visits with their purchases), as of `now`.
    pub fn purge_expired(&self, now: chrono::DateTime<Utc>) -> Result<Purged, GalleryError> {
        let days = |d: u32| (d > 0).then(|| now - chrono::Duration::days(d as i64));
        let (portraits_before, visits_before) = (
            days(self.settings.portrait_retention_days),
            days(self.settings.visit_retention_days),
        );
        let mut store = self.store.lock();
        let expired = match portraits_before {
            Some(before) => store.portraits_captured_before(before)?,
            None => Vec::new(),
        };
        self.erasing(&mut store, &expired, |store| {
            store.purge(&expired, visits_before)
        })
    }

    /// Everything kept about a customer, for their copy: profile, portraits with their crops'
    /// bytes (where kept), visits with baskets. Audited (who asked).
    pub fn export(&self, id: i64, who: &str) -> Result<Export, GalleryError> {
        let store = self.store.lock();
        let customer = store
            .customer(id)?
            .ok_or(GalleryError::UnknownCustomer(id))?;
        let portraits = store
            .portraits_of(id)?
            .into_iter()
            .map(|p| {
                let crop = match &p.crop_file {
                    Some(file) => Some(store.read_crop(file)?),
                    None => None,
                };
                Ok((p, crop))
            })
            .collect::<Result<_, GalleryError>>()?;
        let visits = store.visits_of(id)?;
        store::audit(
            store.connection(),
            who,
            "export",
            "",
            &format!("customer {id}"),
        )?;
        Ok(Export {
            customer,
            portraits,
            visits,
        })
    }

    /// Takes the portraits' owners away (so no search returns them); what was taken, to restore.
    pub(super) fn disown(&self, portraits: &[i64]) -> Vec<(i64, i64)> {
        let mut v = self.vectors.write();
        // a bar may have come from these faces
        v.neighbours.changed();
        portraits
            .iter()
            .filter_map(|id| v.owners.remove(id).map(|owner| (*id, owner)))
            .collect()
    }

    pub(super) fn restore(&self, owners: Vec<(i64, i64)>) {
        let mut v = self.vectors.write();
        v.neighbours.changed();
        v.owners.extend(owners);
    }
}
