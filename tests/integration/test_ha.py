"""Broker high availability (issue 8), on real processes and one real
PostgreSQL: two batond on the same database, one leader (it holds the one row
of broker_lease), one standby that binds nothing until it takes over.

  1. kill -9 of the leader under load: the standby takes over at once (the
     leader's session advisory lock goes with its database session), the
     agents (given both endpoints) move to it and report what they hold;
     every acknowledged package completes exactly once, no handoff, no
     constraint broken; broker_lease.epoch is raised by one and names the new
     leader; new work completes after the takeover;
  2. SIGSTOP of the leader (a hung broker whose sockets and database session
     stay open): the standby takes over when the lease (2 s here) expires, the
     agents move to it; when the old leader runs again it finds it lost the
     lease, exits 75 ("lost leadership: stepping down") and has written
     nothing: the tables are as they were before it woke up;
  2b. the lease row taken from under a leader that runs normally (as when its
     renewals stall while another broker takes over): its next write is
     refused by the fence (baton_fence), the submit it carried is not
     acknowledged, it exits 75 and the database holds nothing of it;
  3. batonctl --control A,B: the first endpoint that answers is used (a
     standby's, a dead broker's stale socket, a missing path or a refused TCP
     port are skipped); none answering is exit 3 with a message.

Prints the measured takeover times ("ha: ...").
"""

import calendar
import re
import socket
import time

from harness import BrokerGroup, PsqlError, main, run_batonctl, test, wait_for
from fixtures_it1 import count_states, wait_ids
from fixtures_it4 import (World, check_continuity, db_attempts, db_audit,
                          elapsed, log_lines, open_attempts, summary)

STANDBY = r'msg="standby: another broker holds the leader lease"'
ACQUIRED = r'msg="leader lease acquired"'
SERVING = r'msg="batond serving"'
STEP_DOWN = r'level=error msg="lost leadership: stepping down"'
REFUSED = 'msg="write refused: another broker holds the leader lease"'
EXIT_LOST_LEADERSHIP = 75
TAKEOVER_MAX_S = 5.0


# ---- helpers ------------------------------------------------------------------

def log_ts(line: str) -> float:
    """Epoch seconds of a logfmt line's ts=YYYY-MM-DDTHH:MM:SS.mmmZ."""
    m = re.search(r"\bts=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", line)
    assert m, f"no ts= in {line!r}"
    secs = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    return secs + (float("0." + m.group(2)) if m.group(2) else 0.0)


def kv(line: str, key: str) -> str | None:
    """The value of key=... in a logfmt line (quotes removed)."""
    m = re.search(rf'\b{key}=("(?:[^"\\]|\\.)*"|\S+)', line)
    if not m:
        return None
    v = m.group(1)
    return v[1:-1] if v.startswith('"') else v


def log_line(proc, pattern: str, since_start: bool = True) -> str | None:
    """The first line of proc's log (stderr) matching the regex pattern."""
    rx = re.compile(pattern)
    for line in proc.log_text(since_start).splitlines():
        if rx.search(line):
            return line
    return None


def wait_line(proc, pattern: str, timeout: float) -> str:
    proc.wait_for_log(pattern, timeout)
    return log_line(proc, pattern)


def lease(pg) -> tuple:
    """(epoch, holder) of broker_lease."""
    rows = pg.psql("SELECT epoch, holder FROM broker_lease")
    assert len(rows) == 1, f"broker_lease has {len(rows)} rows: {rows}"
    return int(rows[0][0]), rows[0][1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def leader_and_standby(env, extra=()):
    """Broker A started and serving (the leader), then broker B started as a
    standby on the same database. Checks B binds nothing and names A's lease.
    Returns (A, B, BrokerGroup([A, B]), A's epoch, A's holder)."""
    args = ["--set", "poll_park=200ms", *extra]
    a = env.broker(name="A", extra_args=args)
    acq = wait_line(a, ACQUIRED, 10)
    epoch_a, holder_a = lease(env.pg)
    assert epoch_a >= 1 and f":{a.pid}:" in holder_a, (epoch_a, holder_a, a.pid)
    assert kv(acq, "epoch") == str(epoch_a), (acq, epoch_a)
    b = env.broker(name="B", start=False, extra_args=args)
    b.start_standby(timeout=20)
    sb = log_line(b, STANDBY)
    # The standby names the lease it saw: A's.
    assert kv(sb, "epoch") == str(epoch_a), (sb, epoch_a)
    assert kv(sb, "holder") == holder_a, (sb, holder_a)
    time.sleep(0.6)  # more than a standby poll: still waiting, still bound to nothing
    b.check_running()
    assert not b.answers(), "the standby answers on its control socket"
    assert not port_open(b.agents_port), "the standby bound its agent endpoint"
    assert not port_open(b.metrics_port), "the standby bound its metrics port"
    assert log_line(b, ACQUIRED) is None and log_line(b, SERVING) is None, b.tail(20)
    assert lease(env.pg) == (epoch_a, holder_a)
    return a, b, BrokerGroup([a, b], name="ha"), epoch_a, holder_a


def check_new_leader(env, b, epoch_a, holder_a) -> dict:
    """B holds the lease with A's epoch + 1; its log and the audit say so."""
    acq = log_line(b, ACQUIRED)
    assert acq, b.tail(20)
    epoch_b, holder_b = lease(env.pg)
    assert epoch_b == epoch_a + 1, f"epoch {epoch_a} -> {epoch_b}, want +1"
    assert holder_b and holder_b != holder_a, (holder_a, holder_b)
    assert kv(acq, "epoch") == str(epoch_b), (acq, epoch_b)
    # The holder names the broker (batond:HOST:PID:TAG): B's pid, not A's.
    assert f":{b.pid}:" in holder_b, f"holder {holder_b!r} is not B (pid {b.pid})"
    if kv(acq, "previous") is not None:
        assert kv(acq, "previous") == holder_a, (acq, holder_a)
    # Each new leader writes an audit row broker.leader "epoch:N".
    want = {f"epoch:{epoch_a}", f"epoch:{epoch_b}"}
    leaders = wait_for(lambda: (lambda s: s if want <= set(s) else None)(
        [x["subject"] for x in db_audit(env.pg, "broker.leader")]), 5,
        what=f"audit rows broker.leader {sorted(want)}", interval=0.1)
    assert leaders.count(f"epoch:{epoch_b}") == 1, leaders
    return dict(epoch=epoch_b, holder=holder_b, waited_ms=kv(acq, "waited_ms"),
                acquired_line=acq)


def agent_sessions(agent) -> int:
    return agent.log_text().count("session established")


# ---- 1. kill -9 of the leader -------------------------------------------------------

def check_held_completed_in_place(env, w, held: dict, when: str) -> dict:
    """check_continuity with no handoff allowed, and every package held by an
    agent across the leader change ({package: its open attempt}) completed
    by that attempt on that agent, its only attempt. Returns the report."""
    r = check_continuity(env, w, reasons=set())
    for pid, att in held.items():
        atts = r["by_package"][pid]
        assert [(x["attempt"], x["agent"], x["outcome"]) for x in atts] == \
            [(att["attempt"], att["agent"], "completed")], \
            f"package {pid} was running on {att['agent']} {when}: {atts}"
    return r


@test(timeout=120)
def test_kill9_leader_standby_takes_over(env):
    t0 = time.monotonic()
    a, b, group, epoch_a, holder_a = leader_and_standby(env)
    w = World(env, group)
    w.vendor("acme", "EU-DE")
    w.vendor("globex", "IN")
    for name, vendor, sleep, slots in (("acme-1", "acme", 0.4, 2),
                                       ("acme-2", "acme", 0.9, 2),
                                       ("globex-1", "globex", 0.6, 3)):
        w.agent(vendor, name, w.work(name, sleep), slots=slots, wait=False)
    w.wait_connected(list(w.agents))
    # Some packages only acme may take (data residency): the takeover must
    # not route them anywhere else.
    ids = w.submit(30, "pre") + w.submit(10, "pre-eu", region=["EU-DE"])
    assert len(ids) == 40

    def busy():
        st = count_states(env.pg)
        return st if st.get("completed", 0) >= 4 and \
            st.get("assigned", 0) + st.get("running", 0) >= 4 else None
    at_kill = wait_for(busy, 30, what="work completing and in flight", interval=0.02)
    sessions = {n: agent_sessions(ag) for n, ag in w.agents.items()}

    t_kill, wall_kill = time.monotonic(), time.time()
    assert a.kill9() == -9
    held = {x["package"]: x for x in db_attempts(env.pg, ids)
            if x["outcome"] is None and x["started"] is not None}
    states_kill = count_states(env.pg)

    # Takeover: B logs serving, and batonctl --control A,B answers (from B).
    seen = {}

    def taken_over():
        b.check_running()
        if "serving" not in seen and log_line(b, SERVING):
            seen["serving"] = time.monotonic()
        if "serving" in seen and group.ctl("stats", check=False, timeout=3)[0] == 0:
            seen["answers"] = time.monotonic()
            return True
        return False
    wait_for(taken_over, 20, what="B to take over and answer", interval=0.02)
    serving_s = seen["serving"] - t_kill
    answers_s = seen["answers"] - t_kill
    serving_log_s = log_ts(log_line(b, SERVING)) - wall_kill
    nl = check_new_leader(env, b, epoch_a, holder_a)
    print(f"ha: kill -9 of the leader with {states_kill} committed "
          f"({len(held)} running): B serving {serving_s:.2f}s after the kill "
          f"(its log: {serving_log_s:.2f}s), batonctl --control A,B answering "
          f"after {answers_s:.2f}s; waited_ms={nl['waited_ms']} epoch "
          f"{epoch_a} -> {nl['epoch']}", flush=True)
    assert answers_s <= TAKEOVER_MAX_S, \
        f"takeover took {answers_s:.2f}s\n" + log_lines(b, "lease", "standby", "serving")
    assert serving_log_s <= TAKEOVER_MAX_S, serving_log_s
    assert b.answers(), "B's own control socket does not answer"
    assert port_open(b.agents_port) and port_open(b.metrics_port)

    # The agents move to B, start a new session there and report what they hold.
    for n, ag in w.agents.items():
        wait_for(lambda ag=ag, n=n: agent_sessions(ag) > sessions[n], 15,
                 what=f"{n} to start a session on B", logs=[ag, b])
    wait_ids(group, ids, timeout=40)
    t_done = time.monotonic()

    # Work after the takeover.
    more = w.submit(5, "post") + w.submit(2, "post-eu", region=["EU-DE"])
    wait_ids(group, more, timeout=30)

    r = check_held_completed_in_place(env, w, held, "at the kill")
    on_b = [x for x in r["attempts"] if x["package"] in more]
    assert len(on_b) == len(more), on_b
    for n, ag in w.agents.items():
        assert ag.running and ag.starts == 1, f"{n} died or restarted\n" + ag.tail(20)
    assert lease(env.pg) == (nl["epoch"], nl["holder"])
    b.check_running()
    _, st, _ = group.ctl("stats")
    assert st["completed"] == len(w.acked) and st["queued"] == 0, st
    assert st["assigned"] == 0 and st["running"] == 0, st
    print(f"ha: kill -9: at the kill {at_kill}; all {len(ids)} done "
          f"{t_done - t_kill:.2f}s after the kill; {summary(r)}; took {elapsed(t0)}",
          flush=True)


# ---- 2. SIGSTOP of the leader: fencing ------------------------------------------------

SNAPSHOT_SQL = {
    "packages_now": "SELECT id, state, attempt, vendor_id, agent_id, progress, "
                    "md5(coalesce(result, ''::bytea)), updated_at, completed_at "
                    "FROM packages_now ORDER BY id",
    "attempts": "SELECT package_id, attempt, vendor_id, agent_id, assigned_at, "
                "started_at, ended_at, outcome, exit_code, md5(result) FROM attempts "
                "ORDER BY package_id, attempt",
    # What a restart loads packages from (migrations/0011): the listed ones
    # and all above the list's floor. A new leader's listing round moves
    # packages from one part to the other; the union stays.
    "restart_reads": "SELECT id FROM open_packages UNION SELECT id FROM work_packages"
                     " WHERE id > (SELECT listed_through FROM open_packages_floor)"
                     " ORDER BY id",
    "handoffs": "SELECT count(*), max(id) FROM handoffs",
    "audit_events": "SELECT count(*), max(id) FROM audit_events",
    "vendors": "SELECT id, state, state_reason, updated_at FROM vendors ORDER BY id",
    "agents": "SELECT count(*), max(id) FROM agents",
    "broker_lease": "SELECT epoch, holder FROM broker_lease",
}


def snapshot(pg) -> dict:
    return {t: pg.psql(q) for t, q in SNAPSHOT_SQL.items()}


def snapshot_diff(before: dict, after: dict, pg) -> list:
    out = []
    for t in SNAPSHOT_SQL:
        if before[t] != after[t]:
            gone = [r for r in before[t] if r not in after[t]]
            new = [r for r in after[t] if r not in before[t]]
            out.append(f"{t}: before-only {gone[:5]} after-only {new[:5]}")
    if before["audit_events"] != after["audit_events"]:
        since = before["audit_events"][0][1] or 0
        out.append("new audit rows: " + repr(pg.psql(
            f"SELECT id, at, actor, action, subject, detail FROM audit_events "
            f"WHERE id > {int(since)} ORDER BY id")[:10]))
    return out


@test(timeout=120)
def test_sigstopped_leader_is_fenced_and_steps_down(env):
    t0 = time.monotonic()
    a, b, group, epoch_a, holder_a = leader_and_standby(
        env, extra=["--set", "leader_lease=2s"])
    w = World(env, group)
    w.vendor("acme", "EU-DE")
    w.vendor("globex", "IN")
    # The four packages in flight across the stop (two on each agent) take
    # 8 s each; the ones submitted afterwards 0.5 s.
    for name, vendor in (("acme-1", "acme"), ("globex-1", "globex")):
        w.agent(vendor, name, w.work_first(name, 2, 8.0, 0.5), slots=2, wait=False)
    w.wait_connected(list(w.agents))
    ids = w.submit(4, "long")
    wait_for(lambda: len(open_attempts(env.pg, "acme-1"))
             + len(open_attempts(env.pg, "globex-1")) == 4, 20,
             what="all four packages running", interval=0.05)
    held = {x["package"]: x for x in db_attempts(env.pg, ids)}
    assert sorted(held) == sorted(ids) and all(x["outcome"] is None
                                               for x in held.values()), held
    sessions = {n: agent_sessions(ag) for n, ag in w.agents.items()}
    # A healthy leader keeps its lease: more than two leases (2 s) after B
    # started, B still waits and A still holds epoch_a.
    since_b = time.time() - log_ts(log_line(b, STANDBY))
    time.sleep(max(0.0, 4.5 - since_b))
    assert lease(env.pg) == (epoch_a, holder_a), lease(env.pg)
    assert log_line(b, ACQUIRED) is None and not b.answers(), b.tail(20)
    a.check_running()

    t_stop, wall_stop = time.monotonic(), time.time()
    a.sigstop()
    wait_for(lambda: a.state() == "T", 5, what="A stopped")
    wait_line(b, ACQUIRED, 15)
    t_acq = time.monotonic()
    wait_line(b, SERVING, 10)
    t_serving = time.monotonic()
    nl = check_new_leader(env, b, epoch_a, holder_a)
    acq_log_s = log_ts(nl["acquired_line"]) - wall_stop
    # The fence every write transaction of a leader starts with refuses A's
    # epoch from now on, and lets B's through.
    try:
        env.pg.psql(f"SELECT baton_fence({epoch_a})")
        raise AssertionError(f"baton_fence({epoch_a}) passed after the takeover")
    except PsqlError as e:
        assert "no longer holds the leader lease" in str(e), e
    env.pg.psql(f"SELECT baton_fence({nl['epoch']})")
    # The agents find A silent, reopen their connections and go to B.
    for n, ag in w.agents.items():
        wait_for(lambda ag=ag, n=n: agent_sessions(ag) > sessions[n], 20,
                 what=f"{n} to start a session on B", logs=[ag, b])
    t_moved = time.monotonic()
    assert a.state() == "T", "A is not stopped any more"

    # What does --control A,B do while A is stopped (connects, never answers)?
    # Reported, not asserted: "answers" may mean "accepts the connection".
    t = time.monotonic()
    rc, _, err = group.ctl("stats", check=False, timeout=20,
                           extra_env={"BATON_CTL_TIMEOUT": "2s"})
    print(f"ha: with A stopped, batonctl --control A,B stats (BATON_CTL_TIMEOUT=2s) "
          f"exited {rc} after {time.monotonic() - t:.2f}s: {err.strip()[:160]!r}",
          flush=True)

    # Everything completes on B (A still stopped); then the database is quiet.
    wait_ids(b, ids, timeout=30)
    t_done = time.monotonic()
    assert a.state() == "T"
    time.sleep(1.0)
    before = snapshot(env.pg)
    time.sleep(1.5)
    again = snapshot(env.pg)
    assert before == again, ("the database is not quiet before A resumes: "
                             + "; ".join(snapshot_diff(before, again, env.pg)))

    # A wakes up: its agent leases are long overdue and its lease is gone.
    stopped_s = time.monotonic() - t_stop
    t_cont = time.monotonic()
    a.sigcont()
    rc = a.wait(20)
    exit_s = time.monotonic() - t_cont
    log_a = a.log_text()
    refused = log_a.count(REFUSED)
    assert rc == EXIT_LOST_LEADERSHIP, \
        f"A exited {rc}, want {EXIT_LOST_LEADERSHIP}\n" + a.tail(30)
    assert re.search(STEP_DOWN, log_a), a.tail(30)
    time.sleep(1.0)  # anything A left in flight would have landed by now
    after = snapshot(env.pg)
    assert after == before, ("the old leader changed the database after it lost "
                             "the lease: " + "; ".join(snapshot_diff(before, after, env.pg))
                             + "\n" + log_lines(a, "lease", "leader", "refused", "fenc"))

    r = check_held_completed_in_place(env, w, held, "when A stopped")
    b.check_running()
    for n, ag in w.agents.items():
        assert ag.running and ag.starts == 1, f"{n} died or restarted\n" + ag.tail(20)

    # B goes on serving; A's stale socket is skipped.
    more = w.submit(2, "after")
    wait_ids(group, more, timeout=30)
    assert lease(env.pg) == (nl["epoch"], nl["holder"])
    print(f"ha: SIGSTOP of the leader (leader_lease=2s): B acquired the lease "
          f"{t_acq - t_stop:.2f}s after the stop (its log: {acq_log_s:.2f}s, "
          f"waited_ms={nl['waited_ms']}), serving after {t_serving - t_stop:.2f}s, "
          f"agents on B after {t_moved - t_stop:.2f}s, all done after "
          f"{t_done - t_stop:.2f}s; A stopped {stopped_s:.1f}s, exited "
          f"{rc} {exit_s:.2f}s after SIGCONT with {refused} refused write(s) "
          f"logged and nothing written; {summary(r)}; took {elapsed(t0)}", flush=True)


# ---- 2b. a running leader whose lease was taken: its writes are refused ----------------

@test(timeout=90)
def test_leader_writes_are_fenced_once_the_lease_is_taken(env):
    """The lease row is taken from under a leader that runs normally (as when
    its renewals stall on a partitioned network while another broker takes
    over): its next write transaction is refused by the fence, the submit it
    carried is not acknowledged, and the leader steps down (exit 75) without
    writing anything. A long leader_lease keeps A's renewal (every lease/4)
    out of the way, so the write is what finds out."""
    t0 = time.monotonic()
    a, b, group, epoch_a, holder_a = leader_and_standby(
        env, extra=["--set", "leader_lease=40s"])
    _, v, _ = a.ctl("vendor", "add", "acme", "--region", "EU-DE",
                    "--capability", "work")
    acked = [int(a.ctl("submit", "--capability", "work", "--payload",
                       f"before-{i}")[1]["id"]) for i in range(3)]
    before = snapshot(env.pg)

    # Another holder takes the row (its session lock is free: the standby may
    # take over from it at once, which changes nothing for A).
    env.pg.psql("UPDATE broker_lease SET epoch = epoch + 1, holder = 'intruder', "
                "acquired_at = now(), expires_at = now() + interval '1 hour'")
    t_taken = time.monotonic()
    rc, out, err = a.ctl("submit", "--capability", "work", "--payload", "fenced",
                         check=False, timeout=20)
    assert rc != 0, f"a submit was acknowledged after the lease was taken: {out}"
    status = a.wait(20)
    exit_s = time.monotonic() - t_taken
    log_a = a.log_text()
    assert status == EXIT_LOST_LEADERSHIP, f"A exited {status}\n" + a.tail(30)
    assert re.search(STEP_DOWN, log_a), a.tail(30)
    assert REFUSED in log_a, ("A's write was not refused by the fence\n"
                              + log_lines(a, "lease", "leader", "refused", "fenc"))
    n_refused = log_a.count(REFUSED)
    assert env.pg.psql("SELECT id FROM work_packages WHERE payload = 'fenced'") == []

    # B takes over (from the intruder) and serves; nothing of A's after the
    # takeover is in the database: only B's broker.leader audit row is new.
    wait_line(b, SERVING, 15)
    epoch_b, holder_b = lease(env.pg)
    assert epoch_b == epoch_a + 2 and f":{b.pid}:" in holder_b, (epoch_b, holder_b)
    time.sleep(0.5)
    after = snapshot(env.pg)
    for t in SNAPSHOT_SQL:
        if t not in ("audit_events", "broker_lease"):
            assert after[t] == before[t], \
                f"{t} changed after the lease was taken: " + "; ".join(
                    snapshot_diff(before, after, env.pg))
    since = int(before["audit_events"][0][1] or 0)
    new_audit = env.pg.psql(f"SELECT action, subject FROM audit_events WHERE id > {since}")
    assert new_audit == [("broker.leader", f"epoch:{epoch_b}")], new_audit
    _, p, _ = group.ctl("package", "show", acked[0])
    assert p["state"] == "queued", p
    pid = int(group.ctl("submit", "--capability", "work", "--payload", "on-b")[1]["id"])
    assert pid not in acked
    print(f"ha: lease taken from a running leader: its submit refused (exit {rc}: "
          f"{err.strip()[:120]!r}), A exited {status} {exit_s:.2f}s later with "
          f"{n_refused} refused write(s) logged, nothing written; B serving as "
          f"epoch {epoch_b}; took {elapsed(t0)}", flush=True)


# ---- 3. batonctl --control A,B ---------------------------------------------------------

@test(timeout=90)
def test_batonctl_uses_the_first_control_that_answers(env):
    a, b, group, epoch_a, holder_a = leader_and_standby(env)
    missing = env.path("nobody", "baton.sock")
    refused_tcp = f"tcp://127.0.0.1:{env.port()}"

    def ctl(control, *args, **kw):
        t = time.monotonic()
        rc, out, err = run_batonctl(control, *args, check=False, timeout=30,
                                    ctl_log=env.path("logs", "multi-ctl.log"), **kw)
        return rc, out, err, time.monotonic() - t

    _, want, _ = a.ctl("stats")
    # A standby's control socket is not there: skipped.
    for control in (f"{b.control},{a.control}", f"{a.control},{b.control}",
                    f"{missing},{a.control}", f"{refused_tcp},{b.control},{a.control}"):
        rc, st, err, took = ctl(control, "stats")
        assert rc == 0, f"--control {control}: exit {rc}: {err}"
        assert st["completed"] == want["completed"] and "vendors" in st, st
        assert took < 5, f"--control {control} took {took:.2f}s"
    rc, out, err, _ = ctl(b.control, "stats")
    assert rc == 3, f"the standby alone: exit {rc} {out} {err}"

    # None answers: exit 3 with a message naming what was tried.
    rc, out, err, took = ctl(f"{missing},{refused_tcp}", "stats")
    print(f"ha: --control MISSING,REFUSED stats: exit {rc} after {took:.2f}s: "
          f"{err.strip()!r}", flush=True)
    assert rc == 3, (rc, out, err)
    # --json: one error document; stderr names every endpoint tried.
    assert isinstance(out, dict) and out.get("exit_code") == 3 and \
        "cannot reach" in out.get("error", ""), out
    assert missing in err and refused_tcp.removeprefix("tcp://") in err, err
    rc, out, err, _ = ctl(f"{missing},{refused_tcp}", "stats", json=False)
    assert rc == 3 and not out.strip() and missing in err, (rc, out, err)

    # kill -9 of the leader: its stale socket file stays behind and is skipped
    # once B serves; with B stopped too, nothing answers.
    assert a.kill9() == -9
    wait_line(b, SERVING, 15)
    check_new_leader(env, b, epoch_a, holder_a)
    rc, st, err, took = ctl(f"{a.control},{b.control}", "stats")
    assert rc == 0, (rc, err)
    print(f"ha: --control DEAD(stale socket),LIVE stats answered in {took:.2f}s",
          flush=True)
    pid = int(group.ctl("submit", "--capability", "work", "--payload", "x")[1]["id"])
    _, p, _ = group.ctl("package", "show", pid)
    assert p["state"] == "queued", p
    assert b.stop() == 0, b.tail(20)
    rc, out, err, _ = ctl(f"{a.control},{b.control}", "stats")
    assert rc == 3 and a.control in err and b.control in err, (rc, out, err)
    print(f"ha: --control DEAD1,DEAD2 (both stopped) stats: exit {rc}: "
          f"{err.strip()!r}", flush=True)


if __name__ == "__main__":
    main()
