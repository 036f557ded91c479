#!/usr/bin/env python3
"""mailsec's main job: load the plugin into the real tshark and print, for each
mail session of each capture, what an analyst asks first, and mailsec's alerts.

    report.py --plugin build/mailsec.so [--keylog FILE] [--export DIR] [--json] [CAPTURE|DIR ...]
    report.py --plugin build/mailsec.so CAPTURE KEYLOG

run.sh calls it as `report.py --prog run.sh [--check | --plugin SO] -- ARGS`:
the user's arguments come after `--`, so they can never set --plugin, and
messages name run.sh. --check validates the arguments without the plugin (no
tshark run on a file that looks like a capture), so a typo fails before the
slow install and build.

An argument is classified by its content, not its name: a capture by its
magic (pcap, pcapng, gzip; anything else is left to tshark's verdict), a TLS
key log by its lines (NSS key log labels and # comments). A key log applies
to the capture (or directory) just before it. A directory means every
*.pcap / *.pcapng below it, sorted, each with NAME.keys or NAME.keylog beside
it. Without a capture: the bundled real-server captures (captures/real).

tshark ignores plugin folders when run as root, so as root it runs tshark as
the unprivileged user nobody, from a world-readable staged copy of the plugin
and of each input.

Exit status: 0 every capture analysed, 1 some capture could not be analysed,
2 usage error (bad option, missing or invalid key log, nothing to analyse),
3 set-up failed (tshark missing, the plugin missing or not loaded).
"""
import collections
import errno
import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "captures" / "real"

OK, FAILED, USAGE, SETUP = 0, 1, 2, 3

# The first bytes of the files tshark reads that we accept without asking it.
CAPTURE_MAGIC = (b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1",
                 b"\x0a\x0d\x0d\x0a", b"\x1f\x8b")
# What a directory holds (NAME.pcap.gz pairs with NAME.keys like NAME.pcap).
CAPTURE_SUFFIXES = (".pcapng.gz", ".pcap.gz", ".pcapng", ".pcap")
KEYLOG_SUFFIXES = (".keys", ".keylog")
# The NSS key log labels Wireshark's TLS dissector reads.
KEYLOG_LABELS = {"CLIENT_RANDOM", "CLIENT_EARLY_TRAFFIC_SECRET", "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                 "SERVER_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0",
                 "EARLY_EXPORTER_SECRET", "EXPORTER_SECRET", "RSA", "PMS_CLIENT_RANDOM"}
# A name a user gives a key log; decides what a missing or unreadable file was meant to be.
KEYLOG_NAME = re.compile(r"(\.keys?$|\.keylog$|keylog|sslkey|secrets|(^|[._-])keys?([._-]|$))", re.I)
KEYLOG_SNIFF = 1 << 20
SEVERITIES = ("error", "warning", "note")  # shown; "chat" is not

FIELDS = ["tcp.stream", "frame.number", "ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst",
          "tcp.dstport", "mailsec.proto", "mailsec.detected_by", "mailsec.transport",
          "mailsec.direction", "mailsec.decrypted", "mailsec.starttls.offered",
          "mailsec.starttls.command", "mailsec.starttls.result", "mailsec.starttls.boundary",
          "mailsec.starttls.cleartext_bytes", "mailsec.starttls.injected",
          "mailsec.auth.attempt", "mailsec.auth.mechanism", "mailsec.auth.username",
          "mailsec.auth.password", "mailsec.auth.hash", "mailsec.auth.token", "mailsec.auth.material",
          "mailsec.auth.result", "mailsec.auth.exposed",
          "mailsec.enum.command", "mailsec.enum.verdict", "mailsec.msg.count", "mailsec.msg.rcpt_count",
          "mailsec.msg.attachment", "mailsec.msg.deleted", "mailsec.msg.expunged", "mailsec.msg.source",
          "mailsec.msg.sha256", "mailsec.msg.size", "mailsec.msg.truncated", "mailsec.msg.mail_from",
          "mailsec.msg.rcpt_to", "mailsec.session.auth_user", "mailsec.tls.version", "mailsec.enum.target",
          "mailsec.reply.time", "mailsec.reply.command",
          # Wireshark's own view of the line: TCP trouble
          "tcp.analysis.retransmission", "tcp.analysis.duplicate_ack", "tcp.analysis.zero_window",
          "tcp.flags.reset"]
# Fields that occur several times on one frame, counted whole (the rest: first occurrence).
LIST_FIELDS = ("mailsec.enum.command", "mailsec.enum.verdict", "mailsec.msg.attachment", "mailsec.msg.source",
               "mailsec.msg.count", "mailsec.msg.expunged", "mailsec.msg.sha256", "mailsec.msg.size",
               "mailsec.msg.truncated", "mailsec.msg.rcpt_to", "mailsec.enum.target", "mailsec.reply.time",
               "mailsec.reply.command")
# Generated on each alert, in the same order on a frame (see README, Expert info).
ALERT_FIELDS = ["mailsec.alert", "mailsec.alert.name", "mailsec.alert.severity"]
# mailsec's frames, and the frames of Wireshark's TCP trouble counts that come before
# mailsec recognised a session (a retransmitted SYN of a session found by content).
DISPLAY_FILTER = ("mailsec || tcp.analysis.retransmission || tcp.analysis.duplicate_ack"
                  " || tcp.analysis.zero_window || tcp.flags.reset == 1")
# Joins the occurrences of a field: a control byte, which tshark and mailsec escape in values.
AGGREGATOR = "\x1f"
# A capture that takes longer than this says so on stderr, and again every PROGRESS_EVERY seconds.
PROGRESS_AFTER = float(os.environ.get("MAILSEC_PROGRESS_AFTER", "5"))
PROGRESS_EVERY = 10.0

PROG = "report.py"
# --export DIR: where the messages go, one folder per capture (None: no export)
OPTIONS = {"export": None, "json": False, "db": None, "jobs": None, "sshlogin": []}


class Usage(Exception):
    """A mistake in the arguments: nothing is analysed (exit 2)."""


class Help(Exception):
    """-h or --help."""


class Setup(Exception):
    """tshark or the plugin is not usable (exit 3)."""


def shown(text):
    """text safe for one line of a terminal: control bytes and undecodable bytes escaped."""
    out = []
    for ch in str(text):
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:                       # a byte that was not UTF-8 (surrogateescape)
            out.append("\\x%02x" % (o - 0xDC00))
        elif o < 0x20 or 0x7F <= o < 0xA0:
            out.append("\\x%02x" % o)
        else:
            out.append(ch)
    return "".join(out)


def say(msg):
    """One line on stderr, after whatever stdout already holds."""
    sys.stdout.flush()
    sys.stderr.write("%s: %s\n" % (PROG, msg))
    sys.stderr.flush()


# ---------------------------------------------------------------- arguments

class Input:
    """One capture to analyse, or the reason it cannot be."""

    def __init__(self, path, label, keylogs=(), error=None):
        self.path = path            # pathlib.Path, as the user gave it (relative to the cwd)
        self.label = label          # how the report names it
        self.keylogs = list(keylogs)
        self.error = error          # one line, or None
        self.undecided = False      # no capture magic: tshark decides
        self.sessions = 0           # mail sessions found


def option_value(args, i, a, name, what):
    """The value of option a (`NAME VALUE` or `NAME=VALUE`) and the index after it."""
    if a == name:
        if i >= len(args):
            raise Usage("%s needs a %s (see %s --help)" % (name, what, PROG))
        a, i = args[i], i + 1
    else:
        a = a[len(name) + 1:]
    if not a:
        raise Usage("%s needs a %s (see %s --help)" % (name, what, PROG))
    return a, i


def parse(args):
    """(--keylog files, other arguments) from the user's arguments; Help or Usage."""
    global_keylogs, positional, only_files = [], [], False
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if only_files or a == "-" or not a.startswith("-"):
            if a == "-":
                raise Usage("-: reading a capture from standard input is not supported; give a file")
            positional.append(a)
        elif a == "--":
            only_files = True
        elif a in ("-h", "--help"):
            raise Help()
        elif a == "--export" or a.startswith("--export="):
            a, i = option_value(args, i, a, "--export", "DIR")
            if os.path.exists(a) and not os.path.isdir(a):
                raise Usage("%s: --export needs a directory, this is a file" % shown(a))
            OPTIONS["export"] = pathlib.Path(a)
        elif a == "--json":
            OPTIONS["json"] = True
        elif a == "--db" or a.startswith("--db="):
            a, i = option_value(args, i, a, "--db", "FILE")
            if os.path.isdir(a):
                raise Usage("%s: --db needs a file (a SQLite database), this is a directory" % shown(a))
            OPTIONS["db"] = pathlib.Path(a)
        elif a == "--jobs" or a.startswith("--jobs="):
            a, i = option_value(args, i, a, "--jobs", "number")
            if not a.isdigit() or int(a) < 1:
                raise Usage("--jobs needs a number of 1 or more, not %s" % shown(a))
            OPTIONS["jobs"] = int(a)
        elif a == "--sshlogin" or a.startswith("--sshlogin="):
            a, i = option_value(args, i, a, "--sshlogin", "login (GNU parallel's --sshlogin)")
            OPTIONS["sshlogin"].append(a)
        elif a == "--keylog" or a.startswith("--keylog="):
            a, i = option_value(args, i, a, "--keylog", "FILE")
            global_keylogs.append(a)
        else:
            raise Usage("%s: unknown option (see %s --help)" % (shown(a), PROG))
    if (OPTIONS["jobs"] or OPTIONS["sshlogin"]) and not OPTIONS["db"]:
        raise Usage("--jobs and --sshlogin go with --db (see %s --help)" % PROG)
    if OPTIONS["db"] and (OPTIONS["json"] or OPTIONS["export"]):
        raise Usage("--db loads the JSON itself; it does not go with --json or --export")
    return global_keylogs, positional


def sniff(path):
    """('capture' | 'keylog' | 'other' | 'empty', None) or (None, error message) for a file."""
    try:
        if not os.path.exists(path) and not os.path.islink(path):
            return None, "no such file"
        st = os.stat(path)
        if os.path.isdir(path):
            return "dir", None
        if not os.path.isfile(path):
            return None, "not a regular file"
        with open(path, "rb") as fh:
            head = fh.read(4)
            if not head:
                return "empty", None
            if any(head.startswith(m) for m in CAPTURE_MAGIC):
                return "capture", None
            head += fh.read(KEYLOG_SNIFF - len(head))
    except OSError as e:
        return None, os_error(e)
    if is_keylog(head, complete=st.st_size <= len(head)):
        return "keylog", None
    return "other", None


def os_error(e):
    if e.errno == errno.ENOENT:
        return "no such file"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return (e.strerror or str(e)).lower()


def is_keylog(head, complete):
    """Every line an NSS key log line or a comment, and at least one key line."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        return False
    lines = text.splitlines()
    if not complete and lines:
        lines.pop()                                     # cut by the sniff limit
    keys = 0
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        tok = line.split()
        if tok[0] not in KEYLOG_LABELS or len(tok) < 2:
            return False
        if tok[0] == "RSA" and tok[1].startswith("Session-ID:"):
            keys += 1
            continue
        if len(tok) != 3 or not all(re.fullmatch(r"[0-9a-fA-F]+", t) for t in tok[1:]):
            return False
        keys += 1
    return keys > 0


def looks_like_keylog_name(arg):
    name = os.path.basename(arg.rstrip("/")) or arg
    if name.lower().endswith(CAPTURE_SUFFIXES + (".cap", ".gz")):
        return False
    return bool(KEYLOG_NAME.search(name))


def check_keylog(arg):
    """The key log the user named, or Usage."""
    kind, err = sniff(arg)
    if err == "no such file":
        raise Usage("%s: key log not found" % shown(arg))
    if err:
        raise Usage("%s: %s" % (shown(arg), err))
    if kind == "dir":
        raise Usage("%s: is a directory, not a TLS key log" % shown(arg))
    if kind != "keylog":
        raise Usage("%s: not a TLS key log" % shown(arg))
    return pathlib.Path(arg)


def captures_below(top):
    """(capture, its key log or None) for every capture below top, sorted; errors as they come."""
    found, errors = [], []

    def onerror(e):
        errors.append((e.filename, os_error(e)))

    for d, dirs, files in os.walk(top, onerror=onerror):
        dirs.sort()
        names = set(files)
        for f in sorted(files):
            suffix = next((s for s in CAPTURE_SUFFIXES if f.lower().endswith(s)), None)
            if not suffix:
                continue
            stem = f[:-len(suffix)]
            keys = next((os.path.join(d, stem + k) for k in KEYLOG_SUFFIXES if stem + k in names), None)
            found.append((os.path.join(d, f), keys))
    return found, errors


def plan(args):
    """The inputs, in order. Usage for anything that makes the whole command wrong."""
    global_keylog_args, positional = parse(args)
    global_keylogs = [check_keylog(a) for a in global_keylog_args]
    if not positional:
        if global_keylogs:
            raise Usage("--keylog needs a capture to go with (see %s --help)" % PROG)
        inputs = []
        for cap in sorted(BUNDLED.glob("*.pcapng")):
            keys = cap.with_suffix(".keys")
            inputs.append(Input(cap, cap.name, [keys] if keys.exists() else []))
        if not inputs:
            raise Usage("no capture given and none bundled in %s" % BUNDLED)
        return inputs

    # Group each argument with the key logs that follow it.
    groups = []                                         # [argument, kind, error, [key logs]]
    for a in positional:
        kind, err = sniff(a)
        if kind == "keylog":
            if not groups:
                raise Usage("%s: a key log must follow its capture (or use --keylog FILE)" % shown(a))
            groups[-1][3].append(pathlib.Path(a))
            continue
        if looks_like_keylog_name(a) and kind not in ("capture", "dir"):
            # Meant as a key log (by its name) but is not one.
            if err == "no such file":
                raise Usage("%s: key log not found" % shown(a))
            raise Usage("%s: %s" % (shown(a), err or ("empty file" if kind == "empty" else "not a TLS key log")))
        groups.append([a, kind, err, []])

    inputs = []
    for a, kind, err, keylogs in groups:
        keylogs = global_keylogs + keylogs
        if kind == "dir":
            found, errors = captures_below(a)
            if not found and not errors:
                raise Usage("%s: no capture in this directory (looked for %s)"
                            % (shown(a), ", ".join("*" + s for s in CAPTURE_SUFFIXES)))
            for path, e in errors:
                inputs.append(Input(pathlib.Path(path), path, error=e))
            for cap, keys in found:
                inp = Input(pathlib.Path(cap), cap, keylogs)
                inputs.append(inp)
                if keys:
                    k, kerr = sniff(keys)
                    if kerr or k != "keylog":
                        inp.error = "its key log %s: %s" % (
                            shown(os.path.basename(keys)),
                            kerr or ("empty file" if k == "empty" else "not a TLS key log"))
                        continue
                    inp.keylogs.append(pathlib.Path(keys))
                vet(inp)
            continue
        inp = Input(pathlib.Path(a), a, keylogs, error=err)
        if not err:
            vet(inp, kind)
        inputs.append(inp)
    return inputs


def vet(inp, kind=None):
    """Mark what is known of a capture before tshark reads it."""
    if kind is None:
        kind, inp.error = sniff(inp.path)
        if inp.error:
            return
    if kind == "empty":
        inp.error = "empty file"
    elif kind == "keylog":
        inp.error = "a TLS key log, not a capture"
    elif kind != "capture":
        inp.undecided = True


# ---------------------------------------------------------------- tshark

def tshark_env(home, plugins):
    return ["HOME=%s" % home, "TZ=UTC", "LC_ALL=C.UTF-8", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "WIRESHARK_PLUGIN_DIR=%s" % plugins]


def tshark_verdict(inputs):
    """For files without capture magic, tshark (no plugin needed) says whether it reads them."""
    if not shutil.which("tshark", path="/usr/sbin:/usr/bin:/sbin:/bin"):
        return                                          # not installed yet: decided after set-up
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="mailsec-check-"))
    try:
        (tmp / "plugins").mkdir()
        for inp in inputs:
            if inp.error or not inp.undecided:
                continue
            proc = subprocess.run(["env", "-i"] + tshark_env(tmp, tmp / "plugins")
                                  + ["tshark", "-n", "-c", "1", "-r", str(inp.path.resolve()),
                                     "-T", "fields", "-e", "frame.number"],
                                  capture_output=True, stdin=subprocess.DEVNULL)
            err = proc.stderr.decode("utf-8", "replace")
            if "isn't a capture file" in err:
                inp.error = "not a capture file"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class Stage:
    """A world-readable folder with the plugin and, one at a time, a copy of each input."""

    def __init__(self, plugin):
        if not os.path.isfile(plugin):
            raise Setup("%s: plugin not built" % shown(plugin))
        if not shutil.which("tshark", path="/usr/sbin:/usr/bin:/sbin:/bin"):
            raise Setup("tshark is not installed (apt-get install tshark)")
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="mailsec-run-"))
        epan = self.dir / "plugins" / "4.0" / "epan"
        epan.mkdir(parents=True)
        (self.dir / "home").mkdir()
        (self.dir / "in").mkdir()
        shutil.copyfile(plugin, epan / "mailsec.so")
        for d, _, files in os.walk(self.dir):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(os.path.join(d, f), 0o644)
        os.chmod(self.dir / "home", 0o777)
        self.out = self.dir / "out"                     # tshark --export-objects writes here
        self.out.mkdir()
        os.chmod(self.out, 0o777)
        self.plugin = plugin

    def invoke(self, args, label=None):
        """(rc, stdout, stderr) of tshark; with a label, a line on stderr every
        PROGRESS_EVERY seconds while it runs longer than PROGRESS_AFTER."""
        env = tshark_env(self.dir / "home", self.dir / "plugins")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        proc = subprocess.Popen(prefix + ["env", "-i"] + env + ["tshark"] + args, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd="/", stdin=subprocess.DEVNULL)
        started, wait = time.monotonic(), PROGRESS_AFTER
        while True:
            try:
                out, err = proc.communicate(timeout=wait if label else None)
                break
            except subprocess.TimeoutExpired:
                say("%s: still analysing (%d s)" % (shown(label), time.monotonic() - started))
                wait = PROGRESS_EVERY
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def fields(self):
        """The field abbreviations tshark knows with the plugin; Setup if it did not load."""
        rc, out, err = self.invoke(["-G", "fields"])
        names = {row.split("\t")[2] for row in out.splitlines() if row.count("\t") >= 2}
        if rc != 0 or "mailsec" not in names:
            why = next((l for l in err.splitlines() if l.strip()), "")
            raise Setup("tshark did not load the plugin %s%s" % (shown(self.plugin), ": " + shown(why) if why else ""))
        return names

    def copy(self, src, name):
        dst = self.dir / "in" / name
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o644)
        return dst

    def run(self, inp, args):
        """(rc, stdout, stderr) of tshark on a copy of the capture with its key logs."""
        suffix = "".join(inp.path.suffixes[-2:]) if inp.path.suffix == ".gz" else inp.path.suffix
        cap = "capture" + re.sub(r"[^A-Za-z0-9.]", "_", suffix)
        try:
            cmd = ["-n", "-r", str(self.copy(inp.path, cap))]
            if inp.keylogs:
                keys = self.dir / "in" / "keys"
                with open(keys, "wb") as dst:
                    for k in inp.keylogs:
                        with open(k, "rb") as fh:
                            shutil.copyfileobj(fh, dst)
                        dst.write(b"\n")
                os.chmod(keys, 0o644)
                cmd += ["-o", "tls.keylog_file:%s" % keys]
            rc, out, err = self.invoke(cmd + args, label=inp.label)
        finally:
            for f in (self.dir / "in").iterdir():
                f.unlink()
        return rc, out, err.replace(str(self.dir / "in" / cap), str(inp.path))

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def tshark_problem(rc, err):
    """(fatal message or None, note or None) from tshark's exit code and stderr."""
    lines = [l for l in err.splitlines() if l.strip() and not l.startswith("Running as user")]
    text = " ".join(lines)
    if "isn't a capture file" in text:
        return "not a capture file", None
    if "aren't valid" in text or "neither a field nor a protocol" in text:
        raise Setup("tshark rejected the plugin's fields: %s" % shown(text))
    m = re.search(r"appears to be damaged or corrupt\.?\s*(\((.*)\))?", text)
    if m:
        detail = " (%s)" % m.group(2) if m.group(2) else ""
        return None, "damaged or corrupt%s; what could be read is reported" % detail
    if "cut short in the middle of a packet" in text:
        return None, "cut short in the middle of a packet; what could be read is reported"
    if rc != 0:
        first = lines[0] if lines else "tshark exited with status %d" % rc
        return re.sub(r"^tshark: ", "", first), None
    return None, None


# ---------------------------------------------------------------- the report

def sessions(rows, with_alerts):
    """{stream: [frame dict]}, {stream: [(frame, severity, name, message)]}, and
    {stream: [frame dict]} of the frames without mailsec that TCP trouble let in."""
    names = FIELDS + (ALERT_FIELDS if with_alerts else [])
    by, alerts, other = collections.OrderedDict(), collections.defaultdict(list), collections.defaultdict(list)
    for line in rows:
        cols = line.split("\t")
        if len(cols) != len(names):
            continue
        all_values = dict(zip(names, cols))
        r = {k: v.split(AGGREGATOR)[0] for k, v in all_values.items()}
        for k in LIST_FIELDS:
            r[k + "[]"] = [v for v in all_values[k].split(AGGREGATOR) if v]
        if not r["mailsec.proto"]:
            other[r["tcp.stream"]].append(r)
            continue
        by.setdefault(r["tcp.stream"], []).append(r)
        if with_alerts and all_values["mailsec.alert"]:
            msgs = all_values["mailsec.alert"].split(AGGREGATOR)
            abbrs = all_values["mailsec.alert.name"].split(AGGREGATOR)
            sevs = all_values["mailsec.alert.severity"].split(AGGREGATOR)
            for msg, abbr, sev in zip(msgs, abbrs, sevs):
                alerts[r["tcp.stream"]].append((int(r["frame.number"] or 0), sev, abbr, msg))
    return by, alerts, other


def yes(v):
    return v in ("1", "True")


def columns_endpoints(frames):
    """CLIENT -> SERVER, from the first frame sent to the server (else the first frame's reverse)."""
    src = lambda r: (r["ip.src"] or "[%s]" % r["ipv6.src"]) + ":" + r["tcp.srcport"]
    dst = lambda r: (r["ip.dst"] or "[%s]" % r["ipv6.dst"]) + ":" + r["tcp.dstport"]
    to_server = next((r for r in frames if r["mailsec.direction"] == "to-server"), None)
    if to_server:
        return "%s -> %s" % (src(to_server), dst(to_server))
    return "%s -> %s" % (dst(frames[0]), src(frames[0]))


def columns(frames, other=()):
    """The session line's columns: stream, endpoints, protocol, transport, how detected, notes.
    other: the stream's frames mailsec did not mark (before it recognised the session)."""
    last = frames[-1]
    transport = last["mailsec.transport"]
    notes = []
    boundary = next((r for r in frames if r["mailsec.starttls.boundary"]), None)
    if boundary:
        notes.append("TLS after frame %s, %s bytes in clear before it"
                     % (boundary["mailsec.starttls.boundary"], boundary["mailsec.starttls.cleartext_bytes"]))
    offered = any(yes(r["mailsec.starttls.offered"]) for r in frames)
    requested = any(yes(r["mailsec.starttls.command"]) for r in frames)
    result = next((r["mailsec.starttls.result"] for r in frames if r["mailsec.starttls.result"]), "")
    if offered and not requested and transport == "cleartext":
        notes.append("STARTTLS offered but not used")
    if result == "refused":
        notes.append("STARTTLS refused")
    if any(r["mailsec.starttls.injected"] for r in frames):
        notes.append("PLAINTEXT INJECTED AROUND STARTTLS")
    if transport != "cleartext":
        n = sum(yes(r["mailsec.decrypted"]) for r in frames)
        notes.append("%d frame%s decrypted" % (n, "" if n == 1 else "s") if n else "not decrypted (no keys)")
    version = tls_version(frames)
    if version:
        notes.append(version)
    logins = describe_logins(frames)
    if logins:
        notes.append(logins)
    notes += describe_mail(frames)
    trouble = tcp_trouble(list(frames) + list(other))
    if any(trouble.values()):
        notes.append("TCP: " + ", ".join("%d %s" % (n, TROUBLE_NAMES[k][n != 1]) for k, n in trouble.items() if n))
    slow = slowest_reply(frames)
    if slow:
        notes.append("slowest reply %.3f s%s (frame %d)" % (slow[0], " to " + slow[1] if slow[1] else "", slow[2]))
    return ["stream %s" % frames[0]["tcp.stream"], columns_endpoints(frames), last["mailsec.proto"],
            transport, "detected by %s" % last["mailsec.detected_by"], "; ".join(notes)]


TROUBLE_NAMES = {"retransmissions": ("retransmission", "retransmissions"),
                 "duplicate_acks": ("duplicate ACK", "duplicate ACKs"),
                 "zero_windows": ("zero window", "zero windows"), "resets": ("reset", "resets")}


def tls_version(frames):
    return next((r["mailsec.tls.version"] for r in frames if r["mailsec.tls.version"]), "")


def tcp_trouble(frames):
    """Wireshark's own TCP analysis of the session's frames."""
    return {"retransmissions": sum(yes(r["tcp.analysis.retransmission"]) for r in frames),
            "duplicate_acks": sum(yes(r["tcp.analysis.duplicate_ack"]) for r in frames),
            "zero_windows": sum(yes(r["tcp.analysis.zero_window"]) for r in frames),
            "resets": sum(yes(r["tcp.flags.reset"]) for r in frames)}


def slowest_reply(frames):
    """(seconds, the command it answered or "", frame) of the server's slowest reply, or None."""
    best = None
    for r in frames:
        times = r["mailsec.reply.time[]"]
        # a reply to no command has no time, and its label is "(greeting)", "(none)" ...
        cmds = [c for c in r["mailsec.reply.command[]"] if not c.startswith("(")]
        for i, t in enumerate(times):
            try:
                sec = float(t)
            except ValueError:
                continue
            cmd = cmds[i] if len(cmds) == len(times) else ""
            if best is None or sec > best[0]:
                best = (sec, cmd, int(r["frame.number"] or 0))
    return best


NOTHING_REUSABLE = ("SCRAM-", "GSSAPI")


def exposure(a):
    """What an eavesdropper got from a login that crossed in clear."""
    if a.get("password"):
        return "password in clear"
    if a.get("token"):
        return "token in clear"
    if (a.get("hash") or a.get("material")) and not a["mech"].upper().startswith(NOTHING_REUSABLE):
        return "crackable hash in clear"
    return "in clear, nothing reusable"


def login_attempts(frames):
    """[{attempt, frame, mech, user, exposed, password, token, hash, material, result}] in order."""
    attempts = collections.OrderedDict()
    for r in frames:
        n = r["mailsec.auth.attempt"]
        if not n:
            continue
        a = attempts.setdefault(n, {"attempt": int(n), "result": "unknown", "frame": None})
        if r["mailsec.auth.result"]:
            a["result"] = r["mailsec.auth.result"]
        else:
            a["frame"] = int(r["frame.number"] or 0)
            a["mech"] = r["mailsec.auth.mechanism"]
            a["user"] = r["mailsec.auth.username"] or "?"
            a["exposed"] = yes(r["mailsec.auth.exposed"])
            for k in ("password", "token", "hash", "material"):
                a[k] = r["mailsec.auth." + k]
        a.setdefault("mech", r["mailsec.auth.mechanism"] or "?")
        a.setdefault("user", r["mailsec.auth.username"] or "?")
    return list(attempts.values())


def describe_logins(frames):
    """user, mechanism, verdict and exposure of each login attempt; repeats counted."""
    attempts = {a["attempt"]: a for a in login_attempts(frames)}
    texts = []
    for a in attempts.values():
        text = "%s %s %s" % (a["user"], a["mech"], a["result"])
        if a.get("exposed"):
            text += " (%s)" % exposure(a)
        texts.append(text)
    if not texts:
        return ""
    runs = []                                           # [text, count] of consecutive repeats
    for t in texts:
        if runs and runs[-1][0] == t:
            runs[-1][1] += 1
        else:
            runs.append([t, 1])
    shown_runs = ["%s x%d%s" % (t.split(" (")[0], n, " (" + t.split(" (", 1)[1] if " (" in t else "")
                  if n > 1 else t for t, n in runs]
    more = ""
    if len(shown_runs) > 10:
        rest = sum(n for _, n in runs[10:])
        shown_runs, more = shown_runs[:10], ", and %d more" % rest
    return "login%s: %s%s" % ("" if len(texts) == 1 else "s", ", ".join(shown_runs), more)


def describe_mail(frames):
    """Probes by verdict, messages, recipients, attachments and deletions of a session."""
    notes = []
    verdicts = collections.Counter(v for r in frames for v in r["mailsec.enum.verdict[]"])
    commands = collections.Counter()
    for r in frames:
        # a probe's command comes with its verdict on the reply (requests carry no verdict)
        cmds, vs = r["mailsec.enum.command[]"], r["mailsec.enum.verdict[]"]
        if vs:
            commands.update(cmds[-len(vs):] if len(cmds) >= len(vs) else cmds)
    if verdicts:
        notes.append("probes: %d (%s; %s)" % (
            sum(verdicts.values()), ", ".join("%s %d" % kv for kv in sorted(commands.items())),
            ", ".join("%s %d" % kv for kv in sorted(verdicts.items()))))
    sources = collections.Counter(v for r in frames for v in r["mailsec.msg.source[]"])
    rcpts = max((int(r["mailsec.msg.rcpt_count"]) for r in frames if r["mailsec.msg.rcpt_count"]), default=0)
    if sources:
        text = "messages: %d (%s)" % (sum(sources.values()),
                                      ", ".join("%s %d" % kv for kv in sorted(sources.items())))
        if rcpts:
            text += ", %d recipient%s" % (rcpts, "" if rcpts == 1 else "s")
        attachments = sum(len(r["mailsec.msg.attachment[]"]) for r in frames)
        if attachments:
            text += ", %d attachment%s" % (attachments, "" if attachments == 1 else "s")
        notes.append(text)
    elif rcpts:
        notes.append("%d recipient%s, no message" % (rcpts, "" if rcpts == 1 else "s"))
    deleted = max((int(r["mailsec.msg.deleted"]) for r in frames if r["mailsec.msg.deleted"]), default=0)
    expunged = sum(int(v) for r in frames for v in r["mailsec.msg.expunged[]"])
    if deleted or expunged:
        notes.append("deleted: %d%s" % (deleted, ", %d expunged" % expunged if expunged else ""))
    return notes


def endpoints(frames):
    """(client, server) as ADDRESS:PORT ([v6]:PORT)."""
    client, _, server = columns_endpoints(frames).partition(" -> ")
    return client, server


def probes(frames):
    """[{command, target, verdict, frame}] of the answered probes, in order."""
    out = []
    for r in frames:
        vs = r["mailsec.enum.verdict[]"]
        if not vs:
            continue
        cmds, targets = r["mailsec.enum.command[]"][-len(vs):], r["mailsec.enum.target[]"][-len(vs):]
        for i, v in enumerate(vs):
            out.append({"command": cmds[i] if i < len(cmds) else None,
                        "target": targets[i] if i < len(targets) else None,
                        "verdict": v, "frame": int(r["frame.number"] or 0)})
    return out


def messages(frames):
    """[{carried_by, size, sha256, complete, frame, mail_from, rcpt_to}] of the messages completed."""
    out = []
    for r in frames:
        for i, sha in enumerate(r["mailsec.msg.sha256[]"]):
            pick = lambda k: r[k][i] if i < len(r[k]) else None
            size = pick("mailsec.msg.size[]")
            smtp = (pick("mailsec.msg.source[]") or "").startswith("SMTP")
            out.append({"carried_by": pick("mailsec.msg.source[]"), "size": int(size) if size else None,
                        "sha256": sha, "complete": not yes(pick("mailsec.msg.truncated[]") or ""),
                        "frame": int(r["frame.number"] or 0),
                        "mail_from": r["mailsec.msg.mail_from"] if smtp else None,
                        "rcpt_to": r["mailsec.msg.rcpt_to[]"] if smtp else []})
    return out


def session_object(inp, frames, alerts, other=()):
    """One session of one capture as the JSON lines of --json (README: JSON lines)."""
    client, server = endpoints(frames)
    last = frames[-1]
    boundary = next((r for r in frames if r["mailsec.starttls.boundary"]), None)
    logins = []
    for a in login_attempts(frames):
        logins.append({"attempt": a["attempt"], "frame": a["frame"], "mechanism": a["mech"],
                       "user": None if a["user"] == "?" else a["user"], "result": a["result"],
                       "exposed": bool(a.get("exposed")),
                       "exposure": exposure(a) if a.get("exposed") else None})
    slow = slowest_reply(frames)
    rcpts = max((int(r["mailsec.msg.rcpt_count"]) for r in frames if r["mailsec.msg.rcpt_count"]), default=0)
    return {
        "type": "session", "capture": str(inp.label), "stream": int(frames[0]["tcp.stream"]), "client": client, "server": server,
        "protocol": last["mailsec.proto"], "transport": last["mailsec.transport"],
        "detected_by": last["mailsec.detected_by"],
        "starttls": {"offered": any(yes(r["mailsec.starttls.offered"]) for r in frames),
                     "requested": any(yes(r["mailsec.starttls.command"]) for r in frames),
                     "result": next((r["mailsec.starttls.result"] for r in frames if r["mailsec.starttls.result"]),
                                    None),
                     "boundary_frame": int(boundary["mailsec.starttls.boundary"]) if boundary else None,
                     "cleartext_bytes": int(boundary["mailsec.starttls.cleartext_bytes"]) if boundary else None,
                     "injected": any(r["mailsec.starttls.injected"] for r in frames)},
        "tls_version": tls_version(frames) or None,
        "decrypted_frames": sum(yes(r["mailsec.decrypted"]) for r in frames),
        "user": next((r["mailsec.session.auth_user"] for r in reversed(frames) if r["mailsec.session.auth_user"]),
                     None),
        "logins": logins, "probes": probes(frames), "messages": messages(frames), "recipients": rcpts,
        "attachments": sum(len(r["mailsec.msg.attachment[]"]) for r in frames),
        "deleted": max((int(r["mailsec.msg.deleted"]) for r in frames if r["mailsec.msg.deleted"]), default=0),
        "expunged": sum(int(v) for r in frames for v in r["mailsec.msg.expunged[]"]),
        "tcp": tcp_trouble(list(frames) + list(other)),
        "slowest_reply": {"seconds": slow[0], "command": slow[1] or None, "frame": slow[2]} if slow else None,
        "frames": len(frames),
        "alerts": [{"frame": f, "severity": sev, "name": name, "message": msg} for f, sev, name, msg in alerts],
    }


def frame_list(frames):
    if len(frames) == 1:
        return "frame %d" % frames[0]
    if len(frames) <= 12:
        return "frames " + ", ".join(map(str, frames))
    return "frames %s, ..., %d (%d in all)" % (", ".join(map(str, frames[:10])), frames[-1], len(frames))


def alert_lines(alerts):
    """One line per distinct message of severity note and above, with its frames, first seen first."""
    groups = collections.OrderedDict()
    for frame, sev, _, msg in sorted(alerts, key=lambda a: a[0]):
        if sev not in SEVERITIES:
            continue
        frames = groups.setdefault((sev, msg), [])
        if not frames or frames[-1] != frame:
            frames.append(frame)
    return ["    %-7s  %s: %s" % (sev, frame_list(frames), msg) for (sev, msg), frames in groups.items()]


def table(rows):
    """Rows of columns, each column as wide as its widest cell, two spaces apart, no trailing space."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def report(stage, inp, with_alerts):
    """Print the report of one capture; return (error, note)."""
    fields = FIELDS + (ALERT_FIELDS if with_alerts else [])
    args = ["-Y", DISPLAY_FILTER, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=" + AGGREGATOR]
    if OPTIONS["export"]:
        # two passes: only a later pass knows where the capture ended, so that
        # a message it cut off is exported too (as -truncated)
        args += ["-2", "--export-objects", "mailsec,%s" % stage.out]
    for f in fields:
        args += ["-e", f]
    try:
        rc, out, err = stage.run(inp, args)
    except OSError as e:                                # gone or unreadable since it was checked
        return "%s" % os_error(e), None
    error, note = tshark_problem(rc, err)
    if error:
        return error, None
    found, alerts, other = sessions(out.splitlines(), with_alerts)
    inp.sessions = len(found)
    if OPTIONS["json"]:
        for stream, frames in found.items():
            print(json.dumps(session_object(inp, frames, alerts.get(stream, []), other.get(stream, [])),
                             ensure_ascii=False))
        if OPTIONS["export"]:
            note = "; ".join(x for x in (note, export_messages(stage, inp, found)) if x)
        return None, note
    print("== %s%s: %d mail session%s" % (shown(inp.label), " (with TLS keys)" if inp.keylogs else "",
                                          len(found), "" if len(found) == 1 else "s"))
    if found:
        cols = []
        for stream, frames in found.items():
            c = columns(frames, other.get(stream, []))
            n = sum(1 for a in alerts.get(stream, []) if a[1] in SEVERITIES)
            if n:
                c[-1] = "; ".join(x for x in (c[-1], "%d alert%s" % (n, "" if n == 1 else "s")) if x)
            cols.append(c)
        lines = table([[shown(c) for c in row] for row in cols])
        for stream, line in zip(found, lines):
            print(("  " + line).rstrip())
            for a in alert_lines(alerts.get(stream, [])):
                print(shown(a).rstrip())
    if OPTIONS["export"]:
        note = "; ".join(x for x in (note, export_messages(stage, inp, found)) if x)
    return None, note


# ---------------------------------------------------------------- export

EXPORTED = re.compile(r"^stream(\d+)-(smtp|pop3|imap)-(c2s|s2c)-(data|bdat|retr|top|fetch|append)-(\d+)"
                      r"(-truncated)?\.eml$")
ATTACHED = re.compile(r"^stream(\d+)-(smtp|pop3|imap)-(c2s|s2c)-(data|bdat|retr|top|fetch|append)-(\d+)"
                      r"-att(\d+)(-truncated)?-(.+)$")
SOURCE = {"data": "SMTP DATA", "bdat": "SMTP BDAT", "retr": "POP3 RETR", "top": "POP3 TOP",
          "fetch": "IMAP FETCH", "append": "IMAP APPEND"}
INDEX = ["file", "stream", "client", "server", "protocol", "transport", "user", "direction", "carried_by",
         "number", "frame", "size", "sha256", "exported_bytes", "complete", "mail_from", "rcpt_to"]


def export_folder(inp):
    """A new folder under --export for this capture, named after it."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", inp.path.name) or "capture"
    root = OPTIONS["export"]
    folder, n = root / base, 1
    while folder.exists():
        n += 1
        folder = root / ("%s-%d" % (base, n))
    folder.mkdir(parents=True)
    return folder


def export_messages(stage, inp, found):
    """Move the messages tshark wrote into the capture's folder and write its
    index.csv: one row per message, from the frame that completed it."""
    import csv
    files = sorted(stage.out.iterdir())
    folder = export_folder(inp)
    # each session's completed messages in frame order, per way they were carried
    ends = collections.defaultdict(list)
    for stream, frames in found.items():
        for r in frames:
            for i, sha in enumerate(r["mailsec.msg.sha256[]"]):
                pick = lambda k: r[k][i] if i < len(r[k]) else ""
                ends[(stream, pick("mailsec.msg.source[]"))].append(
                    (r, sha, pick("mailsec.msg.size[]"), pick("mailsec.msg.truncated[]")))
    parsed = []
    for f in files:
        m = EXPORTED.match(f.name)
        if m:
            parsed.append((int(m.group(1)), int(m.group(5)), m, f))
    seen = collections.Counter()
    rows = []
    for stream, number, m, f in sorted(parsed, key=lambda t: (t[0], t[1])):
        key = (str(stream), SOURCE[m.group(4)])
        k = seen[key]
        seen[key] += 1
        end = ends[key][k] if k < len(ends[key]) else None
        frames = found.get(str(stream), [])
        cols = columns(frames) if frames else ["", " -> ", "", "", "", ""]
        client, _, server = cols[1].partition(" -> ")
        data = f.read_bytes()
        r = end[0] if end else {}
        user = next((x["mailsec.session.auth_user"] for x in reversed(frames) if x["mailsec.session.auth_user"]), "")
        rows.append([f.name, stream, client, server, m.group(2), frames[-1]["mailsec.transport"] if frames else "",
                     user, "client-to-server" if m.group(3) == "c2s" else "server-to-client", SOURCE[m.group(4)],
                     number, r.get("frame.number", ""), end[2] if end else len(data),
                     end[1] if end else hashlib.sha256(data).hexdigest(), len(data),
                     "no" if m.group(6) or (end and yes(end[3])) else "yes",
                     r.get("mailsec.msg.mail_from", ""), " ".join(r.get("mailsec.msg.rcpt_to[]", []))])
        shutil.move(str(f), str(folder / f.name))
    # attachments, decoded, after the message that carried them
    by_message = {(row[1], row[9]): row for row in rows}
    for f in sorted(stage.out.iterdir()):
        m = ATTACHED.match(f.name)
        if not m:
            continue
        parent = by_message.get((int(m.group(1)), int(m.group(5))))
        data = f.read_bytes()
        row = list(parent) if parent else [""] * len(INDEX)
        row[0], row[1], row[7], row[8], row[9] = f.name, int(m.group(1)), (
            "client-to-server" if m.group(3) == "c2s" else "server-to-client"), \
            "attachment %s of %s" % (m.group(6), SOURCE[m.group(4)]), int(m.group(5))
        row[11:15] = [len(data), hashlib.sha256(data).hexdigest(), len(data), "no" if m.group(7) else "yes"]
        rows.append(row)
        shutil.move(str(f), str(folder / f.name))
    for f in stage.out.iterdir():                       # anything else tshark wrote
        f.unlink()
    with open(folder / "index.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(INDEX)
        w.writerows(rows)
    n = sum(1 for row in rows if not str(row[8]).startswith("attachment"))
    a = len(rows) - n
    return "%d message%s%s exported to %s" % (n, "" if n == 1 else "s",
                                             " and %d attachment%s" % (a, "" if a == 1 else "s") if a else "",
                                             shown(str(folder)))


# ---------------------------------------------------------------- main

def split_internal(argv):
    """Our settings and the user's arguments.

    run.sh: `--prog NAME [--check] [--plugin SO] -- ARGS`, so nothing the user
    types is taken as a setting (--db's jobs add --worker: the plugin was
    checked once). Direct use: `--plugin SO` among the arguments.
    """
    global PROG
    settings = {"plugin": None, "check": False, "worker": False}
    if argv[:1] != ["--prog"]:
        rest, i = [], 0
        while i < len(argv):
            a = argv[i]
            if a == "--":
                rest += argv[i:]
                break
            if a == "--plugin" and i + 1 < len(argv):
                settings["plugin"] = argv[i + 1]
                i += 2
                continue
            if a.startswith("--plugin="):
                settings["plugin"] = a[len("--plugin="):]
            else:
                rest.append(a)
            i += 1
        return settings, rest
    if "--" not in argv:
        raise Usage("internal: the caller's settings must end with --")
    end = argv.index("--")
    own, i = argv[:end], 0
    while i < len(own):
        if own[i] in ("--prog", "--plugin") and i + 1 < len(own):
            if own[i] == "--prog":
                PROG = own[i + 1]
            else:
                settings["plugin"] = own[i + 1]
            i += 2
        elif own[i] == "--check":
            settings["check"] = True
            i += 1
        elif own[i] == "--worker":
            settings["worker"] = True
            i += 1
        else:
            raise Usage("internal: %s: unknown setting" % shown(own[i]))
    return settings, argv[end + 1:]


def main(argv):
    try:
        settings, args = split_internal(argv)
        inputs = plan(args)
        if not settings["check"] and not settings["plugin"]:
            raise Usage("--plugin SO is required (see %s --help)" % PROG)
    except Help:
        print(__doc__.strip())
        return OK
    except Usage as e:
        say(e)
        return USAGE
    if settings["check"]:
        tshark_verdict(inputs)
        if all(inp.error for inp in inputs):
            for inp in inputs:
                say("%s: %s" % (shown(inp.label), inp.error))
            summary(len(inputs), len(inputs))
            return FAILED
        return OK

    try:
        stage = Stage(settings["plugin"])
    except Setup as e:
        say(e)
        return SETUP
    failed = 0
    try:
        # a --db job: the parent checked already that the plugin loads, with its alert fields
        with_alerts = settings["worker"] or set(ALERT_FIELDS) <= stage.fields()
        n = len(inputs)
        sys.stdout.flush()
        if not settings["worker"]:
            sys.stderr.write("mailsec: analysing %d capture%s\n" % (n, "" if n == 1 else "s"))
        if not with_alerts:
            say("this build of the plugin has no mailsec.alert fields; alerts are not shown")
        if OPTIONS["db"]:
            return load_db(settings["plugin"], inputs)
        for inp in inputs:
            error, note = inp.error, None
            if not error:
                error, note = report(stage, inp, with_alerts)
            if OPTIONS["json"]:
                print(json.dumps({"type": "capture", "capture": str(inp.label), "path": str(inp.path.resolve()),
                                  "sessions": 0 if error else inp.sessions, "error": error, "note": note},
                                 ensure_ascii=False))
            if error:
                failed += 1
                say("%s: %s" % (shown(inp.label), error))
            elif note:
                say("%s: %s" % (shown(inp.label), note))
            sys.stdout.flush()
    except Setup as e:
        say(e)
        return SETUP
    finally:
        stage.close()
    summary(failed, len(inputs))
    return FAILED if failed else OK


# ---------------------------------------------------------------- many captures

SCHEMA = """
CREATE TABLE IF NOT EXISTS captures (
    path TEXT PRIMARY KEY,      -- the capture's absolute path: re-running it replaces its rows
    size INTEGER, sha256 TEXT, analysed_at TEXT, sessions INTEGER, error TEXT, note TEXT);
CREATE TABLE IF NOT EXISTS sessions (
    path TEXT, stream INTEGER, client TEXT, server TEXT, protocol TEXT, transport TEXT, detected_by TEXT,
    starttls_offered INTEGER, starttls_requested INTEGER, starttls_result TEXT, boundary_frame INTEGER,
    cleartext_bytes INTEGER, injected INTEGER, tls_version TEXT, decrypted_frames INTEGER, user TEXT,
    recipients INTEGER, attachments INTEGER, deleted INTEGER, expunged INTEGER,
    retransmissions INTEGER, duplicate_acks INTEGER, zero_windows INTEGER, resets INTEGER,
    slowest_reply_s REAL, slowest_reply_command TEXT, slowest_reply_frame INTEGER, frames INTEGER,
    PRIMARY KEY (path, stream));
CREATE TABLE IF NOT EXISTS logins (
    path TEXT, stream INTEGER, attempt INTEGER, frame INTEGER, mechanism TEXT, user TEXT, result TEXT,
    exposed INTEGER, exposure TEXT);
CREATE TABLE IF NOT EXISTS probes (path TEXT, stream INTEGER, command TEXT, target TEXT, verdict TEXT, frame INTEGER);
CREATE TABLE IF NOT EXISTS messages (
    path TEXT, stream INTEGER, carried_by TEXT, size INTEGER, sha256 TEXT, complete INTEGER, frame INTEGER,
    mail_from TEXT, rcpt_to TEXT);
CREATE TABLE IF NOT EXISTS alerts (path TEXT, stream INTEGER, frame INTEGER, severity TEXT, name TEXT, message TEXT);
CREATE INDEX IF NOT EXISTS logins_path ON logins (path);
CREATE INDEX IF NOT EXISTS probes_path ON probes (path);
CREATE INDEX IF NOT EXISTS messages_path ON messages (path);
CREATE INDEX IF NOT EXISTS alerts_path ON alerts (path);
"""
TABLES = ("sessions", "logins", "probes", "messages", "alerts", "captures")


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def store_capture(db, path, objects, error, note):
    """Replace one capture's rows by what its run found."""
    import datetime
    db.execute("BEGIN")
    for t in TABLES:
        db.execute("DELETE FROM %s WHERE path = ?" % t, (path,))
    try:
        size, sha = os.path.getsize(path), file_sha256(path)
    except OSError:
        size, sha = None, None
    sessions_found = [o for o in objects if o.get("type") == "session"]
    db.execute("INSERT INTO captures VALUES (?, ?, ?, ?, ?, ?, ?)",
               (path, size, sha, datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                len(sessions_found), error, note))
    for o in sessions_found:
        st, tcp, slow = o["starttls"], o["tcp"], o["slowest_reply"] or {}
        key = (path, o["stream"])
        db.execute("INSERT OR REPLACE INTO sessions VALUES (%s)" % ",".join("?" * 28), key + (
            o["client"], o["server"], o["protocol"], o["transport"], o["detected_by"], st["offered"],
            st["requested"], st["result"], st["boundary_frame"], st["cleartext_bytes"], st["injected"],
            o["tls_version"], o["decrypted_frames"], o["user"], o["recipients"], o["attachments"], o["deleted"],
            o["expunged"], tcp["retransmissions"], tcp["duplicate_acks"], tcp["zero_windows"], tcp["resets"],
            slow.get("seconds"), slow.get("command"), slow.get("frame"), o["frames"]))
        db.executemany("INSERT INTO logins VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [key + (
            a["attempt"], a["frame"], a["mechanism"], a["user"], a["result"], a["exposed"], a["exposure"])
            for a in o["logins"]])
        db.executemany("INSERT INTO probes VALUES (?, ?, ?, ?, ?, ?)", [key + (
            p["command"], p["target"], p["verdict"], p["frame"]) for p in o["probes"]])
        db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [key + (
            m["carried_by"], m["size"], m["sha256"], m["complete"], m["frame"], m["mail_from"],
            " ".join(m["rcpt_to"])) for m in o["messages"]])
        db.executemany("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?)", [key + (
            a["frame"], a["severity"], a["name"], a["message"]) for a in o["alerts"]])
    db.execute("COMMIT")


def load_db(plugin, inputs):
    """Every capture analysed by its own run of this script (one tshark each), as
    many at once as GNU parallel runs (--jobs, default the cores; --sshlogin to
    spread them over machines), their JSON lines loaded into the database."""
    import shlex
    import sqlite3
    parallel = shutil.which("parallel", path="/usr/bin:/bin")
    if not parallel:
        raise Setup("GNU parallel is not installed (apt-get install parallel)")
    db_path = OPTIONS["db"]
    try:
        db = sqlite3.connect(str(db_path), isolation_level=None)
        db.executescript(SCHEMA)
    except sqlite3.Error as e:
        say("%s: not a database mailsec can write (%s)" % (shown(db_path), e))
        return USAGE
    failed = 0
    runnable = [inp for inp in inputs if not inp.error]
    for inp in inputs:
        if inp.error:
            failed += 1
            say("%s: %s" % (shown(inp.label), inp.error))
            store_capture(db, str(inp.path.resolve()), [], inp.error, None)
    me = [sys.executable or "/usr/bin/python3", str(pathlib.Path(__file__).resolve()), "--prog", PROG, "--worker",
          "--plugin", str(pathlib.Path(plugin).resolve()), "--", "--json"]
    with tempfile.NamedTemporaryFile("w", prefix="mailsec-jobs-", suffix=".txt", delete=False) as jobs:
        for inp in runnable:
            args = [str(inp.path.resolve())] + [str(pathlib.Path(k).resolve()) for k in inp.keylogs]
            jobs.write(shlex.join(me + args) + "\n")
    cmd = [parallel, "--will-cite", "--group", "--jobs", str(OPTIONS["jobs"] or os.cpu_count() or 1)]
    for login in OPTIONS["sshlogin"]:
        cmd += ["--sshlogin", login]
    cmd += ["-a", jobs.name]
    say("analysing %d capture%s with GNU parallel (%s job%s%s) into %s" % (
        len(runnable), "" if len(runnable) == 1 else "s", OPTIONS["jobs"] or os.cpu_count(),
        "" if (OPTIONS["jobs"] or os.cpu_count()) == 1 else "s",
        ", on " + ", ".join(OPTIONS["sshlogin"]) if OPTIONS["sshlogin"] else "", shown(db_path)))
    by_path = collections.defaultdict(list)
    done = {}
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                errors="replace")
        for line in proc.stdout:
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if o.get("type") == "capture":
                done[o["path"]] = o
                store_capture(db, o["path"], by_path.pop(o["path"], []), o.get("error"), o.get("note"))
            elif o.get("type") == "session":
                by_path[str(pathlib.Path(o["capture"]).resolve())].append(o)
        proc.wait()
    finally:
        os.unlink(jobs.name)
    for inp in runnable:
        path = str(inp.path.resolve())
        o = done.get(path)
        if o is None:
            store_capture(db, path, [], "no result (the job failed)", None)
        if o is None or o.get("error"):
            failed += 1
    paths = [str(inp.path.resolve()) for inp in inputs]
    n = sum(db.execute("SELECT count(*) FROM sessions WHERE path = ?", (p,)).fetchone()[0] for p in paths)
    db.close()
    say("%s: %d capture%s, %d mail session%s in the database" % (
        shown(db_path), len(inputs), "" if len(inputs) == 1 else "s", n, "" if n == 1 else "s"))
    summary(failed, len(inputs))
    return FAILED if failed else OK


def summary(failed, total):
    if failed and total > 1:
        say("%d of %d captures could not be analysed" % (failed, total))


if __name__ == "__main__":
    sys.stdout.reconfigure(errors="backslashreplace")
    # Stopped (timeout, kill): unwind, so the staged copies are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        code = main(sys.argv[1:])
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # The reader went away (run.sh | head): no traceback, the shell's status for SIGPIPE.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        code = 141
    except Exception as e:                              # never a traceback for any input
        if os.environ.get("MAILSEC_DEBUG"):
            raise
        say("unexpected error: %s: %s (MAILSEC_DEBUG=1 shows where)" % (type(e).__name__, shown(e)))
        code = SETUP
    sys.exit(code)
