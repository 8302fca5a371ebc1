"""Hardening: batond and baton-agent started as root with --user drop to that
user once what needs root is open, and refuse --user when not root.

  * batond --user nobody against PostgreSQL: every uid and gid in
    /proc/PID/status is nobody's (65534) and it still serves (a package
    submitted and completed); the data dir and control socket belong to
    nobody; SIGTERM exits 0;
  * batond --user nobody with the embedded PostgreSQL: the cluster runs as
    nobody too, the broker serves, and on SIGTERM it still stops the cluster
    (pg_ctl as the user it already is);
  * baton-agent --user nobody runs as 65534 and so do its handlers (a handler
    printing `id -u` returns 65534);
  * clear refusals, exit 2: --user when not root, an unknown user, and
    --user with a different pg_user for the embedded cluster.

Needs root (CI runs as root); skipped otherwise.
"""

import os
import pwd

from harness import IS_ROOT, binary, main, test, wait_for
from fixtures_it1 import embedded_processes, stop_stray_embedded

NOBODY = pwd.getpwnam("nobody")


def ids_of(pid: int) -> dict:
    """Real, effective, saved and fs ids from /proc/PID/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid"):
                out[k] = [int(x) for x in v.split()]
            elif k == "Groups":
                out[k] = [int(x) for x in v.split()]
    return out


def assert_runs_as_nobody(pid: int):
    ids = ids_of(pid)
    assert ids["Uid"] == [NOBODY.pw_uid] * 4, ids
    assert ids["Gid"] == [NOBODY.pw_gid] * 4, ids
    assert 0 not in ids["Groups"], ids  # root's groups are gone too


def serve_one(env, broker, name="acme-1", handler="tr a-z A-Z", agent_args=()):
    _, v, _ = broker.ctl("vendor", "add", "acme", "--region", "EU-DE",
                         "--capability", "upper")
    agent = env.agent(vendor="acme", secret=v["secret"], broker=broker, name=name,
                      handlers={"upper": handler}, extra_args=list(agent_args))
    _, p, _ = broker.ctl("submit", "--capability", "upper", "--payload", "hello")
    wait_for(lambda: broker.ctl("package", "show", p["id"])[1]["state"] == "completed",
             30, "package completed")
    return agent, broker.ctl("result", p["id"], json=False)[1]


@test(timeout=40)
def test_batond_drops_to_user(env):
    if not IS_ROOT:
        print("SKIP: needs root")
        return
    broker = env.broker(extra_args=["--user", "nobody"])
    broker.wait_for_log(r'msg="dropped root privileges" user=nobody uid=65534')
    assert_runs_as_nobody(broker.pid)
    for path in (broker.data_dir, broker.control):
        st = os.lstat(path)
        assert (st.st_uid, st.st_gid) == (NOBODY.pw_uid, NOBODY.pw_gid), path
    assert os.stat(broker.control).st_mode & 0o777 == 0o600
    agent, out = serve_one(env, broker)
    assert out == "HELLO"
    assert_runs_as_nobody(broker.pid)
    agent.stop()
    broker.sigterm()
    assert broker.wait(30) == 0, broker.tail()
    assert not os.path.exists(broker.control)  # nobody could remove its socket


@test(pg=False, timeout=70)
def test_batond_user_with_embedded_postgres(env):
    if not IS_ROOT:
        print("SKIP: needs root")
        return
    data_dir = env.path("var")
    env.add_cleanup(lambda: stop_stray_embedded(data_dir), "stray embedded postgres")
    broker = env.broker(db=None, data_dir=data_dir, make_data_dir=False, start=False,
                        extra_args=["--user", "nobody"])
    broker.start(timeout=120)
    assert_runs_as_nobody(broker.pid)
    pids = embedded_processes(data_dir)
    assert pids, "no embedded postgres"
    for pid in pids:
        assert ids_of(pid)["Uid"][1] == NOBODY.pw_uid, (pid, ids_of(pid))
    agent, out = serve_one(env, broker)
    assert out == "HELLO"
    agent.stop()
    broker.sigterm()
    assert broker.wait(60) == 0, broker.tail()
    wait_for(lambda: embedded_processes(data_dir) == [], 15,
             "the embedded cluster stopped by the unprivileged broker")


@test(timeout=30)
def test_agent_drops_to_user(env):
    if not IS_ROOT:
        print("SKIP: needs root")
        return
    broker = env.broker()
    agent, out = serve_one(env, broker, handler="id -u", agent_args=["--user", "nobody"])
    assert out.strip() == str(NOBODY.pw_uid), out
    assert_runs_as_nobody(agent.pid)
    agent.wait_for_log(r'msg="dropped root privileges" user=nobody uid=65534')
    agent.sigterm()
    assert agent.wait(30) == 0, agent.tail()


@test(timeout=35)
def test_user_refusals(env):
    if not IS_ROOT:
        print("SKIP: needs root")
        return
    def run(name, argv, user=None, extra_env=None):
        p = env.proc(argv, name=name, user=user, extra_env=extra_env)
        wait_for(lambda: not p.running, 30, f"{name} to exit")
        return p.returncode, p.log_text()

    tiny = env.path("tiny")
    os.makedirs(tiny, mode=0o777)
    os.chmod(tiny, 0o777)
    # Not root: refused, not ignored.
    rc, err = run("batond-nonroot", [binary("batond"), "--db", env.pg.dsn, "--data-dir",
                                     tiny, "--user", "nobody"], user="nobody")
    assert rc == 2 and "--user nobody needs root" in err, (rc, err)
    rc, err = run("agent-nonroot", [binary("baton-agent"), "--vendor", "acme",
                                    "--handler", "u=cat", "--user", "nobody"],
                  user="nobody", extra_env={"BATON_SECRET": "x" * 43})
    assert rc == 2 and "--user nobody needs root" in err, (rc, err)
    # An unknown user.
    rc, err = run("batond-unknown", [binary("batond"), "--db", env.pg.dsn, "--data-dir",
                                     tiny, "--user", "no-such-user-x"])
    assert rc == 2 and "no-such-user-x: no such user" in err, (rc, err)
    rc, err = run("agent-unknown", [binary("baton-agent"), "--vendor", "acme",
                                    "--handler", "u=cat", "--user", "no-such-user-x"],
                  extra_env={"BATON_SECRET": "x" * 43})
    assert rc == 2 and "no such user" in err, (rc, err)
    # The embedded cluster as someone else than the broker would be out of reach.
    rc, err = run("batond-pguser", [binary("batond"), "--data-dir", tiny, "--user", "nobody",
                                    "--set", "pg_user=postgres"])
    assert rc == 2 and "pg_user" in err, (rc, err)
    assert not os.path.exists(os.path.join(tiny, "pg"))  # refused before anything ran


if __name__ == "__main__":
    main()
