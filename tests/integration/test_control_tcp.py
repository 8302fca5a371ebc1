"""The remote control endpoint (`batond --control tcp://HOST:PORT`) and its
admin token, on real processes and a real PostgreSQL.

test_tcp_control_token — a broker on tcp://127.0.0.1:PORT with a token:
  * `batonctl --control tcp://… --admin-token T --json vendor add …` and
    `stats` work (exit 0, one JSON document);
  * no token / a wrong token: exit 1, the broker's reason on stderr, one
    `control.unauthenticated` audit row each naming the peer and never the
    token given; the connection is closed after the answer even when more
    requests were pipelined behind the bad one;
  * hostile bytes on the port (a huge length prefix, random bytes, a random
    frame, a client that connects and says nothing) get the connection
    closed, and the broker keeps serving;
  * neither the right token nor the wrong one appears in the broker's logs.

test_unix_control_socket_private — the default Unix socket is 0600 in a
private directory, and another user is refused by the peer uid check (with
an audit row) even through a world-writable link to it.

test_tcp_control_refuses_bad_config — batond refuses to start, with one clear
line, on a tcp:// endpoint without a token, with a token under 16 bytes, and
with an endpoint that is not tcp://NUMERIC-HOST:PORT.
"""

import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time

from harness import binary, free_port, main, test, wait_for
from fixtures_it2 import (
    ctl_request, decode_ctl_reply, f_bytes, frame, log_mark, split_frames, tcp_exchange,
    wait_log)

TOKEN = "tok-3f9c1e27a4b84d0c9e51"  # 24 bytes
WRONG = "wrong-7d2a9b4f1c6e8a03b5"


def batonctl(endpoint, *args, token=None, as_json=True, timeout=30):
    """batonctl against endpoint; token goes as --admin-token. Not recorded in
    the ctl log (that is the harness's, and these calls carry tokens)."""
    argv = [binary("batonctl"), "--control", endpoint]
    if token is not None:
        argv += ["--admin-token", token]
    if as_json:
        argv.append("--json")
    argv += [str(a) for a in args]
    env = {k: v for k, v in os.environ.items() if k != "BATON_ADMIN_TOKEN"}
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       env=env, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


def replies(data):
    return [decode_ctl_reply(f) for f in split_frames(data)]


def with_token(token):
    """A stats CtlRequest carrying token (field 2)."""
    return ctl_request() + (f_bytes(2, token.encode()) if token is not None else b"")


def unauth_rows(pg):
    return pg.psql("SELECT actor, subject, detail FROM audit_events "
                   "WHERE action = 'control.unauthenticated' ORDER BY id")


@test(timeout=110)
def test_tcp_control_token(env):
    port = free_port()
    ep = f"tcp://127.0.0.1:{port}"
    broker = env.broker(control=ep, admin_token=TOKEN,
                        extra_env={"BATON_ADMIN_TOKEN": TOKEN})

    # The contract's way: --admin-token on the command line.
    rc, out, err = batonctl(ep, "vendor", "add", "acme", "--region", "EU-DE",
                            "--capability", "echo", token=TOKEN)
    assert rc == 0, (rc, out, err)
    v = json.loads(out)
    assert v["name"] == "acme" and v["id"] and v["secret"], v
    rc, out, err = batonctl(ep, "stats", token=TOKEN)
    assert rc == 0, (rc, out, err)
    st = json.loads(out)
    assert "queued" in st and "vendors" in st, st
    # And BATON_ADMIN_TOKEN (the harness's path) works too.
    assert broker.ctl("vendor", "list")[1][0]["name"] == "acme"

    # No token: exit 1, the reason on stderr.
    rc, out, err = batonctl(ep, "stats", as_json=False)
    assert rc == 1, (rc, out, err)
    assert "admin token required" in err and "--admin-token" in err, err
    # A wrong one: exit 1, with --json one error document on stdout.
    rc, out, err = batonctl(ep, "vendor", "list", token=WRONG)
    assert rc == 1, (rc, out, err)
    assert "admin token does not match" in err, err
    assert WRONG not in out + err, (out, err)
    assert json.loads(out)["exit_code"] == 1, out

    rows = wait_for(lambda: (lambda r: r if len(r) >= 2 else None)(unauth_rows(env.pg)),
                    10, what="two control.unauthenticated audit rows")
    assert len(rows) == 2, rows
    assert "admin token required" in rows[0][2] and "peer=127.0.0.1:" in rows[0][2], rows
    assert "admin token does not match" in rows[1][2], rows
    for r in rows:
        assert WRONG not in r[2] and TOKEN not in r[2], rows

    # Raw requests: a good one answers, a bad one behind it is refused and the
    # connection closes; the good one pipelined after it is never run.
    got, closed, _ = tcp_exchange(port, frame(with_token(TOKEN)) + frame(with_token(WRONG))
                                  + frame(with_token(TOKEN)))
    r = replies(got)
    assert closed, "the connection stayed open after a wrong token"
    assert [x["status_name"] for x in r] == ["OK", "UNAUTHORIZED"], r
    assert r[0]["body"] == 17 and r[1]["error"] == "admin token does not match", r
    # A request without a version but also without a token: the token comes first.
    got, closed, _ = tcp_exchange(port, frame(b""))
    assert closed and [x["status_name"] for x in replies(got)] == ["UNAUTHORIZED"], got

    # Hostile bytes: each gets the connection closed; the broker keeps serving.
    m = log_mark(broker)
    cases = [
        ("4 GiB length prefix", b"\xff\xff\xff\xff" + os.urandom(16)),
        ("random bytes", b"\xf0" + os.urandom(255)),
        ("random frame", frame(b"\x07" + os.urandom(100))),
        ("random frame 2", frame(os.urandom(300))),
    ]
    for label, data in cases:
        got, closed, dt = tcp_exchange(port, data, timeout=5)
        assert closed, f"{label}: connection kept open"
        for x in replies(got):
            assert x["status_name"] in ("BAD_REQUEST", "UNAUTHORIZED"), (label, x)
        rc, _, err = batonctl(ep, "stats", token=TOKEN)
        assert rc == 0, f"after {label}: {err}"
    wait_log(broker, m, "exceeds the limit", what="the oversized frame logged")

    # A client that connects and says nothing may not hold a slot for long,
    # nor one that stops in the middle of a frame (both at once: ~10 s each).
    silent = socket.create_connection(("127.0.0.1", port), timeout=5)
    half = socket.create_connection(("127.0.0.1", port), timeout=5)
    half.sendall(b"\x00\x00\x01\x00\x08")
    t0 = time.monotonic()
    try:
        for label, s in [("silent client", silent), ("half frame", half)]:
            s.settimeout(max(0.1, t0 + 20 - time.monotonic()))
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                data = b""
            except socket.timeout:
                raise AssertionError(f"{label}: still open after 20 s") from None
            assert data == b"", (label, data)
        dt = time.monotonic() - t0
        assert dt < 15, f"closed only after {dt:.1f}s"
    finally:
        silent.close()
        half.close()

    broker.check_running()
    rc, out, err = batonctl(ep, "stats", token=TOKEN)
    assert rc == 0, err
    assert len(unauth_rows(env.pg)) >= 3  # + the pipelined and the version-less ones

    # Nothing printed the tokens (the right one or the wrong one).
    logs = ""
    for p in broker.log_paths()[:2]:
        with open(p, errors="replace") as f:
            logs += f.read()
    assert 'msg="refused control request: bad admin token"' in logs, logs[-2000:]
    assert TOKEN not in logs, "the admin token appears in the broker's log"
    assert WRONG not in logs, "a wrong token appears in the broker's log"


def start_fails(env, name, control, token):
    """Starts batond and expects it to exit non-zero; returns its stderr."""
    d = env.path(name)
    os.makedirs(d)
    extra = {"BATON_ADMIN_TOKEN": token} if token is not None else {}
    env_ = {k: v for k, v in os.environ.items() if k != "BATON_ADMIN_TOKEN"}
    p = env.proc([binary("batond"), "serve", "--db", env.pg.dsn, "--data-dir", d,
                  "--agents", f"tcp://127.0.0.1:{free_port()}", "--control", control,
                  "--metrics", f"127.0.0.1:{free_port()}"],
                 name=name, env=env_, extra_env=extra)
    rc = p.wait(30)
    err = open(p.err_path, errors="replace").read()
    assert rc != 0, f"{name}: batond started (rc {rc})\n{err}"
    return err


def error_lines(err):
    return [ln for ln in err.splitlines() if "level=error" in ln]


@test(timeout=90)
def test_tcp_control_refuses_bad_config(env):
    ep = f"tcp://127.0.0.1:{free_port()}"

    err = start_fails(env, "no-token", ep, None)
    lines = error_lines(err)
    assert any("needs an admin token" in ln and ep in ln for ln in lines), err
    assert len(lines) == 1, lines

    err = start_fails(env, "short", ep, "k7#Pq2zW")
    lines = error_lines(err)
    assert any("admin token too short" in ln and "min_bytes=16" in ln for ln in lines), err
    assert "k7#Pq2zW" not in err, err
    assert len(lines) == 1, lines

    for name, bad in [("name-host", "tcp://localhost:7999"),
                      ("no-port", "tcp://127.0.0.1"),
                      ("port-0", "tcp://127.0.0.1:0"),
                      ("bad-v6", "tcp://[::1:7999")]:
        err = start_fails(env, name, bad, TOKEN)
        lines = error_lines(err)
        assert any("bad control endpoint" in ln and bad in ln for ln in lines), (bad, err)
        assert len(lines) == 1, lines
        assert TOKEN not in err, err


@test(timeout=60)
def test_unix_control_socket_private(env):
    """The default Unix socket is 0600 in a directory only its owner may
    write, and the broker checks who connects (SO_PEERCRED): even through a
    socket file made world-writable by mistake (hard-linked into a public
    directory here), another user is refused with a clear error and an audit
    row. As root (CI) the other user is `nobody`; without root there is no
    other user to be, and only the modes are checked."""
    broker = env.broker()
    sock = broker.control
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    dmode = stat.S_IMODE(os.stat(os.path.dirname(sock)).st_mode)
    assert dmode & 0o022 == 0, oct(dmode)
    if os.geteuid() != 0:
        print("not root: the peer uid check needs a second user; modes checked only")
        return
    # Another user cannot even open it as it is.
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        binary("batonctl"), "--control", sock, "stats"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 3, r
    # Made world-writable and reachable: the broker itself refuses.
    pub = tempfile.mkdtemp(prefix="bt-pub-", dir=os.path.dirname(env.tmp))
    env.add_cleanup(lambda: shutil.rmtree(pub, ignore_errors=True), "public socket dir")
    os.chmod(pub, 0o755)
    link = os.path.join(pub, "baton.sock")
    os.link(sock, link)
    os.chmod(link, 0o666)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        binary("batonctl"), "--control", link, "--json", "stats"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1, r
    assert "this user may not use the control socket" in r.stderr, r
    assert json.loads(r.stdout)["exit_code"] == 1, r
    rows = wait_for(lambda: env.pg.psql(
        "SELECT actor, action, detail FROM audit_events WHERE action = 'control.refused'"),
        10, what="a control.refused audit row")
    assert rows == [("control", "control.refused",
                     "user 65534 may not use this control socket")], rows
    # The owner still gets in, through either path.
    os.chmod(link, 0o600)
    assert broker.ctl("stats")[0] == 0
    broker.check_running()


if __name__ == "__main__":
    main()
