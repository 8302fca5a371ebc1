-- Baton schema, version 8: a completion is written once, to attempts.
--
-- After 0006 a package row was still written twice: inserted at submit and
-- updated when its attempt ended. That update is a new version of the widest
-- row (payload included) plus a primary-key entry, because the open-packages
-- index's predicate (completed_at IS NULL) changes with it: 19 of the 33 us
-- that ending an attempt cost PostgreSQL (tests/bench/write_cost, statements
-- of 32). From this version an attempt that completes writes only its
-- attempts row (outcome, end, result) and takes the package off the list of
-- open packages; the package row stays as submitted. Every other end of an
-- attempt (failed, lost, revoked, handed back, cancelled, dead) still
-- updates the package row as before: those are the rare cases, and the row
-- then holds the attempt's number, as 0006 describes.
--
-- open_packages: the ids of packages not yet completed, dead or cancelled,
-- replacing the partial index work_packages_open. A submit inserts its id, a
-- final end deletes it (a delete marks the old row; an update wrote a whole
-- new one), an admin's retry of a dead or cancelled package puts it back.
-- Recovery loads the packages listed here.
--
-- packages_now folds a completed attempt in as it folds an open one: the
-- attempt after the row's (or the row's own, for a row an earlier version
-- wrote while the attempt was open) that has not ended or has completed.
-- Its state is then 'completed', its result, error, vendor and agent are
-- the attempt's, and completed_at is the attempt's end. Operators and the
-- broker read packages through packages_now (the README says so since 0006);
-- work_packages.state alone no longer says whether a package completed.

ALTER TABLE attempts ADD COLUMN result bytea;

CREATE TABLE open_packages (
    id  bigint PRIMARY KEY
);
INSERT INTO open_packages (id)
SELECT id FROM work_packages WHERE completed_at IS NULL ORDER BY id;

DROP INDEX IF EXISTS work_packages_open;
-- Rows are no longer updated as a rule: pack them (0003 left room for the
-- updates of every package).
ALTER TABLE work_packages SET (fillfactor = 100);

CREATE OR REPLACE VIEW packages_now AS
SELECT w.id, w.idem_key, w.capability, w.payload, w.priority, w.deadline_at,
       w.not_before_at, w.regions, w.certs, w.max_cost, w.prefer, w.avoid,
       w.max_attempts,
       CASE WHEN t.attempt IS NULL THEN w.state
            WHEN t.ended_at IS NOT NULL THEN 'completed'
            WHEN t.started_at IS NULL THEN 'assigned'
            ELSE 'running' END AS state,
       coalesce(t.attempt, w.attempt) AS attempt,
       CASE WHEN t.attempt IS NULL THEN w.vendor_id ELSE t.vendor_id END AS vendor_id,
       CASE WHEN t.attempt IS NULL THEN w.agent_id ELSE t.agent_id END AS agent_id,
       w.progress, w.checkpoint,
       CASE WHEN t.ended_at IS NULL THEN w.result ELSE t.result END AS result,
       CASE WHEN t.ended_at IS NULL THEN w.error ELSE t.error END AS error,
       w.submitted_at,
       greatest(w.updated_at, t.assigned_at, t.started_at, t.ended_at) AS updated_at,
       coalesce(w.completed_at, t.ended_at) AS completed_at, w.only_vendor
FROM work_packages w
LEFT JOIN LATERAL (
    SELECT a.attempt, a.vendor_id, a.agent_id, a.assigned_at, a.started_at,
           a.ended_at, a.result, a.error
    FROM attempts a
    WHERE w.completed_at IS NULL AND a.package_id = w.id
      AND a.attempt >= w.attempt AND a.attempt <= w.attempt + 1
      AND (a.ended_at IS NULL OR a.outcome = 'completed')
    ORDER BY a.attempt DESC LIMIT 1
) t ON true;
