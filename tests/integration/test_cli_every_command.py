"""Every batonctl command against a real broker (issue 5, CONTRACT.md "batonctl").

The list of commands is not written down here but read from `batonctl --help`,
so a command added to the CLI without being exercised fails this test:

  * test_cli_help_and_usage (no broker): every command has `help CMD` and
    `CMD --help` (exit 0, its usage line), an unknown option is exit 2 with the
    usage on stderr, and with nobody listening every command is exit 3 with
    exactly one JSON document under --json;
  * test_cli_every_command: two vendors with agents; each command runs with
    --json and its output is checked for the CONTRACT fields (exit 0), and each
    command that names a vendor, package or key is run once with one that does
    not exist (exit 1). At the end every command of `--help` has been run with
    exit 0, and the exit codes 0, 1, 2 and 3 have each been seen;
  * test_cli_wait_progress: `wait` draws a progress bar on a terminal and
    plain lines otherwise.
"""

import base64
import os
import re
import select
import subprocess

from harness import binary, main, test, wait_for
from fixtures_cli import (AGENT_FIELDS, HANDOFF_LIST_FIELDS, STATS_FIELDS, WAIT_FIELDS,
                          check_package, check_vendor, fails, has, one_doc, run)
from fixtures_it1 import TWO_LANES_BROKER_ARGS
from fixtures_it4 import CAPABILITY, World, wait_running

SCORECARD_FIELDS = ["vendor", "completed", "failed", "handed_off", "on_time_rate",
                    "turnaround_p50_ms", "turnaround_p95_ms", "cost_total"]
AUDIT_FIELDS = ["at", "actor", "action", "subject", "detail"]
CONFIG_FIELDS = ["key", "value", "default", "runtime"]
# CONTRACT.md's table, plus `config get|set` (issue 5): all must be in --help.
CONTRACT_COMMANDS = {
    "vendor add", "vendor list", "vendor show", "vendor drain", "vendor suspend",
    "vendor resume", "vendor fail", "vendor rotate-secret", "agent list", "submit",
    "package show", "package list", "package cancel", "package retry",
    "package reassign", "result", "wait", "handoffs", "scorecard", "stats", "audit",
    "top", "config get", "config set"}


def listed_commands():
    """The commands of `batonctl --help` ("Commands:" up to the blank line)."""
    o = run("unused", "--help", json_out=False)
    assert o.rc == 0, o
    body = o.out.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    cmds = []
    for line in body.splitlines():
        words = re.split(r"\s{2,}", line.strip())[0].split()
        cmds.append(" ".join(w for w in words if w.islower() or "-" in w))
    cmds = [c for c in cmds if c != "help"]  # `help COMMAND` is help itself
    missing = CONTRACT_COMMANDS - set(cmds)
    assert not missing, f"batonctl --help lacks {sorted(missing)}: {o.out}"
    return cmds


# Arguments that make each command valid (for exit 3: nobody answers).
VALID_ARGS = {
    "vendor add": ["x", "--region", "EU", "--capability", "c"],
    "submit": ["--capability", "c", "--payload", "p"],
    "package list": [], "agent list": [], "vendor list": [], "stats": [],
    "handoffs": [], "scorecard": [], "audit": [], "config get": [],
    "config set": ["log_level", "info"], "wait": ["1"], "top": ["--once"],
    "package reassign": ["1"],
}


@test(pg=False, timeout=60)
def test_cli_help_and_usage(env):
    cmds = listed_commands()
    nobody = env.path("nobody.sock")
    for cmd in cmds:
        words = cmd.split()
        for argv in (["help", *words], [*words, "--help"]):
            o = run(nobody, *argv, json_out=False)
            assert o.rc == 0 and o.out.startswith(f"usage: batonctl {cmd}"), o
        o = run(nobody, *words, "--no-such-option")
        assert o.rc == 2 and "usage" in o.err.lower() and "no-such-option" in o.err, o
        # top is a terminal view: --json is a usage error (exit 2) for it.
        o = run(nobody, *words, *VALID_ARGS.get(cmd, ["1"]), json_out=cmd != "top")
        assert o.rc == 3 and "cannot reach the broker" in o.err, o
        if cmd != "top":
            doc = one_doc(o)
            assert doc["exit_code"] == 3 and "cannot reach the broker" in doc["error"], o
    print(f"help, usage (exit 2) and unreachable (exit 3): {len(cmds)} commands",
          flush=True)


@test(timeout=150)
def test_cli_every_command(env):
    cmds = listed_commands()
    broker = env.broker(extra_args=TWO_LANES_BROKER_ARGS)
    B = broker
    w = World(env, broker)
    ran = {}      # command -> exit codes seen
    codes = set()

    def ok(*args, cmd=None):
        o = run(B.control, *args)
        assert o.rc == 0, o
        ran.setdefault(cmd or " ".join(args[:2]), set()).add(0)
        codes.add(0)
        return one_doc(o)

    def no(cmd, rc, *args, rx=None):
        o = fails(B, rc, *args, stderr_rx=rx)
        ran.setdefault(cmd, set()).add(rc)
        codes.add(rc)
        return o

    # ---- vendor add, list, show
    acme = ok("vendor", "add", "acme", "--region", "EU-DE", "--model", "nearshore",
              "--capability", CAPABILITY, "--cert", "iso27001", "--capacity", 4,
              "--cost", "1.5", "--hours", "Mon-Sun 00:00-24:00 UTC", "--weight", 2)
    has(acme, ["id", "name", "secret"], "vendor add")
    assert acme["name"] == "acme" and len(acme["secret"]) >= 32, acme
    w.vendors["acme"] = dict(acme)
    beta = ok("vendor", "add", "beta", "--region", "EU-FR", "--capability", CAPABILITY)
    w.vendors["beta"] = dict(beta)
    no("vendor add", 1, "vendor", "add", "acme", "--region", "EU-DE", "--capability", "x",
       rx="acme")
    vl = ok("vendor", "list")
    assert [v["name"] for v in vl] == ["acme", "beta"], vl
    for v in vl:
        check_vendor(v, "vendor list")
    va = ok("vendor", "show", "acme")
    check_vendor(va, "vendor show")
    assert va["model"] == "nearshore" and va["certs"] == ["iso27001"], va
    assert ok("vendor", "show", str(acme["id"]))["name"] == "acme"
    no("vendor show", 1, "vendor", "show", "nope", rx="nope")

    # ---- agents
    w.agent("acme", "acme-1", w.work("acme-1", 0.1), slots=2)
    w.agent("beta", "beta-1", w.work("beta-1", 0.1), slots=2)
    al = ok("agent", "list")
    assert sorted(a["name"] for a in al) == ["acme-1", "beta-1"], al
    for a in al:
        has(a, AGENT_FIELDS, "agent list")
        assert a["state"] == "connected" and a["slots"] == 2, a

    # ---- submit (one, batch), wait, result, package show/list
    one = ok("submit", "--capability", CAPABILITY, "--payload", "hello", "--priority", 7,
             "--deadline", "1h", "--region", "EU-DE,EU-FR", "--max-attempts", 2,
             "--key", "k-1", cmd="submit")
    has(one, ["id", "state"], "submit")
    assert ok("submit", "--capability", CAPABILITY, "--payload", "hello", "--key", "k-1",
              cmd="submit")["id"] == one["id"]
    batch = env.path("batch.jsonl")
    with open(batch, "w") as f:
        f.write('{"capability": "%s", "payload": "a", "prefer": ["beta"]}\n' % CAPABILITY)
        f.write('{"capability": "%s", "payload_b64": "%s", "avoid": "acme"}\n'
                % (CAPABILITY, base64.b64encode(b"b\x00").decode()))
    ids = ok("submit", "--batch", batch, cmd="submit")["ids"]
    assert len(ids) == 2, ids
    with open(batch, "a") as f:
        f.write('{"capability": 5}\n')
    no("submit", 1, "submit", "--batch", batch, rx="line 3")
    st = ok("wait", "--timeout", "60s", one["id"], *ids, cmd="wait")
    has(st, WAIT_FIELDS, "wait")
    assert st["completed"] == 3 and st["pending"] == 0, st
    no("wait", 1, "wait", "--timeout", "2s", "999999")
    r = ok("result", one["id"], cmd="result")
    has(r, ["id", "result_b64"], "result")
    assert base64.b64decode(r["result_b64"]).decode().startswith(f"{one['id']}:1:"), r
    out_file = env.path("result.bin")
    ok("result", one["id"], "--out", out_file, cmd="result")
    with open(out_file, "rb") as f:
        assert f.read() == base64.b64decode(r["result_b64"])
    no("result", 1, "result", "999999")
    p = ok("package", "show", one["id"])
    check_package(p, "package show")
    assert p["state"] == "completed" and p["priority"] == 7 and p["attempts"], p
    no("package show", 1, "package", "show", "999999")
    pl = ok("package", "list", "--state", "completed", "--limit", 10)
    assert sorted(x["id"] for x in pl) == sorted([one["id"], *ids]), pl
    for x in pl:
        check_package(x, "package list", history=False)
    assert ok("package", "list", "--vendor", "beta", "--capability", CAPABILITY) == [
        x for x in ok("package", "list") if x["vendor"] == "beta"]
    no("package list", 1, "package", "list", "--vendor", "nope", rx="nope")

    # ---- package cancel, retry, reassign
    later = ok("submit", "--capability", CAPABILITY, "--payload", "later",
               "--not-before", "1h", cmd="submit")["id"]
    assert ok("package", "cancel", later) == {"id": later, "state": "cancelled"}
    no("package cancel", 1, "package", "cancel", "999999")
    rt = ok("package", "retry", later)
    assert rt["id"] == later and rt["state"] == "queued", rt
    no("package retry", 1, "package", "retry", "999999")
    slow_h = w.script("slow.sh", "#!/bin/sh\necho $$ >> \"$BT_IT4_DIR/handler-pids\"\n"
                      "cat >/dev/null; sleep 60\n")
    w.vendors["gamma"] = ok("vendor", "add", "gamma", "--region", "EU-DE",
                            "--capability", CAPABILITY)
    w.agent("gamma", "gamma-slow", "/bin/sh " + slow_h, slots=1)
    slow = ok("submit", "--capability", CAPABILITY, "--payload", "slow",
              "--avoid", "acme,beta", cmd="submit")["id"]
    wait_running(env.pg, "gamma-slow", 1)
    ra = ok("package", "reassign", slow)
    assert ra["id"] == slow and ra["state"] in ("queued", "assigned", "running"), ra
    no("package reassign", 1, "package", "reassign", "999999")
    no("package reassign", 1, "package", "reassign", one["id"], "--to", "nope")

    # ---- handoffs (the reassign above made one: the package was running)
    hs = ok("handoffs", cmd="handoffs")
    assert [(h["package"], h["from_vendor"], h["reason"]) for h in hs] == [
        (slow, "gamma", "admin")], hs
    for h in hs:
        has(h, HANDOFF_LIST_FIELDS, "handoffs")
    assert ok("handoffs", "--vendor", "gamma", "--since", "1h", cmd="handoffs") == hs
    assert ok("handoffs", "--package", 999999, cmd="handoffs") == []
    no("handoffs", 1, "handoffs", "--vendor", "nope", rx="nope")

    # ---- vendor state changes and rotate-secret
    for op, state in (("drain", "draining"), ("resume", "active"),
                      ("suspend", "suspended"), ("resume", "active"),
                      ("fail", "failed"), ("resume", "active")):
        vs = ok("vendor", op, "beta")
        assert vs["id"] == beta["id"] and vs["state"] == state, (op, vs)
        no(f"vendor {op}", 1, "vendor", op, "nope", rx="nope")
    rs = ok("vendor", "rotate-secret", "beta")
    has(rs, ["id", "state", "secret"], "vendor rotate-secret")
    assert rs["id"] == beta["id"] and rs["secret"] != beta["secret"], rs
    no("vendor rotate-secret", 1, "vendor", "rotate-secret", "nope", rx="nope")

    # ---- stats, scorecard, audit
    s = ok("stats")
    has(s, STATS_FIELDS, "stats")
    assert s["completed"] >= 3 and s["agents"] >= 2, s
    sc = ok("scorecard")
    assert [x["vendor"] for x in sc] == ["acme", "beta", "gamma"], sc
    for x in sc:
        has(x, SCORECARD_FIELDS, "scorecard")
    one_sc = ok("scorecard", "acme")  # work may still end meanwhile: compare names
    assert [x["vendor"] for x in one_sc] == ["acme"], one_sc
    has(one_sc[0], SCORECARD_FIELDS, "scorecard V")
    no("scorecard", 1, "scorecard", "nope", rx="nope")
    au = ok("audit")
    for x in au:
        has(x, AUDIT_FIELDS, "audit")
    acts = {x["action"] for x in au}
    assert {"vendor.add", "vendor.admin", "package.submit", "attempt.completed",
            "package.cancel", "vendor.rotate-secret"} <= acts, sorted(acts)
    assert ok("audit", "--package", later, "--since", "1h")
    no("audit", 1, "audit", "--vendor", "nope", rx="nope")

    # ---- config get, set
    cg = ok("config", "get")
    assert isinstance(cg, list) and cg, cg
    for x in cg:
        has(x, CONFIG_FIELDS, "config get")
    keys = {x["key"]: x for x in cg}
    assert keys["max_attempts"]["runtime"] is True and keys["db"]["runtime"] is False
    one_key = ok("config", "get", "max_attempts")
    has(one_key, CONFIG_FIELDS, "config get KEY")
    no("config get", 1, "config", "get", "no_such_key", rx="no_such_key")
    cs = ok("config", "set", "max_attempts", "5")
    has(cs, ["key", "value", "previous"], "config set")
    assert cs["value"] == "5" and cs["previous"] == one_key["value"], cs
    no("config set", 1, "config", "set", "max_attempts", "0")
    no("config set", 1, "config", "set", "agents", "tcp://127.0.0.1:1")

    o = run(B.control, "top", "--once")
    assert o.rc == 2 and one_doc(o)["exit_code"] == 2, o

    # ---- top: one plain frame
    o = run(B.control, "top", "--once", json_out=False)
    assert o.rc == 0 and "acme" in o.out and "beta" in o.out and "\x1b" not in o.out, o
    ran.setdefault("top", set()).add(0)

    # ---- usage errors with a broker there too
    for args in (["submit", "--priority", "12", "--capability", "x"],
                 ["package", "show", "x"], ["vendor"], ["nonsense"]):
        o = fails(B, 2, *args)
        codes.add(2)

    # ---- unreachable
    o = run(env.path("nobody.sock"), "stats")
    assert o.rc == 3, o
    codes.add(3)

    never_ok = [c for c in cmds if 0 not in ran.get(c, set())]
    assert not never_ok, f"commands never run with exit 0: {never_ok}"
    never_1 = [c for c in cmds if c.split()[0] in ("vendor", "package", "result", "wait",
                                                  "scorecard", "config")
               and c not in ("vendor list",) and 1 not in ran.get(c, set())]
    assert not never_1, f"commands never shown refusing an unknown subject: {never_1}"
    assert codes == {0, 1, 2, 3}, codes
    B.check_running()
    print(f"every command: {len(cmds)} run with --json; exit codes seen {sorted(codes)}",
          flush=True)


BAR = re.compile(rb"\r\[([#.]{30})\] (\d+)/(\d+)  (\d+\.\d)/s  eta (\S+)\x1b\[K")
PLAIN = re.compile(r"batonctl: wait: (\d+)/(\d+) done \(\d+ dead, \d+ cancelled\), "
                   r"(\d+) pending, (\d+\.\d)/s, eta (\S+)")


@test(timeout=90)
def test_cli_wait_progress(env):
    """`wait` on a terminal draws a bar in place (done/total, rate, ETA) on
    stderr and clears it; otherwise it prints plain lines. Either way stdout
    holds only the answer. 16 packages of 0.4 s on 2 slots: about 3.5 s each."""
    broker = env.broker(extra_args=TWO_LANES_BROKER_ARGS)
    w = World(env, broker)
    w.vendor("acme", "EU-DE")
    w.agent("acme", "acme-1", w.work("acme-1", 0.4), slots=2)

    # On a terminal (stderr a pty; stdout a pipe, so the answer stays apart).
    ids = w.submit(16, "tty")
    master, slave = os.openpty()
    proc = subprocess.Popen([binary("batonctl"), "--control", broker.control, "wait",
                             "--timeout", "60s", *map(str, ids)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave, start_new_session=True)
    os.close(slave)
    raw = bytearray()
    try:
        while True:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed its side
                    chunk = b""
                if not chunk and proc.poll() is not None:
                    break
                raw += chunk
            elif proc.poll() is not None:
                break
        out = proc.stdout.read().decode()
        assert proc.wait(timeout=70) == 0, (out, bytes(raw[-500:]))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    bars = BAR.findall(bytes(raw))
    assert len(bars) >= 5, bytes(raw[:600])
    dones = [int(b[1]) for b in bars]
    assert dones == sorted(dones) and all(int(b[2]) == 16 for b in bars), bars
    assert any(float(b[3]) > 0 and b[4] != b"-" for b in bars), bars  # a rate and an ETA
    assert bytes(raw).endswith(b"\r\x1b[K"), bytes(raw[-80:])  # the bar cleared at the end
    assert out.split() == ["COMPLETED", "DEAD", "CANCELLED", "PENDING", "UNKNOWN",
                           "16", "0", "0", "0", "0"], out
    last = bars[-1]
    print(f"wait on a terminal: {len(bars)} redraws; last: {last[1].decode()}/16 "
          f"{last[3].decode()}/s eta {last[4].decode()}", flush=True)

    # Not a terminal: plain lines every 2 s, no escape codes.
    ids = w.submit(16, "plain")
    o = run(broker.control, "wait", "--timeout", "60s", *ids, json_out=False, timeout=70)
    assert o.rc == 0, o
    assert "\x1b" not in o.err and "\r" not in o.err, o
    lines = PLAIN.findall(o.err)
    assert lines and all(int(t) == 16 for _, t, _, _, _ in lines), o
    assert o.out.split()[5:] == ["16", "0", "0", "0", "0"], o


if __name__ == "__main__":
    main()
