-- Baton schema, version 1: vendors, agents, work packages, attempts, handoffs and
-- the audit trail. Ids are assigned by the broker (its core numbers packages so a
-- whole batch can be written in one round trip); writes are idempotent so a segment
-- whose outcome was unknown after a lost connection can simply be replayed.

CREATE TABLE vendors (
    id            bigint PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    region        text NOT NULL,
    model         text NOT NULL
                  CHECK (model IN ('onshore', 'nearshore', 'offshore', 'captive')),
    capabilities  text[] NOT NULL,
    certs         text[] NOT NULL DEFAULT '{}',
    capacity      integer NOT NULL CHECK (capacity > 0),
    cost          double precision NOT NULL CHECK (cost >= 0),
    hours         text,
    weight        double precision NOT NULL CHECK (weight > 0),
    state         text NOT NULL DEFAULT 'active'
                  CHECK (state IN ('active', 'degraded', 'failed', 'draining', 'suspended')),
    -- Ed25519 public key derived from the vendor secret. The secret itself is
    -- shown once at creation and never stored.
    auth_key      bytea NOT NULL CHECK (length(auth_key) = 32),
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

CREATE TABLE agents (
    id            bigint PRIMARY KEY,
    vendor_id     bigint NOT NULL REFERENCES vendors (id),
    name          text NOT NULL,
    capabilities  text[] NOT NULL,
    slots         integer NOT NULL CHECK (slots > 0),
    software      text,
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    UNIQUE (vendor_id, name)
);

CREATE TABLE work_packages (
    id             bigint PRIMARY KEY,
    idem_key       text UNIQUE,
    capability     text NOT NULL,
    payload        bytea NOT NULL,
    priority       smallint NOT NULL CHECK (priority BETWEEN 0 AND 9),
    deadline_at    timestamptz,
    not_before_at  timestamptz,
    regions        text[] NOT NULL DEFAULT '{}',
    certs          text[] NOT NULL DEFAULT '{}',
    max_cost       double precision,
    prefer         text[] NOT NULL DEFAULT '{}',
    avoid          text[] NOT NULL DEFAULT '{}',
    max_attempts   integer NOT NULL CHECK (max_attempts > 0),
    state          text NOT NULL
                   CHECK (state IN ('queued', 'assigned', 'running', 'completed',
                                    'dead', 'cancelled')),
    attempt        integer NOT NULL DEFAULT 0,
    vendor_id      bigint REFERENCES vendors (id),
    agent_id       bigint REFERENCES agents (id),
    progress       smallint,
    checkpoint     bytea,
    result         bytea,
    error          text,
    submitted_at   timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    completed_at   timestamptz
);

-- Recovery at start loads every package that is not finished; keep that cheap
-- when the table holds millions of finished ones.
CREATE INDEX work_packages_open ON work_packages (id)
    WHERE state IN ('queued', 'assigned', 'running');
CREATE INDEX work_packages_vendor ON work_packages (vendor_id, id);

CREATE TABLE attempts (
    package_id   bigint NOT NULL REFERENCES work_packages (id),
    attempt      integer NOT NULL CHECK (attempt > 0),
    vendor_id    bigint NOT NULL REFERENCES vendors (id),
    agent_id     bigint NOT NULL REFERENCES agents (id),
    assigned_at  timestamptz NOT NULL,
    started_at   timestamptz,
    ended_at     timestamptz,
    outcome      text CHECK (outcome IN ('completed', 'failed', 'transient', 'lost',
                                         'cancelled', 'handed-back', 'revoked')),
    exit_code    integer,
    error        text,
    PRIMARY KEY (package_id, attempt)
);

CREATE TABLE handoffs (
    id              bigserial PRIMARY KEY,
    package_id      bigint NOT NULL REFERENCES work_packages (id),
    attempt         integer NOT NULL,
    from_vendor_id  bigint NOT NULL REFERENCES vendors (id),
    to_vendor_id    bigint REFERENCES vendors (id),
    reason          text NOT NULL
                    CHECK (reason IN ('vendor-failed', 'agent-lost', 'lease-expired',
                                      'drain', 'sla-risk', 'admin')),
    checkpoint      bytea,
    at              timestamptz NOT NULL,
    UNIQUE (package_id, attempt)
);
CREATE INDEX handoffs_package ON handoffs (package_id);

-- The audit trail: every admin action and state change worth a later question.
-- Append-only: the trigger below refuses UPDATE, DELETE and TRUNCATE.
CREATE TABLE audit_events (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL,
    actor    text NOT NULL,
    action   text NOT NULL,
    subject  text NOT NULL,
    detail   text NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_at ON audit_events (at);

CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_no_update
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
