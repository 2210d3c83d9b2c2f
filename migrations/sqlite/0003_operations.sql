-- What an admin and an operator need to see and limit: what is wrong with a live connection,
-- when its health is next checked, who did each thing, whose a session is, API keys that can be
-- revoked, sign-in throttling, invitations, and revocation retries shared among instances.

-- A live (`connected`) connection's trouble, if any: `vendor_down` (refreshes fail for a passing
-- reason; retried with backoff) or `app_refused` (the vendor refuses the app's registration, not
-- the clinic's grant: the tokens are kept and served while valid). Cleared by the next success.
ALTER TABLE connections ADD COLUMN trouble TEXT;
-- The technical detail of the trouble (HTTP status, the vendor's error code), for "Details".
ALTER TABLE connections ADD COLUMN trouble_detail TEXT;
ALTER TABLE connections ADD COLUMN trouble_since INTEGER;
-- When the background health check next looks at this connection.
ALTER TABLE connections ADD COLUMN next_health_at INTEGER;
CREATE INDEX connections_health ON connections(next_health_at) WHERE status = 'connected';

-- Who did it: `admin:<email>`, `worker`, `cli`, or empty for entries made before this column.
ALTER TABLE connection_events ADD COLUMN actor TEXT NOT NULL DEFAULT '';

-- The admin a session is signed in as (none for patients and signed-out sessions), so that a
-- password change or "sign out everywhere" can end them.
ALTER TABLE sessions ADD COLUMN admin_id INTEGER REFERENCES admins(id) ON DELETE CASCADE;
CREATE INDEX sessions_admin ON sessions(admin_id) WHERE admin_id IS NOT NULL;

-- Sign-in looks admins up by lower-cased email on both engines.
CREATE INDEX admins_email_lower ON admins(lower(email));

ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
ALTER TABLE api_keys ADD COLUMN revoked_at INTEGER;
CREATE INDEX api_keys_clinic ON api_keys(clinic_id);

-- Failed sign-ins in the throttling window, per (hashed) email and per client address.
CREATE TABLE sign_in_failures (
    id          INTEGER PRIMARY KEY,
    email_hash  TEXT    NOT NULL,
    client      TEXT    NOT NULL,
    at          INTEGER NOT NULL
) STRICT;
CREATE INDEX sign_in_failures_email ON sign_in_failures(email_hash, at);
CREATE INDEX sign_in_failures_client ON sign_in_failures(client, at);
CREATE INDEX sign_in_failures_at ON sign_in_failures(at);

-- An invitation to become an admin of a clinic: only the SHA-256 of its link's token is kept.
CREATE TABLE admin_invitations (
    token_hash  TEXT    PRIMARY KEY,
    clinic_id   INTEGER NOT NULL REFERENCES clinics(id) ON DELETE CASCADE,
    email       TEXT    NOT NULL,
    invited_by  INTEGER REFERENCES admins(id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX admin_invitations_clinic ON admin_invitations(clinic_id);

-- A revocation retry is leased, so that two instances never retry the same one at once.
ALTER TABLE pending_revocations ADD COLUMN lease_owner TEXT;
ALTER TABLE pending_revocations ADD COLUMN lease_until INTEGER;
CREATE INDEX pending_revocations_due ON pending_revocations(next_attempt_at);

-- Sign-out removes a session's pending flows.
CREATE INDEX oauth_flows_session ON oauth_flows(session_binding);

-- Every live connection has a time for its next health check; those made before checks were
-- scheduled are checked at once.
UPDATE connections SET next_health_at = updated_at WHERE status = 'connected' AND next_health_at IS NULL;

-- A refresh round's batches walk the due rows in (expiry, id) order, each starting where the last
-- ended: with the id in the index, that start is where the index scan begins, also when many
-- tokens share one expiry (a storm).
DROP INDEX connections_due;
CREATE INDEX connections_due ON connections(vendor, expires_at, id) WHERE status = 'connected';
