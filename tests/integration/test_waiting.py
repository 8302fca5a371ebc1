"""Work no vendor may take waits visibly (DESIGN.md "Routing", "a queued
package that no vendor may take stays queued with a visible waiting reason"):

  * packages whose requirements no registered vendor meets (a region and
    cert pair nobody has, a cert nobody has, a region nobody is in) and one
    for a capability nobody offers stay queued while other work flows;
  * `package show` names what blocks each (region, cert, capability);
  * `stats` counts them as waiting, and so does `baton_packages_waiting` on
    /metrics;
  * a vendor that fits, once its agent connects, takes them: they complete
    there, and waiting drops to 0.
"""

import time

from harness import main, test, wait_for
from fixtures_it1 import wait_agents, wait_ids
from fixtures_it3 import (CAPABILITY, Req, VendorSpec, add_vendor, allowed,
                          start_agent, wait_state)

HANDLER = "cat"
US = VendorSpec("us", "US", 1.0, certs=("soc2",), slots=2)
EU_DE = VendorSpec("eu-de", "EU-DE", 2.0, certs=("iso27001",), slots=2)
# Offers the capability nobody else does.
TRANSLATOR = VendorSpec("lingo", "IN", 0.5, capabilities=("translate",), slots=1)


def submit(broker, payload, capability=CAPABILITY, **flags):
    args = ["submit", "--capability", capability, "--payload", payload]
    for k, v in flags.items():
        args += [f"--{k.replace('_', '-')}", v]
    _, out, _ = broker.ctl(*args)
    assert out["state"] in ("queued", "assigned"), out
    return int(out["id"])


def waiting_counts(broker):
    """(stats waiting, stats queued, metric waiting, metric queued)."""
    _, st, _ = broker.ctl("stats")
    return (st["waiting"], st["queued"], broker.metric("baton_packages_waiting"),
            broker.metric("baton_packages", {"state": "queued"}))


@test(timeout=90)
def test_unroutable_work_waits_with_a_reason(env):
    broker = env.broker(extra_args=["--set", "poll_park=200ms"])
    us = add_vendor(broker, US)
    wait_agents(broker, [start_agent(env, broker, US, us["secret"], HANDLER).agent_name])

    blocked = {
        # what blocks it -> (package id, words its waiting reason must name)
        "region+cert": (submit(broker, "eu-de-iso", region="EU-DE", cert="iso27001"),
                        ("EU-DE", "cert", "iso27001")),
        "cert": (submit(broker, "iso-only", cert="iso27001"), ("cert", "iso27001")),
        "region": (submit(broker, "de-only", region="EU-DE"), ("EU-DE",)),
        "capability": (submit(broker, "bonjour", capability="translate"),
                       ("capability", "translate")),
    }
    ids = {k: v[0] for k, v in blocked.items()}
    # Work that can run meanwhile runs: the broker is not stuck.
    flowing = [submit(broker, f"free-{i}") for i in range(5)]
    flowing.append(submit(broker, "soc2", cert="soc2", region="US,EU-DE"))
    wait_ids(broker, flowing, timeout=30)
    time.sleep(0.5)  # agents polled again with free slots; still nothing placed

    for what, (pid, words) in blocked.items():
        _, p, _ = broker.ctl("package", "show", pid)
        assert p["state"] == "queued" and p["vendor"] is None, (what, p)
        assert p["attempts"] == [] and p["attempt"] == 0, (what, p)
        reason = p["waiting_reason"] or ""
        print(f"waiting: {what:11s} package {pid}: {reason!r}", flush=True)
        for w in words:
            assert w in reason, f"{what}: waiting_reason {reason!r} does not name {w!r}"
    assert env.pg.scalar("SELECT count(*) FROM attempts WHERE package_id IN ("
                         + ",".join(map(str, ids.values())) + ")") == "0"

    counts = waiting_counts(broker)
    print(f"waiting: stats waiting/queued, metric waiting/queued = {counts}", flush=True)
    assert counts == (4, 4, 4.0, 4.0), counts
    _, listed, _ = broker.ctl("package", "list", "--state", "queued")
    assert sorted(p["id"] for p in listed) == sorted(ids.values()), listed
    assert all(p["waiting_reason"] for p in listed), listed

    # A vendor that fits, before its agent connects: still waiting, and the
    # reason now says what is missing (a connected agent).
    de = add_vendor(broker, EU_DE)
    fits = {"region+cert": Req(regions=("EU-DE",), certs=("iso27001",)),
            "cert": Req(certs=("iso27001",)), "region": Req(regions=("EU-DE",))}
    for what, req in fits.items():
        assert allowed(req, EU_DE) and not allowed(req, US), what
        _, p, _ = broker.ctl("package", "show", ids[what])
        assert p["state"] == "queued", p
        assert "agent" in (p["waiting_reason"] or ""), (what, p["waiting_reason"])
    assert waiting_counts(broker)[0] == 4

    wait_agents(broker, [start_agent(env, broker, EU_DE, de["secret"], HANDLER).agent_name])
    for what in fits:
        p = wait_state(broker, ids[what], "completed", timeout=20)
        assert p["vendor"] == "eu-de", (what, p)
        assert p["waiting_reason"] in (None, ""), p
    # The capability nobody offers still waits, for the same reason.
    _, p, _ = broker.ctl("package", "show", ids["capability"])
    assert p["state"] == "queued" and "translate" in p["waiting_reason"], p
    wait_for(lambda: waiting_counts(broker) == (1, 1, 1.0, 1.0), 10,
             what="one package waiting")

    lingo = add_vendor(broker, TRANSLATOR)
    start_agent(env, broker, TRANSLATOR, lingo["secret"], HANDLER)
    p = wait_state(broker, ids["capability"], "completed", timeout=20)
    assert p["vendor"] == "lingo", p
    wait_for(lambda: waiting_counts(broker) == (0, 0, 0.0, 0.0), 10,
             what="nothing waiting")
    _, st, _ = broker.ctl("stats")
    assert st["completed"] == len(flowing) + len(ids), st
    print(f"waiting: all completed; stats {st}", flush=True)


if __name__ == "__main__":
    main()
