"""Helpers for the routing, waiting and aging tests (test_routing.py,
test_waiting.py, test_aging.py). Python 3 stdlib only, like harness.py.

  * a fleet of vendors described once (VendorSpec) and registered through
    `batonctl vendor add`, each with one agent running a shell handler;
  * allowed(): the hard eligibility rules of DESIGN.md "Routing" written out
    again in Python, so the tests check the broker against an independent
    statement of the rules, not against its own code;
  * reading assignments and their times back from the database;
  * a second database in the test's PostgreSQL, for a fresh broker run
    without a second cluster;
  * Feeder: a background submitter that keeps a number of packages queued.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from harness import Broker, HarnessError, TestEnv, wait_for
from fixtures_it1 import submit_batch, wait_agents, write_batch

CAPABILITY = "work"


# ---- the fleet ------------------------------------------------------------------

@dataclass(frozen=True)
class VendorSpec:
    name: str
    region: str
    cost: float
    certs: tuple = ()
    model: str | None = None
    capacity: int = 8
    slots: int = 8
    capabilities: tuple = (CAPABILITY,)


def add_vendor(broker: Broker, v: VendorSpec) -> dict:
    """`vendor add` with every attribute of v; returns its JSON (id, name,
    secret)."""
    args = ["vendor", "add", v.name, "--region", v.region, "--cost", repr(v.cost),
            "--capacity", v.capacity]
    for c in v.capabilities:
        args += ["--capability", c]
    for c in v.certs:
        args += ["--cert", c]
    if v.model:
        args += ["--model", v.model]
    _, out, _ = broker.ctl(*args)
    assert out["name"] == v.name and out["id"] > 0 and out["secret"], out
    return out


def start_agent(env: TestEnv, broker: Broker, v: VendorSpec, secret: str,
                handler: str, slots: int | None = None):
    """One agent of v offering every capability of v with handler."""
    return env.agent(vendor=v.name, secret=secret, broker=broker,
                     name=f"{v.name}-1", slots=slots or v.slots,
                     handlers={c: handler for c in v.capabilities},
                     extra_args=["--drain-timeout", "2s"])


def start_fleet(env: TestEnv, broker: Broker, vendors, handler: str) -> dict:
    """Registers the vendors (in order: ids follow it) and starts one agent
    each; returns {name: secret} once every agent is connected."""
    secrets = {}
    for v in vendors:
        secrets[v.name] = add_vendor(broker, v)["secret"]
    agents = [start_agent(env, broker, v, secrets[v.name], handler) for v in vendors]
    wait_agents(broker, [a.agent_name for a in agents])
    return secrets


def check_vendors_registered(broker: Broker, vendors) -> None:
    """`vendor list` shows every attribute as it was given."""
    _, listed, _ = broker.ctl("vendor", "list")
    by_name = {v["name"]: v for v in listed}
    for v in vendors:
        got = by_name.get(v.name)
        assert got is not None, (v.name, listed)
        assert got["region"] == v.region, got
        assert sorted(got["certs"]) == sorted(v.certs), got
        assert abs(got["cost"] - v.cost) < 1e-9, got
        assert got["capacity"] == v.capacity, got
        assert got["model"] == (v.model or got["model"]), got
        assert got["state"] == "active", got


# ---- requirements -----------------------------------------------------------------

@dataclass(frozen=True)
class Req:
    """A package's requirement set, as submitted."""
    regions: tuple = ()
    certs: tuple = ()
    max_cost: float | None = None
    prefer: tuple = ()
    avoid: tuple = ()

    def batch_fields(self, style: int = 0) -> dict:
        """The batch-line keys; style alternates JSON arrays and
        comma-separated strings (both spellings of CONTRACT.md)."""
        out = {}
        for key, vals in (("region", self.regions), ("cert", self.certs),
                          ("prefer", self.prefer), ("avoid", self.avoid)):
            if vals:
                out[key] = list(vals) if style % 2 == 0 else ",".join(vals)
        if self.max_cost is not None:
            out["max_cost"] = self.max_cost
        return out

    @property
    def unconstrained(self) -> bool:
        return not (self.regions or self.certs or self.avoid
                    or self.max_cost is not None)


def allowed(req: Req, v: VendorSpec) -> bool:
    """DESIGN.md "Routing" 1, the package side of eligibility: vendor region
    in the allowed regions (when any), every required cert held, cost within
    max cost, vendor not avoided. Preference is soft and plays no part."""
    if req.regions and v.region not in req.regions:
        return False
    if any(c not in v.certs for c in req.certs):
        return False
    if req.max_cost is not None and v.cost > req.max_cost:
        return False
    return v.name not in req.avoid


def eligible(req: Req, vendors) -> list:
    return [v.name for v in vendors if allowed(req, v)]


# ---- submitting ----------------------------------------------------------------------

def batch_line(payload: str, req: Req | None = None, style: int = 0,
               capability: str = CAPABILITY, **extra) -> dict:
    line = {"capability": capability, "payload": payload}
    if req is not None:
        line.update(req.batch_fields(style))
    line.update(extra)
    return line


def submit_lines(broker: Broker, path: str, lines) -> list:
    """Writes lines as a batch file and submits it; returns the ids."""
    lines = list(lines)
    return submit_batch(broker, write_batch(path, lines), len(lines))


# ---- the database -------------------------------------------------------------------------

def _list(text) -> tuple:
    return tuple(x for x in (text or "").split(",") if x)


def db_assignments(pg, ids=None) -> dict:
    """{package id: row} for every package that has attempts, row =
    dict(state, payload, result, regions, certs, max_cost, prefer, avoid,
    pkg_vendor, attempts=[(attempt, outcome, vendor, v_region, v_certs,
    v_cost)])."""
    where = ""
    if ids is not None:
        ids = list(ids)
        if not ids:
            return {}
        where = "WHERE p.id IN (" + ",".join(str(int(i)) for i in ids) + ")"
    rows = pg.psql(
        "SELECT p.id, p.state, convert_from(p.payload, 'UTF8'), "
        "       convert_from(p.result, 'UTF8'), array_to_string(p.regions, ','), "
        "       array_to_string(p.certs, ','), p.max_cost, "
        "       array_to_string(p.prefer, ','), array_to_string(p.avoid, ','), "
        "       pv.name, t.attempt, t.outcome, v.name, v.region, "
        "       array_to_string(v.certs, ','), v.cost "
        "FROM packages_now p JOIN attempts t ON t.package_id = p.id "
        "JOIN vendors v ON v.id = t.vendor_id "
        "LEFT JOIN vendors pv ON pv.id = p.vendor_id "
        f"{where} ORDER BY p.id, t.attempt")
    out: dict = {}
    for r in rows:
        pid = int(r[0])
        row = out.get(pid)
        if row is None:
            row = out[pid] = dict(
                state=r[1], payload=r[2], result=r[3], regions=_list(r[4]),
                certs=_list(r[5]), max_cost=None if r[6] is None else float(r[6]),
                prefer=_list(r[7]), avoid=_list(r[8]), pkg_vendor=r[9], attempts=[])
        row["attempts"].append((int(r[10]), r[11], r[12], r[13], _list(r[14]),
                                float(r[15])))
    return out


# Every attempt whose vendor the package's stored requirements did not allow,
# computed by PostgreSQL from the stored rows alone.
SQL_INELIGIBLE_ATTEMPTS = """
SELECT p.id, t.attempt, v.name
FROM work_packages p
JOIN attempts t ON t.package_id = p.id
JOIN vendors v ON v.id = t.vendor_id
WHERE NOT ((cardinality(p.regions) = 0 OR v.region = ANY (p.regions))
           AND p.certs <@ v.certs
           AND (p.max_cost IS NULL OR v.cost <= p.max_cost)
           AND NOT (v.name = ANY (p.avoid)))
ORDER BY p.id, t.attempt
"""


def db_times(pg, ids) -> dict:
    """{package id: dict(priority, submitted, not_before, assigned, started,
    ended, state)} in epoch seconds (the broker's clock), times of the
    first attempt (None when there is none)."""
    ids = [int(i) for i in ids]
    if not ids:
        return {}
    rows = pg.psql(
        "SELECT p.id, p.priority, extract(epoch FROM p.submitted_at), "
        "       extract(epoch FROM p.not_before_at), "
        "       extract(epoch FROM t.assigned_at), extract(epoch FROM t.started_at), "
        "       extract(epoch FROM t.ended_at), p.state "
        "FROM packages_now p LEFT JOIN attempts t "
        "  ON t.package_id = p.id AND t.attempt = 1 "
        "WHERE p.id IN (" + ",".join(map(str, ids)) + ") ORDER BY p.id")

    def f(x):
        return None if x is None or x == "" else float(x)
    return {int(r[0]): dict(priority=int(r[1]), submitted=f(r[2]), not_before=f(r[3]),
                            assigned=f(r[4]), started=f(r[5]), ended=f(r[6]),
                            state=r[7])
            for r in rows}


def max_in_flight(pg) -> dict:
    """{vendor name: the most attempts it ever had open at once}, from the
    attempts' assigned_at..ended_at intervals (an end at the same instant
    as a start counts first)."""
    rows = pg.psql(
        "SELECT v.name, extract(epoch FROM t.assigned_at), extract(epoch FROM t.ended_at) "
        "FROM attempts t JOIN vendors v ON v.id = t.vendor_id")
    events: dict = {}
    for name, start, end in rows:
        ev = events.setdefault(name, [])
        ev.append((float(start), 1))
        ev.append((float(end) if end else float("inf"), -1))
    out = {}
    for name, ev in events.items():
        ev.sort()
        cur = top = 0
        for _, d in ev:
            cur += d
            top = max(top, cur)
        out[name] = top
    return out


def create_database(env: TestEnv, name: str) -> str:
    """A second, empty database in the env's PostgreSQL (a fresh broker run
    without a second cluster); returns its conninfo."""
    env.pg.psql(f'CREATE DATABASE "{name}"', db="postgres")
    dsn = env.pg.dsn.replace(f"dbname={env.pg.dbname}", f"dbname={name}")
    assert f"dbname={name}" in dsn, dsn
    return dsn


def stop_all(env: TestEnv) -> None:
    """Stops every process of env (agents first, then brokers), so a second
    broker run does not share the CPU with the first."""
    for p in reversed(env.procs):
        p.stop(timeout=10)


# ---- a background submitter that keeps work queued -----------------------------------------

class Feeder:
    """Keeps between `low` and `high` packages of `priority` queued (counted
    with `package list --state queued`), checking every `interval` seconds,
    until stop(). Every id it submitted is in .ids (with its submit time on
    the test's clock in .submitted). A failure inside the thread is raised
    by stop()."""

    def __init__(self, env: TestEnv, broker: Broker, priority: int = 9,
                 low: int = 8, high: int = 16, interval: float = 0.05,
                 payload: str = "p9", capability: str = CAPABILITY):
        self.env, self.broker = env, broker
        self.priority, self.low, self.high = priority, low, high
        self.interval, self.payload, self.capability = interval, payload, capability
        self.ids: list = []
        self.min_seen: int | None = None  # fewest queued seen after the first fill
        self.rounds = 0
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._n = 0
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)

    def queued(self) -> int:
        _, listed, _ = self.broker.ctl("package", "list", "--state", "queued",
                                       "--capability", self.capability,
                                       "--limit", 10000, timeout=10)
        return sum(1 for p in listed if p["priority"] == self.priority)

    def _top_up(self, have: int) -> None:
        lines = []
        for _ in range(self.high - have):
            self._n += 1
            lines.append(batch_line(f"{self.payload}-{self._n}",
                                    priority=self.priority, capability=self.capability))
        path = self.env.path(f"feed-{self.priority}-{self._n}.jsonl")
        self.ids += submit_lines(self.broker, path, lines)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                have = self.queued()
                if self.rounds > 0:
                    self.min_seen = have if self.min_seen is None else min(self.min_seen, have)
                if have < self.low:
                    self._top_up(have)
                self.rounds += 1
                self._stop.wait(self.interval)
        except BaseException as e:  # noqa: BLE001 - reported by stop()
            self._error = e

    def start(self) -> "Feeder":
        self._top_up(0)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        if self._thread.is_alive():
            raise HarnessError("feeder thread did not stop")
        if self._error is not None:
            raise HarnessError(f"feeder failed: {self._error!r}") from self._error


def wait_state(broker: Broker, pid: int, state: str, timeout: float = 30.0) -> dict:
    """Waits until `package show` says state; returns the package."""
    def reached():
        _, p, _ = broker.ctl("package", "show", pid, timeout=10)
        return p if p["state"] == state else None
    return wait_for(reached, timeout, what=f"package {pid} {state}", interval=0.1)


__all__ = [
    "CAPABILITY", "Feeder", "Req", "SQL_INELIGIBLE_ATTEMPTS", "VendorSpec",
    "add_vendor", "allowed", "batch_line", "check_vendors_registered",
    "create_database", "db_assignments", "db_times", "eligible", "max_in_flight",
    "start_agent", "start_fleet", "stop_all", "submit_lines", "wait_state",
]
