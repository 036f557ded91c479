"""Hostile captures: no crash, no sanitizer report, no terminal escape, no blindness.

../shared/hostile holds hand-made captures that broke mailsec (its README says
how). Each runs through the real tshark with the plain plugin and with the
plugin built with -fsanitize=address,undefined (the runtimes preloaded), and
must end with exit 0 and no sanitizer report. What each capture must show
comes from its README (the capture's author) or from the bytes of the capture
read here in Python — never from mailsec's own output.
"""
import collections
import re

import pytest

from conftest import SHARED

HOSTILE = SHARED / "hostile"
FILES = sorted(HOSTILE.glob("*.pcap"))
if not FILES:
    raise RuntimeError("the hostile captures are missing: expected ../shared/hostile/*.pcap")

SEP = "\x1f"  # cannot occur in an escaped message
FIELDS = ["frame.number", "tcp.stream", "mailsec.alert", "mailsec.alert.name", "mailsec.auth.attempt",
          "mailsec.auth.username", "mailsec.auth.password", "mailsec.auth.result",
          "mailsec.auth.username.raw", "mailsec.transport"]
SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def run(ts, capture):
    """Rows of mailsec fields, and the -z expert text a terminal would show."""
    args = ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=" + SEP, "-q", "-z", "expert,mailsec"]
    for f in FIELDS:
        args += ["-e", f]
    rc, out, err = ts.invoke(["-n", "-r", str(ts.copy(capture))] + args)
    assert not SANITIZER.search(err), "sanitizer report on %s:\n%s" % (capture.name, err[-4000:])
    assert rc == 0, "tshark exit %d on %s:\n%s" % (rc, capture.name, err[-2000:])
    rows, expert = [], []
    for line in out.splitlines():
        cols = line.split("\t")
        if len(cols) == len(FIELDS) and cols[0].isdigit():
            rows.append(dict(zip(FIELDS, [c.split(SEP) if c else [] for c in cols])))
        else:
            expert.append(line)
    return rows, "\n".join(expert)


def alerts(rows):
    c = collections.Counter()
    for r in rows:
        for name in r["mailsec.alert.name"]:
            c[name] += 1
    return c


def attempts(rows):
    """(stream, attempt) -> {user, password, result}"""
    out = collections.OrderedDict()
    for r in rows:
        for i, n in enumerate(r["mailsec.auth.attempt"]):
            a = out.setdefault((r["tcp.stream"][0], n), {})
            for key, field in (("user", "mailsec.auth.username"), ("password", "mailsec.auth.password"),
                               ("result", "mailsec.auth.result")):
                vals = r[field]
                if i < len(vals) and vals[i]:
                    a[key] = vals[i]
    return out


def client_payload(capture):
    """The client's bytes of every TCP stream, in capture order (test-side reader)."""
    import struct
    data = capture.read_bytes()
    endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    off, out = 24, collections.defaultdict(bytearray)
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ip = pkt[14:]
        if len(ip) < 20 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        tcp = ip[ihl:]
        sport, dport = struct.unpack(">HH", tcp[:4])
        payload = tcp[(tcp[12] >> 4) * 4:]
        if payload and dport in (25, 110, 143):
            out[(sport, dport)] += payload
    return out


BUILDS = ["plain", "sanitized"]


@pytest.fixture(params=BUILDS)
def build(request):
    return request.getfixturevalue("tshark" if request.param == "plain" else "tshark_sanitized")


@pytest.mark.parametrize("capture", FILES, ids=[f.name for f in FILES])
def test_runs_clean_and_escapes_everything(build, capture):
    rows, expert = run(build, capture)
    for r in rows:
        for msg in r["mailsec.alert"]:
            assert not CONTROL.search(msg), "control byte in a mailsec alert: %r" % msg
        for user in r["mailsec.auth.username"]:
            assert not CONTROL.search(user), "control byte in a user name: %r" % user
    mailsec_lines = [l for l in expert.splitlines() if "MAILSEC" in l]
    for line in mailsec_lines:
        assert not CONTROL.search(line), "control byte in tshark -z expert: %r" % line


def test_terminal_escapes_are_escaped_and_kept_raw(tshark):
    rows, expert = run(tshark, HOSTILE / "terminal-escapes.pcap")
    assert "\x1b" not in expert and "\x07" not in expert
    names = alerts(rows)
    assert names["mailsec.auth.cleartext"] == 1
    raw = [v for r in rows for v in r["mailsec.auth.username.raw"] if v]
    # the user name's own bytes, escape included, are still there for the analyst
    assert raw and all("1b5b" in v.replace(":", "") for v in raw)
    # and the -V tree a terminal shows carries no escape either
    rc, out, _ = tshark.invoke(["-n", "-r", str(tshark.copy(HOSTILE / "terminal-escapes.pcap")), "-V", "-O", "mailsec"])
    assert rc == 0 and "\x1b" not in out and "\x07" not in out


def test_literal_cut_by_a_hole(build):
    """README: a LOGIN whose literal is cut by a lost segment."""
    rows, _ = run(build, HOSTILE / "imap-gap-literal-300.pcap")
    names = alerts(rows)
    assert names["mailsec.sequence.gap"] >= 1
    assert names["mailsec.malformed.sasl"] >= 1      # the login lost its arguments
    assert names["mailsec.auth.cleartext"] == 0      # no password was ever complete


def test_append_literal_with_a_lost_segment(build):
    rows, _ = run(build, HOSTILE / "imap-loss-append.pcap")
    assert alerts(rows)["mailsec.sequence.gap"] >= 1


def test_refused_literal_does_not_swallow_the_next_login(tshark):
    """README: a LOGIN {4294967295} the server refuses, then bob logs in and succeeds."""
    rows, _ = run(tshark, HOSTILE / "imap-literal-4g.pcap")
    users = [(a.get("user"), a.get("result")) for a in attempts(rows).values()]
    assert ("bob", "success") in users
    assert alerts(rows)["mailsec.auth.cleartext"] == 1   # bob's password, and nothing else


def test_short_literals_do_not_blind_later_logins(tshark):
    """README: literals announced longer than the data, then more logins."""
    capture = HOSTILE / "imap-litshort.pcap"
    rows, _ = run(tshark, capture)
    # what the client sent and the server answered, read from the bytes
    client = b"".join(client_payload(capture).values())
    logins = re.findall(rb"^(\S+) LOGIN (\S+) (\S+)\r$", client, re.M)
    assert logins, "the capture has no one-line LOGIN"
    got = {(a.get("user"), a.get("password")) for a in attempts(rows).values()}
    for _, user, password in logins:
        assert (user.decode(), password.decode()) in got
    results = {a.get("user"): a.get("result") for a in attempts(rows).values() if a.get("user")}
    assert results.get("bob") == "success" and results.get("carol") == "failure"
    failures = sum(1 for a in attempts(rows).values() if a.get("result") == "failure")
    names = alerts(rows)
    assert names["mailsec.auth.failed"] == failures >= 9
    assert names["mailsec.auth.brute_force"] >= 1
    # alice's literal never completed: no credential for her
    cleartext = [m for r in rows for m in r["mailsec.alert"] if "Credentials in clear" in m]
    assert not [m for m in cleartext if "alice" in m]


def test_refused_bdat_does_not_swallow_commands(tshark):
    """README: a BDAT size the server rejects, then AUTH PLAIN (bob)."""
    rows, _ = run(tshark, HOSTILE / "bdat-blind.pcap")
    assert [(a.get("user"), a.get("result")) for a in attempts(rows).values()] == [("bob", "success")]
    assert alerts(rows)["mailsec.auth.cleartext"] == 1


def test_tls_lookalike_prefix_does_not_blind(tshark):
    """README: five bytes that look like a TLS record header, then cleartext AUTH PLAIN."""
    rows, _ = run(tshark, HOSTILE / "tls-prefix-blind.pcap")
    assert {t for r in rows for t in r["mailsec.transport"]} == {"cleartext"}
    assert [(a.get("user"), a.get("result")) for a in attempts(rows).values()] == [("bob", "success")]


def test_reordered_overlapping_smtp(build):
    """README: 10,000 SMTP AUTH exchanges with reordered segments and overlapping
    retransmissions carrying other bytes: 10,000 credential alerts, nothing malformed."""
    rows, _ = run(build, HOSTILE / "ooo-smtp.pcap")
    names = alerts(rows)
    assert names["mailsec.auth.cleartext"] == 10000
    assert names["mailsec.malformed.sasl"] == 0
    assert {a.get("user") for a in attempts(rows).values()} == {"alice"}


def test_reordered_overlapping_imap(build):
    """README: many IMAP sessions with out-of-order and overlapping segments, all
    logging in as alice: every login decoded as alice, none malformed."""
    rows, _ = run(build, HOSTILE / "ooo-imap.pcap")
    names = alerts(rows)
    assert names["mailsec.malformed.sasl"] == 0
    assert names["mailsec.auth.cleartext"] > 0
    assert {a.get("user") for a in attempts(rows).values()} == {"alice"}
