"""Captures that start in the middle of a session (issue 13, item 7).

A capture started late has no SYN, no greeting and no capability list for the
sessions already under way. Each real-server capture with logins is cut with
editcap so that it starts at the segment carrying the first login command of
one session (the built-in dissector, without mailsec, says which frame that
is). mailsec must still take that session up by its port, show every one of
its frames, and decode each of its logins exactly as the generator's ground
truth says; the sessions after it are whole and must match too. Taking a
session up mid-stream is no trouble of the stream's: no gap, no malformed
alert, no overlap conflict.
"""
import json
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

from conftest import BUNDLED, _stage
from test_credentials import FIELDS, check_attempts

# the built-in dissector's field for a client command, and the commands that start a login
LOGIN = {"smtp": ("smtp.req.command", {"AUTH"}),
         "pop3": ("pop.request.command", {"USER", "APOP", "AUTH"}),
         "imap": ("imap.request.command", {"LOGIN", "AUTHENTICATE"})}
CAPTURES = ["smtp-auth-mechs", "pop3-auth-mechs", "imap-auth-mechs", "smtp-auth-bruteforce",
            "pop3-cleartext", "imap-cleartext"]
TROUBLE = ("mailsec.sequence.gap", "mailsec.sequence.overlap_conflict", "mailsec.malformed.")


def cut_case(tshark, name):
    """(cut capture, the chosen session and those after it, stage folder)."""
    truth = json.loads((BUNDLED / (name + ".json")).read_text())
    cap = BUNDLED / (name + ".pcapng")
    with_logins = [s for s in truth["sessions"] if s["auth"] and not any(a["tls"] for a in s["auth"])]
    assert with_logins, "%s: no cleartext session with logins" % name
    chosen = with_logins[len(with_logins) // 2]
    field, commands = LOGIN[chosen["protocol"]]
    rows = tshark.fields(cap, ["frame.number", "tcp.srcport", field], plugin=False)
    port = str(chosen["client_port"])
    starts = [int(r[0]) for r in rows if r[1] == port and r[2].upper() in commands]
    assert starts, "%s: the built-in dissector shows no login command from port %s" % (name, port)
    stage = pathlib.Path(tempfile.mkdtemp(prefix="mid-", dir=str(_stage())))
    os.chmod(stage, 0o777)
    part = stage / (name + "-from-%d.pcapng" % starts[0])
    subprocess.run(["editcap", "-r", str(cap), str(part), "%d-%d" % (starts[0], 10 ** 9)], check=True,
                   stdout=subprocess.DEVNULL)
    os.chmod(part, 0o644)
    later = [s for s in truth["sessions"] if truth["sessions"].index(s) >= truth["sessions"].index(chosen)]
    return part, chosen, later, stage


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_starting_mid_session(tshark, name):
    part, chosen, sessions, stage = cut_case(tshark, name)
    try:
        wide = FIELDS + ["tcp.len", "mailsec.proto", "mailsec.detected_by", "mailsec.alert.name"]
        rows = [dict(zip(wide, r)) for r in tshark.fields(part, wide)]
        assert rows, "the cut capture is empty"
        for s in sessions:
            port = str(s["client_port"])
            frames = [r for r in rows if port in (r["tcp.srcport"], r["tcp.dstport"])]
            assert frames, "session %s missing from the cut capture" % port
            blind = [r["frame.number"] for r in frames if not r["mailsec.proto"]]
            assert not blind, "session %s: frames without mailsec: %s" % (port, blind[:10])
            assert {r["mailsec.proto"] for r in frames} == {s["protocol"]}
            assert {r["mailsec.detected_by"] for r in frames} == {"port"}
            check_attempts(frames, s, keys_given=False)
        trouble = sorted({a for r in rows for a in r["mailsec.alert.name"].split(",")
                          if a and a.startswith(TROUBLE)})
        assert not trouble, "alerts for a stream that only began late: %s" % trouble
    finally:
        shutil.rmtree(stage, ignore_errors=True)
