"""Write small pcap files of TCP conversations for behaviour tests.

The tests describe a conversation (who says what, how it is cut into
segments, what is retransmitted) and this module lays it out as Ethernet/IP/TCP
frames with consistent sequence numbers, so tshark sees a normal TCP stream.
These are test inputs, not ground truth: each test states its own expectation.
"""
import socket
import struct

LINKTYPE_ETHERNET = 1


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class Conversation:
    """One TCP connection between a client and a server."""

    def __init__(self, client=("10.0.0.1", 40000), server=("10.0.0.2", 25), ipv6=False,
                 client_isn=1000, server_isn=5000):
        self.ipv6 = ipv6
        self.client, self.server = client, server
        self.seq = {"c": client_isn, "s": server_isn}
        self.frames = []
        self.t = 1_700_000_000.0

    # -- framing --------------------------------------------------------------
    def _ip_tcp(self, src, dst, seq, ack, flags, payload):
        sport, dport = src[1], dst[1]
        tcp_len = 20
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                          (tcp_len // 4) << 4, flags, 65535, 0, 0)
        if self.ipv6:
            s, d = socket.inet_pton(socket.AF_INET6, src[0]), socket.inet_pton(socket.AF_INET6, dst[0])
            pseudo = s + d + struct.pack("!I3xB", tcp_len + len(payload), 6)
        else:
            s, d = socket.inet_aton(src[0]), socket.inet_aton(dst[0])
            pseudo = s + d + struct.pack("!BBH", 0, 6, tcp_len + len(payload))
        csum = _checksum(pseudo + tcp + payload)
        tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
        if self.ipv6:
            ip = struct.pack("!IHBB", 6 << 28, tcp_len + len(payload), 6, 64) + s + d
            eth_type = 0x86DD
        else:
            total = 20 + tcp_len + len(payload)
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0x4000, 64, 6, 0, s, d)
            ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
            eth_type = 0x0800
        eth = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + struct.pack("!H", eth_type)
        return eth + ip + tcp + payload

    def _emit(self, who, flags, payload=b"", seq=None):
        src, dst = (self.client, self.server) if who == "c" else (self.server, self.client)
        other = "s" if who == "c" else "c"
        s = self.seq[who] if seq is None else seq
        self.t += 0.001
        self.frames.append((self.t, self._ip_tcp(src, dst, s, self.seq[other], flags, payload)))

    # -- what a test says -----------------------------------------------------
    def handshake(self):
        self._emit("c", 0x02)
        self.seq["c"] += 1
        self._emit("s", 0x12)
        self.seq["s"] += 1
        self._emit("c", 0x10)
        return self

    def send(self, who, data: bytes, cut=None):
        """who: 'c' or 's'. cut: list of sizes to split data into segments."""
        pieces = []
        if cut:
            pos = 0
            for n in cut:
                pieces.append(data[pos:pos + n])
                pos += n
            if pos < len(data):
                pieces.append(data[pos:])
        else:
            pieces = [data]
        for p in pieces:
            self._emit(who, 0x18, p)
            self.seq[who] += len(p)
        return self

    def retransmit(self, who, data: bytes):
        """Send data again at the sequence number it had (the last len(data) bytes)."""
        self._emit(who, 0x18, data, seq=self.seq[who] - len(data))
        return self

    def ack(self, who):
        self._emit(who, 0x10)
        return self

    def close(self):
        self._emit("c", 0x11)
        self.seq["c"] += 1
        self._emit("s", 0x11)
        self.seq["s"] += 1
        self._emit("c", 0x10)
        return self


def write_pcap(path, conversations):
    frames = sorted((f for c in conversations for f in c.frames), key=lambda x: x[0])
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
        for t, data in frames:
            sec = int(t)
            usec = int(round((t - sec) * 1e6))
            fh.write(struct.pack("<IIII", sec, usec, len(data), len(data)))
            fh.write(data)
    return path
