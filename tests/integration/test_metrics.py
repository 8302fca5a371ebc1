"""The Prometheus metrics at /metrics (DESIGN.md "Observability").

One scenario on real processes: vendors acme (EU-DE) and beta (US-EAST), one
agent each, packages pinned to a vendor by region so the outcome of each is
known in advance: some complete at acme (with a deadline, so the on-time
ratio has history), one fails at beta (--max-attempts 1: dead after one
attempt), and one slow package is running at acme when `batonctl vendor fail
acme` hands it off. Then /metrics is parsed strictly (parse_exposition) and
every family the broker promises is checked against what happened and
against the database (attempts, handoffs, audit rows).
"""

from __future__ import annotations

import math
import os
import re
import signal

from harness import main, test, wait_for
from fixtures_it1 import wait_agents

CAPABILITY = "work"

# payload "fail…": exit 1; "slow…": sleep 60 (until cancelled); else done at once.
HANDLER_SH = r"""#!/bin/sh
# Baton metrics test handler (written by test_metrics.py).
echo "$$" >> "$BT_IT5_DIR/handler-pids"
p=$(cat)
case "$p" in
fail*) echo "failing on purpose" >&2; exit 1 ;;
slow*) sleep 60 ;;
*) sleep 0.05 ;;
esac
printf '%s:%s\n' "$BATON_PACKAGE_ID" "$BATON_ATTEMPT"
"""

# ---- a strict parser of the text exposition format 0.0.4 ---------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
SAMPLE_RE = re.compile(rf"^({NAME})(?:\{{(.*)\}})? (\S+)$")
LABEL_RE = re.compile(rf'({LABEL})="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def _unescape(v: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def _labels(text: str, line: str) -> tuple:
    out, pos = [], 0
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        assert m, f"bad labels at {text[pos:]!r} in {line!r}"
        out.append((m.group(1), _unescape(m.group(2))))
        pos = m.end()
    names = [k for k, _ in out]
    assert len(names) == len(set(names)), f"repeated label in {line!r}"
    return tuple(out)


def _value(s: str, line: str) -> float:
    assert re.fullmatch(r"[+-]?(Inf|NaN|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)", s), \
        f"bad value {s!r} in {line!r}"
    return float(s.replace("Inf", "inf"))


def parse_exposition(text: str) -> dict:
    """{family: dict(help, type, samples=[(name, labels tuple, value)])}.
    Fails on anything that is not `# HELP name text`, `# TYPE name type` or
    `name{labels} value`, on a sample whose family has not had its HELP and
    TYPE, on a family declared twice or split, on a duplicate series, on a
    histogram whose buckets are not cumulative or do not end in +Inf equal to
    _count."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    fams: dict = {}
    current = None
    seen_series = set()
    for line in text.split("\n")[:-1]:
        assert line == line.strip() and line, f"blank or padded line {line!r}"
        if line.startswith("#"):
            m = re.fullmatch(rf"# (HELP|TYPE) ({NAME}) (.+)", line)
            assert m, f"bad comment line {line!r}"
            kind, name, rest = m.groups()
            f = fams.setdefault(name, dict(help=None, type=None, samples=[]))
            assert not f["samples"], f"{kind} for {name} after its samples"
            key = kind.lower()
            assert f[key] is None, f"second {kind} for {name}"
            if kind == "TYPE":
                assert rest in TYPES, f"bad type in {line!r}"
            f[key] = rest
            current = name
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"bad sample line {line!r}"
        name, labels, value = m.group(1), _labels(m.group(2) or "", line), m.group(3)
        fam = current
        assert fam is not None, f"sample before any family: {line!r}"
        f = fams[fam]
        assert f["help"] is not None and f["type"] is not None, \
            f"{name}: family {fam} lacks HELP or TYPE"
        allowed = {fam}
        if f["type"] == "histogram":
            allowed = {fam + "_bucket", fam + "_sum", fam + "_count"}
        assert name in allowed, f"sample {name} inside family {fam}"
        series = (name, tuple(sorted(labels)))
        assert series not in seen_series, f"duplicate series {line!r}"
        seen_series.add(series)
        f["samples"].append((name, labels, _value(value, line)))
    for name, f in fams.items():
        assert f["help"] and f["type"], f"{name}: HELP and TYPE both required"
        if f["type"] == "histogram":
            check_histogram(name, f)
        if f["type"] == "counter":
            assert name.endswith("_total"), f"counter {name} not named *_total"
            for _, _, v in f["samples"]:
                assert v >= 0 and math.isfinite(v), f"{name}: counter value {v}"
    return fams


def check_histogram(name: str, f: dict) -> None:
    """One unlabelled histogram: le ascending, counts cumulative, +Inf last and
    equal to _count, one _sum and one _count."""
    buckets = [(dict(lb)["le"], v) for n, lb, v in f["samples"] if n == name + "_bucket"]
    sums = [v for n, _, v in f["samples"] if n == name + "_sum"]
    counts = [v for n, _, v in f["samples"] if n == name + "_count"]
    assert len(sums) == 1 and len(counts) == 1, f"{name}: one _sum and one _count"
    assert buckets and buckets[-1][0] == "+Inf", f"{name}: buckets must end in +Inf"
    les = [float(le.replace("Inf", "inf")) for le, _ in buckets]
    assert les == sorted(les) and len(set(les)) == len(les), f"{name}: le order {les}"
    vals = [v for _, v in buckets]
    assert vals == sorted(vals), f"{name}: buckets not cumulative {vals}"
    assert vals[-1] == counts[0], f"{name}: +Inf {vals[-1]} != _count {counts[0]}"
    assert sums[0] >= 0 and (counts[0] > 0 or sums[0] == 0), f"{name}: _sum {sums[0]}"


def value(fams: dict, family: str, **labels):
    """The value of the sample of family (its own name) with exactly labels."""
    want = tuple(sorted(labels.items()))
    for n, lb, v in fams[family]["samples"]:
        if n == family and tuple(sorted(lb)) == want:
            return v
    raise AssertionError(f"no sample {family}{labels} in {fams[family]['samples']}")


def hist(fams: dict, family: str) -> tuple:
    """(count, sum) of a histogram."""
    s = {n: v for n, _, v in fams[family]["samples"] if not n.endswith("_bucket")}
    return s[family + "_count"], s[family + "_sum"]


@test(timeout=20, pg=False)
def test_parser_rejects_malformed():
    """The parser itself: it must refuse what a Prometheus server would."""
    good = ("# HELP a_total A.\n# TYPE a_total counter\na_total 1\n"
            "# HELP h H.\n# TYPE h histogram\n"
            'h_bucket{le="0.1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 0.5\nh_count 2\n'
            '# HELP g G.\n# TYPE g gauge\ng{v="a\\"b\\\\c\\nd",s="x"} NaN\n')
    fams = parse_exposition(good)
    assert math.isnan(value(fams, "g", v='a"b\\c\nd', s="x"))
    bad = [
        "a_total 1\n",                                          # no HELP/TYPE
        "# TYPE a_total counter\na_total 1\n",                  # no HELP
        "# HELP g G.\n# TYPE g gauge\ng{v=\"x} 1\n",             # broken label
        "# HELP g G.\n# TYPE g gauge\ng 1 2 3\n",                # junk
        "# HELP g G.\n# TYPE g gauge\ng one\n",                  # value
        "# HELP g G.\n# TYPE g gauge\ng 1\ng 2\n",                # duplicate series
        "# HELP h H.\n# TYPE h histogram\n"                     # not cumulative
        'h_bucket{le="0.1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 0\nh_count 1\n',
        "# HELP h H.\n# TYPE h histogram\n"                     # +Inf != count
        'h_bucket{le="0.1"} 1\nh_bucket{le="+Inf"} 1\nh_sum 0\nh_count 2\n',
        "# HELP h H.\n# TYPE h histogram\n"                     # no +Inf
        'h_bucket{le="0.1"} 1\nh_sum 0\nh_count 1\n',
    ]
    for text in bad:
        try:
            parse_exposition(text)
        except AssertionError:
            continue
        raise AssertionError(f"parser accepted {text!r}")


def _kill_handlers(env) -> None:
    try:
        with open(env.path("handler-pids")) as f:
            pids = [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if env.tmp.encode() not in f.read():
                    continue
            pgid = os.getpgid(pid)
            if pgid != os.getpgid(0):
                os.killpg(pgid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


def _state(broker, pid: int) -> str:
    return broker.ctl("package", "show", pid, timeout=10)[1]["state"]


@test(timeout=90)
def test_metrics_after_completions_failure_and_handoff(env):
    broker = env.broker()
    handler = env.path("handler.sh")
    with open(handler, "w") as f:
        f.write(HANDLER_SH)
    os.chmod(handler, 0o755)
    env.add_cleanup(lambda: _kill_handlers(env), "handler processes", first=True)
    env.add_cleanup(lambda: _kill_handlers(env), "handler processes")

    secrets = {}
    for name, region, cap in (("acme", "EU-DE", 6), ("beta", "US-EAST", 4)):
        _, v, _ = broker.ctl("vendor", "add", name, "--region", region,
                             "--capability", CAPABILITY, "--capacity", cap)
        secrets[name] = v["secret"]
    for name in ("acme", "beta"):
        env.agent(vendor=name, secret=secrets[name], broker=broker, name=f"{name}-1",
                  slots=3, handlers={CAPABILITY: f"/bin/sh {handler}"},
                  extra_env={"BT_IT5_DIR": env.tmp})
    wait_agents(broker, ["acme-1", "beta-1"])

    def submit(payload, *flags):
        _, out, _ = broker.ctl("submit", "--capability", CAPABILITY, "--payload", payload,
                               *flags)
        return int(out["id"])

    n_ok = 5
    ok = [submit(f"ok-{i}", "--region", "EU-DE", "--deadline", "1h") for i in range(n_ok)]
    bad = submit("fail-1", "--region", "US-EAST", "--max-attempts", "1")
    wait_for(lambda: all(_state(broker, i) == "completed" for i in ok), 30,
             what="the acme packages to complete")
    wait_for(lambda: _state(broker, bad) == "dead", 30, what="the failing package dead")

    slow = submit("slow-1", "--region", "EU-DE")
    wait_for(lambda: _state(broker, slow) == "running", 30, what="the slow package running")
    broker.ctl("vendor", "fail", "acme")
    wait_for(lambda: env.pg.scalar("SELECT count(*) FROM handoffs") == "1", 20,
             what="the handoff row")
    wait_for(lambda: _state(broker, slow) == "queued", 20, what="the slow package queued")

    # Everything the broker did is committed before it is compared: the audit
    # rows (the stale count) and attempts are written after the counters move.
    def settled():
        fams = parse_exposition(broker.metrics_text())
        stale_db = int(env.pg.scalar(
            "SELECT count(*) FROM audit_events WHERE action LIKE '%.stale'"))
        return fams if value(fams, "baton_store_backlog") == 0 and \
            value(fams, "baton_stale_reports_total") == stale_db else None
    text = broker.metrics_text()
    fams = wait_for(settled, 20, what="the store to settle")
    print(f"metrics: {len(fams)} families, {len(text.splitlines())} lines")

    families = {
        "baton_packages": "gauge", "baton_packages_waiting": "gauge",
        "baton_vendors": "gauge", "baton_agents_connected": "gauge",
        "baton_submits_total": "counter", "baton_completions_total": "counter",
        "baton_failures_total": "counter", "baton_handoffs_total": "counter",
        "baton_stale_reports_total": "counter",
        "baton_vendor_in_flight": "gauge", "baton_vendor_capacity": "gauge",
        "baton_vendor_limit": "gauge", "baton_vendor_state": "gauge",
        "baton_vendor_on_time_ratio": "gauge", "baton_vendor_completed_total": "counter",
        "baton_vendor_failed_total": "counter",
        "baton_assignment_latency_seconds": "histogram",
        "baton_store_commit_seconds": "histogram", "baton_store_backlog": "gauge",
        "baton_store_unlisted_ids": "gauge", "baton_leader_epoch": "gauge",
    }
    for name, typ in families.items():
        assert name in fams, f"family {name} missing"
        assert fams[name]["type"] == typ, f"{name}: type {fams[name]['type']}, want {typ}"

    # Counters: what happened.
    assert value(fams, "baton_submits_total") == n_ok + 2
    assert value(fams, "baton_completions_total") == n_ok
    assert value(fams, "baton_failures_total") == 1
    assert value(fams, "baton_handoffs_total", reason="vendor-failed") == 1
    for reason in ("agent-lost", "lease-expired", "drain", "sla-risk", "admin"):
        assert value(fams, "baton_handoffs_total", reason=reason) == 0, reason
    assert value(fams, "baton_packages", state="completed") == n_ok
    assert value(fams, "baton_packages", state="dead") == 1
    assert value(fams, "baton_packages_waiting") == 1  # slow: only acme may take it
    assert value(fams, "baton_agents_connected") == 2
    # Nothing in flight: a listing round moves the floor of open_packages to
    # the last id (the slow package is listed, the rest ended), and the gauge
    # says so.
    def all_listed():
        fl = int(env.pg.scalar("SELECT listed_through FROM open_packages_floor"))
        top = int(env.pg.scalar("SELECT max(id) FROM work_packages"))
        return value(parse_exposition(broker.metrics_text()),
                     "baton_store_unlisted_ids") == 0 and fl == top
    wait_for(all_listed, 20, what="every package id listed or ended", interval=0.2)
    assert env.pg.scalar(f"SELECT count(*) FROM open_packages WHERE id = {slow}") == "1"
    # The one broker on this database leads, under the epoch in broker_lease.
    assert value(fams, "baton_leader_epoch") == int(env.pg.scalar(
        "SELECT epoch FROM broker_lease")) >= 1

    # Per vendor.
    states = ("active", "degraded", "failed", "draining", "suspended")
    for vendor, now in (("acme", "failed"), ("beta", "active")):
        for s in states:
            want = 1 if s == now else 0
            got = value(fams, "baton_vendor_state", vendor=vendor, state=s)
            assert got == want, f"{vendor} state {s}: {got}"
    assert value(fams, "baton_vendors", state="failed") == 1
    assert value(fams, "baton_vendor_capacity", vendor="acme") == 6
    assert value(fams, "baton_vendor_capacity", vendor="beta") == 4
    assert value(fams, "baton_vendor_limit", vendor="beta") == 4
    assert value(fams, "baton_vendor_in_flight", vendor="acme") == 0
    assert value(fams, "baton_vendor_in_flight", vendor="beta") == 0
    assert value(fams, "baton_vendor_completed_total", vendor="acme") == n_ok
    assert value(fams, "baton_vendor_completed_total", vendor="beta") == 0
    assert value(fams, "baton_vendor_failed_total", vendor="acme") == 0
    assert value(fams, "baton_vendor_failed_total", vendor="beta") == 1
    # acme met every deadline; beta has no history: 1 by definition, not NaN.
    assert value(fams, "baton_vendor_on_time_ratio", vendor="acme") == 1
    assert value(fams, "baton_vendor_on_time_ratio", vendor="beta") == 1

    # Histograms: one assignment latency per attempt dispatched, commits timed.
    attempts = int(env.pg.scalar("SELECT count(*) FROM attempts"))
    assert attempts == n_ok + 2, attempts
    count, total = hist(fams, "baton_assignment_latency_seconds")
    assert count == attempts, (count, attempts)
    assert 0 <= total < 10 * count, total
    count, total = hist(fams, "baton_store_commit_seconds")
    assert count > 0 and total >= 0, (count, total)

    # A second scrape is just as well formed, and counters never go down.
    again = parse_exposition(broker.metrics_text())
    for name, f in fams.items():
        if f["type"] == "counter":
            for n, lb, v in f["samples"]:
                assert value(again, n, **dict(lb)) >= v, (n, lb)


if __name__ == "__main__":
    main()
