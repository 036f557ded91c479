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


# --- a capture may begin anywhere ------------------------------------------------------

def _cleartext_port_captures():
    out = []
    for j in sorted(BUNDLED.glob("*.json")):
        truth = json.loads(j.read_text())
        if truth["transport"] == "cleartext" and truth["expect_detected_by"] == "port":
            out.append(j.stem)
    return out


def _alert_kinds(tshark, cap):
    kinds, blind = set(), []
    for r in tshark.fields(cap, ["frame.number", "tcp.len", "mailsec.proto", "mailsec.alert.name"]):
        kinds.update(a for a in r[3].split(",") if a)
        if r[1] not in ("", "0") and not r[2]:
            blind.append(int(r[0]))
    return kinds, blind


# A kind a cut may show that the whole capture shows otherwise: STARTTLS
# accepted and then not used (stripped), cut after the accepting reply, leaves a
# capability list without STARTTLS on a port that expects it, which is what the
# note says.
SHOWN_OTHERWISE = {"mailsec.starttls.capability_stripped": "mailsec.starttls.stripped"}


@pytest.mark.parametrize("name", _cleartext_port_captures())
def test_starting_anywhere_invents_no_alert(tshark, name):
    """Cut to start at every third payload frame (editcap), a real-server
    capture raises no kind of alert the whole capture does not raise: what
    came before the capture began (a greeting, an APOP timestamp, MAIL FROM,
    a capability list) is unknown, never held against the session. And every
    payload frame left is still shown as mail."""
    cap = BUNDLED / (name + ".pcapng")
    whole, _ = _alert_kinds(tshark, cap)
    starts = [int(r[0]) for r in tshark.fields(cap, ["frame.number"], display_filter="tcp.len > 0", plugin=False)]
    stage = pathlib.Path(tempfile.mkdtemp(prefix="anywhere-", dir=str(_stage())))
    os.chmod(stage, 0o777)
    found = []
    try:
        for f in starts[1::3]:
            part = stage / ("%s-from-%d.pcapng" % (name, f))
            subprocess.run(["editcap", "-r", str(cap), str(part), "%d-%d" % (f, 10 ** 9)], check=True,
                           stdout=subprocess.DEVNULL)
            os.chmod(part, 0o644)
            kinds, blind = _alert_kinds(tshark, part)
            new = {k for k in kinds - whole if SHOWN_OTHERWISE.get(k) not in whole}
            if new or blind:
                found.append((f, sorted(new), blind[:5]))
            part.unlink()
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    assert not found, "starting at frame F: (F, new alert kinds, frames without mailsec): %s" % found[:10]
