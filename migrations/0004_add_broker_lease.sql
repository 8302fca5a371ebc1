-- Baton schema, version 4: broker high availability.
--
-- Any number of batond processes may use one database; exactly one is the
-- leader. It holds the one row of broker_lease: its epoch (raised by one at
-- every takeover), who holds it, and until when. The leader renews
-- expires_at; a standby takes the row over when it has expired, or at once
-- when the leader's database session is gone (server/lead/lease.c).
--
-- Fencing: every write transaction of a leader starts with
-- baton_fence(its epoch), which takes the transaction advisory lock
-- (7802, epoch) in shared mode and then fails unless the row still carries
-- that epoch. A takeover takes the same lock exclusively, in the transaction
-- that changes the epoch: it waits until the old leader's transactions in
-- flight have committed, and a transaction of the old leader that starts
-- later waits for the takeover's commit and then finds the new epoch (a
-- volatile function's statements each see what committed before them). So
-- every write of an epoch commits before its successor's takeover, which
-- loads the state after it. Advisory locks live in the lock table only: no
-- row lock, no WAL, no MultiXact for the brokers' concurrent transactions
-- (a KEY SHARE row lock cost about 10 us a package in tests/bench). The
-- leader's renewals take no such lock and never wait for the writes.
CREATE TABLE broker_lease (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  -- Unique for the index: the fence finds the row by its epoch with an index
  -- probe. (With sequential scans priced out in the broker's sessions, a
  -- scan would be "expensive" enough to be JIT-compiled, 12 ms a call.)
  epoch bigint NOT NULL UNIQUE,
  holder text NOT NULL,
  acquired_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  -- Set by standbys while they wait: a leader that cannot renew steps down
  -- only when a standby was there to take over (else it rides out a database
  -- outage, as a lone broker always has).
  standby_seen_at timestamptz
);
INSERT INTO broker_lease (epoch, holder, acquired_at, expires_at)
VALUES (0, '', now(), '-infinity');

CREATE FUNCTION baton_fence(e bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock_shared(7802, e::int);
  PERFORM 1 FROM broker_lease WHERE epoch = e;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'broker epoch % no longer holds the leader lease', e
      USING ERRCODE = 'BTFEN';
  END IF;
END
$$;
