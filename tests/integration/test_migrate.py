"""`batond migrate --db DSN`: applies the migrations to an empty database
and records them, applies nothing the second time, leaves a schema that
`batond serve` starts on, and two at once on an empty database both
succeed with the schema applied once (the advisory lock)."""

import os
import subprocess

from harness import PsqlError, binary, main, test

TABLES = ("vendors", "agents", "work_packages", "attempts", "handoffs",
          "audit_events", "baton_migrations")


def migration_files():
    """Versions and names of migrations/NNNN_verb_noun.sql in the source tree."""
    here = os.path.dirname(os.path.abspath(__file__))
    d = os.path.join(here, "..", "..", "migrations")
    out = []
    for f in sorted(os.listdir(d)):
        if f.endswith(".sql") and f[:4].isdigit():
            out.append((int(f[:4]), f[5:-4]))
    assert out, f"no migrations in {d}"
    return out


def migrate(env, dsn, name):
    """Runs `batond migrate --db dsn` to the end; returns (exit status, log)."""
    p = env.proc([binary("batond"), "migrate", "--db", dsn], name=name)
    rc = p.wait(60)
    return rc, p.log_text(since_start=True)


def migrations_rows(pg, db=None):
    return pg.psql("SELECT version, name, applied_at FROM baton_migrations "
                   "ORDER BY version", db=db)


def tables(pg, db=None):
    rows = pg.psql("SELECT table_name FROM information_schema.tables "
                   "WHERE table_schema = 'public' ORDER BY 1", db=db)
    return {r[0] for r in rows}


@test(timeout=60)
def test_migrate_applies_once_then_serve_starts(env):
    pg = env.pg
    want = migration_files()
    assert tables(pg) == set(), "the test database should start empty"

    rc, log = migrate(env, pg.dsn, "migrate-1")
    assert rc == 0, log
    assert "migrations applied" in log and f"applied={len(want)}" in log, log
    for version, name in want:
        assert f"version={version:04d}" in log, (version, log)
    rows = migrations_rows(pg)
    assert [(int(v), n) for v, n, _ in rows] == want, rows
    missing = set(TABLES) - tables(pg)
    assert not missing, f"tables missing after migrate: {missing}"
    # An empty schema: migrate creates tables, it does not run a broker.
    for t in ("vendors", "work_packages", "attempts"):
        assert pg.scalar(f"SELECT count(*) FROM {t}") == "0", t

    rc, log2 = migrate(env, pg.dsn, "migrate-2")
    assert rc == 0, log2
    assert "schema up to date" in log2 and "applied=0" in log2, log2
    assert "applying migration" not in log2, log2
    assert migrations_rows(pg) == rows, "a second migrate changed baton_migrations"

    # serve on the migrated database: starts, applies nothing, works.
    broker = env.broker()
    assert "schema up to date" in broker.log_text(), broker.tail(20)
    _, v, _ = broker.ctl("vendor", "add", "acme", "--region", "EU-DE",
                         "--capability", "upper")
    assert v["name"] == "acme"
    assert pg.scalar("SELECT name FROM vendors") == "acme"
    assert migrations_rows(pg) == rows

    # A bad DSN: a clear error and a non-zero exit, not a hang.
    rc, log3 = migrate(env, f"host={pg.socket_dir} port={pg.port} dbname=no_such_db "
                       f"user={pg.user}", "migrate-bad")
    assert rc != 0 and "no_such_db" in log3, (rc, log3)


def package_row(priority="0", max_attempts="3", state="'queued'", pid="1"):
    return ("INSERT INTO work_packages (id, capability, payload, priority, max_attempts,"
            f" state, submitted_at, updated_at) VALUES ({pid}, 'upper', 'p', {priority},"
            f" {max_attempts}, {state}, now(), now())")


def attempt_row(attempt="1", outcome="NULL"):
    return ("INSERT INTO attempts (package_id, attempt, vendor_id, agent_id, assigned_at,"
            f" outcome) VALUES (1, {attempt}, 1, 1, now(), {outcome})")


def audit_row(at="ARRAY[now()]", texts="ARRAY['x']"):
    return ("INSERT INTO audit_batches (last_at, at, actor, action, subject, detail)"
            f" VALUES (now(), {at}, {texts}, {texts}, {texts}, {texts})")


@test(timeout=60)
def test_schema_refuses_rows_that_break_its_rules(env):
    """The rules on the hot columns (domains since 0010, table CHECKs
    before): each bad value fails with check_violation (23514), and the
    same row with good values goes in, so it is the value that is refused."""
    pg = env.pg
    rc, log = migrate(env, pg.dsn, "migrate-rules")
    assert rc == 0, log

    def refused(stmt):
        # Accepted, the block raises an error of its own; refused for any
        # other reason than a rule, the error goes out as it is: either way
        # psql fails and the test with it.
        pg.psql("DO $$ BEGIN " + stmt + "; RAISE EXCEPTION 'accepted: %', "
                + "$q$" + stmt + "$q$; EXCEPTION WHEN check_violation THEN NULL; END $$")

    bad = [package_row(priority="10"), package_row(priority="-1"),
           package_row(max_attempts="0"), package_row(state="'finished'"),
           attempt_row(attempt="0"), attempt_row(outcome="'exploded'"),
           audit_row(at="'{}'::timestamptz[]"), audit_row(texts="'{}'::text[]"),
           audit_row(at="ARRAY[now(), NULL]"), audit_row(texts="ARRAY[NULL::text]"),
           audit_row(at="array_fill(now(), ARRAY[4097])"),
           audit_row(texts="array_fill('x'::text, ARRAY[4097])")]
    for stmt in bad:
        refused(stmt)
    for stmt in (package_row(priority="9", state="'dead'"), attempt_row(outcome="'revoked'"),
                 audit_row(at="array_fill(now(), ARRAY[4096])",
                           texts="array_fill('x'::text, ARRAY[4096])")):
        pg.psql(stmt)
    assert pg.scalar("SELECT count(*) FROM work_packages") == "1"
    assert pg.scalar("SELECT count(*) FROM attempts") == "1"
    assert pg.scalar("SELECT count(*) FROM audit_events") == "4096"


@test(timeout=60)
def test_concurrent_migrate_applies_once(env):
    """Two `batond migrate` started together on an empty database, a few
    rounds (each on a fresh database) to give the race a chance."""
    pg = env.pg
    want = migration_files()
    for rnd in range(8):
        db = f"race{rnd}"
        pg.psql(f"CREATE DATABASE {db}", db="postgres")
        dsn = f"host={pg.socket_dir} port={pg.port} dbname={db} user={pg.user}"
        argv = [binary("batond"), "migrate", "--db", dsn]
        logs = [env.path("logs", f"race{rnd}-{i}.err") for i in range(2)]
        files = [open(p, "wb") for p in logs]
        try:
            procs = [subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                      stdout=f, stderr=f) for f in files]
            rcs = [p.wait(60) for p in procs]
        finally:
            for f in files:
                f.close()
        texts = [open(p).read() for p in logs]
        assert rcs == [0, 0], f"round {rnd}: exits {rcs}\n" + "\n---\n".join(texts)
        applied = [t.count("applying migration") for t in texts]
        assert sum(applied) == len(want), (rnd, applied, texts)
        rows = migrations_rows(pg, db=db)
        assert [(int(v), n) for v, n, _ in rows] == want, rows
        missing = set(TABLES) - tables(pg, db=db)
        assert not missing, (rnd, missing)
        print(f"round {rnd}: applied by each: {applied}", flush=True)


def database_at_schema_6(env, db, sql):
    """A new database db with migrations 1-6 applied and recorded as batond
    would have, then sql run on it; returns (db, its DSN)."""
    pg = env.pg
    pg.psql(f"CREATE DATABASE {db}", db="postgres")
    dsn = f"host={pg.socket_dir} port={pg.port} dbname={db} user={pg.user}"
    here = os.path.dirname(os.path.abspath(__file__))
    mig = os.path.join(here, "..", "..", "migrations")
    script = ["CREATE TABLE baton_migrations (version integer PRIMARY KEY,"
              " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());"]
    for v, n in migration_files():
        if v <= 6:
            script.append(open(os.path.join(mig, f"{v:04d}_{n}.sql")).read())
            script.append(f"INSERT INTO baton_migrations (version, name) VALUES ({v}, '{n}');")
    script.append(sql)
    pg.psql("\n".join(script), db=db)
    return db, dsn


@test(timeout=90)
def test_upgrade_keeps_the_audit_trail(env):
    """A database made by schema 6 (one audit_events row per event) upgraded
    to 7 (events in audit_batches, audit_events a view): the old events read
    as before with their ids, new ones follow with larger ids and the right
    order in `batonctl audit`, a statement of more than 4096 events is split
    into batches whose ids do not overlap, and the trail stays append-only."""
    pg = env.pg
    db, dsn = database_at_schema_6(
        env, "upgrade",
        "INSERT INTO audit_events (at, actor, action, subject, detail) VALUES"
        " ('2026-01-02T03:04:05Z', 'admin', 'vendor.add', 'vendor:old', 'region=EU'),"
        " ('2026-01-02T03:04:06Z', 'submitter', 'package.submit', 'package:999999999', ''),"
        " ('2026-01-02T03:04:07Z', 'agent', 'attempt.completed',"
        " 'package:999999999',"
        "  'attempt=1 vendor=old agent=a next=completed');")
    trail = "SELECT id, at, actor, action, subject, detail FROM audit_events ORDER BY id"
    before = pg.psql(trail, db=db)
    assert len(before) == 3, before

    rc, log = migrate(env, dsn, "migrate-upgrade")
    assert rc == 0, log
    assert log.count("applying migration") == len(migration_files()) - 6, log
    assert "version=0007" in log, log
    assert pg.psql(trail, db=db) == before, "the upgrade changed the old events"
    assert pg.scalar("SELECT count(*) FROM audit_batches", db=db) == "3"

    # New events, one at a time (vendor add) and merged (a batch submit of
    # 5000 packages in one request: more than one audit batch).
    broker = env.broker(db=dsn)
    broker.ctl("vendor", "add", "newv", "--region", "EU-DE", "--capability", "upper")
    lines = [f'{{"capability": "upper", "payload": "p{i}"}}' for i in range(5000)]
    batch = env.path("big.jsonl")
    with open(batch, "w") as f:
        f.write("\n".join(lines) + "\n")
    _, out, _ = broker.ctl("submit", "--batch", batch)
    assert len(out["ids"]) == 5000, len(out["ids"])
    sizes = pg.psql("SELECT cardinality(at) FROM audit_batches WHERE action[1] ="
                    f" 'package.submit' AND id > {before[-1][0]} ORDER BY id", db=db)
    assert sorted(int(r[0]) for r in sizes) == [904, 4096], sizes
    ids = [int(r[0]) for r in pg.psql("SELECT id FROM audit_events ORDER BY id", db=db)]
    actions = dict(pg.psql("SELECT action, count(*) FROM audit_events"
                           f" WHERE id > {before[-1][0]} GROUP BY 1", db=db))
    assert actions == {"broker.leader": "1", "vendor.add": "1", "package.submit": "5000"}, \
        actions
    assert len(ids) == len(set(ids)) == 3 + 5002, len(ids)
    assert ids[:3] == [int(r[0]) for r in before], ids[:3]
    assert min(ids[3:]) > max(ids[:3])
    subjects = pg.psql("SELECT subject FROM audit_events WHERE action = 'package.submit'"
                       " AND subject <> 'package:999999999' ORDER BY id", db=db)
    assert sorted(r[0] for r in subjects) == sorted(f"package:{i}" for i in out["ids"])

    # batonctl audit: the newest N by id, oldest first, across old and new.
    _, rows, _ = broker.ctl("audit", "--limit", "5004")
    assert [(r["action"], r["subject"]) for r in rows[:4]] == [
        ("package.submit", "package:999999999"), ("attempt.completed", "package:999999999"),
        ("broker.leader", rows[2]["subject"]), ("vendor.add", "vendor:newv")], rows[:4]
    assert all(r["action"] == "package.submit" for r in rows[4:]), rows[4:7]
    _, last, _ = broker.ctl("audit", "--limit", "1")
    assert last == rows[-1:], (last, rows[-1])
    _, pkg, _ = broker.ctl("audit", "--package", "999999999")
    assert [r["action"] for r in pkg] == ["package.submit", "attempt.completed"], pkg

    # Either side of one batch's size (the broker's two forms of a statement
    # with audit events, sql.def AUDIT_ONE): 4096 rows are one batch, 4097
    # are two, every event there once.
    last_id = int(pg.scalar("SELECT max(id) FROM audit_events", db=db))
    for n, want in ((4096, [4096]), (4097, [1, 4096])):
        with open(batch, "w") as f:
            f.write("".join(f'{{"capability": "upper", "payload": "q{i}"}}\n'
                            for i in range(n)))
        _, out, _ = broker.ctl("submit", "--batch", batch)
        assert len(out["ids"]) == n, len(out["ids"])
        sizes = pg.psql("SELECT cardinality(at) FROM audit_batches WHERE id > "
                        f"{last_id}", db=db)
        assert sorted(int(r[0]) for r in sizes) == want, (n, sizes)
        got = pg.psql("SELECT subject FROM audit_events WHERE id > "
                      f"{last_id} ORDER BY id", db=db)
        assert sorted(r[0] for r in got) == sorted(f"package:{i}" for i in out["ids"]), n
        last_id = int(pg.scalar("SELECT max(id) FROM audit_events", db=db))

    for sql in ("UPDATE audit_batches SET actor = '{mallory}'", "DELETE FROM audit_batches",
                "TRUNCATE audit_batches", "UPDATE audit_events SET actor = 'mallory'"):
        try:
            pg.psql(sql, db=db)
        except PsqlError:
            pass
        else:
            raise AssertionError(f"{sql} succeeded on the audit trail")
    assert pg.scalar("SELECT count(*) FROM audit_events", db=db) == str(len(ids) + 4096 + 4097)


@test(timeout=90)
def test_upgrade_keeps_package_states(env):
    """Packages written by schema 6 read the same through packages_now after
    the upgrade to 8 (completions in attempts, open_packages): one completed
    (its end in the package row), one queued, one whose attempt is open. The
    open two are listed as open, the list's floor (0011) is the largest id,
    and a broker started on the database loads them and counts the completed
    one."""
    pg = env.pg
    t0 = "'2026-01-02T03:04:05Z'"
    db, dsn = database_at_schema_6(
        env, "upgrade_pkgs",
        "INSERT INTO vendors (id, name, region, model, capabilities, capacity, cost,"
        " weight, auth_key, created_at, updated_at) VALUES (1, 'oldv', 'EU', 'onshore',"
        f" '{{upper}}', 10, 1, 1, decode(repeat('00', 32), 'hex'), {t0}, {t0});"
        "INSERT INTO agents (id, vendor_id, name, capabilities, slots, first_seen_at,"
        f" last_seen_at) VALUES (1, 1, 'a1', '{{upper}}', 4, {t0}, {t0});"
        "INSERT INTO work_packages (id, capability, payload, priority, max_attempts, state,"
        " attempt, vendor_id, agent_id, result, submitted_at, updated_at, completed_at)"
        f" VALUES (1, 'upper', 'one', 0, 3, 'completed', 1, 1, 1, 'ONE', {t0}, {t0}, {t0}),"
        f" (2, 'upper', 'two', 0, 3, 'queued', 0, NULL, NULL, NULL, {t0}, {t0}, NULL),"
        f" (3, 'upper', 'three', 0, 3, 'queued', 0, NULL, NULL, NULL, {t0}, {t0}, NULL);"
        "INSERT INTO attempts (package_id, attempt, vendor_id, agent_id, assigned_at,"
        f" started_at, ended_at, outcome) VALUES (1, 1, 1, 1, {t0}, {t0}, {t0}, 'completed'),"
        f" (3, 1, 1, 1, {t0}, {t0}, NULL, NULL);")
    now = ("SELECT id, state, attempt, vendor_id, agent_id, convert_from(result, 'UTF8'),"
           " completed_at FROM packages_now ORDER BY id")
    before = pg.psql(now, db=db)
    assert [r[1] for r in before] == ["completed", "queued", "running"], before

    rc, log = migrate(env, dsn, "migrate-upgrade")
    assert rc == 0 and "version=0008" in log, log
    assert pg.psql(now, db=db) == before, "the upgrade changed what packages_now says"
    assert pg.psql("SELECT id FROM open_packages ORDER BY id", db=db) == [("2",), ("3",)]
    # 0011: the list's floor starts at the largest id (every open package up to
    # it is listed), so a restart reads the list alone.
    assert pg.psql("SELECT listed_through FROM open_packages_floor", db=db) == [("3",)]

    broker = env.broker(db=dsn)
    _, stats, _ = broker.ctl("stats")
    assert (stats["completed"], stats["queued"], stats["running"]) == (1, 1, 1), stats
    _, one, _ = broker.ctl("package", "show", "1")
    assert (one["state"], one["result_bytes"]) == ("completed", 3), one


if __name__ == "__main__":
    main()
