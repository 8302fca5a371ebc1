"""kill -9 of batond under load, on a real PostgreSQL: 2,000 packages in
several batches, the broker killed while packages are assigned and running
and once in the middle of a batch submit, started again on the same database
and ports while the agents keep running and reconnect by themselves. Every
acknowledged package completes exactly once with the right result; nothing
acknowledged is lost; whatever a failed submit left in the database
completes too. Prints how long recovery took."""

import base64
import json
import os
import random
import signal
import time

from harness import main, test, wait_for
from fixtures_it1 import (batch_line, check_all_completed, count_states,
                          ctl_popen, db_attempts, start_fleet, submit_batch,
                          wait_ids, write_batch)

TOTAL = 2000


def completed(pg):
    return int(pg.scalar("SELECT count(*) FROM packages_now WHERE state = 'completed'"))


def in_flight(states):
    return states.get("assigned", 0) + states.get("running", 0)


def has_socket(pid):
    """True once process pid holds a socket (batonctl has connected)."""
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                return True
    except OSError:
        pass
    return False


class Run:
    """What the test acknowledged, and the recovery figures."""

    def __init__(self, env, broker, agents):
        self.env, self.broker, self.agents = env, broker, agents
        self.pg = env.pg
        self.acked = {}  # id -> payload: every id batonctl returned
        self.rng = random.Random(7)
        self.n = 0
        self.figures = []

    def lines(self, tag, count, keyed=False):
        out = []
        for _ in range(count):
            word = "".join(self.rng.choice("abcdefghij") for _ in range(8))
            p = f"crash-{tag}-{self.n:05d}-{word}"
            extra = {"key": f"crash-{tag}-{self.n}"} if keyed else {}
            out.append(batch_line(p, **extra))
            self.n += 1
        return out

    def submit(self, tag, count, keyed=False):
        lines = self.lines(tag, count, keyed)
        path = write_batch(self.env.path(f"{tag}.jsonl"), lines)
        ids = submit_batch(self.broker, path, count)
        self.ack(lines, ids)
        return path, lines, ids

    def ack(self, lines, ids):
        for line, pid in zip(lines, ids):
            old = self.acked.setdefault(pid, line["payload"])
            assert old == line["payload"], f"id {pid} given to two payloads"

    def kill_and_restart(self, label):
        """kill -9 of batond, then the same command again (same database,
        ports, control socket). Returns (packages completed at the kill,
        committed states at the kill, the kill's monotonic time)."""
        t_kill = time.monotonic()
        assert self.broker.kill9() == -signal.SIGKILL
        states = count_states(self.pg)  # the committed truth at the crash
        done_at_kill = states.get("completed", 0)
        for a in self.agents:
            assert a.running, f"{a.name} exited when the broker died\n" + a.tail(20)
        self.broker.start(timeout=60)
        t_up = time.monotonic()
        self.figures.append((label, t_kill, t_up, states))
        return done_at_kill, states, t_kill

    def wait_progress(self, done_at_kill, t_kill, label):
        """Waits for the first completion after a restart (when work was
        left); returns the seconds since the kill, or None."""
        if done_at_kill >= len(self.acked):
            return None
        wait_for(lambda: completed(self.pg) > done_at_kill, 60,
                 what=f"a completion after restart {label}")
        return time.monotonic() - t_kill


def fmt_s(v):
    return "-" if v is None else f"{v:.2f}s"


def kill_during_submit(run, path, lines, tag, delay, label):
    """Starts `batonctl submit --batch path`, kills batond delay seconds after
    batonctl connected, restarts it. Checks what batonctl said against the
    database and acknowledges what it returned. Returns (exit status, ids it
    printed, rows of the batch in the database, completed at the kill, the
    kill's time)."""
    env, broker = run.env, run.broker
    p = ctl_popen(broker, "submit", "--batch", path)
    wait_for(lambda: p.poll() is not None or has_socket(p.pid), 10,
             what="batonctl to connect", interval=0.001)
    if delay:
        time.sleep(delay)  # fault timing only; nothing below depends on it
    done, _, t_kill = run.kill_and_restart(label)
    out, err = p.communicate(timeout=30)
    rc, ids = p.returncode, []
    if rc == 0:
        ids = json.loads(out)["ids"]
        assert len(ids) == len(lines), (len(ids), err)
        outcome = "the submit finished before the kill (all ids returned)"
    else:
        assert rc in (1, 3), f"batonctl submit exited {rc}: {out!r} {err!r}"
        if out.strip():  # a prefix of committed chunks, with an error
            ids = json.loads(out).get("ids", [])
        outcome = f"the submit failed (exit {rc}, {len(ids)} ids returned): " \
                  f"{err.strip()[:160]}"
    run.ack(lines, ids)
    in_db = int(env.pg.scalar(
        "SELECT count(*) FROM work_packages WHERE convert_from(payload, 'UTF8') "
        f"LIKE 'crash-{tag}-%'"))
    print(f"{label}: {outcome}; {in_db} of its {len(lines)} packages in the "
          "database", flush=True)
    # One chunk (under 5,000 lines) is one transaction: all there or none.
    assert in_db in (0, len(lines)), f"{in_db} of {len(lines)} rows are there"
    if ids:
        assert in_db == len(lines), "acknowledged ids missing after the crash"
        got = {int(i) for (i,) in env.pg.psql(
            "SELECT id FROM work_packages WHERE convert_from(payload, 'UTF8') "
            f"LIKE 'crash-{tag}-%'")}
        assert set(ids) <= got, "the ids batonctl printed are not the rows"
    return rc, ids, in_db, done, t_kill


@test(timeout=150)
def test_kill9_broker_under_load(env):
    # Default lease and restart grace: the agents report what they hold, so
    # recovery must not wait for either.
    broker = env.broker(extra_args=["--set", "poll_park=200ms"])
    fleet = start_fleet(env, broker)
    run = Run(env, broker, fleet["agents"])
    t_start = time.monotonic()

    # -- 1: two batches back to back, kill while the agents are busy.
    t0 = time.monotonic()
    run.submit("b1", 500)
    submit_s = time.monotonic() - t0  # batonctl's whole run, for kill 3
    run.submit("b2", 500)
    wait_for(lambda: 150 <= completed(env.pg) < 900
             and in_flight(count_states(env.pg)) > 0, 60,
             what="the agents busy with the first batches", interval=0.02)
    done1, states1, t_kill1 = run.kill_and_restart("kill 1 (busy)")
    assert in_flight(states1) > 0, f"nothing in flight at the kill: {states1}"
    resume1 = run.wait_progress(done1, t_kill1, "1")
    print(f"kill 1: at the crash {states1}; broker answering after "
          f"{run.figures[-1][2] - t_kill1:.2f}s, first completion after "
          f"{resume1:.2f}s", flush=True)

    # -- 2: kill during a batch submit, twice. (a) Right as batonctl has
    # connected, a batch with keys, sent again after the restart: safe
    # whatever the first try did. (b) A little later, into the commit, a
    # batch without keys that is not sent again: if batonctl returned ids
    # they must be there; if it failed its packages may or may not be.
    lines3 = run.lines("b3", 300, keyed=True)
    path3 = write_batch(env.path("b3.jsonl"), lines3)
    _, first_ids, _, done2, t_kill2 = kill_during_submit(
        run, path3, lines3, "b3", delay=0.0, label="kill 2 (submit starting)")
    ids3 = submit_batch(broker, path3, len(lines3))
    if first_ids:
        assert ids3[:len(first_ids)] == first_ids, "a key gave a new id after the crash"
    run.ack(lines3, ids3)
    resume2 = run.wait_progress(done2, t_kill2, "2")

    lines3x = run.lines("b3x", 200)
    path3x = write_batch(env.path("b3x.jsonl"), lines3x)
    delay = run.rng.uniform(0.0, 0.4) * submit_s
    _, _, _, done2x, t_kill2x = kill_during_submit(
        run, path3x, lines3x, "b3x", delay=delay,
        label=f"kill 3 (submit {delay * 1000:.0f}ms in)")
    unacked = {int(i) for (i,) in env.pg.psql(
        "SELECT id FROM work_packages WHERE convert_from(payload, 'UTF8') "
        "LIKE 'crash-b3x-%'")} - set(run.acked)
    resume3 = run.wait_progress(done2x, t_kill2x, "3")

    # -- 3: the rest while the agents work, and one more kill under load.
    rest = TOTAL - len(run.acked)
    run.submit("b4", rest // 2)
    run.submit("b5", rest - rest // 2)
    assert len(run.acked) == TOTAL, len(run.acked)
    wait_for(lambda: completed(env.pg) < TOTAL - 100
             and in_flight(count_states(env.pg)) > 0, 30,
             what="work in flight before kill 4", interval=0.02)
    done4, states4, t_kill4 = run.kill_and_restart("kill 4 (busy)")
    resume4 = run.wait_progress(done4, t_kill4, "4")

    # -- every acknowledged package completes, once, right; so does what
    # the failed submit left behind.
    wait_ids(broker, sorted(run.acked), timeout=120)
    if unacked:
        wait_ids(broker, sorted(unacked), timeout=60)
    t_all = time.monotonic()
    for a in run.agents:
        assert a.running, f"{a.name} exited\n" + a.tail(20)
    pkgs = check_all_completed(env.pg, expected_payloads=run.acked,
                               exact_ids=set(run.acked) | unacked)
    assert len(pkgs) == TOTAL + len(unacked)
    assert count_states(env.pg) == {"completed": len(pkgs)}
    _, stats, _ = broker.ctl("stats")
    assert stats["completed"] == len(pkgs) and stats["queued"] == 0, stats
    assert stats["assigned"] == 0 and stats["running"] == 0, stats
    assert stats["dead"] == 0, stats

    outcomes = {}
    for atts in db_attempts(env.pg).values():
        for _, o, _, _ in atts:
            outcomes[o] = outcomes.get(o, 0) + 1
    handoffs = env.pg.psql("SELECT reason, count(*) FROM handoffs GROUP BY 1")
    print(f"crash: {TOTAL} acknowledged packages (+{len(unacked)} from the failed "
          f"submit), 4 kills, all done {t_all - t_start:.1f}s after the first "
          f"submit; after the last kill all done in {t_all - t_kill4:.1f}s",
          flush=True)
    print(f"crash: first completion after a restart: kill 1 {resume1:.2f}s, "
          f"kill 2 {fmt_s(resume2)}, kill 3 {fmt_s(resume3)}, "
          f"kill 4 {fmt_s(resume4)}; "
          f"attempt outcomes {outcomes}; handoffs {dict(handoffs)}", flush=True)
    for label, tk, tu, st in run.figures:
        print(f"crash: {label}: broker answering {tu - tk:.2f}s after the kill; "
              f"committed state at the kill {st}", flush=True)


@test(timeout=120)
def test_idle_agents_send_their_parked_poll_again_after_a_restart(env):
    """An idle agent's poll is parked when the broker dies. The agent sends it
    again as soon as its connection is back (worker/lib/link.c), so it learns
    of the restart at once instead of at its reply deadline (lease + poll park
    + margin: more than 30 s here), and takes new work right away."""
    broker = env.broker(extra_args=["--set", "poll_park=30s"])
    fleet = start_fleet(env, broker, vendors=(("acme", "EU-DE", (1,)),))
    agent = fleet["agents"][0]
    time.sleep(0.5)  # the agent's first poll is parked
    t_kill = time.monotonic()
    assert broker.kill9() == -signal.SIGKILL
    broker.start(timeout=60)
    ids = submit_batch(broker, write_batch(env.path("after.jsonl"),
                                           [batch_line("after restart")]), 1)
    wait_ids(broker, ids, timeout=60)
    took = time.monotonic() - t_kill
    print(f"crash: idle agent ran new work {took:.2f}s after the kill "
          f"(poll park 30s)", flush=True)
    log = agent.log_text()
    assert "request sent again" in log, agent.tail(20)
    assert "request=poll" in log and "does not know the session" in log, agent.tail(20)
    # Its reply deadline would have been 30 s + lease away: the resend did it.
    assert took < 20, f"{took:.1f}s\n" + agent.tail(20)
    _, p, _ = broker.ctl("package", "show", ids[0])
    assert p["state"] == "completed" and p["vendor"] == "acme", p
    _, r, _ = broker.ctl("result", ids[0])
    assert base64.b64decode(r["result_b64"]) == b"AFTER RESTART", r


if __name__ == "__main__":
    main()
