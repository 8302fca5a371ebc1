"""`batonctl vendor rotate-secret V` on real processes and a real PostgreSQL.

Two vendors: acme (EU-DE, cheap, so preferred) and beta (EU-FR). acme-1 runs a
slow package with acme's first secret when the secret is rotated. Then:

  * rotate exits 0 and prints {id, name, state, secret} once; the new secret
    differs from the old one and the stored key changed;
  * acme-1's session is ended: it starts a new one, fails to authenticate
    with the old secret and exits; a fresh agent with the old secret is
    refused too;
  * a package submitted after the rotation that only acme may take (EU-DE)
    is not run by acme-1: it waits until acme-2, started with the new secret,
    takes it and completes it;
  * the slow package is not lost: once acme-1's lease runs out it is handed
    off and completed by someone (check_continuity: nothing lost, nothing
    twice, handoff rows that match the attempts);
  * `audit` shows vendor.rotate-secret (actor admin, subject vendor:acme);
    neither secret nor the stored key appears in audit_events, and neither
    secret in the broker's logs;
  * an unknown vendor exits 1, a missing argument 2; the plain output says
    the secret is shown only once.
"""

import time

from harness import main, test, wait_for
from fixtures_it4 import (LEASE_S, World, check_continuity, db_attempts, db_audit,
                          summary, wait_running)


def stored_key(pg, name: str) -> str:
    return pg.scalar(f"SELECT encode(auth_key, 'hex') FROM vendors WHERE name = '{name}'")


def package_state(broker, pid: int) -> str:
    return broker.ctl("package", "show", pid, timeout=10)[1]["state"]


def wait_completed(broker, pid: int, timeout: float) -> None:
    wait_for(lambda: package_state(broker, pid) == "completed", timeout,
             what=f"package {pid} completed", interval=0.2)


@test(timeout=90)
def test_rotate_secret_reauth_and_handoff(env):
    broker = env.broker(extra_args=["--set", "poll_park=200ms"])
    w = World(env, broker)
    acme = w.vendor("acme", "EU-DE", cost=0.5)
    w.vendor("beta", "EU-FR", cost=5)
    old_secret = acme["secret"]
    old_key = stored_key(env.pg, "acme")
    a1 = w.agent("acme", "acme-1", w.work("acme-1", sleep=6), slots=2)
    w.agent("beta", "beta-1", w.work("beta-1", sleep=0.2), slots=2)

    slow = w.submit_one("slow", prefer="acme")
    wait_running(env.pg, "acme-1", 1)

    # --- the rotation
    t0 = time.monotonic()
    rc, out, err = broker.ctl("vendor", "rotate-secret", "acme")
    assert rc == 0, err
    assert set(out) >= {"id", "name", "state", "secret"}, out
    assert out["id"] == acme["id"] and out["name"] == "acme", out
    assert out["state"] == "active", out
    new_secret = out["secret"]
    assert isinstance(new_secret, str) and len(new_secret) == 43, out
    assert new_secret != old_secret
    new_key = stored_key(env.pg, "acme")
    assert new_key != old_key, "the stored key did not change"
    print(f"rotated in {time.monotonic() - t0:.2f}s")

    # --- acme-1 must authenticate again, cannot, and gets no more work
    a1.wait_for_log(r"broker does not know the session", timeout=15)
    a1.wait_for_log(r"broker refused the agent", timeout=15)
    assert a1.wait(timeout=30) != 0, "acme-1 should exit after failing to authenticate"
    stale = env.agent(vendor="acme", secret=old_secret, broker=broker, name="acme-old",
                      handlers={"work": w.work("acme-old", sleep=0.2)},
                      extra_env={"BT_IT4_DIR": w.dir})
    assert stale.wait(timeout=30) != 0, "an agent with the old secret was let in"
    assert "broker refused the agent" in stale.log_text()

    # EU-DE: only acme may take it, and no acme agent holds the new secret yet.
    after = w.submit_one("after", region="EU-DE")
    time.sleep(1.0)
    assert package_state(broker, after) == "queued"
    assert db_attempts(env.pg, [after]) == []

    # --- the slow package is handed off after acme-1's lease, not lost
    def handed_off():
        return [a for a in db_attempts(env.pg, [slow]) if a["attempt"] == 1
                and a["outcome"] == "lost"] or None
    wait_for(handed_off, LEASE_S + 15, what="the slow package's attempt lost",
             interval=0.2)
    wait_completed(broker, slow, 30)

    # --- an agent with the new secret gets work
    w.vendors["acme"]["secret"] = new_secret
    w.agent("acme", "acme-2", w.work("acme-2", sleep=0.2), slots=2)
    wait_completed(broker, after, 30)
    atts = db_attempts(env.pg, [after])
    assert [a["agent"] for a in atts] == ["acme-2"], atts
    nxt = w.submit_one("next", region="EU-DE")
    wait_completed(broker, nxt, 30)

    report = check_continuity(env, w, reasons=("agent-lost", "vendor-failed"))
    print(summary(report))
    assert not any(a["agent"] in ("acme-1", "acme-old") for a in report["attempts"]
                   if a["package"] in (after, nxt))

    # --- audit, and no secret anywhere it should not be
    _, rows, _ = broker.ctl("audit", "--vendor", "acme")
    rot = [r for r in rows if r["action"] == "vendor.rotate-secret"]
    assert len(rot) == 1, rows
    assert rot[0]["actor"] == "admin" and rot[0]["subject"] == "vendor:acme", rot
    assert any(r["action"] == "agent.auth_failed" for r in rows), rows
    everything = "\n".join(f"{r['action']} {r['subject']} {r['detail']}"
                           for r in db_audit(env.pg))
    for s in (old_secret, new_secret, old_key, new_key):
        assert s not in everything, "a secret or key is in audit_events"
    logs = broker.log_text() + broker.out_text()
    assert "vendor secret rotated" in logs
    for s in (old_secret, new_secret):
        assert s not in logs, "a secret is in the broker's logs"


@test(timeout=50)
def test_rotate_secret_cli(env):
    broker = env.broker()
    w = World(env, broker)
    acme = w.vendor("acme", "EU-DE")

    rc, _, err = broker.ctl("vendor", "rotate-secret", "nobody", check=False)
    assert rc == 1, (rc, err)
    assert "nobody" in err, err
    rc, _, err = broker.ctl("vendor", "rotate-secret", json=False, check=False)
    assert rc == 2, (rc, err)

    # By id, plain output: a table with the secret and the once-only warning.
    rc, text, err = broker.ctl("vendor", "rotate-secret", acme["id"], json=False)
    assert rc == 0, err
    assert "shown only this once" in text, text
    plain_secret = [ln.split()[-1] for ln in text.splitlines() if ln.startswith("secret")]
    assert len(plain_secret) == 1 and len(plain_secret[0]) == 43, text
    _, again, _ = broker.ctl("vendor", "rotate-secret", "acme")
    assert again["secret"] not in (acme["secret"], plain_secret[0])
    _, v, _ = broker.ctl("vendor", "show", "acme")
    assert v["state"] == "active", v
    rows = [r for r in broker.ctl("audit")[1] if r["action"] == "vendor.rotate-secret"]
    assert len(rows) == 2, rows


if __name__ == "__main__":
    main()
