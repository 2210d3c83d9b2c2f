//! clinic-connect: holds a clinic's connections to appointment vendors, server-side.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod api;
pub mod auth;
pub mod backend_tokens;
pub mod care;
pub mod client_addr;
pub mod clock;
pub mod connections;
pub mod db;
pub mod errors;
pub mod keys;
pub mod memo;
pub mod metrics;
pub mod oauth;
pub mod rotation;
pub mod routes;
pub mod sandbox;
pub mod session;
pub mod settings;
pub mod startup;
pub mod telemetry;
pub mod tokens;
pub mod vault;
pub mod vendors;
pub mod worker;
