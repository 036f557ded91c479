"""Helpers for the end-to-end tests (test_*_e2e.py) and test_ground_truth.

- table(): tshark -T fields through conftest's Tshark (unprivileged, memoised),
  every occurrence of a field kept apart (values such as
  mailsec.auth.material contain commas, so occurrences are joined with a
  separator that cannot occur in a field).
- Capture: several pcapgen conversations laid one after the other in one
  pcap, so a test knows the frame number of every segment it wrote.
- client_hello(): a minimal, well-formed TLS 1.2 ClientHello.
- builtin_rows() / expected_boundary(): the STARTTLS boundary of a bundled
  session as Wireshark's own dissectors show it (tcp, tls, smtp, pop, imap
  fields from a run WITHOUT mailsec), never from mailsec's output.
"""
import struct

from pcapgen import Conversation, write_pcap

SEP = "\x1f"   # occurrence separator: cannot occur in an escaped field value

MAIL_PORTS = {25, 587, 465, 110, 995, 143, 993}   # README: mailsec's default port preferences


def table(ts, capture, fields, display_filter=None, extra=(), keylog=None, plugin=True):
    """Rows of -T fields as dicts: field -> list of occurrences ([] when absent)."""
    args = list(extra) + ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=" + SEP]
    for f in fields:
        args += ["-e", f]
    if display_filter:
        args += ["-Y", display_filter]
    out, _ = ts.run(capture, args, plugin=plugin, keylog=keylog)
    rows = []
    for line in out.splitlines():
        cols = line.split("\t")
        assert len(cols) == len(fields), "tshark row does not split into %d fields: %r" % (len(fields), line)
        rows.append({f: (c.split(SEP) if c else []) for f, c in zip(fields, cols)})
    return rows


def one(row, field):
    """The single value of field in row ('' when absent)."""
    vals = row[field]
    assert len(vals) <= 1, "frame %s: %s occurs %d times: %r" % (row.get("frame.number"), field, len(vals), vals)
    return vals[0] if vals else ""


def num(row):
    return int(one(row, "frame.number"))


def alerts(row):
    """[(alert name, severity)] of one frame: mailsec.alert.name and
    mailsec.alert.severity are drawn together under each mailsec.alert."""
    names, sev = row["mailsec.alert.name"], row["mailsec.alert.severity"]
    assert len(names) == len(sev), "frame %s: %r / %r" % (row.get("frame.number"), names, sev)
    return list(zip(names, sev))


def frames_with(rows, alert):
    """Frame numbers carrying this alert, once per occurrence."""
    return [num(r) for r in rows for name, _ in alerts(r) if name == alert]


def unhex(v):
    return bytes.fromhex(v.replace(":", ""))


# --- synthetic captures with known frame numbers --------------------------------

def client_hello():
    """A TLS 1.2 ClientHello (record type 22, handshake type 1): version,
    random, no session id, one cipher suite, null compression, no extensions."""
    body = b"\x03\x03" + bytes(range(32)) + b"\x00" + b"\x00\x02\x00\x2f" + b"\x01\x00"
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


class Capture:
    """Conversations written one after the other (100 s apart), so the frames
    of conversation k follow those of conversation k-1 and each segment's frame
    number is known to the test that wrote it."""

    def __init__(self):
        self.convs = []
        self.offsets = None

    def conversation(self, server_port, handshake=True, ipv6=False, client_port=None, server_of=None):
        """A new conversation; server_of: an earlier (IPv4) conversation whose
        server address this one talks to."""
        k = len(self.convs)
        cport = 40000 + k if client_port is None else client_port
        if ipv6:
            client, server = ("2001:db8:%x::1" % (k + 1), cport), ("2001:db8:%x::2" % (k + 1), server_port)
        else:
            client, server = ("10.1.%d.1" % k, cport), ("10.1.%d.2" % k, server_port)
            if server_of is not None:
                server = (server_of.server[0], server_port)
        c = Conversation(client=client, server=server, ipv6=ipv6)
        c.t += 100.0 * k
        c.sent = []   # (frame index in c, who, payload) of every segment with payload
        self.convs.append(c)
        if handshake:
            c.handshake()
        return c

    @staticmethod
    def send(c, who, data, cut=None):
        """Send data (cut into segments as pcapgen does); returns the handles of
        the segments, [(conversation, index)], in order."""
        first = len(c.frames)
        c.send(who, data, cut)
        handles = [(c, i) for i in range(first, len(c.frames))]
        pos = 0
        for h in handles:
            # pcapgen cut the data in this order: recover each piece's bytes
            seg = _payload_of(c.frames[h[1]][1], c.ipv6)
            assert data[pos:pos + len(seg)] == seg
            pos += len(seg)
            c.sent.append((h[1], who, seg))
        return handles

    def retransmit(self, c, who, data):
        first = len(c.frames)
        c.retransmit(who, data)
        return (c, first)

    def write(self, path):
        write_pcap(str(path), self.convs)
        self.offsets, n = {}, 0
        for c in self.convs:
            self.offsets[id(c)] = n
            n += len(c.frames)
        return path

    def number(self, handle):
        c, i = handle
        return self.offsets[id(c)] + i + 1

    def payload_frames(self, c):
        """{frame number: (who, payload)} of the segments written in c."""
        return {self.offsets[id(c)] + i + 1: (who, p) for i, who, p in c.sent}


def _payload_of(frame, ipv6):
    ip = frame[14:]
    tcp = ip[40:] if ipv6 else ip[(ip[0] & 15) * 4:]
    return tcp[(tcp[12] >> 4) * 4:]


def check_numbering(rows, cap):
    """The frame numbers the test computed hold the bytes it wrote, as the
    built-in tcp.payload shows them: a check on the test, not on mailsec."""
    by = {num(r): r for r in rows}
    for c in cap.convs:
        for n, (_, payload) in cap.payload_frames(c).items():
            assert unhex(one(by[n], "tcp.payload")) == payload, "frame %d does not hold what the test wrote" % n


# --- the STARTTLS boundary from the built-in dissectors -------------------------

BUILTIN_FIELDS = ["frame.number", "tcp.srcport", "tcp.dstport", "tcp.len", "tcp.flags.syn", "tcp.flags.ack",
                  "tcp.analysis.retransmission", "tls.record.content_type", "tls.handshake.type",
                  "tls.handshake.extensions_server_name",
                  "smtp.req.command", "smtp.response.code",
                  "pop.request.command", "pop.response.indicator",
                  "imap.request.command", "imap.request_tag", "imap.response_tag", "imap.response.status"]


def builtin_rows(ts, cap):
    """Built-in fields of every TCP frame, from a run without mailsec and
    without TLS keys (the handshake and everything before it are in clear)."""
    return table(ts, cap, BUILTIN_FIELDS, display_filter="tcp", plugin=False)


def session_frames(rows, session):
    port = str(session["client_port"])
    return [r for r in rows if port in (one(r, "tcp.srcport"), one(r, "tcp.dstport"))]


def _is_positive_starttls_reply(frames, i, protocol):
    """Frame i (from the server) carries the positive reply to the client's
    last STARTTLS/STLS request before it, by the built-in fields: the first
    reply after that request (commands the client sent after it, before the
    reply, are answered later)."""
    f = frames[i]
    earlier = frames[:i]
    if protocol in ("smtp", "pop3"):
        # tshark 4.0 shows STARTTLS as smtp.req.command "STAR" (PLATFORM.md)
        cmd, reply, words, ok = (("smtp.req.command", "smtp.response.code", ("STAR", "STARTTLS"), "220")
                                 if protocol == "smtp" else
                                 ("pop.request.command", "pop.response.indicator", ("STLS",), "+OK"))
        asked = [j for j, r in enumerate(earlier) if any(c.upper() in words for c in r[cmd])]
        if not asked or ok not in f[reply]:
            return False
        return not any(r[reply] for r in earlier[asked[-1] + 1:])
    if protocol == "imap":
        reqs = [(c.upper(), t) for r in earlier for c, t in zip(r["imap.request.command"], r["imap.request_tag"])]
        tags = [t for c, t in reqs if c == "STARTTLS"]
        if not tags:
            return False
        oks = [t for t, s in zip(f["imap.response_tag"], f["imap.response.status"]) if s.upper() == "OK"]
        return tags[-1] in oks
    raise AssertionError("unknown protocol %r" % protocol)


def expected_boundary(frames, session, protocol):
    """The README's boundary ("the last cleartext frame", run.sh's "TLS after
    frame N"), from built-in fields only: the last frame of the session with
    TCP payload (retransmissions aside) before the first frame carrying a TLS
    ClientHello. It must be the server's positive reply to STARTTLS/STLS,
    which the built-in smtp/pop/imap fields show; anything else means the
    capture is not the plain STARTTLS exchange this test assumes."""
    hello = next((i for i, f in enumerate(frames) if "1" in f["tls.handshake.type"]), None)
    assert hello is not None, "session %s: no ClientHello in the built-in tls fields" % session["client_port"]
    assert one(frames[hello], "tcp.srcport") == str(session["client_port"]), "the ClientHello is not the client's"
    before = [i for i in range(hello) if one(frames[i], "tcp.len") not in ("", "0")
              and not frames[i]["tcp.analysis.retransmission"]]
    assert before, "session %s: no payload before the ClientHello" % session["client_port"]
    i = before[-1]
    assert one(frames[i], "tcp.srcport") == str(session["server_port"]) and \
        _is_positive_starttls_reply(frames, i, protocol), \
        "session %s: frame %s, the last payload before TLS, is not the server's positive STARTTLS reply" % (
            session["client_port"], one(frames[i], "frame.number"))
    return num(frames[i])
