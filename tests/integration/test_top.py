"""`batonctl top` on real processes and a real PostgreSQL.

Two vendors (acme, beta) with one agent each finish a few packages; a slow
package runs on acme when `batonctl vendor fail acme` hands it off to beta.
Then:

  * `batonctl top --once` prints one plain frame (no escape codes): both
    vendors with their states (acme failed), the acme → beta handoff, exit 0;
  * `batonctl top --interval 300ms` under a pseudo-terminal with a set window
    size redraws in place (home + clear at least twice), shows the vendors,
    quits on `q` within 2 s with status 0 and leaves the alternate screen;
    SIGTERM does the same.

The last live frame, escape codes stripped, is printed for the record.
"""

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time

from harness import binary, main, test, wait_for
from fixtures_it4 import World, sh_quote, wait_running

# payload "slow…": sleep 60 (until killed); else done at once.
HANDLER_SH = r"""#!/bin/sh
# Baton top test handler (written by test_top.py).
echo "$$" >> "$BT_IT4_DIR/handler-pids"
p=$(cat)
case "$p" in
slow*) sleep 60 ;;
*) sleep 0.05 ;;
esac
printf '%s:%s:%s\n' "$BATON_PACKAGE_ID" "$BATON_ATTEMPT" "$1"
"""

HOME_CLEAR = b"\x1b[H\x1b[J"
ALT_ON = b"\x1b[?1049h"
ALT_OFF = b"\x1b[?1049l"
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
COLS, ROWS = 60, 30  # narrower than the frame: its lines must be cut


def setup_world(env):
    broker = env.broker(extra_args=["--set", "poll_park=200ms"])
    w = World(env, broker)
    w.vendor("acme", "EU-DE", cost=0.5)
    w.vendor("beta", "EU-FR", cost=5)
    h = w.script("handler.sh", HANDLER_SH)
    w.agent("acme", "acme-1", sh_quote("/bin/sh", h, "acme-1"), slots=2)
    w.agent("beta", "beta-1", sh_quote("/bin/sh", h, "beta-1"), slots=2)
    quick = w.submit(4, "quick")
    for pid in quick:
        wait_for(lambda: broker.ctl("package", "show", pid)[1]["state"] == "completed",
                 30, what=f"package {pid} completed", interval=0.1)
    slow = w.submit_one("slow", prefer="acme")
    wait_running(env.pg, "acme-1", 1)
    broker.ctl("vendor", "fail", "acme")

    def handed_to_beta():
        rows = broker.ctl("handoffs")[1]
        return [r for r in rows if r["package"] == slow and r["to_vendor"] == "beta"] or None
    wait_for(handed_to_beta, 30, what="the acme → beta handoff", interval=0.2)
    return broker, w, slow


def top_argv(broker, *args):
    return [binary("batonctl"), "--control", broker.control, "top", *args]


def read_until(fd, deadline, buf, stop=None):
    """Appends what the pty master gives until deadline, EOF, or stop(buf)."""
    while time.monotonic() < deadline and not (stop and stop(buf)):
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the slave side is closed
            return False
        if not chunk:
            return False
        buf += chunk
    return True


def run_on_pty(broker, stop_with):
    """Runs top under a pty for ~1.5 s, then stops it with stop_with(proc,
    master). Returns (exit status, seconds it took to exit, raw output)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    proc = subprocess.Popen(top_argv(broker, "--interval", "300ms"), stdin=slave,
                            stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    buf = bytearray()
    try:
        read_until(master, time.monotonic() + 1.5, buf)
        t0 = time.monotonic()
        stop_with(proc, master)
        read_until(master, t0 + 2.0, buf, stop=lambda b: ALT_OFF in b)
        try:
            rc = proc.wait(timeout=max(0.1, t0 + 2.0 - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"top did not exit within 2 s; output tail: "
                                 f"{bytes(buf[-800:])!r}")
        took = time.monotonic() - t0
        read_until(master, time.monotonic() + 0.2, buf)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return rc, took, bytes(buf)


def last_frame(out: bytes) -> str:
    """The last frame drawn, as plain text."""
    body = out.rsplit(HOME_CLEAR, 1)[-1].split(ALT_OFF, 1)[0]
    return ESCAPE.sub("", body.decode("utf-8", "replace")).replace("\r", "")


def check_live(out: bytes, rc: int, took: float, how: str) -> str:
    assert rc == 0, (how, rc, out[-800:])
    assert took < 2.0, (how, took)
    assert out.startswith(ALT_ON) or ALT_ON in out[:64], (how, out[:200])
    draws = out.count(HOME_CLEAR)
    assert draws >= 2, f"{how}: {draws} redraws in 1.5 s at 300ms: {out[:400]!r}"
    # The alternate screen is left last: nothing is drawn after it.
    assert out.rstrip(b"\r\n").endswith(ALT_OFF), (how, out[-200:])
    frame = last_frame(out)
    assert "acme" in frame and "beta" in frame, (how, frame)
    for line in frame.splitlines():
        assert len(line) <= COLS, (how, len(line), line)
    # The packages line is longer than COLS: cut to the width, not wrapped.
    assert len(frame.splitlines()[1]) == COLS, (how, frame.splitlines()[1])
    return frame


@test(timeout=110)
def test_top_once_and_live(env):
    broker, w, slow = setup_world(env)

    # (1) One plain frame.
    r = subprocess.run(top_argv(broker, "--once"), capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (r.returncode, r.stderr)
    text = r.stdout.decode()
    assert "\x1b" not in text, text
    lines = text.splitlines()
    assert lines[0].startswith("baton top ") and "agents 2" in lines[0], lines[0]
    assert lines[1].startswith("packages ") and "completed 4" in lines[1], lines[1]
    vendor_rows = {l.split()[0]: l.split() for l in lines
                   if l.split() and l.split()[0] in ("acme", "beta")}
    assert vendor_rows["acme"][2] == "failed", vendor_rows
    assert vendor_rows["beta"][2] == "active", vendor_rows
    hand = [l for l in lines if "acme \u2192 beta" in l]
    assert len(hand) == 1 and "vendor-failed" in hand[0] and str(slow) in hand[0], text
    print("top --once:\n" + text, flush=True)

    # Not a terminal without --once: the same single frame.
    r = subprocess.run(top_argv(broker), capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and b"\x1b" not in r.stdout and b"acme" in r.stdout, r

    # --json is refused (documented in `help top`).
    rc, _, err = broker.ctl("top", check=False)
    assert rc == 2 and "--json" in err, (rc, err)

    # (2) Live under a pseudo-terminal: q quits.
    def press_q(proc, master):
        os.write(master, b"q")
    rc, took, out = run_on_pty(broker, press_q)
    frame = check_live(out, rc, took, "q")
    assert "failed" in frame and "acme \u2192 beta" in frame, frame
    assert re.search(r"rate \d+\.\d/s", frame), frame  # known from the 2nd frame on
    print(f"top live: {out.count(HOME_CLEAR)} frames in ~1.5 s, q -> exit {rc} after "
          f"{took:.2f}s; last frame ({COLS}x{ROWS}):\n{frame}", flush=True)

    # SIGTERM restores the terminal as well.
    rc, took, out = run_on_pty(broker, lambda proc, master: proc.send_signal(signal.SIGTERM))
    check_live(out, rc, took, "SIGTERM")
    print(f"top live: SIGTERM -> exit {rc} after {took:.2f}s", flush=True)


if __name__ == "__main__":
    main()
