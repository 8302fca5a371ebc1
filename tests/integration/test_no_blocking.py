"""The broker's loop never blocks on PostgreSQL (DESIGN.md: "All database I/O
is non-blocking inside the loop ... A blocking call in the loop is a bug").

How this shows it without tracing system calls: batond is one thread running
one libuv loop; the control socket, the agent endpoint and the database
connection are all served by that loop. Freezing every process of the test's
PostgreSQL cluster with SIGSTOP (postmaster and all backends, including the
one batond is connected to) makes any blocking libpq call — PQexec,
PQgetResult on a blocking connection, a synchronous connect — wait forever,
without an error or a timeout. If the loop made such a call, the next
`batonctl stats` (answered from memory, by the same loop) would hang. So:
`stats`, `vendor list` and `agent list` answering within 1 s while the
database is frozen, a submit waiting for its commit without stopping other
clients, and the agent staying connected past its lease (its polls are
answered by the same loop) together show the loop did not block. A real
shutdown of PostgreSQL then checks the other half of the promise: a clear
"store unavailable" at once, the broker alive, recovery on restart, and no
acknowledged package lost.
"""

import json
import os
import signal
import subprocess
import time

from harness import Abort, binary, main, test, wait_for
from fixtures_it2 import all_completed, vendor_with_agent

LEASE_S = 3.0  # the broker's default lease (batond --set lease=3s)


def timed_ctl(broker, *args, limit=1.0):
    t0 = time.monotonic()
    rc, out, err = broker.ctl(*args, check=False, timeout=limit + 10)
    dt = time.monotonic() - t0
    assert rc == 0, f"batonctl {' '.join(args)} exited {rc}: {err.strip()}"
    assert dt <= limit, f"batonctl {' '.join(args)} took {dt:.2f}s (limit {limit}s)"
    return out, dt


def ctl_popen(broker, *args):
    """batonctl in the background (stdout/stderr captured)."""
    argv = [broker.batonctl or binary("batonctl"), "--control", broker.control,
            "--json", *[str(a) for a in args]]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)


def proc_state(pid):
    """The kernel's state letter for pid ('T' when stopped)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def submit_ids(broker, n, prefix):
    ids = []
    for i in range(n):
        _, p, _ = broker.ctl("submit", "--capability", "upper", "--payload", f"{prefix}-{i}")
        ids.append(int(p["id"]))
    return ids


@test(timeout=120)
def test_frozen_database_does_not_block_the_loop(env):
    broker = env.broker()
    _, agent = vendor_with_agent(env, broker, handler="sleep 0.3; tr a-z A-Z", slots=2)
    acked = submit_ids(broker, 6, "before")
    # Some of them are still running or queued when the database freezes.

    pg_pids = env.pg.processes()
    assert len(pg_pids) >= 3, f"expected a postmaster and backends, got {pg_pids}"
    timings = {}
    bg = None
    other = None
    stopped_at = time.monotonic()
    for pid in pg_pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        for pid in pg_pids:
            wait_for(lambda p=pid: proc_state(p) == "T", timeout=5,
                     what=f"postgres pid {pid} stopped")

        # Answered from the broker's memory, by the loop, while the DB is frozen.
        for args in (("stats",), ("vendor", "list"), ("agent", "list")):
            _, timings[" ".join(args)] = timed_ctl(broker, *args)

        # A submit needs a commit: it waits, in the background...
        bg = ctl_popen(broker, "submit", "--capability", "upper", "--payload", "during")
        time.sleep(1.0)
        assert bg.poll() is None, \
            f"a submit was acknowledged while the database was frozen: {bg.communicate()}"
        # ...without holding up the control socket for anybody else, nor for a
        # second submitter.
        other = ctl_popen(broker, "submit", "--capability", "upper", "--payload", "during2")
        for args in (("stats",), ("vendor", "list"), ("agent", "list"),
                     ("vendor", "show", "acme")):
            _, timings["during submit: " + " ".join(args)] = timed_ctl(broker, *args)
        st, _ = timed_ctl(broker, "stats")
        assert st["agents"] == 1, st

        # The agent stays connected longer than its lease: an idle agent's
        # polls are still answered by the loop, and one whose results wait for
        # a commit is not taken for lost (leases are held while the store
        # cannot commit), so it may be quiet only while it holds work.
        time.sleep(max(0.0, stopped_at + LEASE_S + 1.5 - time.monotonic()))
        agents, _ = timed_ctl(broker, "agent", "list")
        assert [(a["name"], a["state"]) for a in agents] == \
            [(agent.agent_name, "connected")], agents
        assert agents[0]["last_seen_ms"] < LEASE_S * 1000 or agents[0]["busy"] > 0, agents
        assert time.monotonic() - stopped_at > LEASE_S
        broker.check_running()
        agent.check_running()
        frozen_for = time.monotonic() - stopped_at
    finally:
        for pid in pg_pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    print(f"database frozen for {frozen_for:.1f}s; answer times: "
          + ", ".join(f"{k} {v * 1000:.0f}ms" for k, v in timings.items()))

    # Thawed: the waiting submits finish, with an id (or a clear refusal).
    for p in (bg, other):
        out, err = p.communicate(timeout=30)
        if p.returncode == 0:
            acked.append(int(json.loads(out)["id"]))
        else:
            assert p.returncode == 1 and "store unavailable" in err, (p.returncode, out, err)
    acked += submit_ids(broker, 3, "after")
    all_completed(broker, acked, timeout=40)
    for pid in acked[::3]:
        assert broker.ctl("result", pid, json=False)[1].isupper()
    broker.check_running()


def freeze(pids):
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    for pid in pids:
        wait_for(lambda p=pid: proc_state(p) == "T", timeout=5,
                 what=f"postgres pid {pid} stopped")


def thaw(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


@test(timeout=120)
def test_completion_counts_only_once_committed(env):
    """A result whose FINISH cannot commit (the database is frozen) is not
    "completed" yet: stats shows it as finishing and `wait --all` keeps
    waiting for it, so no client is told a package is done before the broker
    could lose that (DESIGN.md: nothing acknowledged before its commit)."""
    broker = env.broker()
    vendor_with_agent(env, broker, handler="sleep 3; tr a-z A-Z", slots=2)
    ids = submit_ids(broker, 2, "slow")
    wait_for(lambda: (lambda s: s["assigned"] + s["running"] == 2)(broker.ctl("stats")[1]),
             timeout=20, what="both packages with the agent")

    pg_pids = env.pg.processes()
    freeze(pg_pids)
    try:
        # The handlers end during the freeze; the first result reaches the
        # broker, whose FINISH waits for the database (the agent's second
        # result waits behind the first one's unanswered request).
        st = wait_for(lambda: (lambda s: s if s.get("finishing", 0) >= 1 else None)(
            broker.ctl("stats")[1]), timeout=15, what="a result waiting for its commit")
        assert st["completed"] == 0, st
        assert st["finishing"] + st["running"] + st["assigned"] == 2, st
        rc, w, err = broker.ctl("wait", "--all", "--timeout", "1s", check=False)
        assert rc == 1 and "pending" in err, (rc, w, err)
        assert w["completed"] == 0 and w["pending"] == 2, w
    finally:
        thaw(pg_pids)

    _, w, _ = broker.ctl("wait", "--all", "--timeout", "30s")
    assert w["completed"] == 2 and w["pending"] == 0, w
    st = broker.ctl("stats")[1]
    assert st["completed"] == 2 and st["finishing"] == 0, st
    for pid in ids:
        assert broker.ctl("result", pid, json=False)[1].startswith("SLOW-")


@test(timeout=120)
def test_database_down_and_back(env):
    broker = env.broker()
    _, agent = vendor_with_agent(env, broker, handler="sleep 0.5; tr a-z A-Z", slots=2)
    acked = submit_ids(broker, 8, "before")
    time.sleep(0.3)  # two are running, the rest queued

    env.pg.stop("fast")
    t0 = time.monotonic()

    def refused():
        rc, out, err = broker.ctl("submit", "--capability", "upper", "--payload", "down",
                                  check=False, timeout=10)
        if rc == 0:
            raise Abort(f"a submit was acknowledged with the database down: {out}")
        return (rc, err) if "store unavailable" in err else None
    rc, err = wait_for(refused, timeout=5, what='submit refused with "store unavailable"')
    took = time.monotonic() - t0
    assert rc == 1, (rc, err)
    assert took < 5, took
    # Alive and answering; nothing acknowledged was dropped from its view.
    broker.check_running()
    rc, st, _ = broker.ctl("stats", check=False, timeout=5)
    assert rc == 0, st
    # (A result that arrived after the stop is "finishing": its commit waits.)
    assert (st["completed"] + st["finishing"] + st["queued"] + st["assigned"]
            + st["running"]) >= len(acked), st
    broker.wait_for_log(r"level=(warn|error) .*(database|store)", timeout=5)
    time.sleep(1.0)

    env.pg.start()
    t1 = time.monotonic()

    def submit_works():
        rc, out, _ = broker.ctl("submit", "--capability", "upper", "--payload", "back",
                                check=False, timeout=10)
        return out if rc == 0 else None
    p = wait_for(submit_works, timeout=12, interval=0.3,
                 what="a submit to work again after PostgreSQL restarted")
    print(f"store unavailable reported after {took:.2f}s; submits work again "
          f"{time.monotonic() - t1:.1f}s after PostgreSQL restarted")
    acked.append(int(p["id"]))
    all_completed(broker, acked, timeout=40)
    # Exactly once: one completed attempt per package in the database.
    rows = env.pg.psql("SELECT package_id, count(*) FROM attempts WHERE outcome = "
                       "'completed' GROUP BY package_id HAVING count(*) <> 1")
    assert rows == [], rows
    ids = ",".join(str(i) for i in acked)
    assert env.pg.scalar("SELECT count(DISTINCT package_id) FROM attempts WHERE "
                         f"outcome = 'completed' AND package_id IN ({ids})") == str(len(acked))
    agent.check_running()
    broker.check_running()


if __name__ == "__main__":
    main()
