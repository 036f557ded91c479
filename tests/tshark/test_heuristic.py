"""Recognition on ports nobody registered, and no false claims.

Each test lays out its own TCP conversation with pcapgen and states what an
analyst must see; the traffic is modelled on what real servers send.
"""
import os
import random

import pytest

from pcapgen import Conversation, write_pcap

FIELDS = ["frame.number", "tcp.stream", "tcp.len", "mailsec.proto", "mailsec.detected_by",
          "mailsec.transport", "smtp.req.command", "pop.request.command", "imap.request"]


def rows(tshark, path, **kw):
    return [dict(zip(FIELDS, r)) for r in tshark.fields(path, FIELDS, **kw)]


@pytest.fixture
def pcap(tmp_path):
    def make(*convs):
        return write_pcap(str(tmp_path / "t.pcap"), convs)
    return make


def smtp_on(port, ipv6=False):
    c = Conversation(client=("2001:db8::1" if ipv6 else "10.0.0.1", 41000),
                     server=("2001:db8::2" if ipv6 else "10.0.0.2", port), ipv6=ipv6).handshake()
    c.send("s", b"220 mx.example.org ESMTP Postfix (Debian/GNU)\r\n")
    c.send("c", b"EHLO client.example.org\r\n")
    c.send("s", b"250-mx.example.org\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
    c.send("c", b"QUIT\r\n").send("s", b"221 2.0.0 Bye\r\n").close()
    return c


@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
def test_smtp_on_2525_is_recognised_and_handed_to_the_builtin(tshark, pcap, ipv6):
    r = rows(tshark, pcap(smtp_on(2525, ipv6)))
    payload = [x for x in r if x["tcp.len"] != "0"]
    assert all(x["mailsec.proto"] == "smtp" for x in payload)
    assert {x["mailsec.detected_by"] for x in payload} == {"heuristic"}
    # the built-in SMTP dissector now parses the client's commands as requests
    assert [x["smtp.req.command"] for x in payload if x["smtp.req.command"]] == ["EHLO", "QUIT"]
    # every frame after the greeting belongs to the session
    first = next(i for i, x in enumerate(r) if x["tcp.len"] != "0")
    assert all(x["mailsec.proto"] == "smtp" for x in r[first:])


def test_pop3_and_imap_greetings_on_odd_ports(tshark, pcap):
    pop = Conversation(client=("10.0.0.1", 41001), server=("10.0.0.3", 8110)).handshake()
    pop.send("s", b"+OK Dovecot (Debian) ready.\r\n").send("c", b"CAPA\r\n")
    pop.send("s", b"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nSTLS\r\n.\r\n").close()
    imap = Conversation(client=("10.0.0.1", 41002), server=("10.0.0.4", 1143)).handshake()
    imap.send("s", b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] Dovecot ready.\r\n")
    imap.send("c", b"a1 CAPABILITY\r\n").close()
    r = rows(tshark, pcap(pop, imap))
    by = {}
    for x in r:
        if x["mailsec.proto"]:
            by.setdefault(x["tcp.stream"], set()).add(x["mailsec.proto"])
    assert by == {"0": {"pop3"}, "1": {"imap"}}


def test_client_first_command_is_enough(tshark, pcap):
    """A capture that misses the greeting: the client's EHLO says SMTP."""
    c = Conversation(client=("10.0.0.1", 41003), server=("10.0.0.2", 10025)).handshake()
    c.send("c", b"EHLO me\r\n").send("s", b"250 ok\r\n").close()
    r = rows(tshark, pcap(c))
    assert {x["mailsec.proto"] for x in r if x["tcp.len"] != "0"} == {"smtp"}


def test_content_beats_the_port(tshark, pcap):
    """IMAP served on port 25: the port says SMTP, the greeting says IMAP."""
    c = Conversation(client=("10.0.0.1", 41004), server=("10.0.0.2", 25)).handshake()
    c.send("s", b"* OK IMAP4rev1 Service Ready\r\n").send("c", b"a1 LOGOUT\r\n")
    c.send("s", b"* BYE\r\na1 OK LOGOUT completed\r\n").close()
    r = rows(tshark, pcap(c))
    after = [x for x in r if int(x["frame.number"]) >= 4]
    assert {x["mailsec.proto"] for x in after} == {"imap"}
    assert {x["mailsec.detected_by"] for x in after} == {"heuristic"}


def test_cleartext_on_an_implicit_tls_port(tshark, pcap):
    """A server answering in clear on 465 (seen in spam captures)."""
    c = Conversation(client=("10.0.0.1", 41005), server=("10.0.0.2", 465)).handshake()
    c.send("s", b"220 v02.example.org ESMTP Postfix\r\n").send("c", b"EHLO x\r\n").close()
    r = rows(tshark, pcap(c))
    assert {x["mailsec.transport"] for x in r if x["tcp.len"] != "0"} == {"cleartext"}


def test_implicit_tls_without_keys(tshark, pcap):
    c = Conversation(client=("10.0.0.1", 41006), server=("10.0.0.2", 993)).handshake()
    hello = bytes.fromhex("16030100a5010000a10303") + os.urandom(32) + b"\x00" * 40
    c.send("c", hello[:5 + 0xa5] if len(hello) > 5 + 0xa5 else hello).close()
    r = rows(tshark, pcap(c))
    assert all(x["mailsec.proto"] == "imap" and x["mailsec.transport"] == "implicit-tls" for x in r)


NOT_MAIL = {
    "http": [("c", b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n"),
             ("s", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")],
    "ftp": [("s", b"220 ProFTPD 1.3.8 Server (Debian) [10.0.0.2]\r\n"),
            ("c", b"USER anonymous\r\n"), ("s", b"331 Anonymous login ok\r\n"),
            ("c", b"PASS guest\r\n"), ("s", b"230 Anonymous access granted\r\n"),
            ("c", b"QUIT\r\n"), ("s", b"221 Goodbye.\r\n")],
    "ftp-vsftpd": [("s", b"220 (vsFTPd 3.0.3)\r\n"), ("c", b"USER ftp\r\n"),
                   ("s", b"331 Please specify the password.\r\n")],
    "random": None,
}


@pytest.mark.parametrize("kind", sorted(NOT_MAIL))
@pytest.mark.parametrize("port", [8080, 2121, 4444])
def test_no_false_claims(tshark, pcap, kind, port):
    c = Conversation(client=("10.0.0.1", 42000), server=("10.0.0.9", port)).handshake()
    script = NOT_MAIL[kind]
    if script is None:
        rnd = random.Random(port)
        script = [("c" if i % 2 else "s", bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 900))))
                  for i in range(8)]
    for who, data in script:
        c.send(who, data)
    c.close()
    r = rows(tshark, pcap(c))
    assert r, "tshark read nothing"
    assert not [x["frame.number"] for x in r if x["mailsec.proto"]]


def test_heuristic_can_be_switched_off(tshark, pcap):
    r = rows(tshark, pcap(smtp_on(2525)))
    assert any(x["mailsec.proto"] for x in r)
    off = tshark.run(pcap(smtp_on(2525)), ["-o", "mailsec.heuristic:FALSE", "-Y", "mailsec"])[0]
    assert off.strip() == ""


def test_decode_as_makes_a_port_session(tshark, pcap):
    """With the heuristic off, Decode As to the built-in SMTP still brings mailsec."""
    path = pcap(smtp_on(2600))
    off = ["-o", "mailsec.heuristic:FALSE"]
    assert tshark.run(path, off + ["-Y", "mailsec"])[0].strip() == ""
    args = off + ["-d", "tcp.port==2600,smtp", "-Y", "tcp.len > 0", "-T", "fields"]
    for f in FIELDS:
        args += ["-e", f]
    rows_da = [dict(zip(FIELDS, l.split("\t"))) for l in tshark.run(path, args)[0].splitlines()]
    assert rows_da
    assert {x["mailsec.proto"] for x in rows_da} == {"smtp"}
    assert {x["mailsec.detected_by"] for x in rows_da} == {"port"}


def test_split_and_retransmitted_segments(tshark, pcap):
    """A STARTTLS cut mid-word and a retransmitted reply are seen once each."""
    c = Conversation(client=("10.0.0.1", 41010), server=("10.0.0.2", 25)).handshake()
    c.send("s", b"220 mx ESMTP\r\n")
    c.send("c", b"EHLO a\r\n")
    c.send("s", b"250-mx\r\n250-STARTTLS\r\n250 OK\r\n", cut=[5, 9])
    c.send("c", b"STARTTLS\r\n", cut=[4])
    c.retransmit("c", b"TLS\r\n")
    c.send("s", b"220 2.0.0 Ready to start TLS\r\n")
    c.retransmit("s", b"220 2.0.0 Ready to start TLS\r\n")
    c.close()
    f = ["frame.number", "mailsec.starttls.offered", "mailsec.starttls.command",
         "mailsec.starttls.result", "mailsec.transport"]
    r = [dict(zip(f, x)) for x in tshark.fields(pcap(c), f)]
    assert len([x for x in r if x["mailsec.starttls.offered"] == "1"]) == 1
    assert len([x for x in r if x["mailsec.starttls.command"] == "1"]) == 1
    assert [x["mailsec.starttls.result"] for x in r if x["mailsec.starttls.result"]] == ["accepted"]
    assert r[-1]["mailsec.transport"] == "starttls"
