//! greeter: edge face recognition for stores.
//!
//! Data flows capture → vision → gallery → crm → api; this crate has the vision and gallery stages so far.

pub mod cli;
pub mod config;
pub mod eval;
pub mod gallery;
pub mod telemetry;
pub mod vision;
