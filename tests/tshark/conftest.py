"""Run the real tshark with the built plugin, the way a user would.

tshark ignores plugin folders when it runs as root, so every run drops to an
unprivileged user (nobody) with WIRESHARK_PLUGIN_DIR pointing at a fresh,
world-readable stage. Captures and key logs are copied to a readable
place, so the clone may sit anywhere. HOME is a temporary
folder and TZ is UTC, as in Wireshark's own test suite.
"""
import csv
import json
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("MAILSEC_SHARED", ROOT.parent / "shared")).resolve()
REALWORLD = SHARED / "realworld"
BUNDLED = ROOT / "captures" / "real"
UNPRIVILEGED = os.environ.get("MAILSEC_TEST_UID", "65534")


def _plugin_path():
    p = pathlib.Path(os.environ.get("MAILSEC_PLUGIN", ROOT / "build" / "mailsec.so"))
    if not p.exists():
        pytest.exit("plugin not built: %s (run the README's test command)" % p, returncode=2)
    return p


class Tshark:
    def __init__(self, stage, extra_env=None):
        self.stage = stage
        self.home = stage / "home"
        self.extra_env = extra_env or {}

    def _env(self, plugin):
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.home),
            "TZ": "UTC",
            "LC_ALL": "C.UTF-8",
            # An empty plugin folder still replaces the global one.
            "WIRESHARK_PLUGIN_DIR": str(self.stage / ("plugins" if plugin else "none")),
        }
        env.update(self.extra_env)
        return env

    def invoke(self, args, plugin=True):
        """Run tshark with exactly these arguments, as the unprivileged user."""
        prefix = []
        if os.geteuid() == 0:
            prefix = ["setpriv", "--reuid=%s" % UNPRIVILEGED, "--regid=%s" % UNPRIVILEGED,
                      "--clear-groups"]
        env = ["%s=%s" % kv for kv in self._env(plugin).items()]
        proc = subprocess.run(prefix + ["env", "-i"] + env + ["tshark"] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True, cwd="/", timeout=600)
        return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")

    def run(self, capture, args=(), plugin=True, keylog=None, two_pass=False, check=True):
        """Run tshark on capture (a path) and return (stdout, stderr)."""
        # A readable copy rather than stdin: -2 needs a file it can seek in.
        readable = self.stage / "captures" / ("%08x-%s" % (abs(hash(str(capture))), pathlib.Path(capture).name))
        readable.parent.mkdir(exist_ok=True)
        os.chmod(readable.parent, 0o755)
        shutil.copyfile(capture, readable)
        os.chmod(readable, 0o644)
        cmd = ["-n", "-r", str(readable)]
        if two_pass:
            cmd.append("-2")
        if keylog:
            kl = self.stage / ("keys-%d" % abs(hash(str(keylog))))
            shutil.copyfile(keylog, kl)
            os.chmod(kl, 0o644)
            cmd += ["-o", "tls.keylog_file:%s" % kl]
        cmd += list(args)
        rc, out, err = self.invoke(cmd, plugin=plugin)
        # A capture that is damaged part-way (smtp-to-comma) ends every run with
        # exit code 2, with or without mailsec: what was read still counts.
        damaged = rc == 2 and "appears to be damaged or corrupt" in err
        if check and rc != 0 and not damaged:
            raise AssertionError("tshark failed (%d): %s\n%s" % (rc, " ".join(cmd), err))
        return out, err

    def fields(self, capture, fields, display_filter=None, **kw):
        """Rows of -T fields output as lists of strings (occurrences joined by ',')."""
        args = ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
        for f in fields:
            args += ["-e", f]
        if display_filter:
            args += ["-Y", display_filter]
        out, _ = self.run(capture, args, **kw)
        return [line.split("\t") for line in out.splitlines()]


def _stage(so):
    stage = pathlib.Path(tempfile.mkdtemp(prefix="mailsec-test-"))
    (stage / "plugins" / "4.0" / "epan").mkdir(parents=True)
    (stage / "none").mkdir()
    (stage / "home").mkdir()
    shutil.copyfile(so, stage / "plugins" / "4.0" / "epan" / "mailsec.so")
    for d, _, files in os.walk(stage):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    os.chmod(stage, 0o777)
    os.chmod(stage / "home", 0o777)
    return stage


@pytest.fixture(scope="session")
def tshark():
    stage = _stage(_plugin_path())
    yield Tshark(stage)
    shutil.rmtree(stage, ignore_errors=True)


def _gcc_runtime(name):
    out = subprocess.run(["gcc", "-print-file-name=%s" % name], capture_output=True, text=True)
    path = out.stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


@pytest.fixture(scope="session")
def tshark_sanitized():
    """tshark with the plugin built with -fsanitize=address,undefined
    (MAILSEC_SANITIZE=ON, build-asan/), the sanitizer runtimes preloaded."""
    so = pathlib.Path(os.environ.get("MAILSEC_ASAN_PLUGIN", ROOT / "build-asan" / "mailsec.so"))
    if not so.exists():
        pytest.fail("sanitized plugin not built: %s (the README's test command builds it)" % so)
    runtimes = [_gcc_runtime("libasan.so"), _gcc_runtime("libubsan.so")]
    if None in runtimes:
        pytest.fail("gcc's sanitizer runtimes not found (libasan.so, libubsan.so)")
    stage = _stage(so)
    env = {"LD_PRELOAD": ":".join(runtimes),
           # tshark itself is not built for leak checking; every other report aborts
           "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=86",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=87"}
    yield Tshark(stage, env)
    shutil.rmtree(stage, ignore_errors=True)


def realworld_captures():
    manifest = REALWORLD / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    with open(manifest, newline="") as fh:
        return [dict(r, abspath=str(REALWORLD / r["path"])) for r in csv.DictReader(fh, delimiter="\t")]


def ground_truth_captures():
    """The bundled captures, or only fresh ones when MAILSEC_FRESH_CAPTURES names a folder."""
    fresh = os.environ.get("MAILSEC_FRESH_CAPTURES")
    dirs = [pathlib.Path(fresh)] if fresh else [BUNDLED]
    out = []
    for d in dirs:
        for j in sorted(d.glob("*.json")):
            truth = json.loads(j.read_text())
            cap = j.with_suffix(".pcapng")
            keys = j.parent / truth["keylog"] if truth.get("keylog") else None
            out.append(pytest.param((cap, keys, truth), id="%s/%s" % (d.name, j.stem)))
    return out
