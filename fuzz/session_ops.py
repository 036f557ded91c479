#!/usr/bin/env python3
"""fuzz/session_ops.py — print a fuzz_session / fuzz_imap input as operations.

usage: session_ops.py FILE [--imap]

The format is the one session_driver.h reads (see fuzz/README.md). Useful to
read a reproducer from fuzz/crashes/session/ or fuzz/crashes/imap/.
"""
import struct
import sys

NAMES = {0: "DATA", 1: "DECRYPTED", 2: "GAP", 3: "RETRANS", 4: "ACK", 5: "RST", 6: "HELLO", 7: "SYN",
         8: "CUT", 9: "DELAY", 10: "NEWSESSION", 11: "FINISH", 12: "DATA_AT", 13: "DATA", 14: "DATA", 15: "DATA"}
PROTO = ["unknown", "smtp", "pop3", "imap"]


class In:
    def __init__(self, b):
        self.b, self.i = b, 0

    def more(self):
        return self.i < len(self.b)

    def u8(self):
        if self.i >= len(self.b):
            return 0
        self.i += 1
        return self.b[self.i - 1]

    def u16(self):
        return self.u8() << 8 | self.u8()

    def u32(self):
        return self.u16() << 16 | self.u16()

    def bytes(self, n):
        p = self.b[self.i:self.i + n]
        self.i += len(p)
        return p


def main():
    if len(sys.argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    inp = In(open(sys.argv[1], "rb").read())
    h = [inp.u8() for _ in range(6)]
    proto = "imap (forced)" if "--imap" in sys.argv else PROTO[h[0] & 3]
    flags = [n for bit, n in ((4, "implicit-tls"), (8, "heuristic"), (16, "starttls-expected"), (32, "registry"),
                              (64, "direct"), (128, "no-finish")) if h[0] & bit]
    print("header: port %s %s max_line=%d limits=%#x fail_after=%d seed=%d sinks=%#x"
          % (proto, " ".join(flags), h[1] * 16, h[2], h[3] * 16, h[4], h[5]))
    frame = 0
    while inp.more():
        op = inp.u8()
        code, d = op & 15, "S>C" if op & 16 else "C>S"
        frame += 1
        extra = (" +ack" if op & 32 else "") + (" split%d" % (op >> 6) if op >> 6 else "")
        name = NAMES[code]
        if code in (0, 1, 9, 13, 14, 15):
            p = inp.bytes(inp.u16())
            arg = repr(p)
        elif code == 2:
            arg = "lost=%d" % inp.u16()
        elif code == 3:
            back = inp.u16()
            p = inp.bytes(inp.u16())
            arg = "back=%d %r" % (back, p)
        elif code == 4:
            arg = "delta=%d" % struct.unpack("b", bytes([inp.u8()]))[0]
        elif code == 8:
            wire, cap = inp.u16(), inp.u16()
            p = inp.bytes(min(cap, wire))
            arg = "wire=%d %r" % (wire, p)
        elif code == 12:
            rel = inp.u32()
            p = inp.bytes(inp.u16())
            arg = "rel=%d %r" % (rel, p)
        else:
            arg = ""
        print("frame %3d %-10s %s%s %s" % (frame, name, d, extra, arg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
