//! greeter: edge face recognition for stores.
//!
//! Data flows capture → vision → gallery → crm → engine → api/cli, and imports point the same
//! way: `capture` brings frames in, `vision` finds and embeds faces, `db` owns the one SQLite
//! schema, `gallery` knows the customers and their faces, `crm` makes the card, `terminals`
//! pushes it to the glasses, `live` shows recognitions to store IT, `engine` wires them into
//! rooms (recognition, customers, till, admin, cameras) behind a bounded inference gate, and
//! `api` (HTTP) and `cli` call the engine. `config` assembles each part's settings and
//! `startup` serves the API; `eval` and `calibration` measure.

pub mod api;
pub mod calibration;
pub mod capture;
pub mod cli;
pub mod config;
pub mod crm;
pub mod db;
pub mod engine;
pub mod eval;
pub mod files;
pub mod fuzz;
pub mod gallery;
pub mod live;
pub mod startup;
pub mod telemetry;
pub mod terminals;
pub mod vision;
