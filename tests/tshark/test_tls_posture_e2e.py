"""Around the switch to TLS, end to end.

- The TLS posture (version, cipher, server name) of every TLS session of the
  real-server captures equals what Wireshark's own TLS dissector reads from
  the same handshake (a run without mailsec), and the server name is the one
  the generator's client asked for.
- Synthetic captures written here: STARTTLS accepted and then no TLS (a
  stripping middlebox), STARTTLS offered but not used, a login in clear before
  the upgrade, an IMAP PREAUTH greeting and an [ALERT] in clear.
"""
import pytest

from conftest import ground_truth_captures
from e2e import Capture, client_hello, frames_with, num, one, table

CASES = [c for c in ground_truth_captures() if c.values[0][2]["transport"] != "cleartext"]
FIELDS = ["frame.number", "tcp.srcport", "tcp.dstport", "mailsec.transport", "mailsec.tls.version",
          "mailsec.tls.cipher", "mailsec.tls.sni", "mailsec.auth.exposed", "mailsec.auth.username",
          "mailsec.alert.name", "mailsec.alert.severity", "mailsec.alert", "mailsec.starttls.tls_began"]
BUILTIN = ["frame.number", "tcp.srcport", "tcp.dstport", "tls.handshake.type", "tls.handshake.version",
           "tls.handshake.extensions.supported_version", "tls.handshake.ciphersuite",
           "tls.handshake.extensions_server_name"]
NAMES = {0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}


@pytest.mark.parametrize("case", CASES)
def test_posture_matches_the_tls_dissector(tshark, case):
    cap, keys, truth = case
    builtin = table(tshark, cap, BUILTIN, display_filter="tls.handshake", plugin=False)
    rows = table(tshark, cap, FIELDS, display_filter="mailsec")
    for s in truth["sessions"]:
        port = str(s["client_port"])
        if s.get("tls_started") is False:
            continue  # no handshake to compare (stripped, refused, not used): test_tls_scenarios_gt
        mine = [r for r in builtin if port in r["tcp.srcport"] + r["tcp.dstport"]]
        hello = next(r for r in mine if "2" in r["tls.handshake.type"])
        client = next(r for r in mine if "1" in r["tls.handshake.type"])
        versions = hello["tls.handshake.extensions.supported_version"] or hello["tls.handshake.version"]
        want_version = NAMES[int(versions[-1], 16)]
        want_cipher = int(hello["tls.handshake.ciphersuite"][0], 16)
        want_sni = client["tls.handshake.extensions_server_name"]
        after = [r for r in rows if port in r["tcp.srcport"] + r["tcp.dstport"] and
                 num(r) >= num(hello) and one(r, "mailsec.transport") != "cleartext"]
        assert after
        for r in after:
            assert one(r, "mailsec.tls.version") == want_version
            assert one(r, "mailsec.tls.cipher").endswith("(0x%04x)" % want_cipher) or \
                one(r, "mailsec.tls.cipher") == "0x%04x" % want_cipher
            assert r["mailsec.tls.sni"] == want_sni
        if s.get("sni"):
            assert want_sni == [s["sni"]]
        # after STARTTLS: TLS began, said once, on the client's first record
        if s["transport"] == "starttls":
            began = [r for r in rows if port in r["tcp.srcport"] + r["tcp.dstport"] and r["mailsec.starttls.tls_began"]]
            assert [r["mailsec.starttls.tls_began"] for r in began] == [["1"]]
            assert num(began[0]) == num(client)
        # below TLS 1.2, or without a server name: one alert each, else none
        names = [n for r in rows if port in r["tcp.srcport"] + r["tcp.dstport"] for n in r["mailsec.alert.name"]]
        old = int(versions[-1], 16) < 0x0303
        assert names.count("mailsec.tls.old_version") == (1 if old else 0)
        assert names.count("mailsec.tls.no_sni") == (0 if want_sni else 1)


def messages(row):
    """[(alert name, its text)] of one frame."""
    return list(zip(row["mailsec.alert.name"], row["mailsec.alert"]))


@pytest.fixture(scope="module")
def around(tmp_path_factory):
    cap = Capture()
    at = {}
    # 1. SMTP: STARTTLS accepted, then the client goes on in clear and logs in
    c = cap.conversation(587)
    cap.send(c, "s", b"220 mx.example.org ESMTP\r\n")
    cap.send(c, "c", b"EHLO c.example\r\n")
    cap.send(c, "s", b"250-mx.example.org\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n")
    cap.send(c, "c", b"STARTTLS\r\n")
    cap.send(c, "s", b"220 2.0.0 Ready to start TLS\r\n")
    (at["strip"],) = cap.send(c, "c", b"EHLO c.example\r\n")
    cap.send(c, "s", b"250-mx.example.org\r\n250 AUTH PLAIN\r\n")
    (at["strip_login"],) = cap.send(c, "c", b"AUTH PLAIN AGFsaWNlAFdvbmRlcmxhbmQtNDI=\r\n")
    cap.send(c, "s", b"235 2.7.0 Authentication successful\r\n")
    c.close()
    # 2. IMAP: offered, not used, a login in clear
    c = cap.conversation(143)
    cap.send(c, "s", b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] ready\r\n")
    (at["unused"],) = cap.send(c, "c", b"a1 LOGIN alice secret\r\n")
    cap.send(c, "s", b"a1 OK done\r\n")
    c.close()
    # 3. POP3: a login in clear, then STLS and TLS
    c = cap.conversation(110)
    cap.send(c, "s", b"+OK ready\r\n")
    cap.send(c, "c", b"USER alice\r\nPASS secret\r\n")
    cap.send(c, "s", b"+OK\r\n+OK Logged in.\r\n")
    cap.send(c, "c", b"STLS\r\n")
    (at["late_tls"],) = cap.send(c, "s", b"+OK Begin TLS negotiation now.\r\n")
    cap.send(c, "c", client_hello())
    c.close()
    # 4. IMAP: PREAUTH greeting and an [ALERT], in clear
    c = cap.conversation(143)
    (at["preauth"],) = cap.send(c, "s", b"* PREAUTH [CAPABILITY IMAP4rev1] logged in as alice\r\n")
    (at["alert"],) = cap.send(c, "s", b"* OK [ALERT] Your password expires, log in at http://evil.example\r\n")
    cap.send(c, "c", b"a1 STARTTLS\r\n")
    cap.send(c, "s", b"a1 BAD STARTTLS not allowed in this state\r\n")
    c.close()
    # 5. SMTP: a command in clear after STARTTLS, before its reply; TLS follows
    c = cap.conversation(587)
    cap.send(c, "s", b"220 mx.example.org ESMTP\r\n")
    cap.send(c, "c", b"EHLO c.example\r\n")
    cap.send(c, "s", b"250-mx.example.org\r\n250 STARTTLS\r\n")
    cap.send(c, "c", b"STARTTLS\r\n")
    (at["buffered_cmd"],) = cap.send(c, "c", b"NOOP\r\n")
    cap.send(c, "s", b"220 2.0.0 Ready to start TLS\r\n")
    (at["buffered"],) = cap.send(c, "c", client_hello())
    c.close()
    # 6. POP3: after the STLS OK, a reply in a segment of its own before the
    # client's handshake
    c = cap.conversation(110)
    cap.send(c, "s", b"+OK ready\r\n")
    cap.send(c, "c", b"STLS\r\n")
    cap.send(c, "s", b"+OK Begin TLS negotiation now.\r\n")
    (at["injected"],) = cap.send(c, "s", b"+OK Logged in.\r\n")
    (at["injected_hello"],) = cap.send(c, "c", client_hello())
    c.close()
    # 7. one SMTP server on port 25, twice: STARTTLS offered, then not
    offering = c = cap.conversation(25)
    cap.send(c, "s", b"220 mx.example.org ESMTP\r\n")
    cap.send(c, "c", b"EHLO c.example\r\n")
    cap.send(c, "s", b"250-mx.example.org\r\n250-STARTTLS\r\n250 SIZE 1000000\r\n")
    cap.send(c, "c", b"QUIT\r\n")
    cap.send(c, "s", b"221 Bye\r\n")
    c.close()
    c = cap.conversation(25, server_of=offering)
    cap.send(c, "s", b"220 mx.example.org ESMTP\r\n")
    cap.send(c, "c", b"EHLO c.example\r\n")
    (at["cap_stripped"],) = cap.send(c, "s", b"250-mx.example.org\r\n250 SIZE 1000000\r\n")
    cap.send(c, "c", b"QUIT\r\n")
    cap.send(c, "s", b"221 Bye\r\n")
    c.close()
    # 8. another server on port 25, never offering it: nothing
    c = cap.conversation(25)
    cap.send(c, "s", b"220 other.example.org ESMTP\r\n")
    cap.send(c, "c", b"EHLO c.example\r\n")
    cap.send(c, "s", b"250-other.example.org\r\n250 SIZE 1000000\r\n")
    c.close()
    # 9. submission port 587 without STARTTLS: expected there (preference)
    c = cap.conversation(587)
    cap.send(c, "s", b"220 sub.example.org ESMTP\r\n")
    cap.send(c, "c", b"EHLO c.example\r\n")
    (at["cap_expected"],) = cap.send(c, "s", b"250-sub.example.org\r\n250 AUTH PLAIN\r\n")
    c.close()
    path = cap.write(tmp_path_factory.mktemp("around") / "around.pcap")
    return cap, path, {k: cap.number(v) for k, v in at.items()}


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
def test_attacks_around_the_switch(tshark, around, two_pass):
    cap, path, f = around
    rows = table(tshark, path, FIELDS, extra=["-2"] if two_pass else [])
    by = {num(r): r for r in rows}
    # stripped: an error where the cleartext goes on, and everything after is read in clear
    assert frames_with(rows, "mailsec.starttls.stripped") == [f["strip"]]
    assert by[f["strip"]]["mailsec.starttls.tls_began"] == ["0"]
    assert one(by[f["strip_login"]], "mailsec.transport") == "cleartext"
    assert one(by[f["strip_login"]], "mailsec.auth.exposed") == "1"
    assert one(by[f["strip_login"]], "mailsec.auth.username") == "alice"
    # offered but not used, on the login that went in clear
    assert frames_with(rows, "mailsec.starttls.offered_not_used") == [f["unused"]]
    # credentials before the upgrade: on the positive STLS reply
    assert frames_with(rows, "mailsec.starttls.login_before_tls") == [f["late_tls"]]
    # PREAUTH and ALERT in clear
    assert frames_with(rows, "mailsec.imap.preauth_in_clear") == [f["preauth"]]
    assert frames_with(rows, "mailsec.imap.alert_in_clear") == [f["alert"]]
    # response buffering: on the handshake that follows, naming the frame of the command
    assert frames_with(rows, "mailsec.starttls.response_buffering") == [f["buffered"]]
    assert by[f["buffered"]]["mailsec.starttls.tls_began"] == ["1"]
    (msg,) = [m for name, m in messages(by[f["buffered"]]) if name == "mailsec.starttls.response_buffering"]
    assert "frame %d" % f["buffered_cmd"] in msg and "6 bytes" in msg
    # a reply sent in clear after the STLS OK, before the handshake: injection,
    # not stripping; TLS still began
    assert frames_with(rows, "mailsec.starttls.response_injection") == [f["injected"]]
    assert one(by[f["injected_hello"]], "mailsec.transport") == "starttls"
    # capability stripped: the second session of the same server, naming the
    # first's TCP stream; and on the submission port without any history
    assert frames_with(rows, "mailsec.starttls.capability_stripped") == [f["cap_stripped"], f["cap_expected"]]
    (msg,) = [m for name, m in messages(by[f["cap_stripped"]]) if name == "mailsec.starttls.capability_stripped"]
    assert "TCP stream 6" in msg
    # nothing else: the stripped session is the only one stripped
    assert frames_with(rows, "mailsec.starttls.stripped") == [f["strip"]]


@pytest.fixture(scope="module")
def recognition(tmp_path_factory):
    cap = Capture()
    at = {}
    # 1. SMTP on another port, behind a greeting that does not say SMTP
    c = cap.conversation(8025)
    (at["weak_greeting"],) = cap.send(c, "s", b"220 Greetings\r\n")
    (at["weak_ehlo"],) = cap.send(c, "c", b"EHLO c.example\r\n")
    cap.send(c, "s", b"250-Greetings\r\n250 AUTH PLAIN\r\n")
    (at["weak_login"],) = cap.send(c, "c", b"AUTH PLAIN AGFsaWNlAFdvbmRlcmxhbmQtNDI=\r\n")
    cap.send(c, "s", b"235 2.7.0 Authentication successful\r\n")
    c.close()
    at["weak_conv"] = c
    # 2. the same kind of greeting, then FTP: never mail
    c = cap.conversation(8021)
    cap.send(c, "s", b"220 Service ready\r\n")
    cap.send(c, "c", b"USER bob\r\n")
    cap.send(c, "s", b"331 Password required\r\n")
    cap.send(c, "c", b"PASS secret\r\n")
    c.close()
    at["ftp_conv"] = c
    # 3. HTTP on the IMAPS port: not mail from its first payload on
    c = cap.conversation(993)
    cap.send(c, "c", b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n")
    cap.send(c, "s", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    c.close()
    at["http_conv"] = c
    # 4. port 25: the greeting, then a client speaking TLS, answered in clear
    c = cap.conversation(25)
    (at["tls_after_greeting_220"],) = cap.send(c, "s", b"220 mx.example.org ESMTP\r\n")
    (at["tls_after_greeting_hello"],) = cap.send(c, "c", client_hello())
    (at["tls_after_greeting_500"],) = cap.send(c, "s", b"500 5.5.2 Error: bad syntax\r\n")
    c.close()
    # 5. port 25: the client's handshake first, the server greets in clear
    c = cap.conversation(25)
    (at["tls_first_hello"],) = cap.send(c, "c", client_hello())
    (at["tls_first_220"],) = cap.send(c, "s", b"220 mx.example.org ESMTP\r\n")
    c.close()
    path = cap.write(tmp_path_factory.mktemp("recognition") / "recognition.pcap")
    return cap, path, {k: (cap.number(v) if isinstance(v, tuple) else v) for k, v in at.items()}


RECOGNITION = ["frame.number", "tcp.stream", "frame.protocols", "smtp.req.command", "smtp.response.code",
               "mailsec.proto", "mailsec.detected_by", "mailsec.transport", "mailsec.auth.username"]


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
def test_recognition_both_ways(tshark, recognition, two_pass):
    cap, path, f = recognition
    extra = ["-2"] if two_pass else []
    rows = table(tshark, path, RECOGNITION, extra=extra)
    by = {num(r): r for r in rows}
    plain = {num(r): r for r in table(tshark, path, RECOGNITION[:5], extra=extra, plugin=False)}
    payload = lambda conv: set(cap.payload_frames(conv))
    # 1. SMTP from the client's EHLO on; the greeting frame stays as Wireshark
    # dissected it without mailsec, in one pass and two
    weak = payload(f["weak_conv"])
    assert by[f["weak_greeting"]]["mailsec.proto"] == []
    assert by[f["weak_greeting"]]["frame.protocols"] == plain[f["weak_greeting"]]["frame.protocols"]
    for n in weak - {f["weak_greeting"]}:
        assert one(by[n], "mailsec.proto") == "smtp"
        assert one(by[n], "mailsec.detected_by") == "heuristic"
        assert "smtp" in one(by[n], "frame.protocols").split(":")
    assert by[f["weak_ehlo"]]["smtp.req.command"] == ["EHLO"]
    assert one(by[f["weak_login"]], "mailsec.auth.username") == "alice"
    # 2. and 3. never mail: no mailsec on any payload frame, built-in output untouched
    for conv in (f["ftp_conv"], f["http_conv"]):
        for n in payload(conv):
            assert by[n]["mailsec.proto"] == [], n
            assert by[n]["frame.protocols"] == plain[n]["frame.protocols"], n
    # 4. and 5. each side labelled by what it sent
    assert one(by[f["tls_after_greeting_220"]], "mailsec.transport") == "cleartext"
    assert one(by[f["tls_after_greeting_hello"]], "mailsec.transport") == "implicit-tls"
    assert one(by[f["tls_after_greeting_500"]], "mailsec.transport") == "cleartext"
    assert one(by[f["tls_first_hello"]], "mailsec.transport") == "implicit-tls"
    assert one(by[f["tls_first_220"]], "mailsec.transport") == "cleartext"
