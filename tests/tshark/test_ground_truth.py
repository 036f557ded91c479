"""Sessions of the real-server captures, checked against the generator's ground truth.

captures/driver.py drove real clients against real Postfix and Dovecot and
wrote down, per session, the protocol, port, transport and STARTTLS outcome.
Here tshark with mailsec must show exactly that on every frame of the session.
"""
import pytest

from conftest import BUNDLED_FIELDS, ground_truth_captures
from e2e import builtin_rows, expected_boundary, num, one, session_frames

FIELDS = ["frame.number", "tcp.srcport", "tcp.dstport", "tcp.len", "tcp.flags.syn",
          "mailsec.proto", "mailsec.detected_by", "mailsec.transport", "mailsec.decrypted",
          "mailsec.starttls.offered", "mailsec.starttls.command", "mailsec.starttls.result",
          "mailsec.starttls.boundary"]

CASES = ground_truth_captures()
if not CASES:
    raise RuntimeError("no ground-truth captures found under captures/real")


def session_rows(rows, session):
    port = str(session["client_port"])
    return [dict(zip(FIELDS, r)) for r in rows if port in (r[1], r[2])]


def first_payload_index(frames):
    for i, f in enumerate(frames):
        if f["tcp.len"] not in ("", "0"):
            return i
    raise AssertionError("session has no payload")


def boundary_of(builtin, session):
    """e2e.expected_boundary, except for a session whose client sent a command
    after STARTTLS before the reply (the generator records it as
    buffered_after_starttls): then the last command before the reply is not
    STARTTLS, and the reply is known by the code the generator recorded for
    STARTTLS. It must still be the server's last payload before the ClientHello."""
    if not session.get("buffered_after_starttls"):
        return expected_boundary(builtin, session, session["protocol"])
    frames = builtin
    hello = next(i for i, f in enumerate(frames) if "1" in f["tls.handshake.type"])
    before = [f for f in frames[:hello] if one(f, "tcp.len") not in ("", "0")
              and not f["tcp.analysis.retransmission"]]
    last = before[-1]
    code = session["starttls"]["reply"]["code"]
    shown = {"smtp": "smtp.response.code", "pop3": "pop.response.indicator",
             "imap": "imap.response.status"}[session["protocol"]]
    assert one(last, "tcp.srcport") == str(session["server_port"]) and code in last[shown], \
        "session %s: frame %d, the last payload before TLS, is not the STARTTLS reply %s" % (
            session["client_port"], num(last), code)
    return num(last)


def check_session(frames, session, truth, keys_given, builtin):
    """builtin: the session's frames as the built-in dissectors show them
    without mailsec (e2e.builtin_rows), for what mailsec must agree with."""
    assert frames, "no frames for client port %s" % session["client_port"]
    start = 0
    if truth["expect_detected_by"] == "heuristic":
        # A session on an unregistered port is recognised from its first payload.
        start = first_payload_index(frames)
    marked = frames[start:]
    missing = [f["frame.number"] for f in marked if f["mailsec.proto"] == ""]
    assert not missing, "frames without mailsec: %s" % missing
    assert {f["mailsec.proto"] for f in marked} == {session["protocol"]}
    assert {f["mailsec.detected_by"] for f in marked} == {truth["expect_detected_by"]}

    transports = [f["mailsec.transport"] for f in marked]
    if session["transport"] == "cleartext":
        assert set(transports) == {"cleartext"}
    elif session["transport"] == "implicit-tls":
        assert set(transports) == {"implicit-tls"}
    else:
        # cleartext up to the boundary, starttls after it, never back. The
        # boundary is where the built-in dissectors see TLS take over (the
        # server's positive STARTTLS reply, the last payload before the
        # ClientHello), not where mailsec.transport changes.
        boundary = boundary_of(builtin, session)
        before = [f for f in marked if int(f["frame.number"]) <= boundary]
        after = [f for f in marked if int(f["frame.number"]) > boundary]
        assert before and after, "boundary %d: no mailsec frame on one side of it" % boundary
        assert {f["mailsec.transport"] for f in before} == {"cleartext"}, \
            "frames up to the boundary (%d) not all cleartext" % boundary
        assert {f["mailsec.transport"] for f in after} == {"starttls"}, \
            "frames after the boundary (%d) not all starttls" % boundary
        assert {f["mailsec.starttls.boundary"] for f in after} == {str(boundary)}
        assert {f["mailsec.starttls.boundary"] for f in before} == {""}, \
            "mailsec.starttls.boundary before the boundary (%d)" % boundary

    decrypted = [f for f in marked if f["mailsec.decrypted"] in ("1", "True")]
    if session["transport"] == "cleartext" or not keys_given:
        assert not decrypted, "decrypted without keys or TLS: %s" % [f["frame.number"] for f in decrypted]
    else:
        assert decrypted, "TLS session with keys but no decrypted frame"
        assert all(f["mailsec.transport"] != "cleartext" for f in decrypted)

    st = session.get("starttls", {})
    offered = [f for f in marked if f["mailsec.starttls.offered"] in ("1", "True")]
    commands = [f for f in marked if f["mailsec.starttls.command"] in ("1", "True")]
    results = [f["mailsec.starttls.result"] for f in marked if f["mailsec.starttls.result"]]
    if session["transport"] != "implicit-tls" or keys_given:
        assert bool(offered) == bool(st.get("offered")), "STARTTLS offered mismatch"
    assert bool(commands) == bool(st.get("requested"))
    if st.get("requested"):
        assert results == ["accepted" if st.get("accepted") else "refused"]
    else:
        assert results == []


def builtin_sessions(tshark, cap, truth):
    """client port -> the session's frames in the built-in fields, only for
    captures that have a STARTTLS session (the others need none)."""
    if not any(s["transport"] == "starttls" for s in truth["sessions"]):
        return {}
    rows = builtin_rows(tshark, cap)
    return {s["client_port"]: session_frames(rows, s) for s in truth["sessions"]}


@pytest.mark.parametrize("case", CASES)
def test_sessions_with_keys(tshark, case):
    cap, keys, truth = case
    rows = tshark.fields(cap, FIELDS, display_filter="tcp", keylog=keys)
    builtin = builtin_sessions(tshark, cap, truth)
    for session in truth["sessions"]:
        check_session(session_rows(rows, session), session, truth, keys_given=keys is not None,
                      builtin=builtin.get(session["client_port"]))


@pytest.mark.parametrize("case", CASES)
def test_sessions_without_keys(tshark, case):
    cap, _, truth = case
    rows = tshark.fields(cap, FIELDS, display_filter="tcp")
    builtin = builtin_sessions(tshark, cap, truth)
    for session in truth["sessions"]:
        check_session(session_rows(rows, session), session, truth, keys_given=False,
                      builtin=builtin.get(session["client_port"]))


@pytest.mark.parametrize("case", CASES)
def test_sni_in_the_capture(tshark, case):
    """The generator records the SNI its client sent (sni, None without TLS):
    the built-in tls.handshake.extensions_server_name of the session's
    ClientHello must say the same. No mailsec field yet: this checks that the
    captures and their ground truth agree, which mailsec.tls.sni tests will
    rely on."""
    cap, _, truth = case
    rows = builtin_rows(tshark, cap)
    for session in truth["sessions"]:
        frames = session_frames(rows, session)
        assert frames, "no frames for client port %s" % session["client_port"]
        hellos = [f for f in frames if "1" in f["tls.handshake.type"]]
        names = [n for f in hellos for n in f["tls.handshake.extensions_server_name"]]
        if session["sni"] is None:
            assert names == [], "session %s: SNI %r, the generator sent none" % (session["client_port"], names)
        else:
            assert hellos and names == [session["sni"]] * len(hellos), \
                "session %s: SNI %r in %d ClientHello(s), the generator sent %r" % (
                    session["client_port"], names, len(hellos), session["sni"])


@pytest.mark.parametrize("case", CASES)
def test_two_pass_shows_the_same(tshark, case):
    cap, keys, _ = case
    # the same runs as test_credentials' (conftest.BUNDLED_FIELDS), FIELDS cut out of them
    one = tshark.fields(cap, FIELDS, keylog=keys, wide=BUNDLED_FIELDS)
    two = tshark.fields(cap, FIELDS, keylog=keys, two_pass=True, wide=BUNDLED_FIELDS)
    assert one == two
