"""The Debian packages of this build (deploy/cpack.cmake, deploy/README.md).

Runs `cpack -G DEB` for the build into a temp dir, then for baton-broker and
baton-agent:
  * control fields (name, version, architecture, Depends covering every
    library the packaged ELF files link, Recommends), maintainer scripts that
    parse, the conffile, the ldconfig trigger;
  * contents: every expected file, and nothing unexpected;
  * `dpkg -x` into a scratch root: the binaries run from there (--version,
    --help), batond parses the packaged baton.conf, baton-agent the example
    agent configuration, and the .pc file names the package's prefix;
  * the man pages render without a warning (man -l, groff -ww) and mention
    every option the binaries' --help (and `batonctl help CMD`) lists;
  * the systemd units pass `systemd-analyze verify` (ExecStart pointed into the
    scratch root, man pages looked up there) without a single complaint, and
    `systemd-analyze security --offline` keeps their exposure at most 5.
Standard library only; cleans up its temp dir. Exit 0 when all passed.
"""

import base64
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("BATON_BUILD_DIR", os.getcwd())
SOURCE = os.environ.get("BATON_SOURCE_DIR",
                        os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..")))
VERSION = os.environ["BATON_VERSION"]
CPACK = os.environ.get("CPACK") or shutil.which("cpack")

# Paths in each package, as regular expressions over the path without its
# leading "./"; a package must hold a match for each, and nothing else.
LIBDIR = r"usr/lib(/[a-z0-9_]+-linux-[a-z0-9_]+)?"
MIGRATIONS = sorted(os.path.basename(p)
                    for p in glob.glob(os.path.join(SOURCE, "migrations", "[0-9]*_*.sql")))
EXPECTED = {
    "baton-broker": [
        r"usr/bin/batond", r"usr/bin/batonctl",
        r"etc/baton/baton\.conf",
        r"lib/systemd/system/batond\.service",
        r"usr/share/man/man8/batond\.8", r"usr/share/man/man1/batonctl\.1",
        r"usr/share/bash-completion/completions/batonctl",
    ] + [r"usr/share/baton/migrations/" + re.escape(m) for m in MIGRATIONS],
    "baton-agent": [
        r"usr/bin/baton-agent",
        r"lib/systemd/system/baton-agent@\.service",
        r"usr/share/man/man8/baton-agent\.8",
        r"usr/share/doc/baton-agent/examples/agent-example\.conf",
        r"usr/include/baton_agent\.h",
        LIBDIR + r"/libbaton-agent\.so",
        LIBDIR + r"/libbaton-agent\.so\.\d+",
        LIBDIR + r"/libbaton-agent\.so\." + re.escape(VERSION),
        LIBDIR + r"/pkgconfig/baton-agent\.pc",
    ],
}
UNITS = {"baton-broker": "batond.service", "baton-agent": "baton-agent@.service"}
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")

failures = []


def step(name):
    """Decorator naming a check. main() runs the checks in order and records a
    failure instead of stopping, so one run reports every broken thing."""
    def wrap(fn):
        fn.step_name = name
        return fn
    return wrap


def run(argv, check=True, env=None, timeout=60, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout,
                       stdin=subprocess.DEVNULL, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {r.returncode}:\n"
                             f"{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r


def clean_env(root=None, **extra):
    """The environment without BATON_* (a developer's BATON_CONFIG or
    BATON_CONTROL must not change what is tested)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    env.update(LC_ALL="C.UTF-8", MANPAGER="cat", PAGER="cat", MANWIDTH="80",
               SYSTEMD_PAGER="cat", SYSTEMD_COLORS="0")
    if root is not None:
        libs = [d for d in glob.glob(os.path.join(root, "usr", "lib", "*")) if os.path.isdir(d)]
        env["LD_LIBRARY_PATH"] = os.pathsep.join([os.path.join(root, "usr", "lib")] + libs)
    env.update(extra)
    return env


# ---- building the packages ------------------------------------------------------------

def make_packages(out):
    assert CPACK, "cpack not found"
    config = os.path.join(BUILD, "CPackConfig.cmake")
    assert os.path.exists(config), f"{config} missing: configure the build first"
    t = time.monotonic()
    run([CPACK, "-G", "DEB", "--config", config, "-B", out], cwd=BUILD, timeout=100)
    debs = {}
    for pkg in EXPECTED:
        found = glob.glob(os.path.join(out, f"{pkg}_{VERSION}_*.deb"))
        assert len(found) == 1, f"expected one {pkg}_{VERSION}_*.deb in {os.listdir(out)}"
        debs[pkg] = found[0]
    print(f"cpack: {', '.join(os.path.basename(d) for d in debs.values())} "
          f"in {time.monotonic() - t:.1f}s")
    return debs


def fields(deb):
    """The control fields of deb as a dict (continuation lines joined)."""
    out, key = {}, None
    for line in run(["dpkg-deb", "--field", deb]).stdout.splitlines():
        if line[:1] in (" ", "\t") and key:
            out[key] += "\n" + line.strip()
        elif ":" in line:
            key, val = line.split(":", 1)
            out[key] = val.strip()
    return out


def depends_names(value):
    """Package names of a Depends value, alternatives included."""
    return {re.split(r"[\s(:]", alt.strip())[0]
            for dep in value.split(",") for alt in dep.split("|") if alt.strip()}


def contents(deb):
    """Paths of the files and symlinks in deb, without the leading "./"."""
    paths = []
    for line in run(["dpkg-deb", "--contents", deb]).stdout.splitlines():
        cols = line.split(None, 5)
        if len(cols) < 6 or cols[0].startswith("d"):
            continue
        paths.append(cols[5].split(" -> ")[0].removeprefix("./"))
    return paths


# ---- the checks -----------------------------------------------------------------------

@step("control fields")
def check_control(ctx):
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    for pkg, deb in ctx["debs"].items():
        print(run(["dpkg-deb", "--info", deb]).stdout.rstrip())
        f = fields(deb)
        assert f.get("Package") == pkg, f"{deb}: Package {f.get('Package')!r}"
        assert f.get("Version") == VERSION, f"{pkg}: Version {f.get('Version')!r}"
        assert f.get("Architecture") == arch, f"{pkg}: Architecture {f.get('Architecture')!r}"
        assert "<" in f.get("Maintainer", ""), f"{pkg}: no Maintainer"
        assert f.get("Description"), f"{pkg}: no Description"
        assert "adduser" in depends_names(f.get("Depends", "")), \
            f"{pkg}: Depends lacks adduser (postinst uses it)"
        ctx.setdefault("fields", {})[pkg] = f
    assert "postgresql-15" in depends_names(ctx["fields"]["baton-broker"].get("Recommends", "")), \
        "baton-broker should recommend postgresql-15 (the embedded database)"


@step("maintainer scripts, conffiles, triggers")
def check_scripts(ctx):
    for pkg, deb in ctx["debs"].items():
        d = os.path.join(ctx["tmp"], "control-" + pkg)
        run(["dpkg-deb", "--control", deb, d])
        for script in ("postinst", "prerm", "postrm"):
            p = os.path.join(d, script)
            assert os.access(p, os.X_OK), f"{pkg}: {script} missing or not executable"
            run(["sh", "-n", p])
        ctx.setdefault("control", {})[pkg] = d
    with open(os.path.join(ctx["control"]["baton-broker"], "conffiles")) as f:
        assert "/etc/baton/baton.conf" in f.read().split(), "baton.conf is not a conffile"
    with open(os.path.join(ctx["control"]["baton-agent"], "triggers")) as f:
        assert "activate-noawait ldconfig" in f.read(), "baton-agent: no ldconfig trigger"


@step("contents")
def check_contents(ctx):
    for pkg, deb in ctx["debs"].items():
        paths = contents(deb)
        print(f"{pkg}: {len(paths)} files")
        for rx in EXPECTED[pkg]:
            assert any(re.fullmatch(rx, p) for p in paths), f"{pkg}: nothing matches {rx}"
        extra = [p for p in paths if not any(re.fullmatch(rx, p) for rx in EXPECTED[pkg])]
        assert not extra, f"{pkg}: unexpected files {extra} (add them to EXPECTED if meant)"


@step("dpkg -x")
def extract(ctx):
    root = os.path.join(ctx["tmp"], "root")
    for deb in ctx["debs"].values():
        run(["dpkg", "-x", deb, root])
    ctx["root"] = root


def in_root(ctx, *parts):
    return os.path.join(ctx["root"], *parts)


@step("binaries from the package")
def check_binaries(ctx):
    env = clean_env(ctx["root"])
    bin_ = lambda name: in_root(ctx, "usr", "bin", name)  # noqa: E731
    for name in ("batond", "batonctl", "baton-agent"):
        out = run([bin_(name), "--version"], env=env).stdout.strip()
        assert out == f"{name} {VERSION}", f"{name} --version printed {out!r}"
        print(out)
    for name in ("batond", "batonctl", "baton-agent"):
        out = run([bin_(name), "--help"], env=env).stdout
        assert out.startswith(f"usage: {name}"), f"{name} --help: {out[:200]!r}"
        ctx.setdefault("help", {})[name] = out
    # batond reads --config before it handles --version: the packaged file parses.
    conf = in_root(ctx, "etc", "baton", "baton.conf")
    out = run([bin_("batond"), "--config", conf, "--version"], env=env).stdout.strip()
    assert out == f"batond {VERSION}", f"batond --config baton.conf: {out!r}"
    with open(conf) as f:
        text = f.read()
    # The paths systemd gives the unit (StateDirectory=baton, RuntimeDirectory=baton).
    for line in ("data_dir = /var/lib/baton", "control = /run/baton/baton.sock"):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), f"baton.conf lacks {line!r}"
    # The example agent configuration: baton-agent gets past its settings and
    # starts (a config error exits 2 at once); a broker that is not there is fine.
    example = in_root(ctx, "usr", "share", "doc", "baton-agent", "examples", "agent-example.conf")
    secret = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    p = subprocess.Popen([bin_("baton-agent"), "--config", example,
                          "--broker", "tcp://127.0.0.1:1"], cwd=ctx["tmp"],
                         env=clean_env(ctx["root"], BATON_SECRET=secret),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        p.wait(timeout=1.5)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=20)[1]
    assert 'msg="agent starting"' in err, f"baton-agent with {example}:\n{err}"
    # pkg-config: the prefix the package installs under, and the library there.
    pc = glob.glob(in_root(ctx, "usr", "lib", "**", "baton-agent.pc"), recursive=True)[0]
    with open(pc) as f:
        pcv = dict(re.findall(r"^(\w+)=(.*)$", f.read(), re.M))
    assert pcv.get("prefix") == "/usr", f"{pc}: prefix={pcv.get('prefix')!r}"
    libdir = pcv["libdir"].replace("${prefix}", "/usr")
    assert os.path.exists(ctx["root"] + libdir + "/libbaton-agent.so"), \
        f"{pc}: libdir {libdir} holds no libbaton-agent.so"


@step("Depends covers the linked libraries")
def check_depends(ctx):
    if not shutil.which("readelf"):
        print("SKIP: readelf not installed (binutils)")
        return
    for pkg, deb in ctx["debs"].items():
        deps = depends_names(ctx["fields"][pkg]["Depends"])
        own = {os.path.basename(p) for p in contents(deb)}
        for path in contents(deb):
            full = in_root(ctx, path)
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            with open(full, "rb") as f:
                if f.read(4) != b"\x7fELF":
                    continue
            dyn = run(["readelf", "-d", full]).stdout
            for soname in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn):
                if soname in own or soname.startswith("ld-linux"):
                    continue
                r = run(["dpkg", "-S", f"*/{soname}"], check=False)
                owners = {line.split(":")[0] for line in r.stdout.splitlines()}
                assert owners & deps, (f"{pkg}: {path} links {soname} (package "
                                       f"{', '.join(sorted(owners)) or '?'}), not in Depends")


def man_text(path):
    """A man page's source with roff's \\- and font escapes undone, for looking
    up option names."""
    with open(path) as f:
        src = f.read()
    return re.sub(r"\\f[BIRP]|\\&|\\\|", "", src.replace("\\-", "-"))


def ctl_commands(help_text):
    """Command names ("vendor add", …) of batonctl --help's Commands: section."""
    section = help_text.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    names = [re.split(r"\s{2,}", line.strip())[0] for line in section.splitlines()]
    return [n for n in names if n and n != "help COMMAND"]


@step("man pages")
def check_man(ctx):
    pages = sorted(glob.glob(in_root(ctx, "usr", "share", "man", "man*", "*.[18]")))
    assert len(pages) == 3, f"expected 3 man pages, found {pages}"
    env = clean_env()
    for page in pages:
        r = run(["groff", "-man", "-ww", "-z", page], check=False, env=env)
        assert r.returncode == 0 and not r.stderr, f"groff -ww {page}:\n{r.stderr}"
        if shutil.which("man"):
            r = run(["man", "--warnings", "-l", page], check=False, env=env)
            assert r.returncode == 0 and not r.stderr, f"man --warnings -l {page}:\n{r.stderr}"
            assert len(r.stdout) > 1000, f"man -l {page} rendered almost nothing"
        else:
            print("man not installed (man-db): rendered with groff only")
    # Every option the binaries document is in their man page.
    missing = []
    for name in ("batond", "batonctl", "baton-agent"):
        page = next(p for p in pages if os.path.basename(p).startswith(name + "."))
        text = man_text(page)
        opts = set(OPTION.findall(ctx["help"][name]))
        if name == "batonctl":
            for cmd in ctl_commands(ctx["help"][name]):
                if not re.search(r"(?<![\w-])" + re.escape(cmd) + r"(?![\w-])", text):
                    missing.append(f"batonctl.1: command {cmd!r}")
                r = run([in_root(ctx, "usr", "bin", "batonctl"), "help", *cmd.split()],
                        env=clean_env(ctx["root"]))
                opts |= set(OPTION.findall(r.stdout))
        for o in sorted(opts):
            if not re.search(re.escape(o) + r"(?![\w-])", text):
                missing.append(f"{os.path.basename(page)}: {o}")
        print(f"{os.path.basename(page)}: {len(opts)} options checked")
    assert not missing, "man pages behind the binaries:\n  " + "\n  ".join(missing)


@step("systemd units")
def check_units(ctx):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        print("SKIP: systemd-analyze not installed (package systemd)")
        return
    # verify checks that ExecStart's program exists and is executable: point
    # /usr/bin/ into the scratch root (nothing else changes), and let
    # Documentation=man: look the pages up there.
    udir = os.path.join(ctx["tmp"], "units")
    os.makedirs(udir)
    bindir = in_root(ctx, "usr", "bin") + "/"
    for pkg, unit in UNITS.items():
        with open(in_root(ctx, "lib", "systemd", "system", unit)) as f:
            text = f.read()
        assert re.search(r"^ExecStart=/usr/bin/", text, re.M), f"{unit}: no ExecStart=/usr/bin/…"
        text = re.sub(r"^(Exec\w+=[-@:+!]*)/usr/bin/", lambda m: m.group(1) + bindir,
                      text, flags=re.M)
        with open(os.path.join(udir, unit), "w") as f:
            f.write(text)
    env = clean_env(MANPATH=in_root(ctx, "usr", "share", "man"))
    for unit in UNITS.values():
        path = os.path.join(udir, unit)
        # Without man-db, verify cannot look pages up: the man check above has
        # already said so, and the rest of verify still runs.
        man = [] if shutil.which("man") else ["--man=no"]
        r = run([analyze, "verify", *man, path], check=False, env=env)
        out = (r.stdout + r.stderr).strip()
        # verify exits 0 after "…, ignoring" complaints: any line about our
        # unit (by name or path) is a failure too.
        stem = unit.split("@")[0].split(".")[0]
        ours = [line for line in out.splitlines() if stem in line or udir in line]
        assert r.returncode == 0 and not ours, \
            f"systemd-analyze verify {unit} (exit {r.returncode}):\n{out}"
        if out:
            print(f"verify {unit}: unrelated output:\n{out}")
        # --threshold counts in tenths of the printed level: 50 is 5.0.
        r = run([analyze, "security", "--offline=true", "--threshold=50", path],
                check=False, env=env)
        overall = [line for line in r.stdout.splitlines() if "Overall exposure" in line]
        assert r.returncode == 0, \
            f"{unit}: exposure above 5 (hardening lost?):\n{overall or r.stdout[-3000:]}{r.stderr}"
        print(f"verify {unit}: ok; {overall[0].strip() if overall else ''}")


STEPS = [check_control, check_scripts, check_contents, extract, check_binaries,
         check_depends, check_man, check_units]
# Steps after these need what they produce: stop if one fails.
ESSENTIAL = {extract}


def main():
    tmp = tempfile.mkdtemp(prefix="baton-pkg-")
    ctx = {"tmp": tmp}
    t0 = time.monotonic()
    try:
        try:
            ctx["debs"] = make_packages(os.path.join(tmp, "out"))
        except (AssertionError, subprocess.SubprocessError, OSError) as e:
            print(f"FAIL cpack: {e}")
            return 1
        for fn in STEPS:
            print(f"--- {fn.step_name}")
            try:
                fn(ctx)
                print(f"ok   {fn.step_name}")
            except (AssertionError, subprocess.SubprocessError, OSError, KeyError) as e:
                failures.append(fn.step_name)
                print(f"FAIL {fn.step_name}: {e}")
                if fn in ESSENTIAL:
                    break
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(STEPS) - len(failures)}/{len(STEPS)} steps passed in "
          f"{time.monotonic() - t0:.1f}s" + (f"; failed: {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
