"""Sessions of the real-server captures, checked against the generator's ground truth.

captures/driver.py drove real clients against real Postfix and Dovecot and
wrote down, per session, the protocol, port, transport and STARTTLS outcome.
Here tshark with mailsec must show exactly that on every frame of the session.
"""
import pytest

from conftest import BUNDLED_FIELDS, ground_truth_captures

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


def check_session(frames, session, truth, keys_given):
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
        # cleartext up to the boundary, starttls after it, never back
        assert transports[0] == "cleartext" and transports[-1] == "starttls"
        switch = transports.index("starttls")
        assert set(transports[switch:]) == {"starttls"}
        boundary = marked[switch - 1]["frame.number"]
        assert {f["mailsec.starttls.boundary"] for f in marked[switch:]} == {boundary}

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


@pytest.mark.parametrize("case", CASES)
def test_sessions_with_keys(tshark, case):
    cap, keys, truth = case
    rows = tshark.fields(cap, FIELDS, display_filter="tcp", keylog=keys)
    for session in truth["sessions"]:
        check_session(session_rows(rows, session), session, truth, keys_given=keys is not None)


@pytest.mark.parametrize("case", CASES)
def test_sessions_without_keys(tshark, case):
    cap, _, truth = case
    rows = tshark.fields(cap, FIELDS, display_filter="tcp")
    for session in truth["sessions"]:
        check_session(session_rows(rows, session), session, truth, keys_given=False)


@pytest.mark.parametrize("case", CASES)
def test_two_pass_shows_the_same(tshark, case):
    cap, keys, _ = case
    # the same runs as test_credentials' (conftest.BUNDLED_FIELDS), FIELDS cut out of them
    one = tshark.fields(cap, FIELDS, keylog=keys, wide=BUNDLED_FIELDS)
    two = tshark.fields(cap, FIELDS, keylog=keys, two_pass=True, wide=BUNDLED_FIELDS)
    assert one == two
