//! clinic-connect: holds a clinic's connections to appointment vendors, server-side.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod auth;
pub mod clock;
pub mod connections;
pub mod db;
pub mod errors;
pub mod keys;
pub mod oauth;
pub mod routes;
pub mod sandbox;
pub mod session;
pub mod settings;
pub mod startup;
pub mod telemetry;
pub mod vault;
pub mod vendors;
