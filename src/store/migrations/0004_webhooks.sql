-- printfarmd schema, version 3: webhooks added through the API, and the on-disk queue of
-- webhook deliveries (src/notify). Self-contained: touches no earlier table.
--
-- The queue is written by its own connection (the notify queue writer), not by the job
-- writer; see src/notify/queue.rs for why and what a crash can lose.

-- Webhooks added with POST /api/v1/webhooks (the file's [[webhooks]] are not stored).
-- `config` is the entry as JSON, its secret included: the daemon needs it to sign.
CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    config      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- One row per (event, webhook) still to be delivered. `id` is the delivery's
-- idempotency key (X-Printfarmd-Delivery), the same on every retry.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    webhook_id      TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    body            TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    headers         TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_ms);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id);

-- What each webhook's deliveries came to, kept across restarts.
CREATE TABLE webhook_status (
    webhook_id      TEXT PRIMARY KEY,
    last_success_at TEXT,
    last_error      TEXT,
    last_error_at   TEXT,
    delivered       INTEGER NOT NULL DEFAULT 0,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    dropped         INTEGER NOT NULL DEFAULT 0
);
