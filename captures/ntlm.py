"""NTLM (MS-NLMP) for the capture lab, in pure Python: MD4 (RFC 1320) and DES
(FIPS 46-3), because OpenSSL 3 keeps both in its legacy provider, which a
machine may not load; the NTLMSSP NEGOTIATE / CHALLENGE / AUTHENTICATE
messages; NTLMv1 and NTLMv2 responses. Used by driver.py (the client side)
and peer.py (the scripted server that verifies them).

Self-checked against RFC 1320, the classic DES example and MS-NLMP section 4.2
on import (`python3 captures/ntlm.py` prints the checks).
"""
import hmac
import struct

# --- MD4 (RFC 1320) ------------------------------------------------------------


def md4(data):
    def rol(x, n):
        x &= 0xFFFFFFFF
        return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF

    msg = bytes(data) + b"\x80"
    msg += b"\0" * ((56 - len(msg)) % 64) + struct.pack("<Q", (len(data) * 8) & (2**64 - 1))
    a, b, c, d = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for off in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[off:off + 64])
        aa, bb, cc, dd = a, b, c, d
        f = lambda x_, y, z: (x_ & y) | (~x_ & z)
        g = lambda x_, y, z: (x_ & y) | (x_ & z) | (y & z)
        h = lambda x_, y, z: x_ ^ y ^ z
        for i in range(16):
            k, s = i, (3, 7, 11, 19)[i % 4]
            if i % 4 == 0:
                a = rol(a + f(b, c, d) + x[k], s)
            elif i % 4 == 1:
                d = rol(d + f(a, b, c) + x[k], s)
            elif i % 4 == 2:
                c = rol(c + f(d, a, b) + x[k], s)
            else:
                b = rol(b + f(c, d, a) + x[k], s)
        for i in range(16):
            k, s = (i % 4) * 4 + i // 4, (3, 5, 9, 13)[i % 4]
            t = x[k] + 0x5A827999
            if i % 4 == 0:
                a = rol(a + g(b, c, d) + t, s)
            elif i % 4 == 1:
                d = rol(d + g(a, b, c) + t, s)
            elif i % 4 == 2:
                c = rol(c + g(d, a, b) + t, s)
            else:
                b = rol(b + g(c, d, a) + t, s)
        order = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)
        for i in range(16):
            k, s = order[i], (3, 9, 11, 15)[i % 4]
            t = x[k] + 0x6ED9EBA1
            if i % 4 == 0:
                a = rol(a + h(b, c, d) + t, s)
            elif i % 4 == 1:
                d = rol(d + h(a, b, c) + t, s)
            elif i % 4 == 2:
                c = rol(c + h(d, a, b) + t, s)
            else:
                b = rol(b + h(c, d, a) + t, s)
        a, b, c, d = ((a + aa) & 0xFFFFFFFF, (b + bb) & 0xFFFFFFFF,
                      (c + cc) & 0xFFFFFFFF, (d + dd) & 0xFFFFFFFF)
    return struct.pack("<4I", a, b, c, d)


# --- DES (FIPS 46-3), encryption of one block ----------------------------------

_IP = [58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4,
       62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8,
       57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
       61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7]
_FP = [_IP.index(i) + 1 for i in range(1, 65)]
_E = [32, 1, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9, 8, 9, 10, 11, 12, 13, 12, 13, 14, 15, 16, 17,
      16, 17, 18, 19, 20, 21, 20, 21, 22, 23, 24, 25, 24, 25, 26, 27, 28, 29, 28, 29, 30, 31, 32, 1]
_P = [16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10,
      2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25]
_PC1 = [57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18,
        10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36,
        63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22,
        14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4]
_PC2 = [14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
        41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32]
_SHIFTS = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1]
_S = [
    [14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
     4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13],
    [15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
     0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9],
    [10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
     13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12],
    [7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
     10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14],
    [2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
     4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3],
    [12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
     9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13],
    [4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
     1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12],
    [13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
     7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11],
]


def _permute(value, table, width):
    """Bit i of the result (from the left, 1-based) is bit table[i] of value."""
    out = 0
    for pos in table:
        out = (out << 1) | ((value >> (width - pos)) & 1)
    return out


def des_encrypt(key8, block8):
    """One DES block (ECB); the key's parity bits are ignored, as DES does."""
    key = _permute(int.from_bytes(key8, "big"), _PC1, 64)
    c, d = key >> 28, key & 0xFFFFFFF
    subkeys = []
    for shift in _SHIFTS:
        c = ((c << shift) | (c >> (28 - shift))) & 0xFFFFFFF
        d = ((d << shift) | (d >> (28 - shift))) & 0xFFFFFFF
        subkeys.append(_permute((c << 28) | d, _PC2, 56))
    block = _permute(int.from_bytes(block8, "big"), _IP, 64)
    left, right = block >> 32, block & 0xFFFFFFFF
    for k in subkeys:
        x = _permute(right, _E, 32) ^ k
        s_out = 0
        for i in range(8):
            six = (x >> (42 - 6 * i)) & 0x3F
            row = ((six & 0x20) >> 4) | (six & 1)
            s_out = (s_out << 4) | _S[i][row * 16 + ((six >> 1) & 0xF)]
        left, right = right, left ^ _permute(s_out, _P, 32)
    return _permute((right << 32) | left, _FP, 64).to_bytes(8, "big")


def des_key_from_7(k7):
    """56 key bits to the 8-byte DES key (low bit of each byte is parity, left 0)."""
    bits = int.from_bytes(k7, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def desl(key16, data8):
    """MS-NLMP DESL(): the key padded to 21 bytes, three DES keys of 7 bytes."""
    k = key16 + b"\0" * (21 - len(key16))
    return b"".join(des_encrypt(des_key_from_7(k[i:i + 7]), data8) for i in (0, 7, 14))


# --- NTLM responses --------------------------------------------------------------

def hmac_md5(key, data):
    return hmac.new(key, data, "md5").digest()


def nt_hash(password):
    """NTOWFv1: MD4 of the UTF-16LE password."""
    return md4(password.encode("utf-16-le"))


def ntowfv2(password, user, domain):
    return hmac_md5(nt_hash(password), (user.upper() + domain).encode("utf-16-le"))


def ntlmv1_response(password, server_challenge):
    """NTLMv1 without extended session security: the NT response, 24 bytes."""
    return desl(nt_hash(password), server_challenge)


def ntlmv2_blob(timestamp, client_challenge, target_info):
    """The NTLMv2 'temp' structure (MS-NLMP 3.3.2) that follows NTProofStr."""
    return (b"\x01\x01" + b"\0" * 6 + struct.pack("<Q", timestamp) + client_challenge
            + b"\0" * 4 + target_info + b"\0" * 4)


def ntlmv2_response(password, user, domain, server_challenge, blob):
    """(NtChallengeResponse, NTProofStr) for the given blob."""
    proof = hmac_md5(ntowfv2(password, user, domain), server_challenge + blob)
    return proof + blob, proof


def lmv2_response(password, user, domain, server_challenge, client_challenge):
    return hmac_md5(ntowfv2(password, user, domain), server_challenge + client_challenge) + client_challenge


# --- NTLMSSP messages -----------------------------------------------------------

SIGNATURE = b"NTLMSSP\0"
NEGOTIATE_UNICODE = 0x00000001
REQUEST_TARGET = 0x00000004
NEGOTIATE_NTLM = 0x00000200
NEGOTIATE_ALWAYS_SIGN = 0x00008000
TARGET_TYPE_DOMAIN = 0x00010000
NEGOTIATE_EXTENDED_SESSIONSECURITY = 0x00080000
NEGOTIATE_TARGET_INFO = 0x00800000
NEGOTIATE_VERSION = 0x02000000
NEGOTIATE_128 = 0x20000000
NEGOTIATE_56 = 0x80000000
# Windows 10 build 19041, NTLM revision 15: what a modern client writes.
VERSION = bytes([10, 0]) + struct.pack("<H", 19041) + b"\0\0\0" + bytes([15])


def _secbuf(data, offset):
    return struct.pack("<HHI", len(data), len(data), offset)


def negotiate_message(flags):
    """Type 1, with empty domain and workstation fields and a version."""
    return SIGNATURE + struct.pack("<II", 1, flags) + _secbuf(b"", 0) + _secbuf(b"", 0) + VERSION


def av_pairs(pairs):
    """[(AvId, str or bytes)] -> AV_PAIR list ending with MsvAvEOL."""
    out = b""
    for av_id, value in pairs:
        raw = value.encode("utf-16-le") if isinstance(value, str) else value
        out += struct.pack("<HH", av_id, len(raw)) + raw
    return out + struct.pack("<HH", 0, 0)


def challenge_message(flags, server_challenge, target_name, target_info):
    """Type 2."""
    name = target_name.encode("utf-16-le")
    offset = 56
    return (SIGNATURE + struct.pack("<I", 2) + _secbuf(name, offset) + struct.pack("<I", flags)
            + server_challenge + b"\0" * 8 + _secbuf(target_info, offset + len(name)) + VERSION
            + name + target_info)


def authenticate_message(flags, lm, nt, domain, user, workstation):
    """Type 3 with a version field and no MIC; strings in UTF-16LE."""
    fields = [lm, nt, domain.encode("utf-16-le"), user.encode("utf-16-le"),
              workstation.encode("utf-16-le"), b""]
    offset = 72
    head, payload = b"", b""
    for f in fields:
        head += _secbuf(f, offset + len(payload))
        payload += f
    return SIGNATURE + struct.pack("<I", 3) + head + struct.pack("<I", flags) + VERSION + payload


def message_type(msg):
    if len(msg) < 12 or not msg.startswith(SIGNATURE):
        return 0
    return struct.unpack("<I", msg[8:12])[0]


def _field(msg, at):
    length, _, offset = struct.unpack("<HHI", msg[at:at + 8])
    if offset + length > len(msg):
        raise ValueError("NTLMSSP field out of bounds")
    return msg[offset:offset + length]


def parse_challenge(msg):
    """Type 2 -> (flags, server challenge, target info)."""
    if message_type(msg) != 2:
        raise ValueError("not an NTLMSSP CHALLENGE message")
    flags = struct.unpack("<I", msg[20:24])[0]
    return flags, msg[24:32], _field(msg, 40)


def parse_authenticate(msg):
    """Type 3 -> dict lm, nt, domain, user, workstation (strings decoded)."""
    if message_type(msg) != 3:
        raise ValueError("not an NTLMSSP AUTHENTICATE message")
    flags = struct.unpack("<I", msg[60:64])[0]
    enc = "utf-16-le" if flags & NEGOTIATE_UNICODE else "latin-1"
    return {"lm": _field(msg, 12), "nt": _field(msg, 20),
            "domain": _field(msg, 28).decode(enc), "user": _field(msg, 36).decode(enc),
            "workstation": _field(msg, 44).decode(enc), "flags": flags}


def verify(auth, password, server_challenge):
    """Does the type 3 message's NT response come from this password?"""
    nt = auth["nt"]
    if len(nt) == 24:
        return hmac.compare_digest(nt, ntlmv1_response(password, server_challenge))
    if len(nt) < 32:
        return False
    expect, _ = ntlmv2_response(password, auth["user"], auth["domain"], server_challenge, nt[16:])
    return hmac.compare_digest(nt, expect)


def self_test():
    checks = [
        ("MD4('')", md4(b"").hex(), "31d6cfe0d16ae931b73c59d7e0c089c0"),
        ("MD4('abc')", md4(b"abc").hex(), "a448017aaf21d8525fc10ae87aa6729d"),
        ("MD4(a-z)", md4(b"abcdefghijklmnopqrstuvwxyz").hex(), "d79e1c308aa5bbcdeea8ed63df412da9"),
        ("MD4(80 digits)", md4(b"1234567890" * 8).hex(), "e33b4ddc9c38f2199c3e7b164fcc0536"),
        ("DES", des_encrypt(bytes.fromhex("133457799BBCDFF1"), bytes.fromhex("0123456789ABCDEF")).hex(),
         "85e813540f0ab405"),
        # MS-NLMP 4.2.2 / 4.2.4: User "User", domain "Domain", password "Password".
        ("NTOWFv1", nt_hash("Password").hex(), "a4f49c406510bdcab6824ee7c30fd852"),
        ("NTLMv1 response", ntlmv1_response("Password", bytes.fromhex("0123456789abcdef")).hex(),
         "67c43011f30298a2ad35ece64f16331c44bdbed927841f94"),
        ("NTOWFv2", ntowfv2("Password", "User", "Domain").hex(), "0c868a403bfd7a93a3001ef22ef02e3f"),
        # MS-NLMP 4.2.4.2: client challenge aa..aa, time 0, AV pairs Domain/Server.
        ("NTProofStr", ntlmv2_response("Password", "User", "Domain", bytes.fromhex("0123456789abcdef"),
                                       ntlmv2_blob(0, b"\xaa" * 8,
                                                   av_pairs([(2, "Domain"), (1, "Server")])))[1].hex(),
         "68cd0ab851e51c96aabc927bebef6a1c"),
        ("LMv2 response", lmv2_response("Password", "User", "Domain", bytes.fromhex("0123456789abcdef"),
                                        b"\xaa" * 8).hex(),
         "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa"),
    ]
    bad = [(n, got, want) for n, got, want in checks if got != want]
    if bad:
        raise AssertionError("ntlm.py self-test failed: %r" % bad)
    return checks


self_test()

if __name__ == "__main__":
    for name, got, _ in self_test():
        print("ok  %-16s %s" % (name, got))
