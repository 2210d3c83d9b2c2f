//! Every integration test, in one binary: each test gets its own app, database, clock and sandbox.

mod helpers;

mod admin_sessions;
mod browser;
mod no_secrets;
mod operations;
mod yappointment;
