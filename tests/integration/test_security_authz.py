"""Authorization and secrets with real processes (DESIGN.md, "Security"):

  * a real baton-agent with a wrong secret (another vendor's) is refused: it
    exits 1 naming the failure, the refusal is audited agent.auth_failed, and
    the work submitted before and after is never assigned to it — a real agent
    with the right secret completes it;
  * an agent that advertises a capability its vendor is not registered for is
    refused: audited agent.capability_refused naming the capability, a broker
    log line, the agent exits with a clear error; no package of that capability
    ever gets an attempt, and the same agent without it works;
  * the vendor secret appears nowhere in the database (pg_dump), the broker's
    and agents' logs, or batonctl's output other than the one `vendor add` and
    `rotate-secret` that print it; BATON_SECRET beats --secret, --secret is
    blanked from /proc/PID/cmdline and warned about.

A result for another vendor's package cannot be sent through libbaton-agent
(bt_agent_complete only reports attempts the agent was given), so that rule is
shown by the core's unit tests (test_core_agents.c test_core_authz_*), which
drive the same entry points the agent endpoint calls.
"""

import os
import subprocess

from harness import main, test, wait_for


def audit(env, action):
    return env.pg.psql("SELECT actor, action, subject, detail FROM audit_events "
                       f"WHERE action = '{action}' ORDER BY id")


def attempts_of(env, pid):
    return int(env.pg.scalar(f"SELECT count(*) FROM attempts WHERE package_id = {pid}"))


def wait_exit(proc, timeout=20):
    wait_for(lambda: not proc.running, timeout, what=f"{proc.name} to exit")
    return proc.returncode


@test(timeout=40)
def test_wrong_secret_never_gets_work(env):
    broker = env.broker()
    _, acme, _ = broker.ctl("vendor", "add", "acme", "--region", "EU-DE",
                            "--capability", "upper")
    _, beta, _ = broker.ctl("vendor", "add", "beta", "--region", "EU-DE",
                            "--capability", "lower")
    _, p1, _ = broker.ctl("submit", "--capability", "upper", "--payload", "one")

    # beta's secret is well-formed, just not acme's.
    bad = env.agent(vendor="acme", secret=beta["secret"], broker=broker, name="impostor",
                    handlers={"upper": "tr a-z A-Z"})
    assert wait_exit(bad) == 1, bad.tail()
    assert "authentication failed" in bad.log_text(), bad.tail()
    rows = wait_for(lambda: audit(env, "agent.auth_failed"), 10, "agent.auth_failed row")
    assert rows == [("agent", "agent.auth_failed", "agent:acme/impostor", "bad signature")], rows

    _, p2, _ = broker.ctl("submit", "--capability", "upper", "--payload", "two")
    for pid in (p1["id"], p2["id"]):
        _, p, _ = broker.ctl("package", "show", pid)
        assert p["state"] == "queued" and p["attempts"] == [], p
        assert attempts_of(env, pid) == 0
    assert [a for a in broker.ctl("agent", "list")[1] if a["name"] == "impostor"] == []

    real = env.agent(vendor="acme", secret=acme["secret"], broker=broker, name="real",
                     handlers={"upper": "tr a-z A-Z"})
    wait_for(lambda: real.check_running() and all(
        broker.ctl("package", "show", pid)[1]["state"] == "completed"
        for pid in (p1["id"], p2["id"])), 30, "the real agent completes both")
    for pid in (p1["id"], p2["id"]):
        _, p, _ = broker.ctl("package", "show", pid)
        assert [a["agent"] for a in p["attempts"]] == ["real"], p
    assert int(env.pg.scalar("SELECT count(*) FROM attempts a JOIN agents g ON "
                             "g.id = a.agent_id WHERE g.name = 'impostor'")) == 0
    broker.check_running()


@test(timeout=40)
def test_capability_not_registered_is_refused(env):
    broker = env.broker()
    _, acme, _ = broker.ctl("vendor", "add", "acme", "--region", "EU-DE",
                            "--capability", "upper")
    # A vendor that does offer "lower", with no agent: the work waits for it.
    broker.ctl("vendor", "add", "beta", "--region", "EU-DE", "--capability", "lower")
    _, low, _ = broker.ctl("submit", "--capability", "lower", "--payload", "x")
    _, up, _ = broker.ctl("submit", "--capability", "upper", "--payload", "y")

    wide = env.agent(vendor="acme", secret=acme["secret"], broker=broker, name="wide",
                     handlers={"upper": "tr a-z A-Z", "lower": "tr A-Z a-z"})
    assert wait_exit(wide) == 1, wide.tail()
    assert "a capability is not registered for this vendor" in wide.log_text(), wide.tail()
    rows = wait_for(lambda: audit(env, "agent.capability_refused"), 10,
                    "agent.capability_refused row")
    assert len(rows) == 1, rows
    actor, action, subject, detail = rows[0]
    assert subject == "agent:acme/wide", rows
    assert detail.startswith("capability=lower "), rows  # names only the bad one
    broker.wait_for_log(r'msg="refused agent capability: its vendor is not registered '
                        r'for it" vendor=acme agent=wide capability=lower')
    assert attempts_of(env, low["id"]) == 0
    assert attempts_of(env, up["id"]) == 0
    assert [a for a in broker.ctl("agent", "list")[1] if a["state"] == "connected"] == []

    # The same agent with only what acme is registered for works.
    narrow = env.agent(vendor="acme", secret=acme["secret"], broker=broker, name="wide",
                       handlers={"upper": "tr a-z A-Z"})
    wait_for(lambda: narrow.check_running() and
             broker.ctl("package", "show", up["id"])[1]["state"] == "completed",
             30, "upper completed by the narrow agent")
    _, p, _ = broker.ctl("package", "show", low["id"])
    assert p["state"] == "queued" and p["attempts"] == [], p
    broker.check_running()


def pg_dump(env) -> str:
    r = subprocess.run([env.pg._bin("pg_dump"), "-h", env.pg.socket_dir,
                        "-p", str(env.pg.port), "-U", env.pg.user, "-d", env.pg.dbname,
                        "--data-only", "--inserts"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


@test(timeout=60)
def test_secret_nowhere_but_once(env):
    broker = env.broker()
    _, v, _ = broker.ctl("vendor", "add", "acme", "--region", "EU-DE",
                         "--capability", "upper")
    s1 = v["secret"]
    a1 = env.agent(vendor="acme", secret=s1, broker=broker, name="env-agent",
                   handlers={"upper": "tr a-z A-Z"})
    _, p, _ = broker.ctl("submit", "--capability", "upper", "--payload", "first")
    wait_for(lambda: broker.ctl("package", "show", p["id"])[1]["state"] == "completed",
             30, "first package")

    _, r, _ = broker.ctl("vendor", "rotate-secret", "acme")
    s2 = r["secret"]
    assert s2 != s1
    # The old secret no longer authenticates: the agent is signed out and exits.
    assert wait_exit(a1, 30) == 1, a1.tail()

    # --secret alone (an empty BATON_SECRET counts as unset): used, warned
    # about, blanked from the process list.
    a2 = env.agent(vendor="acme", secret="", broker=broker, name="flag-agent",
                   handlers={"upper": "tr a-z A-Z"}, extra_args=["--secret", s2])
    wait_for(lambda: a2.check_running() and any(
        x["name"] == "flag-agent" and x["state"] == "connected"
        for x in broker.ctl("agent", "list")[1]), 20, "flag-agent connected")
    with open(f"/proc/{a2.pid}/cmdline", "rb") as f:
        cmdline = f.read().decode(errors="replace")
    assert s2 not in cmdline and "--secret" in cmdline, cmdline
    a2.wait_for_log(r"secret given with --secret; prefer BATON_SECRET")
    a2.stop()

    # Both: BATON_SECRET wins, --secret is ignored (and blanked) with a warning.
    a3 = env.agent(vendor="acme", secret=s2, broker=broker, name="both-agent",
                   handlers={"upper": "tr a-z A-Z"},
                   extra_args=["--secret", "not-the-secret-" + "x" * 28])
    a3.wait_for_log(r"--secret ignored: BATON_SECRET is set")
    _, p2, _ = broker.ctl("submit", "--capability", "upper", "--payload", "second")
    wait_for(lambda: broker.ctl("package", "show", p2["id"])[1]["state"] == "completed",
             30, "second package, by the agent that took BATON_SECRET")
    assert broker.ctl("package", "show", p2["id"])[1]["agent"] == "both-agent"

    # Everything an operator or an attacker with the database could read.
    outputs = {}
    for args in (("vendor", "list"), ("vendor", "show", "acme"), ("agent", "list"),
                 ("audit",), ("stats",), ("package", "show", p["id"]),
                 ("package", "list"), ("scorecard",), ("handoffs",)):
        outputs["batonctl " + " ".join(map(str, args))] = str(broker.ctl(*args)[1])
    outputs["pg_dump"] = pg_dump(env)
    broker.stop()  # flushes every log line
    a3.stop()
    for name in sorted(os.listdir(env.log_dir)):
        if name.endswith((".out", ".err", ".log")) and not name.endswith("-ctl.log"):
            with open(os.path.join(env.log_dir, name), errors="replace") as f:
                # The harness's own start markers quote argv (with --secret).
                outputs[name] = "".join(line for line in f
                                        if not line.startswith("=== harness:"))
    # The harness's record of batonctl calls: only vendor add and rotate-secret
    # printed a secret.
    with open(broker.ctl_log, errors="replace") as f:
        for entry in f.read().split("\n$ ")[1:]:
            cmd = entry.splitlines()[0]
            if "vendor add" in cmd or "rotate-secret" in cmd:
                continue
            outputs["ctl log: " + cmd] = entry
    leaks = [where for where, text in outputs.items()
             for s in (s1, s2) if s in text or s[:20] in text]
    assert not leaks, f"the secret appears in: {leaks}"
    assert "acme" in outputs["pg_dump"]  # the dump did hold the data


if __name__ == "__main__":
    main()
