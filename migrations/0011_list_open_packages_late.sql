-- Baton schema, version 11: a package is listed as open only if it is still
-- open a while after its submit.
--
-- Since 0008 every submit inserted its id into open_packages and every final
-- end deleted it, although only a restart reads that list. Most packages end
-- within seconds of their submit, so for most of them both writes were paid
-- for nothing: the insert alone was a fifth of a package's writes in
-- tests/bench/write_cost (17.6 against 13.9 us a package, 847 against 663
-- bytes of WAL, statements of 256).
--
-- From this version a submit lists nothing. About once a second (the
-- setting store_list_interval) the broker walks the ids it handed out since
-- the last round, in order, and stops at the first package whose insert or
-- final end is not committed yet. It lists the packages of that stretch that
-- are still open, and moves open_packages_floor.listed_through to the end of
-- the stretch in the same transaction. So this always holds:
--
--     every open package is in open_packages, or its id is above
--     open_packages_floor.listed_through.
--
-- A restart loads both (server/store/load.c) and starts new ids above
-- listed_through as well as above the largest id, because listed_through may
-- name ids whose inserts never committed: a new package there would be open
-- and below the floor, unlisted.
--
-- Listing only settled packages keeps the writes about one package in order
-- on its connection: its listing goes after its insert committed and before
-- any later end is sent, so a final end always finds the row it deletes, or
-- no row because it was never listed. A package whose final end fails is
-- still listed (the delete did not commit) or still above the floor (no round
-- passes a package while its end is in flight), and a later round lists it.
--
-- Every broker sharing a database must run this version or later: an older
-- one would load only the listed packages.
--
-- The floor starts at the largest id: every open package up to it is listed
-- already (0008 listed them at submit).

CREATE TABLE open_packages_floor (
    one             boolean PRIMARY KEY DEFAULT true CHECK (one),
    listed_through  bigint NOT NULL CHECK (listed_through >= 0)
);
INSERT INTO open_packages_floor (listed_through)
SELECT coalesce(max(id), 0) FROM work_packages;
