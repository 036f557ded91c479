"""STARTTLS end to end: injection, refusal, a missing reply, in SMTP, POP3 and IMAP.

Every capture here is written by this file with pcapgen (e2e.Capture), so
each expectation is what the test itself put on the wire: which segment
carried STARTTLS and what followed it, what the server answered, where the
ClientHello went. Names of fields and alerts are the README's; severities
come from the README's expert-info table.

One capture holds every conversation (one tshark run, memoised by conftest);
the frame numbering the test computed is checked against the built-in
tcp.payload before anything is read from mailsec.
"""
import base64

import pytest

from e2e import Capture, alerts, check_numbering, client_hello, frames_with, num, one, table, unhex

FIELDS = ["frame.number", "tcp.stream", "tcp.len", "tcp.payload", "mailsec.transport",
          "mailsec.starttls.command", "mailsec.starttls.result", "mailsec.starttls.boundary",
          "mailsec.starttls.cleartext_bytes", "mailsec.starttls.injected",
          "mailsec.alert.name", "mailsec.alert.severity",
          "mailsec.auth.username", "mailsec.auth.password", "mailsec.auth.exposed"]

# protocol -> (server port, greeting, STARTTLS request, positive reply, negative reply,
#              a command to pipeline after it, a server line to send with the OK)
PROTOCOLS = {
    "smtp": (25, b"220 mx.example.org ESMTP Postfix\r\n", b"STARTTLS\r\n",
             b"220 2.0.0 Ready to start TLS\r\n", b"454 4.7.0 TLS not available due to local problem\r\n",
             b"MAIL FROM:<attacker@example.org>\r\n", b"250-injected.example.org\r\n250 AUTH PLAIN\r\n"),
    "pop3": (110, b"+OK Dovecot (Debian) ready.\r\n", b"STLS\r\n",
             b"+OK Begin TLS negotiation now.\r\n", b"-ERR TLS support isn't enabled.\r\n",
             b"USER victim\r\n", b"+OK injected\r\n"),
    "imap": (143, b"* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.\r\n", b"a1 STARTTLS\r\n",
             b"a1 OK Begin TLS negotiation now.\r\n", b"a1 NO TLS support isn't enabled.\r\n",
             b"a2 LOGIN victim secret\r\n", b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n"),
}
# After a refusal the session goes on in clear with a login the test knows.
LOGIN_AFTER_REFUSAL = {
    "smtp": (b"AUTH PLAIN " + base64.b64encode(b"\0alice\0Wonderland-42") + b"\r\n",
             b"235 2.7.0 Authentication successful\r\n"),
    "pop3": (b"USER alice\r\n", b"+OK\r\n", b"PASS Wonderland-42\r\n", b"+OK Logged in.\r\n"),
    "imap": (b"a2 LOGIN alice Wonderland-42\r\n", b"a2 OK Logged in\r\n"),
}
USER, PASSWORD = "alice", "Wonderland-42"   # what LOGIN_AFTER_REFUSAL sends

KINDS = ["clean", "command_injection", "response_injection", "separate_segment", "refused", "no_reply"]


def build(cap, proto, kind):
    """One conversation; returns what the test knows about it."""
    port, greeting, request, ok, no, pipelined, extra = PROTOCOLS[proto]
    c = cap.conversation(port)
    k = {"conv": c, "kind": kind, "proto": proto}
    cap.send(c, "s", greeting)
    if kind == "command_injection":
        (k["request"],) = cap.send(c, "c", request + pipelined)
        k["injected"] = pipelined
    else:
        (k["request"],) = cap.send(c, "c", request)
    if kind == "separate_segment":
        # the same command, but in a segment of its own: not "in the same segment"
        cap.send(c, "c", pipelined)
    if kind == "refused":
        (k["reply"],) = cap.send(c, "s", no)
        k["later"] = []
        lines = LOGIN_AFTER_REFUSAL[proto]
        for i, line in enumerate(lines):
            k["later"] += cap.send(c, "c" if i % 2 == 0 else "s", line)
        c.close()
        return k
    if kind == "no_reply":
        k["reply"] = None
        c.ack("s")   # the server took the request; its reply is not in the capture
    elif kind == "response_injection":
        (k["reply"],) = cap.send(c, "s", ok + extra)
        k["injected"] = extra
        c.ack("c")
    else:
        (k["reply"],) = cap.send(c, "s", ok)
        c.ack("c")
    (k["hello"],) = cap.send(c, "c", client_hello())
    return k


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    cap = Capture()
    known = {(p, kind): build(cap, p, kind) for p in PROTOCOLS for kind in KINDS}
    path = cap.write(tmp_path_factory.mktemp("starttls") / "starttls.pcap")
    return cap, known, path


@pytest.fixture(scope="module")
def rows(tshark, capture):
    cap, _, path = capture
    r = table(tshark, path, FIELDS)
    check_numbering(r, cap)
    return r


def conv_rows(rows, cap, c):
    lo = cap.offsets[id(c)]
    return [r for r in rows if lo < num(r) <= lo + len(c.frames)]


def cleartext_before_hello(cap, k):
    """Payload bytes the test wrote in the conversation before its ClientHello."""
    hello = cap.number(k["hello"])
    return sum(len(p) for n, (_, p) in cap.payload_frames(k["conv"]).items() if n < hello)


CASES = [pytest.param(p, id=p) for p in PROTOCOLS]


@pytest.mark.parametrize("proto", CASES)
def test_command_injection(rows, capture, proto):
    """Plaintext pipelined after STARTTLS/STLS in the same segment: the alert on
    that segment's frame, and mailsec.starttls.injected = exactly the bytes the
    test put after the request."""
    cap, known, _ = capture
    k = known[(proto, "command_injection")]
    frames = conv_rows(rows, cap, k["conv"])
    at = cap.number(k["request"])
    assert frames_with(frames, "mailsec.starttls.command_injection") == [at]
    row = next(r for r in frames if num(r) == at)
    assert ("mailsec.starttls.command_injection", "error") in alerts(row)
    assert [unhex(v) for v in row["mailsec.starttls.injected"]] == [k["injected"]]
    assert [num(r) for r in frames if r["mailsec.starttls.injected"]] == [at]
    assert frames_with(frames, "mailsec.starttls.response_injection") == []


@pytest.mark.parametrize("proto", CASES)
def test_response_injection(rows, capture, proto):
    """Server lines in the same segment as the STARTTLS OK: the alert on the
    reply's frame, the injected field = the lines the test appended."""
    cap, known, _ = capture
    k = known[(proto, "response_injection")]
    frames = conv_rows(rows, cap, k["conv"])
    at = cap.number(k["reply"])
    assert frames_with(frames, "mailsec.starttls.response_injection") == [at]
    row = next(r for r in frames if num(r) == at)
    assert ("mailsec.starttls.response_injection", "error") in alerts(row)
    assert [unhex(v) for v in row["mailsec.starttls.injected"]] == [k["injected"]]
    assert [num(r) for r in frames if r["mailsec.starttls.injected"]] == [at]
    assert frames_with(frames, "mailsec.starttls.command_injection") == []
    assert one(row, "mailsec.starttls.result") == "accepted"


@pytest.mark.parametrize("kind", ["clean", "separate_segment"])
@pytest.mark.parametrize("proto", CASES)
def test_no_injection_without_same_segment_plaintext(rows, capture, proto, kind):
    """STARTTLS alone in its segment and the OK alone in its own (clean), or the
    next command in a segment of its own (README: injection is plaintext "in the
    same segment"): no injection alert, no injected bytes, and TLS after the OK."""
    cap, known, _ = capture
    k = known[(proto, kind)]
    frames = conv_rows(rows, cap, k["conv"])
    assert frames_with(frames, "mailsec.starttls.command_injection") == []
    assert frames_with(frames, "mailsec.starttls.response_injection") == []
    assert [num(r) for r in frames if r["mailsec.starttls.injected"]] == []
    reply = cap.number(k["reply"])
    assert [(num(r), one(r, "mailsec.starttls.result")) for r in frames if r["mailsec.starttls.result"]] == \
        [(reply, "accepted")]


@pytest.mark.parametrize("kind", ["clean", "command_injection", "response_injection", "separate_segment"])
@pytest.mark.parametrize("proto", CASES)
def test_accepted_boundary_and_cleartext_bytes(rows, capture, proto, kind):
    """After an accepted STARTTLS the boundary is the OK's frame (the last
    frame in clear), the frames after it are starttls, and
    mailsec.starttls.cleartext_bytes counts every payload byte the test wrote
    before the ClientHello (injected bytes crossed in clear too)."""
    cap, known, _ = capture
    k = known[(proto, kind)]
    frames = conv_rows(rows, cap, k["conv"])
    reply = cap.number(k["reply"])
    mail = [r for r in frames if r["mailsec.transport"]]
    assert {one(r, "mailsec.transport") for r in mail if num(r) <= reply} == {"cleartext"}
    assert {one(r, "mailsec.transport") for r in mail if num(r) > reply} == {"starttls"}
    assert {one(r, "mailsec.starttls.boundary") for r in mail if num(r) > reply} == {str(reply)}
    assert {one(r, "mailsec.starttls.cleartext_bytes") for r in frames
            if r["mailsec.starttls.cleartext_bytes"]} == {str(cleartext_before_hello(cap, k))}
    assert [num(r) for r in frames if r["mailsec.starttls.command"]] == [cap.number(k["request"])]


@pytest.mark.parametrize("proto", CASES)
def test_refused(rows, capture, proto):
    """454 / -ERR / NO: result refused and the alert on the reply's frame, no
    boundary, every later frame cleartext, and the login that follows in clear
    is still read (the test knows its user and password)."""
    cap, known, _ = capture
    k = known[(proto, "refused")]
    frames = conv_rows(rows, cap, k["conv"])
    reply = cap.number(k["reply"])
    assert [(num(r), one(r, "mailsec.starttls.result")) for r in frames if r["mailsec.starttls.result"]] == \
        [(reply, "refused")]
    assert frames_with(frames, "mailsec.starttls.refused") == [reply]
    row = next(r for r in frames if num(r) == reply)
    assert ("mailsec.starttls.refused", "warning") in alerts(row)
    later = [r for r in frames if num(r) > reply]
    assert later and {one(r, "mailsec.transport") for r in later} == {"cleartext"}
    assert all(not r["mailsec.starttls.boundary"] and not r["mailsec.starttls.cleartext_bytes"] for r in frames)
    logins = [(one(r, "mailsec.auth.username"), one(r, "mailsec.auth.password"), one(r, "mailsec.auth.exposed"))
              for r in later if r["mailsec.auth.password"]]
    assert logins == [(USER, PASSWORD, "1")]


@pytest.mark.parametrize("proto", CASES)
def test_no_reply(rows, capture, proto):
    """STARTTLS, then the client's ClientHello with no server reply in the
    capture: result no-reply and the alert on the ClientHello's frame, the
    boundary on the STARTTLS frame (the last one in clear), starttls from the
    ClientHello on."""
    cap, known, _ = capture
    k = known[(proto, "no_reply")]
    frames = conv_rows(rows, cap, k["conv"])
    hello, request = cap.number(k["hello"]), cap.number(k["request"])
    assert [(num(r), one(r, "mailsec.starttls.result")) for r in frames if r["mailsec.starttls.result"]] == \
        [(hello, "no-reply")]
    assert frames_with(frames, "mailsec.starttls.no_reply") == [hello]
    row = next(r for r in frames if num(r) == hello)
    assert ("mailsec.starttls.no_reply", "note") in alerts(row)
    assert frames_with(frames, "mailsec.starttls.refused") == []
    mail = [r for r in frames if r["mailsec.transport"]]
    assert {one(r, "mailsec.transport") for r in mail if num(r) <= request} == {"cleartext"}
    assert {one(r, "mailsec.transport") for r in mail if num(r) >= hello} == {"starttls"}
    # (the server's bare ACK between them: in one pass nothing says yet that TLS will follow)
    assert {one(r, "mailsec.starttls.boundary") for r in mail if num(r) >= hello} == {str(request)}
    assert {one(r, "mailsec.starttls.boundary") for r in mail if num(r) <= request} == {""}
    assert {one(r, "mailsec.starttls.cleartext_bytes") for r in frames
            if r["mailsec.starttls.cleartext_bytes"]} == {str(cleartext_before_hello(cap, k))}


def test_cleartext_bytes_leave_out_retransmissions(tshark, tmp_path):
    """A STARTTLS session whose EHLO is sent twice: the copy is not counted.
    The expectation is computed twice, from the bytes the test wrote and from
    the built-in tcp.len and tcp.analysis.retransmission of a run without mailsec."""
    cap = Capture()
    port, greeting, request, ok, _, _, _ = PROTOCOLS["smtp"]
    c = cap.conversation(587)
    cap.send(c, "s", greeting)
    cap.send(c, "c", b"EHLO client.example.org\r\n")
    again = cap.retransmit(c, "c", b"EHLO client.example.org\r\n")
    cap.send(c, "s", b"250-mx.example.org\r\n250 STARTTLS\r\n")
    cap.send(c, "c", request)
    (reply,) = cap.send(c, "s", ok)
    c.ack("c")
    (hello,) = cap.send(c, "c", client_hello())
    path = cap.write(tmp_path / "retransmit.pcap")
    written = sum(len(p) for n, (_, p) in cap.payload_frames(c).items() if n < cap.number(hello))

    builtin = table(tshark, path, ["frame.number", "tcp.len", "tcp.analysis.retransmission"], plugin=False)
    assert [num(r) for r in builtin if r["tcp.analysis.retransmission"]] == [cap.number(again)]
    counted = sum(int(one(r, "tcp.len")) for r in builtin
                  if num(r) <= cap.number(reply) and not r["tcp.analysis.retransmission"])
    assert counted == written

    rows = table(tshark, path, FIELDS)
    check_numbering(rows, cap)
    assert {one(r, "mailsec.starttls.cleartext_bytes") for r in rows
            if r["mailsec.starttls.cleartext_bytes"]} == {str(written)}
    assert {one(r, "mailsec.starttls.boundary") for r in rows if r["mailsec.starttls.boundary"]} == \
        {str(cap.number(reply))}
