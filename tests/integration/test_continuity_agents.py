"""Continuity when an agent dies or hangs (DESIGN.md "Continuity"), on real
processes and a real PostgreSQL, default lease (3 s):

  1. kill -9 of one agent mid-work while its vendor and another vendor have
     other agents: its running packages are handed off (agent-lost) and
     complete elsewhere; detection time (kill -> handoff row) is printed and
     bounded;
  3. SIGSTOP of an agent (hung: its TCP connection stays open) for longer
     than the lease, then SIGCONT: its packages were handed off and completed
     elsewhere; its late results are refused as stale (an audit row whose
     action ends in ".stale") and the stored result is the new attempt's;
  7. a handed-off package carries its checkpoint: the second vendor's
     handler reads $BATON_CHECKPOINT_IN and its result proves it.

Every test also checks the shared invariants (fixtures_it4.check_continuity):
nothing acknowledged lost, nothing completed twice, no constraint violated,
handoff rows that match the attempts.
"""

import base64
import time

from harness import main, test, wait_for
from fixtures_it1 import TWO_LANES_BROKER_ARGS, wait_ids
from fixtures_it4 import (LEASE_S, World, check_continuity, db_attempts, db_audit,
                          db_handoffs, elapsed, log_lines, open_attempts, sh_quote,
                          summary, wait_handoffs, wait_running)

DETECT_BOUND_S = 8.0  # kill -> handoff row; the lease is 3 s
HEARTBEAT_S = 1.0  # the broker's default heartbeat


@test(timeout=90)
def test_agent_kill9_hands_off_its_work(env):
    t0 = time.monotonic()
    broker = env.broker(extra_args=TWO_LANES_BROKER_ARGS)
    w = World(env, broker)
    w.vendor("acme", "EU-DE")
    w.vendor("globex", "IN")
    for name, vendor in (("acme-1", "acme"), ("acme-2", "acme"), ("globex-1", "globex")):
        w.agent(vendor, name, w.work(name, 3), slots=2, wait=False)
    w.wait_connected(["acme-1", "acme-2", "globex-1"])
    ids = w.submit(6, "k9")
    wait_running(env.pg, "acme-1", 1)

    victim = w.agents["acme-1"]
    t_kill = time.time()
    victim.kill9()
    held = open_attempts(env.pg, "acme-1")
    assert held, "acme-1 held nothing at the kill"
    rows = wait_handoffs(env.pg, [(a["package"], a["attempt"]) for a in held],
                         timeout=DETECT_BOUND_S + 10)
    detect = sorted(h["at"] - t_kill for h in rows.values())
    print(f"continuity: kill -9 of acme-1 holding {len(held)} package(s); "
          f"detected (kill -> handoff row) after {detect[0]:.2f}s .. {detect[-1]:.2f}s "
          f"(lease {LEASE_S:g}s, bound {DETECT_BOUND_S:g}s)", flush=True)
    assert detect[-1] < DETECT_BOUND_S, f"detection took {detect[-1]:.2f}s"
    # The lease runs from the agent's last message (a busy agent heartbeats
    # every second), so no handoff comes sooner than about lease - heartbeat.
    assert detect[0] >= LEASE_S - HEARTBEAT_S - 0.3, \
        f"handed off {detect[0]:.2f}s after the kill, before the lease ran out"

    wait_ids(broker, ids, timeout=40)
    r = check_continuity(env, w, reasons={"agent-lost"})
    # Read again now that all is done: at detection a row may not have learnt
    # yet whom its package went to (to_vendor is set by the next assignment).
    final = {(h["package"], h["attempt"]): h for h in db_handoffs(env.pg)}
    for a in held:
        pid = a["package"]
        h = final[(pid, a["attempt"])]
        assert h["reason"] == "agent-lost" and h["from_vendor"] == "acme", h
        p = r["packages"][pid]
        assert p["agent"] != "acme-1", (pid, p, r["by_package"][pid])
        assert r["by_package"][pid][a["attempt"] - 1]["outcome"] == "lost", \
            r["by_package"][pid]
        assert p["vendor"] == h["to_vendor"] or p["attempt"] > a["attempt"] + 1, (p, h)
    _, agents, _ = broker.ctl("agent", "list")
    states = {x["name"]: x["state"] for x in agents}
    assert states["acme-1"] != "connected", states
    assert states["acme-2"] == states["globex-1"] == "connected", states
    print(f"continuity: agent kill: {summary(r)}; took {elapsed(t0)}", flush=True)


@test(timeout=90)
def test_hung_agent_results_are_stale(env):
    t0 = time.monotonic()
    broker = env.broker(extra_args=TWO_LANES_BROKER_ARGS)
    w = World(env, broker)
    w.vendor("acme", "EU-DE")
    w.vendor("globex", "IN")
    # The hung agent's handlers take 5 s: they finish while it is stopped, so
    # it has results to report when it wakes up.
    # The other agents connect once both packages run on acme-1. acme keeps a
    # live agent, acme-2, so acme itself stays up and the reason is agent-lost.
    hung = w.agent("acme", "acme-1", w.work("acme-1", 5), slots=2)
    ids = w.submit(2, "hung")
    held = wait_running(env.pg, "acme-1", 2)
    w.agent("acme", "acme-2", w.work("acme-2", 0.5), slots=2, wait=False)
    w.agent("globex", "globex-1", w.work("globex-1", 0.5), slots=2, wait=False)
    w.wait_connected(["acme-2", "globex-1"])

    t_stop = time.time()
    hung.sigstop()
    wait_for(lambda: hung.state() == "T", 5, what="acme-1 stopped")
    rows = wait_handoffs(env.pg, [(a["package"], a["attempt"]) for a in held], timeout=20)
    wait_ids(broker, ids, timeout=30)
    print("continuity: acme-1 stopped; handed off after "
          + ", ".join(f"{h['at'] - t_stop:.2f}s" for h in rows.values())
          + "; completed on " + ", ".join(
              env.pg.scalar(f"SELECT a.name FROM packages_now p JOIN agents a ON "
                            f"a.id = p.agent_id WHERE p.id = {i}") for i in ids),
          flush=True)
    # Its handlers have finished by now (they run in their own session).
    wait_for(lambda: all((a["package"], a["attempt"], "acme-1") in w.outputs()
                         for a in held), 10, what="the hung agent's handlers to finish")
    stopped_for = time.time() - t_stop
    assert stopped_for > LEASE_S, stopped_for

    before = hung.log_text().count("session established")
    hung.sigcont()
    t_cont = time.time()
    # It notices its session is gone, starts a new one, and reports what it
    # holds (the finished results); give the broker's answer time to land.
    wait_for(lambda: hung.log_text().count("session established") > before, 15,
             what="acme-1 to start a new session after SIGCONT", logs=[hung, broker])
    time.sleep(1.5)
    print(f"continuity: acme-1 stopped for {stopped_for:.1f}s, then resumed; its log:\n"
          + log_lines(hung, "session", "stale", "cancel", "result"), flush=True)

    r = check_continuity(env, w, reasons={"agent-lost"})
    for a in held:
        pid = a["package"]
        p = r["packages"][pid]
        assert p["agent"] in ("acme-2", "globex-1") and p["attempt"] > a["attempt"], \
            (pid, p)
        late = f"{pid}:{a['attempt']}:acme-1"
        assert late not in (p["result"] or ""), (pid, p["result"])
        _, res, _ = broker.ctl("result", pid, json=False)
        assert res.rstrip("\n") == f"{pid}:{p['attempt']}:{p['agent']}", (pid, res)
        atts = r["by_package"][pid]
        assert [x["outcome"] for x in atts if x["agent"] == "acme-1"] == ["lost"], atts
    hung.check_running()

    # The late results were seen and refused as stale, and audited as such.
    def stale_rows():
        rows = db_audit(env.pg, "%.stale")
        got = {int(x["subject"].split(":")[1]) for x in rows
               if x["subject"].startswith("package:")}
        return rows if {a["package"] for a in held} <= got else None
    try:
        stale = wait_for(stale_rows, 5, what='audit rows with action "*.stale" for '
                         f'packages {sorted(a["package"] for a in held)}', logs=[])
    except AssertionError:
        print("continuity: audit actions seen: "
              f"{sorted({x['action'] for x in db_audit(env.pg)})}", flush=True)
        raise
    print("continuity: stale audit rows: "
          + "; ".join(f"{x['action']} {x['subject']} {x['detail']} "
                      f"(+{x['at'] - t_cont:.2f}s after SIGCONT)" for x in stale)
          + f"; {summary(r)}; took {elapsed(t0)}", flush=True)


CHECKPOINT = b"step-1 done"

# First vendor: reports a checkpoint on fd 3, then works for a long time.
FIRST_SH = r"""#!/bin/sh
echo "$$" >> "$BT_IT4_DIR/handler-pids"
cat >/dev/null
printf 'progress 40\ncheckpoint %s\n' "$2" >&3
sleep 30
printf '%s:%s:%s:finished-without-checkpoint\n' "$BATON_PACKAGE_ID" "$BATON_ATTEMPT" "$1"
"""

# Second vendor: continues from the checkpoint it was given.
SECOND_SH = r"""#!/bin/sh
echo "$$" >> "$BT_IT4_DIR/handler-pids"
cat >/dev/null
if [ -n "$BATON_CHECKPOINT_IN" ] && [ -r "$BATON_CHECKPOINT_IN" ]; then
    from=$(cat "$BATON_CHECKPOINT_IN")
else
    from="no-checkpoint"
fi
printf '%s:%s:%s:resumed-from=%s\n' "$BATON_PACKAGE_ID" "$BATON_ATTEMPT" "$1" "$from"
"""


@test(timeout=90)
def test_handoff_carries_the_checkpoint(env):
    t0 = time.monotonic()
    broker = env.broker(extra_args=TWO_LANES_BROKER_ARGS)
    w = World(env, broker)
    w.vendor("acme", "EU-DE")
    w.vendor("globex", "IN")
    first = w.script("first.sh", FIRST_SH)
    second = w.script("second.sh", SECOND_SH)
    b64 = base64.b64encode(CHECKPOINT).decode()
    a1 = w.agent("acme", "acme-1", sh_quote("/bin/sh", first, "acme-1", b64), slots=1)
    # It prefers globex, whose agent connects only once it runs on acme-1: the
    # handoff goes to globex, while acme-2 keeps acme up (reason agent-lost).
    pid = w.submit_one("ckpt", prefer="globex")
    wait_running(env.pg, "acme-1", 1)
    wait_for(lambda: env.pg.scalar(f"SELECT octet_length(checkpoint) FROM work_packages "
                                   f"WHERE id = {pid}") == str(len(CHECKPOINT)),
             10, what="the checkpoint to be stored")
    w.agent("acme", "acme-2", sh_quote("/bin/sh", first, "acme-2", b64), slots=1,
            wait=False)
    w.agent("globex", "globex-1", sh_quote("/bin/sh", second, "globex-1"), slots=1,
            wait=False)
    w.wait_connected(["acme-2", "globex-1"])
    t_kill = time.time()
    a1.kill9()
    wait_ids(broker, [pid], timeout=30)

    r = check_continuity(env, w, reasons={"agent-lost"})
    want = f"{pid}:2:globex-1:resumed-from={CHECKPOINT.decode()}"
    _, res, _ = broker.ctl("result", pid, json=False)
    assert res.rstrip("\n") == want, (res, want)
    assert [(a["attempt"], a["vendor"], a["outcome"]) for a in r["by_package"][pid]] == \
        [(1, "acme", "lost"), (2, "globex", "completed")], r["by_package"][pid]
    _, p, _ = broker.ctl("package", "show", pid)
    assert p["state"] == "completed" and p["vendor"] == "globex", p
    assert len(p["handoffs"]) == 1, p["handoffs"]
    h = p["handoffs"][0]
    assert h["reason"] == "agent-lost", h
    assert h["from_vendor"] == "acme" and h["to_vendor"] == "globex", h
    assert h["checkpoint_bytes"] == len(CHECKPOINT) > 0, h
    (row,) = r["handoffs"]
    assert row["checkpoint_bytes"] == len(CHECKPOINT), row
    print(f"continuity: checkpoint {CHECKPOINT!r} carried acme -> globex "
          f"(handoff {row['at'] - t_kill:.2f}s after the kill); result {res.strip()!r}; "
          f"took {elapsed(t0)}", flush=True)
    assert db_attempts(env.pg, [pid])[0]["agent"] == "acme-1"


if __name__ == "__main__":
    main()
