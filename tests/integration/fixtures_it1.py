"""Shared pieces of the end-to-end, crash, idempotency, embedded and migrate
tests: a fleet of vendors and agents running a real shell handler, batch
files, submitting and waiting through batonctl, and the checks that read the
outcome back from the database.

The handler is `tr a-z A-Z`, so the right result of every package is its
payload in upper case (ASCII only: payloads here are ASCII, where tr, Python
and PostgreSQL agree)."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import time

from harness import (Broker, HarnessError, TestEnv, binary,
                     find_pg_bindir, processes_in, wait_for)

CAPABILITY = "upper"
HANDLER = "tr a-z A-Z"
# Brokers of the tests whose answers wait on several store lanes (stale
# reports, admin operations, known keys): two lanes (the default is one), and
# polls parked briefly.
TWO_LANES_BROKER_ARGS = ["--set", "poll_park=200ms", "--set", "store_lanes=2"]


def expected_result(payload: str) -> str:
    """What the `tr a-z A-Z` handler makes of payload."""
    return "".join(chr(ord(c) - 32) if "a" <= c <= "z" else c for c in payload)


# ---- the fleet ---------------------------------------------------------------

def add_vendor(broker: Broker, name: str, region: str, capacity: int = 16,
               capability: str = CAPABILITY) -> dict:
    """`vendor add`; returns its JSON (id, name, secret)."""
    _, v, _ = broker.ctl("vendor", "add", name, "--region", region,
                         "--capability", capability, "--capacity", capacity)
    for field in ("id", "name", "secret"):
        assert field in v, (field, v)
    assert v["name"] == name and v["secret"], v
    return v


def start_fleet(env: TestEnv, broker: Broker,
                vendors=(("acme", "EU-DE", (2, 3)), ("globex", "IN", (4, 2))),
                handler: str = HANDLER, agent_args=()) -> dict:
    """Adds the vendors and starts their agents: vendors is a list of
    (name, region, (slots of agent 1, slots of agent 2, ...)). Returns
    {"secrets": {vendor: secret}, "agents": [Agent, ...]} once every agent
    is connected."""
    secrets, agents = {}, []
    for name, region, slots in vendors:
        v = add_vendor(broker, name, region, capacity=max(8, 2 * sum(slots)))
        secrets[name] = v["secret"]
        for i, n in enumerate(slots):
            agents.append(env.agent(vendor=name, secret=v["secret"], broker=broker,
                                    name=f"{name}-{i + 1}", slots=n,
                                    handlers={CAPABILITY: handler},
                                    extra_args=list(agent_args)))
    wait_agents(broker, [a.agent_name for a in agents])
    return {"secrets": secrets, "agents": agents}


def wait_agents(broker: Broker, names, timeout: float = 30.0) -> list:
    """Waits until `agent list` shows every named agent connected; returns
    the list."""
    want = set(names)

    def connected():
        _, agents, _ = broker.ctl("agent", "list", timeout=10)
        live = {a["name"] for a in agents if a.get("state") == "connected"}
        return agents if want <= live else None
    return wait_for(connected, timeout, what=f"agents {sorted(want)} to connect",
                    interval=0.2)


# ---- submitting ----------------------------------------------------------------

def write_batch(path: str, lines) -> str:
    """Writes JSON Lines: each item a dict (a batch line as CONTRACT.md
    says). Returns path."""
    with open(path, "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    return path


def batch_line(payload: str, b64: bool = False, **extra) -> dict:
    line = {"capability": CAPABILITY}
    if b64:
        line["payload_b64"] = base64.b64encode(payload.encode()).decode()
    else:
        line["payload"] = payload
    line.update(extra)
    return line


def submit_batch(broker: Broker, path: str, n: int, timeout: float = 60.0) -> list:
    """`batonctl --json submit --batch path`; checks it answered n ids and
    returns them (ints, file order)."""
    _, out, _ = broker.ctl("submit", "--batch", path, timeout=timeout)
    ids = out["ids"]
    assert len(ids) == n, f"{path}: {len(ids)} ids for {n} lines"
    assert all(isinstance(i, int) and i > 0 for i in ids), ids[:10]
    return ids


def submit_one(broker: Broker, payload: str, as_json: bool = True, **flags) -> int:
    """`batonctl submit --capability upper --payload P [--flag V ...]`,
    with --json (id, state) or without (the id alone on stdout). Returns
    the id."""
    args = ["submit", "--capability", CAPABILITY, "--payload", payload]
    for k, v in flags.items():
        args += [f"--{k.replace('_', '-')}", v]
    _, out, err = broker.ctl(*args, json=as_json)
    if as_json:
        # A new package; a quick scheduler may have assigned it already.
        assert out["state"] in ("queued", "assigned"), out
        return int(out["id"])
    text = out.strip()
    assert text.isdigit(), f"submit printed {out!r} (stderr {err!r})"
    return int(text)


def ctl_popen(broker: Broker, *args) -> subprocess.Popen:
    """batonctl --control SOCK --json ARGS in the background (for a kill
    during a submit); stdout/stderr are pipes, read them with communicate()."""
    argv = [broker.batonctl or binary("batonctl"), "--control", broker.control,
            "--json", *map(str, args)]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


# ---- waiting -----------------------------------------------------------------

def wait_ids(broker: Broker, ids, timeout: float = 120.0) -> dict:
    """`batonctl --json wait ID...` (in chunks, so argv stays modest);
    asserts every id ended completed. Returns the summed counts."""
    ids = list(ids)
    total = {"completed": 0, "dead": 0, "cancelled": 0, "pending": 0}
    deadline = time.monotonic() + timeout
    for i in range(0, len(ids), 1000):
        chunk = ids[i:i + 1000]
        left = max(1, int(deadline - time.monotonic()))
        _, w, _ = broker.ctl("wait", "--timeout", f"{left}s", *chunk,
                             timeout=left + 30)
        for k in total:
            total[k] += w[k]
        assert w["completed"] == len(chunk) and w["pending"] == 0, w
    return total


def wait_all(broker: Broker, timeout: float = 120.0) -> dict:
    """`batonctl --json wait --all`; returns its counts (nothing pending)."""
    _, w, _ = broker.ctl("wait", "--all", "--timeout", f"{int(timeout)}s",
                         timeout=timeout + 30)
    assert w["pending"] == 0, w
    return w


# ---- reading the outcome back from the database -------------------------------------

def db_packages(pg) -> dict:
    """{id: (state, payload, result, attempt, vendor name, agent name)} of
    every package as packages_now shows it (its open attempt folded in;
    payload and result decoded as UTF-8, result None when NULL)."""
    rows = pg.psql(
        "SELECT p.id, p.state, convert_from(p.payload, 'UTF8'), "
        "       convert_from(p.result, 'UTF8'), p.attempt, v.name, a.name "
        "FROM packages_now p LEFT JOIN vendors v ON v.id = p.vendor_id "
        "LEFT JOIN agents a ON a.id = p.agent_id ORDER BY p.id")
    return {int(r[0]): r[1:] for r in rows}


def db_attempts(pg) -> dict:
    """{package id: [(attempt, outcome, vendor name, agent name), ...]}."""
    rows = pg.psql(
        "SELECT t.package_id, t.attempt, t.outcome, v.name, a.name "
        "FROM attempts t JOIN vendors v ON v.id = t.vendor_id "
        "JOIN agents a ON a.id = t.agent_id ORDER BY t.package_id, t.attempt")
    out: dict = {}
    for pid, att, outcome, vendor, agent in rows:
        out.setdefault(int(pid), []).append((int(att), outcome, vendor, agent))
    return out


def check_all_completed(pg, expected_payloads: dict | None = None,
                        exact_ids=None) -> dict:
    """Asserts every package in the database is completed once and right:
    state completed, result = upper(payload), exactly one attempt with
    outcome completed (the one the package names), and, when given, the
    payloads of expected_payloads {id: payload} and exactly the ids of
    exact_ids. Returns db_packages()."""
    pkgs = db_packages(pg)
    attempts = db_attempts(pg)
    bad_state = {i: p[0] for i, p in pkgs.items() if p[0] != "completed"}
    assert not bad_state, (f"{len(bad_state)} packages not completed: "
                           f"{dict(list(bad_state.items())[:10])}")
    wrong = {i: (p[1], p[2]) for i, p in pkgs.items() if p[2] != expected_result(p[1])}
    assert not wrong, (f"{len(wrong)} wrong results, e.g. "
                       f"{dict(list(wrong.items())[:5])}")
    if expected_payloads is not None:
        missing = set(expected_payloads) - set(pkgs)
        assert not missing, (f"{len(missing)} acknowledged packages lost: "
                             f"{sorted(missing)[:20]}")
        mism = {i: (p, pkgs[i][1]) for i, p in expected_payloads.items()
                if pkgs[i][1] != p}
        assert not mism, f"payloads differ: {dict(list(mism.items())[:5])}"
    if exact_ids is not None:
        extra = set(pkgs) - set(exact_ids)
        assert not extra, f"{len(extra)} unexpected packages: {sorted(extra)[:20]}"
    twice, none, off = [], [], []
    for i, p in pkgs.items():
        done = [a for a in attempts.get(i, []) if a[1] == "completed"]
        if len(done) > 1:
            twice.append((i, done))
        elif not done:
            none.append((i, attempts.get(i)))
        elif done[0][0] != int(p[3]) or done[0][2] != p[4] or done[0][3] != p[5]:
            off.append((i, p[3:], done[0]))
    assert not twice, f"{len(twice)} packages completed more than once: {twice[:5]}"
    assert not none, f"{len(none)} completed packages lack a completed attempt: {none[:5]}"
    assert not off, f"package row disagrees with its completed attempt: {off[:5]}"
    orphans = set(attempts) - set(pkgs)
    assert not orphans, f"attempts of unknown packages {sorted(orphans)[:10]}"
    return pkgs


def count_states(pg) -> dict:
    return {s: int(n) for s, n in
            pg.psql("SELECT state, count(*) FROM packages_now GROUP BY state")}


def check_package_show(broker: Broker, pid: int, payload: str, db_row) -> dict:
    """`package show` of a completed package against CONTRACT.md and its
    database row; `result` (raw and --json) gives upper(payload)."""
    _, p, _ = broker.ctl("package", "show", pid)
    for field in ("id", "capability", "state", "priority", "deadline", "vendor",
                  "agent", "attempt", "waiting_reason", "progress", "result_bytes",
                  "attempts", "handoffs"):
        assert field in p, f"package show lacks {field}: {p}"
    want = expected_result(payload).encode()
    assert p["id"] == pid and p["capability"] == CAPABILITY, p
    assert p["state"] == "completed", p
    assert p["vendor"] == db_row[4] and p["agent"] == db_row[5], (p, db_row)
    assert p["attempt"] == int(db_row[3]), (p, db_row)
    assert p["result_bytes"] == len(want), (p, len(want))
    done = [a for a in p["attempts"] if a["outcome"] == "completed"]
    assert len(done) == 1, p["attempts"]
    a = done[0]
    for field in ("attempt", "vendor", "agent", "started", "ended", "outcome"):
        assert field in a, f"attempt lacks {field}: {a}"
    assert a["attempt"] == p["attempt"] and a["vendor"] == p["vendor"], (a, p)
    assert a["agent"] == p["agent"] and a["started"] and a["ended"], a
    assert a["started"] <= a["ended"], a  # RFC 3339 UTC strings sort by time
    _, raw, _ = broker.ctl("result", pid, json=False)
    assert raw.encode() == want, (raw, want)
    _, r, _ = broker.ctl("result", pid)
    assert r["id"] == pid and base64.b64decode(r["result_b64"]) == want, r
    return p


# ---- the embedded PostgreSQL -------------------------------------------------------

def embedded_pgdata(data_dir: str) -> str:
    """Where batond's embedded cluster lives (CONTRACT.md: DATA_DIR/pg)."""
    return os.path.join(data_dir, "pg", "data")


def postmaster_pids(data_dir: str) -> list:
    """pids `pgrep -f` finds for the embedded cluster's data directory (the
    postmaster runs `postgres -D DATA_DIR/pg/data`)."""
    r = subprocess.run(["pgrep", "-f", "--", embedded_pgdata(data_dir)],
                       capture_output=True, text=True)
    return sorted(int(p) for p in r.stdout.split() if int(p) != os.getpid())


def embedded_processes(data_dir: str) -> list:
    """Every live process of the embedded cluster (postmaster and backends)."""
    return sorted(set(processes_in(embedded_pgdata(data_dir)))
                  | set(postmaster_pids(data_dir)))


def stop_stray_embedded(data_dir: str) -> list:
    """Teardown guard: pg_ctl detaches the postmaster from batond, so after a
    kill -9 (or a broker that fails to stop it) nothing else would. Stops
    whatever still runs in the cluster (immediate shutdown, then SIGKILL)
    and returns the pids it found."""
    found = embedded_processes(data_dir)
    for sig in (signal.SIGQUIT, signal.SIGKILL):
        for pid in embedded_processes(data_dir):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            wait_for(lambda: not embedded_processes(data_dir), 10,
                     what="embedded postgresql to go", logs=[])
            break
        except HarnessError:
            continue
    return found


def embedded_dsn(broker: Broker) -> str:
    """The conninfo batond logged for its embedded cluster at its latest
    start (`embedded postgresql ready dsn="..."`)."""
    m = re.findall(r'msg="embedded postgresql ready" dsn="([^"]*)"',
                   broker.log_text(since_start=True))
    if not m:
        raise HarnessError("batond did not log the embedded dsn\n" + broker.tail(20))
    return m[-1]


def embedded_psql(dsn: str, sql: str) -> list:
    """Runs sql on the embedded cluster (root may use its owner-only
    socket); rows as lists of strings."""
    r = subprocess.run([os.path.join(find_pg_bindir(), "psql"), "-X", "-q", "-t",
                        "-A", "-F", "|", "-v", "ON_ERROR_STOP=1", "-d", dsn,
                        "-c", sql],
                       capture_output=True, text=True, timeout=30,
                       env={k: v for k, v in os.environ.items()
                            if not k.startswith("PG")})
    if r.returncode != 0:
        raise HarnessError(f"psql on the embedded cluster: {r.stderr.strip()}")
    lines = r.stdout.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # -t -A: one line per row, an empty value is an empty line
    return [line.split("|") for line in lines]


__all__ = [
    "CAPABILITY", "HANDLER", "add_vendor", "batch_line",
    "check_all_completed", "check_package_show", "count_states", "ctl_popen",
    "db_attempts", "db_packages", "embedded_dsn", "embedded_pgdata",
    "embedded_processes", "embedded_psql", "expected_result",
    "postmaster_pids", "stop_stray_embedded",
    "start_fleet", "submit_batch", "submit_one", "wait_agents", "wait_all",
    "wait_ids", "write_batch",
]
