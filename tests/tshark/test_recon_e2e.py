"""Reconnaissance, replies, envelope and smuggling end to end, on synthetic
captures written here (e2e.Capture): the test knows every line it sent, in
which frame, and what each reply answers. What the captures exercise is what
other people's traffic does: pipelining, a command sent before the greeting
ended, split segments, a TCP retransmission next to a command sent again,
IPv6, probes spread over sessions, and look-alikes of the end of DATA.
"""
import pytest

from e2e import Capture, alerts, check_numbering, frames_with, num, one, table

FIELDS = ["frame.number", "tcp.payload", "tcp.analysis.retransmission", "mailsec.reply.code",
          "mailsec.reply.command", "mailsec.reply.request_in", "mailsec.reply.time", "mailsec.reply.status",
          "mailsec.reply.failed", "mailsec.reply.enhanced", "mailsec.reply.category",
          "mailsec.enum.command", "mailsec.enum.target", "mailsec.enum.verdict", "mailsec.enum.count",
          "mailsec.enum.client_count", "mailsec.smtp.helo", "mailsec.msg.mail_from", "mailsec.msg.rcpt_to",
          "mailsec.msg.rcpt_count", "mailsec.msg.repeated", "mailsec.retransmission",
          "mailsec.smuggling.sequence", "mailsec.smuggling.line", "mailsec.smuggling.command",
          "mailsec.msg.count", "mailsec.msg.size", "mailsec.msg.deleted",
          "mailsec.alert.name", "mailsec.alert.severity", "mailsec.alert"]


def by_frame(rows):
    return {num(r): r for r in rows}


@pytest.fixture(scope="module")
def recon(tmp_path_factory):
    """Three SMTP sessions from one client address (the second over IPv6 is
    another address), one POP3 and one IMAP session. Returns the capture, its
    path and a dict of the frames the tests look at."""
    cap = Capture()
    at = {}

    # 1. pipelining, an early EHLO, VRFY/EXPN, a retransmission and a resend
    c = cap.conversation(25, client_port=41000)
    (at["greet1"],) = cap.send(c, "s", b"220-mx.example.org ESMTP\r\n220-no UCE\r\n")
    (at["ehlo"],) = cap.send(c, "c", b"EHLO early.example\r\n")        # before the greeting's end
    (at["greet2"],) = cap.send(c, "s", b"220 ready\r\n")
    (at["ehlo_reply"],) = cap.send(c, "s", b"250-mx.example.org\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n")
    (at["vrfy1"],) = cap.send(c, "c", b"VRFY alice\r\n")
    (at["vrfy1_reply"],) = cap.send(c, "s", b"252 2.0.0 alice\r\n")
    (at["vrfy2"],) = cap.send(c, "c", b"VRFY ghost\r\n")
    (at["vrfy2_reply"],) = cap.send(c, "s", b"550 5.1.1 <ghost>: Recipient address rejected: User unknown\r\n")
    (at["expn"],) = cap.send(c, "c", b"EXPN staff\r\n")
    (at["expn_reply"],) = cap.send(c, "s", b"502 5.5.1 EXPN command not implemented\r\n")
    # a pipelined transaction, the MAIL FROM split over two segments
    pieces = cap.send(c, "c", b"MAIL FROM:<bob@example.org>\r\nRCPT TO:<alice@example.org>\r\n"
                              b"RCPT TO:<nobody@example.org>\r\n", cut=[10])
    at["mail"] = pieces[1]
    # the same segment again, at the same sequence numbers: a retransmission
    at["retrans"] = cap.retransmit(c, "c", b"RCPT TO:<nobody@example.org>\r\n")
    (at["tx_replies"],) = cap.send(c, "s", b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
                                            b"550 5.1.1 <nobody@example.org>: Recipient address rejected\r\n")
    # the client sends the RCPT again, in new bytes
    (at["resend"],) = cap.send(c, "c", b"RCPT TO:<alice@example.org>\r\n")
    cap.send(c, "s", b"250 2.1.5 Ok\r\n")
    (at["data"],) = cap.send(c, "c", b"DATA\r\n")
    cap.send(c, "s", b"354 End data with <CR><LF>.<CR><LF>\r\n")
    body = (b"From: Bob <bob@example.org>\r\nSubject: hello\r\n\r\nline\r\n..stuffed\r\n"
            b"text\n.\nMAIL FROM:<ceo@example.org>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
            b"STARTTLS\r\n")
    (at["smuggle"],) = cap.send(c, "c", body)
    (at["end"],) = cap.send(c, "c", b".\r\n")
    (at["end_reply"],) = cap.send(c, "s", b"250 2.0.0 Ok: queued as ABC\r\n")
    (at["quit"],) = cap.send(c, "c", b"QUIT\r\n")
    (at["quit_reply"],) = cap.send(c, "s", b"221 2.0.0 Bye\r\n")
    c.close()

    # 2. the same client address again: one more probe reaches the threshold
    #    across sessions (3 = enum_threshold)
    c = cap.conversation(25, handshake=False, client_port=41001)
    c.client, c.server = ("10.1.0.1", 41001), ("10.1.0.2", 25)
    c.handshake()
    cap.send(c, "s", b"220 mx ESMTP\r\n")
    cap.send(c, "c", b"HELO x\r\n")
    cap.send(c, "s", b"250 mx\r\n")
    (at["vrfy3"],) = cap.send(c, "c", b"VRFY carol\r\n")
    (at["vrfy3_reply"],) = cap.send(c, "s", b"252 2.0.0 carol\r\n")
    (at["vrfy4"],) = cap.send(c, "c", b"VRFY dave\r\n")   # never answered
    c.close()
    at["session2_end"] = (c, len(c.frames) - 1)

    # 3. IPv6, a server that ends DATA at a bare LF dot
    c = cap.conversation(25, ipv6=True)
    cap.send(c, "s", b"220 mx ESMTP\r\n")
    cap.send(c, "c", b"HELO v6.example\r\n")
    cap.send(c, "s", b"250 mx\r\n")
    cap.send(c, "c", b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    cap.send(c, "s", b"250 Ok\r\n250 Ok\r\n354 go\r\n")
    (at["bare_end"],) = cap.send(c, "c", b"Subject: x\n\nbody\n.\n")
    (at["bare_end_reply"],) = cap.send(c, "s", b"250 Ok: queued\r\n")
    c.close()

    # 4. POP3: -ERR linked to PASS, DELE
    c = cap.conversation(110)
    cap.send(c, "s", b"+OK Dovecot ready.\r\n")
    cap.send(c, "c", b"USER alice\r\n")
    cap.send(c, "s", b"+OK\r\n")
    (at["pass"],) = cap.send(c, "c", b"PASS wrong\r\n")
    (at["pass_err"],) = cap.send(c, "s", b"-ERR [AUTH] Authentication failed.\r\n")
    cap.send(c, "c", b"USER alice\r\nPASS right\r\n")
    cap.send(c, "s", b"+OK\r\n+OK Logged in.\r\n")
    (at["dele"],) = cap.send(c, "c", b"DELE 1\r\n")
    (at["dele_ok"],) = cap.send(c, "s", b"+OK Marked to be deleted.\r\n")
    c.close()

    # 5. IMAP: tagged replies out of order, NO linked to its command
    c = cap.conversation(143)
    cap.send(c, "s", b"* OK [CAPABILITY IMAP4rev1] ready\r\n")
    cap.send(c, "c", b"a1 LOGIN alice right\r\n")
    cap.send(c, "s", b"a1 OK Logged in\r\n")
    (at["imap_two"],) = cap.send(c, "c", b"a2 SELECT Nope\r\na3 NOOP\r\n")
    (at["imap_replies"],) = cap.send(c, "s", b"a3 OK NOOP completed.\r\na2 NO Mailbox doesn't exist: Nope\r\n")
    c.close()

    path = cap.write(tmp_path_factory.mktemp("recon") / "recon.pcap")
    frames = {k: cap.number(v) for k, v in at.items()}
    return cap, path, frames


def rows_of(tshark, path, two_pass=False):
    extra = ["-2"] if two_pass else []
    return table(tshark, path, FIELDS, extra=extra)


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
def test_replies_answer_their_commands(tshark, recon, two_pass):
    cap, path, f = recon
    rows = rows_of(tshark, path, two_pass)
    check_numbering(rows, cap)
    r = by_frame(rows)
    # the greeting's last line answers nothing, the early EHLO keeps its reply
    assert one(r[f["greet2"]], "mailsec.reply.code") == "220"
    assert one(r[f["greet2"]], "mailsec.reply.command") == "(greeting)"
    assert one(r[f["greet2"]], "mailsec.reply.request_in") == ""
    assert one(r[f["ehlo_reply"]], "mailsec.reply.command") == "EHLO"
    assert one(r[f["ehlo_reply"]], "mailsec.reply.request_in") == str(f["ehlo"])
    # the pipelined transaction: three replies in one frame, in order
    tx = r[f["tx_replies"]]
    assert tx["mailsec.reply.code"] == ["250", "250", "550"]
    assert tx["mailsec.reply.command"] == ["MAIL", "RCPT", "RCPT"]
    assert tx["mailsec.reply.request_in"] == [str(f["mail"])] * 3
    assert tx["mailsec.reply.enhanced"] == ["2.1.0", "2.1.5", "5.1.1"]
    assert tx["mailsec.reply.failed"] == ["0", "0", "1"]
    assert "Bad destination mailbox address" in tx["mailsec.reply.category"][2]
    # the reply to the end of data, then QUIT: the smuggled text shifted nothing
    assert one(r[f["end_reply"]], "mailsec.reply.request_in") == str(f["end"])
    assert one(r[f["quit_reply"]], "mailsec.reply.command") == "QUIT"
    assert one(r[f["quit_reply"]], "mailsec.reply.request_in") == str(f["quit"])
    # the delay is the capture's own timing (pcapgen: 1 ms per frame)
    t = float(one(r[f["quit_reply"]], "mailsec.reply.time"))
    assert abs(t - 0.001 * (f["quit_reply"] - f["quit"])) < 1e-6
    # POP3 -ERR and IMAP NO name the failing command
    assert one(r[f["pass_err"]], "mailsec.reply.status") == "-ERR"
    assert one(r[f["pass_err"]], "mailsec.reply.command") == "PASS"
    assert one(r[f["pass_err"]], "mailsec.reply.request_in") == str(f["pass"])
    im = r[f["imap_replies"]]
    assert im["mailsec.reply.status"] == ["OK", "NO"]
    assert im["mailsec.reply.command"] == ["NOOP", "SELECT"]
    assert im["mailsec.reply.failed"] == ["0", "1"]


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
def test_probes(tshark, recon, two_pass):
    cap, path, f = recon
    r = by_frame(rows_of(tshark, path, two_pass))
    want = [("vrfy1_reply", "VRFY", "alice", "cannot-verify", "1"), ("vrfy2_reply", "VRFY", "ghost", "unknown", "2"),
            ("expn_reply", "EXPN", "staff", "disabled", "3")]
    for key, cmd, target, verdict, count in want:
        row = r[f[key]]
        assert one(row, "mailsec.enum.command") == cmd
        assert one(row, "mailsec.enum.target") == target
        assert one(row, "mailsec.enum.verdict") == verdict
        assert one(row, "mailsec.enum.count") == count
    # a note on each VRFY/EXPN request
    notes = frames_with(list(r.values()), "mailsec.enum.vrfy_expn_used")
    assert notes == sorted([f["vrfy1"], f["vrfy2"], f["expn"], f["vrfy3"], f["vrfy4"]])
    # the refused RCPT is a probe too (the fourth of the session), in the frame
    # with the three replies
    tx = r[f["tx_replies"]]
    assert tx["mailsec.enum.command"] == ["RCPT"]
    assert tx["mailsec.enum.target"] == ["nobody@example.org"]
    # the threshold (3) is reached in session 1 on the EXPN reply, and the
    # client address reaches it again in no other session (session 2 has
    # another port, the same address: 5 probes from it by then)
    assert frames_with(list(r.values()), "mailsec.enum.enumeration") == [f["expn_reply"]]
    row = r[f["vrfy3_reply"]]
    assert one(row, "mailsec.enum.count") == "1"
    assert one(row, "mailsec.enum.client_count") == "5"
    # the VRFY never answered: no-reply when the session ends
    end = f["session2_end"]
    verdicts = [v for row in r.values() for v in row["mailsec.enum.verdict"]]
    assert verdicts.count("no-reply") == 1
    no_reply = [num(row) for row in r.values() if "no-reply" in row["mailsec.enum.verdict"]]
    assert no_reply[0] > f["vrfy4"] and no_reply[0] <= end


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
def test_envelope_retransmission_and_resend(tshark, recon, two_pass):
    cap, path, f = recon
    rows = rows_of(tshark, path, two_pass)
    r = by_frame(rows)
    assert one(r[f["ehlo"]], "mailsec.smtp.helo") == "early.example"
    assert r[f["mail"]]["mailsec.msg.mail_from"] == ["bob@example.org"]
    assert r[f["mail"]]["mailsec.msg.rcpt_to"] == ["alice@example.org", "nobody@example.org"]
    # the retransmitted segment: Wireshark calls it one, mailsec analyses it once
    assert r[f["retrans"]]["tcp.analysis.retransmission"]
    assert one(r[f["retrans"]], "mailsec.retransmission") == "1"
    assert r[f["retrans"]]["mailsec.msg.rcpt_to"] == []
    assert not alerts(r[f["retrans"]])
    # the same RCPT in new bytes: a repeat, with a note
    assert one(r[f["resend"]], "mailsec.msg.repeated") == "1"
    assert one(r[f["resend"]], "mailsec.msg.rcpt_count") == "3"
    assert frames_with(rows, "mailsec.msg.duplicate_envelope") == [f["resend"]]
    # the message: envelope repeated on the frame that completes it
    end = r[f["end"]]
    assert one(end, "mailsec.msg.count") == "1"
    assert end["mailsec.msg.mail_from"] == ["bob@example.org"]
    assert end["mailsec.msg.rcpt_to"] == ["alice@example.org", "nobody@example.org"]


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
def test_smuggling(tshark, recon, two_pass):
    cap, path, f = recon
    rows = rows_of(tshark, path, two_pass)
    r = by_frame(rows)
    sm = r[f["smuggle"]]
    assert sm["mailsec.smuggling.sequence"] == ["0a2e0a"]
    assert sm["mailsec.smuggling.line"] == ["MAIL FROM:<ceo@example.org>"]
    assert sm["mailsec.smuggling.command"] == ["1"]
    assert ("mailsec.smtp.smuggling", "error") in alerts(sm)
    # the smuggled text is message content: no envelope, no STARTTLS from it
    assert sm["mailsec.msg.mail_from"] == []
    assert not [a for a in alerts(sm) if a[0].startswith("mailsec.starttls")]
    # exactly one look-alike in the whole capture is smuggling; the IPv6
    # session's bare LF end, answered by the server, is the other alert
    assert frames_with(rows, "mailsec.smtp.smuggling") == [f["smuggle"]]
    assert frames_with(rows, "mailsec.smtp.nonstandard_end_accepted") == [f["bare_end_reply"]]


def test_deletion(tshark, recon):
    cap, path, f = recon
    rows = rows_of(tshark, path)
    r = by_frame(rows)
    assert one(r[f["dele_ok"]], "mailsec.msg.deleted") == "1"
    assert frames_with(rows, "mailsec.msg.deletion") == [f["dele_ok"]]


def test_one_pass_equals_two_pass(tshark, recon):
    """Every field of this issue is the same in one pass and in two."""
    _, path, _ = recon
    one_rows = rows_of(tshark, path)
    two_rows = rows_of(tshark, path, two_pass=True)
    assert one_rows == two_rows
