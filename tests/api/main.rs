//! The HTTP service end to end: the real server on a random port, real models, SQLite, faiss.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod bad_input;
mod console;
mod customers;
mod helpers;
mod live;
mod ops;
mod push;
mod settings;
