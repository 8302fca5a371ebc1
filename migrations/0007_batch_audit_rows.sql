-- Baton schema, version 7: the audit trail is stored in batches.
--
-- Every package added two audit rows (package.submit, attempt.<outcome>),
-- each a heap tuple with its own header and primary-key entry: a quarter of
-- the PostgreSQL time and WAL a package cost (tests/bench/write_cost: 16 of
-- 63 us, 440 of 1,660 B). The broker writes a package's events in merged
-- statements of many packages anyway, so from this version each such
-- statement appends ONE row holding its events as parallel arrays. Nothing
-- is dropped or summarised: every event is still its own element with its
-- own time, actor, action, subject and detail, and the table is still
-- append-only (the same triggers as before).
--
-- audit_events keeps its name and columns as a view (id, at, actor, action,
-- subject, detail), one row per event, so operators' queries and tools read
-- the trail as before. UPDATE, DELETE and TRUNCATE through it fail too.
--
-- Event ids: a batch's row id is its first event's id and the events after
-- it take the next ids, so ids still grow in append order and never repeat.
-- The sequence hands out blocks of 4096 (a single event wastes the rest of
-- its block; int8 still lasts 2^51 batches), and a statement with more than
-- 4096 events appends one batch per 4096 (sql.def).

CREATE SEQUENCE audit_event_ids INCREMENT BY 4096;

CREATE TABLE audit_batches (
    id       int8 PRIMARY KEY DEFAULT nextval('audit_event_ids'),
    last_at  timestamptz NOT NULL,       -- the newest "at": time ranges skip old batches
    at       timestamptz[] NOT NULL,
    actor    text[] NOT NULL,
    action   text[] NOT NULL,
    subject  text[] NOT NULL,
    detail   text[] NOT NULL,
    CHECK (cardinality(at) BETWEEN 1 AND 4096
           AND cardinality(actor) = cardinality(at)
           AND cardinality(action) = cardinality(at)
           AND cardinality(subject) = cardinality(at)
           AND cardinality(detail) = cardinality(at))
);
ALTER SEQUENCE audit_event_ids OWNED BY audit_batches.id;
-- Batches are appended in time order: a BRIN answers a time range for
-- almost nothing per insert (as 0005 did for the rows).
CREATE INDEX audit_batches_last_at ON audit_batches USING brin (last_at);

-- The rows written so far become one-event batches with their own ids.
INSERT INTO audit_batches (id, last_at, at, actor, action, subject, detail)
SELECT id, at, ARRAY[at], ARRAY[actor], ARRAY[action], ARRAY[subject], ARRAY[detail]
FROM audit_events ORDER BY id;
SELECT setval('audit_event_ids', coalesce((SELECT max(id) FROM audit_batches), 0) + 1,
              false);

-- The old table's triggers go with it; the function stays for the new one.
DROP TABLE audit_events;

CREATE TRIGGER audit_batches_no_update
    BEFORE UPDATE OR DELETE ON audit_batches
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_batches_no_truncate
    BEFORE TRUNCATE ON audit_batches
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- One row per event, as the table was.
CREATE VIEW audit_events AS
SELECT b.id + e.n - 1 AS id, e.at, e.actor, e.action, e.subject, e.detail
FROM audit_batches b
CROSS JOIN LATERAL unnest(b.at, b.actor, b.action, b.subject, b.detail)
    WITH ORDINALITY AS e(at, actor, action, subject, detail, n);
