//! What the glasses show about a recognised customer: the card.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::gallery::{Customer, VisitSummary};

/// Small on purpose: a glance on a glasses display.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Card {
    pub customer_id: i64,
    pub name: String,
    /// the last recorded visit (checkout), if any
    pub last_visit: Option<DateTime<Utc>>,
    /// whole days since `last_visit`
    pub days_since_last_visit: Option<i64>,
    pub visits: u64,
    /// similarity of the face to the customer's best portrait
    pub score: f32,
    /// items worth suggesting, best first (empty until the catalogue is imported)
    pub suggestions: Vec<Suggestion>,
    /// a line the assistant can say (none until greeting templates are configured)
    pub greeting: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Suggestion {
    pub sku: String,
    pub name: String,
    /// one line on why this item, for the assistant
    pub reason: String,
}

impl Card {
    pub fn new(customer: &Customer, visits: &VisitSummary, score: f32, now: DateTime<Utc>) -> Card {
        Card {
            customer_id: customer.id,
            name: customer.display_name.clone(),
            last_visit: visits.last,
            days_since_last_visit: visits.last.map(|at| (now - at).num_days()),
            visits: visits.count,
            score,
            suggestions: Vec::new(),
            greeting: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::Consent;

    #[test]
    fn days_since_the_last_visit_are_whole_days() {
        let now: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        let customer = Customer {
            id: 7,
            display_name: "Zhou Min".into(),
            external_ref: None,
            consent: Consent {
                how: "signed".into(),
                by: "till 3".into(),
                at: now,
            },
            created_at: now,
            portraits: 1,
        };
        let visits = VisitSummary {
            count: 4,
            last: Some("2026-08-26T18:00:00Z".parse().unwrap()),
        };
        let card = Card::new(&customer, &visits, 0.95, now);
        assert_eq!(card.days_since_last_visit, Some(90));
        assert_eq!((card.customer_id, card.visits), (7, 4));
        let never = Card::new(&customer, &VisitSummary::default(), 0.95, now);
        assert_eq!(
            (never.last_visit, never.days_since_last_visit),
            (None, None)
        );
    }
}
