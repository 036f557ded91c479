"""The main command, run.sh, the way a user runs it: the real script, the real
tshark and plugin, from the caller's folder.

Mistakes in the arguments must fail before anything is installed or built: those
runs get a PATH whose apt-get, dpkg-query, cmake, make and gcc only record that
they were called, and a build folder that must not appear. Expectations about
logins and alerts come from the generator's ground truth (the .json beside each
capture), never from mailsec's own output.
"""
import json
import os
import pathlib
import re
import shlex
import shutil
import struct
import subprocess
import tempfile

import pytest

from conftest import BUNDLED, ROOT, UNPRIVILEGED

RUN = ROOT / "run.sh"
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# mailsec's default brute_force_threshold (README, Preferences).
THRESHOLD = 5
BUILD_TOOLS = ("apt-get", "dpkg-query", "dpkg", "debconf-set-selections", "cmake", "make", "gcc", "cc")


@pytest.fixture
def scratch():
    """A temporary folder the unprivileged user can enter too."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="mailsec-main-"))
    os.chmod(d, 0o755)
    yield d
    for sub, dirs, _ in os.walk(d):
        for x in dirs:
            os.chmod(os.path.join(sub, x), 0o755)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def no_build(scratch):
    """(env, check) for runs that must fail before set-up: tools that record, a build folder that must not appear."""
    shims = scratch / "shims"
    shims.mkdir()
    calls = shims / "calls"
    for tool in BUILD_TOOLS:
        p = shims / tool
        p.write_text("#!/bin/sh\necho \"%s $*\" >> %s\nexit 1\n" % (tool, calls))
        p.chmod(0o755)
    os.chmod(shims, 0o777)
    build = scratch / "build-must-not-appear"
    env = {"PATH": "%s:%s" % (shims, SYSTEM_PATH), "MAILSEC_BUILD_DIR": str(build)}

    def check():
        assert not calls.exists(), "set-up or build ran: " + calls.read_text()
        assert not build.exists(), "a build folder was made"
    return env, check


class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout.decode("utf-8", "replace")
        self.err = proc.stderr.decode("utf-8", "replace")
        assert "Traceback" not in self.err, self.err
        for line in self.out.splitlines():
            assert line == line.rstrip(), "trailing whitespace: %r" % line

    def __repr__(self):
        return "exit %d\n--- stdout\n%s--- stderr\n%s" % (self.rc, self.out, self.err)


def run_sh(*args, cwd=ROOT, env=None, script=RUN, user=None):
    """run.sh with these arguments, from cwd, with a clean environment (plus env)."""
    full = {"PATH": SYSTEM_PATH, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    if "MAILSEC_BUILD_DIR" in os.environ:
        full["MAILSEC_BUILD_DIR"] = os.environ["MAILSEC_BUILD_DIR"]
    full.update(env or {})
    prefix = []
    if user is not None:
        prefix = ["setpriv", "--reuid=%s" % user, "--regid=%s" % user, "--clear-groups"]
        full["HOME"] = "/"
    cmd = prefix + ["env", "-i"] + ["%s=%s" % kv for kv in full.items()] + ["bash", str(script)]
    proc = subprocess.run(cmd + [str(a) for a in args], cwd=cwd, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=1800)
    return Result(proc)


def truth(name):
    return json.loads((BUNDLED / (name + ".json")).read_text())


def session_blocks(out):
    """{capture header: [(session line, [alert lines])]} of a report."""
    blocks, cur = {}, None
    for line in out.splitlines():
        if line.startswith("== "):
            cur = blocks.setdefault(line, [])
        elif line.startswith("  stream "):
            cur.append((line, []))
        elif line.startswith("    "):
            cur[-1][1].append(line)
        else:
            raise AssertionError("unexpected report line: %r" % line)
    return blocks


ALERT = re.compile(r"^    (error|warning|note)\s+frames? ([0-9, .]+?)(?: \(\d+ in all\))?: (.+)$")


def alerts(lines):
    """[(severity, [frames], message)] of alert lines."""
    out = []
    for line in lines:
        m = ALERT.match(line)
        assert m, "not an alert line: %r" % line
        frames = [int(f) for f in m.group(2).split(", ") if f.isdigit()]
        out.append((m.group(1), frames, m.group(3)))
    return out


# ------------------------------------------------------------ before any set-up

@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(flag, no_build):
    env, nothing_ran = no_build
    r = run_sh(flag, env=env)
    assert r.rc == 0, r
    assert r.out.startswith("usage: run.sh "), r
    assert "report.py" not in r.out
    assert re.search(r"^\s*3\s+set-up or build failed", r.out, re.M), r
    assert r.err == ""
    nothing_ran()


def test_missing_capture(no_build, scratch):
    env, nothing_ran = no_build
    nope = scratch / "nope.pcapng"
    r = run_sh(nope, env=env)
    assert (r.rc, r.err) == (1, "run.sh: %s: no such file\n" % nope), r
    assert r.out == ""
    nothing_ran()


def test_missing_keylog(no_build, scratch):
    env, nothing_ran = no_build
    keys = scratch / "nope.keys"
    r = run_sh(BUNDLED / "smtp-starttls.pcapng", keys, env=env)
    assert (r.rc, r.err) == (2, "run.sh: %s: key log not found\n" % keys), r
    r = run_sh("--keylog", keys, BUNDLED / "smtp-starttls.pcapng", env=env)
    assert (r.rc, r.err) == (2, "run.sh: %s: key log not found\n" % keys), r
    nothing_ran()


def test_not_a_keylog(no_build, scratch):
    env, nothing_ran = no_build
    bad = scratch / "bad.keys"
    bad.write_text("CLIENT_RANDOM is what a key log starts with, but this is prose\n")
    r = run_sh(BUNDLED / "smtp-starttls.pcapng", bad, env=env)
    assert (r.rc, r.err) == (2, "run.sh: %s: not a TLS key log\n" % bad), r
    r = run_sh("--keylog", ROOT / "README.md", BUNDLED / "smtp-starttls.pcapng", env=env)
    assert (r.rc, r.err) == (2, "run.sh: %s: not a TLS key log\n" % (ROOT / "README.md")), r
    nothing_ran()


def test_unknown_option(no_build):
    env, nothing_ran = no_build
    r = run_sh("--frobnicate", BUNDLED / "smtp-starttls.pcapng", env=env)
    assert r.rc == 2, r
    assert r.err.startswith("run.sh: --frobnicate: unknown option") and r.err.count("\n") == 1, r
    nothing_ran()


def test_empty_directory(no_build, scratch):
    env, nothing_ran = no_build
    d = scratch / "empty"
    d.mkdir()
    (d / "notes.txt").write_text("no capture here\n")
    r = run_sh(d, env=env)
    assert r.rc == 2, r
    assert r.err.startswith("run.sh: %s: no capture in this directory" % d) and r.err.count("\n") == 1, r
    nothing_ran()


def test_empty_file(no_build, scratch):
    env, nothing_ran = no_build
    empty = scratch / "empty.pcapng"
    empty.write_bytes(b"")
    r = run_sh(empty, env=env)
    assert (r.rc, r.err) == (1, "run.sh: %s: empty file\n" % empty), r
    nothing_ran()


def test_not_a_capture(no_build):
    """tshark's own verdict, relative to the caller's folder."""
    env, nothing_ran = no_build
    # (not README.md: tshark's weak text-format heuristics may take prose for a trace)
    r = run_sh("CMakeLists.txt", env=env)
    assert (r.rc, r.err) == (1, "run.sh: CMakeLists.txt: not a capture file\n"), r
    assert r.out == ""
    nothing_ran()


def test_relative_missing_from_another_folder(no_build, scratch):
    env, nothing_ran = no_build
    r = run_sh("nope.pcapng", cwd=scratch, env=env)
    assert (r.rc, r.err) == (1, "run.sh: nope.pcapng: no such file\n"), r
    nothing_ran()


def test_unreadable_file(no_build, scratch):
    """As root every file is readable: the unprivileged user runs run.sh on a mode-000 file."""
    env, nothing_ran = no_build
    # A readable copy of the scripts: the clone itself may sit where that user cannot enter.
    proj = scratch / "proj"
    (proj / "scripts").mkdir(parents=True)
    shutil.copy(RUN, proj / "run.sh")
    for f in ("report.py", "setup.sh"):
        shutil.copy(ROOT / "scripts" / f, proj / "scripts" / f)
    locked = scratch / "locked.pcapng"
    shutil.copyfile(BUNDLED / "smtp-starttls.pcapng", locked)
    os.chmod(locked, 0)
    for d, dirs, files in os.walk(proj):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o755)
    user = UNPRIVILEGED if os.geteuid() == 0 else None
    r = run_sh(locked, cwd="/", env=env, script=proj / "run.sh", user=user)
    assert (r.rc, r.err) == (1, "run.sh: %s: permission denied\n" % locked), r
    nothing_ran()


# ------------------------------------------------------------ with the build

def test_build_failure(scratch):
    """A failing build: the tail of its log, one line saying so, exit 3, and no report."""
    shims = scratch / "shims"
    shims.mkdir()
    (shims / "cmake").write_text("#!/bin/sh\necho 'CMake Error at CMakeLists.txt:1: broken on purpose'\nexit 1\n")
    (shims / "cmake").chmod(0o755)
    env = {"PATH": "%s:%s" % (shims, SYSTEM_PATH), "MAILSEC_BUILD_DIR": str(scratch / "build"), "TMPDIR": str(scratch)}
    r = run_sh(BUNDLED / "smtp-starttls.pcapng", env=env)
    assert r.rc == 3, r
    assert r.out == ""
    assert "broken on purpose" in r.err, r
    last = r.err.splitlines()[-1]
    assert re.fullmatch(r"run.sh: the plugin did not build \(full log: %s/mailsec-build\.\w+\)" % re.escape(str(scratch)),
                        last), r


def test_directory_of_captures(scratch):
    d = scratch / "case"
    (d / "sub").mkdir(parents=True)
    for f in ("smtp-starttls.pcapng", "smtp-starttls.keys"):
        shutil.copy(BUNDLED / f, d / f)
    shutil.copy(BUNDLED / "pop3-cleartext.pcapng", d / "sub" / "pop3-cleartext.pcapng")
    r = run_sh(d)
    assert r.rc == 0, r
    assert r.err.splitlines()[-1] == "mailsec: analysing 2 captures", r
    blocks = session_blocks(r.out)
    want = []
    for rel, name, keys in (("smtp-starttls.pcapng", "smtp-starttls", True),
                            ("sub/pop3-cleartext.pcapng", "pop3-cleartext", False)):
        n = len(truth(name)["sessions"])
        want.append("== %s/%s%s: %d mail session%s" % (d, rel, " (with TLS keys)" if keys else "",
                                                        n, "" if n == 1 else "s"))
    assert list(blocks) == want, r
    # The key log beside the capture was used: its TLS session was decrypted.
    starttls_line = blocks[want[0]][0][0]
    assert re.search(r"\b[1-9]\d* frames? decrypted", starttls_line), r


def test_relative_paths_from_the_capture_folder():
    """From captures/real, as in the issue: ../../run.sh smtp-starttls.pcapng smtp-starttls.keys."""
    r = run_sh("smtp-starttls.pcapng", "smtp-starttls.keys", cwd=BUNDLED, script="../../run.sh")
    assert r.rc == 0, r
    blocks = session_blocks(r.out)
    assert list(blocks) == ["== smtp-starttls.pcapng (with TLS keys): 1 mail session"], r
    (line, _), = blocks["== smtp-starttls.pcapng (with TLS keys): 1 mail session"]
    assert re.search(r"\b[1-9]\d* frames? decrypted", line), r


def test_keylog_recognised_by_content(scratch):
    keys = scratch / "tls-material.txt"
    shutil.copy(BUNDLED / "smtp-starttls.keys", keys)
    r = run_sh(BUNDLED / "smtp-starttls.pcapng", keys)
    assert r.rc == 0, r
    (line, _), = session_blocks(r.out)["== %s (with TLS keys): 1 mail session" % (BUNDLED / "smtp-starttls.pcapng")]
    assert re.search(r"\b[1-9]\d* frames? decrypted", line), r


def test_third_argument_is_a_capture():
    r = run_sh("smtp-starttls.pcapng", "smtp-starttls.keys", "pop3-cleartext.pcapng", cwd=BUNDLED)
    assert r.rc == 0, r
    n = len(truth("pop3-cleartext")["sessions"])
    assert list(session_blocks(r.out)) == [
        "== smtp-starttls.pcapng (with TLS keys): 1 mail session",
        "== pop3-cleartext.pcapng: %d mail session%s" % (n, "" if n == 1 else "s")], r


def test_third_argument_is_garbage(scratch):
    junk = scratch / "junk.pcapng"
    junk.write_bytes(b"this is not a capture, whatever its name says\n" * 20)
    r = run_sh("smtp-starttls.pcapng", "smtp-starttls.keys", junk, cwd=BUNDLED)
    assert r.rc == 1, r
    assert list(session_blocks(r.out)) == ["== smtp-starttls.pcapng (with TLS keys): 1 mail session"], r
    assert r.err.splitlines()[-2:] == ["run.sh: %s: not a capture file" % junk,
                                       "run.sh: 1 of 2 captures could not be analysed"], r


def test_damaged_capture_is_reported(scratch):
    """tshark stops at a corrupt block (exit 2): what it read is reported, and stderr says so."""
    data = bytearray((BUNDLED / "smtp-cleartext.pcapng").read_bytes())
    off, blocks = 0, 0
    while off < len(data):                              # pcapng blocks: type, total length
        length = struct.unpack_from("<I", data, off + 4)[0]
        blocks += 1
        if blocks == 12:
            struct.pack_into("<I", data, off + 4, 8)   # shorter than any packet block
            break
        off += length
    damaged = scratch / "damaged.pcapng"
    damaged.write_bytes(bytes(data))
    r = run_sh(damaged)
    assert r.rc == 0, r
    assert list(session_blocks(r.out)) == ["== %s: 1 mail session" % damaged], r
    assert re.search(r"^run.sh: %s: damaged or corrupt.*what could be read is reported$" % re.escape(str(damaged)),
                     r.err, re.M), r


def test_brute_force_alerts():
    """Failed logins, brute force and success after failures, as the ground truth says."""
    t = truth("smtp-auth-bruteforce")
    (session,) = t["sessions"]
    auth = session["auth"]
    failures = [a for a in auth if a["result"] == "failure"]
    first_success = next(i for i, a in enumerate(auth) if a["result"] == "success")
    failures_before_success = sum(a["result"] == "failure" for a in auth[:first_success])
    in_clear = [a for a in auth if a["sends_password"] and not a["tls"]]
    assert len(failures) >= THRESHOLD, "the capture no longer shows a brute force"

    r = run_sh(BUNDLED / "smtp-auth-bruteforce.pcapng")
    assert r.rc == 0, r
    (header, sessions), = session_blocks(r.out).items()
    (line, alert_lines), = sessions
    found = alerts(alert_lines)

    # The session line counts the repeated failures.
    user, mech = auth[0]["username"], auth[0]["mechanism"]
    assert "%s %s failure x%d (password in clear)" % (user, mech, len(failures)) in line, r
    assert "%s %s success (password in clear)" % (user, mech) in line, r

    # One note per failed verdict, grouped into one line.
    failed = [a for a in found if a[0] == "note" and "failed" in a[2].lower()]
    assert len(failed) == 1 and len(failed[0][1]) == len(failures), r
    failure_frames = failed[0][1]
    # Every password that crossed in clear is a warning.
    cleartext = [f for sev, frames, msg in found
                 if sev == "warning" and msg.lower().startswith("credentials in clear") for f in frames]
    assert len(cleartext) == len(in_clear), r
    # Brute force from the threshold-th failure on, on failure verdicts only.
    brute = [f for sev, frames, msg in found if sev == "warning" and "brute force" in msg.lower() for f in frames]
    assert brute and brute[0] == failure_frames[THRESHOLD - 1], r
    assert set(brute) <= set(failure_frames), r
    # The success after at least the threshold of failures is an error, after the last failure.
    assert failures_before_success >= THRESHOLD
    errors = [(frames, msg) for sev, frames, msg in found if sev == "error"]
    assert len(errors) == 1 and "after %d failed" % failures_before_success in errors[0][1], r
    assert errors[0][0][0] > failure_frames[-1], r
    # Grouped by message: no message twice.
    assert len({(sev, msg) for sev, _, msg in found}) == len(found), r


def test_no_alerts_for_a_login_inside_tls():
    t = truth("smtp-starttls")
    assert all(a["tls"] and a["result"] == "success" for s in t["sessions"] for a in s["auth"])
    r = run_sh(BUNDLED / "smtp-starttls.pcapng", BUNDLED / "smtp-starttls.keys")
    assert r.rc == 0, r
    for sessions in session_blocks(r.out).values():
        for line, alert_lines in sessions:
            assert alert_lines == [], r
            assert "in clear)" not in line, r


# The brief's classes of what a login gives away when it crosses in clear.
HASH_MECHANISMS = {"CRAM-MD5", "APOP", "NTLM", "DIGEST-MD5"}


def expected_exposure(a):
    """What the ground truth says crossed in clear for one attempt, in the report's words."""
    if a["tls"]:
        return None
    if a["token"]:
        return "token in clear"
    if a["sends_password"] and a["password"]:
        return "password in clear"
    if a["mechanism"] in HASH_MECHANISMS and a["result"] != "aborted":
        return "crackable hash in clear"
    return "in clear, nothing reusable"


def test_what_crossed_in_clear():
    """Password, token, crackable hash or nothing reusable, per login of every mechanism."""
    names = ["smtp-auth-mechs", "smtp-auth-peer", "pop3-auth-mechs", "imap-auth-mechs"]
    r = run_sh(*[BUNDLED / (n + ".pcapng") for n in names])
    assert r.rc == 0, r
    blocks = session_blocks(r.out)
    seen = set()
    for n in names:
        (header,) = [h for h in blocks if h.startswith("== %s: " % (BUNDLED / (n + ".pcapng")))]
        lines = [line for line, _ in blocks[header]]
        for s in truth(n)["sessions"]:
            (line,) = [l for l in lines if ":%d -> " % s["client_port"] in l]
            want = {expected_exposure(a) for a in s["auth"]} - {None}
            got = set(re.findall(r"\(([^()]*in clear[^()]*)\)", line))
            assert got == want, "%s session from port %d: %s" % (n, s["client_port"], line)
            seen |= want
    # Every class of the brief occurs in these captures.
    assert len(seen) == 4, seen


def test_chat_alerts_are_not_listed(tshark, scratch):
    """IMAP on port 25: mailsec says so at severity chat, which the report leaves out."""
    from pcapgen import Conversation, write_pcap
    c = Conversation(client=("10.0.0.1", 41004), server=("10.0.0.2", 25)).handshake()
    c.send("s", b"* OK IMAP4rev1 Service Ready\r\n").send("c", b"a1 LOGOUT\r\n")
    c.send("s", b"* BYE\r\na1 OK LOGOUT completed\r\n").close()
    cap = write_pcap(str(scratch / "imap-on-25.pcap"), [c])
    severities = {v for row in tshark.fields(cap, ["mailsec.alert.severity"]) for v in row[0].split(",") if v}
    assert severities == {"chat"}, "the premise changed: %s" % severities
    r = run_sh(cap)
    assert r.rc == 0, r
    (header, sessions), = session_blocks(r.out).items()
    (line, alert_lines), = sessions
    assert "imap" in line.split() and "detected by heuristic" in line, r
    assert alert_lines == [], r


def readme_examples():
    """(command, expected stdout) of every ```console block of the README that runs ./run.sh."""
    text = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"^```console\n(.*?)^```", text, re.M | re.S):
        first, _, rest = block.partition("\n")
        if first.startswith("$ ./run.sh"):
            out.append((first[2:], rest))
    return out


def test_readme_example_output_is_current():
    examples = readme_examples()
    assert any("captures/real/smtp-starttls.pcapng" in cmd for cmd, _ in examples), "README lost its example"
    for cmd, expected in examples:
        argv = shlex.split(cmd)
        assert argv[0] == "./run.sh"
        r = run_sh(*argv[1:])
        assert r.rc == 0, r
        assert r.out == expected, "README example of `%s` is stale:\n%s" % (cmd, r.out)


def test_export_writes_messages_and_index(tmp_path):
    """--export DIR: every message of each capture as .eml in DIR/CAPTURE/, whose
    SHA-256 is the ground truth's (what the SMTP client sent, what the POP3
    client received, over STARTTLS with the key log), and an index.csv whose
    rows say the same of each file."""
    import csv
    import hashlib
    out = tmp_path / "exported"
    sent_t, got_t = truth("smtp-attachments"), truth("pop3-retrieve-stls")
    r = run_sh("--export", out, BUNDLED / "smtp-attachments.pcapng",
               BUNDLED / "pop3-retrieve-stls.pcapng", BUNDLED / "pop3-retrieve-stls.keys")
    assert r.rc == 0, r
    for name, want, direction in (
            ("smtp-attachments.pcapng",
             [m["data_sha256"] for s in sent_t["sessions"] for m in s["messages"]], "client-to-server"),
            ("pop3-retrieve-stls.pcapng",
             [m["received_sha256"] for s in got_t["sessions"] for m in s["retrieved"]], "server-to-client")):
        folder = out / name
        with open(folder / "index.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        whole = [row for row in rows if row["carried_by"] in ("SMTP DATA", "POP3 RETR")]
        assert [row["sha256"] for row in whole] == want, r
        for row in rows:
            data = (folder / row["file"]).read_bytes()
            assert row["complete"] == "yes" and row["direction"] == direction
            assert hashlib.sha256(data).hexdigest() == row["sha256"] and int(row["size"]) == len(data)
        assert sorted(p.name for p in folder.iterdir()) == sorted([row["file"] for row in rows] + ["index.csv"])
    assert "smtp-attachments.pcapng: 3 messages and 5 attachments exported to" in r.err, r
    # the attachments: decoded, as the generator made them
    with open(out / "smtp-attachments.pcapng" / "index.csv", newline="") as fh:
        attached = [row for row in csv.DictReader(fh) if row["carried_by"].startswith("attachment")]
    assert [row["sha256"] for row in attached] == \
        [a["sha256"] for s in sent_t["sessions"] for m in s["messages"] for a in m.get("attachments", [])]


def test_export_of_a_capture_cut_mid_message(tmp_path):
    """A capture that ends inside a RETR answer (editcap keeps frames up to the
    first full-size segment the built-in tcp.len shows): the message is in the
    index, complete "no", its file a strict prefix of the one the whole capture
    gives; the messages before it are whole."""
    import csv
    src = BUNDLED / "pop3-retrieve.pcapng"
    lens = subprocess.run(["tshark", "-n", "-r", str(src), "-T", "fields", "-e", "frame.number", "-e", "tcp.len"],
                          capture_output=True, text=True, check=True).stdout.split("\n")
    first_long = next(int(f) for f, n in (l.split("\t") for l in lens if l) if n and int(n) >= 1000)
    cut = tmp_path / "cut.pcapng"
    subprocess.run(["editcap", "-r", str(src), str(cut), "1-%d" % first_long], check=True)
    os.chmod(tmp_path, 0o755)
    os.chmod(cut, 0o644)
    r_whole = run_sh("--export", tmp_path / "whole", src)
    r_cut = run_sh("--export", tmp_path / "cut", cut)
    assert r_whole.rc == 0 and r_cut.rc == 0, (r_whole, r_cut)
    with open(tmp_path / "cut" / "cut.pcapng" / "index.csv", newline="") as fh:
        rows = [row for row in csv.DictReader(fh) if not row["carried_by"].startswith("attachment")]
    assert rows and rows[-1]["complete"] == "no", rows
    assert all(row["complete"] == "yes" for row in rows[:-1])
    for row in rows:
        data = (tmp_path / "cut" / "cut.pcapng" / row["file"]).read_bytes()
        full = (tmp_path / "whole" / "pop3-retrieve.pcapng" / row["file"].replace("-truncated", "")).read_bytes()
        if row["complete"] == "no":
            assert len(data) < len(full) and full.startswith(data) and int(row["exported_bytes"]) == len(data)
        else:
            assert data == full


def test_export_needs_a_directory(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    r = run_sh("--export", f, BUNDLED / "smtp-attachments.pcapng")
    assert r.rc == 2 and "--export needs a directory" in r.err, r
