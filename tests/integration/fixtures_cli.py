"""batonctl helpers shared by the CLI tests (test_cli_contract.py,
test_cli_every_command.py): running batonctl with --json, checking exit codes
and the JSON fields CONTRACT.md ("batonctl") names."""

import datetime as dt
import json
import re
import subprocess

from harness import binary, wait_for

VENDOR_FIELDS = ["id", "name", "region", "model", "capabilities", "certs", "capacity",
                 "cost", "state", "agents", "in_flight", "completed", "failed",
                 "on_time_rate"]
AGENT_FIELDS = ["id", "vendor", "name", "capabilities", "slots", "busy", "last_seen_ms",
                "state"]
PACKAGE_FIELDS = ["id", "capability", "state", "priority", "deadline", "vendor", "agent",
                  "attempt", "waiting_reason", "progress", "result_bytes"]
ATTEMPT_FIELDS = ["attempt", "vendor", "agent", "started", "ended", "outcome"]
HANDOFF_FIELDS = ["from_vendor", "to_vendor", "reason", "at", "checkpoint_bytes"]
HANDOFF_LIST_FIELDS = ["package", "attempt"] + HANDOFF_FIELDS
STATS_FIELDS = ["queued", "assigned", "running", "completed", "dead", "cancelled",
                "vendors", "agents"]
WAIT_FIELDS = ["completed", "dead", "cancelled", "pending"]
VENDOR_STATES = {"active", "degraded", "failed", "draining", "suspended"}
PACKAGE_STATES = {"queued", "assigned", "running", "completed", "dead", "cancelled"}
HANDOFF_REASONS = {"vendor-failed", "agent-lost", "lease-expired", "drain", "sla-risk",
                   "admin"}


# ---- running batonctl ------------------------------------------------------------------

class Out:
    """One batonctl run: rc, stdout, stderr, and doc (the JSON document)."""

    def __init__(self, args, rc, out, err):
        self.args, self.rc, self.out, self.err = args, rc, out, err
        self.doc = None

    def __repr__(self):
        return (f"batonctl {' '.join(map(str, self.args))} → rc={self.rc} "
                f"stdout={self.out[:300]!r} stderr={self.err[:300]!r}")


def run(control, *args, json_out=True, timeout=30, cwd=None):
    argv = [binary("batonctl"), "--control", control] + (["--json"] if json_out else [])
    argv += [str(a) for a in args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, cwd=cwd)
    return Out(args, r.returncode, r.stdout, r.stderr)


def one_doc(o: Out):
    """stdout holds exactly one JSON document (json.loads refuses trailing
    data, so two documents fail here)."""
    try:
        return json.loads(o.out)
    except ValueError as e:
        raise AssertionError(f"stdout is not exactly one JSON document ({e}): {o}") from None


def ok(broker, *args):
    """A command that must succeed: exit 0 and one JSON document."""
    o = run(broker.control, *args)
    assert o.rc == 0, o
    o.doc = one_doc(o)
    return o.doc


def fails(broker, rc, *args, stderr_rx=None, control=None):
    """A command that must fail with exit code rc; stderr says why (matching
    stderr_rx). With --json a failure prints no JSON or exactly one document."""
    o = run(control or broker.control, *args)
    assert o.rc == rc, f"expected exit {rc}: {o}"
    assert o.err.strip(), f"no message on stderr: {o}"
    if stderr_rx:
        assert re.search(stderr_rx, o.err), f"stderr does not match {stderr_rx!r}: {o}"
    if o.out.strip():
        o.doc = one_doc(o)
    if rc == 2:
        assert "usage" in o.err.lower(), f"a usage error without usage: {o}"
    return o


def has(obj, fields, what):
    assert isinstance(obj, dict), f"{what}: not an object: {obj!r}"
    missing = [f for f in fields if f not in obj]
    assert not missing, f"{what}: missing fields {missing}: {obj}"


def parse_time(s):
    assert isinstance(s, str), s
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def now_utc():
    return dt.datetime.now(dt.timezone.utc)


def check_vendor(v, what):
    has(v, VENDOR_FIELDS, what)
    assert isinstance(v["id"], int) and v["id"] > 0, v
    assert isinstance(v["capabilities"], list) and isinstance(v["certs"], list), v
    assert v["state"] in VENDOR_STATES, v
    for k in ("capacity", "agents", "in_flight", "completed", "failed"):
        assert isinstance(v[k], int) and v[k] >= 0, (k, v)
    assert isinstance(v["cost"], (int, float)), v
    assert v["on_time_rate"] is None or 0 <= v["on_time_rate"] <= 1, v


def check_package(p, what, history=True):
    has(p, PACKAGE_FIELDS + (["attempts", "handoffs"] if history else []), what)
    assert isinstance(p["id"], int) and p["state"] in PACKAGE_STATES, p
    assert isinstance(p["priority"], int) and 0 <= p["priority"] <= 9, p
    assert isinstance(p["result_bytes"], int), p
    if history:
        for a in p["attempts"]:
            has(a, ATTEMPT_FIELDS, f"{what} attempt")
        for h in p["handoffs"]:
            has(h, HANDOFF_FIELDS, f"{what} handoff")


def show(broker, pid):
    p = ok(broker, "package", "show", pid)
    check_package(p, f"package show {pid}")
    return p


def wait_state(broker, pid, states, timeout=20):
    states = {states} if isinstance(states, str) else set(states)
    return wait_for(lambda: (lambda p: p if p["state"] in states else None)(show(broker, pid)),
                    timeout=timeout, what=f"package {pid} in {sorted(states)}")


def start_agent(env, broker, vendor, secret, name, handlers, slots=1):
    a = env.agent(vendor=vendor, secret=secret, broker=broker, name=name, slots=slots,
                  handlers=handlers)
    wait_for(lambda: a.check_running() and any(
        x["name"] == name and x["state"] == "connected"
        for x in ok(broker, "agent", "list")), timeout=20, what=f"agent {name} connected")
    return a
