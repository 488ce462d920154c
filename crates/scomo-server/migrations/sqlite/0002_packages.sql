-- The package repository and download tokens for the alternate download
-- server (/dl).
--
-- Keep in step with ../postgres/0002_packages.sql: same tables, columns and
-- meaning. Times are unix milliseconds.

CREATE TABLE packages (
    pkg_id     TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    version    TEXT,
    env_type   TEXT NOT NULL,
    -- MIME type served: application/gzip (tar.gz), application/zip, application/x-tar
    pkg_type   TEXT NOT NULL DEFAULT 'application/gzip',
    size       INTEGER NOT NULL,
    -- lower-case hex SHA-256 of the file
    sha256     TEXT NOT NULL,
    -- base64 Ed25519 signature over the 32-byte SHA-256 digest
    signature  TEXT,
    -- JSON array of {id, name, version}
    components TEXT NOT NULL,
    -- path relative to the data directory
    file       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE download_tokens (
    token               TEXT PRIMARY KEY,
    pkg_id              TEXT NOT NULL REFERENCES packages (pkg_id) ON DELETE CASCADE,
    -- the SCOMO job the token was made for (no FK: jobs come later)
    job_id              INTEGER,
    expires_at          INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    bytes_served        INTEGER NOT NULL DEFAULT 0,
    downloads_completed INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT,
    -- install-notify status (9xx) and when it came
    notify_status       INTEGER,
    notify_at           INTEGER
);

CREATE INDEX download_tokens_pkg ON download_tokens (pkg_id, expires_at);
CREATE INDEX download_tokens_job ON download_tokens (job_id);
