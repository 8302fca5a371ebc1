"""batonctl against a real broker, checked against CONTRACT.md ("batonctl"):
every command of this issue with --json and the fields the contract names,
exactly one JSON document on stdout, and the exit codes — 0 ok, 1 rejected or
not found, 2 usage error (usage on stderr), 3 broker unreachable.

Also: a package nobody can take (capability nobody offers, region nobody has)
stays queued with a waiting reason naming what is missing and counts as
waiting in stats; --deadline and --not-before show up in package show and a
not-before package does not start before its time; a handoff (an agent hung
past its lease) appears in package show with the contract's fields.

test_cli_continuity: the admin's continuity commands on their own broker —
vendor drain|suspend|resume|fail ({id, state}), package cancel|retry|reassign
({id, state}), handoffs (an array of {package, from_vendor, to_vendor, reason,
at, attempt, checkpoint_bytes}), the vendor fields state_reason, limit and
probing, and their error exits (1 unknown vendor or package, 2 usage).

The per-test timeouts below add up to less than the CTest TIMEOUT (180 s,
it2.cmake); each test takes a fraction of its own on a 2-core machine.
"""

import base64
import datetime as dt
import json
import os
import re
import socket
import subprocess
import time

from harness import binary, main, test, wait_for

from fixtures_cli import (AGENT_FIELDS, HANDOFF_FIELDS, HANDOFF_LIST_FIELDS,
                          HANDOFF_REASONS, PACKAGE_STATES, STATS_FIELDS, VENDOR_STATES,
                          WAIT_FIELDS, check_package, check_vendor, fails, has, now_utc,
                          ok, parse_time, run, show, start_agent, wait_state)


# ---- the tests ---------------------------------------------------------------------------

@test(timeout=85)
def test_cli_contract(env):
    broker = env.broker()
    B = broker

    # -- vendor add: {id, name, secret}; duplicates are rejected (1).
    acme = ok(B, "vendor", "add", "acme", "--region", "EU-DE", "--model", "nearshore",
              "--capability", "upper", "--capability", "fail", "--cert", "iso27001",
              "--capacity", "5", "--cost", "2.5")
    has(acme, ["id", "name", "secret"], "vendor add")
    assert acme["name"] == "acme" and isinstance(acme["id"], int), acme
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", acme["secret"]), acme
    beta = ok(B, "vendor", "add", "beta", "--region", "US", "--capability", "lower,slow")
    gamma = ok(B, "vendor", "add", "gamma", "--region", "IN", "--capability", "slow")
    assert len({acme["id"], beta["id"], gamma["id"]}) == 3
    assert len({acme["secret"], beta["secret"], gamma["secret"]}) == 3
    fails(B, 1, "vendor", "add", "acme", "--region", "US", "--capability", "upper",
          stderr_rx=r"acme.*already exists")
    fails(B, 2, "vendor", "add", "delta", "--region", "US", "--capability", "x",
          "--model", "martian")

    # -- vendor list / vendor show by id and by name.
    vl = ok(B, "vendor", "list")
    assert isinstance(vl, list) and [v["name"] for v in vl] == ["acme", "beta", "gamma"], vl
    for v in vl:
        check_vendor(v, "vendor list")
    va = next(v for v in vl if v["name"] == "acme")
    assert (va["region"], va["model"], va["capabilities"], va["certs"], va["capacity"],
            va["cost"]) == ("EU-DE", "nearshore", ["upper", "fail"], ["iso27001"], 5, 2.5), va
    by_name = ok(B, "vendor", "show", "beta")
    by_id = ok(B, "vendor", "show", beta["id"])
    check_vendor(by_name, "vendor show NAME")
    assert by_name == by_id, (by_name, by_id)
    assert by_name["id"] == beta["id"] and by_name["capabilities"] == ["lower", "slow"]
    fails(B, 1, "vendor", "show", "nosuchvendor", stderr_rx=r"nosuchvendor")
    fails(B, 1, "vendor", "show", "999999")

    # -- agents: acme (upper, fail), beta (lower only, for now), gamma (a slow
    # handler that never finishes in time: the package it gets is handed off).
    start_agent(env, B, "acme", acme["secret"], "acme-1",
                {"upper": "tr a-z A-Z", "fail": "echo broken >&2; exit 3"}, slots=2)
    start_agent(env, B, "beta", beta["secret"], "beta-1", {"lower": "tr A-Z a-z"})
    g1 = start_agent(env, B, "gamma", gamma["secret"], "gamma-1", {"slow": "sleep 60"})
    al = ok(B, "agent", "list")
    assert sorted(a["name"] for a in al) == ["acme-1", "beta-1", "gamma-1"], al
    for a in al:
        has(a, AGENT_FIELDS, "agent list")
        assert a["state"] == "connected" and isinstance(a["last_seen_ms"], int), a
        assert 0 <= a["last_seen_ms"] < 3000 and 0 <= a["busy"] <= a["slots"], a
    a1 = next(a for a in al if a["name"] == "acme-1")
    assert (a1["vendor"], a1["slots"], sorted(a1["capabilities"])) == \
        ("acme", 2, ["fail", "upper"]), a1
    assert ok(B, "vendor", "show", "acme")["agents"] == 1

    # -- submit: {id, state}; the same --key twice gives the first package.
    s1 = ok(B, "submit", "--capability", "upper", "--payload", "hello world")
    has(s1, ["id", "state"], "submit")
    assert isinstance(s1["id"], int) and s1["state"] in PACKAGE_STATES, s1
    k1 = ok(B, "submit", "--capability", "lower", "--payload", "KEYED", "--key", "order-17")
    k2 = ok(B, "submit", "--capability", "lower", "--payload", "KEYED", "--key", "order-17")
    assert k1["id"] == k2["id"] and k1["id"] != s1["id"], (k1, k2)

    # -- submit --batch: ids in file order (blank lines skipped).
    batch = env.path("batch.jsonl")
    lines = [{"capability": "upper", "payload": "a"},
             {"capability": "lower", "payload_b64": base64.b64encode(b"BB").decode()},
             {"capability": "upper", "payload": "ccc", "priority": 7, "region": ["EU-DE"]},
             {"capability": "lower", "payload": "DDDD", "max_attempts": 2}]
    with open(batch, "w") as f:
        f.write(json.dumps(lines[0]) + "\n\n" + "\n".join(json.dumps(x) for x in lines[1:]) + "\n")
    sb = ok(B, "submit", "--batch", batch)
    has(sb, ["ids"], "submit --batch")
    ids = sb["ids"]
    assert len(ids) == 4 and len(set(ids)) == 4, sb
    for pid, line in zip(ids, lines):
        p = show(B, pid)
        raw = base64.b64decode(line["payload_b64"]) if "payload_b64" in line \
            else line["payload"].encode()
        assert (p["capability"], p.get("payload_bytes")) == (line["capability"], len(raw)), \
            (pid, line, p)
    assert show(B, ids[2])["priority"] == 7

    # A batch with one bad line: "line N", exit 1, and nothing submitted.
    total_before = len(ok(B, "package", "list", "--limit", "10000"))
    bad = env.path("bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"capability": "upper", "payload": "x1"}\n'
                '{"capability": "upper", "payload": "x2"}\n'
                '{"capability": "upper", "priority": 12}\n'
                '{"capability": "upper", "payload": "x4"}\n')
    fails(B, 1, "submit", "--batch", bad, stderr_rx=r"line 3")
    with open(bad, "w") as f:
        f.write('{"capability": "upper", "payload": "y1"}\n{"capability": \n')
    fails(B, 1, "submit", "--batch", bad, stderr_rx=r"line 2")
    time.sleep(0.3)
    assert len(ok(B, "package", "list", "--limit", "10000")) == total_before

    # -- wait: completed; the results.
    done_ids = [s1["id"], k1["id"]] + ids
    w = ok(B, "wait", *done_ids, "--timeout", "30s")
    has(w, WAIT_FIELDS, "wait")
    assert (w["completed"], w["dead"], w["cancelled"], w["pending"]) == (6, 0, 0, 0), w

    # -- result: raw bytes; --out FILE; --json {id, result_b64}.
    o = run(B.control, "result", s1["id"], json_out=False)
    assert o.rc == 0 and o.out == "HELLO WORLD", o
    out_file = env.path("result.bin")
    r = ok(B, "result", ids[1], "--out", out_file)
    with open(out_file, "rb") as f:
        assert f.read() == b"bb"
    has(r, ["id", "result_b64"], "result --json")
    assert r["id"] == ids[1] and base64.b64decode(r["result_b64"]) == b"bb", r
    assert base64.b64decode(ok(B, "result", ids[2])["result_b64"]) == b"CCC"

    # -- package show of a completed package: history with the contract's fields.
    p = show(B, s1["id"])
    assert (p["state"], p["vendor"], p["agent"], p["attempt"], p["result_bytes"]) == \
        ("completed", "acme", "acme-1", 1, 11), p
    assert len(p["attempts"]) == 1 and p["handoffs"] == [], p
    a = p["attempts"][0]
    assert (a["attempt"], a["vendor"], a["agent"], a["outcome"]) == \
        (1, "acme", "acme-1", "completed"), a
    assert parse_time(a["started"]) <= parse_time(a["ended"]), a
    fails(B, 1, "package", "show", "999999", stderr_rx=r"not found|no such")

    # -- dead: a handler that fails, one attempt allowed.
    dead = ok(B, "submit", "--capability", "fail", "--payload", "x", "--max-attempts", "1")
    w = ok(B, "wait", dead["id"], "--timeout", "30s")
    assert (w["dead"], w["pending"], w["completed"]) == (1, 0, 0), w
    p = show(B, dead["id"])
    assert p["state"] == "dead" and p["attempts"][0]["outcome"] == "failed", p
    fails(B, 1, "result", dead["id"], stderr_rx=r"not completed|dead")

    # -- packages nobody can take stay queued, with a reason naming what is missing.
    nocap = ok(B, "submit", "--capability", "teleport", "--payload", "x")
    noreg = ok(B, "submit", "--capability", "upper", "--payload", "x", "--region", "AQ")
    time.sleep(1.5)  # several scheduling rounds
    for pid, word in ((nocap["id"], "teleport"), (noreg["id"], "AQ")):
        p = show(B, pid)
        assert p["state"] == "queued" and p["attempts"] == [], p
        assert p["waiting_reason"] and word in p["waiting_reason"], p
    st = ok(B, "stats")
    has(st, STATS_FIELDS, "stats")
    assert st["queued"] >= 2 and st.get("waiting", 0) >= 2, st
    assert isinstance(st["vendors"], dict) and set(st["vendors"]) >= VENDOR_STATES, st
    assert sum(st["vendors"].values()) == 3 and st["agents"] == 3, st
    assert st["completed"] >= 6 and st["dead"] >= 1 and st["cancelled"] == 0, st
    # result of a queued package: rejected; wait on it: pending after its timeout.
    fails(B, 1, "result", nocap["id"], stderr_rx=r"queued|not completed")
    o = fails(B, 1, "wait", nocap["id"], "--timeout", "1s", stderr_rx=r"timed out")
    assert o.doc is not None and o.doc["pending"] == 1, o
    o = fails(B, 1, "wait", s1["id"], 999999, stderr_rx=r"do not exist")

    # -- package list and its filters.
    pl = ok(B, "package", "list")
    assert isinstance(pl, list) and len(pl) == 9, pl
    for x in pl:
        check_package(x, "package list", history=False)
    assert {x["id"] for x in pl} >= set(done_ids + [dead["id"], nocap["id"]])
    for args, cond in [
            (("--state", "completed"), lambda x: x["state"] == "completed"),
            (("--state", "queued"), lambda x: x["state"] == "queued"),
            (("--vendor", "beta"), lambda x: x["vendor"] == "beta"),
            (("--capability", "lower"), lambda x: x["capability"] == "lower"),
            (("--state", "completed", "--vendor", "acme", "--capability", "upper"),
             lambda x: (x["state"], x["vendor"], x["capability"]) ==
             ("completed", "acme", "upper"))]:
        got = ok(B, "package", "list", *args)
        assert got and all(cond(x) for x in got), (args, got)
        expect = [x["id"] for x in pl if cond(x)]
        assert sorted(x["id"] for x in got) == sorted(expect), (args, got, expect)
    assert len(ok(B, "package", "list", "--limit", "2")) == 2
    assert len(ok(B, "package", "list", "--state", "queued", "--limit", "1")) == 1
    fails(B, 1, "package", "list", "--vendor", "nosuchvendor")

    # -- --deadline 2h and --not-before (a time 4-5 s ahead) in package show;
    # the not-before package does not start before its time.
    nb_at = (now_utc() + dt.timedelta(seconds=5)).replace(microsecond=0)
    nb_text = nb_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    t_sub = now_utc()
    dl = ok(B, "submit", "--capability", "upper", "--payload", "soon", "--deadline", "2h",
            "--not-before", nb_text)
    p = show(B, dl["id"])
    off = parse_time(p["deadline"]) - (t_sub + dt.timedelta(hours=2))
    assert abs(off.total_seconds()) < 60, p
    assert parse_time(p["not_before"]) == nb_at, (p, nb_text)
    while now_utc() < nb_at - dt.timedelta(milliseconds=300):
        p = show(B, dl["id"])
        assert p["state"] == "queued" and p["attempts"] == [], \
            f"started before its not-before time {nb_text}: {p}"
        time.sleep(0.2)
    p = wait_state(B, dl["id"], "completed", timeout=20)
    assert parse_time(p["attempts"][0]["started"]) >= nb_at, p

    # -- a handoff: gamma's only agent hangs (SIGSTOP) past its lease while it
    # runs a package; a second beta agent that offers "slow" takes over.
    slow = ok(B, "submit", "--capability", "slow", "--payload", "slowly")
    wait_for(lambda: show(B, slow["id"])["agent"] == "gamma-1", timeout=20,
             what="the slow package on gamma-1")
    g1.sigstop()
    wait_for(lambda: show(B, slow["id"])["handoffs"], timeout=20,
             what="a handoff away from the hung agent")
    g1.kill9()
    start_agent(env, B, "beta", beta["secret"], "beta-2", {"slow": "cat"})
    p = wait_state(B, slow["id"], "completed", timeout=20)
    h = p["handoffs"][0]
    has(h, HANDOFF_FIELDS, "handoff")
    assert h["from_vendor"] == "gamma" and h["reason"] in HANDOFF_REASONS, h
    assert h["to_vendor"] in (None, "beta"), h
    assert isinstance(h["checkpoint_bytes"], int) and parse_time(h["at"]), h
    assert [x["agent"] for x in p["attempts"]] == ["gamma-1", "beta-2"], p["attempts"]
    assert (p["vendor"], p["attempt"]) == ("beta", 2), p
    assert ok(B, "result", slow["id"])["result_b64"] == base64.b64encode(b"slowly").decode()

    # -- usage errors: exit 2 with usage on stderr, against a live broker.
    for args in [("--bogus", "stats"),
                 ("vendor", "show"),
                 ("frobnicate",),
                 ("vendor", "frobnicate"),
                 ("submit", "--capability", "upper", "--priority", "12"),
                 ("submit", "--capability", "upper", "--deadline", "5x"),
                 ("submit", "--capability", "upper", "--not-before", "soonish"),
                 ("submit", "--payload", "no capability"),
                 ("submit", "--capability"),
                 ("package", "show", "abc"),
                 ("package", "list", "--state", "sleeping"),
                 ("package", "list", "--limit", "many"),
                 ("wait",),
                 ("wait", "1", "--timeout", "forever"),
                 ("result",),
                 ("vendor", "add", "delta", "--region", "US", "--capability", "x",
                  "--capacity", "lots")]:
        fails(B, 2, *args)
    # Nothing of that reached the broker as a package or a vendor.
    assert len(ok(B, "vendor", "list")) == 3
    B.check_running()


def check_handoff_row(h, what):
    has(h, HANDOFF_LIST_FIELDS, what)
    assert isinstance(h["package"], int) and h["package"] > 0, h
    assert isinstance(h["attempt"], int) and h["attempt"] >= 1, h
    assert h["reason"] in HANDOFF_REASONS, h
    assert isinstance(h["checkpoint_bytes"], int) and h["checkpoint_bytes"] >= 0, h
    assert h["to_vendor"] is None or isinstance(h["to_vendor"], str), h
    parse_time(h["at"])


@test(timeout=60)
def test_cli_continuity(env):
    broker = env.broker()
    B = broker
    acme = ok(B, "vendor", "add", "acme", "--region", "EU-DE", "--capability", "slow,upper",
              "--capacity", "4")
    beta = ok(B, "vendor", "add", "beta", "--region", "EU-DE", "--capability", "slow,upper",
              "--capacity", "3")

    # -- vendor list/show carry state_reason, limit and probing.
    for v in ok(B, "vendor", "list"):
        check_vendor(v, "vendor list")
        has(v, ["state_reason", "limit", "probing"], "vendor list")
        assert v["state"] == "active" and v["state_reason"] is None, v
        assert v["limit"] == v["capacity"] and v["probing"] is False, v

    # -- errors: unknown vendor or package → 1; missing or bad arguments → 2.
    for op in ("drain", "suspend", "resume", "fail"):
        fails(B, 1, "vendor", op, "nosuchvendor", stderr_rx=r"no vendor nosuchvendor")
        fails(B, 2, "vendor", op)
    fails(B, 1, "vendor", "fail", "999999", stderr_rx=r"999999")
    for op in ("cancel", "retry", "reassign"):
        fails(B, 1, "package", op, "999999")
        fails(B, 2, "package", op)
        fails(B, 2, "package", op, "abc")
    q = ok(B, "submit", "--capability", "upper", "--payload", "pinned")
    fails(B, 1, "package", "reassign", q["id"], "--to", "nosuchvendor",
          stderr_rx=r"no vendor nosuchvendor")
    fails(B, 1, "handoffs", "--vendor", "nosuchvendor", stderr_rx=r"no vendor nosuchvendor")
    for args in [("vendor", "drain", "acme", "beta"),
                 ("vendor", "resume", "ac me"),
                 ("package", "cancel", q["id"], "--to", "beta"),
                 ("package", "reassign", q["id"], "--to"),
                 ("handoffs", "--package", "seven"),
                 ("handoffs", "--since", "whenever"),
                 ("handoffs", "extra")]:
        fails(B, 2, *args)

    # -- vendor drain / resume / suspend / fail: {id, state}, and vendor show agrees.
    for name, op, state in [("acme", "drain", "draining"), ("acme", "resume", "active"),
                            ("beta", "suspend", "suspended"), ("beta", "resume", "active"),
                            ("beta", "fail", "failed")]:
        ref = name if op != "resume" else {"acme": acme, "beta": beta}[name]["id"]
        r = ok(B, "vendor", op, ref)
        has(r, ["id", "state"], f"vendor {op}")
        assert r["id"] == {"acme": acme, "beta": beta}[name]["id"] and r["state"] == state, r
        v = ok(B, "vendor", "show", name)
        assert v["state"] == state, (op, v)
        if state == "active":
            assert v["state_reason"] is None and v["limit"] == v["capacity"], v
            assert v["probing"] is False, v
        else:
            assert isinstance(v["state_reason"], str) and v["state_reason"], (op, v)
    assert ok(B, "stats")["vendors"]["failed"] == 1
    o = run(B.control, "vendor", "resume", "beta", json_out=False)
    assert o.rc == 0 and o.out == "vendor beta: active\n", o

    # -- package cancel of a queued package → cancelled; cancelling it again is
    # refused; retry queues it again; reassign pins it (and keeps it queued).
    r = ok(B, "package", "cancel", q["id"])
    assert r == {"id": q["id"], "state": "cancelled"}, r
    assert show(B, q["id"])["state"] == "cancelled"
    fails(B, 1, "package", "cancel", q["id"])
    w = ok(B, "wait", q["id"], "--timeout", "5s")
    assert (w["cancelled"], w["pending"]) == (1, 0), w
    r = ok(B, "package", "retry", q["id"])
    assert r == {"id": q["id"], "state": "queued"}, r
    assert show(B, q["id"])["state"] == "queued"
    r = ok(B, "package", "reassign", q["id"], "--to", "beta")
    assert r == {"id": q["id"], "state": "queued"}, r
    # A target the package may never run on is refused, naming it.
    gamma = ok(B, "vendor", "add", "gamma", "--region", "US", "--capability", "other")
    fails(B, 1, "package", "reassign", q["id"], "--to", gamma["id"], stderr_rx=r"gamma")
    o = run(B.control, "package", "cancel", q["id"], json_out=False)
    assert o.rc == 0 and o.out == f"package {q['id']}: cancelled\n", o

    # -- handoffs: an array, empty so far.
    assert ok(B, "handoffs") == []
    o = run(B.control, "handoffs", json_out=False)
    assert o.rc == 0 and o.out.strip(), o

    # -- vendor fail hands in-flight work off now: a package running on acme
    # moves away at once (reason vendor-failed) and beta finishes it.
    start_agent(env, B, "acme", acme["secret"], "acme-1", {"slow": "sleep 60"})
    slow = ok(B, "submit", "--capability", "slow", "--payload", "slowly", "--prefer", "acme")
    wait_for(lambda: show(B, slow["id"])["agent"] == "acme-1", timeout=15,
             what="the slow package on acme-1")
    t_fail = now_utc()
    r = ok(B, "vendor", "fail", "acme")
    assert (r["id"], r["state"]) == (acme["id"], "failed"), r
    hs = ok(B, "handoffs")
    assert isinstance(hs, list) and len(hs) == 1, hs
    h = hs[0]
    check_handoff_row(h, "handoffs")
    assert (h["package"], h["attempt"], h["from_vendor"], h["reason"]) == \
        (slow["id"], 1, "acme", "vendor-failed"), h
    assert h["to_vendor"] in (None, "beta"), h
    assert abs((parse_time(h["at"]) - t_fail).total_seconds()) < 30, (h, t_fail)
    start_agent(env, B, "beta", beta["secret"], "beta-1", {"slow": "cat"})
    p = wait_state(B, slow["id"], "completed", timeout=20)
    assert [a["agent"] for a in p["attempts"]] == ["acme-1", "beta-1"], p["attempts"]
    h = ok(B, "handoffs", "--package", slow["id"])
    assert len(h) == 1 and h[0]["to_vendor"] == "beta", h
    # filters: by vendor (from or to), by package, by time (RFC 3339 or ago).
    assert len(ok(B, "handoffs", "--vendor", "acme")) == 1
    assert len(ok(B, "handoffs", "--vendor", beta["id"])) == 1
    assert ok(B, "handoffs", "--package", q["id"]) == []
    assert len(ok(B, "handoffs", "--since", "10m")) == 1
    future = (now_utc() + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ok(B, "handoffs", "--since", future) == []
    o = run(B.control, "handoffs", "--vendor", "acme", json_out=False)
    assert o.rc == 0 and "vendor-failed" in o.out and "acme" in o.out, o
    r = ok(B, "vendor", "resume", "acme")
    assert r["state"] == "active", r
    B.check_running()


@test(pg=False, timeout=30)
def test_cli_broker_unreachable(env):
    """Exit 3 with a clear message when nobody answers: no socket file, a
    socket file nobody listens on, a TCP port nobody listens on."""
    missing = env.path("nobroker.sock")
    dead = env.path("dead.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(dead)
    s.close()  # the file stays; connecting to it is refused
    assert os.path.exists(dead)
    port_sock = socket.socket()
    port_sock.bind(("127.0.0.1", 0))
    tcp = f"tcp://127.0.0.1:{port_sock.getsockname()[1]}"  # bound, not listening
    try:
        for control in (missing, dead, tcp):
            for args in (("stats",), ("vendor", "list"),
                         ("submit", "--capability", "upper", "--payload", "x"),
                         ("package", "show", "1")):
                t0 = time.monotonic()
                o = run(control, *args, timeout=20)
                took = time.monotonic() - t0
                assert o.rc == 3, o
                assert "cannot reach the broker" in o.err and control in o.err, o
                # --json: exactly one JSON document even on failure
                doc = json.loads(o.out)
                assert doc["exit_code"] == 3 and "cannot reach the broker" in doc["error"], o
                assert took < 5, (took, o)
        # A usage error is still a usage error without a broker.
        o = run(missing, "submit", "--capability", "upper", "--priority", "12")
        assert o.rc == 2 and "usage" in o.err.lower(), o
        # The default control path (./var/baton.sock) names itself too.
        o = subprocess.run([binary("batonctl"), "stats"], capture_output=True, text=True,
                           cwd=env.tmp, env={k: v for k, v in os.environ.items()
                                             if k != "BATON_CONTROL"}, timeout=20)
        assert o.returncode == 3 and "var/baton.sock" in o.stderr, o
    finally:
        port_sock.close()


if __name__ == "__main__":
    main()
