"""`batonctl audit` and `batonctl scorecard` on real processes and a real
PostgreSQL: both are read from history in the store.

  * two vendors run a few packages each (one vendor's handler fails: exit 1),
    the admin drains and resumes a vendor and cancels a package; `audit --json`
    then holds vendor.add, vendor.admin (twice), package.cancel, a
    package.submit per package and an attempt.<outcome> row per ended attempt
    with the right actor, subject and detail, oldest first, and --package,
    --vendor and --since narrow it as documented;
  * the broker's log (logfmt, every line parsed) has one info line per
    package state change (queued, assigned, running, completed / dead /
    cancelled) and per vendor state change;
  * `scorecard --json` matches what happened: completed, failed, handed off,
    on-time rate, turnaround percentiles (cross-checked with SQL on the rows)
    and cost;
  * the audit trail is append-only: UPDATE and DELETE through psql fail;
  * exit codes: an unknown vendor is 1 ("no vendor V"), a bad flag 2;
  * with PostgreSQL down both exit 1 with "store unavailable", and answer
    again once it is back.
"""

import re

from harness import PsqlError, main, test, wait_for
from fixtures_it1 import wait_ids
from fixtures_it4 import World, wait_vendor_state

GOOD_COST, BAD_COST = 2.5, 0.5


def audit(broker, *args):
    return broker.ctl("audit", *args, timeout=15)[1]


@test(timeout=180)
def test_audit_and_scorecard_follow_history(env):
    broker = env.broker(extra_args=["--set", "poll_park=200ms"])
    w = World(env, broker)
    w.vendor("good", "EU-DE", cost=GOOD_COST)
    w.vendor("bad", "EU-DE", cost=BAD_COST)
    w.agent("good", "good-1", w.work("good-1", 0.2))
    w.agent("bad", "bad-1", w.work("bad-1", 0.2, fail_unless=env.path("never")))

    # avoid is a hard constraint: each package runs where the test says.
    done = [w.submit_one("ok", avoid="bad", deadline="1h") for _ in range(2)]
    done.append(w.submit_one("ok", avoid="bad"))
    failing = [w.submit_one("fail", avoid="good", max_attempts="1") for _ in range(2)]
    wait_ids(broker, done, timeout=60)
    _, st, _ = broker.ctl("wait", "--timeout", "60s", *failing, timeout=90)
    assert st["dead"] == 2 and st["pending"] == 0, st

    _, out, _ = broker.ctl("vendor", "drain", "bad")
    assert out["state"] == "draining", out
    wait_vendor_state(w, "bad", "draining", 10)
    _, out, _ = broker.ctl("vendor", "resume", "bad")
    assert out["state"] == "active", out
    later = w.submit_one("later", not_before="1h")
    _, out, _ = broker.ctl("package", "cancel", later)
    assert out == {"id": later, "state": "cancelled"}, out
    # An agent that says goodbye leaves a row naming its vendor in the detail.
    assert w.agents["good-1"].stop() == 0
    # The audit writes follow the commits; give them a moment.
    rows = wait_for(lambda: (lambda r: r if {"package.cancel", "agent.bye"}
                             <= {x["action"] for x in r} else None)(audit(broker)),
                    10, what="the cancel and the agent's goodbye in the audit trail")

    # ---- audit: the whole trail, oldest first
    assert isinstance(rows, list) and rows, rows
    for r in rows:
        assert set(r) >= {"at", "actor", "action", "subject", "detail"}, r
        assert isinstance(r["detail"], str), r
    ats = [r["at"] for r in rows]
    assert ats == sorted(ats), ats
    assert all(a.endswith("Z") and "T" in a for a in ats), ats[:3]
    picked = [(r["actor"], r["action"], r["subject"]) for r in rows
              if r["action"] in ("vendor.add", "vendor.admin", "package.cancel")]
    assert picked == [("admin", "vendor.add", "vendor:good"),
                      ("admin", "vendor.add", "vendor:bad"),
                      ("admin", "vendor.admin", "vendor:bad"),
                      ("admin", "vendor.admin", "vendor:bad"),
                      ("admin", "package.cancel", f"package:{later}")], picked
    admin = [r for r in rows if r["action"] == "vendor.admin"]
    assert "state=draining" in admin[0]["detail"], admin
    assert "state=active" in admin[1]["detail"], admin
    # Every submit and the end of every attempt: submitted, then completed on
    # good, or failed on bad with nothing left (max_attempts 1: next=dead).
    submits = [r["subject"] for r in rows if r["action"] == "package.submit"]
    assert submits == [f"package:{p}" for p in done + failing + [later]], submits
    assert all(r["actor"] == "submitter" for r in rows if r["action"] == "package.submit")
    for pid in done + failing:
        mine = [(r["actor"], r["action"], r["detail"]) for r in rows
                if r["subject"] == f"package:{pid}" and r["action"] != "package.submit"]
        if pid in done:
            want = ("agent", "attempt.completed",
                    "attempt=1 vendor=good agent=good-1 next=completed exit=0")
        else:
            want = ("agent", "attempt.failed",
                    "attempt=1 vendor=bad agent=bad-1 next=dead exit=1")
        assert mine == [want], (pid, mine)
    n_db = int(env.pg.scalar("SELECT count(*) FROM audit_events"))
    assert len(rows) == n_db, (len(rows), n_db)

    # --package: that package's rows only
    prow = audit(broker, "--package", later)
    assert prow and all(r["subject"] == f"package:{later}" for r in prow), prow
    assert [r["action"] for r in prow if r["actor"] == "admin"] == ["package.cancel"], prow
    assert [r["action"] for r in audit(broker, "--package", done[0])] == [
        "package.submit", "attempt.completed"]
    assert audit(broker, "--package", done[0]) == [
        r for r in rows if r["subject"] == f"package:{done[0]}"]

    # --vendor: its own rows and its agents' rows, nothing of the other vendor
    for name, other in (("good", "bad"), ("bad", "good")):
        vrows = audit(broker, "--vendor", name)
        assert vrows, name
        for r in vrows:
            mine = (r["subject"] == f"vendor:{name}"
                    or r["subject"].startswith(f"agent:{name}/")
                    or (r["subject"].startswith(("agent:", "package:"))
                        and f"vendor={name}" in r["detail"].split()))
            assert mine, (name, r)
            assert r["subject"] != f"vendor:{other}", (name, r)
        want = [r for r in rows if r["subject"] == f"vendor:{name}"]
        assert [r for r in vrows if r["subject"] == f"vendor:{name}"] == want
    vid = w.vendors["bad"]["id"]
    assert audit(broker, "--vendor", vid) == audit(broker, "--vendor", "bad")
    assert sum(r["action"] == "vendor.admin" for r in audit(broker, "--vendor", "bad")) == 2
    assert sum(r["action"] == "attempt.failed" for r in audit(broker, "--vendor", "bad")) == 2
    assert "attempt.failed" not in [r["action"] for r in audit(broker, "--vendor", "good")]
    bye = [r for r in audit(broker, "--vendor", "good") if r["action"] == "agent.bye"]
    assert len(bye) == 1 and bye[0]["subject"] == "agent:good-1", bye
    assert "agent.bye" not in [r["action"] for r in audit(broker, "--vendor", "bad")]

    # --since: a time after everything is empty; an hour ago is everything
    assert audit(broker, "--since", "2999-01-01T00:00:00Z") == []
    assert audit(broker, "--since", "1h") == rows
    assert len(audit(broker, "--limit", "2")) == 2
    assert audit(broker, "--limit", "2") == rows[-2:]

    # ---- logs: one info line per package and vendor state change, logfmt
    log = broker.log_text()
    for pid, states in [(done[0], ["queued", "assigned", "running", "completed"]),
                        (failing[0], ["queued", "assigned", "running", "dead"]),
                        (later, ["queued", "cancelled"])]:
        seen = re.findall(rf'level=info msg="package state" package={pid} state=(\w+)', log)
        assert seen == states, (pid, seen)
    assert re.search(r'level=\w+ msg="vendor state" vendor=bad state=draining', log), log[-2000:]
    assert re.search(r'level=info msg="vendor state" vendor=bad state=active', log), log[-2000:]
    for line in log.splitlines():
        if line.startswith("=== harness:"):
            continue  # the harness's own marker between starts
        assert re.match(r'ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(debug|info|warn|error)'
                        r' msg=("[^"]*"|\S+)( [a-z_]+=("([^"\\]|\\.)*"|\S*))*$', line), line

    # human output: an aligned table with a header
    _, text, _ = broker.ctl("audit", "--vendor", "bad", json=False)
    lines = text.splitlines()
    assert lines[0].split() == ["AT", "ACTOR", "ACTION", "SUBJECT", "DETAIL"], text
    col = lines[0].index("ACTION")
    assert all(ln[col:].startswith(("vendor.", "agent.", "package.", "attempt."))
               for ln in lines[1:] if ln.strip()), text

    # ---- scorecard
    _, sc, _ = broker.ctl("scorecard")
    assert [s["vendor"] for s in sc] == ["bad", "good"], sc
    by = {s["vendor"]: s for s in sc}
    for s in sc:
        assert set(s) >= {"vendor", "completed", "failed", "handed_off", "on_time_rate",
                          "turnaround_p50_ms", "turnaround_p95_ms", "cost_total"}, s
    g, b = by["good"], by["bad"]
    assert (g["completed"], g["failed"], g["handed_off"]) == (3, 0, 0), g
    assert g["on_time_rate"] == 1.0, g
    assert abs(g["cost_total"] - 3 * GOOD_COST) < 1e-9, g
    assert 0 < g["turnaround_p50_ms"] <= g["turnaround_p95_ms"], g
    want = env.pg.psql(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY"
        " extract(epoch FROM completed_at - submitted_at) * 1000),"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY"
        " extract(epoch FROM completed_at - submitted_at) * 1000)"
        " FROM packages_now WHERE id IN (" + ",".join(map(str, done)) + ")")[0]
    assert abs(g["turnaround_p50_ms"] - float(want[0])) < 0.01, (g, want)
    assert abs(g["turnaround_p95_ms"] - float(want[1])) < 0.01, (g, want)
    assert (b["completed"], b["failed"], b["handed_off"]) == (0, 2, 0), b
    assert b["on_time_rate"] is None and b["cost_total"] == 0, b
    assert b["turnaround_p50_ms"] is None and b["turnaround_p95_ms"] is None, b

    _, one, _ = broker.ctl("scorecard", "good")
    assert one == [g], one
    _, text, _ = broker.ctl("scorecard", json=False)
    head = text.splitlines()[0].split()
    assert head[:4] == ["VENDOR", "COMPLETED", "FAILED", "HANDED_OFF"], text
    assert "7.50" in text and "100.0%" in text, text

    # ---- exit codes
    rc, _, err = broker.ctl("scorecard", "nope", check=False)
    assert rc == 1 and "no vendor nope" in err, (rc, err)
    rc, _, err = broker.ctl("audit", "--vendor", "nope", check=False)
    assert rc == 1 and "no vendor nope" in err, (rc, err)
    for bad in (["audit", "--bogus"], ["audit", "--limit", "0"],
                ["audit", "--limit", "100001"], ["audit", "--since", "soonish"],
                ["audit", "--package", "x"], ["scorecard", "a", "b"]):
        rc, _, err = broker.ctl(*bad, check=False)
        assert rc == 2, (bad, rc, err)

    # ---- append-only
    for sql in ("UPDATE audit_events SET actor = 'mallory'",
                "DELETE FROM audit_events"):
        try:
            env.pg.psql(sql)
        except PsqlError:
            pass
        else:
            raise AssertionError(f"{sql} succeeded on the audit trail")
    assert audit(broker)[:len(rows)] == rows
    assert env.pg.scalar("SELECT count(*) FROM audit_events WHERE actor = 'mallory'") == "0"
    print(f"audit: {len(rows)} rows; scorecard good p50={g['turnaround_p50_ms']:.0f}ms "
          f"p95={g['turnaround_p95_ms']:.0f}ms", flush=True)


@test(timeout=60)
def test_history_reads_when_store_is_down(env):
    broker = env.broker()
    w = World(env, broker)
    w.vendor("acme", "EU-DE")
    env.pg.stop(mode="fast")

    def refused(*args):
        def once():
            rc, out, err = broker.ctl(*args, check=False, timeout=10)
            assert rc != 0, f"{args} answered with the database down: {out}"
            return (rc, err) if "store unavailable" in err else None
        return wait_for(once, 10, what=f'{" ".join(args)} refused with "store unavailable"')
    for args in (("audit",), ("scorecard",), ("scorecard", "acme")):
        rc, err = refused(*args)
        assert rc == 1, (args, rc, err)
    # An unknown vendor is known to be unknown without the store.
    rc, _, err = broker.ctl("scorecard", "nope", check=False)
    assert rc == 1 and "no vendor nope" in err, (rc, err)
    broker.check_running()
    env.pg.start()
    rows = wait_for(lambda: (lambda r: r[1] if r[0] == 0 else None)(
        broker.ctl("audit", "--vendor", "acme", check=False, timeout=10)), 30,
        what="audit to answer again")
    assert [r["action"] for r in rows] == ["vendor.add"], rows
    _, sc, _ = broker.ctl("scorecard")
    assert [(s["vendor"], s["completed"]) for s in sc] == [("acme", 0)], sc


if __name__ == "__main__":
    main()
