#!/usr/bin/env python3
"""Hostile captures that try to exhaust mailsec (issue 13, item 3).

usage: hostile.py OUTDIR [--full] [--only NAME ...]

Writes OUTDIR/NAME.pcap for each capture below, and OUTDIR/MANIFEST.json: per
capture, what the generator put in it (counts, frame numbers, users, sizes,
SHA-256 of messages as meant). tests/tshark/test_hostile_generated.py builds
the CI sizes with generate() and reads its expectations from that manifest,
never from mailsec's output. --full writes the large sizes (hundreds of MB;
several minutes).

| name | CI size | --full size | what it does |
| --- | --- | --- | --- |
| vrfy-flood | 20,000 | 1,000,000 | one SMTP session: that many VRFY lines, each answered 252 |
| auth-line-huge | 5 MB | 50 MB | AUTH PLAIN + one base64 line of that size (a valid PLAIN credential for alice with a huge password), 235; a second session sends the same size as the answer to an empty "334 " (bob) |
| imap-literal-4g | 1 MB | 100 MB | a LOGIN {4294967295} refused at once, then b LOGIN bob; the same after "+ go ahead" and that many bytes of junk; an APPEND {4294967295} refused with NO [TOOBIG]; each time bob logs in |
| imap-literal-short | 3 | 300 sessions | literals announced larger than the data that follows (LOGIN {200} + "alice", LOGIN alice {64} + "short", LOGIN {5} + alice {100} + "pw"), each refused, then bob (OK), carol (NO), 8 x mallory (NO) |
| many-sessions | 2,000 | 100,000 | short SMTP sessions, each from its own client address: greeting, EHLO, AUTH PLAIN, 235, QUIT, 221, FIN both ways |
| data-endless | 10 MB | 100 MB | one SMTP DATA phase of that many bytes that never ends: no final dot, no FIN, the capture just stops |
| retrans-different | 200 | 10,000 sessions | SMTP AUTH PLAIN sessions, interleaved, where a retransmitted or overlapping segment carries other bytes (alice's credential in one copy, mallory's of the same length in the other), in four layouts |
| mime-deep | 10,000 | 100,000 | message 1: multipart inside multipart that many levels deep; message 2: one multipart with that many sibling parts; session 2: a message of 600 parts and, in its last segment after the final dot, a pipelined AUTH PLAIN (carol) |
| header-huge | 1 MB | 16 MB | message 1: a Subject header of that size on one line; message 2: the same Subject folded into 78-byte lines |

Frames are written to the file as they are made (nothing is kept in memory);
payloads longer than SEGMENT bytes are cut into segments of SEGMENT bytes (IPv4
limits a packet to 65,535 bytes). IPv4 and TCP checksums are correct.
"""
import argparse
import base64
import hashlib
import json
import os
import socket
import struct
import sys

SEGMENT = 32000
LINKTYPE_ETHERNET = 1
FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10

# name -> (CI size, full size); what the number means is in the table above
SIZES = {
    "vrfy-flood": (20_000, 1_000_000),
    "auth-line-huge": (5_000_000, 50_000_000),
    "imap-literal-4g": (1_000_000, 100_000_000),
    "imap-literal-short": (3, 300),
    "many-sessions": (2_000, 100_000),
    "data-endless": (10_000_000, 100_000_000),
    "retrans-different": (200, 10_000),
    "mime-deep": (10_000, 100_000),
    "header-huge": (1_000_000, 16_000_000),
}
NAMES = list(SIZES)


# --- the writer ----------------------------------------------------------------------

def _sum16(data):
    """data (padded with a zero byte to an even length) as one big-endian
    number: congruent to the sum of its 16-bit words modulo 0xFFFF, since
    2**16 = 1 (mod 0xFFFF)."""
    v = int.from_bytes(data, "big")
    if len(data) % 2:
        v <<= 8
    return v


def _checksum(*parts):
    """Internet checksum (RFC 1071) of the concatenation of parts, all but the
    last of even length: the ones' complement sum is the remainder modulo
    0xFFFF, or 0xFFFF when that is 0 and the data is not all zeros."""
    total = 0
    nonzero = False
    for p in parts:
        v = _sum16(p)
        nonzero = nonzero or v != 0
        total += v
    s = total % 0xFFFF
    if s == 0 and nonzero:
        s = 0xFFFF
    return ~s & 0xFFFF


class Pcap:
    """A pcap file written frame by frame; frame numbers count from 1."""

    def __init__(self, path):
        self.fh = open(path, "wb")
        self.fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, LINKTYPE_ETHERNET))
        self.frames = 0
        self.usec = 1_700_000_000 * 1_000_000
        self.ip_id = 0

    def write(self, head, payload):
        self.usec += 1000
        n = len(head) + len(payload)
        self.fh.write(struct.pack("<IIII", self.usec // 1_000_000, self.usec % 1_000_000, n, n))
        self.fh.write(head)
        self.fh.write(payload)
        self.frames += 1
        return self.frames

    def close(self):
        self.fh.close()


class Conn:
    """One TCP connection over IPv4; 'c' is the client, 's' the server."""

    def __init__(self, pcap, client, server, client_isn=1000, server_isn=5000):
        self.w = pcap
        self.ends = {"c": (client, server), "s": (server, client)}
        self.ip = {k: socket.inet_aton(v[0]) for k, v in (("c", client), ("s", server))}
        self.port = {"c": client[1], "s": server[1]}
        self.seq = {"c": client_isn, "s": server_isn}

    def put(self, who, flags, payload=b"", seq=None):
        """One segment at seq (default: the next byte of who's stream); the
        sequence state does not move. Returns its frame number."""
        other = "s" if who == "c" else "c"
        s = self.seq[who] if seq is None else seq
        ack = self.seq[other] if flags & ACK else 0
        tcp = struct.pack("!HHIIBBHHH", self.port[who], self.port[other], s & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                          5 << 4, flags, 65535, 0, 0)
        pseudo = self.ip[who] + self.ip[other] + struct.pack("!BBH", 0, 6, 20 + len(payload))
        tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo, tcp, payload)) + tcp[18:]
        total = 40 + len(payload)
        assert total <= 65535, "segment too long for IPv4"
        self.w.ip_id = (self.w.ip_id + 1) & 0xFFFF
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, self.w.ip_id, 0x4000, 64, 6, 0,
                         self.ip[who], self.ip[other])
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        mac = {"c": b"\x02\x00\x00\x00\x00\x01", "s": b"\x02\x00\x00\x00\x00\x02"}
        eth = mac[other] + mac[who] + b"\x08\x00"
        return self.w.write(eth + ip + tcp, payload)

    def handshake(self):
        self.put("c", SYN)
        self.seq["c"] += 1
        self.put("s", SYN | ACK)
        self.seq["s"] += 1
        self.put("c", ACK)
        return self

    def send(self, who, data, cut=SEGMENT):
        """data in segments of at most cut bytes; returns their frame numbers."""
        frames = []
        mv = memoryview(data)
        for pos in range(0, len(data), cut):
            piece = mv[pos:pos + cut]
            frames.append(self.put(who, PSH | ACK, piece))
            self.seq[who] += len(piece)
        return frames

    def greet(self, ehlo=b"client.example", caps=b"250 mx.example.net\r\n"):
        """The server's greeting, the client's EHLO and the server's answer."""
        self.send("s", b"220 mx.example.net ESMTP\r\n")
        self.send("c", b"EHLO " + ehlo + b"\r\n")
        self.send("s", caps)
        return self

    def envelope(self, rcpt=b"bob@example.org"):
        """MAIL FROM, RCPT TO and DATA, each accepted; returns DATA's frames."""
        self.send("c", b"MAIL FROM:<alice@example.org>\r\n")
        self.send("s", b"250 2.1.0 Ok\r\n")
        self.send("c", b"RCPT TO:<" + rcpt + b">\r\n")
        self.send("s", b"250 2.1.5 Ok\r\n")
        frames = self.send("c", b"DATA\r\n")
        self.send("s", b"354 End data with <CR><LF>.<CR><LF>\r\n")
        return frames

    def send_stream(self, who, chunks):
        """Send an iterable of byte strings as one stream cut into SEGMENT-byte
        segments (the chunks' own boundaries do not matter). Returns (frames, bytes);
        self.sha256 is then the hash of what was sent."""
        buf = bytearray()
        frames, total = [], 0
        self.sha256 = hashlib.sha256()
        for chunk in chunks:
            buf += chunk
            total += len(chunk)
            self.sha256.update(chunk)
            if len(buf) >= SEGMENT:
                whole = len(buf) - len(buf) % SEGMENT
                frames += self.send(who, bytes(buf[:whole]))
                del buf[:whole]
        if buf:
            frames += self.send(who, bytes(buf))
        return frames, total

    def close(self):
        self.put("c", FIN | ACK)
        self.seq["c"] += 1
        self.put("s", FIN | ACK)
        self.seq["s"] += 1
        self.put("c", ACK)


def _plain(authzid, user, password):
    return base64.b64encode(authzid + b"\0" + user + b"\0" + password)


# --- the captures --------------------------------------------------------------------

def vrfy_flood(w, n):
    """One SMTP session of n VRFY probes, each answered 252 (cannot verify)."""
    c = Conn(w, ("10.20.0.1", 41000), ("10.20.0.2", 25)).handshake()
    c.greet(b"probe.example", b"250-mx.example.net\r\n250 8BITMIME\r\n")
    first = None
    for i in range(n):
        f = c.send("c", b"VRFY user%07d\r\n" % i)[0]
        c.send("s", b"252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery\r\n")
        if first is None:
            first = f
    c.send("c", b"QUIT\r\n")
    c.send("s", b"221 2.0.0 Bye\r\n")
    c.close()
    # probe i is frame first + 2i, its reply the frame after it; before the
    # probes the server sent two replies (greeting, EHLO)
    return {"probes": n, "first_probe_frame": first, "frame_step": 2, "replies_before": 2}


def _huge_password(size):
    """A password that makes the PLAIN message \\0user\\0password a multiple of 3 long."""
    unit = b"correct-horse-battery-staple-"
    return (unit * (size // len(unit) + 1))[:size]


def auth_line_huge(w, line_bytes):
    """Session 1: AUTH PLAIN <base64> on one line of about line_bytes (alice).
    Session 2: AUTH PLAIN, 334, then the base64 answer on one line of the same size (bob)."""
    sessions = []
    for k, (user, initial) in enumerate(((b"alice", True), (b"bob", False))):
        # base64 of n bytes is 4n/3 long when n is a multiple of 3
        cred_len = (line_bytes * 3 // 4) // 3 * 3
        password = _huge_password(cred_len - 2 - len(user))
        b64 = _plain(b"", user, password)
        c = Conn(w, ("10.21.0.%d" % (k + 1), 41000 + k), ("10.21.1.1", 25)).handshake()
        c.greet(caps=b"250-mx.example.net\r\n250 AUTH PLAIN LOGIN\r\n")
        if initial:
            line = b"AUTH PLAIN " + b64 + b"\r\n"
            frames = c.send("c", line)
        else:
            c.send("c", b"AUTH PLAIN\r\n")
            c.send("s", b"334 \r\n")
            line = b64 + b"\r\n"
            frames = c.send("c", line)
        reply = c.send("s", b"235 2.7.0 Authentication successful\r\n")[0]
        c.send("c", b"QUIT\r\n")
        c.send("s", b"221 2.0.0 Bye\r\n")
        c.close()
        sessions.append({"user": user.decode(), "password_len": len(password),
                         "password_sha256": hashlib.sha256(password).hexdigest(),
                         "password_prefix": password[:64].decode(),
                         "line_len": len(line) - 2, "line_frames": [frames[0], frames[-1]],
                         "initial_response": initial, "reply_frame": reply})
    return {"sessions": sessions}


def imap_literal_4g(w, junk):
    """Three sessions; in each the server refuses a {4294967295} literal, then bob logs in."""
    big = b"{4294967295}"
    sessions = []
    for k in range(3):
        c = Conn(w, ("10.22.0.%d" % (k + 1), 42000 + k), ("10.22.1.1", 143)).handshake()
        c.send("s", b"* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n")
        if k == 0:
            # refused at once: the client never sends the literal
            c.send("c", b"a LOGIN " + big + b"\r\n")
            c.send("s", b"a BAD literal too big\r\n")
        elif k == 1:
            # as ../shared/hostile/imap-literal-4g.pcap: a go-ahead, junk, then BAD
            c.send("c", b"a LOGIN " + big + b"\r\n")
            c.send("s", b"+ go ahead\r\n")
            c.send_stream("c", (b"z" * min(1 << 20, junk - i) for i in range(0, junk, 1 << 20)))
            c.send("c", b"\r\n")
            c.send("s", b"a BAD literal too big\r\n")
        else:
            c.send("c", b"a APPEND INBOX " + big + b"\r\n")
            c.send("s", b"a NO [TOOBIG] message too large\r\n")
        req = c.send("c", b"b LOGIN bob secret\r\n")[0]
        ok = c.send("s", b"b OK LOGIN completed\r\n")[0]
        c.send("c", b"c LOGOUT\r\n")
        c.send("s", b"* BYE logging out\r\nc OK LOGOUT completed\r\n")
        c.close()
        sessions.append({"login_frame": req, "ok_frame": ok})
    return {"sessions": sessions, "user": "bob", "password": "secret"}


def imap_literal_short(w, n):
    """n sessions (three layouts in turn): a literal announced larger than what
    follows, refused BAD, then bob (OK), carol (NO) and 8 x mallory (NO)."""
    sessions = []
    for k in range(n):
        layout = k % 3
        c = Conn(w, ("10.23.%d.%d" % (k // 250, k % 250 + 1), 43000 + k % 20000), ("10.23.255.1", 143))
        c.handshake()
        c.send("s", b"* OK IMAP4rev1 ready\r\n")
        if layout == 0:
            c.send("c", b"a LOGIN {200}\r\n")
            c.send("s", b"+ go ahead\r\n")
            c.send("c", b"alice\r\n")
        elif layout == 1:
            c.send("c", b"a LOGIN alice {64}\r\n")
            c.send("s", b"+ go ahead\r\n")
            c.send("c", b"short\r\n")
        else:
            c.send("c", b"a LOGIN {5}\r\n")
            c.send("s", b"+ go ahead\r\n")
            c.send("c", b"alice {100}\r\n")
            c.send("s", b"+ go ahead\r\n")
            c.send("c", b"pw\r\n")
        c.send("s", b"a BAD missing arguments\r\n")
        logins = [(b"b", b"bob", b"Secret123", True), (b"c", b"carol", b"Pass456", False)]
        logins += [(b"d%d" % i, b"mallory", b"Guess%d" % i, False) for i in range(8)]
        for tag, user, password, ok in logins:
            c.send("c", b"%s LOGIN %s %s\r\n" % (tag, user, password))
            c.send("s", b"%s OK logged in\r\n" % tag if ok else b"%s NO failed\r\n" % tag)
        c.send("c", b"e LOGOUT\r\n")
        c.send("s", b"* BYE\r\ne OK bye\r\n")
        c.close()
        sessions.append({"layout": layout,
                         "logins": [[u.decode(), p.decode(), "success" if ok else "failure"]
                                    for _, u, p, ok in logins]})
    return {"sessions": sessions}


def many_sessions(w, n):
    """n SMTP sessions one after the other, each from its own client address."""
    for k in range(n):
        client = "10.%d.%d.%d" % (64 + k // 65536, (k // 256) % 256, k % 256)
        c = Conn(w, (client, 40000 + k % 20000), ("10.63.0.1", 25)).handshake()
        c.greet(b"c%d.example" % k, b"250-mx.example.net\r\n250 AUTH PLAIN\r\n")
        c.send("c", b"AUTH PLAIN " + _plain(b"", b"user%06d" % k, b"pass%06d" % k) + b"\r\n")
        c.send("s", b"235 2.7.0 Authentication successful\r\n")
        c.send("c", b"QUIT\r\n")
        c.send("s", b"221 2.0.0 Bye\r\n")
        c.close()
    return {"sessions": n, "user_format": "user%06d", "password_format": "pass%06d"}


def data_endless(w, size):
    """One SMTP DATA body of about size bytes with no end: the capture stops in it."""
    c = Conn(w, ("10.24.0.1", 44000), ("10.24.0.2", 25)).handshake()
    c.greet()
    data = c.envelope(b"bob@example.net")[0]
    head = (b"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>\r\n"
            b"Subject: endless\r\nMessage-ID: <endless@example.org>\r\n\r\n")

    def body():
        yield head
        sent, i = len(head), 0
        while sent < size:
            line = b"Line %010d of a message body that never reaches its final dot.....\r\n" % i
            i += 1
            sent += len(line)
            yield line

    frames, total = c.send_stream("c", body())
    # no ".", no reply, no FIN: the capture ends here
    return {"data_frame": data, "body_frames": [frames[0], frames[-1]], "body_bytes": total,
            "body_sha256": c.sha256.hexdigest(), "subject": "endless"}


def _retrans_script(c, variant, k):
    """One session's steps (a generator: one step per next()). The client's
    AUTH PLAIN line exists in two copies of the same length at the same
    sequence numbers: alice's and mallory's."""
    line = {u: b"AUTH PLAIN " + _plain(b"", u, p) + b"\r\n"
            for u, p in ((b"alice", b"Secret1234"), (b"mallory", b"Secret12"))}
    A, M = line[b"alice"], line[b"mallory"]
    assert len(A) == len(M) and A != M
    c.handshake()
    yield
    c.send("s", b"220 mx.example.net ESMTP\r\n")
    yield
    c.send("c", b"EHLO c%d.example\r\n" % k)
    yield
    c.send("s", b"250-mx.example.net\r\n250 AUTH PLAIN\r\n")
    yield
    base, L, h = c.seq["c"], len(A), len(A) // 2
    conflicting = []
    if variant == 0:     # alice, then all of it again as mallory
        c.put("c", PSH | ACK, A, base)
        yield
        conflicting.append(c.put("c", PSH | ACK, M, base))
    elif variant == 1:   # mallory, then all of it again as alice
        c.put("c", PSH | ACK, M, base)
        yield
        conflicting.append(c.put("c", PSH | ACK, A, base))
    elif variant == 2:   # alice in two halves, then mallory's bytes across both
        c.put("c", PSH | ACK, A[:h], base)
        yield
        c.put("c", PSH | ACK, A[h:], base + h)
        yield
        conflicting.append(c.put("c", PSH | ACK, M[h // 2:], base + h // 2))
    else:                # alice's second half early, mallory's whole line, alice's first half late
        c.put("c", PSH | ACK, A[h:], base + h)
        yield
        conflicting.append(c.put("c", PSH | ACK, M, base))
        yield
        conflicting.append(c.put("c", PSH | ACK, A[:h], base))
    c.seq["c"] = base + L
    c.conflicting = conflicting
    yield
    c.send("s", b"235 2.7.0 Authentication successful\r\n")
    yield
    c.send("c", b"QUIT\r\n")
    yield
    c.send("s", b"221 2.0.0 Bye\r\n")
    yield
    c.close()


def retrans_different(w, n):
    """n SMTP AUTH sessions whose steps are interleaved round robin."""
    conns, scripts = [], []
    for k in range(n):
        c = Conn(w, ("10.25.%d.%d" % (k // 250, k % 250 + 1), 45000 + k % 20000), ("10.25.255.1", 25))
        conns.append(c)
        scripts.append(_retrans_script(c, k % 4, k))
    live = list(scripts)
    while live:
        nxt = []
        for s in live:
            try:
                next(s)
                nxt.append(s)
            except StopIteration:
                pass
        live = nxt
    return {"sessions": n, "variants": [k % 4 for k in range(n)],
            "credentials": {"alice": "Secret1234", "mallory": "Secret12"},
            "conflicting_frames": [f for c in conns for f in c.conflicting]}


def _smtp_messages(w, client, messages):
    """One SMTP session sending each message (bytes as meant, CR LF lines, no
    line starting with a dot) with DATA; returns per message its end frame."""
    c = Conn(w, client, ("10.26.255.1", 25)).handshake()
    c.greet()
    out = []
    for msg in messages:
        assert b"\n." not in msg and not msg.startswith(b".") and msg.endswith(b"\r\n")
        c.envelope()
        frames = c.send("c", msg + b".\r\n")
        reply = c.send("s", b"250 2.0.0 Ok: queued\r\n")[0]
        out.append({"size": len(msg), "sha256": hashlib.sha256(msg).hexdigest(),
                    "longest_line": max(len(line) for line in msg.split(b"\r\n")),
                    "frames": [frames[0], frames[-1]], "reply_frame": reply})
    c.send("c", b"QUIT\r\n")
    c.send("s", b"221 2.0.0 Bye\r\n")
    c.close()
    return out


PIPELINED_PARTS = 600   # more than Wireshark's gui.max_tree_depth (500) layers


def mime_deep(w, n):
    """Session 1: message 1 nests multipart/mixed n levels deep; message 2 has
    n sibling parts. Session 2: a message of 600 parts with an AUTH PLAIN
    pipelined after its final dot, in the same segment."""
    head = (b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: %s\r\n"
            b"MIME-Version: 1.0\r\n")
    deep = [head % b"deep", b'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n']
    for i in range(1, n):
        deep.append(b'--b%d\r\nContent-Type: multipart/mixed; boundary="b%d"\r\n\r\n' % (i - 1, i))
    deep.append(b"--b%d\r\nContent-Type: text/plain\r\n\r\nthe bottom\r\n" % (n - 1))
    for i in range(n - 1, -1, -1):
        deep.append(b"--b%d--\r\n" % i)
    wide = [head % b"wide", b'Content-Type: multipart/mixed; boundary="w"\r\n\r\n']
    for i in range(n):
        wide.append(b"--w\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i)
    wide.append(b"--w--\r\n")
    msgs = _smtp_messages(w, ("10.26.0.1", 46000), [b"".join(deep), b"".join(wide)])
    msgs[0]["depth"], msgs[1]["parts"] = n, n
    # Session 2: a message of PIPELINED_PARTS parts whose last segment also
    # carries a pipelined AUTH PLAIN (carol), answered 250 then 235.
    c = Conn(w, ("10.26.0.2", 46001), ("10.26.255.1", 25)).handshake()
    c.greet(caps=b"250-mx.example.net\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n")
    c.envelope()
    parts = [head % b"pipelined", b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n']
    parts += [b"--p\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(PIPELINED_PARTS)]
    parts.append(b"--p--\r\n")
    msg = b"".join(parts)
    auth = b"AUTH PLAIN " + _plain(b"", b"carol", b"hidden-after-data") + b"\r\n"
    frames = c.send("c", msg + b".\r\n" + auth)
    assert len(msg) + 3 - (len(frames) - 1) * SEGMENT > 0   # the last segment holds the dot and AUTH
    reply = c.send("s", b"250 2.0.0 Ok: queued\r\n235 2.7.0 Authentication successful\r\n")[0]
    c.send("c", b"QUIT\r\n")
    c.send("s", b"221 2.0.0 Bye\r\n")
    c.close()
    pipelined = {"parts": PIPELINED_PARTS, "size": len(msg), "sha256": hashlib.sha256(msg).hexdigest(),
                 "frames": [frames[0], frames[-1]], "reply_frame": reply,
                 "user": "carol", "password": "hidden-after-data"}
    return {"messages": msgs, "pipelined": pipelined}


def header_huge(w, size):
    """Message 1: Subject of size bytes on one line; message 2: the same folded."""
    text = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" * (size // 62 + 1))[:size]
    tail = (b"From: alice@example.org\r\nTo: bob@example.org\r\nMessage-ID: <huge@example.org>\r\n\r\n"
            b"body\r\n")
    one_line = b"Subject: " + text + b"\r\n" + tail
    folded = [b"Subject: "]
    for pos in range(0, size, 76):
        folded.append((b"" if pos == 0 else b" ") + text[pos:pos + 76] + b"\r\n")
    folded = b"".join(folded) + tail
    msgs = _smtp_messages(w, ("10.27.0.1", 47000), [one_line, folded])
    return {"messages": msgs, "subject_bytes": size}


GENERATORS = {
    "vrfy-flood": vrfy_flood,
    "auth-line-huge": auth_line_huge,
    "imap-literal-4g": imap_literal_4g,
    "imap-literal-short": imap_literal_short,
    "many-sessions": many_sessions,
    "data-endless": data_endless,
    "retrans-different": retrans_different,
    "mime-deep": mime_deep,
    "header-huge": header_huge,
}
assert list(GENERATORS) == NAMES


def generate(name, path, full=False):
    """Write capture name to path; returns its manifest (JSON-able)."""
    size = SIZES[name][1 if full else 0]
    w = Pcap(path)
    try:
        info = GENERATORS[name](w, size)
    finally:
        w.close()
    info.update(name=name, size=size, full=full, frames=w.frames, file_bytes=os.path.getsize(path))
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--full", action="store_true", help="the large sizes (see the table in the source)")
    ap.add_argument("--only", nargs="+", choices=NAMES, metavar="NAME", help="some captures: " + ", ".join(NAMES))
    args = ap.parse_args(argv)
    os.makedirs(args.outdir, exist_ok=True)
    manifest_path = os.path.join(args.outdir, "MANIFEST.json")
    manifest = {}
    if os.path.exists(manifest_path):
        with open(manifest_path) as fh:
            manifest = json.load(fh)
    for name in args.only or NAMES:
        path = os.path.join(args.outdir, name + ".pcap")
        info = generate(name, path, args.full)
        manifest[name] = info
        print("%-20s %12d bytes %9d frames  %s" % (name, info["file_bytes"], info["frames"], path))
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
