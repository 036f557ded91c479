"""Run the real tshark with the built plugin, the way a user would.

tshark ignores plugin folders when it runs as root, so every run drops to an
unprivileged user (nobody) with WIRESHARK_PLUGIN_DIR pointing at a
world-readable stage. Captures and key logs are copied to a readable place,
so the clone may sit anywhere. HOME is a temporary folder and TZ is UTC, as
in Wireshark's own test suite.

Speed: nearly all the time is tshark starting up (about half a second), so
launches are not repeated. How, and why that cannot hide a difference:

- One stage per pytest run, made before xdist starts its workers (they find
  it through MAILSEC_TEST_STAGE): each plugin build is copied once, so every
  test of the run loads the same bytes even if build/ is rebuilt meanwhile.
  Captures and key logs are copied in once, named by a hash of their content.
- Tshark.invoke remembers, per process and per Tshark (one plugin build, one
  environment), the (exit code, stdout, stderr) of each exact argument list.
  File arguments are content-named stage copies, so equal argument lists mean
  equal inputs; tshark's output depends on nothing else, so the remembered
  result is what a new launch would print. Anything that differs (a field, a
  filter, -2, a preference, a key log, a capture's bytes, the plugin build,
  with or without the plugin) is another key and another launch. Outputs only
  one test reads (PDML, -V) are not kept (cache=False), to save memory.
- Tshark.fields(..., wide=W): tests reading different fields of one capture
  with the same options get their columns from one run asking for all of W.
  More fields asked for leave the others' values alone here: mailsec's only
  dependence on what is asked for is whether any mailsec field is (then it
  renders its tree), and a wide run with the plugin asks for some exactly as
  each of its callers did. If a row of the wide output does not split into
  one column per field, or that run fails, the caller's own command runs.
- Under pytest-xdist (test.sh: -n auto) the tests of one capture go to one
  worker (pytest_xdist_make_scheduler), so they share its memory; those of
  test_main_command, which build through run.sh, go to one worker in turn.
  Scheduling decides only where a test runs.

Set MAILSEC_TSHARK_LOG to a file to have every tshark launch logged there
(time, worker, test, build, with the plugin or not, arguments).
"""
import csv
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("MAILSEC_SHARED", ROOT.parent / "shared")).resolve()
REALWORLD = SHARED / "realworld"
BUNDLED = ROOT / "captures" / "real"
UNPRIVILEGED = os.environ.get("MAILSEC_TEST_UID", "65534")

# Fields that test_ground_truth and test_credentials both read from the bundled
# captures, in one pass and with -2, without a display filter: one run each.
BUNDLED_FIELDS = (
    "frame.number", "tcp.srcport", "tcp.dstport", "tcp.len", "tcp.flags.syn",
    "mailsec.proto", "mailsec.detected_by", "mailsec.transport", "mailsec.decrypted",
    "mailsec.starttls.offered", "mailsec.starttls.command", "mailsec.starttls.result",
    "mailsec.starttls.boundary",
    "mailsec.auth.attempt", "mailsec.auth.mechanism", "mailsec.auth.username",
    "mailsec.auth.authzid", "mailsec.auth.password", "mailsec.auth.token", "mailsec.auth.hash",
    "mailsec.auth.exposed", "mailsec.auth.result", "mailsec.auth.request_in",
    "mailsec.auth.result_in", "mailsec.session.auth_user")

_STAGE_VAR = "MAILSEC_TEST_STAGE"


def _plugin_path():
    return pathlib.Path(os.environ.get("MAILSEC_PLUGIN", ROOT / "build" / "mailsec.so"))


def _asan_plugin_path():
    return pathlib.Path(os.environ.get("MAILSEC_ASAN_PLUGIN", ROOT / "build-asan" / "mailsec.so"))


def _worker():
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


# --- the stage: one per pytest run, shared by its xdist workers ------------------

def pytest_configure(config):
    if hasattr(config, "workerinput"):
        return  # an xdist worker: the controller made the stage
    stage = pathlib.Path(tempfile.mkdtemp(prefix="mailsec-test-"))
    os.chmod(stage, 0o755)
    for name, so in (("plain", _plugin_path()), ("sanitized", _asan_plugin_path())):
        if so.exists():
            epan = stage / name / "4.0" / "epan"
            epan.mkdir(parents=True)
            shutil.copyfile(so, epan / "mailsec.so")
    (stage / "none").mkdir()   # an empty plugin folder still replaces the global one
    (stage / "inputs").mkdir()
    for d, _, files in os.walk(stage):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    config._mailsec_stage = stage
    os.environ[_STAGE_VAR] = str(stage)


def pytest_terminal_summary(terminalreporter, config):
    stage = getattr(config, "_mailsec_stage", None)
    if stage is not None and not (stage / "plain").exists():
        # under xdist the worker's pytest.exit reason does not reach the terminal
        terminalreporter.write_line("mailsec: plugin not built: %s (run the README's test command)"
                                    % _plugin_path())


def pytest_unconfigure(config):
    stage = getattr(config, "_mailsec_stage", None)
    if stage is not None:
        shutil.rmtree(stage, ignore_errors=True)
        os.environ.pop(_STAGE_VAR, None)


def _stage():
    return pathlib.Path(os.environ[_STAGE_VAR])


def stage_copy(path):
    """A world-readable copy of path in the stage, named by its content; made once."""
    data = pathlib.Path(path).read_bytes()
    dst = _stage() / "inputs" / ("%s-%s" % (hashlib.sha256(data).hexdigest()[:16], pathlib.Path(path).name))
    if not dst.exists():
        tmp = dst.with_name("%s.%s.tmp" % (dst.name, _worker()))
        tmp.write_bytes(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)   # atomic: another worker sees the whole file or none
    return dst


# --- tshark ----------------------------------------------------------------------

class Tshark:
    def __init__(self, build, extra_env=None):
        self.stage = _stage()
        self.plugins = self.stage / build
        self.home = self.stage / ("home-%s-%s" % (_worker(), build))
        self.home.mkdir(exist_ok=True)
        os.chmod(self.home, 0o777)
        self.extra_env = extra_env or {}
        self._memo = {}

    def _env(self, plugin):
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.home),
            "TZ": "UTC",
            "LC_ALL": "C.UTF-8",
            "WIRESHARK_PLUGIN_DIR": str(self.plugins if plugin else self.stage / "none"),
        }
        env.update(self.extra_env)
        return env

    def copy(self, path):
        return stage_copy(path)

    def invoke(self, args, plugin=True, cache=True):
        """Run tshark with exactly these arguments, as the unprivileged user:
        (exit code, stdout, stderr). Files among the arguments must be stage
        copies (Tshark.copy), so that the same arguments mean the same inputs."""
        key = (tuple(args), plugin)
        if key in self._memo:
            return self._memo[key]
        prefix = []
        if os.geteuid() == 0:
            prefix = ["setpriv", "--reuid=%s" % UNPRIVILEGED, "--regid=%s" % UNPRIVILEGED,
                      "--clear-groups"]
        env = ["%s=%s" % kv for kv in self._env(plugin).items()]
        log = os.environ.get("MAILSEC_TSHARK_LOG")
        if log:
            with open(log, "a") as fh:
                fh.write("%.2f\t%s\t%s\t%s\t%s\t%s\n" % (
                    time.time(), _worker(), os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
                    self.plugins.name, plugin, " ".join(args)))
        proc = subprocess.run(prefix + ["env", "-i"] + env + ["tshark"] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True, cwd="/", timeout=600)
        result = (proc.returncode, proc.stdout.decode("utf-8", "replace"),
                  proc.stderr.decode("utf-8", "replace"))
        if cache:
            self._memo[key] = result
        return result

    @staticmethod
    def _failed(rc, err):
        # A capture that is damaged part-way (smtp-to-comma) ends every run with
        # exit code 2, with or without mailsec: what was read still counts.
        damaged = rc == 2 and "appears to be damaged or corrupt" in err
        return rc != 0 and not damaged

    def command(self, capture, args=(), keylog=None, two_pass=False):
        """The argument list of a run on capture (a path)."""
        # A readable copy rather than stdin: -2 needs a file it can seek in.
        cmd = ["-n", "-r", str(self.copy(capture))]
        if two_pass:
            cmd.append("-2")
        if keylog:
            cmd += ["-o", "tls.keylog_file:%s" % self.copy(keylog)]
        return cmd + list(args)

    def run(self, capture, args=(), plugin=True, keylog=None, two_pass=False, check=True, cache=True):
        """Run tshark on capture (a path) and return (stdout, stderr)."""
        cmd = self.command(capture, args, keylog, two_pass)
        rc, out, err = self.invoke(cmd, plugin=plugin, cache=cache)
        if check and self._failed(rc, err):
            raise AssertionError("tshark failed (%d): %s\n%s" % (rc, " ".join(cmd), err))
        return out, err

    @staticmethod
    def _fields_args(fields, display_filter, extra):
        args = list(extra) + ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
        for f in fields:
            args += ["-e", f]
        if display_filter:
            args += ["-Y", display_filter]
        return args

    def fields(self, capture, fields, display_filter=None, extra=(), wide=None, **kw):
        """Rows of -T fields output as lists of strings (occurrences joined by ',').

        extra: arguments before -T (preferences). wide: a list of fields that
        contains these; tshark is asked for all of them, so that callers that
        read other fields of the same capture with the same options share the
        run, and each row is cut down to the requested columns."""
        fields = list(fields)
        if wide is not None:
            wide = list(wide) + [f for f in fields if f not in wide]
            if wide != fields:
                cmd = self.command(capture, self._fields_args(wide, display_filter, extra),
                                   kw.get("keylog"), kw.get("two_pass", False))
                rc, out, err = self.invoke(cmd, plugin=kw.get("plugin", True), cache=kw.get("cache", True))
                rows = [line.split("\t") for line in out.splitlines()]
                if not self._failed(rc, err) and all(len(r) == len(wide) for r in rows):
                    pick = [wide.index(f) for f in fields]
                    return [[r[i] for i in pick] for r in rows]
                # Not one clean row per frame, or a failure: the caller's own run decides.
        out, _ = self.run(capture, self._fields_args(fields, display_filter, extra), **kw)
        return [line.split("\t") for line in out.splitlines()]


@pytest.fixture(scope="session")
def tshark():
    if not (_stage() / "plain").exists():   # it was not there when the run began
        pytest.exit("plugin not built: %s (run the README's test command)" % _plugin_path(), returncode=2)
    yield Tshark("plain")


def _gcc_runtime(name):
    out = subprocess.run(["gcc", "-print-file-name=%s" % name], capture_output=True, text=True)
    path = out.stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


@pytest.fixture(scope="session")
def tshark_sanitized():
    """tshark with the plugin built with -fsanitize=address,undefined
    (MAILSEC_SANITIZE=ON, build-asan/), the sanitizer runtimes preloaded."""
    if not (_stage() / "sanitized").exists():
        pytest.fail("sanitized plugin not built: %s (the README's test command builds it)" % _asan_plugin_path())
    runtimes = [_gcc_runtime("libasan.so"), _gcc_runtime("libubsan.so")]
    if None in runtimes:
        pytest.fail("gcc's sanitizer runtimes not found (libasan.so, libubsan.so)")
    env = {"LD_PRELOAD": ":".join(runtimes),
           # tshark itself is not built for leak checking; every other report aborts
           "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=86",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=87"}
    yield Tshark("sanitized", env)


# --- xdist: tests of one capture on one worker -----------------------------------

def work_unit(nodeid):
    """The tests that should run on the same worker, so that they share runs:
    by capture (the parameter id without its folder prefix or pass suffix),
    test_hostile by build, test_main_command, test_gui (one Wireshark run for
    all its tests) and unparametrised tests by module."""
    path, _, name = nodeid.partition("::")
    module = path.rsplit("/", 1)[-1]
    param = name.partition("[")[2][:-1]
    if module == "test_hostile.py":
        return module + ":" + ("sanitized" if param.startswith("sanitized") else "plain")
    if not param or module in ("test_main_command.py", "test_gui.py"):
        return module
    capture = re.sub(r"^(real|bundled|bundled-keys|realworld)/", "", param)
    return re.sub(r"-(one|two)-pass$", "", capture)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "load":
        return None   # an explicit --dist other than load: xdist's own
    from xdist.scheduler import LoadScopeScheduling

    class ByCapture(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return work_unit(nodeid)

    return ByCapture(config, log)


# --- the captures ----------------------------------------------------------------

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
