"""Session fields of the real-server captures, against the ground truth and the built-in fields.

- mailsec.starttls.cleartext_bytes: the built-in tcp.len of the session's
  frames up to and including the boundary, retransmissions aside, where the
  boundary is what the built-in tcp/tls/smtp/pop/imap fields show
  (e2e.expected_boundary, run without mailsec);
- mailsec.direction: to-server exactly on the frames sent to the server
  port the generator recorded (and the client's SYN went to);
- mailsec.auth.realm / workstation / material: what captures/driver.py's
  client sent for NTLM and DIGEST-MD5;
- direction on a session handed to the built-in SMTP with Decode As (a
  synthetic capture: the test knows who sent each segment).
"""
import base64
import hashlib
import sys

import pytest

from conftest import ROOT, ground_truth_captures
from e2e import Capture, builtin_rows, expected_boundary, num, one, session_frames, table

sys.path.insert(0, str(ROOT / "captures"))
import driver  # noqa: E402  (captures/driver.py: the generator's constants and challenge parser)

FIELDS = ["frame.number", "tcp.srcport", "tcp.dstport", "tcp.flags.syn", "tcp.flags.ack",
          "mailsec.proto", "mailsec.direction", "mailsec.transport",
          "mailsec.starttls.boundary", "mailsec.starttls.cleartext_bytes",
          "mailsec.auth.attempt", "mailsec.auth.mechanism", "mailsec.auth.username", "mailsec.auth.result",
          "mailsec.auth.realm", "mailsec.auth.workstation", "mailsec.auth.material"]

CASES = ground_truth_captures()
if not CASES:
    raise RuntimeError("no ground-truth captures found under captures/real")
STARTTLS = [c for c in CASES if any(s["transport"] == "starttls" for s in c.values[0][2]["sessions"])]
MECHS = [c for c in CASES if any(a["mechanism"] in ("NTLM", "DIGEST-MD5")
                                 for s in c.values[0][2]["sessions"] for a in s["auth"])]


def mailsec_rows(tshark, cap, keys):
    """Every TCP frame, mailsec fields included, with the capture's key log."""
    return table(tshark, cap, FIELDS, display_filter="tcp", keylog=keys)


@pytest.mark.parametrize("case", STARTTLS)
def test_cleartext_bytes(tshark, case):
    cap, keys, truth = case
    builtin = builtin_rows(tshark, cap)
    for keylog in (keys, None):
        rows = mailsec_rows(tshark, cap, keylog)
        for session in truth["sessions"]:
            if session["transport"] != "starttls":
                continue
            frames = session_frames(builtin, session)
            boundary = expected_boundary(frames, session, session["protocol"])
            expect = sum(int(one(f, "tcp.len") or 0) for f in frames
                         if num(f) <= boundary and not f["tcp.analysis.retransmission"])
            mine = session_frames(rows, session)
            shown = [(num(r), one(r, "mailsec.starttls.cleartext_bytes")) for r in mine
                     if r["mailsec.starttls.cleartext_bytes"]]
            assert shown, "session %s: no mailsec.starttls.cleartext_bytes" % session["client_port"]
            assert {v for _, v in shown} == {str(expect)}, \
                "session %s: cleartext_bytes %s, the built-in tcp.len up to frame %d add up to %d" % (
                    session["client_port"], sorted({v for _, v in shown}), boundary, expect)
            # drawn beside the boundary (README's example reads them together): on every
            # frame after it, on none up to it
            assert [n for n, _ in shown] == [num(r) for r in mine if num(r) > boundary], \
                "session %s: cleartext_bytes not on exactly the frames after the boundary %d" % (
                    session["client_port"], boundary)


@pytest.mark.parametrize("case", CASES)
def test_direction(tshark, case):
    cap, keys, truth = case
    rows = mailsec_rows(tshark, cap, keys)
    sessions = {str(s["client_port"]): s for s in truth["sessions"]}
    for s in truth["sessions"]:
        # the ground truth's server port is where the client's SYN went
        syns = [r for r in session_frames(rows, s) if one(r, "tcp.flags.syn") in ("1", "True")
                and one(r, "tcp.flags.ack") in ("0", "False")]
        assert [one(r, "tcp.dstport") for r in syns] == [str(s["server_port"])], s["client_port"]
    marked = [r for r in rows if r["mailsec.proto"]]
    assert marked
    for r in marked:
        sport, dport = one(r, "tcp.srcport"), one(r, "tcp.dstport")
        session = sessions.get(sport) or sessions.get(dport)
        assert session, "frame %d: mailsec on a session the generator did not make" % num(r)
        expect = "to-server" if dport == str(session["server_port"]) else "to-client"
        assert one(r, "mailsec.direction") == expect, "frame %d (%s -> %s): %r, expected %s" % (
            num(r), sport, dport, r["mailsec.direction"], expect)


# What captures/driver.py's DigestMd5Mech sends besides the server's nonce:
# nc and qop are its constants ("00000001", "auth"), the digest-uri is
# "<service>/<SERVER_NAME>" with the service its sessions pass (smtp, pop, imap).
DIGEST_SERVICE = {"smtp": "smtp", "pop3": "pop", "imap": "imap"}
DIGEST_NC, DIGEST_QOP = "00000001", "auth"


def md5_hex(data):
    return hashlib.md5(data if isinstance(data, bytes) else data.encode()).hexdigest()


def digest_response(user, realm, password, nonce, cnonce, nc, qop, uri, authzid):
    """RFC 2831 2.1.2.1, as the generator computes it."""
    a1 = hashlib.md5(("%s:%s:%s" % (user, realm, password)).encode()).digest() + \
        (":%s:%s" % (nonce, cnonce)).encode() + ((":%s" % authzid).encode() if authzid else b"")
    return md5_hex("%s:%s:%s:%s:%s:%s" % (md5_hex(a1), nonce, nc, cnonce, qop, md5_hex("AUTHENTICATE:" + uri)))


def parse_material(text):
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        assert sep and key not in out, "material is not key=value,...: %r" % text
        out[key] = value
    return out


def request_rows(rows, session):
    """attempt number -> the client's frame carrying it (no verdict)."""
    out = {}
    for r in session_frames(rows, session):
        if r["mailsec.auth.attempt"] and not r["mailsec.auth.result"] and \
                one(r, "tcp.srcport") == str(session["client_port"]):
            n = int(one(r, "mailsec.auth.attempt"))
            assert n not in out, "session %s: attempt %d on frames %d and %d" % (
                session["client_port"], n, num(out[n]), num(r))
            out[n] = r
    return out


@pytest.mark.parametrize("case", MECHS)
def test_realm_workstation_material(tshark, case):
    cap, keys, truth = case
    rows = mailsec_rows(tshark, cap, keys)
    checked = 0
    for session in truth["sessions"]:
        requests = request_rows(rows, session)
        for a in session["auth"]:
            if a["mechanism"] not in ("NTLM", "DIGEST-MD5") or (a["tls"] and keys is None):
                continue
            what = "session %s attempt %d (%s)" % (session["client_port"], a["attempt"], a["mechanism"])
            r = requests.get(a["attempt"])
            assert r is not None, "%s: no request frame" % what
            assert one(r, "mailsec.auth.mechanism") == a["mechanism"], what
            if a["mechanism"] == "NTLM":
                # recorded by the generator (driver.NTLM_DOMAIN / NTLM_WORKSTATION in the Type 3 message)
                assert one(r, "mailsec.auth.realm") == a["ntlm_domain"], what
                assert one(r, "mailsec.auth.workstation") == a["ntlm_workstation"], what
                assert r["mailsec.auth.material"] == [], what
            else:
                # the server's challenge is in the ground truth; the client echoes its realm and nonce
                challenge = driver.parse_digest_challenge(base64.b64decode(a["challenge"]).decode())
                realm = challenge.get("realm") or ""
                m = parse_material(one(r, "mailsec.auth.material"))
                assert {"nonce", "cnonce", "nc", "qop", "digest-uri", "response"} <= set(m), what
                assert m["nonce"] == challenge["nonce"], what
                assert (m["nc"], m["qop"]) == (DIGEST_NC, DIGEST_QOP), what
                assert m["digest-uri"] == "%s/%s" % (DIGEST_SERVICE[session["protocol"]], driver.SERVER_NAME), what
                assert m.get("username", a["username"]) == a["username"], what
                assert m.get("realm", realm) == realm, what
                assert one(r, "mailsec.auth.realm") == realm, what
                assert r["mailsec.auth.workstation"] == [], what
                # the material must let one test a guess: the password the client used
                # reproduces its response (so cnonce and every other field are the ones sent)
                assert m["response"] == digest_response(a["username"], realm, a["password"], m["nonce"],
                                                        m["cnonce"], m["nc"], m["qop"], m["digest-uri"],
                                                        a["authzid"]), "%s: response not reproduced" % what
                assert m["response"] != digest_response(a["username"], realm, a["password"] + "x", m["nonce"],
                                                        m["cnonce"], m["nc"], m["qop"], m["digest-uri"],
                                                        a["authzid"])
            checked += 1
    assert checked, "no NTLM or DIGEST-MD5 attempt checked in %s" % truth["name"]


# --- direction on a session the user hands to the built-in SMTP with Decode As ------



def decode_as_capture(tmp_path, server_port, client_port):
    """SMTP with a PLAIN login on a port nobody registered; returns (path,
    {frame: direction the test knows}, the login's frame)."""
    cap = Capture()
    c = cap.conversation(server_port, client_port=client_port)
    sent = []
    for who, data in (("s", b"220 mx.example.org ESMTP Postfix\r\n"), ("c", b"EHLO client.example.org\r\n"),
                      ("s", b"250-mx.example.org\r\n250 AUTH PLAIN\r\n"),
                      ("c", b"AUTH PLAIN " + base64.b64encode(b"\0alice\0Wonderland-42") + b"\r\n"),
                      ("s", b"235 2.7.0 Authentication successful\r\n")):
        (h,) = cap.send(c, who, data)
        sent.append((h, who))
    c.close()
    path = cap.write(tmp_path / ("decode-as-%d.pcap" % server_port))
    directions = {cap.number(h): "to-server" if who == "c" else "to-client" for h, who in sent}
    return path, directions, cap.number(sent[3][0])


def check_decode_as(tshark, path, server_port, directions, login):
    rows = table(tshark, path, FIELDS + ["mailsec.auth.password"],
                 extra=["-d", "tcp.port==%d,smtp" % server_port, "-o", "mailsec.heuristic:FALSE"])
    by = {num(r): r for r in rows}
    got = {n: one(by[n], "mailsec.direction") for n in directions}
    assert got == directions
    assert (one(by[login], "mailsec.auth.username"), one(by[login], "mailsec.auth.password")) == \
        ("alice", "Wonderland-42")


def test_decode_as_direction_server_on_the_lower_port(tshark, tmp_path):
    """Decode As tcp.port==2000 -> smtp, heuristic off: the built-in SMTP
    owns the session, mailsec takes it up (README: Decode As keeps working);
    directions and the login are the ones the test wrote."""
    path, directions, login = decode_as_capture(tmp_path, 2000, 40000)
    check_decode_as(tshark, path, 2000, directions, login)


def test_decode_as_direction_server_on_the_higher_port(tshark, tmp_path):
    """The same with the server on 50025 and the client on 40000."""
    path, directions, login = decode_as_capture(tmp_path, 50025, 40000)
    check_decode_as(tshark, path, 50025, directions, login)
