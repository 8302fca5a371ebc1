"""The embedded default: batond with no --db creates and runs a private
PostgreSQL under DATA_DIR/pg, stops it on SIGTERM, reuses the cluster on the
next run (no second initdb), after a kill -9 of batond takes the
still-running postmaster back with the data intact, and stops it also when a
second signal cuts the graceful stop short."""

import os
import signal

from harness import IS_ROOT, main, test, wait_for
from fixtures_it1 import (CAPABILITY, HANDLER, add_vendor, embedded_dsn,
                          embedded_pgdata, embedded_processes, embedded_psql,
                          expected_result, postmaster_pids, stop_stray_embedded,
                          submit_one, wait_agents, wait_ids)

CREATING = "creating embedded postgresql cluster"


def run_one(broker, payload):
    """Submits one package and checks it completes with the right result."""
    pid = submit_one(broker, payload)
    wait_ids(broker, [pid], timeout=30)
    _, raw, _ = broker.ctl("result", pid, json=False)
    assert raw == expected_result(payload), (raw, payload)
    return pid


def assert_postgres_gone(data_dir):
    wait_for(lambda: embedded_processes(data_dir) == [], 15,
             what="no postgres process left for the data dir")
    assert postmaster_pids(data_dir) == []


@test(pg=False, timeout=120)
def test_embedded_lifecycle(env):
    # env.tmp is 0711 as root, so the postgres OS user can pass through to
    # the data dir, which batond itself creates.
    data_dir = env.path("var")
    pgdata = embedded_pgdata(data_dir)
    env.add_cleanup(lambda: stop_stray_embedded(data_dir), "stray embedded postgres")
    broker = env.broker(db=None, data_dir=data_dir, make_data_dir=False, start=False)
    broker.start(timeout=120)  # initdb on a slow disk takes a while

    # First run: created DATA_DIR (owner-only, or 0711 for root so postgres
    # may traverse it) and a cluster in DATA_DIR/pg.
    mode = os.stat(data_dir).st_mode & 0o777
    assert mode == (0o711 if IS_ROOT else 0o700), oct(mode)
    assert os.path.isfile(os.path.join(pgdata, "PG_VERSION")), os.listdir(data_dir)
    log1 = broker.log_text(since_start=True)
    assert CREATING in log1, log1
    pm = postmaster_pids(data_dir)
    assert len(pm) == 1, f"expected one postmaster for {pgdata}: {pm}"
    dsn = embedded_dsn(broker)
    # Private: no TCP listener, and the schema is in place.
    assert embedded_psql(dsn, "SHOW listen_addresses") == [[""]]
    assert embedded_psql(dsn, "SELECT count(*) FROM baton_migrations") != [["0"]]

    v = add_vendor(broker, "acme", "EU-DE", capacity=4)
    agent = env.agent(vendor="acme", secret=v["secret"], broker=broker, name="acme-1",
                      slots=2, handlers={CAPABILITY: HANDLER})
    wait_agents(broker, ["acme-1"])
    first = run_one(broker, "hello from the embedded default")
    rows = embedded_psql(dsn, f"SELECT state, convert_from(result, 'UTF8') "
                              f"FROM packages_now WHERE id = {first}")
    assert rows == [["completed", "HELLO FROM THE EMBEDDED DEFAULT"]], rows

    # SIGTERM: batond exits 0 and takes its postgres with it.
    broker.sigterm()
    assert broker.wait(90) == 0, broker.tail(30)
    assert "stopping embedded postgresql" in broker.log_text(since_start=True)
    assert_postgres_gone(data_dir)

    # Second run on the same data dir: the same cluster, no initdb.
    broker.start(timeout=90)
    log2 = broker.log_text(since_start=True)
    assert CREATING not in log2 and "initdb" not in log2, log2
    assert "migrations applied" not in log2, log2
    _, vendors, _ = broker.ctl("vendor", "list")
    assert [x["name"] for x in vendors] == ["acme"], vendors
    _, show, _ = broker.ctl("package", "show", first)
    assert show["state"] == "completed", show
    # The agent rode out the restart and takes new work.
    wait_agents(broker, ["acme-1"])
    second = run_one(broker, "after a clean restart")
    assert agent.running

    # kill -9 of batond: its postgres lives on (pg_ctl detached it) and the
    # next batond takes it back, or restarts it; the data is there either way.
    old_pm = postmaster_pids(data_dir)
    assert broker.kill9() == -signal.SIGKILL
    survivors = embedded_processes(data_dir)
    print(f"after kill -9 of batond: postgres processes {survivors} "
          f"(postmaster {old_pm})", flush=True)
    broker.start(timeout=120)
    log3 = broker.log_text(since_start=True)
    assert CREATING not in log3, log3
    if survivors:
        assert ("reusing running embedded postgresql" in log3
                or "restarting it" in log3), log3
    pm3 = postmaster_pids(data_dir)
    assert len(pm3) == 1, pm3
    _, vendors, _ = broker.ctl("vendor", "list")
    assert [x["name"] for x in vendors] == ["acme"], vendors
    for pid in (first, second):
        _, show, _ = broker.ctl("package", "show", pid)
        assert show["state"] == "completed", show
    wait_agents(broker, ["acme-1"])
    run_one(broker, "after kill -9")
    dsn = embedded_dsn(broker)
    assert embedded_psql(dsn, "SELECT count(*) FROM packages_now "
                              "WHERE state = 'completed'") == [["3"]]

    # A second signal while stopping (Ctrl-C in a terminal reaches batond
    # and deploy/dev.sh, which sends SIGTERM too): batond leaves without
    # waiting for its commits, but not without stopping its postgres.
    os.kill(broker.pid, signal.SIGINT)
    os.kill(broker.pid, signal.SIGTERM)
    assert broker.wait(90) == 1, broker.tail(30)
    log4 = broker.log_text(since_start=True)
    assert "second signal" in log4 and "stopping embedded postgresql" in log4, log4
    assert_postgres_gone(data_dir)

    # Finally a clean stop again leaves nothing behind.
    broker.start(timeout=120)
    wait_agents(broker, ["acme-1"])
    run_one(broker, "after a second signal")
    agent.stop()
    broker.sigterm()
    assert broker.wait(90) == 0, broker.tail(30)
    assert_postgres_gone(data_dir)


if __name__ == "__main__":
    main()
