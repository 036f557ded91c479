"""Replies, probes, envelope, messages, attachments, deletions and smuggling
of the real-server captures, checked against the generator's ground truth.

captures/driver.py drove real clients against real Postfix and Dovecot (and,
where they cannot answer, the scripted peer) and wrote down each command,
each reply, each probe, the SHA-256 of every message it sent and of every
message it retrieved, each attachment's decoded hash, and each smuggling
sequence. Nothing expected here is read back from mailsec. Every check runs
in one pass and with -2, over cleartext, STARTTLS and implicit TLS (keys given).
"""
import re

import pytest

from conftest import ground_truth_captures
from e2e import table

FIELDS = ["frame.number", "tcp.srcport", "tcp.dstport",
          "mailsec.reply.code", "mailsec.reply.status", "mailsec.reply.command",
          "mailsec.enum.command", "mailsec.enum.target", "mailsec.enum.verdict",
          "mailsec.msg.sha256", "mailsec.msg.size", "mailsec.msg.source", "mailsec.msg.truncated",
          "mailsec.msg.mail_from", "mailsec.msg.rcpt_to",
          "mailsec.msg.subject", "mailsec.msg.header_from", "mailsec.msg.message_id", "mailsec.msg.reply_to",
          "mailsec.msg.attachment", "mailsec.msg.attachment.size", "mailsec.msg.attachment.sha256",
          "mailsec.msg.url", "mailsec.msg.deleted", "mailsec.msg.expunged",
          "mailsec.smuggling.sequence", "mailsec.smuggling.offset", "mailsec.smuggling.line",
          "mailsec.smuggling.command", "mailsec.alert.name"]

CASES = ground_truth_captures()
# every attachment the generator sent, by the SHA-256 of the message that carried it
SENT_ATTACHMENTS = {m["data_sha256"]: [(a["filename"], a["size"], a["sha256"]) for a in m.get("attachments", [])]
                    for c in CASES for s in c.values[0][2]["sessions"] for m in s.get("messages", [])
                    if m.get("data_sha256")}

# README: the verdict of each reply code
VERDICT = {"250": "exists", "251": "exists", "252": "cannot-verify", "550": "unknown", "551": "unknown",
           "553": "unknown", "500": "disabled", "502": "disabled", "504": "disabled"}


def _rows(tshark, cap, keys, two_pass):
    return table(tshark, cap, FIELDS, display_filter="mailsec", extra=["-2"] if two_pass else [], keylog=keys)


def _all(rows, field):
    return [v for r in rows for v in r[field]]


def _verb(protocol, command):
    words = command.split()
    if protocol == "imap":
        words = words[1:]
        if words and words[0].upper() == "UID" and len(words) > 1:
            return "UID " + words[1].upper()
    return words[0].upper() if words else ""


def expected_replies(session):
    """(command, reply) pairs, in order, from what the client sent and the server answered."""
    out = []
    proto = session["protocol"]
    for ex in session.get("exchanges", []):
        verb = _verb(proto, ex["command"])
        for i, rep in enumerate(ex["replies"]):
            code = rep["code"]
            if proto == "imap" and code not in ("OK", "NO", "BAD"):
                continue    # an untagged BYE is no tagged reply
            if proto == "smtp" and verb in ("DATA", "BDAT") and i >= 1:
                # the reply to the end of data; any after it answer commands
                # smuggled inside the message (the server ended DATA early)
                out.append((("<CRLF>.<CRLF>" if verb == "DATA" else verb) if i == 1 else "(smuggled)", code))
                continue
            if (proto == "smtp" and code == "334") or (proto == "pop3" and code == "+"):
                continue    # a challenge: the exchange goes on (auth tests cover it)
            out.append((verb, code))
    return out


def seen_replies(frames, protocol):
    out = []
    for r in frames:
        commands = r["mailsec.reply.command"]
        codes = r["mailsec.reply.code"] if protocol == "smtp" else r["mailsec.reply.status"]
        assert len(codes) == len(commands), "frame %s: %r / %r" % (r["frame.number"], codes, commands)
        out += [(c, k) for c, k in zip(commands, codes) if not (protocol == "smtp" and k == "334")]
    return out


def _client_ports(truth):
    return [s for s in truth["sessions"] if s.get("exchanges")]


def _rows_of(rows, session):
    port = str(session["client_port"])
    return [r for r in rows if port in r["tcp.srcport"] or port in r["tcp.dstport"]]


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("case", CASES)
def test_replies_pair_with_their_commands(tshark, case, two_pass):
    cap, keys, truth = case
    rows = _rows(tshark, cap, keys, two_pass)
    for session in _client_ports(truth):
        if session["transport"] != "cleartext" and not keys:
            continue
        frames = _rows_of(rows, session)
        want = expected_replies(session)
        got = seen_replies(frames, session["protocol"])
        # the exchanges the generator recorded are a subsequence of what
        # mailsec paired (the generator does not record the greeting-time
        # CAPA/EHLO of a library, nor the challenge steps of a login)
        it = iter(got)
        missing = [w for w in want if w not in it]
        assert not missing, "client port %s: replies not paired as sent: %s\nmailsec: %s" % (
            session["client_port"], missing[:5], got[:20])


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("case", [c for c in CASES if any(s.get("probes") for s in c.values[0][2]["sessions"])])
def test_probes(tshark, case, two_pass):
    cap, keys, truth = case
    rows = _rows(tshark, cap, keys, two_pass)
    for session in truth["sessions"]:
        if not session.get("probes"):
            continue
        frames = _rows_of(rows, session)
        verdicts = [(c, t, v) for r in frames if r["mailsec.enum.verdict"]
                    for c, t, v in zip(r["mailsec.enum.command"][-len(r["mailsec.enum.verdict"]):],
                                       r["mailsec.enum.target"][-len(r["mailsec.enum.verdict"]):],
                                       r["mailsec.enum.verdict"])]
        want = []
        for p in session["probes"]:
            if p["command"] == "RCPT" and p["code"] not in ("550", "551", "553"):
                continue    # an accepted recipient is no probe
            want.append((p["command"], p["argument"], VERDICT.get(p["code"], "refused")))
        assert verdicts == want
        # a note on each VRFY and EXPN, and the threshold (3) warning once reached
        names = _all(frames, "mailsec.alert.name")
        assert names.count("mailsec.enum.vrfy_expn_used") == sum(1 for p in session["probes"]
                                                                 if p["command"] in ("VRFY", "EXPN"))
        assert names.count("mailsec.enum.enumeration") == (1 if len(want) >= 3 else 0)


def _smtp_messages(truth):
    return [(s, m) for s in truth["sessions"] if s["protocol"] == "smtp" for m in s.get("messages", [])
            if m.get("data_sha256") and m.get("accepted", True)]


def _expected_size_and_hash(m):
    """The message as the server reads it. Lines end with CR LF (RFC 5321
    2.3.8): a line that begins with a dot after a CR LF loses it (4.5.2).
    The smuggling messages were sent raw, not stuffed, so a look-alike whose
    dot follows CR LF loses that dot; the generator recorded the raw bytes."""
    sm = m.get("smuggling")
    if sm and bytes.fromhex(sm["sequence_hex"]).startswith(b"\r\n") and \
            bytes.fromhex(sm["sequence_hex"])[2:3] == b".":
        return m["data_size"] - 1, None
    return m["data_size"], m["data_sha256"]


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("case", [c for c in CASES if _smtp_messages(c.values[0][2])])
def test_sent_messages(tshark, case, two_pass):
    cap, keys, truth = case
    if truth["transport"] != "cleartext" and not keys:
        pytest.skip("TLS without keys")
    rows = _rows(tshark, cap, keys, two_pass)
    for session in truth["sessions"]:
        msgs = [m for m in session.get("messages", []) if m.get("data_sha256") and m.get("accepted", True)]
        if not msgs:
            continue
        frames = _rows_of(rows, session)
        ends = [r for r in frames if r["mailsec.msg.sha256"]]
        got = [(h, int(n)) for r in ends for h, n in zip(r["mailsec.msg.sha256"], r["mailsec.msg.size"])]
        assert len(got) == len(msgs), "client port %s: %d messages, ground truth %d" % (
            session["client_port"], len(got), len(msgs))
        for (sha, size), m in zip(got, msgs):
            want_size, want_sha = _expected_size_and_hash(m)
            assert size == want_size
            if want_sha:
                assert sha == want_sha
        # the envelope on the frame that completes each message
        for r, m in zip(ends, msgs):
            assert r["mailsec.msg.mail_from"] == [m["mail_from"]]
            assert sorted(set(r["mailsec.msg.rcpt_to"])) == sorted(set(m["rcpt_to"]))
        assert all(t == "0" for r in ends for t in r["mailsec.msg.truncated"])


def _decode_header(v):
    """RFC 2047 decoding by Python's email package: an independent decoder."""
    import email.header
    return str(email.header.make_header(email.header.decode_header(v)))


@pytest.mark.parametrize("case", [c for c in CASES if any(m.get("attachments") or m.get("headers")
                                                          for s in c.values[0][2]["sessions"]
                                                          for m in s.get("messages", []) + s.get("retrieved", []))])
def test_headers_attachments_urls(tshark, case):
    cap, keys, truth = case
    if truth["transport"] != "cleartext" and not keys:
        pytest.skip("TLS without keys")
    rows = _rows(tshark, cap, keys, False)
    for session in truth["sessions"]:
        msgs = [m for m in session.get("messages", []) + session.get("retrieved", []) if m.get("headers")]
        if session.get("retrieved"):
            msgs = [m for m in session["retrieved"] if m.get("headers")]
        if not msgs:
            continue
        frames = _rows_of(rows, session)
        subjects = _all(frames, "mailsec.msg.subject")
        ids = _all(frames, "mailsec.msg.message_id")
        for m in msgs:
            h = {k.lower(): v for k, v in m["headers"]}
            if "subject" in h:
                assert _decode_header(h["subject"]) in subjects
            if "message-id" in h:
                assert h["message-id"] in ids
        names = _all(frames, "mailsec.msg.attachment")
        sizes = [int(x) for x in _all(frames, "mailsec.msg.attachment.size")]
        hashes = _all(frames, "mailsec.msg.attachment.sha256")
        got = list(zip(names, sizes, hashes))
        if session.get("retrieved"):
            # a retrieved message is one that was sent: its attachments are
            # those of the SMTP message it stored (ground truth of the sender)
            want = [a for m in msgs for a in SENT_ATTACHMENTS.get(m.get("smtp_data_sha256"), [])]
            assert set(want) <= set(got)
        else:
            want = [(a["filename"], a["size"], a["sha256"]) for m in msgs for a in m.get("attachments", [])]
            assert got == want
        urls = set(_all(frames, "mailsec.msg.url"))
        for m in msgs:
            for u in m.get("urls", []):
                assert u["url"] in urls


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("case", [c for c in CASES if any(s.get("retrieved") for s in c.values[0][2]["sessions"])])
def test_retrieved_messages_and_deletions(tshark, case, two_pass):
    cap, keys, truth = case
    if truth["transport"] != "cleartext" and not keys:
        pytest.skip("TLS without keys")
    rows = _rows(tshark, cap, keys, two_pass)
    for session in truth["sessions"]:
        if not session.get("retrieved"):
            continue
        frames = _rows_of(rows, session)
        whole = [(h, int(n)) for r in frames
                 for h, n, src in zip(r["mailsec.msg.sha256"], r["mailsec.msg.size"], r["mailsec.msg.source"])
                 if src in ("POP3 RETR", "IMAP FETCH")]
        want = [(m["received_sha256"], m["received_size"]) for m in session["retrieved"]]
        assert whole == want
        # deletions: one per DELE / STORE \Deleted / MOVE to Trash the server accepted
        marked = 0
        for ex in session["exchanges"]:
            cmd = ex["command"].upper()
            ok = ex["replies"] and ex["replies"][-1]["code"] in ("+OK", "OK")
            if ok and (cmd.startswith("DELE ") or ("STORE" in cmd and "\\DELETED" in cmd) or
                       re.search(r"\bMOVE\b.*TRASH", cmd)):
                marked += 1
        deleted = [int(v) for v in _all(frames, "mailsec.msg.deleted")]
        assert (max(deleted) if deleted else 0) == marked


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("case", [c for c in CASES if any(m.get("smuggling") for s in c.values[0][2]["sessions"]
                                                          for m in s.get("messages", []))])
def test_smuggling(tshark, case, two_pass):
    cap, keys, truth = case
    rows = _rows(tshark, cap, keys, two_pass)
    for session in truth["sessions"]:
        for m in session.get("messages", []):
            sm = m.get("smuggling")
            if not sm:
                continue
            frames = _rows_of(rows, session)
            seqs = _all(frames, "mailsec.smuggling.sequence")
            assert seqs == [sm["sequence_hex"]], "client port %s" % session["client_port"]
            assert _all(frames, "mailsec.smuggling.offset") == [str(sm["offset"])]
            assert _all(frames, "mailsec.smuggling.line") == [sm["smuggled_commands"][0]]
            assert _all(frames, "mailsec.smuggling.command") == ["1"]
            names = _all(frames, "mailsec.alert.name")
            assert names.count("mailsec.smtp.smuggling") == 1
            # the server's own replies say whether the look-alike ended its
            # DATA: then it answered the smuggled commands, and mailsec says so
            worked = sm["server_ended_data_at"] == "sequence"
            assert names.count("mailsec.smtp.smuggling_answered") == (1 if worked else 0)
            answered = [c for c in _all(frames, "mailsec.reply.command") if c == "(smuggled)"]
            # the first of the server's replies after the look-alike answers it
            # as the end of data; the rest answer the smuggled commands
            assert len(answered) == (len(sm["replies"]) - 1 if worked else 0)
            # text inside DATA is never a command: no STARTTLS or login from it
            # (the one STARTTLS alert due: the server offered it, the client sent
            # its message in clear without asking)
            st = session["starttls"]
            unused = st["offered"] and not st["requested"] and session["messages"]
            assert [n for n in names if n.startswith(("mailsec.starttls", "mailsec.auth"))] == \
                (["mailsec.starttls.offered_not_used"] if unused else [])


def _case(name):
    for c in CASES:
        if c.values[0][2]["name"] == name:
            return c.values[0]
    pytest.skip("no %s capture" % name)


def _domain(addr):
    return addr.rsplit("@", 1)[-1].strip("<>").lower()


def _header(m, name):
    return next((v for k, v in m["headers"] if k.lower() == name.lower()), None)


def _addr(v):
    m = re.search(r"<([^>]+)>", v or "")
    return m.group(1) if m else (v or "").strip()


def test_spoofed_sender(tshark):
    """Envelope sender and From header of different domains: a warning on the
    frame that completes the message; a Reply-To elsewhere: a note."""
    cap, keys, truth = _case("smtp-spoof")
    rows = table(tshark, cap, FIELDS, display_filter="mailsec", keylog=keys)
    (m,) = truth["sessions"][0]["messages"]
    assert _domain(m["mail_from"]) != _domain(_addr(_header(m, "From")))
    ends = [r for r in rows if r["mailsec.msg.sha256"]]
    assert len(ends) == 1
    assert ends[0]["mailsec.alert.name"].count("mailsec.msg.sender_mismatch") == 1
    want_reply_to = _domain(_addr(_header(m, "Reply-To"))) != _domain(_addr(_header(m, "From")))
    assert ends[0]["mailsec.alert.name"].count("mailsec.msg.reply_to_mismatch") == (1 if want_reply_to else 0)
    assert _all(rows, "mailsec.msg.header_from") == [_header(m, "From")]


def test_resent_envelope(tshark):
    """The client sent MAIL FROM and RCPT TO twice in new bytes: a note on each
    repeat, none on the first of each."""
    cap, keys, truth = _case("smtp-resend")
    rows = table(tshark, cap, FIELDS + ["tcp.payload"], display_filter="mailsec", keylog=keys)
    s = truth["sessions"][0]
    cmds = [e["command"].split(":")[0].upper() + ":" + _addr(e["command"]) for e in s["exchanges"]
            if e["command"].upper().startswith(("MAIL", "RCPT"))]
    repeats = sum(1 for i, c in enumerate(cmds) if c in cmds[:i])
    assert repeats == 2
    assert _all(rows, "mailsec.alert.name").count("mailsec.msg.duplicate_envelope") == repeats


def test_mass_mailing_thresholds(tshark):
    """Thresholds as preferences: 10 recipients and 3 messages are reached in
    the mass-mail session, once each, on the 10th RCPT TO and on the frame that
    completes the 3rd message; with the defaults (50, 20) nothing."""
    cap, keys, truth = _case("smtp-massmail")
    s = truth["sessions"][0]
    rcpts = [e for e in s["exchanges"] if e["command"].upper().startswith("RCPT")]
    assert len(rcpts) >= 10 and len(s["messages"]) >= 3
    extra = ["-o", "mailsec.mass_rcpt_threshold:10", "-o", "mailsec.mass_msg_threshold:3"]
    rows = table(tshark, cap, FIELDS + ["smtp.req.parameter"], display_filter="mailsec", extra=extra, keylog=keys)
    hits = [r for r in rows if "mailsec.msg.mass_mailing" in r["mailsec.alert.name"]]
    assert len(hits) == 2
    # the 10th RCPT TO, counted from the built-in dissector's parameters
    seen, tenth = 0, None
    for r in rows:
        for p in r["smtp.req.parameter"]:
            if p.upper().startswith("TO:"):
                seen += 1
                if seen == 10:
                    tenth = r["frame.number"]
    ends = [r["frame.number"] for r in rows if r["mailsec.msg.sha256"]]
    assert sorted(h["frame.number"] for h in hits) == sorted([tenth, ends[2]])
    rows = table(tshark, cap, FIELDS, display_filter="mailsec", keylog=keys)
    assert "mailsec.msg.mass_mailing" not in _all(rows, "mailsec.alert.name")


def test_dangerous_attachments(tshark):
    """Each attachment whose name ends in an extension of the README's default
    list is flagged, and only those."""
    cap, keys, truth = _case("smtp-attachments")
    rows = table(tshark, cap, FIELDS, display_filter="mailsec", keylog=keys)
    listed = {"exe", "scr", "com", "pif", "bat", "cmd", "vbs", "vbe", "js", "jse", "wsf", "wsh", "hta", "msi",
              "msp", "jar", "ps1", "psm1", "lnk", "cpl", "reg", "chm", "scf", "iso", "img", "vhd", "vhdx", "dll",
              "apk", "application", "gadget", "docm", "dotm", "xlsm", "xltm", "xlam", "pptm", "potm", "ppam", "sldm"}
    names = [a["filename"] for m in truth["sessions"][0]["messages"] for a in m.get("attachments", [])]
    bad = [n for n in names if n.rsplit(".", 1)[-1].lower() in listed]
    assert bad, "the scenario lost its dangerous attachments"
    assert _all(rows, "mailsec.alert.name").count("mailsec.msg.dangerous_attachment") == len(bad)
