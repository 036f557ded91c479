#!/usr/bin/env python3
"""make_captures.py - large, realistic benchmark captures for mailsec.

    python3 bench/make_captures.py OUTDIR [--size-mb N] [--seed S] [--kind mail|other|both]

mail.pcap   copies of every TCP session of the real-server captures (captures/real), each
            copy with its own client address and port, server address, initial sequence
            numbers, TCP timestamps and start time; about 10 % of the copies moved to IPv6
mail.keys   the union of the source TLS key logs (the copies keep their TLS sessions)
mail.truth.jsonl, mail.truth-summary.json
            ground truth of every copy, taken from the sources' NAME.json only
other.pcap  synthetic non-mail traffic: HTTP/1.1, DNS, SSH, PostgreSQL
other.summary.json
            what other.pcap holds

Both captures are classic pcap (Ethernet, microsecond timestamps), written in time order
through a bounded merge, so the size is limited by the disk only. Python 3 standard
library only; the same arguments give byte-identical files. See bench/README.md.
"""

import argparse
import bisect
import datetime
import ipaddress
import json
import math
import random
import struct
import sys
import time
from operator import itemgetter
from pathlib import Path

PROG = "make_captures"
M32 = 0xFFFFFFFF
EPOCH = 1741075200            # 2025-03-04 08:00:00 UTC, the first frame of both captures
EPH_LO, EPH_HI = 32768, 60999  # Linux ip_local_port_range
MAIL_PORTS = {25, 587, 465, 110, 995, 143, 993, 2525, 1143}   # none of them in other.pcap
BATCH = 256                   # sessions added to the merge between two flushes

# Copies of each TCP session of a source capture per cycle through the sources. A source
# that is not listed gets DEFAULT_WEIGHT, so every source takes part.
WEIGHTS = {
    "smtp-cleartext": 8, "smtp-starttls": 8, "smtp-implicit": 6, "smtp-nonstd": 2,
    "pop3-cleartext": 4, "pop3-stls": 6, "pop3-implicit": 6,
    "imap-cleartext": 4, "imap-starttls": 8, "imap-implicit": 10, "imap-nonstd": 2,
    "smtp-auth-starttls": 3, "smtp-auth-implicit": 3, "pop3-auth-stls": 2,
    "pop3-auth-implicit": 2, "imap-auth-starttls": 3, "imap-auth-implicit": 3,
}
DEFAULT_WEIGHT = 1

# Mail servers of the copies: (IPv4, IPv6, MAC); a copy uses one of them for all its frames.
MAIL_SERVERS = [
    ("192.0.2.10", "2001:db8:0:2::10", "02:00:5e:10:00:0a"),
    ("192.0.2.11", "2001:db8:0:2::11", "02:00:5e:10:00:0b"),
    ("192.0.2.25", "2001:db8:0:2::25", "02:00:5e:10:00:19"),
    ("192.0.2.143", "2001:db8:0:2::143", "02:00:5e:10:00:8f"),
]
ROUTER_MAC = "02:00:5e:00:00:01"   # every client is behind the same router
CLIENT_V6_NET = int(ipaddress.IPv6Address("2001:db8:c000::"))

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
REC = struct.Struct("<IIII")
pack_into = struct.pack_into

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


class Fail(Exception):
    """A problem with the input or the environment: reported in one line, exit status 1."""


def mac(text):
    return bytes(int(x, 16) for x in text.split(":"))


def ones(data):
    """One's complement sum of 16-bit big-endian words, modulo 65535 (2**16 = 1 mod 65535)."""
    if len(data) & 1:
        data = data + b"\0"
    return int.from_bytes(data, "big") % 65535


def fold(total):
    """The Internet checksum of words summing to total (mod 65535)."""
    r = total % 65535
    return 0xFFFF - r if r else 0


# ---------------------------------------------------------------------------------------
# Reading the sources
# ---------------------------------------------------------------------------------------

def read_capture(path):
    """Frames of a pcapng or classic pcap file: list of (ts_us, linktype, data)."""
    data = path.read_bytes()
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return read_pcapng(data, path)
    if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
        return read_pcap(data, path)
    raise Fail(f"{path}: neither pcapng nor pcap")


def read_pcap(data, path):
    magic = data[:4]
    e = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack_from(e + "I", data, 20)[0] & 0x0FFFFFFF
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack_from(e + "IIII", data, off)
        if off + 16 + caplen > len(data):
            raise Fail(f"{path}: truncated record at byte {off}")
        ts = sec * 1000000 + (frac // 1000 if nano else frac)
        out.append((ts, linktype, data[off + 16:off + 16 + caplen]))
        off += 16 + caplen
    return out


def read_pcapng(data, path):
    """Section header, interface description and (enhanced / obsolete) packet blocks; any
    other block is skipped. Either byte order, per section."""
    out, ifaces, off, e = [], [], 0, "<"
    while off + 12 <= len(data):
        if data[off:off + 4] == b"\x0a\x0d\x0d\x0a":
            bom = data[off + 8:off + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                e = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                e = ">"
            else:
                raise Fail(f"{path}: bad byte-order magic at byte {off}")
            ifaces = []
        btype, blen = struct.unpack_from(e + "II", data, off)
        if blen < 12 or blen % 4 or off + blen > len(data):
            raise Fail(f"{path}: bad block length {blen} at byte {off}")
        if btype == 1:                                      # interface description
            linktype = struct.unpack_from(e + "H", data, off + 8)[0]
            units, tsoff = 1000000, 0
            o, end = off + 16, off + blen - 4
            while o + 4 <= end:
                code, olen = struct.unpack_from(e + "HH", data, o)
                if code == 0:
                    break
                val = data[o + 4:o + 4 + olen]
                if code == 9 and olen >= 1:                 # if_tsresol
                    units = 2 ** (val[0] & 0x7F) if val[0] & 0x80 else 10 ** val[0]
                elif code == 14 and olen == 8:              # if_tsoffset, seconds
                    tsoff = struct.unpack(e + "q", val)[0]
                o += 4 + ((olen + 3) & ~3)
            ifaces.append((linktype, units, tsoff))
        elif btype in (6, 2):                               # enhanced / obsolete packet
            if btype == 6:
                ifid, hi, lo, caplen = struct.unpack_from(e + "IIII", data, off + 8)
            else:
                ifid, _, hi, lo, caplen = struct.unpack_from(e + "HHIII", data, off + 8)
            if ifid >= len(ifaces):
                raise Fail(f"{path}: packet on undeclared interface {ifid}")
            linktype, units, tsoff = ifaces[ifid]
            ts = ((hi << 32) | lo) * 1000000 // units + tsoff * 1000000
            out.append((ts, linktype, data[off + 28:off + 28 + caplen]))
        off += blen
    return out


def decode_tcp(linktype, frame):
    """(ip_version, src, dst, tos, ttl, ipid, df, tcp_bytes) of a TCP/IP frame, else None."""
    if linktype == 1:                                       # Ethernet (with VLAN tags)
        off = 12
        et = frame[off:off + 2]
        while et in (b"\x81\x00", b"\x88\xa8"):
            off += 4
            et = frame[off:off + 2]
        off += 2
    elif linktype == 113:                                   # Linux cooked
        off = 16
    elif linktype == 276:                                   # Linux cooked v2
        off = 20
    elif linktype == 0:                                     # BSD loopback
        off = 4
    elif linktype in (12, 101, 228, 229):                   # raw IP
        off = 0
    else:
        return None
    ip = frame[off:]
    if len(ip) < 20:
        return None
    v = ip[0] >> 4
    if v == 4:
        ihl = (ip[0] & 15) * 4
        tot, ipid, ff = struct.unpack_from("!HHH", ip, 2)
        if ip[9] != 6 or ff & 0x3FFF or ihl < 20 or len(ip) < tot:
            return None
        return 4, ip[12:16], ip[16:20], ip[1], ip[8], ipid, ff & 0x4000, ip[ihl:tot]
    if v == 6 and len(ip) >= 40 and ip[6] == 6:
        plen = struct.unpack_from("!H", ip, 4)[0]
        if len(ip) < 40 + plen:
            return None
        tc = ((ip[0] & 15) << 4) | (ip[1] >> 4)
        return 6, ip[8:24], ip[24:40], tc, ip[7], 0, 0x4000, ip[40:40 + plen]
    return None


class Conn:
    """One TCP connection of a source capture, ready to be copied."""

    def __init__(self, source, key, first_src, syn_seq):
        self.source = source         # NAME of the source capture
        self.key = key               # the 4-tuple ((addr, port), (addr, port)), sorted
        self.first_src = first_src   # (addr, port) that sent the first frame
        self.syn_seq = syn_seq       # sequence number of the client's SYN, if seen
        self.cport = first_src[1] if syn_seq is not None else None
        self.sport = None
        self.client_ep = None        # (addr, port) of the client
        self.index = None            # index of the session in NAME.json, None when not listed
        self.session = None          # that session
        self.truth = None            # the whole NAME.json
        self.raw = []                # (ts_us, (addr, port), tos, ttl, ipid, df, tcp) while loading
        self.frames = []             # templates (see make_templates)
        self.tail = ""               # the JSON of its truth entry after the per-copy fields
        self.nbytes4 = self.nbytes6 = 0


def load_sources(srcdir):
    """Every NAME.pcapng with its NAME.json (and NAME.keys): connections and key log lines."""
    caps = sorted(p for p in srcdir.iterdir() if p.suffix in (".pcapng", ".pcap"))
    if not caps:
        raise Fail(f"{srcdir}: no .pcapng captures")
    conns, keylines, seen, notes = [], [], set(), []
    for cap in caps:
        name = cap.stem
        jpath = cap.with_suffix(".json")
        if not jpath.exists():
            raise Fail(f"{cap}: no ground truth {jpath.name}")
        try:
            truth = json.loads(jpath.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise Fail(f"{jpath}: {exc}")
        if truth.get("keylog"):
            kpath = srcdir / truth["keylog"]
            if not kpath.exists():
                raise Fail(f"{jpath}: key log {kpath.name} is missing")
            for line in kpath.read_text(encoding="utf-8", errors="replace").splitlines():
                line = line.strip()
                if line and line not in seen:
                    seen.add(line)
                    keylines.append(line)
        groups = {}          # 4-tuple -> [Conn, ...] (a new SYN with a new ISN starts another)
        order = []
        skipped = 0
        for ts, lt, frame in read_capture(cap):
            d = decode_tcp(lt, frame)
            if d is None or len(d[7]) < 20:
                skipped += 1
                continue
            v, src, dst, tos, ttl, ipid, df, tcp = d
            sp, dp = struct.unpack_from("!HH", tcp)
            flags = tcp[13]
            key = (min((src, sp), (dst, dp)), max((src, sp), (dst, dp)))
            lst = groups.setdefault(key, [])
            if flags & SYN and not flags & ACK and lst and lst[-1].syn_seq != tcp[4:8]:
                lst.append(None)
            if not lst or lst[-1] is None:
                c = Conn(name, key, (src, sp), tcp[4:8] if flags & SYN and not flags & ACK else None)
                if lst:
                    lst[-1] = c
                else:
                    lst.append(c)
                order.append(c)
            lst[-1].raw.append((ts, (src, sp), tos, ttl, ipid, df, tcp))
        if skipped:
            notes.append(f"{name}: {skipped} frames that are not TCP/IP skipped")
        sessions = truth.get("sessions") or []
        used = [False] * len(sessions)
        for c in order:
            (_, ap), (_, bp) = c.key
            match = None
            for i, s in enumerate(sessions):
                if not used[i] and {ap, bp} == {s.get("client_port"), s.get("server_port")} \
                        and s.get("client_port") != s.get("server_port"):
                    match = i
                    break
            if match is not None:
                used[match] = True
                c.index, c.session = match, sessions[match]
                c.cport, c.sport = c.session["client_port"], c.session["server_port"]
            else:
                # not in the ground truth: the side that sent the first SYN is the client,
                # else the side on the capture's server port is the server
                if c.cport is None:
                    sp_ = truth.get("server_port")
                    c.sport = sp_ if sp_ in (ap, bp) else min(ap, bp)
                    c.cport = bp if c.sport == ap else ap
                notes.append(f"{name}: TCP connection on ports {ap}/{bp} not in {jpath.name}; "
                             "copied with an empty login list")
            client_ep = [ep for ep in (c.key[0], c.key[1]) if ep[1] == c.cport]
            c.client_ep = client_ep[0] if client_ep else c.first_src
            c.truth = truth
            make_templates(c)
            conns.append(c)
        for i, s in enumerate(sessions):
            if not used[i]:
                notes.append(f"{name}: session {i} (client port {s.get('client_port')}) has no frames")
    return conns, keylines, notes


def make_templates(c):
    """Turn the raw frames of a connection into per-frame templates for fast copying.

    A template is a tuple (rel_us, dir, has_ack, seq, ack, tsval, tsecr, tcp_base,
    ip4_sum, ip6_word, offflags, win, tmpl4, tmpl6, slow) where tcp_base is the one's complement sum
    of the TCP segment with the per-copy fields (ports, seq, ack, TS values, checksum)
    zeroed, plus the pseudo-header's protocol and length words; ip4_sum is the same for the
    IPv4 header without its addresses. slow is None, or (options, payload, tos, ttl, ipid,
    df, flags, urg) for frames whose options need a general rewrite (SYNs, SACK)."""
    raw = sorted(c.raw, key=itemgetter(0))      # stable: keeps capture order on ties
    t0 = raw[0][0]
    frames = []
    n4 = n6 = 0
    for ts, src, tos, ttl, ipid, df, tcp in raw:
        d = 0 if src == c.client_ep else 1
        seq, ack, offflags, win, _, urg = struct.unpack_from("!IIHHHH", tcp, 4)
        doff = (offflags >> 12) * 4
        flags = offflags & 0xFF
        opts, payload = tcp[20:doff], tcp[doff:]
        seg = bytearray(tcp)
        seg[0:12] = bytes(12)
        seg[16:18] = b"\0\0"
        tsv = tse = None
        slow = None
        if not flags & SYN and (opts == b"" or (len(opts) == 12 and opts[:4] == b"\x01\x01\x08\x0a")):
            if opts:
                tsv, tse = struct.unpack_from("!II", opts, 4)
                seg[24:32] = bytes(8)
        else:
            slow = (bytes(opts), bytes(payload), tos, ttl, ipid, df, flags, urg)
        tlen = len(tcp)
        base = (ones(bytes(seg)) + 6 + tlen) % 65535
        ip4 = struct.pack("!BBHHHBBH", 0x45, tos, 20 + tlen, ipid, df, ttl, 6, 0) + bytes(8)
        ip4_sum = ones(ip4)
        t4 = bytes(14) + ip4 + bytes(seg)
        t4 = bytearray(t4)
        t4[12:14] = b"\x08\x00"
        ip6 = struct.pack("!IHBB", 0x60000000 | (tos << 20), tlen, 6, ttl) + bytes(32)
        t6 = bytearray(bytes(12) + b"\x86\xdd" + ip6 + bytes(seg))
        frames.append((ts - t0, d, bool(flags & ACK), seq, ack, tsv, tse, base, ip4_sum,
                       0x60000000 | (tos << 20), offflags, win, bytes(t4), bytes(t6), slow))
        n4 += 14 + 20 + tlen
        n6 += 14 + 40 + tlen
    c.frames = frames
    c.nbytes4, c.nbytes6 = n4, n6
    c.raw = None


# ---------------------------------------------------------------------------------------
# Copies
# ---------------------------------------------------------------------------------------

def rewrite_options(opts, d, seqoff, tsoff, mss):
    """The TCP options of a frame of direction d with MSS, timestamps and SACK blocks moved
    into the copy's number spaces."""
    out = bytearray(opts)
    i = 0
    while i < len(out):
        kind = out[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(out) or out[i + 1] < 2:
            break
        olen = out[i + 1]
        if kind == 2 and olen == 4:
            pack_into("!H", out, i + 2, mss)
        elif kind == 8 and olen == 10:
            tv, te = struct.unpack_from("!II", out, i + 2)
            pack_into("!II", out, i + 2, (tv + tsoff[d]) & M32,
                      (te + tsoff[d ^ 1]) & M32 if te else 0)
        elif kind == 5:
            for j in range(i + 2, i + olen - 7, 8):
                l, r = struct.unpack_from("!II", out, j)
                pack_into("!II", out, j, (l + seqoff[d ^ 1]) & M32, (r + seqoff[d ^ 1]) & M32)
        i += olen
    return bytes(out)


def tcp_segment(pseudo, sp, dp, seq, ack, offflags, win, urg, opts, payload):
    """A TCP segment with its checksum; pseudo is the sum of the pseudo-header's addresses."""
    hdr = struct.pack("!HHIIHHHH", sp, dp, seq, ack, offflags, win, 0, urg) + opts
    cs = fold(pseudo + ones(hdr) + ones(payload) + 6 + len(hdr) + len(payload))
    return hdr[:16] + struct.pack("!H", cs) + hdr[18:] + payload


def ipv4_header(tos, tlen, ipid, df, ttl, proto, src, dst):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + tlen, ipid, df, ttl, proto, 0, src, dst)
    return h[:10] + struct.pack("!H", fold(ones(h))) + h[12:]


def ipv6_header(tc, flow, plen, nh, hop, src, dst):
    return struct.pack("!IHBB16s16s", 0x60000000 | (tc << 20) | flow, plen, nh, hop, src, dst)


def build_copy(c, cp):
    """All frames of one copy of connection c: list of (ts_us, frame)."""
    out = []
    app = out.append
    start = cp["start"]
    so, to = cp["seqoff"], cp["tsoff"]
    caddr, saddr = cp["caddr"], cp["saddr"]
    addr = (caddr, saddr), (saddr, caddr)
    ports = (cp["cport"], c.sport), (c.sport, cp["cport"])
    eth = cp["eth"]
    v6 = cp["v6"]
    asum = ones(caddr) + ones(saddr)
    cconst = asum + cp["cport"] + c.sport
    mss = 1440 if v6 else 1460
    flow = cp.get("flow")
    for (rel, d, has_ack, seq0, ack0, tsv0, tse0, base, ip4_sum, ip6w, offflags, win,
         t4, t6, slow) in c.frames:
        seq = (seq0 + so[d]) & M32
        ack = (ack0 + so[d ^ 1]) & M32 if has_ack else ack0
        src, dst = addr[d]
        sp, dp = ports[d]
        if slow is not None:
            opts, payload, tos, ttl, ipid, df, flags, urg = slow
            seg = tcp_segment(asum, sp, dp, seq, ack, offflags, win, urg,
                              rewrite_options(opts, d, so, to, mss), payload)
            if v6:
                ip = ipv6_header(tos, flow[d], len(seg), 6, ttl, src, dst)
                app((start + rel, eth[d] + b"\x86\xdd" + ip + seg))
            else:
                app((start + rel, eth[d] + b"\x08\x00" + ipv4_header(tos, len(seg), ipid, df, ttl, 6, src, dst) + seg))
            continue
        s = base + cconst + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF)
        if tsv0 is not None:
            tv = (tsv0 + to[d]) & M32
            te = (tse0 + to[d ^ 1]) & M32 if tse0 else 0
            s += (tv >> 16) + (tv & 0xFFFF) + (te >> 16) + (te & 0xFFFF)
        r = s % 65535
        tcs = 0xFFFF - r if r else 0
        if v6:
            b = bytearray(t6)
            b[0:12] = eth[d]
            pack_into("!I", b, 14, ip6w | flow[d])
            pack_into("!16s16sHHIIHHH", b, 22, src, dst, sp, dp, seq, ack, offflags, win, tcs)
            if tsv0 is not None:
                pack_into("!II", b, 78, tv, te)
        else:
            b = bytearray(t4)
            b[0:12] = eth[d]
            r = (ip4_sum + asum) % 65535
            pack_into("!H4s4sHHIIHHH", b, 24, 0xFFFF - r if r else 0, src, dst, sp, dp,
                      seq, ack, offflags, win, tcs)
            if tsv0 is not None:
                pack_into("!II", b, 58, tv, te)
        app((start + rel, b))
    return out


def client_v4(i):
    """The i-th client address of 10.0.0.0/8 (host parts 1..254, spread over the /8)."""
    a, b = divmod(i, 254)
    if a > 0xFFFF:
        raise Fail("more copies than client addresses in 10.0.0.0/8")
    a = (a * 0x9E37 + 0x2B) & 0xFFFF
    return bytes((10, a >> 8, a & 0xFF, b + 1))


def client_v6(i):
    return ((CLIENT_V6_NET + 1 + ((i * 0x9E3779B1) & 0xFFFFFFFFFFFF)) & ((1 << 128) - 1)).to_bytes(16, "big")


def fmt_ep(addr, port):
    if len(addr) == 4:
        return f"{ipaddress.IPv4Address(addr)}:{port}"
    return f"[{ipaddress.IPv6Address(addr)}]:{port}"


def truth_tail(c):
    """The fixed part of the truth entry of copies of c, as JSON text."""
    s = c.session or {}
    t = c.truth
    entry = {
        "protocol": s.get("protocol", t.get("protocol")),
        "transport": s.get("transport", t.get("transport")),
        "detected_by": t.get("expect_detected_by"),
        "server_software": s.get("server", t.get("server")),
        "sni": s.get("sni"),
        "starttls": s.get("starttls"),
        "auth": s.get("auth", []),
        "messages": len(s.get("messages", [])),
        "listed": c.session is not None,
    }
    return json.dumps(entry, ensure_ascii=False)[1:-1]


def mail_sessions(conns, args, rng, truth_out, stats):
    """Copies in start order: yields the frame lists; writes a truth line per copy."""
    target = int(args.size_mb * 1e6)
    rate = args.rate
    cycle = []
    for c in conns:
        cycle += [c] * WEIGHTS.get(c.source, DEFAULT_WEIGHT)
    for c in conns:
        c.tail = truth_tail(c)
    servers = [(ipaddress.IPv4Address(a).packed, ipaddress.IPv6Address(b).packed, mac(m))
               for a, b, m in MAIL_SERVERS]
    router = mac(ROUTER_MAC)
    t = EPOCH * 1000000
    size = len(PCAP_HEADER)
    copy = n4 = n6 = 0
    pos = len(cycle)
    whole = False            # one whole cycle done: every source session copied at least once
    while not (whole and size >= target):
        if pos == len(cycle):
            rng.shuffle(cycle)
            pos = 0
        c = cycle[pos]
        pos += 1
        whole = whole or pos == len(cycle)
        v6 = rng.random() < args.ipv6_fraction
        sv = rng.randrange(len(servers))
        s4, s6, smac = servers[sv]
        if v6:
            caddr, saddr = client_v6(n6), s6
            n6 += 1
        else:
            caddr, saddr = client_v4(n4), s4
            n4 += 1
        cp = {
            "start": t, "v6": v6, "caddr": caddr, "saddr": saddr,
            # a fresh client address per copy: any ephemeral port is unique for it
            "cport": rng.randint(EPH_LO, EPH_HI),
            "seqoff": (rng.getrandbits(32), rng.getrandbits(32)),
            "tsoff": (rng.getrandbits(32), rng.getrandbits(32)),
            "eth": (smac + router, router + smac),
            "flow": (rng.getrandbits(20), rng.getrandbits(20)) if v6 else None,
        }
        frames = build_copy(c, cp)
        nbytes = c.nbytes6 if v6 else c.nbytes4
        size += 16 * len(frames) + nbytes
        stats.add(c, v6, len(frames), nbytes, sv)
        truth_out.write('{"copy": %d, "source": %s, "source_session": %s, "client": "%s", '
                        '"server": "%s", "ip_version": %d, "start": %d.%06d, "frames": %d, "bytes": %d, %s}\n'
                        % (copy, json.dumps(c.source), "null" if c.index is None else c.index,
                           fmt_ep(caddr, cp["cport"]), fmt_ep(saddr, c.sport), 6 if v6 else 4,
                           t // 1000000, t % 1000000, len(frames), nbytes, c.tail))
        copy += 1
        yield frames
        # next start: Poisson arrivals, at least 1 us apart so that copy i is TCP stream i
        t += max(1, int(rng.expovariate(rate) * 1e6))


class MailStats:
    def __init__(self):
        self.sessions = self.frames = self.bytes = 0
        self.ip = {4: 0, 6: 0}
        self.by = {}
        self.logins = self.clear_pw = 0
        self.by_result, self.by_mech = {}, {}

    def bump(self, table, key):
        d = self.by.setdefault(table, {})
        d[key] = d.get(key, 0) + 1

    def add(self, c, v6, nframes, nbytes, sv):
        s = c.session or {}
        self.sessions += 1
        self.frames += nframes
        self.bytes += nbytes
        self.ip[6 if v6 else 4] += 1
        self.bump("protocol", s.get("protocol", c.truth.get("protocol")))
        self.bump("transport", s.get("transport", c.truth.get("transport")))
        self.bump("source", c.source)
        self.bump("server", MAIL_SERVERS[sv][1 if v6 else 0])
        for a in s.get("auth", []):
            self.logins += 1
            if a.get("sends_password") and not a.get("tls"):
                self.clear_pw += 1
            self.by_result[a.get("result")] = self.by_result.get(a.get("result"), 0) + 1
            self.by_mech[a.get("mechanism")] = self.by_mech.get(a.get("mechanism"), 0) + 1


# ---------------------------------------------------------------------------------------
# The merge writer
# ---------------------------------------------------------------------------------------

def write_merged(path, sessions):
    """Write the frames of sessions (lists of (ts_us, frame) whose first frame is the
    session's earliest, yielded in nondecreasing start order) as one time-ordered pcap.
    Only frames at or after the latest start seen are held back, so memory stays bounded
    by the sessions alive at a time. Returns (frames, bytes of frames, first ts, last ts)."""
    key = itemgetter(0)
    pending = []
    nframes = nbytes = 0
    first = last = None
    with open(path, "wb", buffering=1 << 20) as f:
        f.write(PCAP_HEADER)

        def flush(cutoff):
            nonlocal nframes, nbytes, first, last
            pending.sort(key=key)
            k = len(pending) if cutoff is None else bisect.bisect_left(pending, cutoff, key=key)
            if not k:
                return
            out = []
            push = out.append
            for ts, fr in pending[:k]:
                n = len(fr)
                push(REC.pack(ts // 1000000, ts % 1000000, n, n))
                push(fr)
                nbytes += n
            f.write(b"".join(out))
            nframes += k
            if first is None:
                first = pending[0][0]
            last = pending[k - 1][0]
            del pending[:k]

        count = 0
        for frames in sessions:
            if not frames:
                continue
            pending.extend(frames)
            count += 1
            if count % BATCH == 0:
                flush(frames[0][0])
        flush(None)
    return nframes, nbytes, first, last


# ---------------------------------------------------------------------------------------
# Non-mail traffic
# ---------------------------------------------------------------------------------------

CLIENT, SERVER = 0, 1
WEB_SERVERS = [("198.51.100.80", "2001:db8:0:3::80", "02:00:5e:20:00:50", 80),
               ("198.51.100.81", "2001:db8:0:3::81", "02:00:5e:20:00:51", 8080)]
SSH_SERVER = ("198.51.100.22", "2001:db8:0:3::22", "02:00:5e:20:00:16", 22)
PG_SERVER = ("198.51.100.54", "2001:db8:0:3::54", "02:00:5e:20:00:36", 5432)
DNS_SERVER = ("198.51.100.53", "2001:db8:0:3::53", "02:00:5e:20:00:35", 53)

WORDS = ("the of and to in is for on with as by at from that this are be or an it not "
         "account archive article author banner basket button cache catalogue chart "
         "checkout comment config content cookie dashboard delivery design device "
         "document download editor event feature filter footer gallery guide header "
         "image index invoice item layout library license market media member menu "
         "module network notice offer order page panel partner payment photo platform "
         "policy portal post preview price product profile project query rating record "
         "report request resource review route sample search section service session "
         "setting share shop snippet source status store stream style support table "
         "theme ticket title topic track update upload user value vendor video view "
         "widget window workflow zone blue green orange quick simple modern daily "
         "global local secure fast open new best top free easy smart").split()
HOSTS = ["www", "api", "cdn", "static", "img", "assets", "shop", "news", "docs", "auth",
         "video", "status", "blog", "m", "app", "download", "search", "maps", "ads", "telemetry"]
DOMAINS = ["example.com", "example.net", "example.org", "shop.example", "news.example",
           "video.example", "cloud.example", "bank.example", "intranet.example", "cdn.example"]
UAS = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
       "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
       "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_3_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3.1 Safari/605.1.15",
       "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
       "curl/7.88.1", "python-requests/2.31.0", "okhttp/4.12.0"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def http_date(ts_us):
    t = datetime.datetime.fromtimestamp(ts_us // 1000000, datetime.timezone.utc)
    return f"{DAYS[t.weekday()]}, {t.day:02d} {MONTHS[t.month - 1]} {t.year} {t:%H:%M:%S} GMT"


class Pools:
    """Body material, made once: text of several kinds, JSON records, random bytes."""

    def __init__(self, rng):
        self.rng = rng

        def words(n):
            return " ".join(rng.choice(WORDS) for _ in range(n))
        paras = []
        size = 0
        while size < 1 << 20:
            p = f'<div class="{rng.choice(WORDS)}-{rng.choice(WORDS)}"><h2>{words(rng.randint(2, 6)).title()}</h2>\n' \
                f'<p>{words(rng.randint(20, 120))}.</p>\n<a href="/{rng.choice(WORDS)}/{rng.randint(1, 99999)}">{words(3)}</a></div>\n'
            paras.append(p)
            size += len(p)
        self.html = "".join(paras).encode()
        js = []
        size = 0
        while size < 1 << 20:
            f_ = f"function {rng.choice(WORDS)}{rng.choice(WORDS).title()}(a, b) {{\n  var {rng.choice(WORDS)} = a.{rng.choice(WORDS)}({rng.randint(0, 999)});\n" \
                 f"  if (b && b.length > {rng.randint(1, 64)}) {{ return '{words(4)}'; }}\n  return a + b * {rng.randint(2, 97)};\n}}\n"
            js.append(f_)
            size += len(f_)
        self.js = "".join(js).encode()
        css = []
        size = 0
        while size < 1 << 19:
            r = f".{rng.choice(WORDS)}-{rng.choice(WORDS)} {{ margin: {rng.randint(0, 40)}px; color: #{rng.getrandbits(24):06x}; " \
                f"font-size: {rng.randint(10, 32)}px; display: {rng.choice(['block', 'flex', 'grid', 'inline-block'])}; }}\n"
            css.append(r)
            size += len(r)
        self.css = "".join(css).encode()
        self.records = [json.dumps({"id": i, "name": words(2), "price": round(rng.uniform(1, 500), 2),
                                    "tags": [rng.choice(WORDS) for _ in range(rng.randint(0, 4))],
                                    "stock": rng.randint(0, 200), "active": rng.random() < 0.8},
                                   separators=(",", ":")) for i in range(4000)]
        self.binary = rng.randbytes(4 << 20)

    def slice(self, pool, n):
        if n <= 0:
            return b""
        out = []
        while n > 0:
            off = self.rng.randrange(len(pool))
            part = pool[off:off + n]
            out.append(part)
            n -= len(part)
        return b"".join(out)


class TcpSim:
    """One TCP connection seen at the server: handshake, data with MSS-sized segments,
    slow start and delayed ACKs, FIN teardown. Times are in microseconds at the server."""

    def __init__(self, g, t0, v6, caddr, saddr, smac, cport, sport, rtt):
        rng = g.rng
        self.g, self.v6 = g, v6
        self.addr = ((caddr, saddr), (saddr, caddr))
        self.ports = ((cport, sport), (sport, cport))
        self.eth = (smac + g.router, g.router + smac)
        self.asum = ones(caddr) + ones(saddr)
        self.rtt = rtt
        bw = rng.choice((20e6, 50e6, 100e6, 300e6, 1e9))
        self.ser = max(1, int(1514 * 8 / bw * 1e6))
        self.frames = []
        self.seq = [rng.getrandbits(32), rng.getrandbits(32)]
        self.rcv = [0, 0]
        self.tsbase = [rng.getrandbits(32), rng.getrandbits(32)]
        self.lastts = [0, 0]
        self.ipid = [rng.getrandbits(16), rng.getrandbits(16)]
        self.flow = (rng.getrandbits(20), rng.getrandbits(20))
        self.ttl = (rng.choice((64, 64, 64, 128)) - rng.randint(1, 12), 64)
        self.win = (rng.choice((502, 501, 510, 1026, 2052)), rng.choice((509, 502, 1024)))
        self.cwnd = [10, 10]
        self.pend = [None, None]          # delayed ACK owed by each side: (due, ack)
        mss = 1440 if v6 else 1460
        self.mss = mss - 12
        self.eps = lambda: rng.randint(15, 120)
        # three-way handshake
        t = t0
        isn_c, isn_s = self.seq
        self.emit(t, CLIENT, SYN, b"", seq=isn_c, ack=0, syn=mss)
        self.seq[CLIENT] += 1
        self.rcv[SERVER] = self.seq[CLIENT]
        t += self.eps()
        self.emit(t, SERVER, SYN | ACK, b"", syn=mss)
        self.seq[SERVER] += 1
        self.rcv[CLIENT] = self.seq[SERVER]
        t += rtt
        self.emit(t, CLIENT, ACK, b"")
        self.t = t

    def react(self, side):
        """Delay, at the server, between a frame and the other side's reaction to it."""
        return self.rtt + self.g.rng.randint(5, 60) if side == CLIENT else self.eps()

    def emit(self, t, d, flags, payload, seq=None, ack=None, syn=None):
        s = self.seq[d] if seq is None else seq
        a = (self.rcv[d] if ack is None else ack) if flags & ACK else 0
        tv = (self.tsbase[d] + t // 1000) & M32
        self.lastts[d] = tv
        te = self.lastts[d ^ 1] if flags & ACK else 0
        if syn:
            opts = struct.pack("!HHHHIIBBBB", 0x0204, syn, 0x0402, 0x080A, tv, te, 1, 3, 3, 7)
            win = 64240 if d == CLIENT else 65160
        else:
            opts = struct.pack("!BBBBII", 1, 1, 8, 10, tv, te)
            win = self.win[d]
        offflags = ((20 + len(opts)) // 4) << 12 | flags
        src, dst = self.addr[d]
        sp, dp = self.ports[d]
        seg = tcp_segment(self.asum, sp, dp, s & M32, a & M32, offflags, win, 0, opts, payload)
        if self.v6:
            fr = self.eth[d] + b"\x86\xdd" + ipv6_header(0, self.flow[d], len(seg), 6, self.ttl[d], src, dst) + seg
        else:
            self.ipid[d] = (self.ipid[d] + 1) & 0xFFFF
            fr = self.eth[d] + b"\x08\x00" + ipv4_header(0, len(seg), self.ipid[d], 0x4000, self.ttl[d], 6, src, dst) + seg
        self.frames.append((t, fr))

    def settle(self, d, t):
        """Side d is about to send at t: a delayed ACK it owes goes out first if due."""
        p = self.pend[d]
        if p is not None:
            due, ackv = p
            if due <= t:
                self.emit(due, d, ACK, b"", ack=ackv)
            self.pend[d] = None

    def send(self, d, data, t):
        """Side d sends data from t on; returns the time of its last segment."""
        self.settle(d, t)
        r = d ^ 1
        mss = self.mss
        n = len(data)
        nseg = (n + mss - 1) // mss
        i = 0
        last = t
        while i < nseg:
            w = min(self.cwnd[d], nseg - i)
            first_ack = None
            for k in range(w):
                j = i + k
                seg = data[j * mss:(j + 1) * mss]
                ts = t + k * self.ser
                self.emit(ts, d, ACK | (PSH if j == nseg - 1 else 0), seg)
                self.seq[d] += len(seg)
                last = ts
                if j % 2 == 1 or j == nseg - 1:
                    back = self.react(r)
                    self.settle(r, ts + back)        # an older delayed ACK, if due by then
                    if j % 2 == 1:
                        at = ts + back
                        self.emit(at, r, ACK, b"", ack=self.seq[d])
                        if first_ack is None:
                            first_ack = at
                    else:
                        self.pend[r] = (ts + back + self.g.rng.randint(4000, 40000), self.seq[d])
            self.rcv[r] = self.seq[d]
            i += w
            self.cwnd[d] = min(self.cwnd[d] * 2, 600)
            nxt = t + w * self.ser
            if first_ack is not None:
                nxt = max(nxt, first_ack + (self.react(d) if d == CLIENT else self.eps()))
            t = nxt
        return last

    def close(self, x, t):
        """Side x closes at t; the other side closes too; x acknowledges."""
        y = x ^ 1
        for side in (x, y):
            self.settle(side, t)
        self.emit(t, x, FIN | ACK, b"")
        self.seq[x] += 1
        self.rcv[y] = self.seq[x]
        t += self.react(y)
        self.emit(t, y, FIN | ACK, b"")
        self.seq[y] += 1
        self.rcv[x] = self.seq[y]
        t += self.react(x)
        self.emit(t, x, ACK, b"")
        return t

    def result(self):
        self.frames.sort(key=itemgetter(0))
        return self.frames


class OtherGen:
    def __init__(self, rng, args):
        self.rng = rng
        self.args = args
        self.router = mac(ROUTER_MAC)
        self.pools = Pools(rng)
        self.clients4 = [bytes((172, 16 + rng.randrange(16), rng.randrange(256), rng.randint(1, 254)))
                         for _ in range(3000)]
        self.clients6 = [(CLIENT_V6_NET + (0xAA << 64) + rng.getrandbits(64)).to_bytes(16, "big")
                         for _ in range(300)]
        self.nextport = {}
        self.counts = {}
        self.bytes_by = {}

    def client(self):
        rng = self.rng
        v6 = rng.random() < self.args.ipv6_fraction
        addr = rng.choice(self.clients6 if v6 else self.clients4)
        return v6, addr

    def port(self, addr):
        """Ephemeral ports of a client go up by 2 (as Linux's connect() picks them), so a
        4-tuple is never reused while the capture runs."""
        p = self.nextport.get(addr)
        if p is None:
            p = self.rng.randint(EPH_LO, EPH_HI) & ~1
        p += 2
        if p > EPH_HI:
            p = EPH_LO + (p & 1)
        self.nextport[addr] = p
        return p

    def server(self, spec, v6):
        a4, a6, m, port = spec
        return (ipaddress.IPv6Address(a6).packed if v6 else ipaddress.IPv4Address(a4).packed), mac(m), port

    def rtt(self):
        return int(min(300000, max(200, self.rng.lognormvariate(math.log(18000), 0.9))))

    def count(self, kind, frames):
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.bytes_by[kind] = self.bytes_by.get(kind, 0) + sum(len(f) for _, f in frames)

    # -- HTTP/1.1 ------------------------------------------------------------------------

    def http_path(self, kind):
        rng, w = self.rng, self.rng.choice(WORDS)
        if kind in ("notmod", "404"):
            kind = rng.choice(("js", "css", "webp", "woff2", "html"))
        return {
            "html": rng.choice(("/", "/index.html", f"/{w}/{rng.randint(1, 99999)}", f"/{w}/")),
            "js": f"/static/js/{w}.{rng.getrandbits(32):08x}.js",
            "css": rng.choice(("/css/site.css", f"/static/css/{w}.{rng.getrandbits(24):06x}.css")),
            "json": f"/api/v1/{w}s?page={rng.randint(1, 50)}&limit={rng.choice((10, 20, 50, 100))}",
            "webp": f"/assets/img/{w}-{rng.randint(1, 999)}.webp",
            "woff2": f"/fonts/{w}.woff2",
            "bin": f"/download/{w}-{rng.randint(1, 9)}.{rng.randint(0, 20)}.bin",
        }[kind]

    def http_body(self, kind):
        rng, P = self.rng, self.pools
        if kind == "notmod":
            return "304 Not Modified", None, b""
        if kind == "404":
            body = b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n"
            return "404 Not Found", "text/html", body
        if kind == "html":
            n = int(rng.lognormvariate(math.log(24000), 0.8))
            head = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{rng.choice(WORDS).title()} '
                    f'{rng.choice(WORDS)}</title>\n<link rel="stylesheet" href="/css/site.css">\n</head>\n<body>\n').encode()
            return "200 OK", "text/html; charset=utf-8", head + P.slice(P.html, n) + b"\n</body>\n</html>\n"
        if kind == "js":
            n = int(rng.lognormvariate(math.log(40000), 1.1))
            return "200 OK", "application/javascript", b'"use strict";\n' + P.slice(P.js, n)
        if kind == "css":
            n = int(rng.lognormvariate(math.log(12000), 0.9))
            return "200 OK", "text/css", P.slice(P.css, n)
        if kind == "json":
            k = max(1, int(rng.lognormvariate(math.log(12), 1.2)))
            o = rng.randrange(len(P.records))
            recs = (P.records + P.records)[o:o + min(k, len(P.records))]
            body = ('{"page":%d,"per_page":%d,"total":%d,"items":[%s]}' %
                    (rng.randint(1, 40), len(recs), rng.randint(len(recs), 99999), ",".join(recs))).encode()
            return "200 OK", "application/json", body
        if kind == "webp":
            n = int(rng.lognormvariate(math.log(60000), 1.2)) + 64
            n = min(n, 3000000)
            data = P.slice(P.binary, n)
            return "200 OK", "image/webp", b"RIFF" + struct.pack("<I", n - 8) + b"WEBPVP8 " + data[16:]
        if kind == "woff2":
            n = int(rng.lognormvariate(math.log(30000), 0.5)) + 48
            return "200 OK", "font/woff2", b"wOF2" + P.slice(P.binary, n - 4)
        n = int(rng.lognormvariate(math.log(200000), 1.3)) + 1
        return "200 OK", "application/octet-stream", P.slice(P.binary, min(n, 3000000))

    def http(self, t0):
        rng = self.rng
        v6, caddr = self.client()
        saddr, smac, sport = self.server(rng.choice(WEB_SERVERS), v6)
        c = TcpSim(self, t0, v6, caddr, saddr, smac, self.port(caddr), sport, self.rtt())
        host = f"{rng.choice(HOSTS)}.{rng.choice(DOMAINS)}"
        ua = rng.choice(UAS)
        t = c.t + rng.randint(5, 200)
        nreq = min(20, 1 + int(rng.expovariate(1 / 3.0)))
        last = t
        sent = 0
        for q in range(nreq):
            if sent > 6000000:        # keeps the connections held by the merge small
                break
            kind = rng.choices(["html", "js", "css", "json", "webp", "woff2", "bin", "notmod", "404"],
                               [18, 16, 8, 20, 22, 4, 4, 6, 2])[0]
            path = self.http_path(kind)
            req = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\n"
                   f"Accept: */*\r\nAccept-Language: en-US,en;q=0.9\r\n"
                   f"Accept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\n")
            if rng.random() < 0.3:
                req += f"Cookie: sid={rng.getrandbits(128):032x}; theme={rng.choice(WORDS)}\r\n"
            if kind == "notmod":
                req += f'If-None-Match: "{rng.getrandbits(32):x}-{rng.getrandbits(16):x}"\r\n'
            req = (req + "\r\n").encode()
            last = c.send(CLIENT, req, t)
            t_resp = last + int(rng.lognormvariate(math.log(1500), 1.2))
            status, ctype, body = self.http_body(kind)
            hdr = f"HTTP/1.1 {status}\r\nServer: nginx/1.22.1\r\nDate: {http_date(t_resp)}\r\n"
            if ctype:
                hdr += f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                hdr += f"Last-Modified: {http_date(t_resp - rng.randint(3600, 90000000) * 1000000)}\r\n"
            hdr += f'Connection: keep-alive\r\nETag: "{rng.getrandbits(32):x}-{len(body):x}"\r\n'
            if ctype and not ctype.startswith("application/json"):
                hdr += f"Cache-Control: max-age={rng.choice((300, 3600, 86400, 604800))}\r\nAccept-Ranges: bytes\r\n"
            else:
                hdr += "Cache-Control: no-cache\r\n"
            if status.startswith("200") and rng.random() < 0.5:
                hdr += "Vary: Accept-Encoding\r\n"
            last = c.send(SERVER, hdr.encode() + b"\r\n" + body, t_resp)
            sent += len(body)
            think = rng.randint(200, 30000) if rng.random() < 0.85 else rng.randint(300000, 3000000)
            t = last + c.react(CLIENT) + think
        if rng.random() < 0.7:
            c.close(CLIENT, last + c.react(CLIENT) + rng.randint(1000, 2000000))
        else:
            c.close(SERVER, last + 5000000)       # nginx-like keep-alive timeout
        frames = c.result()
        self.count("http", frames)
        return frames

    # -- SSH ------------------------------------------------------------------------------

    def ssh_packet(self, payload):
        pad = 8 - (5 + len(payload)) % 8
        if pad < 4:
            pad += 8
        return struct.pack("!IB", 1 + len(payload) + pad, pad) + payload + self.rng.randbytes(pad)

    def ssh_encrypted(self, plain_len, extra=0):
        """An aes128-ctr + hmac-sha2-256-etm@openssh.com packet: clear length, ciphertext
        (padding length, payload, padding), 32-byte MAC."""
        n = 1 + plain_len
        n += 16 - n % 16 if n % 16 else 0
        if n - 1 - plain_len < 4:
            n += 16
        n += extra
        return struct.pack("!I", n) + self.rng.randbytes(n + 32)

    @staticmethod
    def sshstr(b):
        return struct.pack("!I", len(b)) + b

    def kexinit(self, server):
        s = self.sshstr
        lists = [b"curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,diffie-hellman-group16-sha512"
                 + (b",kex-strict-s-v00@openssh.com" if server else b",ext-info-c,kex-strict-c-v00@openssh.com"),
                 b"ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256",
                 b"aes128-ctr,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com",
                 b"aes128-ctr,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com",
                 b"hmac-sha2-256-etm@openssh.com,umac-64-etm@openssh.com,hmac-sha2-256",
                 b"hmac-sha2-256-etm@openssh.com,umac-64-etm@openssh.com,hmac-sha2-256",
                 b"none,zlib@openssh.com", b"none,zlib@openssh.com", b"", b""]
        return self.ssh_packet(b"\x14" + self.rng.randbytes(16) + b"".join(s(x) for x in lists) + b"\0" + bytes(4))

    def ssh(self, t0):
        rng = self.rng
        v6, caddr = self.client()
        saddr, smac, sport = self.server(SSH_SERVER, v6)
        c = TcpSim(self, t0, v6, caddr, saddr, smac, self.port(caddr), sport, self.rtt())
        s = self.sshstr
        t = c.t + rng.randint(20, 300)
        t = c.send(CLIENT, b"SSH-2.0-OpenSSH_9.6\r\n", t)
        t = c.send(SERVER, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", t + rng.randint(1500, 6000))
        t = c.send(SERVER, self.kexinit(True), t + rng.randint(50, 400))
        t = c.send(CLIENT, self.kexinit(False) + self.ssh_packet(b"\x1e" + s(rng.randbytes(32))), t + c.react(CLIENT))
        hostkey = s(b"ssh-ed25519") + s(rng.randbytes(32))
        sig = s(b"ssh-ed25519") + s(rng.randbytes(64))
        reply = self.ssh_packet(b"\x1f" + s(hostkey) + s(rng.randbytes(32)) + s(sig)) + self.ssh_packet(b"\x15")
        t = c.send(SERVER, reply, t + rng.randint(800, 3000))
        t = c.send(CLIENT, self.ssh_packet(b"\x15") + self.ssh_encrypted(22), t + c.react(CLIENT))
        # user authentication and a session: all encrypted
        script = [(SERVER, 22), (CLIENT, 60), (SERVER, 30), (CLIENT, 420), (SERVER, 12), (SERVER, 480),
                  (CLIENT, 120), (SERVER, 20), (CLIENT, 500), (SERVER, 8), (SERVER, 620)]
        bulk = rng.random() < 0.35
        if bulk:
            for _ in range(rng.randint(1, 4)):
                script.append((CLIENT, 80))
                script.append((SERVER, min(8000000, int(rng.lognormvariate(math.log(400000), 1.2)))))
        else:
            for _ in range(rng.randint(5, 120)):
                script.append((CLIENT, rng.choice((36, 36, 36, 52))))
                script.append((SERVER, rng.choice((36, 36, 52, 100, rng.randint(200, 6000)))))
        for side, n in script:
            if side == CLIENT:
                gap = rng.randint(80000, 600000) if not bulk else c.react(CLIENT)
            else:
                gap = rng.randint(100, 3000)
            parts, pos = [], 0
            for k in range(0, n, 32768):
                pkt = self.ssh_encrypted(min(32768, n - k))
                r = (pos + len(pkt)) % c.mss
                if 0 < r <= 48 or r >= c.mss - 48:
                    # Wireshark 4.0 does not reassemble SSH packets it cannot decrypt and
                    # calls a segment malformed when a packet ends within its first or last
                    # few bytes; more padding (still valid SSH) moves the packet's end
                    pkt = self.ssh_encrypted(min(32768, n - k), extra=96)
                parts.append(pkt)
                pos += len(pkt)
            t = c.send(side, b"".join(parts), t + gap)
        c.close(CLIENT, t + c.react(CLIENT) + rng.randint(1000, 200000))
        frames = c.result()
        self.count("ssh", frames)
        return frames

    # -- PostgreSQL -----------------------------------------------------------------------

    @staticmethod
    def pgmsg(tag, body):
        return tag + struct.pack("!I", 4 + len(body)) + body

    def pgsql(self, t0):
        rng = self.rng
        v6, caddr = self.client()
        saddr, smac, sport = self.server(PG_SERVER, v6)
        c = TcpSim(self, t0, v6, caddr, saddr, smac, self.port(caddr), sport, self.rtt())
        m = self.pgmsg
        t = c.t + rng.randint(20, 300)
        user = rng.choice(("app", "shop", "report", "web"))
        params = b"".join(k + b"\0" + v + b"\0" for k, v in (
            (b"user", user.encode()), (b"database", b"shop"), (b"application_name", b"psql"),
            (b"client_encoding", b"UTF8"))) + b"\0"
        startup = struct.pack("!II", 8 + len(params), 196608) + params
        t = c.send(CLIENT, startup, t)
        ps = b"".join(m(b"S", k + b"\0" + v + b"\0") for k, v in (
            (b"application_name", b"psql"), (b"client_encoding", b"UTF8"), (b"DateStyle", b"ISO, MDY"),
            (b"integer_datetimes", b"on"), (b"IntervalStyle", b"postgres"), (b"is_superuser", b"off"),
            (b"server_encoding", b"UTF8"), (b"server_version", b"15.6 (Debian 15.6-0+deb12u1)"),
            (b"session_authorization", user.encode()), (b"standard_conforming_strings", b"on"),
            (b"TimeZone", b"Etc/UTC")))
        hello = m(b"R", struct.pack("!I", 0)) + ps + m(b"K", struct.pack("!II", rng.randint(1000, 99999), rng.getrandbits(32))) + m(b"Z", b"I")
        t = c.send(SERVER, hello, t + rng.randint(2000, 9000))
        cols = [(b"id", 23, 4), (b"name", 25, -1), (b"price", 1700, -1), (b"stock", 23, 4), (b"updated", 1114, 8)]
        for _ in range(rng.randint(1, 40)):
            ncol = rng.randint(1, len(cols))
            sel = cols[:ncol]
            sql = (f"SELECT {', '.join(x[0].decode() for x in sel)} FROM {rng.choice(WORDS)}s "
                   f"WHERE {rng.choice(WORDS)}_id = {rng.randint(1, 99999)} ORDER BY id LIMIT {rng.randint(1, 200)};").encode()
            t = c.send(CLIENT, m(b"Q", sql + b"\0"), t + c.react(CLIENT) + rng.randint(500, 400000))
            desc = struct.pack("!H", ncol) + b"".join(
                name + b"\0" + struct.pack("!IHIhih", 16384 + rng.randint(0, 50), i + 1, oid, ln, -1, 0)
                for i, (name, oid, ln) in enumerate(sel))
            nrow = rng.choice((0, 1, 1, 5, 20, rng.randint(1, 400)))
            rows = []
            for r in range(nrow):
                vals = [str(rng.randint(1, 99999)).encode(), " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5))).encode(),
                        f"{rng.uniform(1, 999):.2f}".encode(), str(rng.randint(0, 500)).encode(),
                        f"2025-0{rng.randint(1, 3)}-{rng.randint(10, 28)} {rng.randint(10, 23)}:{rng.randint(10, 59)}:{rng.randint(10, 59)}".encode()][:ncol]
                rows.append(m(b"D", struct.pack("!H", ncol) + b"".join(struct.pack("!I", len(v)) + v for v in vals)))
            resp = m(b"T", desc) + b"".join(rows) + m(b"C", f"SELECT {nrow}".encode() + b"\0") + m(b"Z", b"I")
            t = c.send(SERVER, resp, t + rng.randint(200, 20000))
        t = c.send(CLIENT, m(b"X", b""), t + c.react(CLIENT) + rng.randint(500, 100000))
        c.close(CLIENT, t + 30)
        frames = c.result()
        self.count("pgsql", frames)
        return frames

    # -- DNS --------------------------------------------------------------------------------

    @staticmethod
    def dname(name):
        return b"".join(bytes((len(p),)) + p.encode() for p in name.split(".")) + b"\0"

    def udp_frame(self, t, v6, src, dst, smac_pair, sp, dp, payload, ipid, ttl):
        asum = ones(src) + ones(dst)
        ulen = 8 + len(payload)
        cs = fold(asum + 17 + ulen + ones(struct.pack("!HHHH", sp, dp, ulen, 0)) + ones(payload)) or 0xFFFF
        udp = struct.pack("!HHHH", sp, dp, ulen, cs) + payload
        if v6:
            ip = ipv6_header(0, self.rng.getrandbits(20), len(udp), 17, ttl, src, dst)
            return (t, smac_pair + b"\x86\xdd" + ip + udp)
        return (t, smac_pair + b"\x08\x00" + ipv4_header(0, len(udp), ipid, 0, ttl, 17, src, dst) + udp)

    def dns(self, t0):
        """A stub resolver's lookup: A and AAAA queries from one port, and the answers."""
        rng = self.rng
        v6, caddr = self.client()
        saddr, smac, sport = self.server(DNS_SERVER, v6)
        cport = rng.randint(EPH_LO, EPH_HI)
        zone = rng.choice(DOMAINS)
        name = f"{rng.choice(HOSTS)}.{zone}"
        cname = f"{rng.choice(HOSTS)}-{rng.randint(1, 99)}.edge.{rng.choice(DOMAINS)}" if rng.random() < 0.3 else None
        nx = rng.random() < 0.05
        qn = self.dname(name)
        frames = []
        t = t0
        ttl_c = rng.choice((64, 128)) - rng.randint(1, 8)
        for qtype in ((1, 28) if rng.random() < 0.7 else (rng.choice((1, 28)),)):
            qid = rng.getrandbits(16)
            opt = b"\0" + struct.pack("!HHIH", 41, 1232, 0, 0)
            q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1) + qn + struct.pack("!HH", qtype, 1) + opt
            frames.append(self.udp_frame(t, v6, caddr, saddr, smac + self.router, cport, 53, q,
                                         rng.getrandbits(16), ttl_c))
            tr = t + rng.randint(80, 40000)
            body = b""
            an = ns = 0
            flags = 0x8180
            if nx:
                flags = 0x8183
                soa_rd = (self.dname("ns1." + zone) + self.dname("hostmaster." + zone) +
                          struct.pack("!IIIII", 2025030401, 7200, 3600, 1209600, 300))
                body = self.dname(zone) + struct.pack("!HHIH", 6, 1, 300, len(soa_rd)) + soa_rd
                ns = 1
            else:
                ptr = 12
                if cname:
                    target = self.dname(cname)
                    body += struct.pack("!HHHIH", 0xC00C, 5, 1, rng.randint(30, 3600), len(target)) + target
                    ptr = 12 + len(qn) + 4 + 12
                    an += 1
                for _ in range(rng.randint(1, 4)):
                    if qtype == 1:
                        rd = bytes((203, 0, 113, rng.randint(1, 254)))
                    else:
                        rd = ipaddress.IPv6Address("2001:db8:0:4::").packed[:14] + rng.randbytes(2)
                    body += struct.pack("!HHHIH", 0xC000 | ptr, qtype, 1, rng.randint(30, 3600), len(rd)) + rd
                    an += 1
            a = (struct.pack("!HHHHHH", qid, flags, 1, an, ns, 1) + qn + struct.pack("!HH", qtype, 1)
                 + body + opt)
            frames.append(self.udp_frame(tr, v6, saddr, caddr, self.router + smac, 53, cport, a,
                                         rng.getrandbits(16), 64))
            t += rng.randint(10, 300)
        frames.sort(key=itemgetter(0))
        self.count("dns", frames)
        return frames


def other_sessions(gen, args, rng):
    target = int(args.size_mb * 1e6)
    size = len(PCAP_HEADER)
    t = EPOCH * 1000000
    kinds = ["dns", "http", "ssh", "pgsql"]
    weights = [60, 30, 3, 7]
    make = {"dns": gen.dns, "http": gen.http, "ssh": gen.ssh, "pgsql": gen.pgsql}
    n = 0
    while size < target or n < len(kinds):
        kind = kinds[n] if n < len(kinds) else rng.choices(kinds, weights)[0]   # each kind once first
        n += 1
        frames = make[kind](t)
        size += sum(16 + len(f) for _, f in frames)
        yield frames
        t += max(1, int(rng.expovariate(args.other_rate) * 1e6))


# ---------------------------------------------------------------------------------------

def iso(ts_us):
    if ts_us is None:
        return None
    return datetime.datetime.fromtimestamp(ts_us / 1e6, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def make_mail(outdir, args):
    t_start = time.monotonic()
    conns, keylines, notes = load_sources(args.sources)
    for note in notes:
        print(f"{PROG}: note: {note}", file=sys.stderr)
    (outdir / "mail.keys").write_text("".join(line + "\n" for line in keylines), encoding="utf-8")
    rng = random.Random(f"mail:{args.seed}")
    stats = MailStats()
    with open(outdir / "mail.truth.jsonl", "w", encoding="utf-8", buffering=1 << 20) as truth_out:
        nframes, nbytes, first, last = write_merged(outdir / "mail.pcap",
                                                    mail_sessions(conns, args, rng, truth_out, stats))
    assert nframes == stats.frames and nbytes == stats.bytes
    size = (outdir / "mail.pcap").stat().st_size
    summary = {
        "generator": "bench/make_captures.py",
        "capture": "mail.pcap", "keylog": "mail.keys", "truth": "mail.truth.jsonl",
        "seed": args.seed, "size_mb": args.size_mb, "rate": args.rate, "ipv6_fraction": args.ipv6_fraction,
        "sources": sorted({c.source for c in conns}),
        "source_sessions": len(conns),
        "weights": {s: WEIGHTS.get(s, DEFAULT_WEIGHT) for s in sorted({c.source for c in conns})},
        "sessions": stats.sessions,
        "frames": stats.frames,
        "bytes": stats.bytes,
        "file_bytes": size,
        "first_frame": iso(first), "last_frame": iso(last),
        "sessions_by_ip_version": {"4": stats.ip[4], "6": stats.ip[6]},
        "sessions_by_protocol": dict(sorted(stats.by.get("protocol", {}).items())),
        "sessions_by_transport": dict(sorted(stats.by.get("transport", {}).items())),
        "sessions_by_server": dict(sorted(stats.by.get("server", {}).items())),
        "sessions_by_source": dict(sorted(stats.by.get("source", {}).items())),
        "logins": stats.logins,
        "logins_cleartext_password": stats.clear_pw,
        "logins_by_result": dict(sorted(stats.by_result.items())),
        "logins_by_mechanism": dict(sorted(stats.by_mech.items())),
    }
    (outdir / "mail.truth-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{PROG}: {outdir / 'mail.pcap'}: {size / 1e6:.1f} MB, {stats.sessions} sessions, "
          f"{stats.frames} frames, {stats.logins} logins, in {time.monotonic() - t_start:.1f} s",
          file=sys.stderr)


def make_other(outdir, args):
    t_start = time.monotonic()
    ports = [w[3] for w in WEB_SERVERS] + [SSH_SERVER[3], PG_SERVER[3], DNS_SERVER[3]]
    assert not MAIL_PORTS & set(ports) and not any(EPH_LO <= p <= EPH_HI for p in MAIL_PORTS)
    rng = random.Random(f"other:{args.seed}")
    gen = OtherGen(rng, args)
    nframes, nbytes, first, last = write_merged(outdir / "other.pcap", other_sessions(gen, args, rng))
    size = (outdir / "other.pcap").stat().st_size
    summary = {
        "generator": "bench/make_captures.py", "capture": "other.pcap",
        "seed": args.seed, "size_mb": args.size_mb, "rate": args.other_rate,
        "ipv6_fraction": args.ipv6_fraction,
        "frames": nframes, "bytes": nbytes, "file_bytes": size,
        "first_frame": iso(first), "last_frame": iso(last),
        "connections": dict(sorted((k, v) for k, v in gen.counts.items() if k != "dns")),
        "dns_lookups": gen.counts.get("dns", 0),
        "bytes_by_kind": dict(sorted(gen.bytes_by.items())),
        "server_ports": {"http": [w[3] for w in WEB_SERVERS], "ssh": [SSH_SERVER[3]],
                         "pgsql": [PG_SERVER[3]], "dns": [DNS_SERVER[3]]},
        "mail": 0,
    }
    (outdir / "other.summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{PROG}: {outdir / 'other.pcap'}: {size / 1e6:.1f} MB, {nframes} frames, "
          f"{sum(gen.counts.values())} conversations, in {time.monotonic() - t_start:.1f} s",
          file=sys.stderr)


def parse_args(argv):
    here = Path(__file__).resolve().parent

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            print(f"{PROG}: error: {message} (see --help)", file=sys.stderr)
            sys.exit(2)

    p = Parser(prog="make_captures.py",
               description="Write large benchmark captures: mail.pcap (copies of the real-server "
                           "captures, with ground truth) and other.pcap (non-mail traffic).")
    p.add_argument("outdir", type=Path, help="output folder (created if missing)")
    p.add_argument("--size-mb", type=float, default=20.0,
                   help="approximate size of each capture in MB (10^6 bytes; default 20)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--kind", choices=("mail", "other", "both"), default="both",
                   help="which capture(s) to write (default both)")
    p.add_argument("--sources", type=Path, default=here.parent / "captures" / "real",
                   help="folder of NAME.pcapng + NAME.json (+ NAME.keys) (default captures/real)")
    p.add_argument("--rate", type=float, default=200.0,
                   help="mail sessions started per second (default 200)")
    p.add_argument("--other-rate", type=float, default=150.0,
                   help="other conversations (DNS lookups, TCP connections) per second (default 150)")
    p.add_argument("--ipv6-fraction", type=float, default=0.1,
                   help="share of sessions on IPv6 (default 0.1)")
    a = p.parse_args(argv)
    if not (a.size_mb > 0 and math.isfinite(a.size_mb)):
        p.error("--size-mb must be a positive number")
    if not (a.rate > 0 and math.isfinite(a.rate)) or not (a.other_rate > 0 and math.isfinite(a.other_rate)):
        p.error("--rate and --other-rate must be positive")
    if not 0 <= a.ipv6_fraction <= 1:
        p.error("--ipv6-fraction must be between 0 and 1")
    return a


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if not args.sources.is_dir() and args.kind != "other":
            raise Fail(f"{args.sources}: no such folder")
        try:
            args.outdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Fail(f"{args.outdir}: {exc.strerror}")
        if args.kind in ("mail", "both"):
            make_mail(args.outdir, args)
        if args.kind in ("other", "both"):
            make_other(args.outdir, args)
    except Fail as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: error: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
