"""Helpers for the hostile-input, CLI-contract, no-blocking and protocol tests
(test_bad_input.py, test_cli_contract.py, test_no_blocking.py,
test_protocol.py). Python 3 stdlib only, like harness.py.

  * a tiny protobuf encoder/decoder (varints, length-delimited fields,
    fixed64), enough to build AgentRequest/CtlRequest messages of
    proto/baton.proto by hand and to read AgentReply/CtlReply;
  * nnsend(): one nanomsg request through the bt_nnsend tool
    (tests/tools/nnsend.c), and nnflood() for connection churn;
  * ctl_exchange(): raw bytes on the control socket, the reply frames back;
  * a vendor + agent setup and a background submitter used by several tests.

Field numbers below are those of proto/baton.proto; a test that needs one more
adds it here rather than hard-coding numbers in the test.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import time

from harness import HarnessError, build_dir, wait_for

# ---- protobuf wire format ----------------------------------------------------------

WT_VARINT, WT_I64, WT_LEN, WT_I32 = 0, 1, 2, 5


def varint(n: int) -> bytes:
    """Unsigned LEB128; negative ints as their 64-bit two's complement."""
    if n < 0:
        n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(field: int, wt: int) -> bytes:
    return varint(field << 3 | wt)


def f_varint(field: int, value: int) -> bytes:
    return tag(field, WT_VARINT) + varint(value)


def f_sint(field: int, value: int) -> bytes:
    """sint32/sint64 (zigzag)."""
    return f_varint(field, (value << 1) ^ (value >> 63))


def f_fixed64(field: int, value: int) -> bytes:
    return tag(field, WT_I64) + struct.pack("<Q", value & ((1 << 64) - 1))


def f_bytes(field: int, value) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    return tag(field, WT_LEN) + varint(len(value)) + bytes(value)


f_msg = f_bytes  # an embedded message is length-delimited bytes


def read_varint(buf: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i
        if shift > 70:
            raise ValueError("varint too long")


def parse(buf: bytes) -> dict[int, list]:
    """Decodes one message level: {field number: [values]} where a value is
    an int (varint, fixed) or bytes (length-delimited; parse() it again for
    an embedded message). Raises ValueError on malformed input."""
    out: dict[int, list] = {}
    i = 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        field, wt = key >> 3, key & 7
        if wt == WT_VARINT:
            v, i = read_varint(buf, i)
        elif wt == WT_I64:
            if i + 8 > len(buf):
                raise ValueError("truncated fixed64")
            v = struct.unpack_from("<Q", buf, i)[0]
            i += 8
        elif wt == WT_I32:
            if i + 4 > len(buf):
                raise ValueError("truncated fixed32")
            v = struct.unpack_from("<I", buf, i)[0]
            i += 4
        elif wt == WT_LEN:
            n, i = read_varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated length-delimited field")
            v = bytes(buf[i:i + n])
            i += n
        else:
            raise ValueError(f"wire type {wt} not supported")
        out.setdefault(field, []).append(v)
    return out


def first(fields: dict, n: int, default=None):
    v = fields.get(n)
    return v[0] if v else default


# ---- proto/baton.proto: agent protocol ----------------------------------------------

PROTOCOL_VERSION = 1

# AgentRequest body fields
BODY_HELLO, BODY_AUTH, BODY_POLL, BODY_HEARTBEAT = 10, 11, 12, 13
BODY_PROGRESS, BODY_RESULTS, BODY_BYE = 14, 15, 16
BODY_SEALED = 17  # every request after Welcome (Sealed{counter=1, reply_to=2, box=3})

# ErrorCode
ERROR_NAMES = {0: "UNSPECIFIED", 1: "PROTOCOL", 2: "VERSION", 3: "AUTH",
               4: "SESSION", 5: "LIMIT", 6: "UNAVAILABLE"}


def agent_request(body_field: int | None = None, body: bytes = b"",
                  version: int | None = PROTOCOL_VERSION, session: int | None = None,
                  ack_seq: int | None = None) -> bytes:
    """AgentRequest{version=1, session=2 (fixed64), ack_seq=3, body oneof 10-16}."""
    out = b""
    if version is not None:
        out += f_varint(1, version)
    if session is not None:
        out += f_fixed64(2, session)
    if ack_seq is not None:
        out += f_varint(3, ack_seq)
    if body_field is not None:
        out += f_msg(body_field, body)
    return out


def hello(vendor: str, agent_name: str, capabilities=("upper",), slots: int = 1,
          software: str = "it2-handmade/0") -> bytes:
    """Hello{vendor=1, agent_name=2, capabilities=3, slots=4, software=5}."""
    out = f_bytes(1, vendor) + f_bytes(2, agent_name)
    for c in capabilities:
        out += f_bytes(3, c)
    return out + f_varint(4, slots) + f_bytes(5, software)


def auth(signature: bytes, held=(), kx: bytes | None = None) -> bytes:
    """Auth{signature=1, held=2 (Held{package_id=1, attempt=2}),
    kx_public_key=3}."""
    out = f_bytes(1, signature)
    for pid, att in held:
        out += f_msg(2, f_varint(1, pid) + f_varint(2, att))
    if kx is not None:
        out += f_bytes(3, kx)
    return out


def sealed(counter: int, box: bytes, reply_to: int | None = None) -> bytes:
    """Sealed{counter=1 (fixed64), reply_to=2 (fixed64), box=3}."""
    out = f_fixed64(1, counter)
    if reply_to is not None:
        out += f_fixed64(2, reply_to)
    return out + f_bytes(3, box)


def poll(free_slots: int = 1) -> bytes:
    return f_varint(1, free_slots)


def decode_agent_reply(raw: bytes) -> dict:
    """AgentReply → {"version", "kind": challenge|welcome|work|error|None, ...}:
    challenge: session, nonce, kx, seal; error: code (int), code_name, message;
    sealed: counter, reply_to, box (an inner AgentReply under the session key);
    welcome: agent_id, lease_ms, poll_ms; work: assignments [(seq, package_id,
    attempt, capability)]."""
    f = parse(raw)
    r = {"version": first(f, 1), "kind": None, "raw": raw}
    if 10 in f:
        c = parse(f[10][0])
        r.update(kind="challenge", session=first(c, 1), nonce=first(c, 2, b""),
                 kx=first(c, 3, b""), seal=first(c, 4))
    elif 11 in f:
        w = parse(f[11][0])
        r.update(kind="welcome", agent_id=first(w, 1), heartbeat_ms=first(w, 2),
                 lease_ms=first(w, 3), poll_ms=first(w, 4),
                 max_message_bytes=first(w, 5))
    elif 12 in f:
        w = parse(f[12][0])
        assigns = []
        for a in w.get(1, []):
            af = parse(a)
            assigns.append((first(af, 1), first(af, 2), first(af, 3),
                            first(af, 4, b"").decode("utf-8", "replace")))
        r.update(kind="work", assignments=assigns)
    elif 13 in f:
        e = parse(f[13][0])
        code = first(e, 1, 0)
        r.update(kind="error", code=code, code_name=ERROR_NAMES.get(code, str(code)),
                 message=first(e, 2, b"").decode("utf-8", "replace"))
    elif 14 in f:
        sb = parse(f[14][0])
        r.update(kind="sealed", counter=first(sb, 1), reply_to=first(sb, 2, 0),
                 box=first(sb, 3, b""))
    return r


# ---- proto/baton.proto: control protocol ----------------------------------------------

# CtlRequest body fields
CTL_VENDOR_ADD, CTL_VENDOR_LIST, CTL_VENDOR_SHOW, CTL_AGENT_LIST = 10, 11, 12, 13
CTL_SUBMIT, CTL_PACKAGE_SHOW, CTL_PACKAGE_LIST, CTL_RESULT = 14, 15, 16, 17
CTL_WAIT, CTL_STATS = 18, 19

CTL_STATUS_NAMES = {0: "OK", 1: "REJECTED", 2: "NOT_FOUND", 3: "BAD_REQUEST",
                    4: "UNAVAILABLE", 5: "UNAUTHORIZED"}


def ctl_request(body_field: int | None = CTL_STATS, body: bytes = b"",
                version: int | None = PROTOCOL_VERSION) -> bytes:
    """CtlRequest{version=1, admin_token=2, body oneof 10-19}."""
    out = b""
    if version is not None:
        out += f_varint(1, version)
    if body_field is not None:
        out += f_msg(body_field, body)
    return out


def frame(body: bytes) -> bytes:
    """The control socket's framing: 4-byte big-endian length + body."""
    return struct.pack(">I", len(body)) + body


def decode_ctl_reply(raw: bytes) -> dict:
    """CtlReply → {"version", "status" (int), "status_name", "error", "body"
    (the field number of the body or None)}."""
    f = parse(raw)
    body = next((n for n in range(10, 18) if n in f), None)
    status = first(f, 2, 0)
    return {"version": first(f, 1), "status": status,
            "status_name": CTL_STATUS_NAMES.get(status, str(status)),
            "error": first(f, 3, b"").decode("utf-8", "replace"), "body": body}


def split_frames(data: bytes) -> list[bytes]:
    """Bodies of the complete frames in data (a trailing partial one is
    ignored)."""
    out, i = [], 0
    while i + 4 <= len(data):
        n = struct.unpack_from(">I", data, i)[0]
        if i + 4 + n > len(data):
            break
        out.append(data[i + 4:i + 4 + n])
        i += 4 + n
    return out


def ctl_exchange(sock_path: str, data: bytes, timeout: float = 5.0,
                 shut_write: bool = False) -> tuple[bytes, bool]:
    """Connects to the control socket, writes data, and reads until the broker
    closes the connection or timeout passes. shut_write: half-close after
    writing (EOF tells the broker no more frames come). Returns (bytes
    received, closed by the broker)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
    except OSError:
        s.close()
        raise
    got, closed, _ = _exchange(s, data, timeout, shut_write)
    return got, closed


def tcp_exchange(port: int, data: bytes, timeout: float = 5.0,
                 shut_write: bool = False) -> tuple[bytes, bool, float]:
    """ctl_exchange on a TCP control endpoint at 127.0.0.1:port. Returns
    (bytes received, closed by the broker, seconds until it closed or the
    timeout passed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return _exchange(s, data, timeout, shut_write)


def _exchange(s: socket.socket, data: bytes, timeout: float,
              shut_write: bool) -> tuple[bytes, bool, float]:
    """Writes data on the connected socket s and reads until the peer closes
    or timeout passes; closes s."""
    got = bytearray()
    closed = False
    t0 = time.monotonic()
    try:
        try:
            if data:
                s.sendall(data)
            if shut_write:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the broker may close before reading everything
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            got += chunk
    finally:
        s.close()
    return bytes(got), closed, time.monotonic() - t0


# ---- nanomsg through bt_nnsend ----------------------------------------------------------

def nnsend_path() -> str:
    p = os.path.join(build_dir(), "tests", "tools", "bt_nnsend")
    if not os.access(p, os.X_OK):
        raise HarnessError(f"bt_nnsend is not built: {p} missing")
    return p


def nnsend(endpoint: str, data: bytes | None = None, timeout_ms: int = 3000,
           zeros: int | None = None, file: str | None = None,
           rcvmax: int | None = None) -> bytes | None:
    """Sends one nanomsg request (REQ socket) and returns the reply bytes, or
    None when no reply came within timeout_ms. Raises on tool errors."""
    argv = [nnsend_path(), endpoint]
    if zeros is not None:
        argv += ["--zeros", str(zeros)]
    elif file is not None:
        argv += ["--file", file]
    else:
        argv += ["--hex", (data or b"").hex()]
    argv += ["--timeout", str(timeout_ms)]
    if rcvmax is not None:
        argv += ["--rcvmax", str(rcvmax)]
    r = subprocess.run(argv, capture_output=True, text=True,
                       timeout=timeout_ms / 1000 + 15)
    if r.returncode == 3:
        assert r.stdout.strip() == "no reply", r.stdout
        return None
    if r.returncode != 0:
        raise HarnessError(f"bt_nnsend exited {r.returncode}: {r.stderr.strip()}")
    return bytes.fromhex(r.stdout.strip())


def nnflood(endpoint: str, n: int, parallel: int = 50, timeout_ms: int = 2000) -> dict:
    """Opens and drops n nanomsg connections; returns {opened, established}."""
    r = subprocess.run([nnsend_path(), endpoint, "--flood", str(n), "--parallel",
                        str(parallel), "--timeout", str(timeout_ms)],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise HarnessError(f"bt_nnsend --flood exited {r.returncode}: {r.stderr}")
    parts = dict(kv.split("=") for kv in r.stdout.split()[1:])
    return {k: int(v) for k, v in parts.items()}


def tcp_send_raw(host: str, port: int, data: bytes, linger: float = 0.2) -> None:
    """A plain TCP connection (no SP handshake of ours): writes data, waits a
    moment for the broker to read it, closes."""
    with socket.create_connection((host, port), timeout=5) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return
        time.sleep(linger)


def endpoint_host_port(endpoint: str) -> tuple[str, int]:
    """tcp://HOST:PORT → (HOST, PORT)."""
    hp = endpoint.split("://", 1)[1]
    host, port = hp.rsplit(":", 1)
    return host, int(port)


# ---- setups shared by the tests ------------------------------------------------------------

def vendor_with_agent(env, broker, vendor: str = "acme", region: str = "EU-DE",
                      capability: str = "upper", slots: int = 2,
                      handler: str = "tr a-z A-Z", agent_name: str | None = None):
    """Adds a vendor and starts one agent for it; returns (vendor json, Agent)
    once the agent is listed as connected."""
    _, v, _ = broker.ctl("vendor", "add", vendor, "--region", region,
                         "--capability", capability)
    a = env.agent(vendor=vendor, secret=v["secret"], broker=broker,
                  name=agent_name or f"{vendor}-a1", slots=slots,
                  handlers={capability: handler})
    wait_for(lambda: a.check_running() and any(
        x["name"] == a.agent_name and x["state"] == "connected"
        for x in broker.ctl("agent", "list")[1]),
        timeout=20, what=f"agent {a.agent_name} connected")
    return v, a


def log_since(proc, offset: int) -> str:
    """The broker's stderr from byte offset on (see log_mark)."""
    with open(proc.err_path, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def log_mark(proc) -> int:
    """Current size of proc's stderr, to read only what comes after."""
    try:
        return os.path.getsize(proc.err_path)
    except OSError:
        return 0


def wait_log(proc, offset: int, needle: str, timeout: float = 5.0,
             what: str | None = None) -> str:
    """Waits until needle (plain text) appears in proc's stderr after offset;
    returns the first line holding it."""
    def seen():
        for line in log_since(proc, offset).splitlines():
            if needle in line:
                return line
        return None
    return wait_for(seen, timeout, what=what or f"log line {needle!r}", logs=[proc])


def stats_fast(broker, limit: float = 2.0) -> dict:
    """`batonctl stats` must answer (exit 0) within limit seconds."""
    t0 = time.monotonic()
    rc, st, err = broker.ctl("stats", check=False, timeout=limit + 5)
    dt = time.monotonic() - t0
    if rc != 0:
        raise AssertionError(f"batonctl stats exited {rc}: {err.strip()}")
    if dt > limit:
        raise AssertionError(f"batonctl stats took {dt:.2f}s (limit {limit}s)")
    return st


class Submitter:
    """Submits packages in a background thread (one `batonctl submit` at a
    time, every `interval` seconds) until stop(); records every acknowledged
    id and every failure."""

    def __init__(self, broker, capability: str = "upper", interval: float = 0.2,
                 prefix: str = "bg"):
        self.broker, self.capability = broker, capability
        self.interval, self.prefix = interval, prefix
        self.ids: list[int] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Submitter":
        self._t.start()
        return self

    def _run(self):
        n = 0
        while not self._stop.is_set():
            n += 1
            rc, out, err = self.broker.ctl("submit", "--capability", self.capability,
                                           "--payload", f"{self.prefix}-{n}",
                                           check=False, timeout=30)
            if rc == 0 and isinstance(out, dict) and "id" in out:
                self.ids.append(int(out["id"]))
            else:
                self.failures.append(f"rc={rc} {err.strip()[:200]}")
            self._stop.wait(self.interval)

    def stop(self) -> list[int]:
        self._stop.set()
        self._t.join(60)
        return self.ids


def all_completed(broker, ids, timeout: float = 30.0) -> None:
    """Waits (via `batonctl wait`) until none of ids is pending, then checks
    that every one of them completed (none dead or cancelled)."""
    ids = [int(i) for i in ids]
    if not ids:
        return

    def done():
        rc, w, _ = broker.ctl("wait", *ids, "--timeout", "2s", check=False, timeout=30)
        return w if isinstance(w, dict) and w.get("pending") == 0 else None
    w = wait_for(done, timeout, what=f"{len(ids)} packages done", interval=0.2)
    assert w["completed"] == len(ids), f"not all completed: {w}"
