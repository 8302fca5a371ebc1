"""Continuity when a whole vendor fails (DESIGN.md "Continuity": "A vendor is
failed when it has no live agent, when its failure rate trips a circuit
breaker ... A recovered vendor is probed with little work first, then ramps
back up"), on real processes and a real PostgreSQL:

  2. kill -9 of every agent of one vendor among three: all its work completes
     on the other two; the vendor becomes failed ("no live agent");
  4. a vendor whose handler fails every package next to a healthy one: the
     circuit breaker trips (failed, "circuit breaker"), its work completes on
     the healthy vendor, and after the cooldown it is probed with new work,
     which now succeeds, and it ends active;
  8. residency under failover: EU-only work never runs on the US vendor when
     the EU vendor's agent dies; it waits with a reason (and `stats` counts
     it) until an EU agent is back, then completes there.

Every test also checks the shared invariants (fixtures_it4.check_continuity).
"""

import time

from harness import main, test, wait_for
from fixtures_it1 import wait_ids
from fixtures_it4 import (LEASE_S, World, check_continuity, db_attempts, db_handoffs,
                          elapsed, log_lines, open_attempts, summary, vendor_state,
                          wait_handoffs, wait_running, wait_vendor_state)


@test(timeout=100)
def test_vendor_loses_every_agent(env):
    t0 = time.monotonic()
    broker = env.broker(extra_args=["--set", "poll_park=200ms"])
    w = World(env, broker)
    agents = (("alpha", "EU-DE", ("alpha-1", "alpha-2")), ("beta", "IN", ("beta-1",)),
              ("gamma", "US", ("gamma-1",)))
    for vendor, region, names in agents:
        w.vendor(vendor, region)
        for n in names:
            # Each agent's first two runs take 2 s, so alpha's are still
            # running at the kill; later ones 0.5 s.
            w.agent(vendor, n, w.work_first(n, 2, 2, 0.5), slots=2, wait=False)
    w.wait_connected([n for _, _, names in agents for n in names])
    ids = w.submit(12, "vf")
    wait_running(env.pg, "alpha-1", 1)
    wait_running(env.pg, "alpha-2", 1)

    t_kill = time.time()
    for n in ("alpha-1", "alpha-2"):
        w.agents[n].kill9()
    held = open_attempts(env.pg, "alpha-1") + open_attempts(env.pg, "alpha-2")
    rows = wait_handoffs(env.pg, [(a["package"], a["attempt"]) for a in held], timeout=20)
    wait_ids(broker, ids, timeout=60)

    r = check_continuity(env, w, reasons={"agent-lost", "vendor-failed"})
    for a in held:
        p = r["packages"][a["package"]]
        assert p["vendor"] in ("beta", "gamma"), (a, p)
    late = [a for a in r["attempts"] if a["vendor"] == "alpha"
            and a["assigned"] > t_kill + LEASE_S + 2]
    assert not late, f"work assigned to alpha after its agents were gone: {late}"
    print(f"continuity: alpha's agents killed holding {len(held)} package(s), handed "
          "off after " + ", ".join(f"{h['at'] - t_kill:.2f}s ({h['reason']})"
                                   for h in rows.values())
          + f"; all completed on beta/gamma; {summary(r)}", flush=True)

    # The vendor itself is failed: no live agent.
    try:
        v = wait_vendor_state(w, "alpha", "failed", timeout=10)
    finally:
        print(f"continuity: vendor show alpha: {w.vendor_show('alpha')}", flush=True)
    reason = v.get("state_reason") or ""
    assert "no live agent" in reason, f"state_reason {reason!r}"
    for other in ("beta", "gamma"):
        assert vendor_state(w, other)[0] == "active", w.vendor_show(other)
    print(f"continuity: alpha failed ({reason!r}); took {elapsed(t0)}", flush=True)


BREAKER = {"breaker_window": "30s", "breaker_min_attempts": "5",
           "breaker_threshold": "0.5", "breaker_cooldown": "3s",
           "probe_packages": "1", "retry_base": "200ms"}
COOLDOWN_S = 3.0


def keep_busy(w, label, low=3):
    """Submits two more packages when fewer than low are open."""
    _, st, _ = w.broker.ctl("stats", timeout=10)
    if st["queued"] + st["assigned"] + st["running"] < low:
        w.submit(2, label, max_attempts=10)


@test(timeout=120)
def test_circuit_breaker_trips_and_probes(env):
    t0 = time.monotonic()
    args = ["--set", "poll_park=200ms"]
    for k, v in BREAKER.items():
        args += ["--set", f"{k}={v}"]
    broker = env.broker(extra_args=args)
    w = World(env, broker)
    fixed = env.path("flaky-fixed")
    # The cheap vendor wins the routing, and fails every package until the
    # test creates the flag file.
    w.vendor("flaky", "IN", cost=0.2, capacity=4)
    w.vendor("steady", "EU-DE", cost=2.0, capacity=4)
    w.agent("flaky", "flaky-1", w.work("flaky-1", 0, fail_unless=fixed), slots=4, wait=False)
    w.agent("steady", "steady-1", w.work("steady-1", 0.5), slots=4, wait=False)
    w.wait_connected(["flaky-1", "steady-1"])
    first = w.submit(12, "cb", max_attempts=10)

    try:
        v = wait_vendor_state(w, "flaky", "failed", timeout=20)
    finally:
        print(f"continuity: vendor show flaky: {w.vendor_show('flaky')}", flush=True)
    t_trip = time.time()
    reason = v.get("state_reason") or ""
    before = [a for a in db_attempts(env.pg) if a["vendor"] == "flaky"]
    failed = [a for a in before if a["outcome"] == "failed"]
    print(f"continuity: breaker tripped after {len(failed)} failed of {len(before)} "
          f"attempts on flaky: {reason!r}", flush=True)
    assert "circuit breaker" in reason, f"state_reason {reason!r}"
    assert len(failed) >= 5, before

    # Fixed: its next work succeeds. Keep work coming until it is probed.
    open(fixed, "w").close()

    def probed():
        keep_busy(w, "cb-more")
        new = [a for a in db_attempts(env.pg) if a["vendor"] == "flaky"
               and a["assigned"] > t_trip]
        return new[0] if new else None
    probe = wait_for(probed, COOLDOWN_S + 15, what="a probe attempt on flaky",
                     interval=0.3)
    last_before = max(a["assigned"] for a in before)
    gap = probe["assigned"] - last_before
    print(f"continuity: flaky probed {probe['assigned'] - t_trip:.2f}s after the trip "
          f"was seen, {gap:.2f}s after its last assignment before it "
          f"(cooldown {COOLDOWN_S:g}s)", flush=True)
    assert gap >= COOLDOWN_S * 0.9, f"probed {gap:.2f}s after the last assignment"

    def active():
        keep_busy(w, "cb-more")
        st = vendor_state(w, "flaky")
        return st if st[0] == "active" else None
    try:
        wait_for(active, 40, what="flaky active again", interval=0.3)
    finally:
        print(f"continuity: vendor show flaky: {w.vendor_show('flaky')}", flush=True)
    wait_ids(broker, w.ids(), timeout=60)

    r = check_continuity(env, w, reasons={"vendor-failed"})
    atts = r["attempts"]
    p_att = next(a for a in atts if (a["package"], a["attempt"]) ==
                 (probe["package"], probe["attempt"]))
    assert p_att["outcome"] == "completed", p_att
    # Until the probe, everything completed on the healthy vendor.
    for a in atts:
        if a["outcome"] == "completed" and a["vendor"] == "flaky":
            assert a["assigned"] >= probe["assigned"], a
    failed_pkgs = {a["package"] for a in failed}
    assert failed_pkgs, failed
    for pid in failed_pkgs:
        assert r["packages"][pid]["state"] == "completed", r["by_package"][pid]
    after = [a for a in atts if a["vendor"] == "flaky" and a["assigned"] >= probe["assigned"]]
    print(f"continuity: flaky after the probe: {len(after)} attempts, outcomes "
          f"{sorted({a['outcome'] for a in after}, key=str)}; first batch {len(first)}, "
          f"{len(w.acked)} packages in all; {summary(r)}; took {elapsed(t0)}", flush=True)
    print("continuity: broker on flaky:\n" + log_lines(broker, "flaky", limit=8), flush=True)


EU = ["EU-DE", "EU-FR"]


@test(timeout=100)
def test_residency_holds_under_failover(env):
    t0 = time.monotonic()
    # A vendor failed for losing its agents is probed after breaker_cooldown
    # once an agent is back; keep that short here.
    broker = env.broker(extra_args=["--set", "poll_park=200ms",
                                    "--set", "breaker_cooldown=2s"])
    w = World(env, broker)
    w.vendor("eu", "EU-DE")
    w.vendor("us", "US")
    # Each agent's first two runs take 2 s, so eu-1's are still running at
    # the kill; later ones (eu-1's after its restart) 0.5 s.
    eu1 = w.agent("eu", "eu-1", w.work_first("eu-1", 2, 2, 0.5), slots=2, wait=False)
    w.agent("us", "us-1", w.work_first("us-1", 2, 2, 0.5), slots=2, wait=False)
    w.wait_connected(["eu-1", "us-1"])
    eu_ids = w.submit(4, "eu", region=EU)
    any_ids = w.submit(4, "any")
    wait_running(env.pg, "eu-1", 2)

    t_kill = time.time()
    eu1.kill9()
    held = open_attempts(env.pg, "eu-1")
    wait_handoffs(env.pg, [(a["package"], a["attempt"]) for a in held], timeout=20)
    wait_ids(broker, any_ids, timeout=30)
    time.sleep(max(0.0, t_kill + LEASE_S + 1.5 - time.time()))

    # EU work waits, visibly, and never ran on the US vendor.
    open_eu = [i for i in eu_ids
               if env.pg.scalar(f"SELECT state FROM packages_now WHERE id = {i}")
               != "completed"]
    assert open_eu, "all EU work completed before the kill"
    reasons = {}
    for pid in open_eu:
        _, p, _ = broker.ctl("package", "show", pid)
        assert p["state"] == "queued", p
        assert p["waiting_reason"], f"package {pid} waits without a reason: {p}"
        assert all(a["vendor"] == "eu" for a in p["attempts"]), p["attempts"]
        reasons[pid] = p["waiting_reason"]
    _, st, _ = broker.ctl("stats")
    assert st["waiting"] == len(open_eu), (st, open_eu)
    on_us = [a for a in db_attempts(env.pg, eu_ids) if a["vendor"] != "eu"]
    assert not on_us, f"EU work ran outside the EU: {on_us}"
    print(f"continuity: {len(open_eu)} EU packages waiting "
          f"{time.time() - t_kill:.1f}s after the kill; stats waiting={st['waiting']}; "
          f"reasons {sorted(set(reasons.values()))}; eu is {vendor_state(w, 'eu')}",
          flush=True)

    t_back = time.monotonic()
    eu1.start()
    w.wait_connected(["eu-1"])
    wait_ids(broker, eu_ids, timeout=45)
    back = time.monotonic() - t_back
    r = check_continuity(env, w, reasons={"agent-lost", "vendor-failed"})
    for pid in eu_ids:
        assert r["packages"][pid]["vendor"] == "eu", (pid, r["by_package"][pid])
    on_us = [a for a in r["attempts"] if a["package"] in eu_ids and a["vendor"] != "eu"]
    assert not on_us, on_us
    spread = {}
    for pid in any_ids:
        spread[r["packages"][pid]["vendor"]] = spread.get(r["packages"][pid]["vendor"], 0) + 1
    _, st, _ = broker.ctl("stats")
    assert st["waiting"] == 0, st
    print(f"continuity: EU work completed on eu {back:.1f}s after its agent came back; "
          f"unconstrained work ran on {spread}; handoffs "
          f"{[(h['package'], h['reason']) for h in db_handoffs(env.pg)]}; "
          f"{summary(r)}; took {elapsed(t0)}", flush=True)


if __name__ == "__main__":
    main()
