-- printfarmd schema, version 3: API keys with roles (issue 15).
--
-- A key is `pfd_<id>_<secret>`. Only an HMAC-SHA256 of the whole key is kept, under a
-- random secret made once per install (auth_secret); the key itself is never stored, so
-- a copy of the database does not give anyone a working key without that secret, and a
-- database without the row gives no key at all. Revoked keys keep their row (revoked_at
-- set) so the list shows what was revoked and when.

CREATE TABLE auth_secret (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    secret  BLOB    NOT NULL
);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    tag           BLOB NOT NULL,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT,
    expires_at    TEXT,
    revoked_at    TEXT
);
