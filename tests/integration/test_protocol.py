"""The agent protocol spoken by hand (proto/README.md, "Agent protocol"): each
request is a protobuf AgentRequest built in Python (fixtures_it2) and sent
over a real nanomsg REQ socket by tests/tools/bt_nnsend; the broker's
AgentReply is decoded back in Python.

  * Hello with version 2 → Error{VERSION} whose message names both versions;
  * Hello for an unknown vendor → Challenge (the broker reveals nothing yet),
    then Auth with a wrong signature → Error{AUTH, "authentication failed"},
    the same answer a known vendor with a wrong signature gets; both are
    logged and audited (audit_events action agent.auth_failed);
  * the failed session is gone: a Poll on it → Error{SESSION}; no package is
    ever assigned to the fake agent, while a real agent gets it;
  * a request with an unknown session → Error{SESSION}; a Poll on a session
    that has not authenticated yet → Error{PROTOCOL} and the session dies.
"""

import os
import re
import time

from harness import main, test, wait_for
from fixtures_it2 import (
    BODY_AUTH, BODY_HELLO, BODY_POLL, agent_request, auth, decode_agent_reply,
    hello, nnsend, poll, vendor_with_agent)


def call(ep, msg, timeout_ms=3000):
    raw = nnsend(ep, msg, timeout_ms=timeout_ms)
    assert raw is not None, "the broker did not answer"
    return decode_agent_reply(raw)


def handshake(ep, vendor, agent_name, caps=("upper",)):
    """Hello → Challenge; returns the session."""
    r = call(ep, agent_request(BODY_HELLO, hello(vendor, agent_name, caps, slots=2)))
    assert r["kind"] == "challenge", r
    assert r["version"] == 1, r
    assert r["session"] not in (None, 0), r
    assert len(r["nonce"]) == 32, r
    return r["session"]


def audit_rows(env, action):
    return env.pg.psql("SELECT actor, action, subject, detail FROM audit_events "
                       f"WHERE action = '{action}' ORDER BY id")


@test(timeout=90)
def test_version_mismatch(env):
    broker = env.broker()
    ep = broker.agents_endpoint
    for version in (2, 0, 4294967295):  # 0 present on the wire is still a number
        r = call(ep, agent_request(BODY_HELLO, hello("acme", "v-agent"), version=version))
        assert r["kind"] == "error" and r["code_name"] == "VERSION", r
        # Names the version it got and the one it speaks.
        assert re.search(rf"\b{version}\b", r["message"]), r
        assert re.search(r"\b1\b", r["message"]), r
        assert r["version"] == 1, r
    # No version at all is a malformed message rather than another version.
    r = call(ep, agent_request(BODY_HELLO, hello("acme", "v-agent"), version=None))
    assert r["kind"] == "error" and r["code_name"] == "PROTOCOL", r
    assert "no protocol version" in r["message"], r
    broker.wait_for_log(r'msg="rejected agent message" reason="protocol version 2 '
                        r'not supported; this broker speaks 1"')
    broker.check_running()


@test(timeout=90)
def test_failed_auth_gets_no_work(env):
    broker = env.broker()
    ep = broker.agents_endpoint
    _, v, _ = broker.ctl("vendor", "add", "acme", "--region", "EU-DE",
                         "--capability", "upper")

    # An unknown vendor still gets a Challenge: Hello alone reveals nothing.
    s1 = handshake(ep, "ghost", "g1")
    r = call(ep, agent_request(BODY_AUTH, auth(os.urandom(64)), session=s1))
    assert r["kind"] == "error" and r["code_name"] == "AUTH", r
    assert r["message"] == "authentication failed", r

    # A known vendor with a wrong signature: the very same answer.
    s2 = handshake(ep, "acme", "impostor")
    r2 = call(ep, agent_request(BODY_AUTH, auth(os.urandom(64), held=[(1, 1)]), session=s2))
    assert (r2["kind"], r2["code_name"], r2["message"]) == \
        ("error", "AUTH", "authentication failed"), r2

    # Logged and audited, with the reason kept for the operator.
    broker.wait_for_log(r'msg="refused agent" vendor=ghost agent=g1 reason="unknown vendor"')
    broker.wait_for_log(r'msg="refused agent" vendor=acme agent=impostor '
                        r'reason="bad signature"')
    rows = wait_for(lambda: len(audit_rows(env, "agent.auth_failed")) >= 2 and
                    audit_rows(env, "agent.auth_failed"), timeout=10,
                    what="two agent.auth_failed audit rows")
    assert ("agent", "agent.auth_failed", "agent:ghost/g1", "unknown vendor") in rows, rows
    assert ("agent", "agent.auth_failed", "agent:acme/impostor", "bad signature") in rows, rows

    # The failed sessions are gone: polling on them is refused, and Auth
    # cannot be retried on them either.
    for s in (s1, s2):
        r = call(ep, agent_request(BODY_POLL, poll(2), session=s))
        assert r["kind"] == "error" and r["code_name"] == "SESSION", r
    r = call(ep, agent_request(BODY_AUTH, auth(os.urandom(64)), session=s2))
    assert r["kind"] == "error" and r["code_name"] == "SESSION", r

    # Work submitted now is never assigned to the impostor: it polls (on its
    # dead session and on a fresh, unauthenticated one) while the package waits.
    _, pkg, _ = broker.ctl("submit", "--capability", "upper", "--payload", "secret data")
    pid = pkg["id"]
    s3 = handshake(ep, "acme", "impostor")
    r = call(ep, agent_request(BODY_POLL, poll(2), session=s3))
    assert r["kind"] == "error" and r["code_name"] == "PROTOCOL", r  # auth first
    r = call(ep, agent_request(BODY_POLL, poll(2), session=s3))
    assert r["kind"] == "error" and r["code_name"] == "SESSION", r  # and it died
    t_end = time.monotonic() + 1.5
    while time.monotonic() < t_end:
        r = call(ep, agent_request(BODY_POLL, poll(2), session=s2))
        assert r["kind"] == "error" and r["code_name"] == "SESSION", r
        _, p, _ = broker.ctl("package", "show", pid)
        assert p["state"] == "queued" and p["agent"] is None and p["attempts"] == [], p
        time.sleep(0.2)
    agents = broker.ctl("agent", "list")[1]
    assert agents == [], f"a refused agent is listed: {agents}"
    assert env.pg.scalar("SELECT count(*) FROM attempts") == "0"

    # A real agent of the same vendor gets it and completes it.
    real = env.agent(vendor="acme", secret=v["secret"], name="real-1", slots=1,
                     handlers={"upper": "tr a-z A-Z"})
    wait_for(lambda: real.check_running() and
             broker.ctl("package", "show", pid)[1]["state"] == "completed",
             timeout=20, what="the real agent completes the package")
    _, p, _ = broker.ctl("package", "show", pid)
    assert p["agent"] == "real-1" and p["vendor"] == "acme", p
    assert [a["agent"] for a in p["attempts"]] == ["real-1"], p["attempts"]
    assert broker.ctl("result", pid, json=False)[1] == "SECRET DATA"
    broker.check_running()


@test(timeout=90)
def test_unknown_session(env):
    broker = env.broker()
    ep = broker.agents_endpoint
    _, agent = vendor_with_agent(env, broker)
    for body, msg in [(BODY_POLL, poll(1)),
                      (BODY_AUTH, auth(b"\x01" * 64))]:
        r = call(ep, agent_request(body, msg, session=0x1234567890ABCDEF, ack_seq=3))
        assert r["kind"] == "error" and r["code_name"] == "SESSION", r
        assert "hello" in r["message"], r  # tells the agent what to do
    # Session 0 is "missing", not unknown: malformed.
    r = call(ep, agent_request(BODY_POLL, poll(1), session=0))
    assert r["kind"] == "error" and r["code_name"] == "PROTOCOL", r
    # The real agent is unaffected and still works.
    _, pkg, _ = broker.ctl("submit", "--capability", "upper", "--payload", "ok")
    wait_for(lambda: broker.ctl("package", "show", pkg["id"])[1]["state"] == "completed",
             timeout=20, what="package completed")
    assert broker.ctl("result", pkg["id"], json=False)[1] == "OK"
    agent.check_running()


if __name__ == "__main__":
    main()
