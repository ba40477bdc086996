//! greeter: edge face recognition for stores.
//!
//! Data flows capture → vision → gallery → crm → api; this crate has the vision stage so far.

pub mod cli;
pub mod config;
pub mod eval;
pub mod telemetry;
pub mod vision;
