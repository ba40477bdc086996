//! greeter: edge face recognition for stores.
//!
//! Data flows capture → vision → gallery → crm → api: `capture` brings frames in, `vision`
//! finds and embeds faces, `gallery` knows the customers, `crm` makes the card, `terminals`
//! pushes it to the glasses, `live` shows recognitions to store IT, `service` ties them together
//! below HTTP, and `api` is the HTTP face that `startup` serves.

pub mod api;
pub mod calibration;
pub mod capture;
pub mod cli;
pub mod config;
pub mod crm;
pub mod eval;
pub mod files;
pub mod gallery;
pub mod live;
pub mod service;
pub mod startup;
pub mod telemetry;
pub mod terminals;
pub mod vision;
