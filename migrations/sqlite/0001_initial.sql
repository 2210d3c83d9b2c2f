-- Clinics, their admins, server-side sessions, pending authorization flows, connections and
-- their history. Every secret column holds a vault record (see src/vault.rs), never plaintext.

CREATE TABLE clinics (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE admins (
    id             INTEGER PRIMARY KEY,
    clinic_id      INTEGER NOT NULL REFERENCES clinics(id) ON DELETE CASCADE,
    email          TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    password_hash  TEXT    NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;

-- `id` is the SHA-256 of the session key in the cookie; `state` is sealed by the vault.
-- `kind` keeps admin and patient sessions apart: one never loads as the other.
CREATE TABLE sessions (
    id               TEXT    PRIMARY KEY,
    kind             TEXT    NOT NULL,
    state            BLOB    NOT NULL,
    created_at       INTEGER NOT NULL,
    idle_expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_idle_expires_at ON sessions(idle_expires_at);

-- An authorization-code flow between "Connect" (or a patient's "Log in") and the vendor's
-- redirect back. `state_hash` is the SHA-256 of the state; `session_binding` ties it to one
-- session; taken with DELETE … RETURNING. Patients' flows have no clinic and carry `return_to`.
CREATE TABLE oauth_flows (
    state_hash       TEXT    PRIMARY KEY,
    session_binding  TEXT    NOT NULL,
    clinic_id        INTEGER REFERENCES clinics(id) ON DELETE CASCADE,
    return_to        TEXT,
    vendor           TEXT    NOT NULL,
    environment      TEXT    NOT NULL,
    verifier         BLOB    NOT NULL,
    redirect_uri     TEXT    NOT NULL,
    scopes           TEXT    NOT NULL,
    expires_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX oauth_flows_expires_at ON oauth_flows(expires_at);

CREATE TABLE connections (
    id              INTEGER PRIMARY KEY,
    clinic_id       INTEGER NOT NULL REFERENCES clinics(id) ON DELETE CASCADE,
    vendor          TEXT    NOT NULL,
    environment     TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    access_token    BLOB,
    refresh_token   BLOB,
    token_type      TEXT,
    scopes          TEXT    NOT NULL DEFAULT '',
    expires_at      INTEGER,
    account_name    TEXT,
    client_id       TEXT,
    client_secret   BLOB,
    parameters      TEXT    NOT NULL DEFAULT '{}',
    -- The account lookup failed for a passing reason (vendor down); try again later.
    identity_retry  INTEGER NOT NULL DEFAULT 0,
    -- Refresh bookkeeping: consecutive failures, no attempt before `next_refresh_at`, and a
    -- lease so that only one process refreshes a connection at a time.
    refresh_failures INTEGER NOT NULL DEFAULT 0,
    next_refresh_at  INTEGER,
    lease_owner      TEXT,
    lease_until      INTEGER,
    version         INTEGER NOT NULL DEFAULT 0,
    connected_at    INTEGER,
    updated_at      INTEGER NOT NULL,
    UNIQUE (clinic_id, vendor)
) STRICT;

-- What happened to a clinic's connection at a vendor; kept across disconnect and reconnect.
CREATE TABLE connection_events (
    id         INTEGER PRIMARY KEY,
    clinic_id  INTEGER NOT NULL REFERENCES clinics(id) ON DELETE CASCADE,
    vendor     TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    detail     TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX connection_events_clinic_vendor ON connection_events(clinic_id, vendor, id);

-- Tokens to revoke at a vendor that was down when the admin disconnected; retried a bounded
-- number of times. `token` is a vault record bound to `ref`.
CREATE TABLE pending_revocations (
    id               INTEGER PRIMARY KEY,
    ref              TEXT    NOT NULL UNIQUE,
    clinic_id        INTEGER NOT NULL REFERENCES clinics(id) ON DELETE CASCADE,
    vendor           TEXT    NOT NULL,
    environment      TEXT    NOT NULL,
    parameters       TEXT    NOT NULL DEFAULT '{}',
    token            BLOB    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL
) STRICT;

-- Keys for the clinic's own systems to call /api/v1; only a hash is kept.
CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY,
    clinic_id   INTEGER NOT NULL REFERENCES clinics(id) ON DELETE CASCADE,
    key_hash    TEXT    NOT NULL UNIQUE,
    label       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
