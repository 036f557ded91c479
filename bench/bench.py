#!/usr/bin/env python3
"""mailsec cost benchmark: tshark with the mailsec plugin against tshark without it.

Every figure is measured in the same run, on the same captures, with the same
tshark: instructions per frame under callgrind (start-up removed), peak RSS,
wall and CPU time, the memory growth on a capture ten times longer, and how
many of the ground-truth logins mailsec (and, with --peers, dsniff and
ettercap) recovers. Prints the tables and writes them to bench/RESULTS.md.

tshark ignores plugin folders when it runs as root, so when this script runs
as root every tshark run drops to the unprivileged user nobody, with
WIRESHARK_PLUGIN_DIR pointing at a world-readable copy of the plugin (or at an
empty folder for the baseline), as tests/tshark/conftest.py does.

Exit status: 0 when the benchmark ran, whether or not the targets are met;
1 on an error (one line on stderr); 130 when interrupted.
"""
import argparse
import base64
import binascii
import collections
import concurrent.futures
import datetime
import ipaddress
import json
import os
import pathlib
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAKE_CAPTURES = pathlib.Path(os.environ.get("MAILSEC_MAKE_CAPTURES", ROOT / "bench" / "make_captures.py"))
NOBODY = 65534
MB = 1e6

# (key, capture, TLS keys, arguments with mailsec, arguments without it (None: the same), what it is)
VARIANTS = [
    ("A", "mail", True, ["-q", "-z", "io,phs"], None, "protocol hierarchy, TLS keys"),
    ("B", "mail", False, ["-q", "-z", "io,phs"], None, "protocol hierarchy, no keys"),
    ("C", "mail", True, ["-T", "fields", "-e", "frame.number", "-e", "mailsec.auth.username"],
     ["-T", "fields", "-e", "frame.number"], "fields, TLS keys"),
    ("D", "mail", True, ["-q", "-z", "conv,tcp"], None, "TCP conversations (no protocol tree), TLS keys"),
    ("E", "mail", True, ["-2", "-q", "-z", "io,phs"], None, "two-pass protocol hierarchy, TLS keys"),
    ("F", "other", False, ["-q", "-z", "io,phs"], None, "protocol hierarchy, non-mail capture"),
]
VARIANT = {v[0]: v for v in VARIANTS}

# Mechanisms whose password itself crosses the wire (used when the ground truth has no sends_password).
PASSWORD_MECHS = {"PLAIN", "LOGIN", "USER/PASS", "IMAP-LOGIN", "USER", "PASS"}
RECOVERY_FIELDS = ["ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport",
                   "mailsec.auth.username", "mailsec.auth.password", "mailsec.auth.token",
                   "mailsec.auth.mechanism", "mailsec.proto"]
AGG = "\x1e"


class BenchError(Exception):
    pass


T0 = time.time()


def log(msg):
    t = int(time.time() - T0)
    print("bench: [%d:%02d] %s" % (t // 60, t % 60, msg), file=sys.stderr, flush=True)


def mbstr(x):
    """A size in MB as make_captures.py takes it: 20, not 20.0."""
    return str(int(x)) if float(x) == int(x) else str(x)


# ---------------------------------------------------------------- processes

class Result:
    def __init__(self, rc, wall, user, sys_, maxrss_kb, stderr, timed_out=False, signal_=None):
        self.rc, self.wall, self.user, self.sys = rc, wall, user, sys_
        self.cpu = user + sys_
        self.rss_mb = maxrss_kb * 1024 / MB
        self.stderr, self.timed_out, self.signal = stderr, timed_out, signal_


def spawn(argv, out=None, timeout=None):
    """Run argv; wall time, rusage of the very process (setpriv and env exec into it)."""
    errf = tempfile.TemporaryFile()
    outf = open(out, "wb") if out else subprocess.DEVNULL
    try:
        t0 = time.perf_counter()
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=outf, stderr=errf, cwd="/")
        except OSError as e:
            raise BenchError("cannot run %s: %s" % (argv[0], e.strerror))
        state = {"done": False, "killed": False}

        def kill():
            if not state["done"]:
                state["killed"] = True
                os.kill(p.pid, signal.SIGKILL)
        timer = threading.Timer(timeout, kill) if timeout is not None else None
        if timer:
            timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            state["done"] = True
            if timer:
                timer.cancel()
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if out:
            outf.close()
    errf.seek(0)
    err = errf.read().decode("utf-8", "replace")
    errf.close()
    sig = -p.returncode if p.returncode < 0 else None
    return Result(p.returncode, wall, ru.ru_utime, ru.ru_stime, ru.ru_maxrss, err, state["killed"], sig)


def run_text(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT).stdout
    except OSError:
        return ""


class Stage:
    """A world-readable folder with the plugin copied once (the build may change under us)."""

    def __init__(self, plugin):
        self.root = os.geteuid() == 0
        self._readable = {}
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="mailsec-bench-"))
        epan = self.dir / "plugins" / "4.0" / "epan"
        epan.mkdir(parents=True)
        (self.dir / "none").mkdir()
        (self.dir / "home").mkdir()
        (self.dir / "caps").mkdir()
        (self.dir / "out").mkdir()
        shutil.copyfile(plugin, epan / "mailsec.so")
        for d, _, files in os.walk(self.dir):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(os.path.join(d, f), 0o644)
        os.chmod(self.dir / "home", 0o777)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def argv(self, cmd, plugin=None, wrapper=()):
        """cmd run as nobody (when root) in a clean environment."""
        prefix = []
        if self.root:
            prefix = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.dir / "home"),
               "TZ": "UTC", "LC_ALL": "C.UTF-8"}
        if plugin is not None:
            # An empty plugin folder still replaces the global one.
            env["WIRESHARK_PLUGIN_DIR"] = str(self.dir / ("plugins" if plugin else "none"))
        return prefix + ["env", "-i"] + ["%s=%s" % kv for kv in env.items()] + list(wrapper) + list(cmd)

    def readable(self, path):
        """path itself if nobody can read it, else a readable copy in the stage."""
        path = pathlib.Path(path)
        if path not in self._readable:
            self._readable[path] = self._make_readable(path)
        return self._readable[path]

    def _make_readable(self, path):
        try:
            os.chmod(path, os.stat(path).st_mode | 0o444)
        except OSError:
            pass
        if not self.root or subprocess.run(self.argv(["test", "-r", str(path)])).returncode == 0:
            return path
        copy = self.dir / "caps" / ("%d-%s" % (len(list((self.dir / "caps").iterdir())), path.name))
        shutil.copyfile(path, copy)
        os.chmod(copy, 0o644)
        return copy

    def tshark(self, args, plugin, out=None, wrapper=(), timeout=None, what="tshark"):
        args = list(args) if args[:1] == ["-G"] else ["-n"] + list(args)
        r = spawn(self.argv(["tshark"] + args, plugin, wrapper), out, timeout)
        # A capture damaged part-way ends every run with 2, with or without mailsec.
        damaged = r.rc == 2 and "appears to be damaged or corrupt" in r.stderr
        if r.rc != 0 and not damaged:
            lines = [l for l in r.stderr.splitlines() if l.strip() and not l.startswith("Running as user")]
            why = "killed by signal %d" % r.signal if r.signal else "exit status %d" % r.rc
            raise BenchError("%s failed (%s): %s" % (what, why, (lines[-1] if lines else "").strip()[:300]))
        return r


# ---------------------------------------------------------------- captures

class Captures:
    """One generated set: OUTDIR/mail.pcap, mail.keys, mail.truth.jsonl, other.pcap."""

    def __init__(self, work, size_mb, seed, kinds):
        self.size_mb = size_mb
        self.dir = pathlib.Path(work) / ("%smb-seed%d" % (mbstr(size_mb), seed))
        self.mail = self.dir / "mail.pcap"
        self.keys = self.dir / "mail.keys"
        self.truth = self.dir / "mail.truth.jsonl"
        self.summary = self.dir / "mail.truth-summary.json"
        self.other = self.dir / "other.pcap"
        # a kind is reused once make_captures.py has written it whole (the marker comes last)
        need = [k for k in ("mail", "other") if k in kinds and not (self.dir / (".%s.done" % k)).exists()]
        if need:
            kind = "both" if len(need) == 2 else need[0]
            if not MAKE_CAPTURES.exists():
                raise BenchError("captures missing in %s and %s does not exist" % (self.dir, MAKE_CAPTURES))
            self.dir.mkdir(parents=True, exist_ok=True)
            log("generating %s capture(s) of %s MB in %s" % (kind, mbstr(size_mb), self.dir))
            cmd = [sys.executable, str(MAKE_CAPTURES), str(self.dir), "--size-mb", mbstr(size_mb),
                   "--seed", str(seed), "--kind", kind]
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT)
            if p.returncode != 0:
                last = (p.stderr.strip().splitlines() or ["no message"])[-1]
                raise BenchError("make_captures.py failed (%d): %s" % (p.returncode, last))
            for k in need:
                missing = [p for p in ((self.mail, self.keys, self.truth) if k == "mail" else (self.other,))
                           if not p.exists()]
                if missing:
                    raise BenchError("make_captures.py did not write %s" % missing[0])
                (self.dir / (".%s.done" % k)).write_text(" ".join(cmd) + "\n")
        # nobody should be able to read them in place (Stage.readable copies them otherwise)
        for d in (self.dir.parent, self.dir):
            try:
                if d.stat().st_uid == os.geteuid():
                    os.chmod(d, d.stat().st_mode | 0o555)
            except OSError:
                pass

    def path(self, which):
        return self.mail if which == "mail" else self.other

    def info(self, stage, which):
        """frames, bytes, TCP conversations of one capture (cached beside it)."""
        cap = self.path(which)
        st = cap.stat()
        cache = self.dir / (".%s.info.json" % which)
        stamp = [st.st_size, int(st.st_mtime)]
        if cache.exists():
            try:
                c = json.loads(cache.read_text())
                if c.get("stamp") == stamp:
                    return c
            except ValueError:
                pass
        out = run_text(["capinfos", "-M", "-c", str(cap)])
        m = re.search(r"Number of packets:\s*(\d+)", out)
        if not m:
            raise BenchError("capinfos could not read %s" % cap)
        frames = int(m.group(1))
        outf = stage.dir / "out" / "conv.txt"
        stage.tshark(["-r", str(stage.readable(cap)), "-q", "-z", "conv,tcp"], False, out=outf,
                     what="tshark -z conv,tcp")
        convs = sum(1 for l in outf.read_text(errors="replace").splitlines() if "<->" in l)
        c = {"stamp": stamp, "bytes": st.st_size, "frames": frames, "tcp_sessions": convs}
        if which == "mail" and self.summary.exists():
            try:
                c["truth_summary"] = json.loads(self.summary.read_text())
            except ValueError:
                pass
        try:
            cache.write_text(json.dumps(c))
        except OSError:
            pass
        return c


# ---------------------------------------------------------------- cost measurements

def variant_args(stage, caps, key, plugin):
    _, which, keys, with_args, without_args, _ = VARIANT[key]
    args = ["-r", str(stage.readable(caps.path(which)))]
    if keys:
        args += ["-o", "tls.keylog_file:%s" % stage.readable(caps.keys)]
    return args + list(with_args if plugin or without_args is None else without_args)


def warm(path):
    """Read a capture once so that no timed run pays for the disk."""
    with open(path, "rb") as fh:
        while fh.read(1 << 22):
            pass


def timed_runs(stage, caps, keys_, runs):
    """Interleaved runs (with, without, with, without ...) of each variant."""
    for which in {VARIANT[k][1] for k in keys_}:
        warm(caps.path(which))
    res = {}
    for key in keys_:
        res[key] = {True: [], False: []}
        for i in range(runs):
            for plugin in (True, False):
                log("time %s %s mailsec on %s, run %d/%d" % (key, "with" if plugin else "without",
                                                             caps.dir.name, i + 1, runs))
                r = stage.tshark(variant_args(stage, caps, key, plugin), plugin,
                                 what="tshark (%s, %s mailsec)" % (key, "with" if plugin else "without"))
                res[key][plugin].append(r)
    return res


def callgrind_ir(stage, args, plugin, what, tag):
    out = stage.dir / "home" / ("callgrind-%s.out" % tag)
    if out.exists():
        out.unlink()
    stage.tshark(args, plugin, wrapper=["valgrind", "--tool=callgrind", "--callgrind-out-file=%s" % out],
                 what=what)
    text = out.read_text(errors="replace") if out.exists() else ""
    m = re.search(r"^summary:\s*(\d+)", text, re.M) or re.search(r"^totals:\s*(\d+)", text, re.M)
    if not m:
        raise BenchError("no callgrind total for %s" % what)
    out.unlink()
    return int(m.group(1))


def callgrind_runs(stage, caps, keys_, frames, jobs):
    """Instructions per frame: (Ir(capture) - Ir(its first frame alone)) / (frames - 1).
    Instruction counts do not depend on the load, so runs may go side by side (jobs)."""
    ones = {}
    for which in ("mail", "other"):
        if any(VARIANT[k][1] == which for k in keys_):
            if frames[which] < 2:
                raise BenchError("%s has fewer than 2 frames" % caps.path(which))
            one = stage.dir / "caps" / ("one-%s.pcap" % which)
            p = subprocess.run(["editcap", "-r", str(caps.path(which)), str(one), "1"], capture_output=True, text=True)
            if p.returncode != 0:
                raise BenchError("editcap failed on %s: %s" % (caps.path(which), p.stderr.strip()[:200]))
            os.chmod(one, 0o644)
            ones[which] = one
    todo = []                                  # the long runs first
    for part in ("full", "one"):
        for key in keys_:
            for plugin in (True, False):
                args = variant_args(stage, caps, key, plugin)
                if part == "one":
                    args[1] = str(ones[VARIANT[key][1]])
                todo.append((key, plugin, part, args))
    done = [0]
    lock = threading.Lock()

    def job(i):
        key, plugin, part, args = todo[i]
        label = "%s %s mailsec%s" % (key, "with" if plugin else "without", ", first frame only" if part == "one" else "")
        with lock:
            log("callgrind %s (%d of %d started)" % (label, i + 1, len(todo)))
        return callgrind_ir(stage, args, plugin, "callgrind tshark (%s)" % label, i)

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        futures = [ex.submit(job, i) for i in range(len(todo))]
        try:
            irs = [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    res = {}
    for (key, plugin, part, _), ir in zip(todo, irs):
        res.setdefault(key, {}).setdefault(plugin, {})[part] = ir
    for key, r in res.items():
        for plugin in (True, False):
            r[plugin]["per_frame"] = (r[plugin]["full"] - r[plugin]["one"]) / (frames[VARIANT[key][1]] - 1)
    return res


# ---------------------------------------------------------------- logins recovered

def imap_unquote(s):
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        return re.sub(r'\\(.)', r'\1', s[1:-1])
    return s


def norm_ip(ip):
    if not ip:
        return None
    try:
        return ipaddress.ip_address(str(ip).strip("[]")).compressed
    except ValueError:
        return str(ip)


def norm_proto(p):
    p = (p or "").strip().lower()
    return {"pop": "pop3", "pop3s": "pop3", "imaps": "imap", "smtps": "smtp", "submission": "smtp"}.get(p, p)


class Truth:
    """The ground truth, read as written by make_captures.py; secrets as the client sent them."""

    def __init__(self, path):
        self.logins = []
        try:
            lines = pathlib.Path(path).read_text().splitlines()
        except OSError as e:
            raise BenchError("cannot read %s: %s" % (path, e.strerror))
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except ValueError:
                raise BenchError("%s:%d is not JSON" % (path, n))
            if isinstance(r.get("auth"), list):      # one line per session, its logins in "auth"
                for a in r["auth"]:
                    self.logins.append(self._login(dict(r, **a)))
            else:                                     # one line per login
                self.logins.append(self._login(r))
        # peers cannot decrypt: a login in clear is matched before one inside TLS
        self.logins.sort(key=lambda l: l["tls"])
        self.has_ports = bool(self.logins) and all(l["client"][1] is not None and l["server"][1] is not None
                                                   for l in self.logins)
        self.has_ips = self.has_ports and all(l["client"][0] and l["server"][0] for l in self.logins)

    @staticmethod
    def _endpoint(r, side):
        ip, port = r.get(side + "_ip") or r.get(side + "_addr"), r.get(side + "_port")
        v = r.get(side)
        if isinstance(v, str) and ":" in v:             # "ip:port"
            ip, _, port = v.rpartition(":")
            ip = ip.strip("[]")
        elif isinstance(v, dict):
            ip, port = v.get("ip") or v.get("addr"), v.get("port")
        elif isinstance(v, (list, tuple)) and len(v) == 2:
            ip, port = v
        return (norm_ip(ip), int(port) if port not in (None, "") else None)

    def _login(self, r):
        mech = (r.get("mechanism") or "").upper()
        sends = r.get("sends_password")
        if sends is None:
            sends = mech in PASSWORD_MECHS
        secret = None
        if r.get("token"):
            secret = r["token"]
        elif sends and r.get("password") is not None:
            secret = r["password"]
        return {"proto": norm_proto(r.get("protocol") or r.get("proto")), "user": r.get("username"),
                "secret": secret, "tls": bool(r.get("tls")), "mech": mech,
                "client": self._endpoint(r, "client"), "server": self._endpoint(r, "server")}

    def conn(self, client, server):
        """The connection key at the detail both the truth and a tool give."""
        if not self.has_ports:
            return None
        ep = (lambda e: (e[0], e[1])) if self.has_ips else (lambda e: e[1])
        if client is None:
            return (ep(server),)
        return frozenset((ep(client), ep(server)))

    def key(self, l, server_only=False):
        return (l["proto"], self.conn(None if server_only else l["client"], l["server"]), l["user"], l["secret"])

    def with_secret(self):
        return [l for l in self.logins if l["user"] is not None and l["secret"] is not None]


def count_multiset(truth, found, server_only=False):
    """found: Counter of keys (proto, conn, user, secret); each truth login is matched at most once."""
    have = collections.Counter(found)
    rec = {"clear": 0, "all": 0}
    for l in truth.with_secret():
        k = truth.key(l, server_only)
        if have[k] > 0:
            have[k] -= 1
            rec["all"] += 1
            if not l["tls"]:
                rec["clear"] += 1
    return rec


def mailsec_found(truth, text):
    found = collections.Counter()
    for line in text.splitlines():
        f = line.split("\t")
        if len(f) < len(RECOVERY_FIELDS):
            continue
        src = (norm_ip(f[0] or f[1]), int(f[2]) if f[2].isdigit() else None)
        dst = (norm_ip(f[3] or f[4]), int(f[5]) if f[5].isdigit() else None)
        users = [u for u in f[6].split(AGG) if u]
        secrets = [s for s in f[7].split(AGG) + f[8].split(AGG) if s]
        if not users or not secrets:
            continue
        protos = [norm_proto(p) for p in f[10].split(AGG) if p] or [""]
        pairs = list(zip(users, secrets)) if len(users) == len(secrets) else \
            [(u, s) for u in users for s in secrets]
        conn = truth.conn(src, dst)
        for u, s in pairs:
            found[(protos[0], conn, u, s)] += 1
    return found


def _b64(s):
    try:
        return base64.b64decode(s + "=" * (-len(s) % 4), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None


def _candidates(line):
    """Strings a person would read as a user name or a secret in one line of a peer's output."""
    out = set()
    for br in re.findall(r"\[([^\]]*)\]", line):
        out.add(br)
        out.update(x for x in br.split("\0") if x)
    for tok in re.findall(r'"(?:[^"\\]|\\.)*"|\S+', line):
        out.add(tok)
        out.add(imap_unquote(tok))
        d = _b64(tok)
        if d:
            out.add(d)
            out.update(x for x in d.split("\0") if x)
    return out


def dsniff_found(truth, text):
    """dsniff: one block per connection, 'tcp A.port -> B.port (proto)', then what it decoded.
    A truth login of that connection counts when its user and its secret both appear in the block."""
    blocks, cur = [], None
    head = re.compile(r"^\S+ \S+ tcp (\S+)\.(\d+) -> (\S+)\.(\d+) \((\S+)\)\s*$")
    for line in text.splitlines():
        if line.startswith("-----------------"):
            cur = None
            continue
        m = head.match(line)
        if m:
            cur = {"client": (norm_ip(m.group(1)), int(m.group(2))), "server": (norm_ip(m.group(3)), int(m.group(4))),
                   "proto": norm_proto(m.group(5)), "cands": set()}
            blocks.append(cur)
        elif cur is not None and line.strip() and not re.match(r"^\(\d+\) ", line):
            cur["cands"] |= _candidates(line)
    found = collections.Counter()
    by_conn = collections.defaultdict(list)
    for b in blocks:
        by_conn[(b["proto"], truth.conn(b["client"], b["server"]))].append(b)
    for l in truth.with_secret():
        for b in by_conn.get((l["proto"], truth.conn(l["client"], l["server"])), []):
            if l["user"] in b["cands"] and l["secret"] in b["cands"]:
                found[truth.key(l)] += 1
                break
    return found, len(blocks)


def ettercap_count(truth, text):
    """Multiset match of ettercap's lines (each line at most one login)."""
    pat = re.compile(r"^(\w+)\s*:\s*(\S+):(\d+) -> USER: (.*?)  PASS: (.*?)(?:  INFO: .*)?\s*$")
    lines = []
    for line in text.splitlines():
        m = pat.match(line)
        if m:
            server = (norm_ip(m.group(2)), int(m.group(3)))
            readings = {(norm_proto(m.group(1)), truth.conn(None, server), u, s)
                        for u in {m.group(4), imap_unquote(m.group(4))}
                        for s in {m.group(5), imap_unquote(m.group(5))}}
            lines.append(readings)
    used = [False] * len(lines)
    index = collections.defaultdict(list)
    for i, readings in enumerate(lines):
        for k in readings:
            index[k].append(i)
    rec = {"clear": 0, "all": 0}
    for l in truth.with_secret():
        for i in index.get(truth.key(l, server_only=True), []):
            if not used[i]:
                used[i] = True
                rec["all"] += 1
                rec["clear"] += 0 if l["tls"] else 1
                break
    return rec, len(lines)


def install_peers(peers_wanted):
    missing = [pkg for pkg, binary in (("dsniff", "dsniff"), ("ettercap-text-only", "ettercap"))
               if not shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin:/bin")]
    notes = {}
    if not missing:
        return notes
    if os.geteuid() != 0:
        for pkg in missing:
            notes[pkg] = "not installed (installing needs root)"
        return notes
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log("installing %s" % " ".join(missing))
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing
    ok = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    if not ok:
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ok = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    for pkg in missing:
        binary = "dsniff" if pkg == "dsniff" else "ettercap"
        if not shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin:/bin"):
            notes[pkg] = "could not be installed with apt-get"
    return notes


def run_peer(stage, name, argv, timeout):
    log("running %s (timeout %g s)" % (name, timeout))
    out = stage.dir / "out" / ("%s.txt" % name)
    r = spawn(stage.argv(argv), out, timeout)
    text = out.read_text(errors="replace") if out.exists() else ""
    if r.timed_out:
        status = "timed out after %g s (output so far counted)" % timeout
    elif r.signal:
        status = "crashed (signal %d; output so far counted)" % r.signal
    elif r.rc != 0:
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        status = "exit status %d: %s" % (r.rc, lines[-1][:120] if lines else "")
    else:
        status = "ran to the end"
    return r, text, status


def recovery(stage, caps, args):
    truth = Truth(caps.truth)
    rows = []
    # mailsec
    out = stage.dir / "out" / "mailsec-fields.txt"
    cmd = ["-r", str(stage.readable(caps.mail)), "-o", "tls.keylog_file:%s" % stage.readable(caps.keys),
           "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=" + AGG]
    for f in RECOVERY_FIELDS:
        cmd += ["-e", f]
    log("logins recovered by mailsec")
    r = stage.tshark(cmd, True, out=out, what="tshark (logins, with mailsec)")
    rec = count_multiset(truth, mailsec_found(truth, out.read_text(errors="replace")))
    rows.append({"tool": "mailsec (tshark, TLS keys)", "rec": rec, "cpu": r.cpu, "wall": r.wall,
                 "status": "ran to the end"})
    if not args.peers:
        return truth, rows
    notes = install_peers(True)
    mail = stage.readable(caps.mail)
    with open(mail, "rb") as fh:
        magic = fh.read(4)
    if magic == b"\x0a\x0d\x0d\x0a":            # dsniff reads classic pcap only
        classic = stage.dir / "caps" / "mail-classic.pcap"
        p = subprocess.run(["editcap", "-F", "pcap", str(mail), str(classic)], capture_output=True, text=True)
        if p.returncode != 0:
            raise BenchError("editcap -F pcap failed: %s" % p.stderr.strip()[:200])
        os.chmod(classic, 0o644)
        mail = classic
    for tool, pkg, argv in (("dsniff", "dsniff", ["dsniff", "-n", "-p", str(mail)]),
                            ("ettercap", "ettercap-text-only", ["ettercap", "-Tq", "-r", str(mail)])):
        if pkg in notes:
            rows.append({"tool": tool, "rec": None, "cpu": None, "wall": None, "status": notes[pkg]})
            continue
        r, text, status = run_peer(stage, tool, argv, args.peer_timeout)
        if tool == "dsniff":
            found, n = dsniff_found(truth, text)
            rec = count_multiset(truth, found)
            status += "; %d connection blocks printed" % n
        else:
            rec, n = ettercap_count(truth, text)
            status += "; %d USER/PASS lines printed" % n
        rows.append({"tool": "%s (%s)" % (tool, " ".join(argv[:-1] + ["mail.pcap"])), "rec": rec,
                     "cpu": r.cpu, "wall": r.wall, "status": status})
    return truth, rows


# ---------------------------------------------------------------- report

def fmt_int(x):
    return "{:,}".format(int(round(x)))


def fmt_ratio(x):
    return "%.3fx" % x if x is not None else "n/a"


def med(rs, attr):
    return statistics.median(getattr(r, attr) for r in rs)


def table(head, rows):
    cells = [head] + [[str(c) for c in r] for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |"
    return "\n".join([line(head), "|" + "|".join("-" * (x + 2) for x in w) + "|"] + [line(r) for r in rows[0:]])


def verdict(ok):
    return "MET" if ok else "NOT MET"


def environment(plugin):
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = run_text(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]).strip() or "unknown"
    dirty = run_text(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"]).strip()
    tv = run_text(["tshark", "-v"]).splitlines()
    st = os.stat(plugin)
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "tshark": tv[0] if tv else "unknown", "cpu": "%s (%d cores)" % (cpu, os.cpu_count() or 0),
            "commit": commit + (" (work tree dirty: tracked files modified)" if dirty else " (clean work tree)"),
            "plugin": "%s, %d bytes, built %s" % (plugin, st.st_size, datetime.datetime.fromtimestamp(
                st.st_mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))}


def report(args, env, capinfo, timed, growth, cg, rec, elapsed):
    md = ["# mailsec cost benchmark", ""]
    md.append("Written by `python3 bench/bench.py%s`; every figure below was measured in this one run. "
              "Ratios are tshark with mailsec / tshark without it." % (" " + " ".join(args.argv) if args.argv else ""))
    md.append("")
    for k, v in (("Date", env["date"]), ("tshark", env["tshark"]), ("Plugin", env["plugin"]),
                 ("Commit", env["commit"]), ("CPU", env["cpu"]),
                 ("Run time", "%.1f min" % (elapsed / 60))):
        md.append("- %s: %s" % (k, v))
    md += ["", "## Captures", ""]
    rows = []
    for label, use, info in capinfo:
        ts = info.get("truth_summary") or {}
        sessions = ts.get("sessions") or ts.get("mail_sessions")
        rows.append([label, use, "%.1f MB" % (info["bytes"] / MB), fmt_int(info["frames"]),
                     fmt_int(info["tcp_sessions"]) + ("" if sessions is None else " (%s mail)" % fmt_int(sessions))])
    md.append(table(["capture", "used for", "size", "frames", "TCP sessions"], rows))

    md += ["", "## Variants", ""]
    md.append("Each run is `tshark -n -r CAPTURE ARGUMENTS`, as the user nobody, with the plugin folder "
              "holding only mailsec.so (with) or empty (without). Keys: `-o tls.keylog_file:mail.keys`.")
    md.append("")
    rows = []
    for key, which, keys, with_args, without, what in VARIANTS:
        base = "same" if without is None else "`%s` (mailsec.auth.username does not exist without mailsec)" \
            % " ".join(without)
        rows.append([key, what, "%s.pcap" % which, "yes" if keys else "no", "`%s`" % " ".join(with_args), base])
    md.append(table(["", "what", "capture", "keys", "arguments with mailsec", "without"], rows))

    targets = []
    md += ["", "## Instructions per frame (callgrind)", ""]
    if cg:
        md.append("(Ir of the capture - Ir of its first frame alone) / (frames - 1): start-up removed. "
                  "Capture: %s." % cg["label"])
        md.append("")
        rows = []
        for key, r in cg["res"].items():
            ratio = r[True]["per_frame"] / r[False]["per_frame"]
            r["ratio"] = ratio
            rows.append([key, fmt_int(r[True]["per_frame"]), fmt_int(r[False]["per_frame"]), fmt_ratio(ratio),
                         "%.1f M" % (r[True]["one"] / 1e6), "%.1f M" % (r[False]["one"] / 1e6)])
        md.append(table(["", "Ir/frame with", "Ir/frame without", "ratio", "start-up Ir with",
                         "start-up Ir without"], rows))
    else:
        md.append("Not measured (%s)." % ("--no-callgrind" if args.no_callgrind else "no variant selected"))
    for key, limit, stretch in (("A", 1.05, 1.03), ("B", 1.05, 1.03), ("F", 1.02, None)):
        r = cg["res"].get(key) if cg else None
        name = "instructions/frame %s <= %.2fx" % (key, limit)
        if r is None:
            targets.append([name, "not measured", "NOT MEASURED"])
            continue
        targets.append([name, fmt_ratio(r["ratio"]), verdict(r["ratio"] <= limit)])
        if stretch:
            targets.append(["  stretch: %s <= %.2fx" % (key, stretch), fmt_ratio(r["ratio"]),
                            verdict(r["ratio"] <= stretch)])

    md += ["", "## Time and memory", ""]
    md.append("Capture: %s; %d interleaved run%s each (with, without, with, ...). Wall and CPU (user+sys) "
              "time in seconds, min / median / max; ratios of medians. Peak RSS: median of ru_maxrss."
              % (timed["label"], args.runs, "" if args.runs == 1 else "s"))
    md.append("")
    rows = []
    for key, r in timed["res"].items():
        w, wo = r[True], r[False]
        mm = lambda rs, a: "%.2f / %.2f / %.2f" % (min(getattr(x, a) for x in rs), med(rs, a),
                                                   max(getattr(x, a) for x in rs))
        rows.append([key, mm(w, "wall"), mm(wo, "wall"), fmt_ratio(med(w, "wall") / med(wo, "wall")),
                     "%.2f" % med(w, "cpu"), "%.2f" % med(wo, "cpu"), fmt_ratio(med(w, "cpu") / med(wo, "cpu")),
                     "%.1f" % med(w, "rss_mb"), "%.1f" % med(wo, "rss_mb"),
                     fmt_ratio(med(w, "rss_mb") / med(wo, "rss_mb")), "%+.1f" % (med(w, "rss_mb") - med(wo, "rss_mb"))])
    md.append(table(["", "wall with", "wall without", "ratio", "CPU with", "CPU without", "ratio",
                     "RSS MB with", "RSS MB without", "ratio", "mailsec extra MB"], rows))
    a = timed["res"].get("A")
    if a:
        ratio = med(a[True], "rss_mb") / med(a[False], "rss_mb")
        name = "peak RSS A <= 1.05x on a >= 100 MB capture"
        if timed["size_mb"] >= 100:
            targets.append([name, fmt_ratio(ratio), verdict(ratio <= 1.05)])
        else:
            targets.append([name, "%s on %s MB" % (fmt_ratio(ratio), mbstr(timed["size_mb"])),
                            "NOT CHECKED (capture < 100 MB)"])

    md += ["", "## Memory growth", ""]
    md.append("Variant A on a capture and on one about ten times longer made of the same kind of sessions; "
              "peak RSS, median of the runs. mailsec's extra = RSS with - RSS without.")
    md.append("")
    rows = []
    for g in growth["caps"]:
        rows.append([g["label"], fmt_int(g["frames"]), str(g["runs"]), "%.1f" % g["with"], "%.1f" % g["without"],
                     "%+.1f" % g["extra"]])
    md.append(table(["capture", "frames", "runs", "RSS MB with", "RSS MB without", "mailsec extra MB"], rows))
    short, long_ = growth["caps"]
    fr = long_["frames"] / short["frames"]
    if short["extra"] > 0:
        gr = long_["extra"] / short["extra"]
        fig = "%.2fx for %.1fx the frames (%+.1f MB vs %+.1f MB)" % (gr, fr, long_["extra"], short["extra"])
        ok = gr <= 10
    else:
        fig = "no extra memory on the short capture (%+.1f MB); %+.1f MB on the long one" % (
            short["extra"], long_["extra"])
        ok = long_["extra"] <= 0
    md.append("")
    md.append("Growth: %s." % fig)
    targets.append(["memory growth: extra on 10x capture <= 10x extra", fig, verdict(ok)])

    md += ["", "## Logins recovered", ""]
    truth, rrows = rec
    ws = truth.with_secret()
    n_all, n_clear = len(ws), sum(1 for l in ws if not l["tls"])
    md.append("Capture: %s, %d logins in its ground truth, %d of which send a password or token "
              "(%d in clear, %d inside TLS; the others, such as CRAM-MD5 or SCRAM, send none). "
              "A login counts when the tool shows its user name and its password or token, on the same "
              "protocol%s. dsniff and ettercap cannot decrypt TLS: compare them on \"in clear\"."
              % (rec_label(args), len(truth.logins), n_all, n_clear, n_all - n_clear,
                 " and connection" if truth.has_ports else ""))
    md.append("")
    rows = []
    for r in rrows:
        if r["rec"] is None:
            rows.append([r["tool"], "-", "-", "-", "-", r["status"]])
            continue
        rc = r["rec"]
        per = rc["all"] / r["cpu"] if r["cpu"] else float("nan")
        rows.append([r["tool"], "%d / %d" % (rc["clear"], n_clear), "%d / %d" % (rc["all"], n_all),
                     "%.2f" % r["cpu"], "%.0f" % per, r["status"]])
    md.append(table(["tool", "in clear", "all", "CPU s", "logins per CPU-second", "run"], rows))
    md.append("")
    if not args.peers:
        md.append("Peers (dsniff, ettercap) not run: add --peers.")
    else:
        md.append("How the peers' output is read: dsniff prints one block per connection (client and server "
                  "address); a login of that connection counts when its user name and secret both appear in "
                  "the block, as printed, decoded from base64 or unquoted from IMAP; dsniff's lines of the "
                  "form `(N) text` are not credentials and are skipped. dsniff looks only at the first 1024 "
                  "bytes of each connection (its default -s). ettercap prints one `USER: PASS:` line per "
                  "login with the server's address only: each line matches at most one login of that "
                  "server, IMAP quoting removed; `{N}` literals are not a password.")

    md += ["", "## Targets", ""]
    md.append(table(["target", "figure", "verdict"], targets))
    md.append("")
    return "\n".join(md), targets


def rec_label(args):
    return "mail.pcap of %s MB" % mbstr(args.callgrind_size_mb)


# ---------------------------------------------------------------- main

def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="bench/bench.py", description="mailsec cost benchmark: tshark with the plugin against tshark "
        "without it, measured in the same run.")
    ap.add_argument("--plugin", default=os.environ.get("MAILSEC_PLUGIN", str(ROOT / "build" / "mailsec.so")),
                    help="the plugin to measure (default build/mailsec.so, or $MAILSEC_PLUGIN)")
    ap.add_argument("--size-mb", type=float, default=100, help="capture for time and RSS (default 100)")
    ap.add_argument("--callgrind-size-mb", type=float, default=20,
                    help="capture for callgrind, logins recovered and peers (default 20)")
    ap.add_argument("--growth-mb", type=float, nargs=2, default=[20, 200], metavar=("SHORT", "LONG"),
                    help="the two captures of the memory-growth check (default 20 200)")
    ap.add_argument("--growth-runs", type=int, default=2, help="runs of each side of the growth check (default 2)")
    ap.add_argument("--runs", type=int, default=5, help="interleaved timed runs of each variant (default 5)")
    ap.add_argument("--seed", type=int, default=1, help="seed given to make_captures.py (default 1)")
    ap.add_argument("--callgrind-variants", default=None,
                    help="which variants go under callgrind (default ABCDEF; A with --quick)")
    ap.add_argument("--variants", default="ABCDEF", help="which variants are timed (default ABCDEF)")
    ap.add_argument("--callgrind-jobs", type=int, default=1,
                    help="callgrind runs side by side (default 1; counts do not depend on the load)")
    ap.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts")
    ap.add_argument("--peers", action="store_true",
                    help="also run dsniff and ettercap (installed with apt-get when missing, as root only)")
    ap.add_argument("--peer-timeout", type=float, default=900, help="seconds each peer may take (default 900)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test of this script: tiny captures, 1 run, callgrind on variant A only")
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"), help="Markdown report (default bench/RESULTS.md)")
    ap.add_argument("--work", default="/var/tmp/mailsec-bench",
                    help="where captures are generated and kept (default /var/tmp/mailsec-bench)")
    args = ap.parse_args(argv)
    args.argv = argv
    if args.quick:
        args.size_mb, args.callgrind_size_mb, args.growth_mb, args.runs, args.growth_runs = 2, 1, [1, 10], 1, 1
        if args.callgrind_variants is None:
            args.callgrind_variants = "A"
    if args.callgrind_variants is None:
        args.callgrind_variants = "ABCDEF"
    for name in ("variants", "callgrind_variants"):
        v = getattr(args, name).upper()
        if not v or any(c not in VARIANT for c in v):
            ap.error("--%s takes letters among ABCDEF" % name.replace("_", "-"))
        setattr(args, name, "".join(k for k in "ABCDEF" if k in v))
    if "A" not in args.variants:
        ap.error("--variants must include A (peak RSS target)")
    if args.runs < 1 or args.growth_runs < 1 or args.callgrind_jobs < 1:
        ap.error("--runs, --growth-runs and --callgrind-jobs must be at least 1")
    if min([args.size_mb, args.callgrind_size_mb] + args.growth_mb) <= 0:
        ap.error("capture sizes must be positive")
    return args


def check_tools(args):
    need = ["tshark", "editcap", "capinfos", "git"]
    if os.geteuid() == 0:
        need.append("setpriv")
    if not args.no_callgrind:
        need.append("valgrind")
    for t in need:
        if not shutil.which(t):
            raise BenchError("%s not found (apt-get install %s)" % (
                t, {"valgrind": "valgrind", "setpriv": "util-linux", "git": "git"}.get(t, "tshark")))


def check_plugin_loads(stage):
    for plugin in (True, False):
        out = stage.dir / "out" / "fields.txt"
        stage.tshark(["-G", "fields"], plugin, out=out, what="tshark -G fields")
        has = "\tmailsec.auth.username\t" in out.read_text(errors="replace")
        if has != plugin:
            raise BenchError("tshark %s the mailsec plugin %s" % (
                "does not load" if plugin else "still loads", "from the stage" if plugin else "without it"))


def main(argv):
    args = parse_args(argv)
    t_start = time.time()
    plugin = pathlib.Path(args.plugin).resolve()
    if not plugin.is_file():
        raise BenchError("plugin not found: %s (build it: cmake -S . -B build && cmake --build build -j2)" % plugin)
    check_tools(args)
    env = environment(plugin)
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    stage = Stage(plugin)
    try:
        check_plugin_loads(stage)
        need_other = any(VARIANT[k][1] == "other" for k in args.variants)
        need_other_cg = not args.no_callgrind and any(VARIANT[k][1] == "other" for k in args.callgrind_variants)
        main_caps = Captures(work, args.size_mb, args.seed, ["mail"] + (["other"] if need_other else []))
        cg_caps = Captures(work, args.callgrind_size_mb, args.seed, ["mail"] + (["other"] if need_other_cg else []))
        g_caps = [Captures(work, mb, args.seed, ["mail"]) for mb in args.growth_mb]

        capinfo, seen = [], {}

        def info(caps, which, use):
            k = (str(caps.dir), which)
            if k not in seen:
                seen[k] = caps.info(stage, which)
                capinfo.append(["%s/%s.pcap" % (caps.dir.name, which), use, seen[k]])
            else:
                for row in capinfo:
                    if row[0] == "%s/%s.pcap" % (caps.dir.name, which):
                        row[1] += ", " + use
            return seen[k]

        log("reading capture details")
        info(main_caps, "mail", "time, RSS")
        if need_other:
            info(main_caps, "other", "time, RSS (F)")

        # time, CPU, RSS
        timed = {"label": "%s MB (%s)" % (mbstr(args.size_mb), main_caps.dir.name), "size_mb": args.size_mb,
                 "res": timed_runs(stage, main_caps, args.variants, args.runs)}

        # memory growth
        growth = {"caps": []}
        for caps in g_caps:
            gi = info(caps, "mail", "memory growth")
            if caps.dir == main_caps.dir:          # already measured above
                res = timed["res"]["A"]
            else:
                res = timed_runs(stage, caps, "A", args.growth_runs)["A"]
            w, wo = med(res[True], "rss_mb"), med(res[False], "rss_mb")
            growth["caps"].append({"label": "%s/mail.pcap" % caps.dir.name, "frames": gi["frames"],
                                   "runs": len(res[True]), "with": w, "without": wo, "extra": w - wo})

        # callgrind
        cg = None
        if not args.no_callgrind:
            frames = {"mail": info(cg_caps, "mail", "callgrind")["frames"]}
            if need_other_cg:
                frames["other"] = info(cg_caps, "other", "callgrind (F)")["frames"]
            cg = {"label": "%s MB (%s)" % (mbstr(args.callgrind_size_mb), cg_caps.dir.name),
                  "res": callgrind_runs(stage, cg_caps, args.callgrind_variants, frames, args.callgrind_jobs)}

        # logins recovered
        info(cg_caps, "mail", "logins recovered" + (", peers" if args.peers else ""))
        rec = recovery(stage, cg_caps, args)

        text, targets = report(args, env, capinfo, timed, growth, cg, rec, time.time() - t_start)
    finally:
        stage.cleanup()
    print(text)
    out = pathlib.Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    except OSError as e:
        raise BenchError("cannot write %s: %s" % (out, e.strerror))
    met = sum(1 for t in targets if t[2] == "MET")
    print("\nSummary: %d of %d targets met%s; report written to %s (%.1f min)." % (
        met, len(targets), "" if met == len(targets) else " (" + "; ".join(
            "%s: %s" % (t[0].strip(), t[2]) for t in targets if t[2] != "MET") + ")",
        out, (time.time() - t_start) / 60))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        print("bench: error: %s" % e, file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:                       # no traceback: one line
        print("bench: error: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
