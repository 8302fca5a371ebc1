"""Issue 6, "Authentication without sending the secret": after the Ed25519
challenge-response every agent message and broker reply is sealed under
per-session keys (proto/README.md, "Sealing"). A real baton-agent talks to a
real batond through a TCP tap — a plain byte proxy that also records the
nanomsg SP-over-TCP frames both ways — and the tests then attack the broker
with what was captured, through tests/tools/bt_nnsend:

  (a) the agent's sealed Results replayed on a new socket: refused
      (Error{PROTOCOL}), logged and audited (agent.replay); the package is
      recorded completed exactly once;
  (b) the agent's Auth replayed: on its live session (agent.replay), re-aimed
      at a fresh challenge (agent.auth_failed: the signature covers the
      session, nonce and both key-exchange keys), and after the agent moved to
      a new session (Error{SESSION});
  (c) forged messages carrying the live session id — a flipped byte in a
      sealed box, a made-up box, a request in clear — are refused and audited
      (agent.bad_mac) and the real agent keeps working on the same session;
  (d) the payload and the result never cross the wire in clear (and, with
      `encrypt = 0`, they do, while forgeries are still refused).

The broker keeps serving throughout and every acknowledged package completes.
"""

import os
import socket
import struct
import threading
import time

from harness import free_port, main, test, wait_for
from fixtures_it2 import (
    BODY_AUTH, BODY_HELLO, BODY_POLL, BODY_SEALED, agent_request, all_completed, auth,
    decode_agent_reply, first, hello, nnsend, parse, poll, sealed)

MARK = b"confidential-payload-7f3a9c"
PAYLOAD = MARK + b"-" + b"q" * 1500  # the result (tr a-z A-Z) is ~1.5 KB too
TO_BROKER, TO_AGENT = 0, 1


class Tap:
    """A TCP proxy 127.0.0.1:port -> 127.0.0.1:target that forwards bytes as
    they come and keeps a copy of each connection's two byte streams, so the
    tests can read the nanomsg frames (8-byte SP header, then per message an
    8-byte big-endian length and the message: 4-byte request id + body)."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.port = free_port()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(16)
        self.conns: list[list[bytearray]] = []  # [to_broker, to_agent] per connection
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            streams = [bytearray(), bytearray()]
            with self.lock:
                self.conns.append(streams)
            for src, dst, buf in ((c, b, streams[TO_BROKER]), (b, c, streams[TO_AGENT])):
                threading.Thread(target=self._pump, args=(src, dst, buf),
                                 daemon=True).start()

    def _pump(self, src, dst, buf):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    buf += data
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.closed = True
        self.lsock.close()

    def raw(self) -> bytes:
        with self.lock:
            return b"".join(bytes(s) for conn in self.conns for s in conn)

    def frames(self, direction: int) -> list[bytes]:
        """The message bodies (request id stripped) sent in direction, in
        order, over every connection."""
        out = []
        with self.lock:
            streams = [bytes(conn[direction]) for conn in self.conns]
        for st in streams:
            i = 8  # the SP protocol header
            while i + 8 <= len(st):
                n = struct.unpack_from(">Q", st, i)[0]
                if i + 8 + n > len(st):
                    break
                out.append(st[i + 8 + 4:i + 8 + n])
                i += 8 + n
        return out


def requests(tap: Tap) -> list[dict]:
    """The agent's requests on the wire: {body, session, kind (field number),
    fields of the body, raw}."""
    out = []
    for raw in tap.frames(TO_BROKER):
        f = parse(raw)
        kind = next((k for k in range(10, 18) if k in f), None)
        out.append({"raw": raw, "session": first(f, 2), "kind": kind,
                    "body": parse(f[kind][0]) if kind else {},
                    "body_raw": f[kind][0] if kind else b""})
    return out


def call(ep: str, msg: bytes) -> dict:
    raw = nnsend(ep, msg, timeout_ms=3000)
    assert raw is not None, "the broker did not answer"
    return decode_agent_reply(raw)


def audit_rows(env, action: str) -> list:
    return env.pg.psql("SELECT actor, action, subject, detail FROM audit_events "
                       f"WHERE action = '{action}' ORDER BY id")


def setup(env, extra_env=None, name="wire-1"):
    """A broker, vendor acme (upper), a tap in front of the broker and one
    agent connected through it."""
    broker = env.broker(extra_env=extra_env or {})
    _, v, _ = broker.ctl("vendor", "add", "acme", "--region", "EU-DE",
                         "--capability", "upper")
    tap = Tap(broker.agents_port)
    agent = env.agent(vendor="acme", secret=v["secret"], brokers=[tap.endpoint],
                      name=name, slots=2, handlers={"upper": "tr a-z A-Z"})
    wait_for(lambda: agent.check_running() and any(
        x["name"] == name and x["state"] == "connected"
        for x in broker.ctl("agent", "list")[1]),
        timeout=20, what=f"agent {name} connected through the tap")
    return broker, v, tap, agent


def submit_and_complete(broker, payload: bytes) -> int:
    path = os.path.join(broker.data_dir, f"payload-{time.monotonic_ns()}")
    with open(path, "wb") as f:
        f.write(payload)
    _, pkg, _ = broker.ctl("submit", "--capability", "upper", "--payload-file", path)
    all_completed(broker, [pkg["id"]], timeout=30)
    return int(pkg["id"])


def one_session(agent) -> None:
    """The agent never had to start over: one session, no reconnect."""
    text = agent.log_text()
    assert text.count("session established") == 1, text[-3000:]
    assert "reconnecting" not in text, text[-3000:]


@test(timeout=120)
def test_replay_forgery_confidentiality(env):
    broker, _, tap, agent = setup(env)
    ep = broker.agents_endpoint
    pid = submit_and_complete(broker, PAYLOAD)
    assert broker.ctl("result", pid, json=False)[1] == PAYLOAD.decode().upper()

    # (d) Neither the payload nor the result crossed the wire in clear.
    wire = tap.raw()
    assert len(wire) > 2 * len(PAYLOAD), "the tap saw too little"
    assert MARK not in wire and MARK.upper() not in wire, "payload in clear on the wire"
    assert b"q" * 64 not in wire and b"Q" * 64 not in wire

    # Every request after Auth is sealed; the big one is the Results.
    reqs = requests(tap)
    kinds = [r["kind"] for r in reqs]
    assert kinds[:2] == [BODY_HELLO, BODY_AUTH], kinds
    assert set(kinds[2:]) == {BODY_SEALED}, kinds
    session = reqs[1]["session"]
    assert all(r["session"] == session for r in reqs[1:]), "one session"
    res_i = max(range(len(reqs)), key=lambda i: len(reqs[i]["raw"]))
    results = reqs[res_i]
    assert len(results["raw"]) > len(PAYLOAD), "no Results frame seen"
    # The agent has sent newer requests since (it polls every second).
    wait_for(lambda: len(requests(tap)) > res_i + 1, timeout=10,
             what="a request after the Results")

    # (a) The captured Results replayed on a new socket: refused as a replay.
    r = call(ep, results["raw"])
    assert r["kind"] == "error" and r["code_name"] == "PROTOCOL", r
    assert "replay" in r["message"], r
    broker.wait_for_log(r'msg="refused agent message" action=agent\.replay vendor=acme '
                        r'agent=wire-1')
    rows = wait_for(lambda: audit_rows(env, "agent.replay"), timeout=10,
                    what="an agent.replay audit row")
    assert rows[0][:3] == ("agent", "agent.replay", "agent:acme/wire-1"), rows
    assert "replayed message counter=" in rows[0][3], rows
    _, p, _ = broker.ctl("package", "show", pid)
    assert p["state"] == "completed", p
    assert [(a["attempt"], a["outcome"]) for a in p["attempts"]] == [(1, "completed")], p
    assert broker.ctl("stats")[1]["completed"] == 1

    # (c) Forgeries with the live session id.
    last = requests(tap)[-1]
    assert last["kind"] == BODY_SEALED
    counter, box = first(last["body"], 1), first(last["body"], 3)
    forged_box = bytearray(box)
    forged_box[len(box) // 2] ^= 0x40
    forged = [
        agent_request(BODY_SEALED, sealed(counter, bytes(forged_box)), session=session),
        agent_request(BODY_SEALED, sealed(counter + 1000, os.urandom(80)), session=session),
    ]
    for msg in forged:
        r = call(ep, msg)
        assert r["kind"] == "error" and r["code_name"] == "PROTOCOL", r
        assert "bad mac" in r["message"], r
    # In clear on a sealed session: refused the same way.
    r = call(ep, agent_request(BODY_POLL, poll(2), session=session, ack_seq=99))
    assert r["kind"] == "error" and r["code_name"] == "PROTOCOL", r
    assert "must be sealed" in r["message"], r
    broker.wait_for_log(r'msg="refused agent message" action=agent\.bad_mac vendor=acme '
                        r'agent=wire-1')
    rows = wait_for(lambda: audit_rows(env, "agent.bad_mac"), timeout=10,
                    what="an agent.bad_mac audit row")
    assert rows[0][:3] == ("agent", "agent.bad_mac", "agent:acme/wire-1"), rows

    # The real agent keeps working, on the same session; nothing is lost.
    ids = [submit_and_complete(broker, b"after forgery %d" % i) for i in range(3)]
    for i in ids:
        _, p, _ = broker.ctl("package", "show", i)
        assert p["agent"] == "wire-1" and len(p["attempts"]) == 1, p
    one_session(agent)
    assert broker.ctl("stats")[1]["completed"] == 4
    broker.check_running()
    tap.close()


@test(timeout=120)
def test_replayed_auth_refused(env):
    broker, v, tap, agent = setup(env)
    ep = broker.agents_endpoint
    reqs = requests(tap)
    old_auth = reqs[1]
    assert old_auth["kind"] == BODY_AUTH
    s1 = old_auth["session"]
    assert len(first(old_auth["body"], 3, b"")) == 32, "Auth carries the agent's kx key"

    # The Auth replayed while its session lives: refused, the session untouched.
    r = call(ep, old_auth["raw"])
    assert r["kind"] == "error" and r["code_name"] == "PROTOCOL", r
    assert "authenticated already" in r["message"], r
    rows = wait_for(lambda: audit_rows(env, "agent.replay"), timeout=10,
                    what="an agent.replay audit row")
    assert rows[0][3] == "auth for a session already authenticated", rows

    # Re-aimed at a fresh challenge for the same agent: the signature covers
    # the session, the nonce and both kx keys, so it fails.
    r = call(ep, agent_request(BODY_HELLO, hello("acme", "wire-1", ("upper",), slots=2)))
    assert r["kind"] == "challenge" and len(r["kx"]) == 32 and r["seal"] == 1, r
    s2 = r["session"]
    r = call(ep, agent_request(BODY_AUTH, old_auth["body_raw"], session=s2))
    assert (r["kind"], r["code_name"], r["message"]) == \
        ("error", "AUTH", "authentication failed"), r
    rows = wait_for(lambda: audit_rows(env, "agent.auth_failed"), timeout=10,
                    what="an agent.auth_failed audit row")
    assert rows[0][2:] == ("agent:acme/wire-1", "bad signature"), rows
    r = call(ep, agent_request(BODY_POLL, poll(1), session=s2))
    assert r["kind"] == "error" and r["code_name"] == "SESSION", r

    # The real agent was not disturbed by any of it.
    submit_and_complete(broker, b"still mine")
    one_session(agent)

    # The agent restarts: a new session replaces the old one, and the old Auth
    # is refused outright (its session is gone).
    agent.stop()
    agent.start()
    wait_for(lambda: len([r for r in requests(tap) if r["kind"] == BODY_AUTH]) >= 2,
             timeout=20, what="the restarted agent's Auth")
    wait_for(lambda: any(x["name"] == "wire-1" and x["state"] == "connected"
                         for x in broker.ctl("agent", "list")[1]),
             timeout=20, what="wire-1 connected again")
    s3 = [r for r in requests(tap) if r["kind"] == BODY_AUTH][-1]["session"]
    assert s3 not in (s1, s2)
    pid = submit_and_complete(broker, b"after restart")
    r = call(ep, old_auth["raw"])
    assert r["kind"] == "error" and r["code_name"] == "SESSION", r
    _, p, _ = broker.ctl("package", "show", pid)
    assert p["agent"] == "wire-1", p
    assert all(x["name"] == "wire-1" for x in broker.ctl("agent", "list")[1])
    broker.check_running()
    tap.close()


@test(timeout=120)
def test_mac_only_mode(env):
    """encrypt = 0: bodies cross in clear behind an HMAC, and the rules hold."""
    broker, _, tap, agent = setup(env, extra_env={"BATON_ENCRYPT": "0"})
    ep = broker.agents_endpoint
    broker.wait_for_log(r'msg="listening for agents" .*sealing=mac-only')
    pid = submit_and_complete(broker, PAYLOAD)
    wire = tap.raw()
    assert MARK in wire and MARK.upper() in wire, "MAC-only mode does not encrypt"
    reqs = requests(tap)
    assert set(r["kind"] for r in reqs[2:]) == {BODY_SEALED}
    session = reqs[1]["session"]
    big = max(reqs, key=lambda r: len(r["raw"]))
    # The clear body is still authenticated: one changed letter of the result
    # is a bad MAC, and the genuine copy is an old counter by now.
    counter, box = first(big["body"], 1), first(big["body"], 3)
    i = box.index(MARK.upper())
    altered = box[:i] + b"X" + box[i + 1:]
    r = call(ep, agent_request(BODY_SEALED, sealed(counter, altered), session=session))
    assert r["kind"] == "error" and "bad mac" in r["message"], r
    wait_for(lambda: len(requests(tap)) > reqs.index(big) + 1, timeout=10,
             what="a request after the Results")
    r = call(ep, big["raw"])
    assert r["kind"] == "error" and "replay" in r["message"], r
    assert broker.ctl("result", pid, json=False)[1] == PAYLOAD.decode().upper()
    submit_and_complete(broker, b"mac only")
    one_session(agent)
    broker.check_running()
    tap.close()


if __name__ == "__main__":
    main()
