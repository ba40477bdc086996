//! The till: a sale recorded against a customer found by id or by the checkout camera's
//! portrait; with consent, an unknown customer is enrolled or a known one gets the portrait.

use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;

use super::faces::{FaceReader, Photo};
use super::gate::Claim;
use super::{EngineError, Invalid};
use crate::crm::{Card, Crm};
use crate::gallery::{
    BasketItem, Decision, Gallery, GalleryError, NewCustomer, PortraitInput, consent_given,
};

pub struct Checkout {
    pub customer_id: Option<i64>,
    pub portrait: Option<Photo>,
    pub basket: Vec<BasketItem>,
    /// how the customer consented to being enrolled or to a new portrait
    pub consent: Option<String>,
    /// the name to enrol an unknown customer under (with consent)
    pub name: Option<String>,
    pub recorded_by: String,
    pub camera: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckoutReceipt {
    /// false when the customer is unknown and there was no consent to enrol them
    pub recorded: bool,
    pub customer_id: Option<i64>,
    pub visit_id: Option<i64>,
    pub enrolled: bool,
    /// what happened to the portrait: "none", "enrolled", "added", "not added: …"
    pub portrait: String,
    pub card: Option<Card>,
}

pub struct Till {
    faces: Arc<FaceReader>,
    gallery: Arc<Gallery>,
    crm: Arc<Crm>,
}

impl Till {
    pub fn new(faces: Arc<FaceReader>, gallery: Arc<Gallery>, crm: Arc<Crm>) -> Self {
        Till {
            faces,
            gallery,
            crm,
        }
    }

    /// Records a sale: finds the customer (by id, or by the portrait), enrols an unknown
    /// customer or adds the portrait when there is consent, then records the visit and basket.
    pub fn checkout(
        &self,
        checkout: Checkout,
        claim: &Claim,
    ) -> Result<CheckoutReceipt, EngineError> {
        validate(&checkout)?;
        if let Some(id) = checkout.customer_id {
            self.gallery.customer(id)?;
        }
        let portrait = match &checkout.portrait {
            None => None,
            Some(photo) => match self.faces.portrait(photo) {
                Ok(p) => Some(p),
                // the till knows who it is: the sale still counts
                Err(EngineError::NoFace { .. }) if checkout.customer_id.is_some() => None,
                Err(e) => return Err(e),
            },
        };
        let mut receipt = CheckoutReceipt {
            recorded: false,
            customer_id: checkout.customer_id,
            visit_id: None,
            enrolled: false,
            portrait: match (&checkout.portrait, &portrait) {
                (None, _) => "none".into(),
                (Some(_), None) => "not added: no face found".into(),
                (Some(_), Some(_)) => "not added: no consent".into(),
            },
            card: None,
        };
        if receipt.customer_id.is_none()
            && let Some(p) = &portrait
            && let Decision::Known { best, .. } = self.gallery.identify(&p.face.embedding)?
        {
            receipt.customer_id = Some(best.customer_id);
        }
        // "no" at the till is no consent: the sale counts, nobody is enrolled
        let consent = checkout
            .consent
            .as_deref()
            .map(str::trim)
            .filter(|c| consent_given(c));
        let id = match (receipt.customer_id, portrait, consent) {
            (None, Some(portrait), Some(consent)) => {
                let name = checkout
                    .name
                    .filter(|n| !n.trim().is_empty())
                    .ok_or(Invalid::NameNeeded)?;
                claim.commit()?;
                let id = self.enrol(name, consent, &checkout.recorded_by, portrait)?;
                receipt.enrolled = true;
                receipt.portrait = "enrolled".into();
                id
            }
            (None, _, _) => return Ok(receipt),
            (Some(id), Some(portrait), Some(_)) => {
                claim.commit()?;
                receipt.portrait = self.add_portrait(id, portrait)?;
                id
            }
            (Some(id), _, _) => {
                claim.commit()?;
                id
            }
        };
        receipt.customer_id = Some(id);
        receipt.visit_id = Some(self.gallery.record_visit(
            id,
            checkout.camera.as_deref(),
            &checkout.basket,
        )?);
        receipt.recorded = true;
        receipt.card = Some(self.crm.card(id, 1.0, Utc::now())?);
        Ok(receipt)
    }

    fn enrol(
        &self,
        name: String,
        consent: &str,
        recorded_by: &str,
        portrait: PortraitInput,
    ) -> Result<i64, EngineError> {
        let enrolled = self.gallery.enrol(NewCustomer {
            name,
            external_ref: None,
            consent_how: consent.to_owned(),
            consent_by: recorded_by.to_owned(),
            portraits: vec![portrait],
            force: false,
        })?;
        Ok(enrolled.customer_id)
    }

    /// What happened to the portrait offered for a known customer.
    fn add_portrait(&self, id: i64, portrait: PortraitInput) -> Result<String, EngineError> {
        Ok(
            match self.gallery.add_portraits(id, vec![portrait], false) {
                Ok(added) if added.portrait_ids.is_empty() => {
                    "not added: the customer's portraits are better".into()
                }
                Ok(_) => "added".into(),
                Err(GalleryError::Refused(refusal)) => format!("not added: {refusal}"),
                Err(e) => return Err(e.into()),
            },
        )
    }
}

fn validate(checkout: &Checkout) -> Result<(), EngineError> {
    if checkout.customer_id.is_none() && checkout.portrait.is_none() {
        return Err(Invalid::NobodyAtTheTill.into());
    }
    if let Some(bad) = checkout
        .basket
        .iter()
        .find(|i| i.sku.trim().is_empty() || i.quantity == 0 || i.unit_price_cents < 0)
    {
        return Err(Invalid::BasketItem(bad.clone()).into());
    }
    Ok(())
}
