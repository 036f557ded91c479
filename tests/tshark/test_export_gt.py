"""Every message exported byte-exact: `tshark --export-objects mailsec,DIR`.

The expected bytes are the ground truth of captures/driver.py, never
mailsec's output: the SHA-256 and size of each message its SMTP client sent
(as the server reads it: CR LF . CR LF and dot-stuffing undone) and of each
message its POP3 and IMAP clients received (RETR, FETCH), in clear, after
STARTTLS and over implicit TLS (with the key log). Files are named
streamN-PROTO-DIR-SOURCE-NUMBER[-truncated].eml: the TCP stream, the
protocol, who sent it, how it was carried, and its order in the session.
"""
import collections
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import _stage, ground_truth_captures, realworld_captures
from e2e import table

NAME = re.compile(r"^stream(\d+)-(smtp|pop3|imap)-(c2s|s2c)-(data|bdat|retr|top|fetch|append)-(\d+)"
                  r"(-truncated)?\.eml$")
ATTACHMENT = re.compile(r"^stream(\d+)-(smtp|pop3|imap)-(c2s|s2c)-(data|bdat|retr|top|fetch|append)-(\d+)"
                        r"-att(\d+)(-truncated)?-([A-Za-z0-9._-]+)$")
CASES = [c for c in ground_truth_captures()
         if any(m.get("data_sha256") for s in c.values[0][2]["sessions"] for m in s.get("messages", []))
         or any(s.get("retrieved") for s in c.values[0][2]["sessions"])]


def export(tshark, cap, keys, extra=()):
    """{file name: bytes} that tshark's --export-objects mailsec wrote."""
    out = pathlib.Path(tempfile.mkdtemp(prefix="eo-", dir=str(_stage())))
    os.chmod(out, 0o777)
    try:
        rc, _, err = tshark.invoke(tshark.command(cap, list(extra) + ["-q", "--export-objects", "mailsec,%s" % out],
                                                  keylog=keys), cache=False)
        assert rc == 0, err
        return {p.name: p.read_bytes() for p in out.iterdir()}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def parsed(files):
    """{(stream, direction): [(source, number, truncated, bytes)]} in order (messages only)."""
    out = {}
    for name, data in files.items():
        if ATTACHMENT.match(name):
            continue
        m = NAME.match(name)
        assert m, "unexpected file name %r" % name
        stream, _, direction, source, number, cut = m.groups()
        out.setdefault((int(stream), direction), []).append((source, int(number), bool(cut), data))
    for v in out.values():
        v.sort(key=lambda t: t[1])
    return out


def sent(session):
    """(size, sha256 or None) of each message the client sent and the server accepted. The
    smuggling messages were sent raw: a look-alike whose dot follows CR LF loses that dot."""
    want = []
    for m in session.get("messages", []):
        if not m.get("data_sha256") or not m.get("accepted", True):
            continue
        sm = m.get("smuggling")
        seq = bytes.fromhex(sm["sequence_hex"]) if sm else b""
        if seq.startswith(b"\r\n") and seq[2:3] == b".":
            want.append((m["data_size"] - 1, None))
        else:
            want.append((m["data_size"], m["data_sha256"]))
    return want


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("case", CASES)
def test_exported_messages_match_the_ground_truth(tshark, case, two_pass):
    """In one pass, and in two (tshark -2; the GUI's Export Objects dialog
    likewise lists what a later pass over the capture queues)."""
    cap, keys, truth = case
    if truth["transport"] != "cleartext" and not keys:
        pytest.skip("TLS without keys")
    got = parsed(export(tshark, cap, keys, ["-2"] if two_pass else []))
    assert got, "nothing exported"
    for s in truth["sessions"]:
        stream = s["tcp_stream"]
        c2s = [t for t in got.get((stream, "c2s"), []) if t[0] in ("data", "bdat", "append")]
        want = sent(s)
        assert len(c2s) == len(want), "stream %s: %d sent messages exported, ground truth %d" % (
            stream, len(c2s), len(want))
        for (source, _, cut, data), (size, sha) in zip(c2s, want):
            assert not cut and len(data) == size, "stream %s" % stream
            if sha:
                assert hashlib.sha256(data).hexdigest() == sha, "stream %s" % stream
        s2c = [t for t in got.get((stream, "s2c"), []) if t[0] in ("retr", "fetch")]
        want = [(m["received_size"], m["received_sha256"]) for m in s.get("retrieved", [])]
        assert [(len(d), hashlib.sha256(d).hexdigest()) for _, _, _, d in s2c] == want, "stream %s" % stream
        assert not any(cut for _, _, cut, _ in s2c)
        # TOP: one file per answered TOP, a prefix of what RETR gave of that message
        tops = [t for t in got.get((stream, "s2c"), []) if t[0] == "top"]
        answered = [ex for ex in s.get("exchanges", []) if ex["command"].upper().startswith("TOP ")
                    and ex["replies"] and ex["replies"][-1]["code"] == "+OK"]
        assert len(tops) == len(answered), "stream %s" % stream
    # every file belongs to a session of the ground truth
    streams = {s["tcp_stream"] for s in truth["sessions"]}
    assert {k[0] for k in got} <= streams


# every attachment the generator sent, by the SHA-256 of the message that carried it
SENT_ATTACHMENTS = {m["data_sha256"]: [(a["size"], a["sha256"]) for a in m.get("attachments", [])]
                    for c in ground_truth_captures() for s in c.values[0][2]["sessions"]
                    for m in s.get("messages", []) if m.get("data_sha256")}


@pytest.mark.parametrize("case", [c for c in CASES if any(
        SENT_ATTACHMENTS.get(m.get("data_sha256") or m.get("smtp_data_sha256"))
        for s in c.values[0][2]["sessions"] for m in s.get("messages", []) + s.get("retrieved", []))])
def test_attachments_exported_decoded(tshark, case):
    """Each attachment, decoded (base64, quoted-printable), as a file of its own
    beside its message: size and SHA-256 as the generator made the file, in
    order, named after its message and its own name."""
    cap, keys, truth = case
    if truth["transport"] != "cleartext" and not keys:
        pytest.skip("TLS without keys")
    files = export(tshark, cap, keys)
    got = collections.defaultdict(list)
    for name, data in files.items():
        m = ATTACHMENT.match(name)
        if m:
            assert not m.group(7), name
            got[int(m.group(1))].append(((int(m.group(5)), int(m.group(6))), (len(data), hashlib.sha256(data).hexdigest())))
    for s in truth["sessions"]:
        msgs = [m["data_sha256"] for m in s.get("messages", []) if m.get("data_sha256") and m.get("accepted", True)]
        msgs += [m["smtp_data_sha256"] for m in s.get("retrieved", [])]
        want = [a for sha in msgs for a in SENT_ATTACHMENTS.get(sha, [])]
        have = [a for _, a in sorted(got.get(s["tcp_stream"], []))]
        assert have == want, "stream %s" % s["tcp_stream"]


def test_nothing_exported_without_messages(tshark):
    """A session with logins and no message exports nothing."""
    (case,) = [c.values[0] for c in ground_truth_captures() if c.values[0][2]["name"] == "imap-auth-mechs"]
    cap, keys, truth = case
    assert not any(s.get("messages") or s.get("retrieved") for s in truth["sessions"])
    assert export(tshark, cap, keys) == {}


def test_limit_cuts_and_names_truncated(tshark):
    """export_max_mb 0: every message is cut to nothing and named -truncated."""
    (case,) = [c.values[0] for c in CASES if c.values[0][2]["name"] == "smtp-attachments"]
    cap, keys, truth = case
    got = parsed(export(tshark, cap, keys, ["-o", "mailsec.export_max_mb:0"]))
    files = [t for v in got.values() for t in v]
    assert len(files) == len(sent(truth["sessions"][0]))
    assert all(cut and data == b"" for _, _, cut, data in files)


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("case", CASES)
def test_export_under_sanitizers(tshark_sanitized, case, two_pass):
    """The same export with the plugin built with AddressSanitizer and UBSan:
    no report (exit codes 86 and 87), and the same files."""
    cap, keys, truth = case
    if truth["transport"] != "cleartext" and not keys:
        pytest.skip("TLS without keys")
    files = export(tshark_sanitized, cap, keys, ["-2"] if two_pass else [])
    assert files
    assert all(NAME.match(n) or ATTACHMENT.match(n) for n in files)


CUT_CASES = [c for c in CASES if c.values[0][2]["name"] in
             ("pop3-retrieve", "imap-retrieve", "smtp-attachments", "pop3-retrieve-stls")]


@pytest.mark.parametrize("case", CUT_CASES)
def test_capture_cut_mid_message_exports_what_was_seen(tshark, case):
    """A capture that ends inside a message (cut with editcap after a full-size
    segment, the built-in tcp.len says which): in two passes, the message is
    exported as what was seen, named -truncated, and its bytes are a strict
    prefix of the whole message (the file the whole capture exports, checked
    against the ground truth above); every other file is whole and equal."""
    cap, keys, truth = case
    whole = export(tshark, cap, keys)
    assert whole
    rows = tshark.fields(cap, ["frame.number"], display_filter="tcp.len >= 1000", keylog=keys)
    cuts = [int(r[0]) for r in rows]
    assert cuts, "no long segment to cut after"
    stage = pathlib.Path(tempfile.mkdtemp(prefix="cut-", dir=str(_stage())))
    os.chmod(stage, 0o777)
    truncated = 0
    try:
        for n in cuts:
            part = stage / ("cut%d.pcapng" % n)
            subprocess.run(["editcap", "-r", str(cap), str(part), "1-%d" % n], check=True,
                           stdout=subprocess.DEVNULL)
            os.chmod(part, 0o644)
            got = export(tshark, part, keys, ["-2"])
            for name, data in got.items():
                if "-truncated" in name:
                    full = whole[name.replace("-truncated", "")]
                    assert len(data) < len(full) and full.startswith(data), "cut at %d: %s" % (n, name)
                    truncated += 1
                else:
                    assert whole.get(name) == data, "cut at %d: %s" % (n, name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    assert truncated, "no cut fell inside a message"


POP3_CASES = [c for c in CASES if any(s["protocol"] == "pop3" and s.get("retrieved") for s in c.values[0][2]["sessions"])]


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("case", POP3_CASES)
def test_pop3_messages_reach_imf(tshark, case, two_pass):
    """Each message a POP3 RETR or TOP returned is dissected by the built-in IMF
    dissector: imf.message_id on the POP3 frames, in the order the client asked
    for them, is the Message-ID of the message the ground truth says it got."""
    cap, keys, truth = case
    if truth["transport"] != "cleartext" and not keys:
        pytest.skip("TLS without keys")
    rows = table(tshark, cap, ["frame.number", "imf.message_id"], display_filter="pop && imf",
                 extra=["-2"] if two_pass else [], keylog=keys)
    got = [v for r in rows for v in r["imf.message_id"]]
    want = []
    for s in truth["sessions"]:
        ids = {m["number"]: m["message_id"] for m in s.get("retrieved", [])}
        for ex in s.get("exchanges", []):
            words = ex["command"].split()
            if words and words[0].upper() in ("RETR", "TOP") and ex["replies"] and \
                    ex["replies"][-1]["code"] == "+OK":
                want.append(ids[int(words[1])])
    assert got == want
    # and with the preference off, no IMF on POP3 (the POP3 dissector does not hand these over)
    off = table(tshark, cap, ["frame.number"], display_filter="pop && imf",
                extra=["-o", "mailsec.pop3_imf:FALSE"] + (["-2"] if two_pass else []), keylog=keys)
    assert off == []


@pytest.mark.parametrize("case", POP3_CASES)
def test_pop3_messages_in_wiresharks_imf_export(tshark, case):
    """Through IMF, Wireshark's own Export Objects > IMF lists POP3 messages too,
    in two passes as well (as the GUI does): each message RETR returned is
    there, byte-exact."""
    cap, keys, truth = case
    if truth["transport"] != "cleartext" and not keys:
        pytest.skip("TLS without keys")
    out = pathlib.Path(tempfile.mkdtemp(prefix="imf-", dir=str(_stage())))
    os.chmod(out, 0o777)
    try:
        rc, _, err = tshark.invoke(tshark.command(cap, ["-2", "-q", "--export-objects", "imf,%s" % out],
                                                  keylog=keys), cache=False)
        assert rc == 0, err
        got = collections.Counter(hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    want = collections.Counter(m["received_sha256"] for s in truth["sessions"] for m in s.get("retrieved", []))
    assert not want - got, "missing from the IMF export: %s" % (want - got)


MESSAGE_ID = re.compile(rb"(?im)^message-id:[ \t]*(<[^>\r\n]+>)")


def _export_with(tshark, path, kind, plugin):
    out = pathlib.Path(tempfile.mkdtemp(prefix="rw-", dir=str(_stage())))
    os.chmod(out, 0o777)
    try:
        rc, _, err = tshark.invoke(["-n", "-r", str(tshark.copy(path)), "-q", "--export-objects",
                                    "%s,%s" % (kind, out)], plugin=plugin, cache=False)
        assert rc in (0, 2), err   # 2: a capture damaged part-way (what was read counts)
        return {p.name: p.read_bytes() for p in out.iterdir()}
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.mark.parametrize("capture", [pytest.param(r, id=r["path"].split("/tests/")[-1])
                                     for r in realworld_captures()])
def test_realworld_messages_wireshark_exports(tshark, capture):
    """Over the real-world corpus: every message Wireshark's own IMF export
    finds (a file with a Message-ID, read by tshark without mailsec) is exported
    by mailsec too, with that Message-ID. IMAP header-only fetches (BODY[HEADER
    ...], which Wireshark exports as if they were messages) are fragments, not
    messages: their Message-IDs are left out when the built-in imap fields show
    such a fetch. Wireshark keeps SMTP dot-stuffing in its export, so the bytes
    themselves are not compared."""
    path = capture["abspath"]
    theirs = _export_with(tshark, path, "imf", plugin=False)
    ids = {m.group(1).lower() for d in theirs.values() for m in [MESSAGE_ID.search(d)] if m}
    if not ids:
        pytest.skip("Wireshark's IMF export finds no message with a Message-ID here")
    requests = " ".join(v for row in tshark.fields(path, ["imap.request"], display_filter="imap.request", plugin=False)
                        for v in row)
    header_fetch = re.search(r"(?i)\bFETCH\b[^\r\n]*(HEADER|BODY\.PEEK\[HEADER)", requests)
    ours = _export_with(tshark, path, "mailsec", plugin=True)
    mine = {m.group(1).lower() for n, d in ours.items() if n.endswith(".eml") for m in [MESSAGE_ID.search(d)] if m}
    missing = ids - mine
    if header_fetch:
        whole = {m.group(1).lower() for n, d in theirs.items() for m in [MESSAGE_ID.search(d)]
                 if m and re.search(rb"\r?\n\r?\n.", d, re.S)}   # a body after the header
        missing &= whole
    assert not missing, "exported by Wireshark's IMF, not by mailsec: %s" % sorted(missing)[:5]
