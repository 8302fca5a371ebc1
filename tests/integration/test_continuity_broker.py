"""Continuity when the broker or its database fails (DESIGN.md "Continuity"),
on real processes and a real PostgreSQL:

  5. kill -9 of batond while handlers run, then batond again on the same
     database and ports: the agents reconnect and report what they hold; no
     handoff for that work, one attempt per package, all complete;
  5b. kill -9 of batond right after a submit was acknowledged, with open
     packages of every age and kind and finished ones beside them: each
     open one is loaded back as it was (listed in open_packages or above
     the list's floor), no finished one is, and all complete once an agent
     is there; after a kill -9 new ids start above the list's floor;
  6. PostgreSQL stopped for 7 s mid-run (fast shutdown), then started again:
     during the outage `batonctl submit` exits 1 with "store unavailable" and
     batond keeps running; results reported during the outage are not lost;
     afterwards everything completes, nothing twice.

Every test also checks the shared invariants (fixtures_it4.check_continuity).
"""

import re
import signal
import time

from harness import Abort, main, test, wait_for
from fixtures_it1 import (CAPABILITY, HANDLER, TWO_LANES_BROKER_ARGS, add_vendor,
                          batch_line, submit_batch, submit_one, wait_ids, write_batch)
from fixtures_it4 import (World, check_continuity, db_attempts, db_handoffs, elapsed,
                          log_lines, open_attempts, summary, wait_running)

OUTAGE_S = 7.0  # more than two agent leases (fixtures_it4.LEASE_S)


@test(timeout=100)
def test_broker_kill9_agents_keep_their_work(env):
    t0 = time.monotonic()
    broker = env.broker(extra_args=["--set", "poll_park=200ms"])
    w = World(env, broker)
    w.vendor("acme", "EU-DE")
    w.vendor("globex", "IN")
    for name, vendor in (("acme-1", "acme"), ("globex-1", "globex")):
        w.agent(vendor, name, w.work(name, 4), slots=2, wait=False)
    w.wait_connected(["acme-1", "globex-1"])
    ids = w.submit(4, "restart")
    wait_for(lambda: len(open_attempts(env.pg, "acme-1"))
             + len(open_attempts(env.pg, "globex-1")) == 4, 20,
             what="all four packages running", interval=0.1)
    held = {a["package"]: a for a in db_attempts(env.pg) if a["outcome"] is None}
    assert sorted(held) == sorted(ids), held

    marks = {n: a.log_text().count("session established") for n, a in w.agents.items()}
    t_kill = time.monotonic()
    assert broker.kill9() == -signal.SIGKILL
    broker.start(timeout=60)
    t_up = time.monotonic()
    for n, a in w.agents.items():
        wait_for(lambda a=a, n=n: a.log_text().count("session established") > marks[n],
                 15, what=f"{n} to start a new session", logs=[a, broker])
    wait_ids(broker, ids, timeout=40)
    t_done = time.monotonic()

    r = check_continuity(env, w, reasons=set())
    assert r["handoffs"] == [], f"handoffs for work the agents held: {r['handoffs']}"
    for pid, a in held.items():
        atts = r["by_package"][pid]
        assert len(atts) == 1 and atts[0]["outcome"] == "completed", atts
        assert atts[0]["agent"] == a["agent"], (a, atts)
    for n, a in w.agents.items():
        assert a.running and a.starts == 1, f"{n} restarted or died\n" + a.tail(20)
        # The new session reported the two attempts it was running.
        sessions = re.findall(r'msg="session established" .* held=(\d+)', a.log_text())
        assert len(sessions) >= 2 and int(sessions[1]) == 2, \
            f"{n}: sessions {sessions}\n" + log_lines(a, "session")
    print(f"continuity: broker kill -9 with 4 packages running: answering again "
          f"{t_up - t_kill:.2f}s after the kill, all completed {t_done - t_kill:.2f}s "
          f"after it; {summary(r)}; took {elapsed(t0)}", flush=True)


@test(timeout=120)
def test_broker_kill9_loads_every_open_package(env):
    """What recovery must find, whatever the store writes when: packages
    queued long before the kill and in its last moment (acknowledged just
    before it), one cancelled and retried (open again); and what it must not
    bring back: completed and cancelled packages. No agent runs at the kill,
    so every open package is queued."""
    kill9_loads_every_open_package(env, ["--set", "poll_park=200ms"])


@test(timeout=120)
def test_broker_kill9_loads_every_open_package_two_lanes(env):
    """The same with package writes spread over two connections: each
    package is listed on the connection of its writes, and the floor moves
    once both listings committed."""
    kill9_loads_every_open_package(env, TWO_LANES_BROKER_ARGS)


def kill9_loads_every_open_package(env, broker_args):
    broker = env.broker(extra_args=broker_args)
    v = add_vendor(broker, "acme", "EU-DE")

    def batch(name, n):
        lines = [batch_line(f"{name}-{i}") for i in range(n)]
        return submit_batch(broker, write_batch(env.path(f"{name}.jsonl"), lines), n)

    agent = env.agent(vendor="acme", secret=v["secret"], broker=broker, name="acme-1",
                      slots=4, handlers={CAPABILITY: HANDLER})
    done = batch("done", 20)
    wait_ids(broker, done, timeout=60)
    agent.stop()
    wait_for(lambda: all(a["state"] != "connected"
                         for a in broker.ctl("agent", "list")[1]), 20,
             what="the agent gone", interval=0.2)

    old = batch("old", 50)
    cancelled = submit_one(broker, "cancelled")
    retried = submit_one(broker, "retried")
    for pid in (cancelled, retried):
        assert broker.ctl("package", "cancel", pid)[1]["state"] == "cancelled"
    assert broker.ctl("package", "retry", retried)[1]["state"] == "queued"
    # Older than a moment: a listing round (migrations/0011) has put them in
    # open_packages and moved the floor past them, so the restart finds them
    # through the list; the recent ones, acknowledged just before the kill,
    # are above the floor and found through it.
    wait_for(lambda: listed(env.pg, old + [retried]) == len(old) + 1
             and floor(env.pg) >= retried, 20,
             what="the old packages listed and the floor past them", interval=0.2)
    recent = batch("recent", 50)
    assert broker.kill9() == -signal.SIGKILL
    above = [p for p in recent if p > floor(env.pg)]
    broker.start(timeout=60)

    open_ids = set(old) | set(recent) | {retried}
    _, stats, _ = broker.ctl("stats")
    assert (stats["queued"], stats["assigned"], stats["running"]) == (len(open_ids), 0, 0), \
        stats
    assert (stats["completed"], stats["cancelled"], stats["dead"]) == (len(done), 1, 0), stats
    _, queued, _ = broker.ctl("package", "list", "--state", "queued", "--limit", "1000")
    assert {p["id"] for p in queued} == open_ids, \
        (sorted(open_ids - {p["id"] for p in queued}), len(queued))
    for pid, state in ((done[0], "completed"), (cancelled, "cancelled"), (retried, "queued")):
        assert broker.ctl("package", "show", pid)[1]["state"] == state, pid

    env.agent(vendor="acme", secret=v["secret"], broker=broker, name="acme-2", slots=4,
              handlers={CAPABILITY: HANDLER})
    wait_ids(broker, sorted(open_ids), timeout=60)
    _, stats, _ = broker.ctl("stats")
    assert stats["completed"] == len(done) + len(open_ids) and stats["queued"] == 0, stats
    assert broker.ctl("package", "show", cancelled)[1]["state"] == "cancelled"
    print(f"continuity: kill -9 with {len(open_ids)} open packages: {len(old) + 1} "
          f"loaded from the list, {len(above)} of the {len(recent)} acknowledged "
          f"just before the kill from above its floor", flush=True)


def listed(pg, ids) -> int:
    return int(pg.psql("SELECT count(*) FROM open_packages WHERE id IN ("
                       + ",".join(str(i) for i in ids) + ")")[0][0])


def floor(pg) -> int:
    return int(pg.psql("SELECT listed_through FROM open_packages_floor")[0][0])


@test(timeout=120)
def test_restart_gives_new_ids_above_the_list_floor(env):
    """A listing round passes over ids whose inserts never committed (here a
    keyed submit that named a finished package: its new id was dropped), so
    the floor can be above every id in the database. After a kill -9, new
    packages must get ids above the floor: one at or below it would be open
    and unlisted, and lost by the next restart."""
    broker = env.broker(extra_args=["--set", "poll_park=200ms"])
    v = add_vendor(broker, "acme", "EU-DE")
    agent = env.agent(vendor="acme", secret=v["secret"], broker=broker, name="acme-1",
                      slots=1, handlers={CAPABILITY: HANDLER})
    first = submit_one(broker, "first", key="order-1")
    wait_ids(broker, [first], timeout=30)
    agent.stop()
    # Its end committed and it left memory (a key still in memory would be
    # answered from there, with no new id to drop).
    wait_for(lambda: broker.ctl("stats")[1]["finishing"] == 0, 10,
             what="the first package's end committed", interval=0.1)
    _, again, _ = broker.ctl("submit", "--capability", CAPABILITY, "--payload", "again",
                             "--key", "order-1")
    assert int(again["id"]) == first, again  # the finished package, a new id dropped
    wait_for(lambda: floor(env.pg) > first, 20, what="a listing round past the dropped id",
             interval=0.2)
    top = int(env.pg.psql("SELECT max(id) FROM work_packages")[0][0])
    fl = floor(env.pg)
    assert top == first < fl, (top, fl)

    assert broker.kill9() == -signal.SIGKILL
    broker.start(timeout=60)
    pid = submit_one(broker, "after-restart")
    assert pid > fl, f"package {pid} was given an id at or below the list floor {fl}"
    assert broker.kill9() == -signal.SIGKILL
    broker.start(timeout=60)
    assert broker.ctl("package", "show", pid)[1]["state"] == "queued"
    _, stats, _ = broker.ctl("stats")
    assert (stats["queued"], stats["completed"]) == (1, 1), stats
    env.agent(vendor="acme", secret=v["secret"], broker=broker, name="acme-2", slots=1,
              handlers={CAPABILITY: HANDLER})
    wait_ids(broker, [pid], timeout=30)
    print(f"continuity: after a kill -9 new ids start above the list floor "
          f"({fl}, largest id {top}): package {pid}", flush=True)


@test(timeout=120)
def test_database_outage_loses_nothing(env):
    t0 = time.monotonic()
    broker = env.broker(extra_args=["--set", "poll_park=200ms"])
    w = World(env, broker)
    w.vendor("acme", "EU-DE")
    # The two handlers running at the stop take 4 s: they must outlast
    # PostgreSQL's shutdown (a checkpoint, which took over 2 s under ASan on a
    # busy machine) and finish while the database is down. The packages after
    # them need not be slow (0.5 s each).
    agent = w.agent("acme", "acme-1", w.work_first("acme-1", 2, 4, 0.5), slots=2)
    ids = w.submit(6, "before")
    running = wait_running(env.pg, "acme-1", 2)

    t_stop_wall = time.time()  # the handlers were running when the stop began
    env.pg.stop(mode="fast")
    t_down, t_down_wall = time.monotonic(), time.time()

    def refused():
        rc, out, err = broker.ctl("submit", "--capability", "work", "--payload", "down",
                                  check=False, timeout=10)
        if rc == 0:
            raise Abort(f"a submit was acknowledged with the database down: {out}")
        return (rc, err) if "store unavailable" in err else None
    rc, err = wait_for(refused, 5, what='submit refused with "store unavailable"')
    assert rc == 1, (rc, err)
    refused_after = time.monotonic() - t_down
    # The handlers running at the stop finish during the outage and report.
    wait_for(lambda: all((a["package"], a["attempt"], "acme-1") in w.outputs()
                         for a in running), 8, what="the running handlers to finish")
    finished = w.outputs()
    checks = 0
    while time.monotonic() - t_down < OUTAGE_S:
        broker.check_running()
        agent.check_running()
        rc, out, err = broker.ctl("submit", "--capability", "work", "--payload", "down",
                                  check=False, timeout=10)
        assert rc == 1 and "store unavailable" in err, (rc, out, err)
        rc, st, err = broker.ctl("stats", check=False, timeout=5)
        assert rc == 0, (rc, st, err)
        checks += 1
        time.sleep(1.0)
    env.pg.start()
    t_back = time.monotonic()

    def submit_works():
        rc, out, _ = broker.ctl("submit", "--capability", "work", "--payload", "back",
                                check=False, timeout=10)
        return out if rc == 0 else None
    p = wait_for(submit_works, 15, interval=0.3,
                 what="a submit to work again after PostgreSQL restarted")
    w.acked[int(p["id"])] = "back"
    ids.append(int(p["id"]))
    ids += w.submit(2, "after")
    wait_ids(broker, ids, timeout=40)

    # The results of the handlers that finished during the outage are the
    # ones stored: one attempt each, nothing run again.
    by_pkg = {}
    for x in db_attempts(env.pg):
        by_pkg.setdefault(x["package"], []).append(x)
    for a in running:
        pid = a["package"]
        done_at = finished[(pid, a["attempt"], "acme-1")]
        assert t_stop_wall < done_at < t_down_wall + OUTAGE_S, \
            f"package {pid}'s handler did not finish during the outage " \
            f"(stop began {t_stop_wall:.2f}, down {t_down_wall:.2f}, done {done_at:.2f})"
        atts = by_pkg[pid]
        assert [(x["attempt"], x["agent"], x["outcome"]) for x in atts] == \
            [(a["attempt"], "acme-1", "completed")], \
            (f"package {pid}: the result its handler produced during the outage was "
             f"not kept; attempts {atts}; handoffs {db_handoffs(env.pg)}\n"
             + log_lines(broker, "lost", "handed off", "database", "session ended"))
    r = check_continuity(env, w, reasons=set())
    broker.check_running()
    agent.check_running()
    print(f"continuity: PostgreSQL down {t_back - t_down:.1f}s: submit refused after "
          f"{refused_after:.2f}s, {checks} more refusals and stats answers during it; "
          f"{len(running)} results reported during the outage kept; {summary(r)}; "
          f"took {elapsed(t0)}", flush=True)


if __name__ == "__main__":
    main()
