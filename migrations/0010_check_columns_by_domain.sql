-- Baton schema, version 10: the rules on the hot columns move from table
-- CHECK constraints into domains; the rules stay, their cost goes.
--
-- PostgreSQL keeps a table's CHECK constraints as catalog text and, in every
-- statement that writes a row of the table, reads each one back
-- (stringToNode), plans it again and compiles it before it checks the first
-- row. The broker's statements are prepared and write many rows each, but at
-- moderate load they hold few rows, and that start-up was a large part of
-- them: a statement of one package cost 215 us (assign 36, finish 105,
-- submit insert 74) with the checks and 152 us (23, 70, 59) with the same
-- rules as domains; of 16 packages, 33.1 against 29.2 us a package; of 256,
-- 22.8 against 21.8 (tests/bench/write_cost, best of 3 to 5, interleaved).
-- A domain's constraints are parsed and planned once per session (the type
-- cache) and only evaluated per row.
--
-- So every column the hot statements write that had a rule now has a type
-- that carries it: work_packages.priority (0-9), .max_attempts (> 0), .state
-- (one of the package states); attempts.attempt (> 0), .outcome (one of the
-- attempt outcomes). A bad value still fails with SQLSTATE 23514
-- (check_violation), as before.
--
-- audit_batches had one table CHECK over its five arrays: 1 to 4096 events,
-- all five of one length. A domain sees one column, so each array now
-- carries "1 to 4096 elements, none NULL" (the NULL rule is new: before 0007
-- every event's fields were NOT NULL, and an array would take a NULL
-- silently). The equal lengths are no longer checked by the database: the
-- broker's statements build all five arrays with one aggregate over the same
-- events (server/store/sql.def, BT_SQL_AUDIT_ONE and _BATCHES), and a
-- shorter array would show as NULL fields in audit_events, never hide an
-- event. The audit rules apply to rows appended from now on (NOT VALID): the
-- trail is never rewritten, and the rows before had their own check.
--
-- No table is rewritten. A column moves to a domain without constraints over
-- its own type (binary-coercible: no rewrite, indexes kept), then the domain
-- gets its constraint, which PostgreSQL validates by reading the rows (they
-- met the very same rule as a table CHECK until this transaction). The views
-- over these columns are made again from their own definitions (a column
-- under a view cannot change type).

CREATE DOMAIN package_priority AS smallint;
CREATE DOMAIN package_attempt_limit AS integer;
CREATE DOMAIN package_state AS text;
CREATE DOMAIN attempt_number AS integer;
CREATE DOMAIN attempt_outcome AS text;
CREATE DOMAIN audit_times AS timestamptz[];
CREATE DOMAIN audit_texts AS text[];

-- The views go and come back from their own definitions around the change.
DO $$
DECLARE
    packages_now_def text := pg_get_viewdef('packages_now'::regclass);
    audit_events_def text := pg_get_viewdef('audit_events'::regclass);
BEGIN
    DROP VIEW packages_now;
    DROP VIEW audit_events;
    ALTER TABLE work_packages
        DROP CONSTRAINT work_packages_priority_check,
        DROP CONSTRAINT work_packages_max_attempts_check,
        DROP CONSTRAINT work_packages_state_check,
        ALTER COLUMN priority TYPE package_priority,
        ALTER COLUMN max_attempts TYPE package_attempt_limit,
        ALTER COLUMN state TYPE package_state;
    ALTER TABLE attempts
        DROP CONSTRAINT attempts_attempt_check,
        DROP CONSTRAINT attempts_outcome_check,
        ALTER COLUMN attempt TYPE attempt_number,
        ALTER COLUMN outcome TYPE attempt_outcome;
    ALTER TABLE audit_batches
        DROP CONSTRAINT audit_batches_check,
        ALTER COLUMN at TYPE audit_times,
        ALTER COLUMN actor TYPE audit_texts,
        ALTER COLUMN action TYPE audit_texts,
        ALTER COLUMN subject TYPE audit_texts,
        ALTER COLUMN detail TYPE audit_texts;
    EXECUTE 'CREATE VIEW packages_now AS ' || packages_now_def;
    EXECUTE 'CREATE VIEW audit_events AS ' || audit_events_def;
END
$$;

ALTER DOMAIN package_priority ADD CONSTRAINT package_priority_range
    CHECK (VALUE BETWEEN 0 AND 9);
ALTER DOMAIN package_attempt_limit ADD CONSTRAINT package_attempt_limit_positive
    CHECK (VALUE > 0);
ALTER DOMAIN package_state ADD CONSTRAINT package_state_known
    CHECK (VALUE IN ('queued', 'assigned', 'running', 'completed', 'dead', 'cancelled'));
ALTER DOMAIN attempt_number ADD CONSTRAINT attempt_number_positive
    CHECK (VALUE > 0);
ALTER DOMAIN attempt_outcome ADD CONSTRAINT attempt_outcome_known
    CHECK (VALUE IN ('completed', 'failed', 'transient', 'lost', 'cancelled',
                     'handed-back', 'revoked'));
ALTER DOMAIN audit_times ADD CONSTRAINT audit_times_events
    CHECK (cardinality(VALUE) BETWEEN 1 AND 4096 AND array_position(VALUE, NULL) IS NULL)
    NOT VALID;
ALTER DOMAIN audit_texts ADD CONSTRAINT audit_texts_events
    CHECK (cardinality(VALUE) BETWEEN 1 AND 4096 AND array_position(VALUE, NULL) IS NULL)
    NOT VALID;
