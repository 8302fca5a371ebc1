"""Limits and connection floods at the broker's edges, with real processes.
(test_bad_input.py already sends garbage, truncated, empty and oversized
messages to both edges and floods the agent endpoint once; this adds what it
does not cover.)

  * limits, each with a clear error: payload size (submit), packages in one
    batch, list lengths and name lengths (control), agents per vendor (agent
    endpoint: refused, audited, the agent told why), and a handler result
    bigger than the payload limit — the agent reports a failed attempt with
    "result too large" instead of a message the broker would refuse;
  * 1,000 connections opened and dropped on the control socket and 1,000 on
    the agent endpoint, three rounds each while packages keep being submitted
    (a submit may be told "too many control connections; try again later"
    while a flood holds the connection limit — refused, never acknowledged):
    the broker's RSS (/proc/PID/status) stays bounded (the third round adds
    little over the first), nothing acknowledged is lost (every package
    submitted before, during and after completes), and a package submitted
    afterwards completes.
"""

import json
import os
import socket
import struct
import time

from harness import main, test, wait_for
from fixtures_it2 import (Submitter, all_completed, nnflood, stats_fast,
                          vendor_with_agent)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def ctl_fail(broker, *args, **kw):
    """Runs batonctl expecting a refusal; returns (rc, stderr)."""
    rc, _, err = broker.ctl(*args, json=False, check=False, **kw)
    assert rc != 0, f"batonctl {' '.join(map(str, args))} succeeded"
    return rc, err.strip()


@test(timeout=60)
def test_limits_have_clear_errors(env):
    # Each oversized result below fails the vendor's probe and opens its
    # circuit breaker; a short cooldown lets the next agent get work without
    # waiting out the default one (twice that after a failed probe).
    broker = env.broker(extra_args=["--set", "max_payload_bytes=64k", "--set", "max_batch=5",
                                    "--set", "max_agents_per_vendor=1",
                                    "--set", "breaker_cooldown=1s"])
    v, agent = vendor_with_agent(env, broker, vendor="acme", capability="upper",
                                 slots=2, handler="tr a-z A-Z")

    # Payload over max_payload_bytes.
    big = env.path("big.bin")
    with open(big, "wb") as f:
        f.write(b"p" * (70 * 1024))
    rc, err = ctl_fail(broker, "submit", "--capability", "upper", "--payload-file", big)
    assert rc == 1 and "payload of 71680 bytes exceeds the limit of 65536" in err, err

    # Packages in one batch over max_batch.
    batch = env.path("batch.jsonl")
    with open(batch, "w") as f:
        for i in range(6):
            f.write(json.dumps({"capability": "upper", "payload": f"b{i}"}) + "\n")
    rc, err = ctl_fail(broker, "submit", "--batch", batch)
    assert rc == 1 and "at most 5 packages, got 6" in err, err

    # Lists and names.
    regions = ",".join(f"R{i}" for i in range(33))
    rc, err = ctl_fail(broker, "submit", "--capability", "upper", "--region", regions)
    assert rc in (1, 2) and "at most 32" in err, err
    rc, err = ctl_fail(broker, "vendor", "add", "v" * 129, "--region", "EU",
                       "--capability", "upper")
    assert rc in (1, 2) and "name" in err, err
    rc, err = ctl_fail(broker, "submit", "--capability", "up per")
    assert rc in (1, 2) and "capability" in err, err
    assert int(env.pg.scalar("SELECT count(*) FROM work_packages")) == 0

    # A second agent of the same vendor: refused with the reason, audited; it
    # keeps retrying (the limit may lift) and the first agent keeps working.
    second = env.agent(vendor="acme", secret=v["secret"], broker=broker, name="acme-a2",
                       handlers={"upper": "tr a-z A-Z"})
    second.wait_for_log(r"code=limit message=\"too many agents connected for this vendor\"")
    rows = wait_for(lambda: env.pg.psql(
        "SELECT subject, detail FROM audit_events WHERE action = 'agent.auth_failed'"),
        10, "audit row for the refused agent")
    assert ("agent:acme/acme-a2", "agents per vendor limit") in rows, rows
    second.check_running()
    names = [a["name"] for a in broker.ctl("agent", "list")[1] if a["state"] == "connected"]
    assert names == [agent.agent_name], names
    second.stop()

    # A handler result over the payload limit: the agent cuts it at its
    # --max-result-bytes (set like the broker's limit) and reports the attempt
    # failed, rather than a result the broker refuses as a whole message.
    agent.stop()
    oversized_result(env, broker, v, "acme-big", 65536,
                     "result too large (over 65536 bytes)")
    # An agent whose cap is above the broker's limit (or a libbaton-agent user
    # with none) sends the whole result: the broker fails that attempt with
    # the reason instead of refusing the message, which would be resent for ever.
    oversized_result(env, broker, v, "acme-loose", 524288,
                     "result of 100000 bytes exceeds the limit of 65536 bytes")
    broker.check_running()
    stats_fast(broker)


def oversized_result(env, broker, v, name: str, cap: int, error: str) -> None:
    """Once no agent is connected, starts agent `name` of vendor v with
    --max-result-bytes cap and a handler printing 100,000 bytes; a package with
    one attempt must end dead with that attempt failed for `error`."""
    wait_for(lambda: all(a["state"] != "connected" for a in broker.ctl("agent", "list")[1]),
             20, "agents gone")
    agent = env.agent(vendor="acme", secret=v["secret"], broker=broker, name=name,
                      handlers={"upper": "head -c 100000 /dev/zero | tr '\\0' a"},
                      extra_args=["--max-result-bytes", str(cap)])
    _, p, _ = broker.ctl("submit", "--capability", "upper", "--payload", "x",
                         "--max-attempts", "1")
    wait_for(lambda: broker.ctl("package", "show", p["id"])[1]["state"] == "dead", 30,
             f"the oversized result of {name} ends the package")
    row = env.pg.psql(f"SELECT outcome, error FROM attempts WHERE package_id = {p['id']}")
    assert row == [("failed", error)], row
    agent.check_running()
    agent.stop()


def ctl_flood(path: str, n: int, batch: int = 100) -> dict:
    """Opens n connections to the control socket, batch at a time, some sending
    a partial frame or a few garbage bytes, and drops them all. Returns counts."""
    opened = refused = 0
    for start in range(0, n, batch):
        socks = []
        for i in range(start, min(n, start + batch)):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                # Blocking: a full listen backlog makes a non-blocking connect
                # fail with EAGAIN, which is the kernel pushing back, not the
                # broker refusing.
                s.connect(path)
                s.settimeout(5)
                opened += 1
                if i % 3 == 1:
                    s.sendall(struct.pack(">I", 40) + b"\x08")  # half a frame
                elif i % 3 == 2:
                    s.sendall(os.urandom(7))
            except OSError:
                refused += 1
            socks.append(s)
        for s in socks:
            s.close()
    return {"opened": opened, "refused": refused}


def serves_again(broker):
    """Right after a flood the dropped connections may still count against the
    control connection limit ("try again later"); the broker must answer
    `batonctl stats` within a few seconds, and then within 2 s as usual."""
    wait_for(lambda: broker.ctl("stats", check=False, timeout=5)[0] == 0, 10,
             "the broker to answer stats after the flood")
    broker.check_running()
    stats_fast(broker)


@test(timeout=100)
def test_connection_floods_bounded(env):
    # Under AddressSanitizer freed memory sits in a quarantine (256 MiB by
    # default), which reads as growth; a small one keeps RSS meaningful. Other
    # builds ignore the variable.
    asan = ":".join(x for x in (os.environ.get("ASAN_OPTIONS", ""),
                                "quarantine_size_mb=1:thread_local_quarantine_size_kb=64") if x)
    broker = env.broker(extra_env={"ASAN_OPTIONS": asan})
    _, agent = vendor_with_agent(env, broker, vendor="acme", capability="upper",
                                 slots=2, handler="tr a-z A-Z")
    before = [int(broker.ctl("submit", "--capability", "upper", "--payload",
                             f"before-{i}")[1]["id"]) for i in range(10)]
    all_completed(broker, before, timeout=30)
    rss = {"start": rss_kb(broker.pid)}
    sub = Submitter(broker, capability="upper", interval=0.2).start()
    try:
        for rnd in range(1, 4):
            c = ctl_flood(broker.control, 1000)
            assert c["opened"] == 1000, c
            serves_again(broker)
            fl = nnflood(broker.agents_endpoint, 1000, parallel=100, timeout_ms=5000)
            assert fl["opened"] == 1000 and fl["established"] >= 990, fl
            serves_again(broker)
            time.sleep(1.0)  # let the broker reap what the flood left
            rss[rnd] = rss_kb(broker.pid)
            print(f"round {rnd}: control {c}, agents {fl}, rss {rss[rnd]} kB")
    finally:
        during = sub.stop()
    # While a flood holds every control connection the broker may answer
    # "try again later" (its connection limit): a clear refusal of a submit
    # that was never acknowledged. Anything else is a failure.
    other = [f for f in sub.failures if "too many control connections" not in f]
    assert not other, f"submits failed during the floods: {other[:5]}"
    assert len(during) >= 5, during
    # Bounded: the first round may grow pools and caches; later rounds reuse
    # them. Generous figures: a leak of one connection's state per flood
    # (2,000 connections a round) would show as several MiB.
    growth_later = rss[3] - rss[1]
    print(f"rss kB: {rss}")
    assert growth_later < 8 * 1024, f"RSS kept growing across floods: {rss}"
    assert rss[3] - rss["start"] < 64 * 1024, f"RSS grew too much: {rss}"

    # Serving normally: a new package completes, and nothing acknowledged is lost.
    _, p, _ = broker.ctl("submit", "--capability", "upper", "--payload", "after")
    all_completed(broker, before + during + [int(p["id"])], timeout=40)
    assert broker.ctl("result", p["id"], json=False)[1] == "AFTER"
    agent.check_running()
    assert [a["name"] for a in broker.ctl("agent", "list")[1]
            if a["state"] == "connected"] == [agent.agent_name]
    broker.check_running()


if __name__ == "__main__":
    main()
