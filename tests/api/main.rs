//! Every integration test, in one binary: each test gets its own app, database, clock and sandbox.

mod helpers;

mod admin_sessions;
mod app_refused;
mod booking;
mod browser;
mod browser_booking;
mod browser_status;
mod care;
mod client_credentials;
mod code_flows;
mod config_file;
mod crash;
mod csrf;
mod faults;
mod feedback;
mod health_checks;
mod issuer;
mod key_missing;
mod no_secrets;
mod operations;
mod production;
mod refusals;
mod service_api;
mod status_pages;
mod token_lifecycle;
mod webdriver;
mod yappointment;
