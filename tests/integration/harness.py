"""Integration-test harness for Baton (Python 3 stdlib only).

Each integration test is a script run by CTest with BATON_BUILD_DIR set. It
drives real processes: a private PostgreSQL, batond, baton-agent and batonctl.

    from harness import test, main, wait_for

    @test
    def test_submit_completes(env):           # env: a fresh TestEnv
        broker = env.broker()                 # batond on free ports, ready
        _, v, _ = broker.ctl("vendor", "add", "acme", "--region", "EU-DE",
                             "--capability", "echo")
        env.agent(vendor="acme", secret=v["secret"], handlers={"echo": "cat"})
        _, pkg, _ = broker.ctl("submit", "--capability", "echo", "--payload", "hi")
        wait_for(lambda: broker.ctl("package", "show", pkg["id"])[1]["state"]
                 == "completed", timeout=20, what="package completed")
        assert env.pg.psql("SELECT count(*) FROM attempts") == [("1",)]

    if __name__ == "__main__":
        main()

Rules it keeps so `ctest -j2` is safe and failures are debuggable:
  * every test gets its own temp dir and its own free ports;
  * every process goes through the harness, logs to files in the temp dir, and
    is torn down (SIGTERM, wait, SIGKILL of its process group) even when the
    test fails or is interrupted; its parent-death signal covers a harness that
    is itself killed;
  * what a process leaves outside its process group (the postmaster that
    batond's embedded default starts through pg_ctl) is registered with
    env.add_cleanup(); processes_in(DIR) finds a cluster's processes;
  * on failure the temp dir is kept and printed, with the tails of the logs;
  * PostgreSQL keeps its default durability (fsync, synchronous_commit on).

Environment: BATON_BUILD_DIR (binaries), BATON_KEEP_TMP=1 (keep temp dirs
even on success), BATON_TEST_TMPDIR (where temp dirs go), BATON_PG_BINDIR
(PostgreSQL binaries), BATON_TEST_PG_TEMPLATE=0 (run initdb for every
cluster instead of copying a shared never-started one), BATON_TEST_FILTER
(run only tests whose name contains it; command line arguments do the same).
"""

from __future__ import annotations

import atexit
import csv
import ctypes
import glob
import hashlib
import inspect
import io
import json as _json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

__all__ = [
    "Abort", "Agent", "Broker", "BrokerGroup", "CtlError", "HarnessError",
    "PgServer", "Proc", "ProcessExited", "PsqlError", "TestEnv", "WaitTimeout",
    "binary", "build_dir", "free_port", "main", "processes_in", "run_batonctl",
    "test", "wait_for",
]

IS_ROOT = os.geteuid() == 0
SUN_PATH_MAX = 107  # usable bytes of sockaddr_un.sun_path (108 with the NUL)


# ---- errors ------------------------------------------------------------------

class HarnessError(AssertionError):
    """A failure the harness detected (a test failure, not a harness bug)."""


class WaitTimeout(HarnessError):
    """wait_for() ran out of time; the message says what and shows logs."""


class Abort(HarnessError):
    """Raised by a wait_for() predicate to stop waiting at once."""


class ProcessExited(Abort):
    """A process the test needs running has exited."""


class CtlError(HarnessError):
    """batonctl exited non-zero (with check=True) or printed bad JSON."""

    def __init__(self, msg, rc=None, stdout="", stderr=""):
        super().__init__(msg)
        self.rc, self.stdout, self.stderr = rc, stdout, stderr


class PsqlError(HarnessError):
    """psql failed (ON_ERROR_STOP): bad SQL or the server is down."""


class _Interrupted(BaseException):
    """SIGTERM/SIGALRM turned into an exception so teardown still runs. A
    BaseException, so wait_for's catch-all never swallows it."""


class TestTimeout(_Interrupted):
    """A test ran past its @test(timeout=...)."""


# ---- small helpers -------------------------------------------------------------

def build_dir() -> str:
    """The CMake build directory (BATON_BUILD_DIR, else <repo>/build)."""
    d = os.environ.get("BATON_BUILD_DIR")
    if not d:
        d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
    return os.path.abspath(d)


_BINARIES = {
    "batond": ("server", "batond"),
    "batonctl": ("server", "batonctl", "batonctl"),
    "baton-agent": ("worker", "agentd", "baton-agent"),
}


def binary(name: str) -> str:
    """Path of a built Baton binary; raises with a clear message if missing."""
    path = os.path.join(build_dir(), *_BINARIES[name])
    if not os.access(path, os.X_OK):
        raise HarnessError(f"{name} is not built: {path} missing "
                           f"(BATON_BUILD_DIR={build_dir()})")
    return path


_ports_given: set[int] = set()
_port_rng = random.SystemRandom()


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago. Never hands out
    the same port twice in one process.

    The port is picked at random outside the kernel's ephemeral range: a
    port that bind(0) reports free is one the kernel may hand the very next
    outgoing connection (a client of another test running beside this one),
    and a server that binds it a moment later fails with "address already in
    use" (it_security_authz did, under ctest -j2)."""
    lo, hi = _ephemeral_ports()
    first, last = (10000, lo - 1) if lo > 12000 else (hi + 1, 65535)
    for _ in range(200):
        port = _port_rng.randint(first, last)
        if port in _ports_given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or lingering): try another
        _ports_given.add(port)
        return port
    raise HarnessError("could not find a free port")


def _tail(path: str, n: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"(unreadable: {e})"
    lines = data.splitlines()[-n:]
    return "\n".join(lines) if lines else "(empty)"


def _read_from(path: str, offset: int = 0) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _proc_state(pid: int) -> str | None:
    """State letter from /proc/PID/stat ('R', 'S', 'T', 'Z', ...) or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(")") + 2]


def _pid_alive(pid: int) -> bool:
    """Alive and not a zombie (this machine's init may never reap orphans)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return _proc_state(pid) not in (None, "Z")


def _log_sources(items) -> list[str]:
    paths = []
    for it in items or ():
        if isinstance(it, str):
            paths.append(it)
        else:
            paths.extend(it.log_paths())
    return paths


def _format_tails(paths, n=30) -> str:
    out = []
    for p in paths:
        if os.path.exists(p):
            out.append(f"--- last {n} lines of {p} ---\n{_tail(p, n)}")
    return "\n".join(out)


def wait_for(predicate, timeout: float = 10.0, what: str | None = None,
             interval: float = 0.05, logs=None):
    """Polls predicate() until it returns a truthy value, which is returned.

    An exception from predicate counts as "not yet" (the last one is reported),
    except Abort, which ends the wait at once. On timeout raises WaitTimeout
    naming `what`, with the last value or error and the tails of `logs`
    (Proc, PgServer or paths; default: every log of the current TestEnv).
    """
    what = what or getattr(predicate, "__name__", repr(predicate))
    start = time.monotonic()
    deadline = start + timeout
    last_value, last_exc = None, None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_value, last_exc = value, None
        except Abort:
            raise
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last_exc = e
        now = time.monotonic()
        if now >= deadline:
            break
        time.sleep(min(interval, deadline - now))
    msg = [f"timed out after {timeout:g}s waiting for {what}"]
    if last_exc is not None:
        msg.append(f"last error: {type(last_exc).__name__}: {last_exc}")
    else:
        msg.append(f"last value: {last_value!r}")
    if logs is None and TestEnv.current is not None:
        logs = [TestEnv.current]
    tails = _format_tails(_log_sources(logs), 20)
    if tails:
        msg.append(tails)
    raise WaitTimeout("\n".join(msg))


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _preexec(deathsig: int | None):
    """Runs in the child after fork (after the uid switch, which would clear
    it): the child gets deathsig when the harness dies, so a killed test run
    leaves nothing behind."""
    if deathsig is None:
        return None
    libc = _libc()

    def fn():
        libc.prctl(1, int(deathsig), 0, 0, 0)  # PR_SET_PDEATHSIG
    return fn


# ---- processes -------------------------------------------------------------------

# Everything started and not yet torn down, for the last-resort atexit sweep.
_live: list["Proc"] = []


class Proc:
    """A process started by a test, stdout/stderr appended to
    LOG_DIR/NAME.out and LOG_DIR/NAME.err. It runs in its own session (so a
    teardown can kill its whole process group) and restarts append to the
    same files after a marker line."""

    def __init__(self, argv, name: str, log_dir: str, env: dict | None = None,
                 extra_env: dict | None = None, cwd: str | None = None,
                 deathsig: int | None = signal.SIGKILL, user: str | None = None):
        self.argv = [str(a) for a in argv]
        self.name = name
        self.log_dir = log_dir
        self.out_path = os.path.join(log_dir, name + ".out")
        self.err_path = os.path.join(log_dir, name + ".err")
        self.env = dict(os.environ if env is None else env)
        self.env.update(extra_env or {})
        self.cwd = cwd
        self.deathsig = deathsig
        self.user = user
        self.popen: subprocess.Popen | None = None
        self.starts = 0
        self._out_offset = self._err_offset = 0

    def __repr__(self):
        return f"<Proc {self.name} pid={self.pid} rc={self.returncode}>"

    # -- lifecycle

    def start(self) -> "Proc":
        """Starts the process (again). Returns self."""
        if self.running:
            raise HarnessError(f"{self.name} is already running (pid {self.pid})")
        os.makedirs(self.log_dir, exist_ok=True)
        self.starts += 1
        marker = (f"=== harness: start #{self.starts} of {self.name} at "
                  f"{time.strftime('%H:%M:%S')}: {' '.join(self.argv)}\n").encode()
        with open(self.out_path, "ab") as out, open(self.err_path, "ab") as err:
            out.write(marker)
            err.write(marker)
            out.flush()
            err.flush()
            self._out_offset, self._err_offset = out.tell(), err.tell()
            kw = {}
            if self.user is not None and IS_ROOT:
                pw = pwd.getpwnam(self.user)
                kw = dict(user=pw.pw_uid, group=pw.pw_gid,
                          extra_groups=os.getgrouplist(pw.pw_name, pw.pw_gid))
            try:
                self.popen = subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    env=self.env, cwd=self.cwd, start_new_session=True,
                    preexec_fn=_preexec(self.deathsig), **kw)
            except OSError as e:
                raise HarnessError(f"could not start {self.name}: {e}: {self.argv}")
        if self not in _live:
            _live.append(self)
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit code, -SIGNAL when killed, None while running."""
        return self.popen.poll() if self.popen else None

    def state(self) -> str | None:
        """Kernel state letter: 'S' sleeping, 'R' running, 'T' stopped, ..."""
        return _proc_state(self.pid) if self.running else None

    def send(self, sig: int) -> None:
        if self.running:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill9(self, wait: bool = True) -> int | None:
        """SIGKILL, no questions asked (a crash). Returns the exit status."""
        self.send(signal.SIGKILL)
        return self.wait(10) if wait and self.popen else self.returncode

    def sigterm(self) -> None:
        """Asks for a graceful stop; does not wait (see wait/stop)."""
        self.send(signal.SIGTERM)

    def sigstop(self) -> None:
        """Freezes the process (a hung peer: sockets stay open, nothing moves)."""
        self.send(signal.SIGSTOP)

    def sigcont(self) -> None:
        self.send(signal.SIGCONT)

    def wait(self, timeout: float = 30.0) -> int:
        """Waits for the process to exit; returns its status. Raises
        WaitTimeout (with its logs) when it does not exit in time."""
        if self.popen is None:
            raise HarnessError(f"{self.name} was never started")
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for "
                              f"{self.name} (pid {self.pid}) to exit\n"
                              + _format_tails(self.log_paths(), 20)) from None

    def stop(self, timeout: float = 10.0) -> int | None:
        """Teardown: SIGTERM (and SIGCONT, in case it is stopped), wait up to
        timeout, then SIGKILL; then SIGKILL whatever is left of its process
        group (children it spawned). Returns the exit status."""
        if self.popen is None:
            return None
        if self.running:
            self.send(signal.SIGTERM)
            self.send(signal.SIGCONT)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send(signal.SIGKILL)
                self.popen.wait(10)
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)  # setsid: pgid == pid
        except (ProcessLookupError, PermissionError):
            pass
        if self in _live:
            _live.remove(self)
        return self.returncode

    # -- output

    def log_paths(self) -> list[str]:
        return [self.err_path, self.out_path]

    def log_text(self, since_start: bool = False) -> str:
        """stderr so far (where Baton's logfmt goes); since_start: only since
        the latest start."""
        return _read_from(self.err_path, self._err_offset if since_start else 0)

    def out_text(self, since_start: bool = False) -> str:
        return _read_from(self.out_path, self._out_offset if since_start else 0)

    def tail(self, n: int = 30) -> str:
        return _format_tails(self.log_paths(), n)

    def wait_for_log(self, pattern: str, timeout: float = 10.0,
                     since_start: bool = True, stdout: bool = False):
        """Waits until regex pattern appears in stderr (or stdout); returns the
        match. Fails at once if the process exits first."""
        rx = re.compile(pattern)

        def seen():
            text = self.out_text(since_start) if stdout else self.log_text(since_start)
            m = rx.search(text)
            if m is None and not self.running:
                m = rx.search(self.out_text(since_start) if stdout
                              else self.log_text(since_start))
                if m is None:
                    raise ProcessExited(f"{self.name} exited with "
                                        f"{self.returncode} before logging "
                                        f"{pattern!r}\n{self.tail(20)}")
            return m
        return wait_for(seen, timeout, what=f"{self.name} to log {pattern!r}",
                        logs=[self])

    def check_running(self) -> bool:
        """True, or raises ProcessExited with its logs (for wait_for)."""
        if not self.running:
            raise ProcessExited(f"{self.name} exited with {self.returncode}\n"
                                + self.tail(30))
        return True


def _sweep_live():
    """Last resort at interpreter exit: nothing the harness started survives."""
    for p in list(_live):
        try:
            p.stop(timeout=5)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
    for pg in list(PgServer._running):
        try:
            pg.stop()
        except Exception:  # noqa: BLE001
            pass


atexit.register(_sweep_live)


# ---- PostgreSQL ---------------------------------------------------------------------

def processes_in(data_dir: str) -> list[int]:
    """Live (non-zombie) processes of a PostgreSQL cluster in data_dir (also
    one the harness did not start, e.g. batond's embedded one): `pgrep -f`
    on the path finds the postmaster (its command line names it); backends
    retitle themselves, but every PostgreSQL process has it as its cwd."""
    pids = set()
    rx = re.sub(r"([.\[\]()*+?{}|^$\\])", r"\\\1", data_dir)
    r = subprocess.run(["pgrep", "-f", "--", rx], capture_output=True, text=True)
    pids.update(int(p) for p in r.stdout.split())
    real = os.path.realpath(data_dir)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/cwd") == real:
                    pids.add(int(entry))
            except OSError:
                pass
    pids.discard(os.getpid())
    return sorted(p for p in pids if _pid_alive(p))


def find_pg_bindir() -> str:
    """PostgreSQL's server binaries: BATON_PG_BINDIR, `pg_config --bindir`
    (Debian's names the server dir even when only libpq-dev is installed, so
    it is checked), then the newest /usr/lib/postgresql/N/bin."""
    def ok(d):
        return d and all(os.access(os.path.join(d, p), os.X_OK)
                         for p in ("initdb", "postgres", "psql", "pg_isready"))
    env = os.environ.get("BATON_PG_BINDIR")
    if env:
        if not ok(env):
            raise HarnessError(f"BATON_PG_BINDIR={env} lacks initdb/postgres/psql")
        return env
    try:
        d = subprocess.run(["pg_config", "--bindir"], capture_output=True,
                           text=True, timeout=10).stdout.strip()
        if ok(d):
            return d
    except (OSError, subprocess.SubprocessError):
        pass
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                   key=lambda p: int(re.sub(r"\D", "", p.split("/")[-2]) or 0))
    for d in reversed(cands):
        if ok(d):
            return d
    raise HarnessError("could not find PostgreSQL binaries; install "
                       "postgresql-15 or set BATON_PG_BINDIR")


def _pg_env() -> dict:
    # PG* variables would redirect psql/initdb/postgres; tests must not
    # depend on the caller's shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    return env


class PgServer:
    """A private PostgreSQL cluster: initdb'd into BASE_DIR/NAME/data,
    listening on a unix socket in a short directory and on 127.0.0.1:port,
    with the server log in BASE_DIR/logs/NAME.log. The postmaster is the
    harness's own child (not daemonised by pg_ctl), so kill9() really kills it
    and the harness reaps it. As root, initdb and postgres run as the
    `postgres` OS user (BATON_TEST_PG_USER overrides)."""

    _running: list["PgServer"] = []
    NULL = "\x1d"  # psql prints SQL NULL as this; psql() maps it to None

    def __init__(self, base_dir: str, name: str = "pg", port: int | None = None,
                 settings: dict | None = None, user: str = "baton",
                 dbname: str = "baton"):
        self.name = name
        self.base = os.path.join(base_dir, name)
        self.data_dir = os.path.join(self.base, "data")
        self.log_dir = os.path.join(base_dir, "logs")
        self.log_path = os.path.join(self.log_dir, f"{name}.log")
        self.port = port or free_port()
        self._port_chosen = port is None  # ours to change if it was taken
        self.settings = dict(settings or {})
        self.user, self.dbname = user, dbname
        self.bindir = find_pg_bindir()
        self.os_user = (os.environ.get("BATON_TEST_PG_USER", "postgres")
                        if IS_ROOT else pwd.getpwuid(os.geteuid()).pw_name)
        self._own_sock_dir = False
        # PostgreSQL puts .s.PGSQL.<port> (and a .lock) in the socket dir and
        # the whole path must fit in sun_path; long temp dirs get a short one.
        self.socket_dir = os.path.join(self.base, "sock")
        if len(f"{self.socket_dir}/.s.PGSQL.{self.port}") > SUN_PATH_MAX:
            self.socket_dir = tempfile.mkdtemp(prefix="btpg-", dir="/tmp")
            self._own_sock_dir = True
        self.proc: subprocess.Popen | None = None
        self._created_db = False

    def __repr__(self):
        return f"<PgServer {self.data_dir} port={self.port} pid={self.pid}>"

    # -- helpers

    def _bin(self, prog: str) -> str:
        return os.path.join(self.bindir, prog)

    def _as_user_kw(self) -> dict:
        if not IS_ROOT:
            return {}
        pw = pwd.getpwnam(self.os_user)
        return dict(user=pw.pw_uid, group=pw.pw_gid,
                    extra_groups=os.getgrouplist(pw.pw_name, pw.pw_gid))

    def _give(self, path: str) -> None:
        if IS_ROOT:
            pw = pwd.getpwnam(self.os_user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def log_paths(self) -> list[str]:
        return [self.log_path]

    def log_text(self) -> str:
        return _read_from(self.log_path)

    # -- lifecycle

    def _initdb(self, data_dir: str) -> None:
        """initdb (trust auth, UTF8, C.UTF-8) into data_dir, logging to our log."""
        with open(self.log_path, "ab") as log:
            log.write(f"=== harness: initdb {data_dir}\n".encode())
            log.flush()
            r = subprocess.run(
                [self._bin("initdb"), "-D", data_dir, *self._initdb_args()],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/",
                env=_pg_env(), timeout=120, **self._as_user_kw())
        if r.returncode != 0:
            raise HarnessError(f"initdb failed ({r.returncode})\n"
                               + _format_tails([self.log_path]))

    def _initdb_args(self) -> list[str]:
        return ["-U", self.user, "-E", "UTF8", "--locale=C.UTF-8", "--auth=trust"]

    def _template(self) -> str | None:
        """The data dir of a never-started cluster that initdb made with our
        binaries, arguments and OS user, shared by every test on this machine
        (under BATON_TEST_TMPDIR or the temp dir): initdb takes seconds, a
        copy a fraction of one. Made once, by whichever test gets there
        first, in a scratch dir renamed into place whole. None when disabled
        (BATON_TEST_PG_TEMPLATE=0) or when the temp dir is not writable."""
        if os.environ.get("BATON_TEST_PG_TEMPLATE", "1") == "0":
            return None
        st = os.stat(self._bin("initdb"))
        key = "|".join(["1", os.path.realpath(self.bindir), str(st.st_size),
                        str(st.st_mtime_ns), self.os_user, *self._initdb_args()])
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        base = os.environ.get("BATON_TEST_TMPDIR") or tempfile.gettempdir()
        final = os.path.join(base, f"bt-pgtemplate-{digest}")
        data = os.path.join(final, "data")
        if os.path.exists(os.path.join(data, "PG_VERSION")):
            return data
        try:
            stage = tempfile.mkdtemp(prefix=f"bt-pgtemplate-{digest}-", dir=base)
        except OSError:
            return None
        try:
            if IS_ROOT:
                os.chmod(stage, 0o711)  # the postgres OS user writes inside
            os.makedirs(os.path.join(stage, "data"), mode=0o700)
            self._give(os.path.join(stage, "data"))
            self._initdb(os.path.join(stage, "data"))
            try:
                os.rename(stage, final)
            except OSError:
                pass  # another test made it first: use theirs
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return data if os.path.exists(os.path.join(data, "PG_VERSION")) else None

    def init(self) -> "PgServer":
        """initdb (trust auth, UTF8, C.UTF-8; a copy of _template() when there
        is one) and our settings. Returns self."""
        if os.path.exists(os.path.join(self.data_dir, "PG_VERSION")):
            return self
        os.makedirs(self.log_dir, exist_ok=True)
        os.makedirs(self.base, mode=0o700, exist_ok=True)
        os.makedirs(self.socket_dir, mode=0o700, exist_ok=True)
        self._give(self.base)
        self._give(self.socket_dir)
        template = self._template()
        if template is None:
            self._initdb(self.data_dir)
        else:
            with open(self.log_path, "ab") as log:
                log.write(f"=== harness: initdb: a copy of {template}\n".encode())
            # cp -a keeps the modes and, as root, the postgres OS user's ownership.
            r = subprocess.run(["cp", "-a", template, self.data_dir],
                               capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                raise HarnessError(f"copying the initdb template failed "
                                   f"({r.returncode}): {r.stderr.strip()}")
        # Network and paths only; durability stays at its defaults.
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": "'" + self.socket_dir.replace("'", "''") + "'",
            "logging_collector": "off",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
        }
        conf.update({k: str(v) for k, v in self.settings.items()})
        with open(os.path.join(self.data_dir, "postgresql.conf"), "a") as f:
            f.write("\n# --- integration test harness ---\n")
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def start(self, timeout: float = 60.0) -> "PgServer":
        """Starts the postmaster (initdb first if needed) and waits until it
        accepts connections; creates the database on first start."""
        if self.running:
            raise HarnessError(f"postgres already running (pid {self.pid})")
        self.init()
        for tries_left in range(4, -1, -1):
            try:
                self._start_once(timeout)
                break
            except ProcessExited:
                # Another process took the port between free_port() and the
                # bind: on the first start, nothing else knows the port yet.
                last_start = _tail(self.log_path).rsplit("=== harness: start", 1)[-1]
                if (tries_left == 0 or not self._port_chosen or self._created_db
                        or "Address already in use" not in last_start):
                    raise
                self.port = free_port()
                with open(os.path.join(self.data_dir, "postgresql.conf"), "a") as f:
                    f.write(f"port = {self.port}  # the first one was taken\n")
        if not self._created_db:
            have = self.psql("SELECT 1 FROM pg_database WHERE datname = "
                             f"'{self.dbname}'", db="postgres")
            if not have:
                self.psql(f'CREATE DATABASE "{self.dbname}"', db="postgres")
            self._created_db = True
        return self

    def _start_once(self, timeout: float) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"=== harness: start postgres at {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [self._bin("postgres"), "-D", self.data_dir],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/",
                env=_pg_env(), start_new_session=True,
                # SIGQUIT is PostgreSQL's immediate shutdown: the postmaster
                # takes its backends with it if the harness dies.
                preexec_fn=_preexec(signal.SIGQUIT), **self._as_user_kw())
        if self not in PgServer._running:
            PgServer._running.append(self)

        def ready():
            if self.proc.poll() is not None:
                raise ProcessExited(f"postgres exited with {self.proc.returncode}"
                                    "\n" + _format_tails([self.log_path]))
            return subprocess.run(
                [self._bin("pg_isready"), "-q", "-h", self.socket_dir, "-p",
                 str(self.port), "-d", "postgres", "-U", self.user],
                env=_pg_env(), timeout=15).returncode == 0
        wait_for(ready, timeout, what=f"postgres on port {self.port} to accept "
                 "connections", interval=0.1, logs=[self])

    def _signal_and_wait(self, sig: int, timeout: float) -> bool:
        if not self.running:
            return True
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> None:
        """Shuts down (smart/fast/immediate, as pg_ctl -m); escalates to
        immediate, then SIGKILL, if it takes longer than timeout."""
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT,
               "immediate": signal.SIGQUIT}[mode]
        if not (self._signal_and_wait(sig, timeout)
                or self._signal_and_wait(signal.SIGQUIT, 10)):
            self._signal_and_wait(signal.SIGKILL, 10)
        self._reap_orphans()
        if self in PgServer._running:
            PgServer._running.remove(self)

    def kill9(self) -> None:
        """SIGKILL of the postmaster (a crash; the data dir keeps its
        postmaster.pid). Returns once its orphaned backends are gone too, so
        start() can follow at once."""
        self._signal_and_wait(signal.SIGKILL, 10)
        self._reap_orphans()

    def restart(self, mode: str = "fast") -> "PgServer":
        self.stop(mode)
        return self.start()

    def _reap_orphans(self, timeout: float = 10.0) -> None:
        # Backends notice their postmaster's death within moments; until they
        # have, a new postmaster refuses the data dir ("shared memory block is
        # still in use"). Don't wait forever for a stuck one.
        deadline = time.monotonic() + timeout
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def processes(self) -> list[int]:
        """Live (non-zombie) processes working in this cluster: `pgrep -f` on
        the data dir finds the postmaster; backends retitle themselves, but
        every PostgreSQL process has the data dir as its cwd."""
        return processes_in(self.data_dir)

    # -- connecting

    @property
    def dsn(self) -> str:
        """libpq conninfo over the unix socket."""
        return (f"host={self.socket_dir} port={self.port} "
                f"dbname={self.dbname} user={self.user}")

    @property
    def tcp_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} dbname={self.dbname} user={self.user}"

    def psql(self, sql: str, db: str | None = None, tcp: bool = False,
             timeout: float = 60.0) -> list[tuple]:
        """Runs sql (one or more statements) with psql -X, ON_ERROR_STOP, and
        returns the rows of every result as tuples of strings (None for
        NULL). CSV output, so values may hold newlines, commas and quotes.
        Raises PsqlError on any error."""
        args = [self._bin("psql"), "-X", "-q", "-t", "--csv",
                "-v", "ON_ERROR_STOP=1", "-P", f"null={self.NULL}",
                "-h", "127.0.0.1" if tcp else self.socket_dir,
                "-p", str(self.port), "-U", self.user, "-d", db or self.dbname,
                "-f", "-"]
        try:
            r = subprocess.run(args, input=sql, capture_output=True, text=True,
                               env=_pg_env(), timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PsqlError(f"psql timed out after {timeout:g}s: {sql}") from None
        if r.returncode != 0:
            raise PsqlError(f"psql exited {r.returncode}: {r.stderr.strip()}\n"
                            f"sql: {sql}")
        # Without headers every output line is a row, so an empty line is a
        # one-column row holding '' (csv.reader yields [] for it).
        return [tuple(None if v == self.NULL else v for v in row) if row else ("",)
                for row in csv.reader(io.StringIO(r.stdout))]

    def scalar(self, sql: str, **kw):
        """The first column of the first row, or None when there is no row."""
        rows = self.psql(sql, **kw)
        return rows[0][0] if rows else None

    def cleanup(self) -> None:
        """Stops the server and removes a socket dir made outside base_dir."""
        self.stop()
        if self._own_sock_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)


# ---- Baton processes ---------------------------------------------------------------------

def run_batonctl(control: str, *args, batonctl: str | None = None,
                 admin_token: str | None = None, ctl_log: str | None = None,
                 json: bool = True, check: bool = True, timeout: float = 30.0,
                 input: str | None = None, extra_env: dict | None = None):
    """Runs `batonctl --control CONTROL [--json] ARGS…` (CONTROL may name
    several endpoints, comma-separated). Returns (rc, the parsed JSON document
    (or stdout text when json=False), stderr); rc is None on a timeout.
    check=True raises CtlError on a non-zero exit or unparsable JSON. The call
    is appended to ctl_log when given. extra_env: more environment for
    batonctl (e.g. BATON_CTL_TIMEOUT)."""
    argv = [batonctl or binary("batonctl"), "--control", control]
    if json:
        argv.append("--json")
    argv += [str(a) for a in args]
    # Through the environment, so the token stays out of the ctl log.
    ctl_env = None
    if admin_token is not None or extra_env:
        ctl_env = dict(os.environ, **(extra_env or {}))
        if admin_token is not None:
            ctl_env["BATON_ADMIN_TOKEN"] = admin_token
    try:
        r = subprocess.run(argv, capture_output=True, text=True,
                           timeout=timeout, input=input, env=ctl_env,
                           stdin=None if input is not None else subprocess.DEVNULL)
        rc, out, err = r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = None, e.stdout or "", f"timed out after {timeout:g}s"
        if isinstance(out, bytes):
            out = out.decode("utf-8", "replace")
    if ctl_log:
        os.makedirs(os.path.dirname(ctl_log), exist_ok=True)
        with open(ctl_log, "a") as f:
            f.write(f"$ {' '.join(argv[1:])}\nrc={rc}\n{out[-4000:]}"
                    f"{'' if out.endswith(chr(10)) or not out else chr(10)}"
                    f"{err[-2000:]}\n")
    if rc is None:
        if check:
            raise CtlError(f"batonctl {' '.join(map(str, args))}: {err}",
                           rc, out, err)
        return rc, out, err
    parsed = out
    if json and out.strip():
        try:
            parsed = _json.loads(out)
        except ValueError as e:
            if check:
                raise CtlError(f"batonctl {' '.join(map(str, args))}: stdout "
                               f"is not one JSON document ({e}): {out[:500]!r}",
                               rc, out, err) from None
    elif json:
        parsed = None
    if check and rc != 0:
        raise CtlError(f"batonctl {' '.join(map(str, args))} exited {rc}: "
                       f"{err.strip()[:2000]}", rc, out, err)
    return rc, parsed, err


class Broker(Proc):
    """batond per CONTRACT.md, on free ports, against a given database:
        batond serve --db DSN --data-dir DIR --agents tcp://127.0.0.1:PORT
               --control DIR/baton.sock --metrics 127.0.0.1:PORT --log-level debug
    (db=None: no --db, the embedded default). start() creates DIR unless
    make_data_dir=False and returns once `batonctl stats` answers.
    control="tcp://HOST:PORT" replaces the socket path (for both batond and
    batonctl); admin_token then goes to batonctl as BATON_ADMIN_TOKEN (pass
    it to batond yourself, e.g. extra_env, to test a broker without one)."""

    def __init__(self, base_dir: str, db: str | None, name: str = "broker",
                 agents_port: int | None = None, metrics_port: int | None = None,
                 data_dir: str | None = None, log_level: str = "debug",
                 extra_args=(), extra_env: dict | None = None,
                 batond: str | None = None, batonctl: str | None = None,
                 make_data_dir: bool = True, control: str | None = None,
                 admin_token: str | None = None):
        self.data_dir = data_dir or os.path.join(base_dir, name)
        # False: leave creating the data dir (and its mode) to batond.
        self.make_data_dir = make_data_dir
        self.agents_port = agents_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.control = control or os.path.join(self.data_dir, "baton.sock")
        self.admin_token = admin_token
        if control is None and len(self.control) > SUN_PATH_MAX:
            raise HarnessError(f"control socket path too long ({len(self.control)} "
                               f"bytes): {self.control}")
        self.db = db
        self.batonctl = batonctl
        self.ctl_log = os.path.join(base_dir, "logs", f"{name}-ctl.log")
        argv = [batond or binary("batond"), "serve"]
        if db is not None:
            argv += ["--db", db]
        argv += ["--data-dir", self.data_dir, "--agents", self.agents_endpoint,
                 "--control", self.control, "--metrics", self.metrics_addr,
                 "--log-level", log_level, *extra_args]
        super().__init__(argv, name, os.path.join(base_dir, "logs"),
                         extra_env=extra_env)

    @property
    def agents_endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.agents_port}"

    @property
    def metrics_addr(self) -> str:
        return f"127.0.0.1:{self.metrics_port}"

    def start(self, timeout: float = 30.0) -> "Broker":
        if self.make_data_dir:
            os.makedirs(self.data_dir, exist_ok=True)
        super().start()

        def answers():
            self.check_running()
            return self.ctl("stats", check=False, timeout=5)[0] == 0
        wait_for(answers, timeout, what=f"{self.name} to answer batonctl stats",
                 interval=0.1, logs=[self])
        return self

    def restart(self, timeout: float = 30.0) -> "Broker":
        """Graceful stop (SIGTERM, wait) and start again on the same ports."""
        self.stop(timeout=timeout)
        return self.start(timeout)

    def log_paths(self) -> list[str]:
        return super().log_paths() + [self.ctl_log]

    def ctl(self, *args, json: bool = True, check: bool = True,
            timeout: float = 30.0, input: str | None = None):
        """Runs `batonctl --control SOCK [--json] ARGS…`. Returns (rc, the
        parsed JSON document (or stdout text when json=False), stderr).
        check=True raises CtlError on a non-zero exit or unparsable JSON.
        Every call is recorded in logs/NAME-ctl.log."""
        return run_batonctl(self.control, *args, batonctl=self.batonctl,
                            admin_token=self.admin_token, ctl_log=self.ctl_log,
                            json=json, check=check, timeout=timeout, input=input)

    # -- high availability (several batond on one database)

    def launch(self) -> "Broker":
        """Starts batond without waiting for it to answer (a standby binds
        nothing until it takes over, so start() would wait in vain)."""
        if self.make_data_dir:
            os.makedirs(self.data_dir, exist_ok=True)
        super().start()
        return self

    STANDBY_LOG = r'msg="standby: another broker holds the leader lease"'

    def start_standby(self, timeout: float = 30.0):
        """launch(), then waits for the standby log line; returns its match."""
        self.launch()
        return self.wait_for_log(self.STANDBY_LOG, timeout)

    def answers(self, timeout: float = 3.0) -> bool:
        """True when `batonctl stats` on this broker's own control endpoint
        exits 0 within timeout."""
        return self.ctl("stats", check=False, timeout=timeout)[0] == 0

    def metrics_text(self, timeout: float = 5.0) -> str:
        """The Prometheus text of GET /metrics."""
        url = f"http://{self.metrics_addr}/metrics"
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode()

    def metric(self, name: str, labels: dict | None = None, default=None):
        """The value of one sample of /metrics (labels must match exactly,
        order aside), or default."""
        want = dict(labels or {})
        for line in self.metrics_text().splitlines():
            m = re.match(r"^([A-Za-z_:][\w:]*)(\{(.*)\})?\s+(\S+)", line)
            if not m or m.group(1) != name:
                continue
            got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
            if got == want:
                return float(m.group(4))
        return default


class BrokerGroup:
    """Several batond on one database (broker high availability), driven as
    one: ctl() runs `batonctl --control A,B,…` (the first endpoint that
    answers), and an Agent given a group (env.agent(broker=group) or
    brokers=group) connects to every member's agent endpoint. Duck-types the
    parts of Broker that the fixtures use (ctl, control, batonctl)."""

    def __init__(self, brokers, name: str = "ha", log_dir: str | None = None):
        self.members = list(brokers)
        if not self.members:
            raise HarnessError("a BrokerGroup needs at least one broker")
        self.name = name
        first = self.members[0]
        self.batonctl = first.batonctl
        self.admin_token = first.admin_token
        self.ctl_log = os.path.join(log_dir or os.path.dirname(first.ctl_log),
                                    f"{name}-ctl.log")

    def __iter__(self):
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self):
        return f"<BrokerGroup {[b.name for b in self.members]}>"

    @property
    def control(self) -> str:
        return ",".join(b.control for b in self.members)

    @property
    def agents_endpoints(self) -> list[str]:
        return [b.agents_endpoint for b in self.members]

    def ctl(self, *args, json: bool = True, check: bool = True,
            timeout: float = 30.0, input: str | None = None,
            extra_env: dict | None = None):
        """batonctl --control A,B,… (see Broker.ctl); logs to NAME-ctl.log."""
        return run_batonctl(self.control, *args, batonctl=self.batonctl,
                            admin_token=self.admin_token, ctl_log=self.ctl_log,
                            json=json, check=check, timeout=timeout, input=input,
                            extra_env=extra_env)

    def running(self) -> list["Broker"]:
        return [b for b in self.members if b.running]

    def log_paths(self) -> list[str]:
        paths = [self.ctl_log]
        for b in self.members:
            paths += b.log_paths()
        return paths


class Agent(Proc):
    """baton-agent per CONTRACT.md. The secret goes through BATON_SECRET so it
    stays out of ps. handlers: {capability: command}, or (cap, cmd) pairs, or
    "cap=cmd" strings."""

    def __init__(self, base_dir: str, brokers, vendor: str, secret: str,
                 name: str | None = None, slots: int = 1, handlers=None,
                 extra_args=(), extra_env: dict | None = None,
                 binary_path: str | None = None):
        if isinstance(brokers, (str, Broker)):
            brokers = [brokers]  # a BrokerGroup iterates over its members
        endpoints = [b.agents_endpoint if isinstance(b, Broker) else b for b in brokers]
        self.vendor = vendor
        self.agent_name = name or f"{vendor}-agent"
        argv = [binary_path or binary("baton-agent"), "--broker", ",".join(endpoints),
                "--vendor", vendor, "--name", self.agent_name, "--slots", str(slots)]
        if isinstance(handlers, dict):
            handlers = list(handlers.items())
        for h in handlers or ():
            argv += ["--handler", h if isinstance(h, str) else f"{h[0]}={h[1]}"]
        argv += list(extra_args)
        env = {"BATON_SECRET": secret}
        env.update(extra_env or {})
        super().__init__(argv, self.agent_name, os.path.join(base_dir, "logs"),
                         extra_env=env)


# ---- the test environment ------------------------------------------------------------

class TestEnv:
    """One test's world: a temp dir, a PostgreSQL (pg=True), and every process
    started through it, all torn down on exit even when the test failed. On
    failure the temp dir is kept and printed with the tails of all logs."""

    current: "TestEnv | None" = None  # the innermost active env (for wait_for)
    __test__ = False  # not a pytest test class, should anyone run pytest here

    def __init__(self, name: str = "test", pg: bool = True, keep: bool | None = None,
                 pg_settings: dict | None = None):
        self.name = name
        self.want_pg = pg
        self.pg_settings = pg_settings
        self.keep = keep if keep is not None else os.environ.get("BATON_KEEP_TMP") == "1"
        self.tmp: str | None = None
        self.log_dir: str | None = None
        self.pg: PgServer | None = None
        self.procs: list[Proc] = []
        self.brokers: list[Broker] = []
        self.failed = False
        self._outer: TestEnv | None = None
        self._cleanups: list = []
        self._first_cleanups: list = []

    def __enter__(self) -> "TestEnv":
        base = os.environ.get("BATON_TEST_TMPDIR") or tempfile.gettempdir()
        # Short names: sockets inside must fit in sun_path.
        short = re.sub(r"[^A-Za-z0-9]+", "-", self.name.removeprefix("test_"))[:16]
        self.tmp = tempfile.mkdtemp(prefix=f"bt-{short}-", dir=base)
        if IS_ROOT:
            # The postgres OS user must be able to pass through to its dir.
            os.chmod(self.tmp, 0o711)
        self.log_dir = os.path.join(self.tmp, "logs")
        os.makedirs(self.log_dir)
        self._outer, TestEnv.current = TestEnv.current, self
        try:
            if self.want_pg:
                # Assigned before start() so teardown sees a half-started one.
                self.pg = PgServer(self.tmp, settings=self.pg_settings)
                self.pg.start()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.failed = self.failed or exc_type is not None
        problems = self.teardown()
        TestEnv.current = self._outer
        if problems:
            print("harness: teardown: " + "; ".join(problems), file=sys.stderr)
            self.failed = True
        if self.failed or self.keep:
            if self.failed:
                print(self.tails(40), file=sys.stderr)
            print(f"harness: kept temp dir {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if problems and exc_type is None:
            raise HarnessError("teardown: " + "; ".join(problems))
        return False

    def teardown(self) -> list[str]:
        """Runs the add_cleanup(first=True) functions, stops every process
        (newest first), runs the other add_cleanup() functions, then stops
        PostgreSQL; returns what went wrong (strays), never raises."""
        problems = []
        for what, fn in reversed(self._first_cleanups):
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - keep tearing down
                problems.append(f"cleanup {what}: {e}")
        for p in reversed(self.procs):
            try:
                p.stop(timeout=10)
            except BaseException as e:  # noqa: BLE001 - keep tearing down
                problems.append(f"stopping {p.name}: {e}")
            if p.running:
                problems.append(f"{p.name} (pid {p.pid}) still running")
        for what, fn in reversed(self._cleanups):
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - keep tearing down
                problems.append(f"cleanup {what}: {e}")
        if self.pg is not None:
            try:
                self.pg.cleanup()
                strays = self.pg.processes()
                if strays:
                    problems.append(f"stray postgres processes {strays}")
                    for pid in strays:
                        os.kill(pid, signal.SIGKILL)
            except BaseException as e:  # noqa: BLE001
                problems.append(f"stopping postgres: {e}")
        problems += self.sanitizer_reports()
        return problems

    # A sanitizer build reports at the point of error or, for leaks, at exit; a
    # scenario can pass while one of its processes reported. Any such report in
    # any process's log fails the test.
    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                       "runtime error:", "WARNING: ThreadSanitizer")

    def sanitizer_reports(self) -> list[str]:
        found = []
        try:
            names = sorted(os.listdir(self.log_dir))
        except OSError:
            return found
        for name in names:
            path = os.path.join(self.log_dir, name)
            try:
                with open(path, errors="replace") as f:
                    for line in f:
                        if any(m in line for m in self.SANITIZER_MARKS):
                            found.append(f"sanitizer report in logs/{name}: {line.strip()[:200]}")
                            break
            except OSError:
                continue
        return found

    # -- building blocks

    def path(self, *parts) -> str:
        return os.path.join(self.tmp, *parts)

    def port(self) -> int:
        return free_port()

    def add_cleanup(self, fn, what: str | None = None, first: bool = False) -> None:
        """Runs fn() at teardown, after every process of the env is stopped
        and before its PostgreSQL is (newest first; a failure is reported as
        a teardown problem). For what the harness cannot see, such as the
        postmaster batond's embedded default leaves after a kill -9.
        first=True: before the processes are stopped instead, e.g. to kill
        the handlers a test left running, which an agent asked to stop would
        otherwise wait for until its stop timeout (then a SIGKILL)."""
        entry = (what or getattr(fn, "__name__", repr(fn)), fn)
        (self._first_cleanups if first else self._cleanups).append(entry)

    def _adopt(self, p: Proc) -> Proc:
        self.procs.append(p)
        return p

    def proc(self, argv, name: str | None = None, start: bool = True, **kw) -> Proc:
        """Any process, logging to logs/NAME.out|err, torn down with the env."""
        name = name or os.path.basename(str(argv[0]))
        base, i = name, 1
        while any(p.name == name for p in self.procs):
            i += 1
            name = f"{base}{i}"
        p = self._adopt(Proc(argv, name, self.log_dir, **kw))
        return p.start() if start else p

    def broker(self, start: bool = True, db: str | None = "", **kw) -> Broker:
        """A batond against this env's PostgreSQL (db="" means self.pg.dsn;
        db=None starts it with no --db, i.e. the embedded default)."""
        if db == "":
            if self.pg is None:
                raise HarnessError("TestEnv(pg=False) has no database for the broker")
            db = self.pg.dsn
        kw.setdefault("name", "broker" if not self.brokers else f"broker{len(self.brokers) + 1}")
        b = Broker(self.tmp, db, **kw)
        self._adopt(b)
        self.brokers.append(b)
        return b.start() if start else b

    def agent(self, vendor: str, secret: str, broker: Broker | None = None,
              start: bool = True, **kw) -> Agent:
        """A baton-agent connected to broker (default: the latest one; a
        BrokerGroup: every member's endpoint)."""
        brokers = kw.pop("brokers", None) or broker or self._latest_broker()
        a = self._adopt(Agent(self.tmp, brokers, vendor, secret, **kw))
        return a.start() if start else a

    def _latest_broker(self) -> Broker:
        if not self.brokers:
            raise HarnessError("no broker started in this TestEnv")
        return self.brokers[-1]

    def ctl(self, *args, **kw):
        """batonctl against the latest broker; see Broker.ctl."""
        return self._latest_broker().ctl(*args, **kw)

    def log_paths(self) -> list[str]:
        paths = []
        for p in self.procs:
            paths += p.log_paths()
        if self.pg:
            paths += self.pg.log_paths()
        return paths

    def tails(self, n: int = 40) -> str:
        return _format_tails(self.log_paths(), n)


# ---- the runner -----------------------------------------------------------------------

class _Case:
    def __init__(self, fn, pg: bool, timeout: float | None, env_kw: dict):
        self.fn, self.pg, self.timeout, self.env_kw = fn, pg, timeout, env_kw
        self.name = fn.__name__
        self.wants_env = len(inspect.signature(fn).parameters) > 0


_cases: list[_Case] = []


def test(fn=None, *, pg: bool = True, timeout: float | None = None, **env_kw):
    """Registers a test function; main() runs them in definition order.
    A function taking one argument gets a fresh TestEnv (with PostgreSQL
    unless pg=False; env_kw go to TestEnv). timeout: fail the test (and tear
    it down) after that many seconds, before CTest's own TIMEOUT strikes."""
    def register(f):
        _cases.append(_Case(f, pg, timeout, env_kw))
        return f
    return register(fn) if fn is not None else register


def _on_signal(signum, frame):
    if signum == signal.SIGALRM:
        raise TestTimeout("test timed out")
    raise _Interrupted(f"interrupted by signal {signum}")


def _run_case(case: _Case) -> None:
    if case.timeout:
        signal.setitimer(signal.ITIMER_REAL, case.timeout)
    try:
        if not case.wants_env:
            case.fn()
            return
        with TestEnv(name=case.name, pg=case.pg, **case.env_kw) as env:
            try:
                case.fn(env)
            except BaseException as e:
                # Print the cause before the env dumps its logs.
                traceback.print_exc()
                sys.stderr.flush()
                e._harness_reported = True
                raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main(argv: list[str] | None = None) -> None:
    """Runs the registered tests in order, printing `PASS name (1.2s)` or
    `FAIL name (1.2s): reason`, and exits non-zero when any failed (or none
    matched the filter). Arguments or BATON_TEST_FILTER select tests by
    substring."""
    argv = sys.argv[1:] if argv is None else argv
    filters = argv or ([os.environ["BATON_TEST_FILTER"]]
                       if os.environ.get("BATON_TEST_FILTER") else [])
    cases = [c for c in _cases if not filters or any(f in c.name for f in filters)]
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGALRM, _on_signal)
    script = os.path.basename(sys.argv[0])
    print(f"harness: {script}: {len(cases)} test(s), build dir {build_dir()}", flush=True)
    if not cases:
        print("harness: no test matched", flush=True)
        sys.exit(1)
    failed = []
    for case in cases:
        print(f"RUN  {case.name}", flush=True)
        t0 = time.monotonic()
        try:
            _run_case(case)
        except BaseException as e:  # noqa: BLE001 - report every failure
            dt = time.monotonic() - t0
            if not getattr(e, "_harness_reported", False):
                traceback.print_exc()
            sys.stderr.flush()
            first = (str(e).splitlines() or [""])[0][:200]
            print(f"FAIL {case.name} ({dt:.1f}s): {type(e).__name__}: {first}",
                  flush=True)
            failed.append(case.name)
            if isinstance(e, (KeyboardInterrupt, _Interrupted)) and \
                    not isinstance(e, TestTimeout):
                break
            continue
        print(f"PASS {case.name} ({time.monotonic() - t0:.1f}s)", flush=True)
    ran = len(cases)
    print(f"harness: {ran - len(failed)} passed, {len(failed)} failed"
          + (f": {', '.join(failed)}" if failed else ""), flush=True)
    sys.exit(1 if failed else 0)
