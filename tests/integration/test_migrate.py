"""`batond migrate --db DSN`: applies the migrations to an empty database
and records them, applies nothing the second time, leaves a schema that
`batond serve` starts on, and two at once on an empty database both
succeed with the schema applied once (the advisory lock)."""

import os
import subprocess

from harness import binary, main, test

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


if __name__ == "__main__":
    main()
