"""End to end on a real PostgreSQL: two vendors with two agents each run the
shell handler `tr a-z A-Z` on 2,000 packages submitted through batonctl
(batch files and single submits); every package completes once, with the
right result, and what batonctl reports agrees with the database."""

import base64
import random
import time

from harness import main, test
from fixtures_it1 import (CAPABILITY, batch_line, check_all_completed,
                          check_package_show, count_states, start_fleet,
                          submit_batch, submit_one, wait_all, wait_ids,
                          write_batch)

TOTAL = 2000
SINGLES = 20
BATCHES = (600, 600, 500, 280)  # + SINGLES = TOTAL


def payload_for(i: int, rng: random.Random) -> str:
    """Distinct ASCII payloads of varied shape: mixed case, spaces,
    punctuation, the odd newline and a few longer ones."""
    word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 12)))
    kind = i % 7
    if kind == 0:
        return f"pkg {i} {word}"
    if kind == 1:
        return f"Mixed-Case #{i}: {word.capitalize()}, ok?"
    if kind == 2:
        return f"line one {i}\nline two {word}\n"
    if kind == 3:
        return f"{word}-{i}-" + "x" * rng.randint(100, 2000)
    return f"e2e-{i:05d}-{word}"


@test(timeout=120)
def test_e2e_2000_packages_two_vendors(env):
    assert sum(BATCHES) + SINGLES == TOTAL
    rng = random.Random(20240601)
    broker = env.broker(extra_args=["--set", "poll_park=200ms"])
    fleet = start_fleet(env, broker, vendors=(("acme", "EU-DE", (2, 3)),
                                              ("globex", "IN", (4, 2))))
    agent_names = sorted(a.agent_name for a in fleet["agents"])

    payloads = {}  # id -> payload, everything batonctl acknowledged
    t0 = time.monotonic()
    n = 0
    batch_ids = []
    for k, size in enumerate(BATCHES):
        lines = []
        for _ in range(size):
            p = payload_for(n, rng)
            # payload_b64 on some lines: both spellings of CONTRACT.md.
            lines.append(batch_line(p, b64=(n % 5 == 0)))
            n += 1
        path = write_batch(env.path(f"batch-{k}.jsonl"), lines)
        ids = submit_batch(broker, path, size)
        for line, pid in zip(lines, ids):
            payloads[pid] = (line["payload"] if "payload" in line
                             else base64.b64decode(line["payload_b64"]).decode())
        batch_ids += ids
        # Singles in between, while the agents are busy with the batches.
        for j in range(SINGLES // len(BATCHES)):
            p = payload_for(n, rng)
            n += 1
            pid = submit_one(broker, p, as_json=(j % 2 == 0))
            payloads[pid] = p
    submit_s = time.monotonic() - t0
    assert n == TOTAL and len(payloads) == TOTAL, "ids must be distinct"

    in_batches = set(batch_ids)
    singles = [i for i in payloads if i not in in_batches]
    assert len(singles) == SINGLES
    wait_ids(broker, singles, timeout=100)
    wait_ids(broker, batch_ids, timeout=100)
    w = wait_all(broker, timeout=60)
    took = time.monotonic() - t0
    assert w["completed"] >= TOTAL and w["dead"] == 0 and w["cancelled"] == 0, w
    print(f"e2e: {TOTAL} packages submitted in {submit_s:.2f}s, all completed in "
          f"{took:.2f}s: {TOTAL / took:.0f} packages/s through "
          f"{len(agent_names)} agents", flush=True)

    # The database is the truth: every row completed exactly once, right.
    pkgs = check_all_completed(env.pg, expected_payloads=payloads,
                               exact_ids=payloads)
    assert len(pkgs) == TOTAL
    assert count_states(env.pg) == {"completed": TOTAL}
    # No fault here, so no attempt other than the completed one.
    rows = env.pg.psql("SELECT package_id, count(*) FROM attempts "
                       "GROUP BY package_id HAVING count(*) <> 1")
    assert rows == [], f"packages with more than one attempt: {rows[:10]}"
    assert env.pg.scalar("SELECT count(*) FROM attempts") == str(TOTAL)
    assert env.pg.scalar("SELECT count(*) FROM handoffs") == "0"
    nulls = env.pg.psql("SELECT package_id FROM attempts WHERE ended_at IS NULL "
                        "OR assigned_at IS NULL OR started_at IS NULL LIMIT 5")
    assert nulls == [], f"completed attempts without times: {nulls}"

    # Who did the work: both vendors, and every agent.
    by_vendor, by_agent = {}, {}
    for p in pkgs.values():
        by_vendor[p[4]] = by_vendor.get(p[4], 0) + 1
        by_agent[p[5]] = by_agent.get(p[5], 0) + 1
    print(f"e2e: work by vendor {by_vendor}, by agent {by_agent}", flush=True)
    assert set(by_vendor) == {"acme", "globex"}, by_vendor
    assert sorted(by_agent) == agent_names, by_agent

    # batonctl agrees with the database.
    _, stats, _ = broker.ctl("stats")
    for k, v in (("queued", 0), ("assigned", 0), ("running", 0),
                 ("completed", TOTAL), ("dead", 0), ("cancelled", 0), ("agents", 4)):
        assert stats[k] == v, (k, stats)
    assert stats["vendors"].get("active") == 2, stats
    _, vendors, _ = broker.ctl("vendor", "list")
    got = {v["name"]: v["completed"] for v in vendors}
    assert got == by_vendor, (got, by_vendor)
    assert all(v["in_flight"] == 0 and v["state"] == "active" for v in vendors), vendors
    _, listed, _ = broker.ctl("package", "list", "--state", "completed",
                              "--capability", CAPABILITY, "--limit", 50)
    assert len(listed) == 50 and all(p["state"] == "completed" for p in listed), listed[:3]
    for state in ("queued", "assigned", "running", "dead", "cancelled"):
        _, listed, _ = broker.ctl("package", "list", "--state", state)
        assert listed == [], (state, listed[:3])

    # A sample through `package show` and `result`.
    sample = rng.sample(sorted(payloads), 25) + singles[:3]
    for pid in sample:
        check_package_show(broker, pid, payloads[pid], pkgs[pid])


if __name__ == "__main__":
    main()
