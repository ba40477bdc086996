//! Store IT's levers: calibration evidence, the matching rules (changed live, audited), the
//! audit log, and the catalogue.

use std::sync::Arc;

use super::{EngineError, Invalid};
use crate::calibration::{self, Calibration, Person};
use crate::crm::Crm;
use crate::crm::catalog::ImportReport;
use crate::gallery::matching::check_rules;
use crate::gallery::store::AuditEntry;
use crate::gallery::{Gallery, MatchRules};

pub struct Admin {
    gallery: Arc<Gallery>,
    crm: Arc<Crm>,
}

impl Admin {
    pub fn new(gallery: Arc<Gallery>, crm: Arc<Crm>) -> Self {
        Admin { gallery, crm }
    }

    /// Score distributions and error rates from the enrolled customers with 2+ portraits, plus
    /// `extra` people (a labelled folder), for a gallery of `customers` (default: the enrolled
    /// ones) and a target wrong-name rate per stranger.
    pub fn calibration(
        &self,
        target_wrong_name: f64,
        extra: Vec<Person>,
        customers: Option<usize>,
    ) -> Result<Calibration, EngineError> {
        if !(target_wrong_name > 0.0 && target_wrong_name < 1.0) {
            return Err(Invalid::TargetRate(target_wrong_name).into());
        }
        let mut people = calibration::enrolled_people(&self.gallery)?;
        let enrolled = people.len();
        people.extend(extra);
        Ok(calibration::calibrate(
            &people,
            &self.gallery.rules(),
            customers.unwrap_or(enrolled.max(1)),
            target_wrong_name,
        ))
    }

    pub fn rules(&self) -> MatchRules {
        self.gallery.rules()
    }

    /// New threshold and margin for every later match, saved and audited; the new rules.
    pub fn set_matching(
        &self,
        threshold: f32,
        margin: f32,
        who: &str,
    ) -> Result<MatchRules, EngineError> {
        check_rules(threshold, margin).map_err(Invalid::Rules)?;
        let old = self.gallery.set_rules(threshold, margin, who)?;
        tracing::info!(
            who,
            old.threshold,
            old.margin,
            threshold,
            margin,
            "matching rules changed"
        );
        Ok(self.gallery.rules())
    }

    /// Someone signed in (the console): who (the key's name, never the key) and from where.
    pub fn record_login(&self, who: &str, from: &str) -> Result<(), EngineError> {
        tracing::info!(who, from, "login");
        Ok(self.gallery.record(who, "login", from)?)
    }

    /// The latest audit entries (of kind `what`, or all), newest first: enrolments, erasures,
    /// exports, purges, matching-rule changes, logins.
    pub fn audit_log(
        &self,
        limit: usize,
        what: Option<&str>,
    ) -> Result<Vec<AuditEntry>, EngineError> {
        Ok(self.gallery.audit_log(limit, what)?)
    }

    pub fn import_catalog(&self, text: &str) -> Result<ImportReport, EngineError> {
        Ok(self.crm.import_catalog(text)?)
    }
}
