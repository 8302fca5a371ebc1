-- Baton schema, version 5: a lighter time index on the audit trail.
--
-- Every package adds two audit rows (package.submit, attempt.<outcome>), each
-- maintaining a b-tree on "at" besides the primary key: about 6 % of the WAL
-- a package writes and a b-tree insert each (tests/bench/write_cost). Rows
-- are appended in time order, so a BRIN index answers a time range as well
-- (a few block ranges) for almost nothing per insert. `batonctl audit` takes
-- its newest rows by id, the append order, on the primary key.
DROP INDEX IF EXISTS audit_events_at;
CREATE INDEX audit_events_at ON audit_events USING brin (at);
