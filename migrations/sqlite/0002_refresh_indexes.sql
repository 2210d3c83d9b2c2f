-- The background worker looks for connections entering their refresh margin, vendor by vendor,
-- and for refresh leases that ran out, every round. Without these, each round read every
-- connection (and its sealed tokens) into SQLite's page cache.
CREATE INDEX connections_due ON connections(vendor, expires_at) WHERE status = 'connected';
CREATE INDEX connections_leased ON connections(lease_until) WHERE lease_owner IS NOT NULL;
