"""Order of work (DESIGN.md "Routing" 3, server/core/sched.c): higher priority
first, with aging so low priority work is never starved, and not-before times.

One vendor, one agent with two slots, a handler taking ~0.1 s, and a feeder
that keeps 6-12 priority-9 packages queued the whole time (more than the agent
can do; each waits well under a second, so none of them ages itself):

  * with `--set aging_bound=2s`, priority-0 packages start about 2 s after
    their submit (not before: priority-9 work is waiting; not much after:
    aging), while priority-9 work is still queued;
  * with `--set aging_bound=0` (aging off), the priority-0 packages do not
    start while the priority-9 stream lasts, and start once it ends, after
    every priority-9 package;
  * `--not-before` 3 s ahead: the package is not assigned before that time,
    says so as its waiting reason, and runs soon after.
"""

import calendar
import time

from harness import main, test, wait_for
from fixtures_it1 import wait_agents, wait_ids
from fixtures_it3 import (VendorSpec, Feeder, add_vendor, batch_line, db_times,
                          start_agent, submit_lines, wait_state)

HANDLER = "sleep 0.1; cat"
VENDOR = VendorSpec("solo", "EU-DE", 1.0, capacity=2, slots=2)
BOUND = 2.0
SLACK = 1.5


def fleet(env, aging_bound: str):
    broker = env.broker(extra_args=["--set", "poll_park=200ms",
                                    "--set", f"aging_bound={aging_bound}"])
    v = add_vendor(broker, VENDOR)
    wait_agents(broker, [start_agent(env, broker, VENDOR, v["secret"], HANDLER).agent_name])
    return broker


def submit_low(env, broker, tag: str, n: int) -> list:
    return submit_lines(broker, env.path(f"low-{tag}.jsonl"),
                        [batch_line(f"p0-{tag}-{i}", priority=0) for i in range(n)])


def p9_waiting_at(times: dict, p9_ids, at: float) -> int:
    """Priority-9 packages submitted before `at` and not yet assigned then."""
    n = 0
    for i in p9_ids:
        t = times[i]
        if t["submitted"] < at and (t["assigned"] is None or t["assigned"] > at):
            n += 1
    return n


@test(timeout=90)
def test_aging_bound_lifts_low_priority(env):
    broker = fleet(env, f"{BOUND:g}s")
    feeder = Feeder(env, broker, priority=9, low=6, high=12).start()
    try:
        time.sleep(1.0)  # the stream is flowing
        low = submit_low(env, broker, "a", 2)
        time.sleep(0.7)
        low += submit_low(env, broker, "b", 1)
        time.sleep(0.6)
        low += submit_low(env, broker, "c", 2)
        # Every low one starts while the stream goes on.
        wait_for(lambda: all(t["assigned"] is not None
                             for t in db_times(env.pg, low).values()),
                 BOUND + SLACK + 10, what="priority-0 packages assigned",
                 interval=0.2)
        time.sleep(0.3)
    finally:
        feeder.stop()
    print(f"aging: feeder submitted {len(feeder.ids)} priority-9 packages in "
          f"{feeder.rounds} rounds, fewest queued seen {feeder.min_seen}", flush=True)
    wait_ids(broker, low + feeder.ids, timeout=60)

    times = db_times(env.pg, low + feeder.ids)
    p9_waits = [times[i]["assigned"] - times[i]["submitted"] for i in feeder.ids]
    print(f"aging: priority-9 waits: max {max(p9_waits):.2f}s, mean "
          f"{sum(p9_waits) / len(p9_waits):.2f}s", flush=True)
    for i in low:
        t = times[i]
        waited = t["assigned"] - t["submitted"]
        started = t["started"] - t["submitted"] if t["started"] else None
        behind = p9_waiting_at(times, feeder.ids, t["assigned"])
        print(f"aging: priority-0 package {i}: assigned after {waited:.2f}s, started "
              f"after {started:.2f}s, {behind} priority-9 packages still waiting",
              flush=True)
        assert behind > 0, (f"package {i}: no priority-9 work was waiting when it "
                            "started, so this run tests nothing (feeder too slow?)")
        # Not before the bound (priority-9 work was waiting), not long after.
        assert waited >= BOUND - 0.1, f"package {i} jumped the queue after {waited:.2f}s"
        assert waited <= BOUND + SLACK, (
            f"package {i} starved for {waited:.2f}s (priority-9 packages waited up "
            f"to {max(p9_waits):.2f}s; over {BOUND:g}s they age too and go first)")
        assert started is not None and started <= BOUND + SLACK, (i, t)


@test(timeout=90)
def test_without_aging_low_priority_waits_for_the_stream(env):
    broker = fleet(env, "0")
    feeder = Feeder(env, broker, priority=9, low=6, high=12).start()
    stream_end = None
    try:
        time.sleep(1.0)
        low = submit_low(env, broker, "a", 3)
        # Well past what the 2 s bound would allow: still queued.
        time.sleep(BOUND + SLACK + 1.0)
        for i in low:
            _, p, _ = broker.ctl("package", "show", i)
            assert p["state"] == "queued" and p["attempts"] == [], p
    finally:
        feeder.stop()
        stream_end = time.monotonic()
    wait_ids(broker, low + feeder.ids, timeout=60)
    done_after = time.monotonic() - stream_end
    times = db_times(env.pg, low + feeder.ids)
    last_p9 = max(times[i]["assigned"] for i in feeder.ids)
    first_p0 = min(times[i]["assigned"] for i in low)
    waited = [times[i]["assigned"] - times[i]["submitted"] for i in low]
    print(f"aging off: {len(feeder.ids)} priority-9 packages; priority-0 packages "
          f"waited {', '.join(f'{w:.2f}s' for w in waited)}; first one assigned "
          f"{first_p0 - last_p9:+.3f}s after the last priority-9 one; all done "
          f"{done_after:.2f}s after the stream stopped", flush=True)
    assert first_p0 >= last_p9, "a priority-0 package went before priority-9 work"
    assert min(waited) > BOUND + SLACK, waited


@test(timeout=60)
def test_not_before_is_respected(env):
    broker = fleet(env, "5m")
    # RFC 3339 in a batch line, a duration on the command line; and one
    # package without a not-before time that runs at once.
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 4))
    [later] = submit_lines(broker, env.path("nb.jsonl"),
                           [batch_line("at-rfc3339", not_before=at)])
    _, out, _ = broker.ctl("submit", "--capability", "work", "--payload", "in-3s",
                           "--not-before", "3s")
    soon = int(out["id"])
    _, out, _ = broker.ctl("submit", "--capability", "work", "--payload", "now")
    now_id = int(out["id"])
    wait_state(broker, now_id, "completed", timeout=10)
    # The not-before times as stored while the packages wait (the broker
    # reuses not_before_at as the retry time when an attempt ends, so it is
    # read now, not after the run).
    queued_times = db_times(env.pg, [soon, later])
    for pid in (soon, later):
        _, p, _ = broker.ctl("package", "show", pid)
        assert p["state"] == "queued" and p["attempts"] == [], p
        assert p["not_before"] and (p["waiting_reason"] or "").startswith("not before"), p
        assert queued_times[pid]["not_before"] is not None, queued_times
    wait_ids(broker, [soon, later], timeout=20)
    times = db_times(env.pg, [soon, later, now_id])
    for pid, ahead in ((soon, 3.0), (later, None)):
        t, nb = times[pid], queued_times[pid]["not_before"]
        print(f"not-before: package {pid}: not before {nb - t['submitted']:+.3f}s "
              f"from submit, assigned {t['assigned'] - nb:+.3f}s after that",
              flush=True)
        assert t["assigned"] >= nb, (pid, t, nb)
        assert t["assigned"] - nb <= 1.0, (pid, t, nb)
        if ahead is not None:
            assert abs(nb - t["submitted"] - ahead) < 0.5, (pid, t, nb)
    want = calendar.timegm(time.strptime(at, "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(queued_times[later]["not_before"] - want) < 0.001, (queued_times, at)
    assert times[now_id]["assigned"] - times[now_id]["submitted"] < 1.0, times[now_id]


if __name__ == "__main__":
    main()
