-- printfarmd schema, version 1.
--
-- Applied by src/store/migrations.rs when PRAGMA user_version < 1. Later changes go in
-- new numbered migrations there, never by editing this file after a release, so an
-- existing database is upgraded at start with no manual step.
--
-- All times are RFC 3339 UTC text of fixed width (2025-01-09T14:28:45.000Z), so they
-- compare and sort as text.

-- One row per print on one printer (design.md §2).
CREATE TABLE jobs (
    -- Insertion order. "Newest first" is seq DESC; every list index ends in seq so
    -- the filtered lists need no sort step.
    seq                 INTEGER PRIMARY KEY,
    id                  TEXT    NOT NULL UNIQUE,          -- job_<uuidv7>
    printer_id          TEXT    NOT NULL,                 -- no foreign key: history outlives a printer
    printer_type        TEXT    NOT NULL,
    job_name            TEXT    NOT NULL,
    filename            TEXT    NOT NULL,
    status              TEXT    NOT NULL CHECK (status IN
                        ('pending','running','paused','completed','failed','cancelled','unknown')),
    progress            REAL    NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 100),
    start_time          TEXT,
    end_time            TEXT,
    estimated_duration  INTEGER,                          -- seconds
    actual_duration     INTEGER,                          -- seconds
    customer_info       TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(customer_info)),
    notes               TEXT,
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL,
    -- Identity of the print as the printer reports it (design.md §2), for dedup.
    printer_job_id      TEXT,
    printer_start_time  TEXT,
    -- Derived, for the auto_created filter: 1 when customer_info.auto_created is true.
    auto_created        INTEGER GENERATED ALWAYS AS
                        (coalesce(json_extract(customer_info, '$.auto_created') IS 1, 0)) STORED
);

-- Rule 1: a printer prints one thing at a time. At most one open job per printer.
CREATE UNIQUE INDEX jobs_one_open_per_printer ON jobs (printer_id) WHERE status IN ('running', 'paused');

-- List filters, each ending in seq for newest-first order.
CREATE INDEX jobs_by_printer      ON jobs (printer_id, seq);
CREATE INDEX jobs_by_status       ON jobs (status, seq);
CREATE INDEX jobs_by_auto_created ON jobs (auto_created, seq);
CREATE INDEX jobs_by_created_at   ON jobs (created_at);
-- Dedup look-ups: the same file on the same printer recently.
CREATE INDEX jobs_by_printer_file ON jobs (printer_id, filename, created_at);

-- Printers added at runtime through the API, and the certificate pins of every printer
-- (config-file printers included, with managed_by = 'config').
CREATE TABLE printers (
    id              TEXT PRIMARY KEY,
    managed_by      TEXT NOT NULL CHECK (managed_by IN ('api', 'config')),
    config          TEXT CHECK (config IS NULL OR json_valid(config)), -- the [[printers]] entry, for managed_by = 'api'
    cert_sha256     TEXT,                                               -- pinned TLS certificate (Bambu)
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- Values saved through PUT /api/v1/settings; they win over daemon.toml and the
-- environment (design.md §5).
CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL CHECK (json_valid(value)),
    updated_at  TEXT NOT NULL
);
