//! Every integration test, in one binary: each test gets its own app, database, clock and sandbox.

mod helpers;

mod account;
mod admin_cli;
mod admin_sessions;
mod admins;
mod api_keys;
mod booking;
mod browser;
mod browser_admins;
mod browser_api_keys;
mod browser_booking;
mod care;
mod client_credentials;
mod code_flows;
mod config_file;
mod crash;
mod csrf;
mod faults;
mod feedback;
mod issuer;
mod no_secrets;
mod operations;
mod postgres_only;
mod production;
mod refusals;
mod service_api;
mod sign_in_throttle;
mod sqlite_only;
mod storm;
mod token_lifecycle;
mod webdriver;
mod yappointment;
