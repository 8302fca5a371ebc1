"""Bash completion for batonctl (deploy/bash-completion/batonctl).

Each case runs bash non-interactively: it sources the script, sets COMP_WORDS,
COMP_CWORD, COMP_LINE and COMP_POINT as bash would for the command line, calls
_batonctl and prints COMPREPLY. Checked:

  * command words, `vendor` subcommands, `submit --ca` → --capability, the
    values of --model, --state and --priority, file names after --payload-file,
    --batch and --out;
  * that it cannot fall behind the CLI: every command and subcommand in the
    "Commands:" section of the built `batonctl --help`, every global option it
    lists, and every option `batonctl help CMD` prints is offered in its place
    (the completion may offer more, e.g. commands still being added);
  * vendor names asked of a real broker (`vendor show <TAB>` → acme, also
    through BATON_CONTROL, --prefer lists, --to, ids);
  * with no broker reachable (a missing socket, a closed TCP port) nothing is
    offered and nothing is printed on stderr.
"""

import os
import re
import subprocess
import time

from harness import binary, free_port, main, test

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.normpath(os.path.join(HERE, "..", "..", "deploy", "bash-completion",
                                       "batonctl"))

# The words of the command line become bash's arguments, so nothing is quoted.
DRIVER = r"""
source "$1" || exit 99
shift
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
_batonctl
printf '%s\n' "${COMPREPLY[@]}"
"""


def complete(words, cwd, env=None, timeout=20):
    """COMPREPLY for `batonctl WORDS…`, the last word being the one under the
    cursor. Returns (candidates, stderr). The first word is the built batonctl,
    as a user of a build tree would type it."""
    e = {k: v for k, v in os.environ.items()
         if k not in ("BATON_CONTROL", "BATON_ADMIN_TOKEN", "BATON_CTL_TIMEOUT")}
    e["PATH"] = os.path.dirname(binary("batonctl")) + os.pathsep + e.get("PATH", "")
    e.update(env or {})
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", DRIVER, "bash", SCRIPT,
                        binary("batonctl"), *words],
                       capture_output=True, text=True, cwd=cwd, env=e,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"bash exited {r.returncode}: {r.stderr}"
    return [w for w in r.stdout.split("\n") if w], r.stderr


def offers(words, cwd, **kw):
    got, err = complete(words, cwd, **kw)
    assert err == "", f"stderr for {words}: {err!r}"
    return got


def ctl_text(*args):
    r = subprocess.run([binary("batonctl"), *args], capture_output=True, text=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"batonctl {' '.join(args)} exited {r.returncode}"
    return r.stdout


def cli_commands():
    """Command names ("vendor add", "submit", …) from the Commands: section of
    `batonctl --help`, without the "help COMMAND" line."""
    text = ctl_text("--help")
    section = text.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    names = []
    for line in section.splitlines():
        name = re.split(r"\s{2,}", line.strip())[0]
        if name and name != "help COMMAND":
            names.append(name)
    assert len(names) >= 20, f"too few commands parsed from --help: {names}"
    return names


OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


@test(pg=False)
def test_command_words(env):
    got = offers([""], env.tmp)
    for w in ("vendor", "agent", "submit", "package", "result", "wait", "handoffs",
              "stats", "scorecard", "audit", "top", "config", "help"):
        assert w in got, f"{w} not offered at the top: {got}"
    assert offers(["sc"], env.tmp) == ["scorecard"]
    assert set(offers(["--"], env.tmp)) >= {"--control", "--json", "--admin-token",
                                            "--help", "--version"}
    # Global options before the command do not hide it.
    assert offers(["--json", "--control", "x.sock", "sta"], env.tmp) == ["stats"]
    assert set(offers(["help", "package", ""], env.tmp)) == {
        "show", "list", "cancel", "retry", "reassign"}


@test(pg=False)
def test_subcommands_and_options(env):
    assert set(offers(["vendor", ""], env.tmp)) == {
        "add", "list", "show", "drain", "suspend", "resume", "fail", "rotate-secret"}
    assert set(offers(["config", ""], env.tmp)) == {"get", "set"}
    assert offers(["--json", "vendor", "su"], env.tmp) == ["suspend"]
    assert offers(["submit", "--ca"], env.tmp) == ["--capability"]
    assert offers(["submit", "--capability", "x", "--max-"], env.tmp) == [
        "--max-cost", "--max-attempts"]
    assert offers(["package", "list", "--s"], env.tmp) == ["--state"]
    # An empty word where no positional argument is due: the command's own
    # options (globals need a "-").
    assert offers(["top", ""], env.tmp) == ["--interval", "--once"]
    assert offers(["stats", ""], env.tmp) == []
    # A command's own options are not offered to another one.
    assert "--capability" not in offers(["stats", "--"], env.tmp)


@test(pg=False)
def test_option_values(env):
    assert set(offers(["vendor", "add", "acme", "--model", ""], env.tmp)) == {
        "onshore", "nearshore", "offshore", "captive"}
    assert offers(["vendor", "add", "acme", "--model", "off"], env.tmp) == ["offshore"]
    # --model=off: readline replaces what follows the "=".
    assert offers(["vendor", "add", "--model=off"], env.tmp) == ["offshore"]
    assert set(offers(["package", "list", "--state", ""], env.tmp)) == {
        "queued", "assigned", "running", "completed", "dead", "cancelled"}
    assert offers(["package", "list", "--state", "c"], env.tmp) == [
        "completed", "cancelled"]
    assert offers(["submit", "--priority", ""], env.tmp) == [str(i) for i in range(10)]
    # Free-form values get no suggestions (and no file names).
    assert offers(["submit", "--capability", ""], env.tmp) == []


@test(pg=False)
def test_file_names(env):
    d = env.path("files")
    os.makedirs(os.path.join(d, "sub"))
    for name in ("payload.bin", "jobs.jsonl"):
        with open(os.path.join(d, name), "w") as f:
            f.write("x\n")
    assert offers(["submit", "--payload-file", d + "/pay"], env.tmp) == [
        d + "/payload.bin"]
    assert set(offers(["submit", "--batch", d + "/"], env.tmp)) == {
        d + "/payload.bin", d + "/jobs.jsonl", d + "/sub"}
    assert offers(["result", "7", "--out", d + "/j"], env.tmp) == [d + "/jobs.jsonl"]
    # Relative to the working directory, as typed.
    assert offers(["submit", "--payload-file", "files/p"], env.tmp) == [
        "files/payload.bin"]


@test(pg=False)
def test_offers_everything_the_cli_lists(env):
    """The completion cannot silently fall behind the command table."""
    names = cli_commands()
    top = set(offers([""], env.tmp))
    problems = []
    for name in names:
        words = name.split()
        if words[0] not in top:
            problems.append(f"command {words[0]!r} not offered at the top")
        if len(words) == 2:
            subs = offers([words[0], ""], env.tmp)
            if words[1] not in subs:
                problems.append(f"subcommand {name!r} not offered after "
                                f"{words[0]!r}: {subs}")
        opts = sorted(set(OPTION.findall(ctl_text("help", *words))))
        got = set(offers([*words, "--"], env.tmp))
        missing = [o for o in opts if o not in got]
        if missing:
            problems.append(f"options of {name!r} not offered: {missing}")
        print(f"  {name}: {len(opts)} option(s) checked")
    text = ctl_text("--help")
    glob = text.split("\nGlobal options", 1)[1].split("\n\n", 1)[0]
    top_opts = set(offers(["--"], env.tmp))
    for o in sorted(set(OPTION.findall(glob))):
        if o not in top_opts:
            problems.append(f"global option {o} not offered")
    assert not problems, "completion is behind batonctl:\n  " + "\n  ".join(problems)


@test
def test_vendor_names_from_broker(env):
    broker = env.broker()
    _, v, _ = broker.ctl("vendor", "add", "acme", "--region", "EU-DE",
                         "--capability", "x")
    broker.ctl("vendor", "add", "beta", "--region", "EU-FR", "--capability", "x")
    c = ["--control", broker.control]
    assert set(offers([*c, "vendor", "show", ""], env.tmp)) == {"acme", "beta"}
    assert offers(["vendor", "show", "--control", broker.control, "a"],
                  env.tmp) == ["acme"]
    assert offers([f"--control={broker.control}", "vendor", "drain", "b"],
                  env.tmp) == ["beta"]
    assert offers(["vendor", "show", "a"], env.tmp,
                  env={"BATON_CONTROL": broker.control}) == ["acme"]
    assert str(v["id"]) in offers([*c, "vendor", "fail", str(v["id"])[0]], env.tmp)
    assert offers([*c, "scorecard", "ac"], env.tmp) == ["acme"]
    assert offers([*c, "package", "list", "--vendor", "be"], env.tmp) == ["beta"]
    assert offers([*c, "package", "reassign", "3", "--to", "a"], env.tmp) == ["acme"]
    assert offers([*c, "submit", "--avoid", "acme,b"], env.tmp) == ["acme,beta"]
    assert set(offers([*c, "submit", "--prefer", ""], env.tmp)) == {"acme", "beta"}
    # One positional only: nothing more after `vendor show acme`; after
    # `package reassign ID` its own option.
    assert offers([*c, "vendor", "show", "acme", ""], env.tmp) == []
    assert offers([*c, "package", "reassign", "3", ""], env.tmp) == ["--to"]
    # Config keys, once the binary has `config get`.
    if "config get" in cli_commands():
        keys = offers([*c, "config", "get", ""], env.tmp)
        assert "lease" in keys and "poll_park" in keys, f"config keys: {keys}"


@test(pg=False)
def test_no_broker_offers_nothing(env):
    for control in (env.path("nothing.sock"), f"tcp://127.0.0.1:{free_port()}"):
        for words in (["vendor", "show", ""], ["scorecard", "a"],
                      ["submit", "--prefer", ""], ["config", "get", ""]):
            t0 = time.monotonic()
            got, err = complete(["--control", control, *words], env.tmp)
            dt = time.monotonic() - t0
            assert got == [] and err == "", \
                f"{control} {words}: offered {got}, stderr {err!r}"
            assert dt < 5, f"{control} {words}: took {dt:.1f}s"
    # No --control and no BATON_CONTROL: the default ./var/baton.sock is absent.
    got, err = complete(["vendor", "show", ""], env.tmp)
    assert got == [] and err == "", f"offered {got}, stderr {err!r}"


if __name__ == "__main__":
    main()
