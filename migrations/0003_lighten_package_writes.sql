-- Baton schema, version 3: cheaper package writes (tests/bench profiles).
--
-- Every package is written three or four times (submit, assign, maybe start,
-- finish). Profiling the backend showed where that went beyond the rows:
--
-- 1. Foreign keys from the hot tables. Each one is a trigger that runs a
--    "SELECT 1 ... FOR KEY SHARE" query per row: four per package (the
--    attempt's package, vendor and agent; the package's vendor on assign),
--    a fifth of the backend's time. The broker is the only writer of these
--    rows, and its core only names vendors, agents and packages it has
--    already written (vendor and agent rows are written before the first
--    assignment that names them, in the same ordered pipeline), so the
--    checks only ever passed. The rarely written tables (agents → vendors,
--    handoffs → packages and vendors) keep theirs.
ALTER TABLE attempts DROP CONSTRAINT IF EXISTS attempts_package_id_fkey;
ALTER TABLE attempts DROP CONSTRAINT IF EXISTS attempts_vendor_id_fkey;
ALTER TABLE attempts DROP CONSTRAINT IF EXISTS attempts_agent_id_fkey;
ALTER TABLE work_packages DROP CONSTRAINT IF EXISTS work_packages_vendor_id_fkey;
ALTER TABLE work_packages DROP CONSTRAINT IF EXISTS work_packages_agent_id_fkey;

-- 2. Index entries on every update. An update that changes no indexed
--    column (nor one in an index's predicate) can be a heap-only tuple
--    update: no new index entries. The open-packages index was defined by
--    state, which every write changes, and the (vendor_id, id) index by the
--    vendor, which assign changes; no statement could use the latter (its
--    only reader filters with "$2 IS NULL OR vendor_id = $2"). Open packages
--    are now those not yet completed_at, which only the final write sets, so
--    assign and start can be heap-only. The idempotency key index keeps only
--    the packages that have a key.
DROP INDEX IF EXISTS work_packages_vendor;
DROP INDEX IF EXISTS work_packages_open;
CREATE INDEX work_packages_open ON work_packages (id) WHERE completed_at IS NULL;
ALTER TABLE work_packages DROP CONSTRAINT IF EXISTS work_packages_idem_key_key;
CREATE UNIQUE INDEX work_packages_idem_key ON work_packages (idem_key)
    WHERE idem_key IS NOT NULL;

-- Room on each page for the updated versions of its rows (heap-only tuples
-- must stay on their page).
ALTER TABLE work_packages SET (fillfactor = 70);
ALTER TABLE attempts SET (fillfactor = 80);
