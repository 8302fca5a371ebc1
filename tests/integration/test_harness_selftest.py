"""Self-test of harness.py, on what exists before batond does: a real
PostgreSQL (psql round trips, kill -9 and restart with data kept, the short
socket dir), the process helpers on real processes, wait_for's failure
message, teardown after a failing test (no stray postgres, temp dir kept), the
runner's PASS/FAIL report, and Broker/Agent/ctl plumbing against stand-in
scripts that behave like batond, batonctl and baton-agent at their edges."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

from harness import (Abort, CtlError, HarnessError, PgServer, ProcessExited,
                     PsqlError, TestEnv, WaitTimeout, main, test, wait_for)
import harness

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_DIRS = []  # every cluster this script ran, checked for strays at the end


def alive(pid):
    return harness._pid_alive(pid)


def pgrep_data_dir(data_dir):
    """pids `pgrep -f` finds for a data dir (the postmaster's command line)."""
    r = subprocess.run(["pgrep", "-f", "--", data_dir], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


def write_script(path, body):
    with open(path, "w") as f:
        f.write(f"#!{sys.executable}\n" + textwrap.dedent(body))
    os.chmod(path, 0o755)
    return path


@test(timeout=90)
def test_pg_psql_kill9_restart(env):
    pg = env.pg
    DATA_DIRS.append(pg.data_dir)
    assert pg.psql("SELECT 1") == [("1",)]
    assert len(f"{pg.socket_dir}/.s.PGSQL.{pg.port}") <= harness.SUN_PATH_MAX
    # Values that would break a naive separator format survive the round trip.
    rows = pg.psql("CREATE TABLE t (id int, v text);"
                   "INSERT INTO t VALUES (1, E'a,b \"q\"\\nline2'), (2, NULL), (3, '');"
                   "SELECT id, v FROM t ORDER BY id")
    assert rows == [("1", 'a,b "q"\nline2'), ("2", None), ("3", "")], rows
    assert pg.psql("SELECT ''; SELECT 1 WHERE false; SELECT NULL") == [("",), (None,)]
    assert pg.psql("SELECT 2", tcp=True) == [("2",)]
    # Durability defaults untouched.
    assert pg.scalar("SHOW fsync") == "on"
    assert pg.scalar("SHOW synchronous_commit") == "on"
    try:
        pg.psql("SELECT * FROM no_such_table")
        raise AssertionError("bad SQL did not raise")
    except PsqlError as e:
        assert "no_such_table" in str(e), e

    old = pg.pid
    pg.kill9()
    assert not alive(old) and not pg.running
    assert pg.processes() == [], pg.processes()
    try:
        pg.psql("SELECT 1", timeout=15)
        raise AssertionError("psql worked against a killed server")
    except PsqlError:
        pass
    pg.start()  # crash recovery on the same data dir
    assert pg.pid != old
    assert pg.scalar("SELECT count(*) FROM t") == "3"
    assert "database system was interrupted" in pg.log_text()

    pg.restart()
    assert pg.scalar("SELECT v FROM t WHERE id = 3") == ""
    pg.stop()
    assert not pg.running
    assert pg.processes() == [] and pgrep_data_dir(pg.data_dir) == []


@test(pg=False, timeout=60)
def test_pg_long_base_dir_gets_short_socket_dir(env):
    base = env.path("x" * 60, "y" * 60)
    os.makedirs(base)
    pg = PgServer(base)
    DATA_DIRS.append(pg.data_dir)
    try:
        assert pg.socket_dir.startswith("/tmp/btpg-"), pg.socket_dir
        pg.start()
        assert pg.psql("SELECT 1") == [("1",)]
    finally:
        pg.cleanup()
    assert not os.path.exists(pg.socket_dir)
    assert pg.processes() == []


@test(pg=False, timeout=60)
def test_proc_signals_and_logs(env):
    p = env.proc(["sleep", "30"])
    wait_for(lambda: p.state() == "S", 5, what="sleep to sleep")
    p.sigstop()
    wait_for(lambda: p.state() == "T", 5, what="sleep to stop")
    p.sigcont()
    wait_for(lambda: p.state() in ("S", "R"), 5, what="sleep to continue")
    p.sigterm()
    assert p.wait(5) == -signal.SIGTERM

    talker = env.proc(["sh", "-c", "echo to-out; echo to-err >&2; exec sleep 30"],
                      name="talker")
    talker.wait_for_log("to-err")
    talker.wait_for_log("to-out", stdout=True)
    assert talker.kill9() == -signal.SIGKILL
    talker.start()  # again: same log files, after a marker
    talker.wait_for_log("to-err")
    lines = talker.log_text().splitlines()
    assert lines.count("to-err") == 2, lines
    assert talker.log_text(since_start=True).splitlines().count("to-err") == 1
    assert "start #2 of talker" in talker.log_text()

    # stop() escalates to SIGKILL when SIGTERM is ignored.
    stubborn = env.proc(["sh", "-c", "trap '' TERM; echo ready >&2; "
                         "while :; do sleep 0.1; done"], name="stubborn")
    stubborn.wait_for_log("ready")
    t0 = time.monotonic()
    assert stubborn.stop(timeout=1) == -signal.SIGKILL
    assert 0.9 <= time.monotonic() - t0 < 5

    # A stopped (SIGSTOP) process still goes away on stop().
    frozen = env.proc(["sleep", "30"], name="frozen")
    frozen.sigstop()
    wait_for(lambda: frozen.state() == "T", 5, what="frozen to stop")
    assert frozen.stop(timeout=2) == -signal.SIGTERM

    # Teardown takes the process group: a grandchild dies with its parent.
    fam = env.proc(["sh", "-c", "sleep 300 & echo child=$! >&2; wait"], name="family")
    child = int(fam.wait_for_log(r"child=(\d+)").group(1))
    assert alive(child)
    fam.stop(timeout=2)
    wait_for(lambda: not alive(child), 5, what="grandchild to die")

    # Waiting on the log of a process that exits fails at once, with its log.
    quick = env.proc(["sh", "-c", "echo bye >&2; exit 3"], name="quick")
    t0 = time.monotonic()
    try:
        quick.wait_for_log("never printed", timeout=10)
        raise AssertionError("wait_for_log did not fail")
    except ProcessExited as e:
        assert "exited with 3" in str(e) and "bye" in str(e), e
    assert time.monotonic() - t0 < 5


@test(pg=False, timeout=30)
def test_wait_for_reports_clearly(env):
    witness = env.proc(["sh", "-c", "echo marker-line-42 >&2; exec sleep 30"],
                       name="witness")
    witness.wait_for_log("marker-line-42")
    t0 = time.monotonic()
    try:
        wait_for(lambda: False, timeout=0.5, what="the impossible")
        raise AssertionError("wait_for did not time out")
    except WaitTimeout as e:
        msg = str(e)
    took = time.monotonic() - t0
    assert 0.5 <= took < 2, took
    assert msg.startswith("timed out after 0.5s waiting for the impossible"), msg
    assert "last value: False" in msg
    assert "marker-line-42" in msg and witness.err_path in msg  # the env's logs

    def not_ready():
        raise ValueError("not yet ready")
    try:
        wait_for(not_ready, timeout=0.3, logs=[])
        raise AssertionError("wait_for did not time out")
    except WaitTimeout as e:
        assert "waiting for not_ready" in str(e)
        assert "ValueError: not yet ready" in str(e), e

    def give_up():
        raise Abort("hopeless")
    t0 = time.monotonic()
    try:
        wait_for(give_up, timeout=10)
        raise AssertionError("Abort did not propagate")
    except Abort:
        assert time.monotonic() - t0 < 1
    assert wait_for(lambda: 7, timeout=1) == 7


@test(timeout=90)
def test_teardown_after_failure_leaves_nothing():
    class Boom(Exception):
        pass
    print("(an inner test env fails on purpose; its log dump follows)", flush=True)
    try:
        with TestEnv(name="inner-fail", keep=False) as env:
            tmp, data_dir, pg_pid = env.tmp, env.pg.data_dir, env.pg.pid
            DATA_DIRS.append(data_dir)
            env.pg.psql("CREATE TABLE x (i int)")
            sleeper = env.proc(["sleep", "60"])
            raise Boom()
    except Boom:
        pass
    else:
        raise AssertionError("the failure did not propagate")
    assert os.path.isdir(tmp), "temp dir of a failed test must be kept"
    assert not alive(sleeper.pid) and not alive(pg_pid)
    assert pgrep_data_dir(data_dir) == [], "stray postgres after teardown"
    assert harness.TestEnv.current is None
    shutil.rmtree(tmp)

    with TestEnv(name="inner-ok", pg=False, keep=False) as env:
        tmp = env.tmp
        sleeper = env.proc(["sleep", "60"])
    assert not os.path.exists(tmp), "temp dir of a passing test must go"
    assert not alive(sleeper.pid)


@test(pg=False, timeout=60)
def test_runner_reports_pass_and_fail(env):
    script = write_script(env.path("t_sample.py"), f"""\
        import os, sys, time
        sys.path.insert(0, {HERE!r})
        from harness import test, main

        @test
        def t_ok():
            pass

        @test
        def t_bad():
            assert 1 == 2, "one is not two"

        @test(pg=False)
        def t_env(env):
            assert os.path.isdir(env.tmp)

        @test(pg=False, timeout=0.5)
        def t_slow(env):
            env.proc(["sleep", "60"])
            time.sleep(5)

        if __name__ == "__main__":
            main()
        """)
    # The failing tests' kept temp dirs go inside ours.
    tmp = env.path("tmp")
    os.makedirs(tmp)
    os.chmod(tmp, 0o711)
    run_env = dict(os.environ, BATON_TEST_TMPDIR=tmp)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, script], capture_output=True, text=True,
                       timeout=60, env=run_env)
    out = r.stdout
    assert r.returncode == 1, (r.returncode, out, r.stderr)
    assert "PASS t_ok" in out and "PASS t_env" in out, out
    assert "FAIL t_bad" in out and "one is not two" in out, out
    assert "FAIL t_slow" in out and "TestTimeout" in out, out
    assert "2 passed, 2 failed" in out, out
    assert time.monotonic() - t0 < 20
    assert len(os.listdir(tmp)) == 1, os.listdir(tmp)  # t_slow's; t_bad had none

    r = subprocess.run([sys.executable, script, "t_ok"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "PASS t_ok" in r.stdout, r.stdout
    assert "t_bad" not in r.stdout
    r = subprocess.run([sys.executable, script, "nothing-matches"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no test matched" in r.stdout


# Stand-ins for the real binaries, which are being written: they only behave
# like them where the harness touches them (flags, control socket, exit codes).
FAKE_BATOND = """\
    import os, signal, socket, sys
    args = sys.argv[1:]
    control = args[args.index("--control") + 1]
    if os.path.exists(control):
        os.unlink(control)  # a crashed broker's stale socket
    s = socket.socket(socket.AF_UNIX)
    s.bind(control)
    s.listen(16)
    def bye(*_):
        os.unlink(control)
        sys.exit(0)
    signal.signal(signal.SIGTERM, bye)
    print("level=info msg=\\"fake batond ready\\" args=" + " ".join(args), file=sys.stderr, flush=True)
    while True:
        s.accept()[0].close()
    """

FAKE_BATONCTL = """\
    import json, socket, sys
    args = sys.argv[1:]
    control = args[args.index("--control") + 1]
    rest = [a for i, a in enumerate(args) if a != "--json" and i not in
            (args.index("--control"), args.index("--control") + 1)]
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(control)
        s.close()
    except OSError as e:
        print(f"broker unreachable: {e}", file=sys.stderr)
        sys.exit(3)
    if rest == ["stats"]:
        print(json.dumps({"queued": 0, "completed": 0, "agents": 0}))
    elif rest[:2] == ["vendor", "add"]:
        print(json.dumps({"id": 1, "name": rest[2], "secret": "s3cr3t"}))
    elif rest == ["nojson"]:
        print("this is not json")
    else:
        print("rejected: " + " ".join(rest), file=sys.stderr)
        sys.exit(1)
    """

FAKE_AGENT = """\
    import json, os, sys, time
    print(json.dumps({"argv": sys.argv[1:], "secret": os.environ.get("BATON_SECRET")}), flush=True)
    time.sleep(60)
    """


@test(pg=False, timeout=60)
def test_broker_agent_ctl_plumbing(env):
    fake_d = write_script(env.path("fake-batond"), FAKE_BATOND)
    fake_ctl = write_script(env.path("fake-batonctl"), FAKE_BATONCTL)
    fake_agent = write_script(env.path("fake-agent"), FAKE_AGENT)

    b = env.broker(db="dbname=fake", batond=fake_d, batonctl=fake_ctl)
    for flag, value in (("--db", "dbname=fake"), ("--agents", b.agents_endpoint),
                        ("--control", b.control), ("--metrics", b.metrics_addr),
                        ("--log-level", "debug"), ("--data-dir", b.data_dir)):
        assert b.argv[b.argv.index(flag) + 1] == value, (flag, b.argv)
    assert b.argv[1] == "serve"
    assert b.agents_endpoint.startswith("tcp://127.0.0.1:")
    assert "fake batond ready" in b.log_text()

    rc, stats, err = b.ctl("stats")
    assert rc == 0 and stats["queued"] == 0, (rc, stats, err)
    _, vendor, _ = env.ctl("vendor", "add", "acme", "--region", "EU-DE")
    assert vendor == {"id": 1, "name": "acme", "secret": "s3cr3t"}
    rc, _, err = b.ctl("frobnicate", check=False)
    assert rc == 1 and "rejected" in err
    try:
        b.ctl("frobnicate")
        raise AssertionError("check=True did not raise")
    except CtlError as e:
        assert e.rc == 1 and "exited 1" in str(e)
    try:
        b.ctl("nojson")
        raise AssertionError("bad JSON did not raise")
    except CtlError as e:
        assert "not one JSON document" in str(e)
    assert b.ctl("nojson", json=False)[1] == "this is not json\n"
    assert "$ --control" in open(b.ctl_log).read()

    b.kill9()
    assert b.ctl("stats", check=False)[0] == 3  # unreachable
    b.start()  # after a crash: same ports, stale socket
    assert b.ctl("stats")[0] == 0
    pid = b.pid
    b.restart()
    assert b.pid != pid and b.ctl("stats")[0] == 0

    a = env.agent(vendor="acme", secret="s3cr3t", binary_path=fake_agent,
                  slots=3, handlers={"echo": "cat", "calc": "sh -c 'a=b'"})
    line = a.wait_for_log(r"\{.*\}", stdout=True).group(0)
    seen = json.loads(line)
    argv = seen["argv"]
    assert argv[argv.index("--broker") + 1] == b.agents_endpoint, argv
    assert argv[argv.index("--vendor") + 1] == "acme"
    assert argv[argv.index("--slots") + 1] == "3"
    assert "echo=cat" in argv and "calc=sh -c 'a=b'" in argv, argv
    assert "s3cr3t" not in argv and seen["secret"] == "s3cr3t"

    # A broker that dies at start fails start() at once, with its log.
    t0 = time.monotonic()
    try:
        env.broker(db="x", batond="/bin/false", batonctl=fake_ctl, name="dead")
        raise AssertionError("start() of a dead broker did not fail")
    except ProcessExited as e:
        assert "exited with 1" in str(e)
    assert time.monotonic() - t0 < 5
    try:
        harness.Broker(env.tmp, None, name="n" * 120, batond=fake_d)
        raise AssertionError("an over-long control socket path was accepted")
    except HarnessError as e:
        assert "too long" in str(e)


@test(pg=False)
def test_no_stray_postgres_left():
    assert DATA_DIRS, "the postgres tests did not run"
    for d in DATA_DIRS:
        assert pgrep_data_dir(d) == [], f"postgres still running on {d}"


if __name__ == "__main__":
    main()
