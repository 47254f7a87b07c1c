-- certbind schema, version 1. Never edit an applied migration: add a new file.
-- Applied by `store::sqlite` at open, in one transaction, tracked with PRAGMA user_version.

CREATE TABLE accounts (
    pk          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE projects (
    pk          INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    account_pk  INTEGER NOT NULL REFERENCES accounts(pk),
    name        TEXT NOT NULL,
    is_default  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
-- Invariant: an account has exactly one default project.
CREATE UNIQUE INDEX projects_one_default ON projects(account_pk) WHERE is_default = 1;
-- A main key may use every project of its account, listed in creation order.
CREATE INDEX projects_account ON projects(account_pk, pk);

CREATE TABLE api_keys (
    public_key          TEXT PRIMARY KEY,
    account_pk          INTEGER NOT NULL REFERENCES accounts(pk),
    -- Sealed with the master key, AAD "key/<public_key>".
    private_key_sealed  BLOB NOT NULL,
    is_main             INTEGER NOT NULL,
    created_at          INTEGER NOT NULL
);

-- Projects a sub-account key may use (main keys may use all projects of their account).
CREATE TABLE api_key_projects (
    public_key  TEXT NOT NULL REFERENCES api_keys(public_key) ON DELETE CASCADE,
    project_pk  INTEGER NOT NULL REFERENCES projects(pk),
    PRIMARY KEY (public_key, project_pk)
);

CREATE TABLE certificates (
    pk              INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    project_pk      INTEGER NOT NULL REFERENCES projects(pk),
    region          TEXT NOT NULL,
    name            TEXT NOT NULL,
    -- SSLContent and the private key are sealed with the master key, AAD "<id>/content" and
    -- "<id>/key", so a sealed value cannot be moved to another row or column unnoticed.
    content_sealed  BLOB NOT NULL,
    key_sealed      BLOB NOT NULL,
    chain_pem       TEXT NOT NULL,
    hash_value      TEXT NOT NULL,
    domains         TEXT NOT NULL,
    -- SAN DNS names, form-urlencoded as repeated "n=" pairs (no separator can clash with a name).
    dns_names       TEXT NOT NULL,
    not_before      INTEGER NOT NULL,
    not_after       INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX certificates_scope ON certificates(project_pk, region, pk);

CREATE TABLE load_balancers (
    pk          INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('clb', 'alb')),
    project_pk  INTEGER NOT NULL REFERENCES projects(pk),
    region      TEXT NOT NULL,
    name        TEXT NOT NULL,
    tag         TEXT NOT NULL,
    remark      TEXT NOT NULL,
    -- IPv4 address as its 32-bit number: allocation needs ordered range scans, not text order.
    -- Invariant: addresses are unique across all load balancers.
    address     INTEGER NOT NULL UNIQUE,
    attrs       TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX load_balancers_scope ON load_balancers(project_pk, region, kind, pk);

-- Addresses released by deleted load balancers, handed out again lowest first before the pool
-- grows, so allocation is an index probe however many load balancers exist.
CREATE TABLE free_addresses (
    address  INTEGER PRIMARY KEY
);

CREATE TABLE listeners (
    pk          INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    lb_pk       INTEGER NOT NULL REFERENCES load_balancers(pk) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    protocol    TEXT NOT NULL,
    port        INTEGER NOT NULL,
    attrs       TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
-- Invariant: one listener per port and load balancer (RetCode 4107).
CREATE UNIQUE INDEX listeners_port ON listeners(lb_pk, port);

CREATE TABLE backends (
    pk           INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    listener_pk  INTEGER NOT NULL REFERENCES listeners(pk) ON DELETE CASCADE,
    ip           TEXT NOT NULL,
    port         INTEGER NOT NULL,
    weight       INTEGER NOT NULL,
    enabled      INTEGER NOT NULL,
    attrs        TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX backends_listener ON backends(listener_pk, pk);

-- One certificate bound to one listener. role: 0 = CLB VServer certificate, 1 = ALB default,
-- 2 = ALB extension (SNI). seq orders binds (the most recently bound SNI certificate wins).
-- Invariant: a binding's certificate and listener are in the same project and region (checked by
-- the store when binding), so "every binding of a certificate" is already project/region scoped.
CREATE TABLE bindings (
    pk           INTEGER PRIMARY KEY,
    ssl_pk       INTEGER NOT NULL REFERENCES certificates(pk) ON DELETE RESTRICT,
    listener_pk  INTEGER NOT NULL REFERENCES listeners(pk) ON DELETE CASCADE,
    role         INTEGER NOT NULL CHECK (role IN (0, 1, 2)),
    seq          INTEGER NOT NULL
);
-- Invariant: a certificate is bound to a listener at most once. Also the per-listener lookup and
-- the index behind ON DELETE CASCADE from listeners.
CREATE UNIQUE INDEX bindings_listener_ssl ON bindings(listener_pk, ssl_pk);
-- Invariant: a VServer has at most one certificate and an ALB listener at most one default.
CREATE UNIQUE INDEX bindings_one_primary ON bindings(listener_pk) WHERE role IN (0, 1);
-- UpdateSSLBinding: "every binding of ssl X" (project scope), "… on these listeners" (LB scope,
-- probed per listener) and the ON DELETE RESTRICT check from certificates all search this index.
CREATE INDEX bindings_ssl ON bindings(ssl_pk, listener_pk);

-- Monotonic counters (bind order).
CREATE TABLE counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('binding_seq', 0);
