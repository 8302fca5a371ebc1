-- Baton schema, version 6: an assignment is written once, to attempts.
--
-- Until now an assignment inserted its attempts row and also updated the
-- package row (state, attempt, vendor, agent): a second row version of the
-- widest row, payload included, for every attempt (540 B of WAL and 16 us of
-- the assignment's 18 us per package in tests/bench/write_cost). From this
-- version the broker writes a package row at submit and at the end of each
-- attempt only; while an attempt is open the package row keeps the number
-- of the last attempt that ended (0 before the first), and the open attempt
-- is the attempts row after it that has not ended. Rows written by earlier
-- versions (state 'assigned' or 'running' with the open attempt's number)
-- read the same through the view below, so a database may be upgraded with
-- work in flight.
--
-- packages_now: every package as it is now, the open attempt folded in.
-- What the broker reads (package show and list, wait, recovery) and what an
-- operator should query for a package's current state, vendor and agent.
-- The open attempt is a LATERAL probe of attempts' primary key per package
-- (LIMIT keeps it one: flattened into a join, a generic plan could scan the
-- whole table), only while the package is open: the attempt after the row's
-- (this version) or the row's own (an earlier version's open attempt).
CREATE VIEW packages_now AS
SELECT w.id, w.idem_key, w.capability, w.payload, w.priority, w.deadline_at,
       w.not_before_at, w.regions, w.certs, w.max_cost, w.prefer, w.avoid,
       w.max_attempts,
       CASE WHEN t.attempt IS NULL THEN w.state
            WHEN t.started_at IS NULL THEN 'assigned'
            ELSE 'running' END AS state,
       coalesce(t.attempt, w.attempt) AS attempt,
       CASE WHEN t.attempt IS NULL THEN w.vendor_id ELSE t.vendor_id END AS vendor_id,
       CASE WHEN t.attempt IS NULL THEN w.agent_id ELSE t.agent_id END AS agent_id,
       w.progress, w.checkpoint, w.result, w.error, w.submitted_at,
       greatest(w.updated_at, t.assigned_at, t.started_at) AS updated_at,
       w.completed_at, w.only_vendor
FROM work_packages w
LEFT JOIN LATERAL (
    SELECT a.attempt, a.vendor_id, a.agent_id, a.assigned_at, a.started_at
    FROM attempts a
    WHERE w.completed_at IS NULL AND a.package_id = w.id
      AND a.attempt >= w.attempt AND a.attempt <= w.attempt + 1
      AND a.ended_at IS NULL
    ORDER BY a.attempt DESC LIMIT 1
) t ON true;
