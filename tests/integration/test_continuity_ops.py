"""The admin's continuity operations on real processes and a real PostgreSQL:

  * `package cancel` of a running package whose handler ignores SIGTERM: the
    agent sends SIGTERM, then SIGKILL after its --kill-grace; the handler is
    gone, the package is cancelled, its attempt says so, and the audit trail
    has the admin's action;
  * `package reassign ID --to V` of a running package: the attempt is revoked
    (the first handler is stopped), a handoff row (reason admin) carries its
    checkpoint, and the package completes on V, whose handler proves it read
    $BATON_CHECKPOINT_IN;
  * `vendor drain V`: what runs on V finishes there, new work goes elsewhere;
    `vendor resume V` brings it back.

Each ends with the shared invariants (fixtures_it4.check_continuity).
"""

import base64
import os
import time

from harness import main, test, wait_for
from fixtures_it1 import TWO_LANES_BROKER_ARGS, wait_ids
from fixtures_it4 import (World, check_continuity, db_audit, open_attempts, sh_quote,
                          wait_running)

# Ignores SIGTERM (and so do its children), so only SIGKILL ends it.
STUBBORN_SH = r"""#!/bin/sh
echo "$$" >> "$BT_IT4_DIR/handler-pids"
echo "$$" > "$BT_IT4_DIR/stubborn-$BATON_PACKAGE_ID"
trap '' TERM
cat >/dev/null
while :; do sleep 1; done
"""
KILL_GRACE_S = 2.0  # baton-agent's --kill-grace here (the default is 5 s)

# Writes a checkpoint, then works "forever".
FIRST_SH = r"""#!/bin/sh
echo "$$" >> "$BT_IT4_DIR/handler-pids"
echo "$$" > "$BT_IT4_DIR/first-$BATON_PACKAGE_ID"
cat >/dev/null
printf 'progress 50\ncheckpoint %s\n' "$2" >&3
sleep 60
printf '%s:%s:%s:finished-without-reassign\n' "$BATON_PACKAGE_ID" "$BATON_ATTEMPT" "$1"
"""

# Continues from the checkpoint it was given.
SECOND_SH = r"""#!/bin/sh
echo "$$" >> "$BT_IT4_DIR/handler-pids"
cat >/dev/null
from=no-checkpoint
[ -n "$BATON_CHECKPOINT_IN" ] && [ -r "$BATON_CHECKPOINT_IN" ] && from=$(cat "$BATON_CHECKPOINT_IN")
printf '%s:%s:%s:resumed-from=%s\n' "$BATON_PACKAGE_ID" "$BATON_ATTEMPT" "$1" "$from"
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def read_pid(world: World, name: str) -> int:
    path = world.env.path(name)
    wait_for(lambda: os.path.exists(path) and open(path).read().strip(), 10,
             what=f"{name} to be written")
    return int(open(path).read())


@test(timeout=90)
def test_cancel_running_package_kills_its_handler(env):
    broker = env.broker(extra_args=TWO_LANES_BROKER_ARGS)
    w = World(env, broker)
    w.vendor("acme", "EU-DE")
    stubborn = w.script("stubborn.sh", STUBBORN_SH)
    # exec: the handler process itself is the script (no `sh -c` around it
    # that SIGTERM would end).
    w.agent("acme", "acme-1", "exec " + sh_quote("/bin/sh", stubborn), slots=1,
            extra_args=["--kill-grace", f"{KILL_GRACE_S:g}s"])
    w.agents["acme-1"].check_running()
    pid = w.submit_one("cancel")
    wait_running(env.pg, "acme-1", 1)
    hpid = read_pid(w, f"stubborn-{pid}")
    assert alive(hpid)

    t0 = time.monotonic()
    _, out, _ = broker.ctl("package", "cancel", pid)
    assert out == {"id": pid, "state": "cancelled"}, out
    # SIGTERM is ignored: the agent's SIGKILL after --kill-grace ends it.
    wait_for(lambda: not alive(hpid), KILL_GRACE_S + 10, what="the handler to be killed")
    gone_after = time.monotonic() - t0
    assert gone_after >= KILL_GRACE_S - 0.5, f"gone after {gone_after:.1f}s, before SIGKILL"
    agent_log = w.agents["acme-1"].log_text()
    assert "stopping handler" in agent_log and "killing it" in agent_log, agent_log[-2000:]
    _, p, _ = broker.ctl("package", "show", pid)
    assert p["state"] == "cancelled", p
    assert [(a["attempt"], a["outcome"]) for a in p["attempts"]] == [(1, "cancelled")], p
    rows = db_audit(env.pg, "package.cancel")
    assert [(r["actor"], r["subject"]) for r in rows] == [("admin", f"package:{pid}")], rows
    # Cancelling again is refused with a clear reason; the broker carries on.
    rc, _, err = broker.ctl("package", "cancel", pid, check=False)
    assert rc == 1 and "cancelled" in err, (rc, err)
    check_continuity(env, w, states="cancelled", reasons=set())
    print(f"continuity ops: cancel of a running package; its SIGTERM-proof handler was "
          f"gone {gone_after:.1f}s later", flush=True)


@test(timeout=90)
def test_reassign_running_package_carries_checkpoint(env):
    broker = env.broker(extra_args=TWO_LANES_BROKER_ARGS)
    w = World(env, broker)
    w.vendor("acme", "EU-DE", cost=0.5)
    w.vendor("globex", "EU-FR", cost=5)
    w.vendor("initech", "US", cost=0.1)
    checkpoint = b"step-7 of 9"
    first = w.script("first.sh", FIRST_SH)
    second = w.script("second.sh", SECOND_SH)
    b64 = base64.b64encode(checkpoint).decode()
    w.agent("acme", "acme-1", sh_quote("/bin/sh", first, "acme-1", b64), slots=1)
    w.agent("globex", "globex-1", sh_quote("/bin/sh", second, "globex-1"), slots=1)
    w.agent("initech", "initech-1", sh_quote("/bin/sh", second, "initech-1"), slots=1)
    pid = w.submit_one("move", region="EU-DE,EU-FR", prefer="acme")
    wait_running(env.pg, "acme-1", 1)
    wait_for(lambda: env.pg.scalar(f"SELECT octet_length(checkpoint) FROM work_packages "
                                   f"WHERE id = {pid}") == str(len(checkpoint)),
             10, what="the checkpoint to be stored")
    first_pid = read_pid(w, f"first-{pid}")

    # Not to a vendor outside its regions, even for an admin.
    rc, _, err = broker.ctl("package", "reassign", pid, "--to", "initech", check=False)
    assert rc == 1 and "initech" in err, (rc, err)
    _, out, _ = broker.ctl("package", "reassign", pid, "--to", "globex")
    assert out["id"] == pid and out["state"] in ("queued", "assigned", "running"), out
    wait_ids(broker, [pid], timeout=30)
    wait_for(lambda: not alive(first_pid), 15, what="the first handler to be stopped")

    r = check_continuity(env, w, reasons={"admin"})
    _, res, _ = broker.ctl("result", pid, json=False)
    assert res.strip() == f"{pid}:2:globex-1:resumed-from={checkpoint.decode()}", res
    assert [(a["attempt"], a["vendor"], a["outcome"]) for a in r["by_package"][pid]] == \
        [(1, "acme", "revoked"), (2, "globex", "completed")], r["by_package"][pid]
    (h,) = r["handoffs"]
    assert h["reason"] == "admin" and h["checkpoint_bytes"] == len(checkpoint), h
    _, hs, _ = broker.ctl("handoffs", "--package", pid)
    assert [(x["from_vendor"], x["to_vendor"], x["reason"]) for x in hs] == \
        [("acme", "globex", "admin")], hs
    print(f"continuity ops: reassign acme -> globex carried {checkpoint!r}; "
          f"result {res.strip()!r}", flush=True)


@test(timeout=90)
def test_vendor_drain_lets_work_finish_and_routes_new_work_elsewhere(env):
    broker = env.broker(extra_args=TWO_LANES_BROKER_ARGS)
    w = World(env, broker)
    w.vendor("acme", "EU-DE", cost=0.1)
    w.vendor("globex", "EU-FR", cost=5)
    w.agent("acme", "acme-1", w.work("acme-1", 2), slots=2)
    w.agent("globex", "globex-1", w.work("globex-1", 0.2), slots=2)
    first = w.submit_one("before", prefer="acme")
    wait_running(env.pg, "acme-1", 1)
    _, out, _ = broker.ctl("vendor", "drain", "acme")
    assert out["state"] == "draining", out
    later = w.submit(4, "during")
    wait_ids(broker, [first] + later, timeout=30)
    r = check_continuity(env, w, reasons=set())
    assert r["packages"][first]["agent"] == "acme-1", r["packages"][first]
    assert {r["packages"][i]["vendor"] for i in later} == {"globex"}, \
        [r["packages"][i] for i in later]
    assert open_attempts(env.pg, "acme-1", started=False) == []
    _, out, _ = broker.ctl("vendor", "resume", "acme")
    assert out["state"] == "active", out
    back = w.submit_one("after", prefer="acme")
    wait_ids(broker, [back], timeout=30)
    r = check_continuity(env, w, reasons=set())
    assert r["packages"][back]["vendor"] == "acme", r["packages"][back]
    actions = [(x["actor"], x["action"]) for x in db_audit(env.pg, "vendor.admin")]
    assert actions == [("admin", "vendor.admin")] * 2, actions


if __name__ == "__main__":
    main()
