//! Customers: enrolment with consent, more portraits, erasure, and what is known about them.
//! Checks that need no image run first, so a refused request costs no inference; the write
//! happens only once the request's claim holds (see `gate`).

use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;

use super::faces::{FaceReader, Photo};
use super::gate::Claim;
use super::{EngineError, Invalid};
use crate::crm::{Card, Crm};
use crate::gallery::{Customer, Enrolled, Gallery, NewCustomer, Portrait, check_name_and_consent};
use crate::live::LiveFeed;

pub struct Enrolment {
    pub name: String,
    /// what is known for suggestions: "female"/"male", year of birth, body type
    pub gender: Option<String>,
    pub birth_year: Option<i32>,
    pub body_type: Option<String>,
    pub consent: String,
    pub consent_by: String,
    pub external_ref: Option<String>,
    pub force: bool,
    pub photos: Vec<Photo>,
}

/// A customer with their portraits and the card the glasses would show.
#[derive(Debug, Clone, Serialize)]
pub struct CustomerRecord {
    pub customer: Customer,
    pub portraits: Vec<Portrait>,
    pub card: Card,
}

pub struct Customers {
    faces: Arc<FaceReader>,
    gallery: Arc<Gallery>,
    crm: Arc<Crm>,
    live: Arc<LiveFeed>,
}

impl Customers {
    pub fn new(
        faces: Arc<FaceReader>,
        gallery: Arc<Gallery>,
        crm: Arc<Crm>,
        live: Arc<LiveFeed>,
    ) -> Self {
        Customers {
            faces,
            gallery,
            crm,
            live,
        }
    }

    pub fn enrol(&self, enrolment: Enrolment, claim: &Claim) -> Result<Enrolled, EngineError> {
        // refuse before the expensive part
        check_name_and_consent(&enrolment.name, &enrolment.consent)?;
        if let Some(g) = &enrolment.gender
            && !["female", "male"].contains(&g.as_str())
        {
            return Err(Invalid::Gender(g.clone()).into());
        }
        let portraits = self.faces.portraits(&enrolment.photos)?;
        claim.commit()?;
        let enrolled = self.gallery.enrol(NewCustomer {
            name: enrolment.name,
            external_ref: enrolment.external_ref,
            consent_how: enrolment.consent,
            consent_by: enrolment.consent_by,
            portraits,
            force: enrolment.force,
        })?;
        self.crm.set_attributes(
            enrolled.customer_id,
            enrolment.gender.as_deref(),
            enrolment.birth_year,
            enrolment.body_type.as_deref(),
        )?;
        Ok(enrolled)
    }

    pub fn add_portraits(
        &self,
        customer_id: i64,
        photos: &[Photo],
        force: bool,
        claim: &Claim,
    ) -> Result<Enrolled, EngineError> {
        // an unknown customer is a 404 before any image work
        self.gallery.customer(customer_id)?;
        let portraits = self.faces.portraits(photos)?;
        claim.commit()?;
        let added = self.gallery.add_portraits(customer_id, portraits, force)?;
        Ok(added)
    }

    /// Erases the customer: profile, portraits, vectors, crops, visits, purchases, and the
    /// console's crops of them. The index file is rewritten at once, not at the next periodic
    /// save: an erased face must not linger on disk.
    pub fn delete(&self, customer_id: i64, who: &str) -> Result<(), EngineError> {
        self.gallery.delete_customer(customer_id, who)?;
        self.live.forget(customer_id);
        self.gallery.save_index()?;
        Ok(())
    }

    /// The customer withdrew consent: their faces erased at once (index rewritten), their
    /// profile anonymous, their sales kept for the accounts. How many portraits were erased.
    pub fn withdraw_consent(&self, customer_id: i64, who: &str) -> Result<usize, EngineError> {
        let erased = self.gallery.withdraw_consent(customer_id, who)?;
        self.live.forget(customer_id);
        self.gallery.save_index()?;
        Ok(erased)
    }

    /// The customer's copy of everything kept about them, as one tar archive:
    /// `customer.json` (profile, consent, portraits' details), `visits.json` (visits with
    /// what was bought) and `portraits/<id>.jpg` (the kept face crops). Audited.
    pub fn export(&self, customer_id: i64, who: &str) -> Result<Vec<u8>, EngineError> {
        let export = self.gallery.export(customer_id, who)?;
        let portraits: Vec<&Portrait> = export.portraits.iter().map(|(p, _)| p).collect();
        let profile = serde_json::json!({ "customer": export.customer, "portraits": portraits });
        let mut archive = tar::Builder::new(Vec::new());
        let mut add = |path: String, bytes: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o600);
            header.set_mtime(Utc::now().timestamp().max(0) as u64);
            header.set_cksum();
            archive.append_data(&mut header, path, bytes)
        };
        let profile = serde_json::to_vec_pretty(&profile).expect("plain data serialises");
        let visits = serde_json::to_vec_pretty(&export.visits).expect("plain data serialises");
        add("customer.json".into(), &profile).map_err(EngineError::Archive)?;
        add("visits.json".into(), &visits).map_err(EngineError::Archive)?;
        for (portrait, crop) in &export.portraits {
            if let Some(jpeg) = crop {
                add(format!("portraits/{}.jpg", portrait.id), jpeg)
                    .map_err(EngineError::Archive)?;
            }
        }
        archive.into_inner().map_err(EngineError::Archive)
    }

    pub fn search(&self, query: &str) -> Result<Vec<Customer>, EngineError> {
        Ok(self.gallery.customers(query)?)
    }

    pub fn show(&self, customer_id: i64) -> Result<CustomerRecord, EngineError> {
        let (customer, portraits) = self.gallery.customer(customer_id)?;
        Ok(CustomerRecord {
            customer,
            portraits,
            card: self.card_of(customer_id)?,
        })
    }

    /// The card of a customer as the glasses would show it (score 1: not from a face).
    pub fn card_of(&self, customer_id: i64) -> Result<Card, EngineError> {
        Ok(self.crm.card(customer_id, 1.0, Utc::now())?)
    }
}
