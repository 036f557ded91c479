"""The main command's JSON lines (--json), its TCP trouble counts and slowest
reply, its progress lines, and many captures into SQLite (--db, GNU parallel).

Expected values come from the generator's ground truth (logins, messages) or
from Wireshark's own fields read without mailsec (TCP analysis, frame times),
never from mailsec's output; the database is checked against per-capture runs.
"""
import collections
import json
import os
import pathlib
import sqlite3
import subprocess

import pytest

from conftest import BUNDLED, REALWORLD
from test_main_command import run_sh, truth


def objects(r, kind="session"):
    out = []
    for line in r.out.splitlines():
        o = json.loads(line)                            # every line is one JSON object
        assert o["type"] in ("session", "capture"), o
        if o["type"] == kind:
            out.append(o)
    return out


def builtin(cap, fields, display_filter=None):
    """Rows of Wireshark's own fields, without mailsec (as root: no plugin folder is read)."""
    cmd = ["tshark", "-n", "-r", str(cap), "-T", "fields", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    if display_filter:
        cmd += ["-Y", display_filter]
    out = subprocess.run(cmd, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    return [line.split("\t") for line in out.stdout.splitlines()]


@pytest.mark.parametrize("name", ["imap-auth-mechs", "smtp-auth-starttls", "pop3-retrieve-stls", "smtp-attachments"])
def test_json_logins_and_messages_match_the_ground_truth(name):
    t = truth(name)
    args = [BUNDLED / (name + ".pcapng")]
    if (BUNDLED / (name + ".keys")).exists():
        args.append(BUNDLED / (name + ".keys"))
    r = run_sh("--json", *args)
    assert r.rc == 0, r
    sessions = {o["stream"]: o for o in objects(r)}
    assert set(sessions) == {s["tcp_stream"] for s in t["sessions"]}
    for s in t["sessions"]:
        o = sessions[s["tcp_stream"]]
        assert o["protocol"] == s["protocol"]
        assert [(a["mechanism"], a["result"]) for a in o["logins"]] == \
            [(a["mechanism"], a["result"] or "unknown") for a in s["auth"]]
        assert [a["user"] for a in o["logins"] if a["user"]] == \
            [a["username"] for a in s["auth"] if a["username"]]
        sent = [m["data_sha256"] for m in s.get("messages", []) if m.get("data_sha256")]
        got = [m["sha256"] for m in o["messages"] if m["carried_by"].startswith("SMTP")]
        assert got == sent
        got = [m["sha256"] for m in o["messages"] if m["carried_by"] == "POP3 RETR"]
        assert got == [m["received_sha256"] for m in s.get("retrieved", [])]
    (cap,) = objects(r, "capture")
    assert cap["sessions"] == len(t["sessions"]) and cap["error"] is None


def test_tcp_trouble_is_wiresharks_own():
    """Per session, over the real-world corpus: retransmissions, duplicate ACKs,
    zero windows and resets, as Wireshark's TCP analysis counts them on that
    stream (read without mailsec)."""
    r = run_sh("--json", REALWORLD)
    assert r.rc in (0, 1), r
    by_capture = collections.defaultdict(list)
    for o in objects(r):
        by_capture[o["capture"]].append(o)
    assert len(by_capture) > 20
    troubled = 0
    for label, sessions in by_capture.items():
        rows = builtin(label, ["tcp.stream", "tcp.analysis.retransmission", "tcp.analysis.duplicate_ack",
                               "tcp.analysis.zero_window", "tcp.flags.reset"])
        want = collections.defaultdict(collections.Counter)
        for stream, rt, dup, zw, rst in rows:
            if not stream:
                continue
            want[int(stream)]["retransmissions"] += rt == "1"
            want[int(stream)]["duplicate_acks"] += dup == "1"
            want[int(stream)]["zero_windows"] += zw == "1"
            want[int(stream)]["resets"] += rst in ("1", "True")
        for o in sessions:
            w = want[o["stream"]]
            assert o["tcp"] == {k: w[k] for k in ("retransmissions", "duplicate_acks", "zero_windows", "resets")}, \
                (label, o["stream"])
            troubled += any(o["tcp"].values())
    assert troubled, "no session with TCP trouble in the corpus: the check compared only zeros"


def test_slowest_reply_is_a_server_frame_after_a_client_one():
    """The slowest reply's delay is the time between its frame and a client frame
    of the same stream before it (Wireshark's frame times), and no reply of the
    session took longer by the frame times of request and reply."""
    cap = BUNDLED / "smtp-auth-mechs.pcapng"
    r = run_sh("--json", cap)
    assert r.rc == 0, r
    rows = builtin(cap, ["frame.number", "tcp.stream", "frame.time_epoch", "tcp.srcport", "tcp.len"])
    times = {int(f): (int(s), float(t), int(p), int(n or 0)) for f, s, t, p, n in rows}
    checked = 0
    for o in objects(r):
        slow = o["slowest_reply"]
        assert slow, o["stream"]
        server_port = int(o["server"].rsplit(":", 1)[1])
        stream, t_reply, port, _ = times[slow["frame"]]
        assert stream == o["stream"] and port == server_port
        client_before = [t for f, (s, t, p, n) in times.items()
                         if s == stream and p != server_port and n > 0 and f < slow["frame"]]
        assert any(abs((t_reply - t) - slow["seconds"]) < 2e-6 for t in client_before)
        checked += 1
    assert checked


def test_progress_on_stderr_for_slow_captures():
    r = run_sh(BUNDLED / "smtp-starttls.pcapng", env={"MAILSEC_PROGRESS_AFTER": "0"})
    assert r.rc == 0, r
    assert "smtp-starttls.pcapng: still analysing" in r.err, r


def _db_rows(db, sql, *args):
    con = sqlite3.connect(str(db))
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def test_db_over_the_realworld_corpus_equals_per_capture_runs(tmp_path):
    """run.sh --db over ../shared/realworld with GNU parallel (two jobs, the two
    job slots given as `--sshlogin :` twice: this machine, as sshd is not run
    in CI): each capture's sessions, logins, probes, messages and alerts in the
    database are those its own --json run gives. Run again, nothing doubles."""
    db = tmp_path / "mail.db"
    os.chmod(tmp_path, 0o755)
    r = run_sh("--db", db, "--jobs", "2", "--sshlogin", ":", "--sshlogin", ":", REALWORLD)
    assert r.rc in (0, 1), r
    caps = _db_rows(db, "SELECT path, sessions, error FROM captures")
    found = [p for p in REALWORLD.rglob("*") if p.suffix in (".pcap", ".pcapng")]
    assert {pathlib.Path(p) for p, _, _ in caps} == {p.resolve() for p in found}
    counts = {t: _db_rows(db, "SELECT count(*) FROM %s" % t)[0][0]
              for t in ("captures", "sessions", "logins", "probes", "messages", "alerts")}
    assert counts["sessions"] > 0 and counts["alerts"] > 0
    # against per-capture runs of a sample (each one tshark)
    sample = sorted((p for p, n, e in caps if n), key=lambda p: p)[::7][:6]
    for path in sample:
        one = run_sh("--json", path)
        sessions = objects(one)
        assert _db_rows(db, "SELECT count(*) FROM sessions WHERE path = ?", path)[0][0] == len(sessions)
        for table, key in (("logins", "logins"), ("probes", "probes"), ("messages", "messages"),
                           ("alerts", "alerts")):
            n = _db_rows(db, "SELECT count(*) FROM %s WHERE path = ?" % table, path)[0][0]
            assert n == sum(len(o[key]) for o in sessions), (path, table)
        users = sorted(u or "" for (u,) in _db_rows(db, "SELECT user FROM logins WHERE path = ?", path))
        assert users == sorted(a["user"] or "" for o in sessions for a in o["logins"])
    # again, one capture: its rows are replaced, not added
    again = run_sh("--db", db, sample[0])
    assert again.rc == 0, again
    after = {t: _db_rows(db, "SELECT count(*) FROM %s" % t)[0][0] for t in counts}
    assert after == counts


def test_db_needs_a_file_and_jobs_need_db(tmp_path):
    r = run_sh("--db", tmp_path, BUNDLED / "smtp-starttls.pcapng")
    assert r.rc == 2 and "--db needs a file" in r.err, r
    r = run_sh("--jobs", "2", BUNDLED / "smtp-starttls.pcapng")
    assert r.rc == 2 and "go with --db" in r.err, r
