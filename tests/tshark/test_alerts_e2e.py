"""Alerts end to end: overlong lines, malformed logins, recognition by content.

Synthetic captures are written here with pcapgen (e2e.Capture): the test
knows every line it sent and in which frame. The real-world part reads
../shared/realworld (captures made by other people) and decides which
sessions mailsec can only know by their content from Wireshark's built-in
fields, in a run without mailsec. Severities come from the README's table.
"""
import base64
import collections
import json
import re
import struct

import pytest

from conftest import BUNDLED, REALWORLD, realworld_captures
from e2e import MAIL_PORTS, Capture, alerts, check_numbering, frames_with, num, one, table, unhex

FIELDS = ["frame.number", "tcp.stream", "tcp.len", "tcp.payload", "mailsec.proto", "mailsec.detected_by",
          "mailsec.transport", "mailsec.alert.name", "mailsec.alert.severity", "mailsec.alert",
          "mailsec.auth.username", "mailsec.auth.password"]


def conv_rows(rows, cap, c):
    lo = cap.offsets[id(c)]
    return [r for r in rows if lo < num(r) <= lo + len(c.frames)]


# --- mailsec.malformed.line_too_long ---------------------------------------------

MAX_LINE = 100   # set with -o mailsec.max_line:100; the default (4096) is far above every line here


@pytest.fixture(scope="module")
def long_lines(tmp_path_factory):
    """Lines longer and shorter than MAX_LINE; returns (capture, path, frames that
    must carry the alert, frames that must not)."""
    cap = Capture()
    over = MAX_LINE + 1          # longer than the limit, CRLF not even counted
    under = MAX_LINE - 2         # with its CRLF, exactly the limit: not longer
    must, must_not = [], []

    c = cap.conversation(25)
    must_not += cap.send(c, "s", b"220 mx.example.org ESMTP Postfix\r\n")
    # one overlong client line in three segments: only the last completes it
    line = b"EHLO " + b"a" * (over - 5) + b"\r\n"
    pieces = cap.send(c, "c", line, cut=[30, 40])
    assert len(pieces) == 3
    must_not += pieces[:2]
    must.append(pieces[2])
    must_not += cap.send(c, "s", b"250 mx.example.org\r\n")
    # two overlong lines in one segment: one alert on that frame
    must += cap.send(c, "c", b"NOOP " + b"b" * (over - 5) + b"\r\nNOOP " + b"c" * (over + 20 - 5) + b"\r\n")
    must_not += cap.send(c, "s", b"250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n")
    must_not += cap.send(c, "c", b"NOOP " + b"d" * (under - 5) + b"\r\n")
    # the server's lines count too
    must += cap.send(c, "s", b"250 " + b"e" * (over - 4) + b"\r\n")
    must_not += cap.send(c, "c", b"QUIT\r\n")
    must_not += cap.send(c, "s", b"221 2.0.0 Bye\r\n")
    c.close()

    c = cap.conversation(143)
    must_not += cap.send(c, "s", b"* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n")
    pieces = cap.send(c, "c", b"a1 EXAMINE " + b"f" * (over - 11) + b"\r\n", cut=[50])
    must_not.append(pieces[0])
    must.append(pieces[1])
    must_not += cap.send(c, "s", b"a1 NO Mailbox doesn't exist\r\n")
    must_not += cap.send(c, "c", b"a2 NOOP " + b"g" * (under - 8) + b"\r\n")
    must_not += cap.send(c, "s", b"a2 OK NOOP completed.\r\n")
    c.close()

    path = cap.write(tmp_path_factory.mktemp("longlines") / "long-lines.pcap")
    return cap, path, [cap.number(h) for h in must], [cap.number(h) for h in must_not]


def test_line_too_long_on_the_frame_completing_it(tshark, long_lines):
    cap, path, must, must_not = long_lines
    rows = table(tshark, path, FIELDS, extra=["-o", "mailsec.max_line:%d" % MAX_LINE])
    check_numbering(rows, cap)
    # exactly one alert on each frame that completes an overlong line, none elsewhere
    assert frames_with(rows, "mailsec.malformed.line_too_long") == sorted(must)
    assert not set(must_not) & set(must)
    for r in rows:
        if num(r) in must:
            assert ("mailsec.malformed.line_too_long", "error") in alerts(r)


def test_line_too_long_follows_the_preference(tshark, long_lines):
    """The same capture with the default max_line: no line is too long."""
    _, path, must, _ = long_lines
    assert must
    rows = table(tshark, path, FIELDS)
    assert frames_with(rows, "mailsec.malformed.line_too_long") == []


def test_max_line_is_capped(tshark, tmp_path):
    """max_line above 1 MiB counts as 1 MiB (README: every line buffer is bounded):
    a 2 MiB line is too long even with max_line set to 4,000,000,000, and the
    alert quotes the limit in force."""
    cap = Capture()
    c = cap.conversation(25)
    cap.send(c, "s", b"220 mx.example.org ESMTP\r\n")
    line = b"EHLO " + b"h" * (2 * 1024 * 1024) + b"\r\n"
    pieces = cap.send(c, "c", line, cut=[60000] * (len(line) // 60000))
    cap.send(c, "s", b"500 5.5.2 Line too long\r\n")
    c.close()
    path = cap.write(tmp_path / "long.pcap")
    last = cap.number(pieces[-1])
    for limit in ("4000000000", "3000000"):
        rows = table(tshark, path, FIELDS + ["mailsec.alert"], extra=["-o", "mailsec.max_line:%s" % limit])
        assert frames_with(rows, "mailsec.malformed.line_too_long") == [last], limit
        msgs = [m for r in rows if num(r) == last for m in r["mailsec.alert"]]
        assert any("limit 1048576" in m for m in msgs), msgs
    # under the cap the preference is honoured as it is
    rows = table(tshark, path, FIELDS, extra=["-o", "mailsec.max_line:3000"])
    assert frames_with(rows, "mailsec.malformed.line_too_long") == [last]


# --- mailsec.malformed.sasl ----------------------------------------------------------

def b64(data):
    return base64.b64encode(data)


@pytest.fixture(scope="module")
def logins(tmp_path_factory):
    """Malformed and well-formed logins; returns (capture, path, frames with a
    malformed client message, well-formed logins as (frame, user, password))."""
    cap = Capture()
    bad, good = [], []

    c = cap.conversation(587)
    cap.send(c, "s", b"220 mx.example.org ESMTP Postfix\r\n")
    cap.send(c, "c", b"EHLO client.example.org\r\n")
    cap.send(c, "s", b"250-mx.example.org\r\n250 AUTH PLAIN LOGIN\r\n")
    bad += cap.send(c, "c", b"AUTH PLAIN %%%%\r\n")                             # not base64
    cap.send(c, "s", b"501 5.5.2 AUTH: can't decode SASL response\r\n")
    bad += cap.send(c, "c", b"AUTH PLAIN " + b64(b"alice Wonderland-42") + b"\r\n")   # base64, no NULs
    cap.send(c, "s", b"535 5.7.8 Error: authentication failed\r\n")
    cap.send(c, "c", b"AUTH PLAIN\r\n")
    cap.send(c, "s", b"334 \r\n")
    bad += cap.send(c, "c", b"!!!!\r\n")                                          # continuation, not base64
    cap.send(c, "s", b"501 5.5.2 AUTH: can't decode SASL response\r\n")
    (h,) = cap.send(c, "c", b"AUTH PLAIN " + b64(b"\0alice\0Wonderland-42") + b"\r\n")
    good.append((h, "alice", "Wonderland-42"))
    cap.send(c, "s", b"235 2.7.0 Authentication successful\r\n")
    c.close()

    c = cap.conversation(143)
    cap.send(c, "s", b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] Dovecot ready.\r\n")
    bad += cap.send(c, "c", b"a1 LOGIN\r\n")                                      # no arguments
    cap.send(c, "s", b"a1 BAD Error in IMAP command LOGIN: Missing arguments\r\n")
    bad += cap.send(c, "c", b"a2 AUTHENTICATE PLAIN %%%%\r\n")                    # not base64
    cap.send(c, "s", b"a2 BAD Invalid base64 data in initial response\r\n")
    (h,) = cap.send(c, "c", b"a3 LOGIN bob Builder-7\r\n")
    good.append((h, "bob", "Builder-7"))
    cap.send(c, "s", b"a3 OK Logged in\r\n")
    c.close()

    c = cap.conversation(110)
    cap.send(c, "s", b"+OK Dovecot (Debian) ready.\r\n")
    cap.send(c, "c", b"AUTH PLAIN\r\n")
    cap.send(c, "s", b"+ \r\n")
    bad += cap.send(c, "c", b"@@@@\r\n")                                          # not base64
    cap.send(c, "s", b"-ERR Invalid base64 data in continued response\r\n")
    bad += cap.send(c, "c", b"AUTH PLAIN " + b64(b"carol") + b"\r\n")            # base64, no NULs
    cap.send(c, "s", b"-ERR [AUTH] Authentication failed.\r\n")
    c.close()

    path = cap.write(tmp_path_factory.mktemp("logins") / "logins.pcap")
    return cap, path, sorted(cap.number(h) for h in bad), [(cap.number(h), u, p) for h, u, p in good]


def test_malformed_sasl(tshark, logins):
    """Invalid base64 (initial response or continuation, SMTP, IMAP, POP3), a
    PLAIN message without its NULs, an IMAP LOGIN without arguments: the alert
    on the frame carrying each of them, nowhere else; the well-formed logins in
    the same sessions are still read."""
    cap, path, bad, good = logins
    rows = table(tshark, path, FIELDS)
    check_numbering(rows, cap)
    assert frames_with(rows, "mailsec.malformed.sasl") == bad
    by = {num(r): r for r in rows}
    for n in bad:
        assert ("mailsec.malformed.sasl", "error") in alerts(by[n])
    for n, user, password in good:
        assert (one(by[n], "mailsec.auth.username"), one(by[n], "mailsec.auth.password")) == (user, password)


# --- mailsec.detected.content and detected_by == "heuristic" -----------------------

# The test's own judgement of a first payload (not the plugin's patterns).
GREETINGS = [("smtp", re.compile(rb"^220[ -].*SMTP", re.I)), ("smtp", re.compile(rb"^(EHLO|HELO) ", re.I)),
             ("pop3", re.compile(rb"^\+OK")), ("pop3", re.compile(rb"^CAPA\r?$", re.I)),
             ("imap", re.compile(rb"^\* (OK|PREAUTH)", re.I)),
             ("imap", re.compile(rb"^[A-Za-z0-9.]+ (CAPABILITY|LOGIN|AUTHENTICATE)\b", re.I))]


def judge(payload):
    line = payload.split(b"\n")[0]
    for proto, rx in GREETINGS:
        if rx.match(line):
            return proto
    return None


SESSIONS = [  # (server port, first payload, who sends it, protocol it says)
    (2525, b"220 mx.example.org ESMTP Postfix (Debian/GNU)\r\n", "s", "smtp"),
    (8110, b"+OK Dovecot (Debian) ready.\r\n", "s", "pop3"),
    (1143, b"* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.\r\n", "s", "imap"),
    (10025, b"EHLO client.example.org\r\n", "c", "smtp"),
]
CONTENT_BEATS_PORT = [  # a mail port, another mail protocol's greeting
    (25, b"* OK IMAP4rev1 Service Ready\r\n", "s", "imap"),
    (110, b"220 mx.example.org ESMTP Postfix\r\n", "s", "smtp"),
]
FOLLOW = {"smtp": [("c", b"EHLO me\r\n"), ("s", b"250 mx.example.org\r\n"), ("c", b"QUIT\r\n"),
                   ("s", b"221 2.0.0 Bye\r\n")],
          "pop3": [("c", b"CAPA\r\n"), ("s", b"+OK\r\nUSER\r\n.\r\n"), ("c", b"QUIT\r\n"), ("s", b"+OK Bye\r\n")],
          "imap": [("c", b"a1 CAPABILITY\r\n"), ("s", b"* CAPABILITY IMAP4rev1\r\na1 OK done\r\n"),
                   ("c", b"a2 LOGOUT\r\n"), ("s", b"* BYE\r\na2 OK done\r\n")]}


@pytest.fixture(scope="module")
def by_content(tmp_path_factory):
    """Mail on ports mailsec does not watch, mail whose content contradicts its
    port, and plain SMTP on 25 (known by its port). Returns (capture, path,
    {name: (conversation, first payload handle, protocol)})."""
    cap = Capture()
    known = {}
    for group, sessions in (("off-port", SESSIONS), ("beats-port", CONTENT_BEATS_PORT),
                            ("port", [(25, b"220 mx.example.org ESMTP Postfix\r\n", "s", "smtp")])):
        for port, first, who, proto in sessions:
            c = cap.conversation(port)
            (h,) = cap.send(c, who, first)
            for w, data in FOLLOW[proto][1 if who == "c" else 0:]:
                cap.send(c, w, data)
            c.close()
            assert judge(first) == proto
            known["%s-%d" % (group, port)] = (c, h, proto)
    path = cap.write(tmp_path_factory.mktemp("content") / "content.pcap")
    return cap, path, known


@pytest.fixture(scope="module")
def content_rows(tshark, by_content):
    cap, path, _ = by_content
    rows = table(tshark, path, FIELDS)
    check_numbering(rows, cap)
    return rows


def _names(known, group):
    return [k for k in known if k.startswith(group + "-")]


def test_off_port_sessions_detected_by_heuristic(by_content, content_rows):
    """Mail on 2525, 8110, 1143, 10025: from its first payload on, every frame
    is mailsec with the protocol the content says and detected_by heuristic."""
    cap, _, known = by_content
    for name in _names(known, "off-port"):
        c, h, proto = known[name]
        frames = conv_rows(content_rows, cap, c)
        later = [r for r in frames if num(r) >= cap.number(h)]
        assert {one(r, "mailsec.proto") for r in later} == {proto}, name
        assert {one(r, "mailsec.detected_by") for r in later} == {"heuristic"}, name


def test_content_alert_where_content_beats_the_port(by_content, content_rows):
    """IMAP on 25, SMTP on 110: recognised from the content, with the alert
    (chat) once, on the first payload's frame; and none on SMTP on 25."""
    cap, _, known = by_content
    for name in _names(known, "beats-port"):
        c, h, proto = known[name]
        frames = conv_rows(content_rows, cap, c)
        assert frames_with(frames, "mailsec.detected.content") == [cap.number(h)], name
        row = next(r for r in frames if num(r) == cap.number(h))
        assert ("mailsec.detected.content", "chat") in alerts(row)
        later = [r for r in frames if num(r) >= cap.number(h)]
        assert {one(r, "mailsec.proto") for r in later} == {proto}, name
        assert {one(r, "mailsec.detected_by") for r in later} == {"heuristic"}, name
    (name,) = _names(known, "port")
    c, _, _ = known[name]
    frames = conv_rows(content_rows, cap, c)
    assert frames_with(frames, "mailsec.detected.content") == []
    assert {one(r, "mailsec.detected_by") for r in frames} == {"port"}




def test_content_alert_on_off_port_sessions(by_content, content_rows):
    """README: mailsec.detected.content — the protocol was recognised from the
    content, not the port: once per session found by content, on its first payload."""
    cap, _, known = by_content
    for name in _names(known, "off-port"):
        c, h, _ = known[name]
        frames = conv_rows(content_rows, cap, c)
        assert frames_with(frames, "mailsec.detected.content") == [cap.number(h)], name


# --- the real-world corpus: sessions found by content -------------------------------

def _pcap_tcp_ports(path):
    """The port pairs of TCP segments with payload, read from a classic pcap
    with Ethernet or BSD loopback framing; None when the file is anything else
    (then tshark decides). Only a pre-selection: which streams are mail is
    decided from tshark's built-in fields below."""
    data = path.read_bytes()
    if data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4"):
        return None
    e = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    linktype = struct.unpack(e + "I", data[20:24])[0]
    if linktype not in (0, 1):
        return None
    pairs, off = set(), 24
    while off + 16 <= len(data):
        incl = struct.unpack(e + "I", data[off + 8:off + 12])[0]
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if linktype == 1:
            etype, p = struct.unpack(">H", pkt[12:14])[0], pkt[14:]
            while etype in (0x8100, 0x88A8) and len(p) >= 4:
                etype, p = struct.unpack(">H", p[2:4])[0], p[4:]
        else:
            family = struct.unpack(e + "I", pkt[:4])[0]
            etype, p = {2: 0x0800, 24: 0x86DD, 28: 0x86DD, 30: 0x86DD}.get(family), pkt[4:]
        if etype == 0x0800 and len(p) >= 20:
            if p[9] != 6:
                continue
            tcp = p[(p[0] & 15) * 4:]
        elif etype == 0x86DD and len(p) >= 40:
            if p[6] != 6:
                if p[6] in (0, 43, 44, 60):   # extension headers: not followed here
                    return None
                continue
            tcp = p[40:]
        elif etype in (0x0800, 0x86DD):
            return None
        else:
            continue
        if len(tcp) < 20:
            return None
        if len(tcp) > (tcp[12] >> 4) * 4:
            pairs.add(struct.unpack(">HH", tcp[:4]))
    return pairs


def _candidates():
    out = []
    for r in realworld_captures():
        path = REALWORLD / r["path"]
        pairs = _pcap_tcp_ports(path)
        if pairs is None or any(not ({a, b} & MAIL_PORTS) for a, b in pairs):
            out.append(path)
    return out


BUILTIN = ["frame.number", "tcp.stream", "tcp.srcport", "tcp.dstport", "tcp.payload", "frame.protocols"]


def off_port_mail_streams(tshark, path):
    """{stream: (first payload frame, protocol)} of the TCP streams on which no
    port is a mailsec port and whose first payload is mail (the test's own
    patterns) or that a built-in mail dissector took, from a run without mailsec."""
    rows = table(tshark, path, BUILTIN, display_filter="tcp && !icmp", plugin=False)
    streams = collections.OrderedDict()
    for r in rows:
        s = one(r, "tcp.stream")
        info = streams.setdefault(s, {"ports": set(), "first": None, "layers": set()})
        info["ports"] |= {int(one(r, "tcp.srcport")), int(one(r, "tcp.dstport"))}
        info["layers"] |= set(one(r, "frame.protocols").split(":")) & {"smtp", "pop", "imap"}
        if r["tcp.payload"] and info["first"] is None:
            info["first"] = (num(r), judge(unhex(one(r, "tcp.payload"))))
    out = {}
    for s, info in streams.items():
        if info["ports"] & MAIL_PORTS or info["first"] is None:
            continue
        first, proto = info["first"]
        builtin = {"smtp": "smtp", "pop": "pop3", "imap": "imap"}
        layers = sorted(builtin[x] for x in info["layers"])
        if proto or len(layers) == 1:
            out[s] = (first, proto or layers[0])
    return out


@pytest.fixture(scope="module")
def realworld_off_port(tshark):
    """[(capture, stream, first payload frame, protocol)], derived here."""
    found = []
    for path in _candidates():
        for s, (first, proto) in off_port_mail_streams(tshark, path).items():
            found.append((path, s, first, proto))
    if not found:
        pytest.fail("no real-world session off the mail ports: the corpus should hold some (README: 2525, 225)")
    # which ones, for the record (shown with -s, and on failure)
    for path, s, first, proto in found:
        print("off-port %s session: %s stream %s, first payload in frame %d"
              % (proto, path.relative_to(REALWORLD), s, first))
    return found


def _realworld_rows(tshark, path):
    return table(tshark, path, ["frame.number", "tcp.stream", "mailsec.proto", "mailsec.detected_by",
                                "mailsec.alert.name", "mailsec.alert.severity"], display_filter="tcp && !icmp")


def test_realworld_off_port_sessions_detected_by_heuristic(tshark, realworld_off_port):
    """Every such session (which ones: the assertion messages name capture and
    stream) is mailsec from its first payload on, with the protocol its
    content says and detected_by heuristic."""
    for path, stream, first, proto in realworld_off_port:
        where = "%s stream %s" % (path.relative_to(REALWORLD), stream)
        rows = [r for r in _realworld_rows(tshark, path) if one(r, "tcp.stream") == stream]
        later = [r for r in rows if num(r) >= first]
        assert later, where
        assert {one(r, "mailsec.proto") for r in later} == {proto}, where
        assert {one(r, "mailsec.detected_by") for r in later} == {"heuristic"}, where


def test_realworld_off_port_sessions_content_alert(tshark, realworld_off_port):
    """The same sessions, and the bundled captures whose ground truth says
    heuristic (2525, 1143): each must carry mailsec.detected.content."""
    missing = []
    for path, stream, first, _ in realworld_off_port:
        rows = [r for r in _realworld_rows(tshark, path) if one(r, "tcp.stream") == stream]
        if not frames_with(rows, "mailsec.detected.content"):
            missing.append("%s stream %s" % (path.relative_to(REALWORLD), stream))
    for j in sorted(BUNDLED.glob("*.json")):
        if json.loads(j.read_text())["expect_detected_by"] != "heuristic":
            continue
        cap = j.with_suffix(".pcapng")
        if not frames_with(_realworld_rows(tshark, cap), "mailsec.detected.content"):
            missing.append(cap.name)
    assert not missing, "sessions recognised by content without mailsec.detected.content: %s" % missing
