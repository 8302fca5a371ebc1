-- Baton schema, version 2: what continuity needs to survive a restart.
--   vendors.state_reason       why a vendor is degraded, failed, draining or
--                              suspended (a circuit breaker's figures, "no live
--                              agent", "admin: …"); empty when active.
--   work_packages.only_vendor  the vendor an admin pinned the package to with
--                              `batonctl package reassign ID --to V`; NULL = any
--                              vendor its requirements allow.

ALTER TABLE vendors ADD COLUMN state_reason text NOT NULL DEFAULT '';
ALTER TABLE work_packages ADD COLUMN only_vendor text;
