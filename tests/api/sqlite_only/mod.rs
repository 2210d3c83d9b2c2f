//! Tests of what only SQLite does: a database file made by the current release upgraded in
//! place, another process holding its one write lock, and the files' permissions. `./scripts/test`
//! runs them in its SQLite pass.

mod busy;
mod files;
mod upgrade;
