#!/usr/bin/env python3
"""Mutation fuzzing of the real thing: editcap -E mutants of real captures through
tshark with the AddressSanitizer + UBSan build of the plugin (issue 13, item 2).

Run it through fuzz/mutants.sh (see fuzz/MUTANTS.md). Mutant number i is fully
determined by (--seed, i): the input (round robin over every capture, in an order
shuffled by the seed), the error rate and header offset (each input gets every pair
in turn), editcap's --seed, -2 or not, small limits or not, and the way tshark is
asked (verbose tree, fields and taps, or export objects).

A mutant fails when tshark exits non-zero: 86 (ASan report), 87 (UBSan report), a
signal (abort on a dissector bug, SIGSEGV...), or a timeout. A failure is run again
without the plugin (an empty plugin folder, same sanitizer runtimes and environment).
It is mailsec's ("ours") when it does not happen without the plugin, or when the
sanitizer report's first stack has a mailsec frame; otherwise it is Wireshark's.
"""
import argparse
import csv
import os
import pathlib
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, FIRST_COMPLETED, wait

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("MAILSEC_SHARED", ROOT.parent / "shared")).resolve()
FINDINGS = ROOT / "fuzz" / "findings" / "mutants"
UID = os.environ.get("MAILSEC_TEST_UID", "65534")

RATES = (0.005, 0.02, 0.1)
OFFSETS = (0, 54)            # 54: Ethernet + IPv4 + TCP headers kept, the payload mutated
MODES = ("verbose", "fields", "export")
KEEP_PER_SIGNATURE = 3       # reproducers kept per distinct failure (all are counted)
KEEP_WIRESHARK = 30          # Wireshark's failures kept at most
VALGRIND_MAX_INPUT = 300_000 # --sample picks mutants of inputs at most this large
EXIT_ASAN, EXIT_UBSAN, EXIT_VALGRIND = 86, 87, 88


def log(msg):
    print("mutants: " + msg, file=sys.stderr, flush=True)


# --- inputs ----------------------------------------------------------------------

def inputs():
    """(path, keylog or None) for every bundled, real-world and hostile capture."""
    out = []
    for cap in sorted((ROOT / "captures" / "real").glob("*.pcapng")):
        keys = cap.with_suffix(".keys")
        out.append((cap, keys if keys.exists() else None))
    manifest = SHARED / "realworld" / "MANIFEST.tsv"
    if manifest.exists():
        with open(manifest, newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                out.append((SHARED / "realworld" / row["path"], None))
    out += [(p, None) for p in sorted((SHARED / "hostile").glob("*.pcap"))]
    missing = [str(p) for p, _ in out if not p.exists()]
    if missing:
        sys.exit("mutants.sh: inputs missing: %s" % ", ".join(missing[:5]))
    return out


def campaign_inputs(seed):
    """The inputs in the campaign's order: shuffled, so that a short run samples
    all three sets rather than the first one."""
    out = inputs()
    random.Random(seed).shuffle(out)
    return out


class Plan:
    """Mutant number i, reproducible from (seed, i)."""

    def __init__(self, i, seed, ins, rates, modes=MODES):
        self.i = i
        n = len(ins)
        self.capture, keys = ins[i % n]
        # each input gets every (rate, offset) in turn over the rounds; within a
        # round, the inputs get different ones
        combo = (i % n + i // n) % (len(rates) * len(OFFSETS))
        self.rate = rates[combo % len(rates)]
        self.offset = OFFSETS[combo // len(rates)]
        rng = random.Random("%d:%d" % (seed, i))
        self.eseed = rng.randrange(1, 2 ** 31)
        self.two_pass = rng.random() < 0.3
        self.mode = rng.choice(modes)
        self.small_limits = rng.random() < 0.2   # tiny max_line, thresholds of 1
        self.keys = keys
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", "%s-%s" % (self.capture.parent.name, self.capture.stem))
        self.id = "%06d-%s-E%s-o%d-s%d" % (i, stem[-40:], self.rate, self.offset, self.eseed)

    def editcap(self, out):
        cmd = ["editcap", "-E", str(self.rate), "--seed", str(self.eseed)]
        if self.offset:
            cmd += ["-o", str(self.offset)]
        return cmd + [str(self.capture), str(out)]

    def tshark_args(self, mutant, keys, export_dir):
        args = ["-n", "-r", str(mutant)]
        if self.two_pass:
            args.append("-2")
        if keys:
            args += ["-o", "tls.keylog_file:%s" % keys]
        if self.small_limits:
            args += ["-o", "mailsec.max_line:40", "-o", "mailsec.brute_force_threshold:1",
                     "-o", "mailsec.enum_threshold:1"]
        if self.mode == "verbose":
            args += ["-V", "-x"]
        elif self.mode == "fields":
            args += ["-T", "fields", "-e", "frame.number", "-e", "mailsec.proto",
                     "-e", "mailsec.alert.name", "-z", "expert", "-z", "mailsec,tree",
                     "-z", "credentials"]
        else:
            args += ["-q", "--export-objects", "mailsec,%s" % export_dir, "-z", "expert,mailsec"]
        return args


def without_plugin_args(args):
    """The same run for a tshark without mailsec: its fields, preferences, stats tree
    and export listener left out (tshark would refuse them), the rest as it was."""
    out, k = [], 0
    while k < len(args):
        a = args[k]
        if a in ("-e", "-o", "-z", "--export-objects") and k + 1 < len(args):
            v = args[k + 1]
            if re.match(r"mailsec\b", v):
                k += 2
                continue
            out += [a, re.sub(r",mailsec$", "", v)]
            k += 2
            continue
        out.append(a)
        k += 1
    return out


# --- running tshark --------------------------------------------------------------

class Stopped(Exception):
    pass


class Runner:
    def __init__(self, opts, scratch):
        self.opts = opts
        self.scratch = scratch
        self.running = set()        # process groups to kill on interrupt
        self.stopped = False
        self.lock = threading.Lock()
        rt = []
        for lib in ("libasan.so", "libubsan.so"):
            p = subprocess.run(["gcc", "-print-file-name=%s" % lib], capture_output=True, text=True).stdout.strip()
            if not os.path.isabs(p) or not os.path.exists(p):
                sys.exit("mutants.sh: gcc's %s not found (apt-get install gcc)" % lib)
            rt.append(p)
        self.sanitizer_env = {
            "LD_PRELOAD": ":".join(rt),
            "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=%d:hard_rss_limit_mb=%d"
                            % (EXIT_ASAN, opts.rss_mb),
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=%d" % EXIT_UBSAN,
        }

    def env(self, plugins, sanitizers=True):
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.scratch / "home"),
            "TZ": "UTC",
            "LC_ALL": "C.UTF-8",
            "WIRESHARK_PLUGIN_DIR": str(self.scratch / "plugins" / plugins),
            # as Wireshark's own fuzz-test.sh and valgrind-wireshark.sh do: a dissector
            # bug aborts, and wmem / GSlice memory is plain malloc, so that ASan and
            # valgrind see overruns of it
            "WIRESHARK_ABORT_ON_DISSECTOR_BUG": "1",
            "WIRESHARK_ABORT_ON_TOO_MANY_ITEMS": "1",
            "WIRESHARK_DEBUG_WMEM_OVERRIDE": "simple",
            "G_SLICE": "always-malloc",
        }
        if sanitizers:
            env.update(self.sanitizer_env)
        return env

    def command(self, args, plugins, sanitizers=True, wrapper=()):
        prefix = []
        if os.geteuid() == 0:   # tshark ignores plugin folders when run as root
            prefix = ["setpriv", "--reuid=%s" % UID, "--regid=%s" % UID, "--clear-groups"]
        env = ["%s=%s" % kv for kv in self.env(plugins, sanitizers).items()]
        return prefix + ["env", "-i"] + env + list(wrapper) + ["tshark"] + list(args)

    def run(self, cmd, errfile, timeout):
        """(exit code or -signal, timed out, seconds); stderr to errfile."""
        t0 = time.monotonic()
        with open(errfile, "wb") as err:
            with self.lock:
                if self.stopped:
                    raise Stopped()
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=err, cwd="/", start_new_session=True)
                self.running.add(proc.pid)
            try:
                rc = proc.wait(timeout=timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                self.kill(proc.pid)
                rc = proc.wait()
                timed_out = True
            finally:
                with self.lock:
                    self.running.discard(proc.pid)
        if self.stopped:
            raise Stopped()
        return rc, timed_out, time.monotonic() - t0

    @staticmethod
    def kill(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def kill_all(self):
        with self.lock:
            self.stopped = True
            for pgid in list(self.running):
                self.kill(pgid)


# --- reading a failure -----------------------------------------------------------

# a frame of the plugin: its module, or one of its source files (ASan prints paths,
# valgrind base names; Debian's Wireshark has no debug information, so no file names)
OURS_FRAME = re.compile(r"mailsec|\bms_\w+\.[ch]:\d|/plugin/plugin\.c:|\(plugin\.c:\d")
RUNTIME_FRAME = re.compile(r"libasan|libubsan|sanitizer_common|/libsanitizer/|interceptor|__asan_|__ubsan_")


def first_stack(report):
    """The frames of the first stack trace in a sanitizer report."""
    frames, started = [], False
    for line in report.splitlines():
        if re.match(r"\s*#\d+ ", line):
            frames.append(line.strip())
            started = True
        elif started:
            break
    return frames


def describe(rc, timed_out, report):
    """(what happened, where: the first non-runtime frame or location, is that mailsec's)."""
    if timed_out:
        return "timeout", "", False
    what = "exit %d" % rc
    if rc < 0:
        try:
            what = signal.Signals(-rc).name
        except ValueError:
            what = "signal %d" % -rc
    where, ours = "", False
    m = re.search(r"ERROR: AddressSanitizer: ([\w-]+)", report)
    u = re.search(r"^(\S+:\d+:\d+): runtime error: (.*)$", report, re.M)
    if m:
        what = "asan " + m.group(1)
    elif u:
        what = "ubsan " + re.sub(r"0x[0-9a-f]+|\d+", "N", u.group(2))[:80]
        where = u.group(1)
        ours = bool(OURS_FRAME.search(where))
    else:
        d = re.search(r"(Dissector bug[^\n]*|\*\* \(tshark:\d+\): ERROR[^\n]*|\bERROR\b[^\n]*)", report)
        if d:
            what += " " + re.sub(r"\d+", "N", d.group(1))[:100]
            ours = bool(re.search(r"mailsec", d.group(1), re.I))
    frames = first_stack(report)
    for f in frames:
        if not RUNTIME_FRAME.search(f):
            if not where:
                where = re.sub(r"^#\d+ 0x[0-9a-f]+ in ", "", f)
            break
    if any(OURS_FRAME.search(f) for f in frames):
        ours = True
    return what, where, ours


def signature(what, where):
    return re.sub(r"\+0x[0-9a-f]+", "", "%s @ %s" % (what, re.sub(r":\d+$", "", where)))


# --- the campaign ----------------------------------------------------------------

class Campaign:
    def __init__(self, opts):
        self.opts = opts
        self.scratch = pathlib.Path(tempfile.mkdtemp(prefix="mailsec-mutants-", dir=opts.scratch))
        os.chmod(self.scratch, 0o755)
        for d in ("home", "m", "out"):
            (self.scratch / d).mkdir()
            os.chmod(self.scratch / d, 0o777)
        self.stage_plugin("asan", opts.plugin_asan)
        if opts.sample:
            self.stage_plugin("plain", opts.plugin)
        (self.scratch / "plugins" / "none").mkdir(parents=True)
        self.ins = campaign_inputs(opts.seed)
        self.keys = {}
        (self.scratch / "keys").mkdir()
        for cap, k in self.ins:
            if k and k not in self.keys:
                dst = self.scratch / "keys" / ("%d-%s" % (len(self.keys), k.name))
                shutil.copyfile(k, dst)
                self.keys[k] = dst
        for d, _, files in os.walk(self.scratch / "plugins"):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(os.path.join(d, f), 0o644)
        for d, _, files in os.walk(self.scratch / "keys"):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(os.path.join(d, f), 0o644)
        self.runner = Runner(opts, self.scratch)
        self.lock = threading.Lock()
        self.counts = dict(mutants=0, ours=0, wireshark=0, timeouts=0, flaky=0, valgrind=0,
                           valgrind_runs=0, valgrind_other=0, editcap=0)
        self.signatures = {}     # signature -> [ours?, count]
        self.kept_wireshark = 0
        self.asan_seconds = 0.0
        self.ours = set()        # mutant numbers with a finding of ours (sanitizers or valgrind)

    def stage_plugin(self, name, so):
        so = pathlib.Path(so)
        if not so.exists():
            sys.exit("mutants.sh: plugin not built: %s (run ./test.sh, which builds build-asan/)" % so)
        epan = self.scratch / "plugins" / name / "4.0" / "epan"
        epan.mkdir(parents=True)
        shutil.copyfile(so, epan / "mailsec.so")

    def make_mutant(self, plan, tag=""):
        mutant = self.scratch / "m" / ("%s%s.pcapng" % (plan.id, tag))
        p = subprocess.run(plan.editcap(mutant), stdin=subprocess.DEVNULL, capture_output=True)
        if p.returncode != 0:
            log("editcap failed on %s: %s" % (plan.capture, p.stderr.decode(errors="replace").strip()))
            return None
        os.chmod(mutant, 0o644)
        return mutant

    def one(self, i):
        plan = Plan(i, self.opts.seed, self.ins, self.opts.rates, self.opts.modes)
        mutant = self.make_mutant(plan)
        if mutant is None:
            with self.lock:
                self.counts["editcap"] += 1
            return
        out = self.scratch / "out" / plan.id
        out.mkdir()
        os.chmod(out, 0o777)
        args = plan.tshark_args(mutant, self.keys.get(plan.keys), out / "export")
        r = self.runner
        err = out / "with-plugin.txt"
        rc, to, secs = r.run(r.command(args, "asan"), err, self.opts.timeout)
        outcome, extra = "ok", {}
        if to or rc != 0:
            report = err.read_text(errors="replace")
            what, where, top_ours = describe(rc, to, report)
            err_np = out / "without-plugin.txt"
            rc_np, to_np, secs_np = r.run(r.command(without_plugin_args(args), "none"), err_np, self.opts.timeout)
            failed_np = to_np or rc_np != 0
            extra = dict(rc=rc, timed_out=to, secs=secs, rc_np=rc_np, timed_out_np=to_np, secs_np=secs_np,
                         what=what, where=where, top_ours=top_ours)
            if to and not failed_np:
                # a timeout only with mailsec: again, in case the machine was just busy
                rc2, to2, secs2 = r.run(r.command(args, "asan"), out / "with-plugin-again.txt", self.opts.timeout)
                extra.update(rc_again=rc2, timed_out_again=to2, secs_again=secs2)
                outcome = "ours" if to2 else "flaky"
            elif top_ours or not failed_np:
                outcome = "ours"
            else:
                outcome = "wireshark"
            self.record(plan, mutant, args, out, outcome, extra)
        with self.lock:
            self.counts["mutants"] += 1
            self.asan_seconds += secs
            if to:
                self.counts["timeouts"] += 1
            if outcome != "ok":
                self.counts[outcome] += 1
            if outcome == "ours":
                self.ours.add(i)
        shutil.rmtree(out, ignore_errors=True)
        mutant.unlink(missing_ok=True)

    def record(self, plan, mutant, args, out, outcome, extra):
        sig = signature(extra["what"], extra["where"])
        with self.lock:
            ent = self.signatures.setdefault(sig, [outcome, 0])
            ent[1] += 1
            if outcome == "wireshark":
                keep = self.kept_wireshark < KEEP_WIRESHARK and ent[1] <= KEEP_PER_SIGNATURE
                self.kept_wireshark += keep
            else:
                keep = ent[1] <= KEEP_PER_SIGNATURE
        log("%s: %s (%s) on %s%s" % (outcome.upper(), extra["what"], extra["where"] or "-", plan.id,
                                     "" if keep else " [not kept: already %d of this]" % KEEP_PER_SIGNATURE))
        if not keep:
            return
        dst = FINDINGS / outcome / plan.id
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mutant, dst / "mutant.pcapng")
        for name in ("with-plugin.txt", "without-plugin.txt", "with-plugin-again.txt"):
            if (out / name).exists():
                with open(out / name, "rb") as src, open(dst / name, "wb") as d:
                    d.write(src.read(1 << 20))
        keys = self.keys.get(plan.keys)
        rel_args = [a.replace(str(mutant), "mutant.pcapng").replace(str(out / "export"), "/tmp/mailsec-export")
                    for a in args]
        if keys:
            rel_args = [a.replace(str(keys), str(plan.keys)) for a in rel_args]
        info = ["mutant\t%s" % plan.id, "outcome\t%s" % outcome, "signature\t%s" % sig,
                "input\t%s" % plan.capture, "keylog\t%s" % (plan.keys or ""),
                "editcap\t%s" % " ".join(shlex.quote(a) for a in plan.editcap("mutant.pcapng")),
                "tshark\ttshark %s" % " ".join(shlex.quote(a) for a in rel_args),
                "plugin\t%s" % self.opts.plugin_asan]
        info.append("tshark_without\ttshark %s" % " ".join(shlex.quote(a) for a in without_plugin_args(rel_args)))
        info += ["%s\t%s" % kv for kv in sorted(extra.items())]
        (dst / "info.tsv").write_text("\n".join(info) + "\n")
        self.write_repro(dst, plan, mutant, out, outcome, sig, args, self.opts.plugin_asan,
                         r_with=("asan", args, True, ()),
                         r_without=("none", without_plugin_args(args), True, ()))

    def write_repro(self, dst, plan, mutant, out, outcome, sig, args, plugin, r_with, r_without):
        """dst/repro.sh: the run again, outside the campaign (its scratch folder is gone)."""
        subst = [(str(self.scratch / "plugins" / "none"), "@ST@/plugins/without"),
                 (str(self.scratch / "plugins" / "asan"), "@ST@/plugins/with"),
                 (str(self.scratch / "plugins" / "plain"), "@ST@/plugins/with"),
                 (str(self.scratch / "home"), "@ST@/home"), (str(mutant), "@ST@/mutant.pcapng"),
                 (str(out), "@ST@/out")]
        keys = self.keys.get(plan.keys)
        if keys:
            subst.append((str(keys), "@ST@/keys"))

        def line(spec):
            plugins, a, sanitizers, wrapper = spec
            cmd = self.runner.command(a, plugins, sanitizers, wrapper)
            if cmd[0] == "setpriv":
                cmd = cmd[4:]
            cmd = [t for t in cmd if not t.startswith("--log-file=")]
            for old, new in subst:
                cmd = [t.replace(old, new) for t in cmd]
            return '"${prefix[@]}" ' + " ".join('"%s"' % t.replace("@ST@", "$st") for t in cmd) + " >/dev/null"

        text = """#!/usr/bin/env bash
# Mutant %(id)s (%(outcome)s): %(sig)s
# input %(input)s
# made with: %(editcap)s
# usage: repro.sh [with|without] [PLUGIN.so]
#   with (default): tshark with the plugin (default %(plugin)s), as the campaign ran it
#   without: tshark without the plugin, the run that attributes a failure
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
how=${1:-with}
plugin=${2:-%(plugin_q)s}
st=$(mktemp -d /tmp/mailsec-repro.XXXXXX)
trap 'rm -rf "$st"' EXIT
mkdir -p "$st/plugins/with/4.0/epan" "$st/plugins/without" "$st/home" "$st/out"
cp "$plugin" "$st/plugins/with/4.0/epan/mailsec.so"
cp "$here/mutant.pcapng" "$st/mutant.pcapng"
%(keys)schmod -R a+rX "$st"
chmod 777 "$st/home" "$st/out"
prefix=()   # tshark ignores plugin folders when run as root
[ "$(id -u)" -eq 0 ] && prefix=(setpriv --reuid=%(uid)s --regid=%(uid)s --clear-groups)
if [ "$how" = without ]; then
    %(without)s
else
    %(with)s
fi
rc=$?
echo "repro.sh: exit $rc" >&2
exit $rc
""" % dict(id=plan.id, outcome=outcome, sig=sig, input=plan.capture,
           editcap=" ".join(shlex.quote(a) for a in plan.editcap("mutant.pcapng")),
           plugin=plugin, plugin_q=shlex.quote(plugin), uid=UID,
           keys='cp %s "$st/keys"\n' % shlex.quote(str(plan.keys)) if keys else "",
           with_=None, **{"with": line(r_with), "without": line(r_without)})
        (dst / "repro.sh").write_text(text)
        os.chmod(dst / "repro.sh", 0o755)

    def preflight(self):
        """Each way of asking, on an unmutated capture, with the plugin and (for the
        attribution) without: all must pass, or the setup is broken, not the plugin."""
        with_keys = [(c, k) for c, k in self.ins if k]
        cap, keys = min(with_keys or self.ins, key=lambda ck: ck[0].stat().st_size)
        copy = self.scratch / "m" / ("preflight" + cap.suffix)
        shutil.copyfile(cap, copy)
        os.chmod(copy, 0o644)
        out = self.scratch / "out" / "preflight"
        out.mkdir()
        os.chmod(out, 0o777)
        r = self.runner
        for mode in self.opts.modes:
            plan = Plan(0, self.opts.seed, [(cap, keys)], self.opts.rates, (mode,))
            plan.two_pass, plan.small_limits = False, True
            args = plan.tshark_args(copy, self.keys.get(keys), out / ("export-" + mode))
            for plugins, a in (("asan", args), ("none", without_plugin_args(args))):
                rc, to, _ = r.run(r.command(a, plugins), out / "stderr.txt", max(60, self.opts.timeout))
                if to or rc != 0:
                    err = (out / "stderr.txt").read_text(errors="replace")
                    log("preflight failed (%s, %s): %s on %s\n%s" % (
                        mode, "with the plugin" if plugins == "asan" else "without it",
                        "timeout" if to else "exit %d" % rc, cap, err[:2000]))
                    return False
        shutil.rmtree(out, ignore_errors=True)
        copy.unlink()
        return True

    # --- valgrind ----------------------------------------------------------------

    def valgrind(self, i):
        plan = Plan(i, self.opts.seed, self.ins, self.opts.rates, self.opts.modes)
        mutant = self.make_mutant(plan, "-vg")
        if mutant is None:
            return
        out = self.scratch / "out" / (plan.id + "-vg")
        out.mkdir()
        os.chmod(out, 0o777)
        vlog = out / "valgrind.txt"
        wrapper = ["valgrind", "--tool=memcheck", "--error-exitcode=%d" % EXIT_VALGRIND, "--leak-check=no",
                   "--num-callers=40", "--log-file=%s" % vlog]
        args = plan.tshark_args(mutant, self.keys.get(plan.keys), out / "export")
        r = self.runner
        rc, to, secs = r.run(r.command(args, "plain", sanitizers=False, wrapper=wrapper),
                             out / "stderr.txt", self.opts.timeout * 20)
        text = vlog.read_text(errors="replace") if vlog.exists() else ""
        blocks = re.split(r"\n==\d+== \n", text)
        errors = [b for b in blocks if re.search(r"^==\d+== (Invalid|Conditional|Use of uninit|Syscall param|"
                                                 r"Source and destination|Mismatched|Argument)", b, re.M)]
        ours = [b for b in errors if OURS_FRAME.search(b)]
        with self.lock:
            self.counts["valgrind_runs"] += 1
            if ours:
                self.counts["valgrind"] += 1
                self.ours.add(i)
            elif errors or to or rc not in (0, EXIT_VALGRIND):
                self.counts["valgrind_other"] += 1
        state = "%d error(s) in mailsec" % len(ours) if ours else (
            "timeout" if to else "clean" if not errors and rc == 0 else
            "%d error(s), none in mailsec, exit %d" % (len(errors), rc))
        log("valgrind %s: %s (%.0f s)" % (plan.id, state, secs))
        if ours:
            dst = FINDINGS / "ours" / (plan.id + "-valgrind")
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(mutant, dst / "mutant.pcapng")
            shutil.copyfile(vlog, dst / "valgrind.txt")
            self.write_repro(dst, plan, mutant, out, "ours, valgrind", "memcheck error in mailsec", args,
                             self.opts.plugin, r_with=("plain", args, False, wrapper),
                             r_without=("none", without_plugin_args(args), False, wrapper))
            rel = [a.replace(str(mutant), "mutant.pcapng") for a in args]
            (dst / "info.tsv").write_text(
                "mutant\t%s\ninput\t%s\neditcap\t%s\ntshark\tvalgrind tshark %s\nplugin\t%s\n" % (
                    plan.id, plan.capture, " ".join(plan.editcap("mutant.pcapng")),
                    " ".join(shlex.quote(a) for a in rel), self.opts.plugin))
        shutil.rmtree(out, ignore_errors=True)
        mutant.unlink(missing_ok=True)

    def valgrind_sample(self):
        """--sample mutants spread over the run, of inputs small enough for valgrind."""
        o = self.opts
        picked, step = [], max(1, o.count // o.sample)
        for k in range(o.sample):
            for i in range(o.start + k * step, o.start + o.count):
                cap = Plan(i, o.seed, self.ins, o.rates, o.modes).capture
                if cap.stat().st_size <= VALGRIND_MAX_INPUT and i not in picked:
                    picked.append(i)
                    break
        return picked

    # --- driving -----------------------------------------------------------------

    def pool(self, fn, items, progress):
        jobs = self.opts.jobs
        with ThreadPoolExecutor(max_workers=jobs) as ex:
            it = iter(items)
            pending = set()
            try:
                while True:
                    while len(pending) < jobs * 2:
                        try:
                            pending.add(ex.submit(fn, next(it)))
                        except StopIteration:
                            break
                    if not pending:
                        break
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in done:
                        f.result()
                        progress()
            except BaseException:
                for f in pending:
                    f.cancel()
                self.runner.kill_all()
                raise

    def run(self):
        o = self.opts
        log("%d mutants of %d captures, rates %s, %d at once, timeout %d s, scratch %s, plugin %s"
            % (o.count, len(self.ins), ",".join(map(str, o.rates)), o.jobs, o.timeout, self.scratch, o.plugin_asan))
        start = time.monotonic()
        t0 = start
        every = min(200, max(10, o.count // 10))
        state = {"n": 0}
        phase = {}

        def progress():
            state["n"] += 1
            n = state["n"]
            if n % every == 0 or n == o.count:
                el = time.monotonic() - t0
                c = self.counts
                log("%d/%d  %.0f s, %.2f s/mutant (%.2f s per tshark), eta %.0f s  ours=%d wireshark=%d "
                    "timeouts=%d flaky=%d" % (n, o.count, el, el / n, self.asan_seconds / max(1, c["mutants"]),
                                              el / n * (o.count - n), c["ours"], c["wireshark"],
                                              c["timeouts"], c["flaky"]))

        interrupted = False
        try:
            if not self.preflight():
                return 2
            t0 = time.monotonic()
            phase["preflight"] = t0 - start
            self.pool(self.one, range(o.start, o.start + o.count), progress)
            phase["mutants"] = time.monotonic() - t0
            if o.sample:
                picked = self.valgrind_sample()
                log("valgrind memcheck (plain build %s) on %d mutants: %s" % (o.plugin, len(picked), picked))
                t1 = time.monotonic()
                self.pool(self.valgrind, picked, lambda: None)
                phase["valgrind"] = time.monotonic() - t1
        except KeyboardInterrupt:
            interrupted = True
            log("interrupted")
        finally:
            if not o.keep_scratch:
                shutil.rmtree(self.scratch, ignore_errors=True)
        c = self.counts
        el = time.monotonic() - start
        per = phase.get("mutants", time.monotonic() - t0) / max(1, c["mutants"])
        log("%.0f s in all (%s); %.2f s per mutant with %d at once, %.2f s per tshark run with the plugin; "
            "%d distinct failure(s)%s" % (
            el, ", ".join("%s %.0f s" % kv for kv in phase.items()), per, o.jobs,
            self.asan_seconds / max(1, c["mutants"]), len(self.signatures),
            "".join("\n    %s x%d: %s" % (v[0], v[1], k) for k, v in sorted(self.signatures.items()))))
        if c["flaky"]:
            log("%d timeout(s) with the plugin that did not happen again (busy machine?)" % c["flaky"])
        if c["editcap"]:
            log("%d mutant(s) not made: editcap failed" % c["editcap"])
        if o.sample:
            log("valgrind: %d run(s), %d with errors in mailsec, %d with only others' errors or timeouts"
                % (c["valgrind_runs"], c["valgrind"], c["valgrind_other"]))
        if self.ours:
            log("findings: %s" % (FINDINGS / "ours"))
        # ours: distinct mutants with a finding of mailsec's, sanitizers or valgrind
        print("mutants=%d ours=%d wireshark=%d timeouts=%d valgrind=%d"
              % (c["mutants"], len(self.ours), c["wireshark"], c["timeouts"], c["valgrind"]), flush=True)
        if interrupted:
            return 130
        return 1 if self.ours else 0


def main(argv=None):
    global FINDINGS
    ap = argparse.ArgumentParser(prog="fuzz/mutants.sh", description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=2000, help="mutants in all (default 2000, the CI size)")
    ap.add_argument("--long", action="store_true", help="100000 mutants (overrides --count)")
    ap.add_argument("--jobs", type=int, default=2, help="tshark runs at once (default 2)")
    ap.add_argument("--plugin-asan", default=str(ROOT / "build-asan" / "mailsec.so"),
                    help="the ASan+UBSan plugin (default build-asan/mailsec.so)")
    ap.add_argument("--plugin", default=str(ROOT / "build" / "mailsec.so"),
                    help="the plain plugin, for valgrind (default build/mailsec.so)")
    ap.add_argument("--sample", type=int, default=0, help="valgrind memcheck runs on N mutants (default 0)")
    ap.add_argument("--timeout", type=int, default=60, help="seconds per tshark run (default 60)")
    ap.add_argument("--seed", type=int, default=1, help="campaign seed: mutant i is fixed by (seed, i)")
    ap.add_argument("--start", type=int, default=0, help="first mutant number (default 0)")
    ap.add_argument("--rates", default=",".join(map(str, RATES)), help="editcap -E error rates")
    ap.add_argument("--modes", default=",".join(MODES),
                    help="how tshark is asked, picked per mutant among: verbose (-V -x), fields "
                         "(mailsec fields, -z expert, mailsec,tree, credentials), export "
                         "(--export-objects mailsec)")
    ap.add_argument("--rss-mb", type=int, default=4096, help="ASan hard_rss_limit_mb per tshark (default 4096)")
    ap.add_argument("--scratch", default=None, help="where the scratch folder goes (default $TMPDIR or /tmp)")
    ap.add_argument("--findings", default=str(FINDINGS),
                    help="where reproducers go (default fuzz/findings/mutants)")
    ap.add_argument("--keep-scratch", action="store_true", help="do not remove the scratch folder")
    o = ap.parse_args(argv)
    FINDINGS = pathlib.Path(o.findings).resolve()
    if o.long:
        o.count = 100000
    o.rates = tuple(float(r) for r in o.rates.split(","))
    o.modes = tuple(o.modes.split(","))
    if not o.modes or set(o.modes) - set(MODES):
        ap.error("--modes: among %s" % ",".join(MODES))
    if o.count < 1 or o.jobs < 1 or o.sample < 0 or o.timeout < 1:
        ap.error("--count, --jobs and --timeout must be positive, --sample not negative")
    o.plugin_asan = str(pathlib.Path(o.plugin_asan).resolve())
    o.plugin = str(pathlib.Path(o.plugin).resolve())
    for tool in ("tshark", "editcap", "setpriv", "gcc") + (("valgrind",) if o.sample else ()):
        if not shutil.which(tool):
            sys.exit("mutants.sh: %s not found" % tool)
    def interrupt(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGINT, interrupt)    # even when started in the background
    signal.signal(signal.SIGTERM, interrupt)   # a cancelled CI job: stop tshark, summarise
    return Campaign(o).run()


if __name__ == "__main__":
    sys.exit(main())
