"""STARTTLS and TLS posture of the real-server and scripted-peer captures, against the ground truth.

captures/driver.py wrote down, for every session of the posture scenarios,
what its client really got: whether TLS began, the version and cipher its
ssl module negotiated, the SNI it sent, the answer to STARTTLS / STLS, every
capability list it received (and whether STARTTLS was in it, in clear or
under TLS), its logins, what it sent after STARTTLS before the reply, and the
attack it met (null, stripping, preauth, alert, capability-stripped,
response-buffering). Real Postfix and Dovecot played the TLS versions, the
missing SNI, the refusal and the offer nobody used; captures/peer.py (marked
"scripted peer" in the ground truth) played the attacks.

Nothing expected here is read from mailsec. Which frame an alert belongs on
comes from the built-in fields of a run without mailsec (the STARTTLS reply,
the ClientHello, the frame holding the [ALERT] or the buffered command), and
the README's expert-info table gives the severities. Cipher suites are
checked against the built-in tls.handshake.ciphersuite of the ServerHello and
against the IANA name of the cipher the client's OpenSSL reported.

A few older captures take part where the ground truth already says enough:
smtp-nonstd, imap-nonstd, smtp-cleartext and imap-cleartext (STARTTLS offered,
never asked for, login or mail in clear) and the three plain STARTTLS ones.
"""
import pytest

from conftest import ground_truth_captures
from e2e import alerts, num, one, table, unhex

FIELDS = ["frame.number", "tcp.srcport", "tcp.dstport", "mailsec.proto", "mailsec.transport",
          "mailsec.tls.version", "mailsec.tls.cipher", "mailsec.tls.sni", "mailsec.starttls.result",
          "mailsec.starttls.tls_began",
          "mailsec.auth.attempt", "mailsec.auth.mechanism", "mailsec.auth.username",
          "mailsec.auth.password", "mailsec.auth.exposed", "mailsec.auth.result",
          "mailsec.alert.name", "mailsec.alert.severity"]
BUILTIN = ["frame.number", "tcp.srcport", "tcp.dstport", "tcp.len", "tcp.payload",
           "tcp.analysis.retransmission", "tls.handshake.type", "tls.handshake.version",
           "tls.handshake.extensions.supported_version", "tls.handshake.ciphersuite",
           "tls.handshake.extensions_server_name"]

# The alerts about the STARTTLS / TLS posture, with the README's severities.
SEVERITY = {
    "mailsec.starttls.stripped": "error",
    "mailsec.starttls.offered_not_used": "warning",
    "mailsec.starttls.refused": "warning",
    "mailsec.starttls.login_before_tls": "error",
    "mailsec.starttls.capability_stripped": "note",
    "mailsec.starttls.response_buffering": "error",
    "mailsec.starttls.command_injection": "error",
    "mailsec.starttls.response_injection": "error",
    "mailsec.starttls.no_reply": "note",
    "mailsec.tls.old_version": "warning",
    "mailsec.tls.no_sni": "note",
    "mailsec.imap.preauth_in_clear": "warning",
    "mailsec.imap.alert_in_clear": "warning",
}
ATTACK_ALERT = {
    "stripping": "mailsec.starttls.stripped",
    "preauth": "mailsec.imap.preauth_in_clear",
    "alert": "mailsec.imap.alert_in_clear",
    "capability-stripped": "mailsec.starttls.capability_stripped",
    "response-buffering": "mailsec.starttls.response_buffering",
}
OLD_VERSIONS = {"SSL 3.0", "TLS 1.0", "TLS 1.1"}
WIRE_VERSION = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}
# OpenSSL's name of a cipher suite (what ssl.SSLSocket.cipher() reports) -> IANA name, number.
IANA = {
    "TLS_AES_128_GCM_SHA256": ("TLS_AES_128_GCM_SHA256", 0x1301),
    "TLS_AES_256_GCM_SHA384": ("TLS_AES_256_GCM_SHA384", 0x1302),
    "TLS_CHACHA20_POLY1305_SHA256": ("TLS_CHACHA20_POLY1305_SHA256", 0x1303),
    "ECDHE-RSA-AES128-GCM-SHA256": ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xc02f),
    "ECDHE-RSA-AES256-GCM-SHA384": ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", 0xc030),
    "ECDHE-RSA-CHACHA20-POLY1305": ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", 0xcca8),
    "ECDHE-RSA-AES128-SHA": ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xc013),
    "ECDHE-RSA-AES256-SHA": ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", 0xc014),
    "DHE-RSA-AES256-GCM-SHA384": ("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", 0x009f),
    "AES256-SHA": ("TLS_RSA_WITH_AES_256_CBC_SHA", 0x0035),
}
# Older captures whose ground truth predates the posture keys, read as below (legacy_facts).
LEGACY = {"smtp-nonstd", "imap-nonstd", "smtp-cleartext", "imap-cleartext",
          "smtp-starttls", "pop3-stls", "imap-starttls"}


def _is_posture(truth):
    return all("attack" in s for s in truth["sessions"])


def _cases():
    out = []
    for c in ground_truth_captures():
        truth = c.values[0][2]
        if _is_posture(truth) or truth["name"] in LEGACY:
            out.append(c)
    return out


CASES = _cases()
if not [c for c in CASES if _is_posture(c.values[0][2])]:
    raise RuntimeError("no STARTTLS / TLS posture captures (ground truth with 'attack') under captures/real")
POSTURE = [c for c in CASES if _is_posture(c.values[0][2])]
TLS_CASES = [c for c in POSTURE if any(s["tls_started"] for s in c.values[0][2]["sessions"])]
STRIPPED = [c for c in POSTURE if any(s["attack"] == "stripping" for s in c.values[0][2]["sessions"])]


def facts(session):
    """The posture facts of a session, from the new keys or, for the older
    captures, from what their ground truth already said."""
    if "attack" in session:
        return session
    st = session["starttls"]
    return dict(session, starttls_offered=st["offered"], starttls_used=st["requested"],
                tls_started=session["transport"] != "cleartext", tls_version=None, tls_cipher=None,
                attack=None, buffered_after_starttls=None,
                starttls=dict(st, result=(None if not st["requested"] else
                                          "accepted" if st["accepted"] else "refused")))


def expected_alerts(session):
    """The posture alerts the session must raise (a set of names), and those
    it may raise or not (the ground truth cannot decide them)."""
    f = facts(session)
    want, maybe = set(), set()
    if f["attack"]:
        want.add(ATTACK_ALERT[f["attack"]])
    if f["starttls"]["result"] == "refused":
        want.add("mailsec.starttls.refused")
    in_clear = [a for a in f["auth"] if not a["tls"] and (a["username"] or a["password"] or a["token"])]
    if f["starttls_offered"] and not f["starttls_used"]:
        if in_clear or (not f["tls_started"] and any(m.get("accepted", True) for m in f["messages"])):
            want.add("mailsec.starttls.offered_not_used")
        elif f["commands"] and not f["tls_started"]:
            maybe.add("mailsec.starttls.offered_not_used")   # other commands in clear: not the README's case
    if f["tls_started"] and any(not a["tls"] for a in f["auth"]):
        want.add("mailsec.starttls.login_before_tls")
    if f["tls_started"]:
        if f["tls_version"] in OLD_VERSIONS:
            want.add("mailsec.tls.old_version")
        if f["sni"] is None:
            want.add("mailsec.tls.no_sni")
    return want, maybe


# --- tshark runs ------------------------------------------------------------------

def mailsec_rows(tshark, cap, keys):
    return table(tshark, cap, FIELDS, display_filter="tcp", keylog=keys)


def builtin_rows(tshark, cap):
    """Every TCP frame in the built-in fields, without mailsec and without keys."""
    return table(tshark, cap, BUILTIN, display_filter="tcp", plugin=False)


def of_session(rows, session):
    port = str(session["client_port"])
    return [r for r in rows if port in (one(r, "tcp.srcport"), one(r, "tcp.dstport"))]


def from_client(row, session):
    return one(row, "tcp.srcport") == str(session["client_port"])


def payloads(frames, session):
    """[(frame number, from the client, payload bytes)] of the session, retransmissions aside."""
    return [(num(r), from_client(r, session), unhex(one(r, "tcp.payload"))) for r in frames
            if one(r, "tcp.len") not in ("", "0") and not r["tcp.analysis.retransmission"]]


def frame_holding(frames, session, data, client):
    """The first payload frame from that side whose bytes contain data."""
    hits = [n for n, c, p in payloads(frames, session) if c == client and data in p]
    assert hits, "session %s: no %s frame holds %r" % (session["client_port"],
                                                       "client" if client else "server", data)
    return hits[0]


def next_from(frames, session, after, client):
    return next(n for n, c, _ in payloads(frames, session) if n > after and c == client)


def client_hello(frames):
    return next((num(r) for r in frames if "1" in r["tls.handshake.type"]), None)


def server_hello(frames):
    return next((r for r in frames if "2" in r["tls.handshake.type"]), None)


def starttls_frames(frames, session):
    """(request frame, reply frame) of the session's STARTTLS / STLS, by the
    line the generator sent (its exchanges) and the server's next payload."""
    ex = next(e for e in session["exchanges"] if e["command"].split()[-1].upper() in ("STARTTLS", "STLS"))
    request = frame_holding(frames, session, ex["command"].encode() + b"\r\n", client=True)
    return request, next_from(frames, session, request, client=False)


# --- the captures say what the ground truth says ------------------------------------

@pytest.mark.parametrize("case", POSTURE)
def test_capture_agrees_with_ground_truth(tshark, case):
    """Checks on the captures, not on mailsec: the built-in TLS dissector sees
    the handshake the generator recorded (version, cipher, SNI), none where
    TLS never began, and the buffered command in a segment of its own between
    STARTTLS and the reply."""
    cap, _, truth = case
    rows = builtin_rows(tshark, cap)
    for s in truth["sessions"]:
        frames = of_session(rows, s)
        where = "%s session %s" % (truth["name"], s["client_port"])
        assert frames, where
        if not s["tls_started"]:
            assert client_hello(frames) is None, "%s: a ClientHello, but TLS never began" % where
            continue
        hello = server_hello(frames)
        assert hello is not None, "%s: no ServerHello" % where
        versions = hello["tls.handshake.extensions.supported_version"] or hello["tls.handshake.version"]
        assert WIRE_VERSION[int(versions[-1], 16)] == s["tls_version"], where
        assert int(one(hello, "tls.handshake.ciphersuite"), 16) == IANA[s["tls_cipher"]][1], where
        names = [n for r in frames for n in r["tls.handshake.extensions_server_name"]]
        assert names == ([s["sni"]] if s["sni"] else []), where
        if s["buffered_after_starttls"]:
            request, reply = starttls_frames(frames, s)
            buffered = frame_holding(frames, s, s["buffered_after_starttls"].encode(), client=True)
            assert request < buffered < reply < client_hello(frames), where
            held = [p for n, _, p in payloads(frames, s) if n == buffered]
            assert held == [s["buffered_after_starttls"].encode()], "%s: not a segment of its own" % where


# --- transport and TLS fields ----------------------------------------------------------

@pytest.mark.parametrize("case", POSTURE)
def test_transport_and_tls_fields(tshark, case):
    """Every frame of a session where TLS never began is cleartext and has no
    mailsec.tls.*; where it began, every TLS frame (transport starttls or
    implicit-tls) from the ServerHello on shows the version the client
    negotiated, the cipher suite (IANA name and number, the ServerHello's) and
    the SNI it sent (none without one). The handshake is in clear, so with and
    without keys."""
    cap, keys, truth = case
    builtin = builtin_rows(tshark, cap)
    for keylog in ([keys, None] if keys else [None]):
        check_transport_and_tls(mailsec_rows(tshark, cap, keylog), builtin, truth,
                                "with keys" if keylog else "without keys")


def check_transport_and_tls(rows, builtin, truth, how):
    for s in truth["sessions"]:
        frames = [r for r in of_session(rows, s) if r["mailsec.proto"]]
        where = "%s session %s (%s)" % (truth["name"], s["client_port"], how)
        assert frames, "%s: no mailsec frame" % where
        # after an accepted STARTTLS, said once: whether TLS really began
        began = [one(r, "mailsec.starttls.tls_began") for r in frames if r["mailsec.starttls.tls_began"]]
        f = facts(s)
        if f["starttls"]["result"] == "accepted":
            assert began == ["1" if f["tls_started"] else "0"], "%s: tls_began %s" % (where, began)
        else:
            assert began == [], "%s: tls_began %s without an accepted STARTTLS" % (where, began)
        transports = {one(r, "mailsec.transport") for r in frames}
        if not s["tls_started"]:
            assert transports == {"cleartext"}, "%s: %s" % (where, transports)
            leaked = [num(r) for r in frames
                      if r["mailsec.tls.version"] or r["mailsec.tls.cipher"] or r["mailsec.tls.sni"]]
            assert not leaked, "%s: mailsec.tls.* on frames %s, TLS never began" % (where, leaked)
            continue
        assert transports <= {"cleartext", s["transport"]}, "%s: %s" % (where, transports)
        hello = num(server_hello(of_session(builtin, s)))
        tls = [r for r in frames if one(r, "mailsec.transport") == s["transport"] and num(r) >= hello]
        assert tls, "%s: no %s frame from the ServerHello (%d) on" % (where, s["transport"], hello)
        name, number = IANA[s["tls_cipher"]]
        for r in tls:
            at = "%s frame %d" % (where, num(r))
            assert one(r, "mailsec.tls.version") == s["tls_version"], at
            assert one(r, "mailsec.tls.cipher") == "%s (0x%04x)" % (name, number), at
            assert r["mailsec.tls.sni"] == ([s["sni"]] if s["sni"] else []), at
        if s["transport"] == "implicit-tls":
            assert transports == {"implicit-tls"}, where


@pytest.mark.parametrize("case", STRIPPED)
def test_stripped_sessions_read_in_clear(tshark, case):
    """After a STARTTLS that was answered yes and never followed by TLS, every
    frame is cleartext and the logins that follow are decoded: the user and
    password the generator's client sent, exposed, with the server's verdict."""
    cap, keys, truth = case
    rows = mailsec_rows(tshark, cap, keys)
    builtin = builtin_rows(tshark, cap)
    for s in truth["sessions"]:
        if s["attack"] != "stripping":
            continue
        where = "%s session %s" % (truth["name"], s["client_port"])
        _, reply = starttls_frames(of_session(builtin, s), s)
        frames = of_session(rows, s)
        after = [r for r in frames if num(r) > reply and r["mailsec.proto"]]
        assert after and {one(r, "mailsec.transport") for r in after} == {"cleartext"}, where
        assert [one(r, "mailsec.starttls.result") for r in frames if r["mailsec.starttls.result"]] == \
            ["accepted"], where
        assert s["auth"], "%s: the scenario lost its login" % where
        requests = [r for r in after if r["mailsec.auth.attempt"] and from_client(r, s)
                    and not r["mailsec.auth.result"]]
        verdicts = [r for r in after if r["mailsec.auth.result"] and not from_client(r, s)]
        for a in s["auth"]:
            mine = [r for r in requests if one(r, "mailsec.auth.attempt") == str(a["attempt"])]
            assert len(mine) == 1, "%s attempt %d: on frames %s" % (where, a["attempt"], [num(r) for r in mine])
            r = mine[0]
            assert one(r, "mailsec.auth.username") == a["username"], where
            assert one(r, "mailsec.auth.mechanism") == a["mechanism"], where
            assert one(r, "mailsec.auth.password") == a["password"], where
            assert one(r, "mailsec.auth.exposed") == "1", where
            v = [x for x in verdicts if one(x, "mailsec.auth.attempt") == str(a["attempt"])]
            assert [one(x, "mailsec.auth.result") for x in v] == [a["result"]], where


# --- alerts ------------------------------------------------------------------------------

def alert_frames(frames, name):
    return [(num(r), sev) for r in frames for n, sev in alerts(r) if n == name]


def expected_place(name, s, builtin):
    """The frames an alert may sit on, from the built-in fields (None: anywhere in the session)."""
    frames = of_session(builtin, s)
    if name in ("mailsec.starttls.stripped",):
        # the first bytes after the positive reply: cleartext where TLS should be
        _, reply = starttls_frames(frames, s)
        return {next_from(frames, s, reply, client=True)}
    if name == "mailsec.starttls.refused":
        return {starttls_frames(frames, s)[1]}
    if name == "mailsec.starttls.response_buffering":
        return {client_hello(frames)}          # README: on the first TLS frame
    if name == "mailsec.imap.preauth_in_clear":
        return {next(n for n, c, _ in payloads(frames, s) if not c)}
    if name == "mailsec.imap.alert_in_clear":
        return {frame_holding(frames, s, b"[ALERT]", client=False)}
    if name == "mailsec.starttls.capability_stripped":
        # a cleartext capability list (EHLO reply, CAPA, CAPABILITY, the greeting's code), before any login
        lists = {n for n, c, p in payloads(frames, s) if not c and
                 (b"CAPABILITY" in p.upper() or p.startswith(b"250-") or p.startswith(b"+OK\r\n"))}
        first_login = min((n for n, c, p in payloads(frames, s) if c and
                           (p.upper().startswith((b"AUTH ", b"USER ")) or b" LOGIN " in p.upper())),
                          default=None)
        return {n for n in lists if first_login is None or n < first_login}
    if name in ("mailsec.tls.old_version", "mailsec.tls.no_sni"):
        hello = client_hello(frames)
        return {num(r) for r in frames if num(r) >= hello}
    return None


@pytest.mark.parametrize("case", CASES)
def test_posture_alerts(tshark, case):
    """Each session raises exactly the posture alerts its ground truth calls
    for (its attack's, refused, offered_not_used, login_before_tls,
    old_version, no_sni), once each except offered_not_used, with the
    README's severity, on the frame the built-in fields point at; the
    sessions that met nothing raise none of them."""
    cap, keys, truth = case
    rows = mailsec_rows(tshark, cap, keys)
    builtin = builtin_rows(tshark, cap)
    problems = []
    for s in truth["sessions"]:
        frames = of_session(rows, s)
        where = "%s session %s (attack %s)" % (truth["name"], s["client_port"], facts(s)["attack"])
        want, maybe = expected_alerts(s)
        seen = {n for r in frames for n, _ in alerts(r) if n in SEVERITY}
        if not want <= seen:
            problems.append("%s: missing %s" % (where, sorted(want - seen)))
        if seen - want - maybe:
            problems.append("%s: unexpected %s" % (where, sorted(seen - want - maybe)))
        for name in sorted(want & seen):
            hits = alert_frames(frames, name)
            wrong = [(n, sev) for n, sev in hits if sev != SEVERITY[name]]
            if wrong:
                problems.append("%s: %s with severity %s, README says %s" % (where, name, wrong, SEVERITY[name]))
            if name != "mailsec.starttls.offered_not_used" and len(hits) != 1:
                problems.append("%s: %s on %d frames %s, expected once" % (where, name, len(hits), hits))
            place = expected_place(name, s, builtin)
            if place is not None and not {n for n, _ in hits} <= place:
                problems.append("%s: %s on frames %s, expected among %s" % (
                    where, name, [n for n, _ in hits], sorted(place)))
    # the same alerts must not land on frames of no session
    ports = {str(s["client_port"]) for s in truth["sessions"]}
    stray = [num(r) for r in rows if alerts(r) and not ports & {one(r, "tcp.srcport"), one(r, "tcp.dstport")}]
    if stray:
        problems.append("alerts on frames of no session: %s" % stray)
    assert not problems, "\n".join(problems)


def test_every_attack_is_played():
    """The captures hold every attack of the list, and every posture fact the
    tests above check: each of them can fail."""
    sessions = [s for c in POSTURE for s in c.values[0][2]["sessions"]]
    assert {s["attack"] for s in sessions} >= set(ATTACK_ALERT)
    assert {s["tls_version"] for s in sessions if s["tls_started"]} >= {"TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"}
    assert any(s["tls_started"] and s["sni"] is None for s in sessions)
    assert any(s["starttls"]["result"] == "refused" and s["attack"] is None for s in sessions)
    assert any(s["starttls_offered"] and not s["starttls_used"] and s["auth"] for s in sessions)
    assert all(s.get("server") == "scripted peer (captures/peer.py)" for s in sessions if s["attack"])
