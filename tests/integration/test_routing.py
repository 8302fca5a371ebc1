"""Routing on real processes (DESIGN.md "Routing", server/core/sched.c).

Four vendors with different regions, certifications and costs, one agent each
running `sleep 0.05; cat`, so that several vendors have work in flight at once:

  1. 1,000 packages with mixed requirements (a third unconstrained, the rest
     with region lists, certifications, a max cost, avoided and preferred
     vendors, and combinations that leave a single vendor): every attempt of
     every package went to a vendor its requirements allow, checked from
     `package show` for a sample and from the database for all of them, and
     unconstrained work is spread over several vendors (share cap 0.7);
  2. the cost weight: the same unconstrained stream on a fresh broker with
     `--set score_cost=10` and with `--set score_cost=0`: the cheapest vendor
     gets a clearly larger share with the higher cost weight;
  3. route_at_submit: a package an agent has room for is assigned in the
     transaction of its own insert (one commit from submit to start), and in
     one of its own when the setting is off.
"""

import random
import time

from harness import main, test, wait_for
from fixtures_it1 import wait_agents, wait_ids
from fixtures_it3 import (CAPABILITY, SQL_INELIGIBLE_ATTEMPTS, Req, VendorSpec,
                          add_vendor, allowed, batch_line, check_vendors_registered,
                          create_database, db_assignments, eligible,
                          max_in_flight, start_agent, start_fleet, stop_all,
                          submit_lines)

HANDLER = "sleep 0.05; cat"

# Capacity 8, agents with 10 slots: the vendor's capacity is what binds.
VENDORS = (
    VendorSpec("eu-de", "EU-DE", 2.0, certs=("iso27001",), model="onshore", slots=10),
    VendorSpec("eu-fr", "EU-FR", 1.5, model="nearshore", slots=10),
    VendorSpec("us", "US", 1.0, certs=("soc2",), model="nearshore", slots=10),
    VendorSpec("in", "IN", 0.5, certs=("iso27001",), model="offshore", slots=10),
)
BY_NAME = {v.name: v for v in VENDORS}
CHEAPEST = min(VENDORS, key=lambda v: v.cost).name

# (kind, requirement set, weight). Every kind is routable: some vendor allows it.
KINDS = (
    ("any", Req(), 0),  # a third of the packages, see mixed_kinds()
    ("eu", Req(regions=("EU-DE", "EU-FR")), 8),
    ("iso", Req(certs=("iso27001",)), 8),
    ("soc2", Req(certs=("soc2",)), 6),
    ("cheap", Req(max_cost=1.0), 8),
    ("not-in", Req(avoid=("in",)), 8),
    ("prefer-us", Req(prefer=("us",)), 8),
    ("eu-iso", Req(regions=("EU-DE", "EU-FR"), certs=("iso27001",)), 5),
    ("us-in-cheap", Req(regions=("US", "IN"), max_cost=0.75), 5),
    ("fr-only", Req(avoid=("in", "us"), max_cost=1.6), 5),
    ("iso-not-de", Req(certs=("iso27001",), avoid=("eu-de",)), 4),
    ("prefer-de-cheap", Req(prefer=("eu-de",), max_cost=1.0), 4),
    ("eu-or-us-avoid-fr", Req(regions=("EU-DE", "EU-FR", "US"), avoid=("eu-fr",)), 4),
)
REQS = {k: r for k, r, _ in KINDS}


def mixed_kinds(n: int, rng: random.Random) -> list:
    """n kinds: a third "any", the rest drawn by weight, shuffled."""
    n_any = n // 3
    names = [k for k, _, w in KINDS if w]
    weights = [w for _, _, w in KINDS if w]
    kinds = ["any"] * n_any + rng.choices(names, weights, k=n - n_any)
    # Every constrained kind at least a few times.
    for i, k in enumerate(names):
        kinds[n_any + i] = k
    rng.shuffle(kinds)
    return kinds


def shares(counts: dict) -> dict:
    total = sum(counts.values()) or 1
    return {k: round(v / total, 3) for k, v in sorted(counts.items())}


@test(timeout=150)
def test_requirements_never_violated_1000(env):
    for k, req, _ in KINDS:
        assert eligible(req, VENDORS), f"kind {k} must be routable"
    rng = random.Random(3)
    broker = env.broker(extra_args=["--set", "poll_park=200ms"])
    start_fleet(env, broker, VENDORS, HANDLER)
    check_vendors_registered(broker, VENDORS)

    # 1,000 packages in ten batches, half a second apart: bursts that fill
    # every vendor for a while, with lulls in between where the score decides.
    kinds = mixed_kinds(1000, rng)
    kind_of, t0 = {}, time.monotonic()
    for b in range(10):
        lines = []
        for i in range(b * 100, (b + 1) * 100):
            lines.append(batch_line(f"{kinds[i]}:{i}", REQS[kinds[i]], style=i))
        ids = submit_lines(broker, env.path(f"mix-{b}.jsonl"), lines)
        kind_of.update(zip(ids, (kinds[i] for i in range(b * 100, (b + 1) * 100))))
        time.sleep(0.5)
    wait_ids(broker, list(kind_of), timeout=100)
    took = time.monotonic() - t0
    print(f"routing: 1000 mixed packages completed in {took:.1f}s", flush=True)

    # The database, all of it: stored requirements are what was submitted, the
    # result is the payload, and every attempt's vendor is allowed, once by
    # PostgreSQL from the stored rows and once by allowed() from the specs.
    bad = env.pg.psql(SQL_INELIGIBLE_ATTEMPTS)
    assert bad == [], f"{len(bad)} attempts on ineligible vendors: {bad[:10]}"
    rows = db_assignments(env.pg)
    assert set(rows) == set(kind_of), (len(rows), len(kind_of))
    by_kind: dict = {}
    for pid, r in rows.items():
        kind, req = kind_of[pid], REQS[kind_of[pid]]
        assert r["payload"].startswith(kind + ":"), (pid, r["payload"], kind)
        assert r["state"] == "completed" and r["result"] == r["payload"], (pid, r)
        # Lists as sets: the broker may keep them in its own order.
        for key in ("regions", "certs", "avoid", "prefer"):
            assert sorted(r[key]) == sorted(getattr(req, key)), (pid, key, r, req)
        assert r["max_cost"] == req.max_cost, (pid, r, req)
        done = [a for a in r["attempts"] if a[1] == "completed"]
        assert len(done) == 1 and done[0][2] == r["pkg_vendor"], (pid, r)
        for a in r["attempts"]:
            assert allowed(req, BY_NAME[a[2]]), (
                f"package {pid} ({kind}, {req}) attempt {a[0]} ran on {a[2]}, "
                f"allowed: {eligible(req, VENDORS)}")
        counts = by_kind.setdefault(kind, {})
        counts[r["pkg_vendor"]] = counts.get(r["pkg_vendor"], 0) + 1
    for kind in sorted(by_kind):
        print(f"routing: {kind:18s} -> {by_kind[kind]}  (allowed "
              f"{eligible(REQS[kind], VENDORS)})", flush=True)

    # batonctl's view of a sample (>= 100; every constrained kind in it).
    sample = set(rng.sample(sorted(kind_of), 110))
    for k in REQS:
        sample |= set([i for i, kk in kind_of.items() if kk == k][:2])
    for pid in sorted(sample):
        _, p, _ = broker.ctl("package", "show", pid)
        req = REQS[kind_of[pid]]
        assert p["id"] == pid and p["state"] == "completed", p
        assert p["capability"] == CAPABILITY and p["waiting_reason"] in (None, ""), p
        assert p["vendor"] == rows[pid]["pkg_vendor"], (p, rows[pid])
        for key in ("regions", "certs", "avoid", "prefer"):
            assert sorted(p[key]) == sorted(getattr(req, key)), (key, p, req)
        assert p["max_cost"] == req.max_cost, p
        assert allowed(req, BY_NAME[p["vendor"]]), (p, eligible(req, VENDORS))
        for a in p["attempts"]:
            assert allowed(req, BY_NAME[a["vendor"]]), (p, a)
    print(f"routing: package show checked for {len(sample)} packages", flush=True)

    # Capacity is eligibility too: no vendor ever ran more than 8 at once,
    # though its agent had 10 slots (and the bursts kept them busy).
    peak = max_in_flight(env.pg)
    print(f"routing: most packages in flight at once per vendor: {peak}", flush=True)
    assert all(n <= BY_NAME[v].capacity for v, n in peak.items()), peak
    assert max(peak.values()) == 8, peak
    for v in VENDORS:
        assert broker.metric("baton_vendor_capacity", {"vendor": v.name}) == v.capacity
        assert broker.metric("baton_vendor_in_flight", {"vendor": v.name}) == 0

    # Unconstrained work is spread: several vendors, none near all of it.
    free = by_kind["any"]
    print(f"routing: unconstrained shares {shares(free)} of {sum(free.values())}",
          flush=True)
    assert len([v for v, n in free.items() if n > 0]) >= 3, free
    assert max(shares(free).values()) <= 0.75, shares(free)
    # Single-vendor kinds went to that vendor only (implied above; said plainly).
    for kind in ("soc2", "eu-iso", "us-in-cheap", "fr-only"):
        assert len(by_kind[kind]) == 1, (kind, by_kind[kind])

    # Preference is soft but counts. In the bursts above a preferred vendor is
    # often full; in a light stream (one package every 20 ms, alternately
    # preferring us and not) it has room, and score_prefer=1 outweighs every
    # other difference between the vendors (cost, free slots).
    lines = [batch_line(f"{'prefer-us' if i % 2 else 'any'}:s{i}",
                        REQS["prefer-us"] if i % 2 else None,
                        not_before=f"{300 + 20 * i}ms") for i in range(160)]
    ids = submit_lines(broker, env.path("prefer.jsonl"), lines)
    wait_ids(broker, ids, timeout=60)
    pref, plain = {}, {}
    for pid, r in db_assignments(env.pg, ids).items():
        d = pref if r["payload"].startswith("prefer-us:") else plain
        d[r["pkg_vendor"]] = d.get(r["pkg_vendor"], 0) + 1
    print(f"routing: light stream: prefer-us shares {shares(pref)}, "
          f"unconstrained shares {shares(plain)}", flush=True)
    assert shares(pref).get("us", 0) >= shares(plain).get("us", 0) + 0.25, (pref, plain)


def run_unconstrained_stream(env, dbname: str, settings, n: int = 240,
                             spacing_ms: int = 20) -> dict:
    """A fresh broker (own database) with settings, the four vendors, and n
    unconstrained packages arriving one every spacing_ms (not_before spaced
    out in one batch, so the arrival rate does not depend on how fast
    batonctl runs). Returns {vendor: packages it completed}."""
    extra = ["--set", "poll_park=200ms"]
    for s in settings:
        extra += ["--set", s]
    broker = env.broker(db=create_database(env, dbname), name=f"broker-{dbname}",
                        extra_args=extra)
    start_fleet(env, broker, VENDORS, HANDLER)
    lines = [batch_line(f"any:{i}", not_before=f"{500 + i * spacing_ms}ms")
             for i in range(n)]
    ids = submit_lines(broker, env.path(f"{dbname}.jsonl"), lines)
    wait_ids(broker, ids, timeout=60)
    _, listed, _ = broker.ctl("vendor", "list")
    counts = {v["name"]: v["completed"] for v in listed}
    assert sum(counts.values()) == n, counts
    stop_all(env)
    return counts


@test(timeout=150)
def test_cost_weight_shifts_work_to_cheaper_vendors(env):
    high = run_unconstrained_stream(env, "cost10", ["score_cost=10"])
    zero = run_unconstrained_stream(env, "cost0", ["score_cost=0"])
    sh, sz = shares(high), shares(zero)
    print(f"routing: score_cost=10 shares {sh}", flush=True)
    print(f"routing: score_cost=0  shares {sz}", flush=True)
    print(f"routing: cheapest vendor ({CHEAPEST}) share {sh.get(CHEAPEST, 0):.3f} "
          f"with score_cost=10, {sz.get(CHEAPEST, 0):.3f} with score_cost=0",
          flush=True)
    assert sh.get(CHEAPEST, 0) >= sz.get(CHEAPEST, 0) + 0.25, (sh, sz)
    # The share cap still holds with a heavy cost weight: others get some.
    assert sh.get(CHEAPEST, 0) <= 0.9, sh


@test(timeout=60)
def test_route_at_submit_writes_the_assignment_with_the_package(env):
    """route_at_submit (on by default): a package submitted while an agent has
    room is assigned in its submit, and its attempts row is written in the
    transaction of its package row (both carry one xmin). After `config set
    route_at_submit 0` the assignment is a transaction of its own. The agent
    is frozen (SIGSTOP) while the rows are read, so no start or result has
    rewritten the attempts row; thawed, it runs both packages."""
    spec = VendorSpec("solo", "EU-DE", 1.0, capacity=4, slots=4)
    broker = env.broker(extra_args=["--set", "lease=30s"])
    v = add_vendor(broker, spec)
    agent = start_agent(env, broker, spec, v["secret"], "cat")
    wait_agents(broker, [agent.agent_name])
    time.sleep(0.5)  # its first poll is parked: it has asked for work
    agent.sigstop()
    try:
        _, on, _ = broker.ctl("submit", "--capability", CAPABILITY, "--payload", "on")
        _, cfg, _ = broker.ctl("config", "set", "route_at_submit", "0")
        assert cfg["value"] == "0", cfg
        _, off, _ = broker.ctl("submit", "--capability", CAPABILITY, "--payload", "off")
        ids = (on["id"], off["id"])

        def assigned():
            r = env.pg.psql(
                "SELECT w.id, a.agent_id IS NOT NULL, w.xmin::text = a.xmin::text,"
                " a.assigned_at = w.submitted_at, a.started_at IS NULL"
                " FROM work_packages w LEFT JOIN attempts a"
                "   ON a.package_id = w.id AND a.attempt = 1"
                f" WHERE w.id IN {ids} ORDER BY w.id")
            return r if len(r) == 2 and all(x[1] == "t" for x in r) else None
        rows = wait_for(assigned, 10, what="both packages assigned", interval=0.1)
        assert rows[0] == (str(on["id"]), "t", "t", "t", "t"), rows
        assert rows[1][:3] == (str(off["id"]), "t", "f") and rows[1][4] == "t", rows
    finally:
        agent.sigcont()
    assert wait_ids(broker, ids, timeout=30)["completed"] == 2


if __name__ == "__main__":
    main()
