//! Tests of what only PostgreSQL does: moving a SQLite database into it, and its server
//! restarting under load. They need the throwaway cluster `./scripts/test` starts, whichever
//! engine the rest of the suite runs on, so `./scripts/test` runs them in its PostgreSQL pass.

mod db_copy;
mod restart;
