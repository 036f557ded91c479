#!/usr/bin/env python3
"""fuzz/seeds.py — seed corpora for the mailsec fuzz targets (run by fuzz/seeds.sh).

Reads TCP payloads per stream and direction from captures with tshark (and
the decrypted TLS application data where a key log lies next to the capture),
and writes small seeds in each target's input format into OUT/<target>/,
named by their SHA-1 (as libFuzzer names its own). Also writes a few
hand-made seeds per target, so every target has a corpus without tshark.

usage: seeds.py OUT CAPTURE...
"""
import base64
import hashlib
import os
import re
import struct
import subprocess
import sys

# Per target: the largest seed kept (run.sh's -max_len matches) and how many.
MAX_LEN = {
    "lines": 16384, "seq": 8192, "detect": 1024, "sasl": 4096, "ntlm": 4096, "imap": 65536,
    "msg": 65536, "smuggle": 16384, "tlshello": 16384, "sha256": 4096, "registry": 4096, "session": 65536,
}
MAX_SEEDS = 250            # per target, from captures
PER_CAPTURE = 3            # per target and capture, so that every capture has its say
STREAMS_PER_CAPTURE = 3    # the first few streams of each capture (some hold thousands)
SEGMENT_CAP = 4096         # bytes of one captured segment kept in a seed
TLS_SEGMENTS = 3           # raw TLS segments kept per direction (the Hellos)

SMTP_PORTS = {25, 26, 225, 465, 587, 2525}
POP3_PORTS = {110, 995}
IMAP_PORTS = {143, 993, 1143}
IMPLICIT = {465, 993, 995}

C2S, S2C = 0, 1


class Out:
    def __init__(self, root):
        self.root = root
        self.count = {}
        self.here = {}     # seeds of the current capture, per target

    def capture(self):
        self.here = {}

    def put(self, target, data, handmade=False):
        data = bytes(data)[: MAX_LEN[target]]
        if not handmade and (self.count.get(target, 0) >= MAX_SEEDS or self.here.get(target, 0) >= PER_CAPTURE):
            return
        d = os.path.join(self.root, target)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, hashlib.sha1(data).hexdigest())
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
            if not handmade:
                self.count[target] = self.count.get(target, 0) + 1
                self.here[target] = self.here.get(target, 0) + 1


def tshark(args):
    r = subprocess.run(["tshark"] + args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    return r.stdout.decode("ascii", "replace")


class Stream:
    def __init__(self, idx):
        self.idx = idx
        self.frames = []     # (dir or None, syn, rel seq, payload) in capture order; dir fixed later
        self.server_port = None
        self.ports = None
        self.decrypted = []  # (dir, bytes)
        self.has_syn = [False, False]

    def proto(self):
        p = self.server_port
        if p in SMTP_PORTS:
            return 1
        if p in POP3_PORTS:
            return 2
        if p in IMAP_PORTS:
            return 3
        return 0


def read_capture(path):
    out = tshark(["-r", path, "-Y", "tcp", "-T", "fields", "-e", "tcp.stream", "-e", "tcp.srcport",
                  "-e", "tcp.dstport", "-e", "tcp.flags.syn", "-e", "tcp.flags.ack", "-e", "tcp.seq",
                  "-e", "tcp.payload"])
    streams = {}
    for line in out.splitlines():
        f = line.split("\t")
        if len(f) < 7 or not f[0].isdigit():
            continue
        idx, sport, dport = int(f[0]), int(f[1]), int(f[2])
        syn, ack = f[3] in ("1", "True"), f[4] in ("1", "True")
        seq = int(f[5]) if f[5].isdigit() else 0
        payload = bytes.fromhex(f[6].replace(":", "")) if f[6] else b""
        s = streams.get(idx)
        if s is None:
            if len(streams) >= STREAMS_PER_CAPTURE:
                continue
            s = streams[idx] = Stream(idx)
        if s.ports is None:
            s.ports = (sport, dport)
        if syn and s.server_port is None:
            s.server_port = sport if ack else dport
        s.frames.append((sport, syn, seq, payload))
    for s in streams.values():
        if s.server_port is None:
            a, b = s.ports
            known = SMTP_PORTS | POP3_PORTS | IMAP_PORTS
            s.server_port = a if a in known and b not in known else b if b in known else min(a, b)
        frames = []
        for sport, syn, seq, payload in s.frames:
            d = S2C if sport == s.server_port else C2S
            if syn:
                s.has_syn[d] = True
            frames.append((d, syn, seq, payload))
        s.frames = frames
    keys = os.path.splitext(path)[0] + ".keys"
    if os.path.exists(keys) and streams:
        args = ["-r", path, "-o", "tls.keylog_file:" + keys, "-q"]
        for idx in streams:
            args += ["-z", "follow,tls,raw,%d" % idx]
        cur, node0_server = None, False
        for line in tshark(args).splitlines():
            m = re.match(r"Filter: tcp.stream eq (\d+)", line)
            if m:
                cur = streams.get(int(m.group(1)))
                node0_server = False
                continue
            m = re.match(r"Node 0: .*:(\d+)$", line)
            if m and cur:
                node0_server = int(m.group(1)) == cur.server_port
                continue
            if cur is None or not re.match(r"^\t?[0-9a-fA-F]+$", line):
                continue
            indented = line.startswith("\t")
            d = (C2S if node0_server else S2C) if indented else (S2C if node0_server else C2S)
            cur.decrypted.append((d, bytes.fromhex(line.strip())))
    return list(streams.values())


def is_tls(p):
    return len(p) >= 3 and 20 <= p[0] <= 23 and p[1] == 3


def cleartext(stream):
    """Each direction's bytes in clear (before TLS), in stream order, duplicates dropped."""
    got = [bytearray(), bytearray()]
    seen = [set(), set()]
    tls = [False, False]
    for d, syn, seq, p in stream.frames:
        if not p or tls[d] or (seq, len(p)) in seen[d]:
            continue
        if is_tls(p):
            tls[d] = True
            continue
        seen[d].add((seq, len(p)))
        got[d] += p
    for d, p in stream.decrypted:
        got[d] += p
    return [bytes(got[0]), bytes(got[1])]


def tls_bytes(stream):
    got = [bytearray(), bytearray()]
    n = [0, 0]
    tls = [False, False]
    for d, syn, seq, p in stream.frames:
        if p and (tls[d] or is_tls(p)) and n[d] < TLS_SEGMENTS:
            tls[d] = True
            got[d] += p
            n[d] += 1
    return got


# ---- session and imap ------------------------------------------------------

def session_seed(stream, limit):
    proto = stream.proto()
    h0 = proto | (4 if stream.server_port in IMPLICIT else 0) | (8 if proto == 0 else 0) | 32
    out = bytearray([h0, 0, 0, 0, 0, 0])
    tls = [False, False]
    raw = [0, 0]
    for d, syn, seq, p in stream.frames:
        if len(out) >= limit:
            break
        if syn:
            out.append(7 | (16 * d))
            continue
        if not p:
            continue
        if tls[d] or is_tls(p):
            tls[d] = True
            raw[d] += 1
            if raw[d] > TLS_SEGMENTS:
                continue
        p = p[:SEGMENT_CAP]
        rel = seq if stream.has_syn[d] else seq + 1
        out += bytes([12 | (16 * d) | 32]) + struct.pack(">IH", rel & 0xFFFFFFFF, len(p)) + p
    for d, p in stream.decrypted:
        if len(out) >= limit:
            break
        p = p[:SEGMENT_CAP]
        out += bytes([1 | (16 * d)]) + struct.pack(">H", len(p)) + p
    return bytes(out[:limit])


# ---- lines, detect, tlshello ------------------------------------------------

def lines_seeds(out, stream):
    for d, data in enumerate(cleartext(stream)):
        if not data:
            continue
        data = data[:8000]
        ops = bytearray()
        for i in range(0, len(data), 1000):
            chunk = data[i:i + 1000]
            ops += b"\x00" + struct.pack(">H", len(chunk)) + chunk
        out.put("lines", bytes([1, 0, 1, d * 17 + 3]) + ops)       # oracle, IMAP literals
        out.put("lines", bytes([0, 8, 0x0d, d * 17 + 5]) + ops)    # short lines, stops every 6th
        out.put("detect", bytes([d * 5]) + data[:300])


def tlshello_seeds(out, stream):
    got = tls_bytes(stream)
    if not got[0] and not got[1]:
        return
    ops = bytearray()
    for d in (0, 1):
        if got[d]:
            ops += bytes([d]) + struct.pack(">H", min(len(got[d]), 8000)) + got[d][:8000]
    out.put("tlshello", bytes([0, 0]) + ops)
    out.put("detect", bytes([0]) + bytes(got[0][:64] or got[1][:64]))


# ---- messages: SMTP DATA, POP3 RETR/TOP, IMAP literals -------------------------

def smtp_bodies(c2s):
    for m in re.finditer(rb"(?im)^(?:DATA)\r?\n", c2s):
        start = m.end()
        end = c2s.find(b"\r\n.\r\n", start)
        body = c2s[start:end + 2] if end >= 0 else c2s[start:]
        yield body


def unstuff(body):
    return re.sub(rb"(?m)^\.", b"", body)


def pop3_bodies(s2c):
    for m in re.finditer(rb"\+OK[^\r\n]*(?:octets|follows|message)[^\r\n]*\r\n", s2c, re.I):
        start = m.end()
        end = s2c.find(b"\r\n.\r\n", start)
        if end > start:
            yield s2c[start:end + 2]


def imap_literals(data):
    for m in re.finditer(rb"(?:BODY\[[^\]]*\]|RFC822(?:\.\w+)?|BINARY\[[^\]]*\])\s*\{(\d+)\}\r\n", data, re.I):
        n = int(m.group(1))
        if n > 16:
            yield data[m.end():m.end() + n]


def message_seeds(out, stream):
    c2s, s2c = cleartext(stream)
    for body in smtp_bodies(c2s):
        if not body:
            continue
        out.put("smuggle", bytes([7]) + body[:16000])
        msg = unstuff(body)
        out.put("msg", bytes([1, 0, 0, 0, 0, 0, 11, 0]) + msg)
        out.put("msg", bytes([2, 2, 3, 4, 3, 8, 29, 0]) + msg)   # tiny limits, truncated
        out.put("sha256", bytes([3]) + msg[:4000])
    for body in list(pop3_bodies(s2c)) + list(imap_literals(s2c)) + list(imap_literals(c2s)):
        out.put("msg", bytes([1, 0, 0, 0, 0, 0, 5, 0]) + unstuff(body))


# ---- logins: SASL messages, CRAM-MD5 challenges, APOP, NTLM --------------------

B64 = re.compile(rb"^[A-Za-z0-9+/]+={0,2}$")


def b64(word):
    try:
        return base64.b64decode(word, validate=True)
    except Exception:
        return None


def login_seeds(out, stream):
    c2s, s2c = cleartext(stream)
    cl = [l.rstrip(b"\r") for l in c2s.split(b"\n")]
    sl = [l.rstrip(b"\r") for l in s2c.split(b"\n")]
    words = []
    for l in cl:
        parts = l.split(b" ")
        # AUTH MECH initial / tag AUTHENTICATE MECH initial / a bare SASL line
        for w in parts[-1:]:
            if len(w) >= 4 and B64.match(w):
                words.append(w)
    challenges = []
    for l in sl:
        m = re.match(rb"^(?:334|\+) (\S+)$", l)
        if m and B64.match(m.group(1)):
            challenges.append(m.group(1))
    ntlm_chal = b"\x00" * 8
    for c in challenges:
        d = b64(c)
        if d and d.startswith(b"NTLMSSP\x00") and len(d) >= 32:
            ntlm_chal = d[24:32]
            out.put("ntlm", bytes([0, 0]) + b"\x00" * 8 + d)
    for w in words:
        d = b64(w)
        out.put("sasl", bytes([0, 0]) + w)
        if d is not None:
            out.put("sasl", bytes([0, 1]) + d)
            if d.startswith(b"NTLMSSP\x00"):
                out.put("ntlm", bytes([0, 0]) + ntlm_chal + d)
            for c in challenges[:1]:
                out.put("sasl", bytes([len(c) % 256, 0]) + c + d)
    # APOP: the greeting's timestamp and the client's digest
    ts = re.search(rb"<[^<>\r\n]+@[^<>\r\n]+>", s2c)
    for l in cl:
        m = re.match(rb"(?i)^APOP \S+ ([0-9a-f]{32})$", l)
        if m and ts:
            out.put("sasl", bytes([len(ts.group(0)) % 256, 0]) + ts.group(0) + m.group(1))


# ---- hand-made seeds, so every target starts from something ------------------------

def handmade(out):
    H = lambda t, d: out.put(t, d, handmade=True)
    # lines: CRLF, bare LF, a literal, a long line
    body = b"a1 LOGIN {5}\r\nalice {6}\r\nsecret\r\nbare\nline\r\n" + b"x" * 300 + b"\r\nend"
    H("lines", bytes([1, 0, 1, 9]) + b"\x00" + struct.pack(">H", len(body)) + body + b"\x05")
    H("lines", bytes([0, 2, 3, 1]) + b"\x00" + struct.pack(">H", len(body)) + body + b"\x04\x00\x10\x05\x07")
    # seq: in order, a hole, reordering, a retransmission, an ACK, a SYN, wrap-around
    def seg(off, data, cut=0):
        return bytes([0]) + struct.pack(">hHB", off * 16, len(data), cut) + data
    H("seq", bytes([0]) + struct.pack(">I", 0xFFFFFFF0) + b"\x01" + seg(0, b"hello ") + seg(4, b"world")
      + seg(-9, b"HELLO WOR") + b"\x04" + struct.pack(">h", 20) + b"\x06")
    H("seq", bytes([1]) + struct.pack(">I", 1000) + b"\x02" + b"\x05\x00\x00" + seg(0, b"", 0)
      + bytes([0]) + struct.pack(">hHB", 0, 300, 20) + b"\x03\x00\x40\x00\x80" + b"\x07" + struct.pack(">IH", 70000, 100))
    # detect
    for line in (b"220 mail.example.com ESMTP\r\n", b"+OK POP3 ready\r\n", b"* OK IMAP4rev1 ready\r\n",
                 b"EHLO client\r\n", b"a1 CAPABILITY\r\n", b"USER alice\r\n", b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03"):
        H("detect", b"\x03" + line)
    # sasl
    for msg in (b"AGFsaWNlAHNlY3JldA==", b"\x00alice\x00secret", b"user=alice\x01auth=Bearer tok\x01\x01",
                b"n,a=alice,\x01auth=Bearer tok\x01\x01", b"n,,n=alice,r=abcdef",
                b'username="alice",realm="ex",nonce="n",cnonce="c",nc=00000001,qop=auth,digest-uri="imap/ex",response=0123456789abcdef0123456789abcdef'):
        H("sasl", b"\x00\x00" + msg)
    H("sasl", b"\x1c\x00" + b"PDE4OTYuNjk3MTcwOTUyQHBvc3Q+" + b"alice 2ba1e2fa2fbc4e0ef2cc0cb9ba4e3e1f")
    H("sasl", b"\x21\x00<1896.697170952@dbc.mtview.ca.us>c4c9334bac560ecc979e58001b3e22fb")
    # ntlm: an AUTHENTICATE with user, domain, workstation and an NTLMv2 response
    def ntlm3(unicode=True):
        enc = (lambda s: s.encode("utf-16-le")) if unicode else (lambda s: s.encode())
        dom, user, ws = enc("EXAMPLE"), enc("alice"), enc("WS1")
        lm, nt = b"\x00" * 24, bytes(range(16)) + b"\x01\x01\x00\x00" + b"\x00" * 28
        payload = lm + nt + dom + user + ws
        off = 64
        bufs = []
        for b in (lm, nt, dom, user, ws):
            bufs.append(struct.pack("<HHI", len(b), len(b), off))
            off += len(b)
        return (b"NTLMSSP\x00" + struct.pack("<I", 3) + b"".join(bufs) + struct.pack("<HHI", 0, 0, off)
                + struct.pack("<I", 0xa2888205 if unicode else 0xa2888204) + payload)
    H("ntlm", b"\x00\x00" + b"\x11\x22\x33\x44\x55\x66\x77\x88" + ntlm3())
    H("ntlm", b"\x04\x00" + b"\x00" * 8 + ntlm3(False))
    H("ntlm", b"\x01\x00" + b"\x11" * 8 + ntlm3()[12:])
    chal = b"NTLMSSP\x00" + struct.pack("<I", 2) + struct.pack("<HHI", 0, 0, 48) + struct.pack("<I", 0xa2898205) \
        + b"\x01\x23\x45\x67\x89\xab\xcd\xef" + b"\x00" * 8 + struct.pack("<HHI", 0, 0, 48)
    H("ntlm", b"\x00\x00" + b"\x00" * 8 + chal)
    # msg: a multipart with a base64 attachment, RFC 2231 and 2047 names, a URL
    mime = (b"From: =?utf-8?B?w4lsaXNl?= <a@example.com>\r\nTo: b@example.com\r\nSubject: =?iso-8859-1?Q?caf=E9?=\r\n"
            b"Message-ID: <1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            b"preamble\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"<a href=3D\"https://example.com/x?a=3Db\">link</a> www.example.org.\r\n--b1\r\n"
            b"Content-Type: application/pdf; name=\"r.pdf\"\r\nContent-Disposition: attachment; filename*=utf-8''r%C3%A9.pdf\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IK\r\nAAAA\r\n--b1\r\n"
            b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n"
            b"--b2\r\nContent-Type: text/plain\r\n\r\nhttp://inner.example/\r\n--b2--\r\n--b1--\r\nepilogue\r\n")
    H("msg", bytes([1, 0, 0, 0, 0, 0, 3, 0]) + mime)
    H("msg", bytes([0, 2, 2, 3, 1, 4, 77, 0]) + mime)
    H("sha256", b"\x09" + mime)
    # smuggle: look-alikes of every shape
    H("smuggle", b"\x01" + b"Subject: x\r\n\r\nhi\n.\nMAIL FROM:<a@b>\r\nline\r\n.\rRCPT TO:<c@d>\r\n\r\n.\x00\r\nDATA\r\n\r\n.\r\r\nQUIT\r\n")
    # tlshello: a ClientHello with SNI and a TLS 1.3 ServerHello
    sni = b"mail.example.test"
    ext = b"\x00\x00" + struct.pack(">HHBH", len(sni) + 5, len(sni) + 3, 0, len(sni)) + sni
    ch_body = b"\x03\x03" + b"\x40" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + struct.pack(">H", len(ext)) + ext
    ch = b"\x01" + struct.pack(">I", len(ch_body))[1:] + ch_body
    sh_body = b"\x03\x03" + b"\x41" * 32 + b"\x00" + b"\x13\x01\x00" + b"\x00\x06\x00\x2b\x00\x02\x03\x04"
    sh = b"\x02" + struct.pack(">I", len(sh_body))[1:] + sh_body
    rec = lambda hs: b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs
    H("tlshello", b"\x00\x00" + b"\x00" + struct.pack(">H", len(rec(ch))) + rec(ch) + b"\x01" + struct.pack(">H", len(rec(sh))) + rec(sh))
    H("tlshello", b"\x05\x01" + b"\x00" + struct.pack(">H", len(ch)) + ch + b"\x01" + struct.pack(">H", len(sh)) + sh)
    # registry: adds and gets for a few keys
    ops = bytearray()
    for i in range(6):
        ops += bytes([1 | (i % 5) << 1, 4, 4]) + struct.pack(">HI", 25, i + 1) + bytes([10, 0, 0, i])
        ops += bytes([(i % 5) << 1, 4, 4]) + struct.pack(">H", 25) + bytes([10, 0, 0, i])
    H("registry", b"\x04" + ops)
    # session: SMTP with STARTTLS, then decrypted AUTH PLAIN and a message
    def op(code, d, data, ackfirst=True):
        return bytes([code | 16 * d | (32 if ackfirst else 0)]) + struct.pack(">H", len(data)) + data
    smtp = (bytes([1 | 32, 0, 0, 0, 0, 0]) + op(0, 1, b"220 mx ESMTP\r\n") + op(0, 0, b"EHLO c\r\n")
            + op(0, 1, b"250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n") + op(0, 0, b"STARTTLS\r\n")
            + op(0, 1, b"220 go ahead\r\n") + b"\x26" + b"\x36"
            + op(1, 0, b"EHLO c\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n") + op(1, 1, b"250 mx\r\n235 ok\r\n")
            + op(1, 0, b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n") + op(1, 1, b"250 ok\r\n250 ok\r\n354 go\r\n")
            + op(1, 0, b"Subject: hi\r\n\r\nbody\r\n..dot\r\n.\r\n") + op(1, 1, b"250 queued\r\n") + b"\x0b")
    H("session", smtp)
    pop3 = (bytes([2, 0, 0, 0, 7, 0]) + op(0, 1, b"+OK ready <1.2@host>\r\n") + op(0, 0, b"USER alice\r\n")
            + op(0, 1, b"+OK\r\n") + op(0, 0, b"PASS secret\r\n") + op(0, 1, b"+OK\r\n") + op(0, 0, b"RETR 1\r\n")
            + op(0, 1, b"+OK 20 octets\r\nSubject: x\r\n\r\nhi\r\n") + b"\x12\x00\x10" + op(0, 1, b".\r\n")
            + op(0, 0, b"DELE 1\r\nQUIT\r\n") + op(0, 1, b"+OK\r\n+OK bye\r\n"))
    H("session", pop3)
    imap = (bytes([3, 0, 0, 0, 200, 0]) + op(0, 1, b"* OK IMAP4rev1 ready\r\n") + op(0, 0, b"a1 LOGIN {5}\r\n")
            + op(0, 1, b"+ OK\r\n") + op(0, 0, b"alice {6}\r\n") + op(0, 1, b"+ OK\r\n") + op(0, 0, b"secret\r\n")
            + op(0, 1, b"a1 OK done\r\n") + op(0, 0, b"a2 FETCH 1 BODY[]\r\n")
            + op(0, 1, b"* 1 FETCH (BODY[] {24}\r\nSubject: x\r\n\r\nhello\r\n)\r\na2 OK\r\n")
            + op(0, 0, b"a3 APPEND INBOX {10}\r\n") + op(0, 1, b"+ go\r\n") + op(0, 0, b"Subject: y\r\n")
            + op(0, 0, b"a4 STORE 1 +FLAGS (\\Deleted)\r\na5 EXPUNGE\r\n") + op(0, 1, b"* 1 EXPUNGE\r\na4 OK\r\na5 OK\r\n"))
    H("session", imap)
    H("imap", imap)
    # real traffic's troubles (issue 13, item 7): reordering, a retransmission
    # with other bytes, a capture that starts mid-session, one that ends
    # mid-literal (with and without the end of the session)
    def retrans(d, back, data):
        return bytes([3 | 16 * d]) + struct.pack(">HH", back, len(data)) + data
    alice, mallory = b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", b"AUTH PLAIN AG1hbGxvcnkAc2VjcmV0\r\n"
    greet = op(0, 1, b"220 mx ESMTP\r\n") + op(0, 0, b"EHLO c\r\n") + op(0, 1, b"250-mx\r\n250 AUTH PLAIN\r\n")
    H("session", bytes([1, 0, 0, 0, 3, 0]) + greet + op(9, 0, alice[:15]) + op(0, 0, alice[15:])
      + op(0, 1, b"235 ok\r\n") + b"\x0b")
    H("session", bytes([1, 0, 0, 0, 5, 0]) + greet + op(0, 0, alice) + retrans(0, len(alice), mallory)
      + op(0, 1, b"235 ok\r\n") + b"\x0b")
    H("session", bytes([1, 0, 0, 0, 9, 0]) + op(0, 1, b"ok\r\n250 2.1.0 Ok\r\n")
      + op(0, 0, b"TO:<bob@example.org>\r\nDATA\r\n") + op(0, 1, b"250 2.1.5 Ok\r\n354 go\r\n")
      + op(0, 0, b"Subject: mid\r\n\r\nbody\r\n.\r\nQUIT\r\n") + op(0, 1, b"250 queued\r\n221 bye\r\n"))
    for end in (b"", b"\x0b"):
        lit = (bytes([3 | (128 if not end else 0), 0, 0, 0, 11, 0]) + op(0, 1, b"* OK IMAP4rev1 ready\r\n")
               + op(0, 0, b"a1 LOGIN {5}\r\n") + op(0, 1, b"+ OK\r\n") + op(0, 0, b"alice {6}\r\n")
               + op(0, 1, b"+ OK\r\n") + op(0, 0, b"sec") + end)
        H("session", lit)
        H("imap", lit)


def main():
    if len(sys.argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    out = Out(sys.argv[1])
    handmade(out)
    for path in sys.argv[2:]:
        out.capture()
        try:
            streams = read_capture(path)
        except Exception as e:  # one bad capture does not stop the others
            sys.stderr.write("seeds.py: %s: %s\n" % (path, e))
            continue
        for s in streams:
            if not any(p for _, _, _, p in s.frames):
                continue
            seed = session_seed(s, 32768)
            out.put("session", seed)
            if s.proto() == 3:
                out.put("imap", seed)
            lines_seeds(out, s)
            tlshello_seeds(out, s)
            message_seeds(out, s)
            login_seeds(out, s)
    for t in sorted(MAX_LEN):
        d = os.path.join(out.root, t)
        n = len(os.listdir(d)) if os.path.isdir(d) else 0
        print("  %-9s %4d seeds" % (t, n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
