#!/usr/bin/env python3
"""mailsec's main job: load the plugin into the real tshark and print, for each
mail session of each capture, what an analyst asks first.

    report.py --plugin build/mailsec.so [CAPTURE [KEYLOG]]

Without a capture it reads the bundled real-server captures (captures/real),
each with its TLS key log. tshark ignores plugin folders when run as root, so
as root it runs tshark as the unprivileged user nobody, from a staged copy of
the plugin and the capture.
"""
import argparse
import collections
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]

FIELDS = ["tcp.stream", "frame.number", "ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst",
          "tcp.dstport", "mailsec.proto", "mailsec.detected_by", "mailsec.transport",
          "mailsec.direction", "mailsec.decrypted", "mailsec.starttls.offered",
          "mailsec.starttls.command", "mailsec.starttls.result", "mailsec.starttls.boundary",
          "mailsec.starttls.cleartext_bytes", "mailsec.starttls.injected",
          "mailsec.auth.attempt", "mailsec.auth.mechanism", "mailsec.auth.username",
          "mailsec.auth.password", "mailsec.auth.hash", "mailsec.auth.token", "mailsec.auth.result",
          "mailsec.auth.exposed"]


class Stage:
    """A world-readable folder with the plugin (and copies of the inputs)."""

    def __init__(self, plugin):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="mailsec-run-"))
        epan = self.dir / "plugins" / "4.0" / "epan"
        epan.mkdir(parents=True)
        (self.dir / "home").mkdir()
        shutil.copyfile(plugin, epan / "mailsec.so")
        for d, _, files in os.walk(self.dir):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(os.path.join(d, f), 0o644)
        os.chmod(self.dir / "home", 0o777)

    def readable(self, path):
        dst = self.dir / ("in-%d-%s" % (len(list(self.dir.iterdir())), pathlib.Path(path).name))
        shutil.copyfile(path, dst)
        os.chmod(dst, 0o644)
        return dst

    def tshark(self, capture, keylog, args):
        cmd = ["tshark", "-n", "-r", str(self.readable(capture))]
        if keylog:
            cmd += ["-o", "tls.keylog_file:%s" % self.readable(keylog)]
        cmd += args
        env = ["HOME=%s" % (self.dir / "home"), "TZ=UTC", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
               "WIRESHARK_PLUGIN_DIR=%s" % (self.dir / "plugins")]
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        proc = subprocess.run(prefix + ["env", "-i"] + env + cmd, capture_output=True, cwd="/",
                              stdin=subprocess.DEVNULL)
        if proc.returncode not in (0, 2):
            sys.exit("tshark failed on %s:\n%s" % (capture, proc.stderr.decode(errors="replace")))
        return proc.stdout.decode("utf-8", "replace")

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def sessions(stage, capture, keylog):
    args = ["-Y", "mailsec", "-T", "fields", "-E", "occurrence=f"]
    for f in FIELDS:
        args += ["-e", f]
    by = collections.OrderedDict()
    for line in stage.tshark(capture, keylog, args).splitlines():
        r = dict(zip(FIELDS, line.split("\t")))
        by.setdefault(r["tcp.stream"], []).append(r)
    return by


def describe(frames):
    src = lambda r: (r["ip.src"] or "[%s]" % r["ipv6.src"]) + ":" + r["tcp.srcport"]
    dst = lambda r: (r["ip.dst"] or "[%s]" % r["ipv6.dst"]) + ":" + r["tcp.dstport"]
    to_server = next((r for r in frames if r["mailsec.direction"] == "to-server"), None)
    if to_server:
        client, server = src(to_server), dst(to_server)
    else:
        client, server = dst(frames[0]), src(frames[0])
    last = frames[-1]
    transport = last["mailsec.transport"]
    notes = []
    boundary = next((r for r in frames if r["mailsec.starttls.boundary"]), None)
    if boundary:
        notes.append("TLS after frame %s, %s bytes in clear before it"
                     % (boundary["mailsec.starttls.boundary"], boundary["mailsec.starttls.cleartext_bytes"]))
    offered = any(r["mailsec.starttls.offered"] in ("1", "True") for r in frames)
    requested = any(r["mailsec.starttls.command"] in ("1", "True") for r in frames)
    result = next((r["mailsec.starttls.result"] for r in frames if r["mailsec.starttls.result"]), "")
    if offered and not requested and transport == "cleartext":
        notes.append("STARTTLS offered but not used")
    if result == "refused":
        notes.append("STARTTLS refused")
    if any(r["mailsec.starttls.injected"] for r in frames):
        notes.append("PLAINTEXT INJECTED AROUND STARTTLS")
    if transport != "cleartext":
        n = sum(r["mailsec.decrypted"] in ("1", "True") for r in frames)
        notes.append("%d frame%s decrypted" % (n, "" if n == 1 else "s") if n else "not decrypted (no keys)")
    logins = describe_logins(frames)
    if logins:
        notes.append(logins)
    return "stream %-3s %s -> %s  %-4s  %-12s  detected by %-9s  %s" % (
        frames[0]["tcp.stream"], client, server, last["mailsec.proto"], transport,
        last["mailsec.detected_by"], "; ".join(notes))


def describe_logins(frames):
    """user, mechanism, verdict and exposure of each login attempt."""
    attempts = collections.OrderedDict()
    for r in frames:
        n = r["mailsec.auth.attempt"]
        if not n:
            continue
        a = attempts.setdefault(n, {"result": "unknown"})
        if r["mailsec.auth.result"]:
            a["result"] = r["mailsec.auth.result"]
        else:
            a["mech"] = r["mailsec.auth.mechanism"]
            a["user"] = r["mailsec.auth.username"] or "?"
            a["exposed"] = r["mailsec.auth.exposed"] in ("1", "True")
            a["secret"] = ("password" if r["mailsec.auth.password"] else "hash" if r["mailsec.auth.hash"]
                           else "token" if r["mailsec.auth.token"] else "")
        a.setdefault("mech", r["mailsec.auth.mechanism"])
        a.setdefault("user", r["mailsec.auth.username"] or "?")
    out = []
    for a in attempts.values():
        text = "%s %s %s" % (a["user"], a["mech"], a["result"])
        if a.get("exposed"):
            text += " (%s in clear)" % (a["secret"] or "login")
        out.append(text)
    if not out:
        return ""
    return "login%s: %s" % ("" if len(out) == 1 else "s", ", ".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plugin", required=True)
    ap.add_argument("capture", nargs="?")
    ap.add_argument("keylog", nargs="?")
    a = ap.parse_args()
    if a.capture:
        inputs = [(pathlib.Path(a.capture), pathlib.Path(a.keylog) if a.keylog else None)]
    else:
        inputs = []
        for cap in sorted((ROOT / "captures" / "real").glob("*.pcapng")):
            keys = cap.with_suffix(".keys")
            inputs.append((cap, keys if keys.exists() else None))
    stage = Stage(a.plugin)
    try:
        for cap, keys in inputs:
            found = sessions(stage, cap, keys)
            print("== %s%s: %d mail session%s" % (cap.name, " (with TLS keys)" if keys else "",
                                                   len(found), "" if len(found) == 1 else "s"))
            for frames in found.values():
                print("  " + describe(frames))
    finally:
        stage.close()


if __name__ == "__main__":
    main()
