"""Helpers for the continuity tests (test_continuity_*.py): fault injection on
real processes and a real PostgreSQL (DESIGN.md "Continuity").

  * World: the vendors, agents and packages of one scenario, registered and
    submitted through batonctl, with small /bin/sh handlers written into the
    test's temp dir. A handler prints `PACKAGE:ATTEMPT:AGENT` (plus anything
    scenario-specific after another `:`), so every stored result names the
    attempt and the agent that produced it, and leaves a copy of its output
    in out/ (proof that a handler finished, and when);
  * check_continuity(): the invariants every scenario asserts, read back from
    the database alone: no acknowledged package lost, none completed twice,
    no attempt on a vendor the package's requirements forbid, and handoff rows
    that match the attempts (see its docstring);
  * reading attempts, handoffs and audit rows with their times (epoch seconds
    on the broker's clock, which is this machine's clock: a test compares them
    with time.time()).
"""

from __future__ import annotations

import os
import shlex
import signal
import time

from harness import Agent, Broker, TestEnv, wait_for
from fixtures_it1 import submit_batch, wait_agents, write_batch
from fixtures_it3 import SQL_INELIGIBLE_ATTEMPTS

CAPABILITY = "work"
LEASE_S = 3.0  # the broker's default lease
# Attempt outcomes that end an attempt without its work being done by it, and
# which a handoff row may follow.
HANDOFF_OUTCOMES = ("lost", "revoked", "handed-back")

# The generic handler: `work.sh AGENT SLEEP [EXIT_UNLESS_FILE]`. Reads the
# payload, sleeps, then prints PACKAGE:ATTEMPT:AGENT. With a third argument it
# fails (exit 1, nothing on stdout) unless that file exists.
WORK_SH = r"""#!/bin/sh
# Baton continuity test handler (written by fixtures_it4.py).
echo "$$" >> "$BT_IT4_DIR/handler-pids"
cat >/dev/null
sleep "$2"
if [ -n "$3" ] && [ ! -e "$3" ]; then
    echo "failing on purpose: $3 is missing" >&2
    exit 1
fi
out="$BATON_PACKAGE_ID:$BATON_ATTEMPT:$1"
printf '%s\n' "$out" > "$BT_IT4_DIR/out/$BATON_PACKAGE_ID-$BATON_ATTEMPT-$1"
printf '%s\n' "$out"
"""

# `work-first.sh AGENT N SLOW FAST`: WORK_SH sleeping SLOW seconds for the
# first N handler runs of AGENT in the scenario (a token is claimed with an
# atomic mkdir, so also across a restart of the agent), FAST seconds for every
# later one. For a scenario that needs its first packages in flight across a
# fault but not the ones after it.
WORK_FIRST_SH = r"""#!/bin/sh
# Baton continuity test handler (written by fixtures_it4.py).
i=1
while [ "$i" -le "$2" ]; do
    if mkdir "$BT_IT4_DIR/slow-token-$1-$i" 2>/dev/null; then
        exec /bin/sh "$BT_IT4_DIR/work.sh" "$1" "$3"
    fi
    i=$((i + 1))
done
exec /bin/sh "$BT_IT4_DIR/work.sh" "$1" "$4"
"""


def sh_quote(*words) -> str:
    return " ".join(shlex.quote(str(w)) for w in words)


# ---- the world of one scenario ------------------------------------------------------

class World:
    """Vendors, agents and submitted packages of one test, on one broker.

    Handlers run with BT_IT4_DIR set to the test's temp dir: they record their
    pids (torn down with the env: handlers run in their own session, so
    killing an agent leaves them running) and their outputs under out/."""

    def __init__(self, env: TestEnv, broker: Broker):
        self.env, self.broker = env, broker
        self.vendors: dict = {}    # name -> dict(id, secret, region, ...)
        self.agents: dict = {}     # agent name -> Agent
        self.acked: dict = {}      # package id -> label, every id batonctl returned
        self._n = 0
        self.dir = env.tmp
        os.makedirs(env.path("out"), exist_ok=True)
        self.work_sh = self.script("work.sh", WORK_SH)
        self.work_first_sh = self.script("work-first.sh", WORK_FIRST_SH)
        # Before the agents are stopped (one waits for its running handlers),
        # and again after (for any started meanwhile).
        env.add_cleanup(self._kill_handlers, "handler processes", first=True)
        env.add_cleanup(self._kill_handlers, "handler processes")

    # -- handlers

    def script(self, name: str, text: str) -> str:
        """Writes an executable /bin/sh script into the temp dir; returns its path."""
        path = self.env.path(name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
        return path

    def work(self, agent: str, sleep: float = 1.0, fail_unless: str | None = None) -> str:
        """The handler command of WORK_SH for agent."""
        args = [agent, sleep] + ([fail_unless] if fail_unless else [])
        return sh_quote("/bin/sh", self.work_sh, *args)

    def outputs(self) -> dict:
        """{(package, attempt, agent): mtime} of every handler that finished."""
        out = {}
        for name in os.listdir(self.env.path("out")):
            pid, att, agent = name.split("-", 2)
            out[(int(pid), int(att), agent)] = os.path.getmtime(self.env.path("out", name))
        return out

    def work_first(self, agent: str, n: int, slow: float, fast: float) -> str:
        """The handler command of WORK_FIRST_SH for agent: its first n handler
        runs sleep slow seconds, the later ones fast."""
        return sh_quote("/bin/sh", self.work_first_sh, agent, n, slow, fast)

    def _kill_handlers(self) -> None:
        try:
            with open(self.env.path("handler-pids")) as f:
                pids = [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    mine = self.env.tmp.encode() in f.read()
            except OSError:
                continue
            if mine:
                try:
                    # The agent starts each handler in its own session: its
                    # whole group goes (the shell and its sleep).
                    pgid = os.getpgid(pid)
                    if pgid != os.getpgid(0):
                        os.killpg(pgid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    # -- vendors and agents

    def vendor(self, name: str, region: str, cost: float = 1.0, capacity: int = 8,
               certs=()) -> dict:
        args = ["vendor", "add", name, "--region", region, "--capability", CAPABILITY,
                "--capacity", capacity, "--cost", repr(cost)]
        for c in certs:
            args += ["--cert", c]
        _, v, _ = self.broker.ctl(*args)
        assert v["name"] == name and v["id"] > 0 and v["secret"], v
        self.vendors[name] = dict(v, region=region, cost=cost, capacity=capacity,
                                  certs=tuple(certs))
        return v

    def agent(self, vendor: str, name: str, handler: str, slots: int = 2,
              wait: bool = True, extra_args=()) -> Agent:
        """Starts an agent of vendor running handler for CAPABILITY
        (extra_args: more baton-agent options)."""
        a = self.env.agent(vendor=vendor, secret=self.vendors[vendor]["secret"],
                           broker=self.broker, name=name, slots=slots,
                           handlers={CAPABILITY: handler}, extra_args=extra_args,
                           extra_env={"BT_IT4_DIR": self.dir})
        self.agents[name] = a
        if wait:
            wait_agents(self.broker, [name])
        return a

    def wait_connected(self, names, timeout: float = 30.0):
        return wait_agents(self.broker, names, timeout)

    def vendor_show(self, name: str) -> dict:
        return self.broker.ctl("vendor", "show", name, timeout=10)[1]

    # -- packages

    def submit(self, n: int, label: str, **fields) -> list:
        """n packages in one batch (fields: batch keys, e.g. region=[...]);
        returns their ids, remembered as acknowledged."""
        lines = []
        for _ in range(n):
            self._n += 1
            line = {"capability": CAPABILITY, "payload": f"{label}-{self._n}"}
            line.update(fields)
            lines.append(line)
        path = write_batch(self.env.path(f"batch-{self._n}.jsonl"), lines)
        ids = submit_batch(self.broker, path, n)
        for i in ids:
            assert i not in self.acked, f"id {i} returned twice"
            self.acked[i] = label
        return ids

    def submit_one(self, label: str, **flags) -> int:
        """One package through `submit --capability ... [--flag V]`."""
        self._n += 1
        args = ["submit", "--capability", CAPABILITY, "--payload", f"{label}-{self._n}"]
        for k, v in flags.items():
            args += [f"--{k.replace('_', '-')}", v]
        _, out, _ = self.broker.ctl(*args)
        pid = int(out["id"])
        self.acked[pid] = label
        return pid

    def ids(self, label: str | None = None) -> list:
        return sorted(i for i, lb in self.acked.items() if label is None or lb == label)


# ---- reading the database ---------------------------------------------------------------

def _f(x):
    return None if x is None or x == "" else float(x)


def db_attempts(pg, ids=None) -> list:
    """Every attempt as a dict(package, attempt, vendor, agent, outcome,
    assigned, started, ended), times in epoch seconds (None when unset)."""
    where = ""
    if ids is not None:
        ids = [int(i) for i in ids]
        if not ids:
            return []
        where = "WHERE t.package_id IN (" + ",".join(map(str, ids)) + ")"
    rows = pg.psql(
        "SELECT t.package_id, t.attempt, v.name, a.name, t.outcome, "
        "       extract(epoch FROM t.assigned_at), extract(epoch FROM t.started_at), "
        "       extract(epoch FROM t.ended_at) "
        "FROM attempts t JOIN vendors v ON v.id = t.vendor_id "
        f"JOIN agents a ON a.id = t.agent_id {where} ORDER BY t.package_id, t.attempt")
    return [dict(package=int(r[0]), attempt=int(r[1]), vendor=r[2], agent=r[3],
                 outcome=r[4], assigned=_f(r[5]), started=_f(r[6]), ended=_f(r[7]))
            for r in rows]


def db_handoffs(pg) -> list:
    """Every handoffs row as a dict(package, attempt, from_vendor, to_vendor,
    reason, at, checkpoint_bytes)."""
    rows = pg.psql(
        "SELECT h.package_id, h.attempt, fv.name, tv.name, h.reason, "
        "       extract(epoch FROM h.at), coalesce(octet_length(h.checkpoint), 0) "
        "FROM handoffs h JOIN vendors fv ON fv.id = h.from_vendor_id "
        "LEFT JOIN vendors tv ON tv.id = h.to_vendor_id ORDER BY h.package_id, h.attempt")
    return [dict(package=int(r[0]), attempt=int(r[1]), from_vendor=r[2], to_vendor=r[3],
                 reason=r[4], at=float(r[5]), checkpoint_bytes=int(r[6])) for r in rows]


def db_packages(pg) -> dict:
    """{id: dict(state, attempt, vendor, agent, result)} of every package as
    packages_now shows it (result decoded as UTF-8, None when NULL)."""
    rows = pg.psql(
        "SELECT p.id, p.state, p.attempt, v.name, a.name, convert_from(p.result, 'UTF8') "
        "FROM packages_now p LEFT JOIN vendors v ON v.id = p.vendor_id "
        "LEFT JOIN agents a ON a.id = p.agent_id ORDER BY p.id")
    return {int(r[0]): dict(state=r[1], attempt=int(r[2]), vendor=r[3], agent=r[4],
                            result=r[5]) for r in rows}


def db_audit(pg, action_like: str = "%") -> list:
    """audit_events rows whose action is LIKE action_like, as dicts."""
    rows = pg.psql(
        "SELECT extract(epoch FROM at), actor, action, subject, detail "
        "FROM audit_events WHERE action LIKE '" + action_like.replace("'", "''")
        + "' ORDER BY id")
    return [dict(at=float(r[0]), actor=r[1], action=r[2], subject=r[3], detail=r[4])
            for r in rows]


def open_attempts(pg, agent: str, started: bool = True) -> list:
    """Attempts of agent that have not ended (started ones only, by default)."""
    return [a for a in db_attempts(pg) if a["agent"] == agent and a["outcome"] is None
            and (a["started"] is not None or not started)]


def wait_running(pg, agent: str, n: int = 1, timeout: float = 30.0) -> list:
    """Waits until agent runs at least n attempts (started, not ended)."""
    return wait_for(lambda: (lambda r: r if len(r) >= n else None)(open_attempts(pg, agent)),
                    timeout, what=f"{n} attempt(s) running on {agent}", interval=0.1)


def wait_handoffs(pg, pairs, timeout: float = 20.0) -> dict:
    """Waits until a handoffs row exists for every (package, attempt) in
    pairs; returns {(package, attempt): row}."""
    want = set(pairs)

    def have():
        rows = {(h["package"], h["attempt"]): h for h in db_handoffs(pg)}
        return {k: rows[k] for k in want} if want <= set(rows) else None
    return wait_for(have, timeout, what=f"handoff rows for {sorted(want)}", interval=0.1)


def vendor_state(world: World, name: str) -> tuple:
    """(state, state_reason) of `vendor show NAME`."""
    v = world.vendor_show(name)
    return v.get("state"), v.get("state_reason")


def wait_vendor_state(world: World, name: str, state: str, timeout: float) -> dict:
    def reached():
        v = world.vendor_show(name)
        return v if v.get("state") == state else None
    return wait_for(reached, timeout, what=f"vendor {name} {state}", interval=0.1)


# ---- the invariants --------------------------------------------------------------------------

# An attempt on a vendor that does not offer the package's capability.
SQL_NO_CAPABILITY = """
SELECT p.id, t.attempt, v.name
FROM work_packages p
JOIN attempts t ON t.package_id = p.id
JOIN vendors v ON v.id = t.vendor_id
WHERE NOT (p.capability = ANY (v.capabilities))
ORDER BY p.id, t.attempt
"""


def check_continuity(env: TestEnv, world: World, states=None, reasons=(),
                     trace: bool = True, exact: bool = True) -> dict:
    """The invariants of every continuity scenario, from the database alone.

    states: the state each acknowledged package must end in (a dict
    {id: state}, or one state for all; default "completed"). reasons: the
    handoff reasons the scenario allows (every handoffs row's reason must be
    one of them; empty: no handoff at all). trace: a completed package's
    stored result starts with PACKAGE:ATTEMPT:AGENT of its completed attempt
    (the handlers of World print that), so the result is that attempt's.
    exact: no package exists that batonctl did not acknowledge.

      1. nothing lost: every acknowledged id is a row in the expected state;
      2. nothing twice: at most one attempt with outcome completed per package;
         state completed exactly for those, naming that attempt, vendor and
         agent; a finished package has no attempt left open; attempts are
         numbered 1..n;
      3. no constraint violated: every attempt's vendor satisfies the
         package's regions, certs, max cost and avoid list, and offers its
         capability;
      4. handoffs match the attempts: each row's from_vendor is the vendor of
         that attempt, which ended lost, revoked or handed-back; to_vendor is
         the vendor of the next attempt when there is one (NULL when there is
         none); every started attempt that ended lost or revoked has a row
         (unless the package went dead with it); reasons are the expected ones.

    Returns dict(packages, attempts, handoffs, by_package) for further checks."""
    pg = env.pg
    acked = world.acked
    if states is None:
        states = "completed"
    want = states if isinstance(states, dict) else {i: states for i in acked}
    pkgs = db_packages(pg)
    attempts = db_attempts(pg)
    handoffs = db_handoffs(pg)
    by_pkg: dict = {}
    for a in attempts:
        by_pkg.setdefault(a["package"], []).append(a)

    # 1. nothing lost
    missing = sorted(set(acked) - set(pkgs))
    assert not missing, f"{len(missing)} acknowledged packages lost: {missing[:20]}"
    wrong = {i: pkgs[i]["state"] for i in want if pkgs[i]["state"] != want[i]}
    assert not wrong, (f"{len(wrong)} packages not in the expected state: "
                       + ", ".join(f"{i} is {s}, want {want[i]}"
                                   for i, s in list(wrong.items())[:20]))
    if exact:
        extra = sorted(set(pkgs) - set(acked))
        assert not extra, f"{len(extra)} packages nobody acknowledged: {extra[:20]}"

    # 2. nothing twice
    problems = []
    for pid, p in pkgs.items():
        atts = by_pkg.get(pid, [])
        nums = [a["attempt"] for a in atts]
        if nums != list(range(1, len(nums) + 1)):
            problems.append((pid, "attempt numbers", nums))
        done = [a for a in atts if a["outcome"] == "completed"]
        if len(done) > 1:
            problems.append((pid, "completed more than once", done))
        if p["state"] == "completed":
            if len(done) != 1:
                problems.append((pid, "completed without a completed attempt", atts))
            else:
                d = done[0]
                if (d["attempt"], d["vendor"], d["agent"]) != \
                        (p["attempt"], p["vendor"], p["agent"]):
                    problems.append((pid, "row disagrees with its completed attempt", p, d))
        elif done:
            problems.append((pid, f"state {p['state']} with a completed attempt", done))
        if p["state"] in ("completed", "dead", "cancelled"):
            still = [a for a in atts if a["outcome"] is None]
            if still:
                problems.append((pid, f"{p['state']} with attempts still open", still))
        if p["state"] == "queued" and any(a["outcome"] is None for a in atts):
            problems.append((pid, "queued with an open attempt", atts))
    orphans = set(by_pkg) - set(pkgs)
    assert not orphans, f"attempts of unknown packages {sorted(orphans)[:10]}"
    assert not problems, f"{len(problems)} exactly-once problems: {problems[:5]}"

    # 3. no constraint violated
    bad = pg.psql(SQL_INELIGIBLE_ATTEMPTS)
    assert bad == [], f"{len(bad)} attempts on vendors the requirements forbid: {bad[:10]}"
    bad = pg.psql(SQL_NO_CAPABILITY)
    assert bad == [], f"{len(bad)} attempts on vendors without the capability: {bad[:10]}"

    # 4. handoffs match the attempts
    att_at = {(a["package"], a["attempt"]): a for a in attempts}
    hand_at = {(h["package"], h["attempt"]): h for h in handoffs}
    problems = []
    for h in handoffs:
        key = (h["package"], h["attempt"])
        a = att_at.get(key)
        if a is None:
            problems.append((key, "handoff of an attempt that does not exist", h))
            continue
        if h["from_vendor"] != a["vendor"]:
            problems.append((key, f"from_vendor {h['from_vendor']} but the attempt "
                                  f"ran on {a['vendor']}", h))
        if a["outcome"] not in HANDOFF_OUTCOMES:
            problems.append((key, f"handed off but the attempt ended {a['outcome']}", h))
        nxt = att_at.get((h["package"], h["attempt"] + 1))
        if nxt is not None and h["to_vendor"] != nxt["vendor"]:
            problems.append((key, f"to_vendor {h['to_vendor']} but the next attempt "
                                  f"ran on {nxt['vendor']}", h))
        if nxt is None and h["to_vendor"] is not None:
            problems.append((key, f"to_vendor {h['to_vendor']} but there is no next "
                                  "attempt", h))
        if h["reason"] not in reasons:
            problems.append((key, f"reason {h['reason']!r}, expected one of "
                                  f"{sorted(reasons)}", h))
    for a in attempts:
        key = (a["package"], a["attempt"])
        if a["outcome"] in ("lost", "revoked") and a["started"] is not None \
                and key not in hand_at:
            last = a["attempt"] == len(by_pkg[a["package"]])
            if not (last and pkgs[a["package"]]["state"] == "dead"):
                problems.append((key, f"started attempt ended {a['outcome']} without "
                                      "a handoff row", a))
    assert not problems, (f"{len(problems)} handoff rows disagree with what "
                          f"happened: {problems[:6]}")

    # The result is the completing attempt's own output.
    if trace:
        off = []
        for pid in acked:
            p = pkgs[pid]
            if p["state"] != "completed":
                continue
            tag = f"{pid}:{p['attempt']}:{p['agent']}"
            got = (p["result"] or "").rstrip("\n")
            if got != tag and not got.startswith(tag + ":"):
                off.append((pid, tag, got))
        assert not off, f"{len(off)} results not from their completed attempt: {off[:6]}"
    return dict(packages=pkgs, attempts=attempts, handoffs=handoffs, by_package=by_pkg)


def summary(report: dict) -> str:
    """One line: attempt outcomes and handoff reasons."""
    outcomes: dict = {}
    for a in report["attempts"]:
        outcomes[a["outcome"]] = outcomes.get(a["outcome"], 0) + 1
    reasons: dict = {}
    for h in report["handoffs"]:
        reasons[h["reason"]] = reasons.get(h["reason"], 0) + 1
    return (f"{len(report['packages'])} packages, attempt outcomes {outcomes}, "
            f"handoffs {reasons}")


def log_lines(proc, *needles, limit: int = 12) -> str:
    """The lines of proc's log (stderr) holding any of needles, the last limit."""
    lines = [ln for ln in proc.log_text().splitlines() if any(n in ln for n in needles)]
    return "\n".join(lines[-limit:])


def elapsed(t0: float) -> str:
    return f"{time.monotonic() - t0:.1f}s"


__all__ = [
    "CAPABILITY", "HANDOFF_OUTCOMES", "LEASE_S", "World", "check_continuity",
    "db_attempts", "db_audit", "db_handoffs", "db_packages", "elapsed",
    "log_lines", "open_attempts", "sh_quote", "summary", "vendor_state",
    "wait_handoffs", "wait_running", "wait_vendor_state",
]
