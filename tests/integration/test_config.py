"""`batonctl config get|set` and SIGHUP reload on real processes and a real
PostgreSQL (issue 5, "Config").

One broker started with `--config FILE` (the file sets admin_token, a
secret, and max_attempts) and `--log-level info`, two vendors with one agent
each (dear registered first, so it wins a tie on vendor id; cheap costs
nothing, so the cost term sends work to it), then:

  * get: all keys (exit 0, every key of the table with value, default and
    runtime), one key (one object), an unknown key (exit 1), the broker
    unreachable (exit 3), a usage error (exit 2); admin_token shows "(set)";
  * set of a runtime key takes effect: routing follows score_cost /
    score_utilisation (new packages go to dear instead of cheap), a new
    package gets max_attempts' new default, and log_level warn silences the
    info lines a package's run logs (info brings them back);
  * set refused: a restart-only key (exit 1, "cannot change at run time"),
    a value out of range (exit 1, names the bounds), a malformed value;
  * audit rows config.set with "old -> new";
  * SIGHUP after editing the file: the runtime key changes (config get),
    audited config.reload; a changed restart-only key is named in a warning
    and keeps its running value; a `config set` value is overridden by the
    file (the file wins);
  * SIGHUP with a broken file: error logged, old values kept, still serving;
  * the token never appears in any answer, audit row or log line.
"""

import os
import re
import signal
import subprocess

from harness import binary, main, test, wait_for
from fixtures_it4 import CAPABILITY, World

TOKEN = "tok-0123456789abcdef-secret"


def write_conf(path, **keys):
    with open(path, "w") as f:
        f.write("# test_config.py\n[broker]\n")
        for k, v in keys.items():
            f.write(f"{k} = {v}\n")


def run_to_vendor(broker, w):
    """Submits one package, waits until it completes, returns its vendor."""
    pid = w.submit_one("r")
    info = wait_for(lambda: (lambda p: p if p["state"] == "completed" else None)(
        broker.ctl("package", "show", pid)[1]), 30, what=f"package {pid} completed",
        interval=0.1)
    return info["vendor"]


def audit_rows(broker, action):
    return [r for r in broker.ctl("audit")[1] if r["action"] == action]


@test(timeout=140)
def test_config_get_set_and_sighup(env):
    conf = env.path("baton.conf")
    write_conf(conf, admin_token=TOKEN, max_attempts=3, retry_base="1s")
    broker = env.broker(log_level="info", extra_args=["--config", conf,
                                                      "--set", "poll_park=200ms"])
    w = World(env, broker)
    w.vendor("dear", "EU-DE", cost=50)
    w.vendor("cheap", "EU-DE", cost=0)
    w.agent("dear", "dear-1", "cat", slots=2)
    w.agent("cheap", "cheap-1", "cat", slots=2)

    # --- get ---------------------------------------------------------------
    _, entries, _ = broker.ctl("config", "get")
    keys = {e["key"]: e for e in entries}
    for k in ("lease", "max_attempts", "score_cost", "breaker_window", "admin_token"):
        assert k in keys, sorted(keys)
    assert len(entries) > 30, len(entries)
    assert all(set(e) >= {"key", "value", "default", "runtime"} for e in entries), entries[0]
    assert keys["admin_token"]["value"] == "(set)", keys["admin_token"]
    assert keys["lease"] == dict(keys["lease"], value="3s", default="3s", runtime=False)
    assert keys["max_attempts"]["runtime"] is True
    assert keys["breaker_window"]["default"] == "1m", keys["breaker_window"]
    _, one, _ = broker.ctl("config", "get", "share_cap")
    assert one["key"] == "share_cap" and one["value"] == "0.7" and one["runtime"], one
    rc, out, err = broker.ctl("config", "get", "no_such_key", check=False)
    assert rc == 1 and "unknown configuration key" in err, (rc, out, err)
    rc, _, err = broker.ctl("config", "set", "max_attempts", check=False)
    assert rc == 2, (rc, err)
    r = subprocess.run([binary("batonctl"), "--control", env.path("nowhere.sock"),
                        "config", "get"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 3, r
    rc, text, _ = broker.ctl("config", "get", json=False)
    assert rc == 0 and re.search(r"^KEY\s+VALUE\s+DEFAULT\s+RUNTIME", text, re.M), text
    assert re.search(r"^admin_token\s+\(set\)", text, re.M), text
    print("config get: %d keys; lease=%s (restart), share_cap=%s (runtime)"
          % (len(entries), keys["lease"]["value"], one["value"]), flush=True)

    # --- set: routing weights ----------------------------------------------
    assert run_to_vendor(broker, w) == "cheap"
    _, r1, _ = broker.ctl("config", "set", "score_cost", "0")
    assert r1 == {"key": "score_cost", "value": "0", "previous": "1"}, r1
    broker.ctl("config", "set", "score_utilisation", "5")
    routed = [run_to_vendor(broker, w) for _ in range(3)]
    assert routed == ["dear"] * 3, routed  # a tie now: the lower vendor id
    print(f"routing: cheap before, {routed} after score_cost=0", flush=True)

    # --- set: max_attempts is the default of new packages ---------------------
    rc, text, _ = broker.ctl("config", "set", "max_attempts", "7", json=False)
    assert rc == 0 and "(not saved to the config file" in text, text
    pid = w.submit_one("m")
    assert broker.ctl("package", "show", pid)[1]["max_attempts"] == 7

    # --- set: log_level -----------------------------------------------------
    # At warn the info lines of a package's run are gone; back at info they
    # return. The change itself shows under both levels.
    def info_lines(text):
        return [l for l in text.splitlines() if "level=info" in l]
    n0 = len(broker.log_text())
    run_to_vendor(broker, w)
    assert info_lines(broker.log_text()[n0:]), "no info lines at level info"
    broker.ctl("config", "set", "log_level", "warn")
    n1 = len(broker.log_text())
    run_to_vendor(broker, w)
    broker.ctl("config", "set", "log_level", "info")
    n2 = len(broker.log_text())
    quiet = broker.log_text()[n1:n2]
    assert not info_lines(quiet), quiet
    assert re.search(r"level=warn msg=\"config changed\" key=log_level old=info new=warn",
                     broker.log_text()[n0:n1]), broker.log_text()[n0:n1]
    assert re.search(r"config changed\" key=log_level old=warn new=info", quiet), quiet
    run_to_vendor(broker, w)
    wait_for(lambda: info_lines(broker.log_text()[n2:]), 5, what="info lines again")

    # --- set refused -----------------------------------------------------------
    rc, _, err = broker.ctl("config", "set", "lease", "5s", check=False)
    assert rc == 1 and "lease cannot change at run time; edit the config file and restart" \
        in err, (rc, err)
    rc, _, err = broker.ctl("config", "set", "breaker_threshold", "2", check=False)
    assert rc == 1 and "out of range (0.01 to 1)" in err, (rc, err)
    rc, _, err = broker.ctl("config", "set", "retry_base", "soon", check=False)
    assert rc == 1 and "retry_base" in err and "duration" in err, (rc, err)
    rc, _, err = broker.ctl("config", "set", "admin_token", "x" * 20, check=False)
    assert rc == 1 and "cannot change at run time" in err, (rc, err)
    rc, _, err = broker.ctl("config", "set", "nope", "1", check=False)
    assert rc == 1 and "unknown configuration key" in err, (rc, err)
    assert broker.ctl("config", "get", "breaker_threshold")[1]["value"] == "0.5"

    # --- audit -------------------------------------------------------------------
    sets = audit_rows(broker, "config.set")
    details = {r["subject"]: r["detail"] for r in sets}
    assert details.get("config:score_cost") == "1 -> 0", sets
    assert details.get("config:max_attempts") == "3 -> 7", sets
    assert all(r["actor"] == "admin" for r in sets), sets
    assert len(sets) == 5, sets  # score_cost, score_utilisation, max_attempts, 2x log_level
    broker.wait_for_log(r"config changed\"? key=max_attempts old=3 new=7", timeout=5)

    # --- SIGHUP: the file wins; restart-only keys warn --------------------------
    write_conf(conf, admin_token=TOKEN, max_attempts=9, retry_base="2500ms", lease="10s")
    broker.send(signal.SIGHUP)
    wait_for(lambda: broker.ctl("config", "get", "max_attempts")[1]["value"] == "9", 10,
             what="max_attempts 9 after SIGHUP")
    assert broker.ctl("config", "get", "retry_base")[1]["value"] == "2500ms"
    assert broker.ctl("config", "get", "lease")[1]["value"] == "3s"  # needs a restart
    broker.wait_for_log(r"needs a restart.*key=lease", timeout=5)
    # score_cost was set at run time but is not in the file: the file's value
    # (the default) wins.
    assert broker.ctl("config", "get", "score_cost")[1]["value"] == "1"
    reloads = {r["subject"]: r["detail"] for r in audit_rows(broker, "config.reload")}
    assert reloads.get("config:max_attempts") == "7 -> 9", reloads
    assert reloads.get("config:retry_base") == "1s -> 2500ms", reloads
    assert "config:lease" not in reloads, reloads
    print(f"SIGHUP: reload audited {sorted(reloads)}", flush=True)

    # --- SIGHUP with a broken file: nothing changes, still serving ---------------
    with open(conf, "a") as f:
        f.write("max_attempts = lots\n")
    n_before = len(broker.log_text())
    broker.send(signal.SIGHUP)
    wait_for(lambda: "could not reload the configuration" in broker.log_text()[n_before:],
             10, what="the reload error")
    assert broker.running
    assert broker.ctl("config", "get", "max_attempts")[1]["value"] == "9"
    assert broker.ctl("config", "get", "retry_base")[1]["value"] == "2500ms"
    assert run_to_vendor(broker, w) in ("dear", "cheap")
    print("broken file: " + [l for l in broker.log_text()[n_before:].splitlines()
                             if "could not reload" in l][0], flush=True)

    # --- the token never leaves the broker ---------------------------------------
    everything = (broker.ctl("config", "get", json=False)[1] + repr(broker.ctl("audit")[1])
                  + broker.log_text())
    assert TOKEN not in everything
    with open(broker.ctl_log) as f:
        assert TOKEN not in f.read()


if __name__ == "__main__":
    main()
