"""Credentials in the real-server captures, checked against the generator's ground truth.

captures/driver.py logged in with every mechanism against real Postfix and
Dovecot (and captures/peer.py, a scripted peer, for NTLM, XOAUTH2,
OAUTHBEARER and GSSAPI), and wrote down, per TCP session and in order, each
attempt: mechanism, user, authzid, the password or token the client used, the
server's verdict, whether it ran under TLS and the server challenge. Here
tshark with mailsec must show exactly that, and every crackable hash it
prints must be recomputed here, in Python, from the known password.

The rendering contract:
- the frame that completes the client's part of an attempt carries
  mailsec.auth.attempt / mechanism / username / authzid / password (mechanisms
  that send one) / token (OAuth) / hash (CRAM-MD5, APOP, NTLM) / exposed;
- the server's verdict frame carries attempt / mechanism / username / result /
  request_in (no verdict in the capture: no result, read here as "unknown");
- every frame after a successful verdict carries mailsec.session.auth_user;
- each attempt is queued to the credentials tap (tshark -z credentials);
- expert infos mailsec.auth.cleartext (warn), .failed (note), .brute_force
  (warn, 5 failures), .success_after_failures (error);
- preference mailsec.hide_secrets shows passwords and tokens as ********.
"""
import base64
import hashlib
import hmac
import re
import struct

import pytest

import sys

from conftest import BUNDLED_FIELDS, ROOT, ground_truth_captures

sys.path.insert(0, str(ROOT / "captures"))
import ntlm  # noqa: E402  (captures/ntlm.py)

ATTEMPT, MECH, USER, AUTHZID, PASSWORD, TOKEN, HASH, EXPOSED, RESULT, REQUEST_IN, RESULT_IN, AUTH_USER = (
    "mailsec.auth.attempt", "mailsec.auth.mechanism", "mailsec.auth.username",
    "mailsec.auth.authzid", "mailsec.auth.password", "mailsec.auth.token", "mailsec.auth.hash",
    "mailsec.auth.exposed", "mailsec.auth.result", "mailsec.auth.request_in",
    "mailsec.auth.result_in", "mailsec.session.auth_user")
AUTH_FIELDS = [ATTEMPT, MECH, USER, AUTHZID, PASSWORD, TOKEN, HASH, EXPOSED, RESULT, REQUEST_IN,
               RESULT_IN, AUTH_USER]
FIELDS = ["frame.number", "tcp.srcport", "tcp.dstport"] + AUTH_FIELDS

HIDDEN = "********"
TRUE, FALSE = ("1", "True"), ("0", "False")
HASHED = {"CRAM-MD5", "APOP", "NTLM"}
# Mechanisms whose exchange is crackable but not in the contract's list of
# things that must raise "credentials in clear": the alert is allowed, not required.
CLEARTEXT_OPTIONAL = {"DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", "GSSAPI"}
TAP_PROTOCOL = {"smtp": "SMTP", "pop3": "POP3", "imap": "IMAP"}
BRUTE_FORCE_THRESHOLD = 5   # the preference's default
SEVERITY = {"note": 0x00400000, "warn": 0x00600000, "error": 0x00800000}

CASES = [c for c in ground_truth_captures()
         if any(s["auth"] for s in c.values[0][2]["sessions"])]
if not CASES:
    raise RuntimeError("no ground-truth captures with logins found under captures/real")
BRUTE = [c for c in CASES if c.values[0][2]["name"].endswith("-bruteforce")]


# --- hash recomputation -------------------------------------------------------

def hmac_md5(key, data):
    return hmac.new(key, data, "md5").digest()


# MD4, DES and NTLM come from captures/ntlm.py, which checks itself against the
# RFC 1320 and MS-NLMP published values when imported (and test_hash_helpers_
# known_answers below checks them again).
md4 = ntlm.md4
ntowfv2 = ntlm.ntowfv2


def ntlmv1_nt_response(password, challenge):
    """MS-NLMP DESL(NTOWFv1(password), challenge)."""
    return ntlm.ntlmv1_response(password, challenge)


def cram_md5_response(user, password, challenge):
    """RFC 2195: "user SP hex(HMAC-MD5(password, challenge))"."""
    return "%s %s" % (user, hmac.new(password.encode(), challenge, "md5").hexdigest())


def apop_digest(timestamp, password):
    """RFC 1939: hex(MD5(timestamp password))."""
    return hashlib.md5((timestamp + password).encode()).hexdigest()


HEX = re.compile(r"^[0-9a-f]+$")


def hash_problem(attempt, text):
    """Why the plugin's hash line does not prove the known password, or None."""
    mech, user, password, challenge = (attempt["mechanism"], attempt["username"],
                                       attempt["password"], attempt["challenge"])
    if mech == "CRAM-MD5":
        m = re.fullmatch(r"\$cram_md5\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)", text)
        if not m:
            return "not $cram_md5$<b64 challenge>$<b64 response>: %r" % text
        if m.group(1) != challenge:
            return "challenge %r, the server sent %r" % (m.group(1), challenge)
        response = base64.b64decode(m.group(2)).decode("utf-8", "replace")
        expect = cram_md5_response(user, password, base64.b64decode(challenge))
        return None if response == expect else "response %r, recomputed %r" % (response, expect)
    if mech == "APOP":
        digest, sep, timestamp = text.partition(":")
        if not sep or not HEX.match(digest) or len(digest) != 32:
            return "not <32 hex digest>:<timestamp>: %r" % text
        if timestamp != challenge:
            return "timestamp %r, the greeting had %r" % (timestamp, challenge)
        expect = apop_digest(timestamp, password)
        return None if digest == expect else "digest %s, recomputed %s" % (digest, expect)
    if mech == "NTLM":
        parts = text.split(":")
        if len(parts) != 6 or parts[1] != "":
            return "not a hashcat NetNTLM line (user::domain:...): %r" % text
        if parts[0] != user:
            return "user %r, the client sent %r" % (parts[0], user)
        domain = parts[2]
        if attempt.get("ntlm_domain") is not None and domain != attempt["ntlm_domain"]:
            return "domain %r, the client sent %r" % (domain, attempt["ntlm_domain"])
        if any(not HEX.match(p) for p in parts[3:]):
            return "hex fields must be lower-case hex: %r" % text
        if attempt["ntlm_version"] == 1:
            lm, nt, chal = parts[3:]
            if chal != challenge:
                return "challenge %s, the server sent %s" % (chal, challenge)
            if len(lm) != 48:
                return "LM response must be 24 bytes: %s" % lm
            expect = ntlmv1_nt_response(password, bytes.fromhex(chal)).hex()
            return None if nt == expect else "NT response %s, recomputed %s" % (nt, expect)
        chal, proof, blob = parts[3:]
        if chal != challenge:
            return "challenge %s, the server sent %s" % (chal, challenge)
        if len(proof) != 32 or not blob.startswith("0101"):
            return "not NTProofStr (16 bytes) and an NTLMv2 blob: %r" % text
        expect = hmac_md5(ntowfv2(password, user, domain),
                          bytes.fromhex(chal) + bytes.fromhex(blob)).hex()
        return None if proof == expect else "NTProofStr %s, recomputed %s" % (proof, expect)
    return None


def test_hash_helpers_known_answers():
    """The recomputation above, on the published examples."""
    # RFC 2195 section 2.
    assert cram_md5_response("tim", "tanstaaftanstaaf",
                             b"<1896.697170952@postoffice.reston.mci.net>") == \
        "tim b913a602c7eda7a495b4e6e7334d3890"
    # RFC 1939 section 7 (APOP).
    assert apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf") == \
        "c4c9334bac560ecc979e58001b3e22fb"
    # RFC 1320 appendix A.5.
    assert md4(b"").hex() == "31d6cfe0d16ae931b73c59d7e0c089c0"
    assert md4(b"abc").hex() == "a448017aaf21d8525fc10ae87aa6729d"
    assert md4(b"message digest").hex() == "d9130a8164549fe818874806e1c7014b"
    assert md4(b"1234567890" * 8).hex() == "e33b4ddc9c38f2199c3e7b164fcc0536"
    # The textbook DES example (key 133457799BBCDFF1).
    assert ntlm.des_encrypt(bytes.fromhex("133457799bbcdff1"),
                            bytes.fromhex("0123456789abcdef")).hex() == "85e813540f0ab405"
    # MS-NLMP 4.2.2 and 4.2.4: user "User", domain "Domain", password "Password".
    challenge = bytes.fromhex("0123456789abcdef")
    assert ntlmv1_nt_response("Password", challenge).hex() == \
        "67c43011f30298a2ad35ece64f16331c44bdbed927841f94"
    assert ntowfv2("Password", "User", "Domain").hex() == "0c868a403bfd7a93a3001ef22ef02e3f"
    av = (struct.pack("<HH", 2, 12) + "Domain".encode("utf-16-le")
          + struct.pack("<HH", 1, 12) + "Server".encode("utf-16-le") + b"\0" * 4)
    blob = b"\x01\x01" + b"\0" * 6 + b"\0" * 8 + b"\xaa" * 8 + b"\0" * 4 + av + b"\0" * 4
    line = "User::Domain:%s:%s:%s" % (challenge.hex(), "68cd0ab851e51c96aabc927bebef6a1c", blob.hex())
    truth = {"mechanism": "NTLM", "username": "User", "password": "Password",
             "challenge": challenge.hex(), "ntlm_version": 2}
    assert hash_problem(truth, line) is None
    assert hash_problem(dict(truth, password="password"), line) is not None
    v1 = "User::Domain:%s:%s:%s" % ("67c43011f30298a2ad35ece64f16331c44bdbed927841f94",
                                    "67c43011f30298a2ad35ece64f16331c44bdbed927841f94", challenge.hex())
    assert hash_problem(dict(truth, ntlm_version=1), v1) is None
    cram = {"mechanism": "CRAM-MD5", "username": "tim", "password": "tanstaaftanstaaf",
            "challenge": base64.b64encode(b"<1896.697170952@postoffice.reston.mci.net>").decode()}
    ok = "$cram_md5$%s$%s" % (cram["challenge"],
                              base64.b64encode(b"tim b913a602c7eda7a495b4e6e7334d3890").decode())
    assert hash_problem(cram, ok) is None
    assert hash_problem(dict(cram, password="x"), ok) is not None
    apop = {"mechanism": "APOP", "username": "mrose", "password": "tanstaaf",
            "challenge": "<1896.697170952@dbc.mtview.ca.us>"}
    assert hash_problem(apop, "c4c9334bac560ecc979e58001b3e22fb:<1896.697170952@dbc.mtview.ca.us>") is None


# --- running tshark ---------------------------------------------------------------

_CACHE = {}


def rows_of(tshark, cap, keys=None, two_pass=False, extra=(), fields=FIELDS, display_filter=None):
    """Every frame's FIELDS as dicts (occurrences joined by ','), cached per run.
    The full FIELDS come from one run with test_ground_truth's fields too
    (conftest.BUNDLED_FIELDS), hide_secrets or not, so the runs compared stay alike."""
    key = (str(cap), str(keys), two_pass, tuple(extra), tuple(fields), display_filter)
    if key not in _CACHE:
        wide = BUNDLED_FIELDS if list(fields) == FIELDS else None
        rows = tshark.fields(cap, fields, display_filter, extra=extra, wide=wide,
                             keylog=keys, two_pass=two_pass)
        _CACHE[key] = [dict(zip(fields, r)) for r in rows]
    return _CACHE[key]


def flagged(tshark, cap, keys, expert):
    """Frame numbers (int) whose tree has this expert info, with the client port of each."""
    rows = rows_of(tshark, cap, keys, fields=("frame.number", "tcp.srcport", "tcp.dstport"),
                   display_filter=expert)
    return [(int(r["frame.number"]), r["tcp.srcport"], r["tcp.dstport"]) for r in rows]


def in_session(session, srcport, dstport):
    return str(session["client_port"]) in (srcport, dstport)


def session_frames(rows, session):
    return [r for r in rows if in_session(session, r["tcp.srcport"], r["tcp.dstport"])]


def attempts_shown(frames, session):
    """attempt number -> request row, and attempt number -> verdict row."""
    requests, verdicts = {}, {}
    for f in frames:
        if not f[ATTEMPT]:
            continue
        assert "," not in f[ATTEMPT], \
            "frame %s carries several attempts (%s): none of these sessions pipelines logins" % (
                f["frame.number"], f[ATTEMPT])
        n = int(f[ATTEMPT])
        table = verdicts if f[RESULT] and f[RESULT] != "unknown" else requests
        if n in table:
            raise AssertionError("session %s: attempt %d shown on frames %s and %s" % (
                session["client_port"], n, table[n]["frame.number"], f["frame.number"]))
        table[n] = f
    return requests, verdicts


def expected_attempts(session, keys_given):
    """The ground truth attempts the plugin can see: without keys, none under TLS."""
    return [a for a in session["auth"] if keys_given or not a["tls"]]


def check_attempts(frames, session, keys_given):
    """Every attempt of the ground truth, in order, with its verdict; nothing else.
    Returns [(attempt, request row, verdict row or None)]."""
    port = str(session["client_port"])
    server = str(session["server_port"])
    expect = expected_attempts(session, keys_given)
    requests, verdicts = attempts_shown(frames, session)
    where = "session %s" % port
    assert sorted(requests) == [a["attempt"] for a in expect], \
        "%s: attempts shown %s, ground truth %s" % (where, sorted(requests),
                                                    [(a["attempt"], a["mechanism"]) for a in expect])
    assert set(verdicts) <= set(requests), "%s: verdicts for attempts never shown: %s" % (
        where, sorted(set(verdicts) - set(requests)))
    out, previous = [], 0
    for a in expect:
        n = a["attempt"]
        what = "%s attempt %d (%s as %s)" % (where, n, a["mechanism"], a["username"])
        req, ver = requests[n], verdicts.get(n)
        num = int(req["frame.number"])
        assert req["tcp.srcport"] == port, "%s: request frame %d is not from the client" % (what, num)
        assert num > previous, "%s: request frame %d before the previous verdict %d" % (what, num, previous)
        assert req[MECH] == a["mechanism"], "%s: mechanism %r" % (what, req[MECH])
        assert req[USER] == (a["username"] or ""), "%s: username %r" % (what, req[USER])
        if a["mechanism"] == "OAUTHBEARER":
            # RFC 7628's gs2 a= is formally an authzid: shown as one or not at all.
            assert req[AUTHZID] in ("", a["username"]), "%s: authzid %r" % (what, req[AUTHZID])
        else:
            assert req[AUTHZID] == (a["authzid"] or ""), "%s: authzid %r" % (what, req[AUTHZID])
        password = a["password"] if a["sends_password"] and a["password"] is not None else ""
        assert req[PASSWORD] == password, "%s: password %r, the client sent %r" % (
            what, req[PASSWORD], password)
        assert req[TOKEN] == (a["token"] or ""), "%s: token %r" % (what, req[TOKEN])
        exposed = req[EXPOSED]
        assert exposed in TRUE + FALSE, "%s: mailsec.auth.exposed missing (%r)" % (what, exposed)
        assert (exposed in TRUE) == (not a["tls"]), "%s: exposed %s but tls=%s" % (what, exposed, a["tls"])
        result = ver[RESULT] if ver else "unknown"
        assert result == a["result"], "%s: result %s, the server said %s" % (what, result, a["result"])
        if ver is None:   # an attempt the server never answered (none in these captures)
            previous = num
            out.append((a, req, ver))
            continue
        vnum = int(ver["frame.number"])
        assert ver["tcp.srcport"] == server, "%s: verdict frame %d is not from the server" % (what, vnum)
        assert vnum > num, "%s: verdict frame %d before request %d" % (what, vnum, num)
        assert ver[MECH] == a["mechanism"], "%s: verdict mechanism %r" % (what, ver[MECH])
        if a["username"] is not None:
            assert ver[USER] == a["username"], "%s: verdict username %r" % (what, ver[USER])
        assert ver[REQUEST_IN] == str(num), "%s: request_in %r, request frame %d" % (
            what, ver[REQUEST_IN], num)
        previous = vnum
        out.append((a, req, ver))
    return out


# --- the tests ----------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_attempts_with_keys(tshark, case):
    cap, keys, truth = case
    rows = rows_of(tshark, cap, keys)
    for session in truth["sessions"]:
        check_attempts(session_frames(rows, session), session, keys_given=keys is not None)


@pytest.mark.parametrize("case", CASES)
def test_attempts_without_keys(tshark, case):
    """Without keys the TLS attempts are simply not there: no guesses, no wrong ones."""
    cap, _, truth = case
    rows = rows_of(tshark, cap)
    for session in truth["sessions"]:
        check_attempts(session_frames(rows, session), session, keys_given=False)


@pytest.mark.parametrize("case", CASES)
def test_hashes_crack_with_the_known_password(tshark, case):
    cap, keys, truth = case
    rows = rows_of(tshark, cap, keys)
    checked = 0
    for session in truth["sessions"]:
        for a, req, _ in check_attempts(session_frames(rows, session), session, keys is not None):
            what = "session %s attempt %d (%s)" % (session["client_port"], a["attempt"], a["mechanism"])
            if a["mechanism"] in HASHED and a["password"] is not None:
                assert req[HASH], "%s: no mailsec.auth.hash" % what
                problem = hash_problem(a, req[HASH])
                assert problem is None, "%s: %s" % (what, problem)
                checked += 1
            elif a["password"] is None:
                # Nothing computed from a password went out (an abort): no hash.
                assert not req[HASH], "%s: hash %r from an aborted exchange" % (what, req[HASH])
    if any(a["mechanism"] in HASHED and a["password"] is not None
           for s in truth["sessions"] for a in expected_attempts(s, keys is not None)):
        assert checked


@pytest.mark.parametrize("case", CASES)
def test_session_auth_user(tshark, case):
    """After a successful verdict every frame of the session names the user; before, none."""
    cap, keys, truth = case
    for keys_given, kl in ((keys is not None, keys), (False, None)):
        rows = rows_of(tshark, cap, kl)
        for session in truth["sessions"]:
            frames = session_frames(rows, session)
            shown = check_attempts(frames, session, keys_given)
            logins = [(int(v["frame.number"]), a["username"]) for a, _, v in shown
                      if a["result"] == "success"]
            for f in frames:
                num = int(f["frame.number"])
                before = [user for vnum, user in logins if vnum < num]
                if not before:
                    if not any(vnum == num for vnum, _ in logins):
                        assert f[AUTH_USER] == "", "session %s frame %d: auth_user %r before any login" % (
                            session["client_port"], num, f[AUTH_USER])
                else:
                    assert f[AUTH_USER] == before[-1], "session %s frame %d: auth_user %r, logged in as %r" % (
                        session["client_port"], num, f[AUTH_USER], before[-1])


def parse_credentials_tap(text):
    """(packet, protocol, username) rows of `tshark -q -z credentials`."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^(\d+)\s+(\S+)\s+(\S+)\s", line + " ")
        if m:
            out.append((int(m.group(1)), m.group(2), m.group(3)))
    return out


@pytest.mark.parametrize("case", CASES)
def test_credentials_tap(tshark, case):
    cap, keys, truth = case
    for keys_given, kl in ((keys is not None, keys), (False, None)):
        rows = rows_of(tshark, cap, kl)
        out, _ = tshark.run(cap, ["-q", "-z", "credentials"], keylog=kl)
        listed = parse_credentials_tap(out)
        protocol = TAP_PROTOCOL[truth["protocol"]]
        for session in truth["sessions"]:
            frames = session_frames(rows, session)
            for a, req, _ in check_attempts(frames, session, keys_given):
                if a["username"] is None:
                    continue
                entry = (int(req["frame.number"]), protocol, a["username"])
                assert entry in listed, "session %s attempt %d (%s): %s not in -z credentials:\n%s" % (
                    session["client_port"], a["attempt"], a["mechanism"], entry, out)
            if not keys_given and session["auth"] and all(a["tls"] for a in session["auth"]):
                numbers = {int(f["frame.number"]) for f in frames}
                leaked = [e for e in listed if e[0] in numbers]
                assert not leaked, "session %s: credentials listed without keys: %s" % (
                    session["client_port"], leaked)


def windows(shown):
    """For each attempt: the frames that may carry its client-side alerts,
    (previous verdict, request frame]."""
    out, previous = [], 0
    for a, req, ver in shown:
        out.append((a, previous, int(req["frame.number"])))
        previous = int(ver["frame.number"]) if ver else int(req["frame.number"])
    return out


@pytest.mark.parametrize("case", CASES)
def test_cleartext_alert_on_exposed_attempts_only(tshark, case):
    cap, keys, truth = case
    for keys_given, kl in ((keys is not None, keys), (False, None)):
        rows = rows_of(tshark, cap, kl)
        marks = flagged(tshark, cap, kl, "mailsec.auth.cleartext")
        for session in truth["sessions"]:
            shown = check_attempts(session_frames(rows, session), session, keys_given)
            mine = [n for n, s, d in marks if in_session(session, s, d)]
            spans = windows(shown)
            for n in mine:
                owners = [a for a, lo, hi in spans if lo < n <= hi]
                assert owners and not owners[0]["tls"], \
                    "session %s frame %d: mailsec.auth.cleartext outside an exposed attempt" % (
                        session["client_port"], n)
            for a, lo, hi in spans:
                secret = a["token"] is not None or (a["password"] is not None
                                                    and a["mechanism"] not in CLEARTEXT_OPTIONAL)
                if a["tls"] or not secret:
                    continue
                assert any(lo < n <= hi for n in mine), \
                    "session %s attempt %d (%s): secret in clear, no mailsec.auth.cleartext in frames %d-%d" % (
                        session["client_port"], a["attempt"], a["mechanism"], lo + 1, hi)


@pytest.mark.parametrize("case", CASES)
def test_failed_alert_on_each_failure_verdict(tshark, case):
    cap, keys, truth = case
    rows = rows_of(tshark, cap, keys)
    marks = flagged(tshark, cap, keys, "mailsec.auth.failed")
    for session in truth["sessions"]:
        shown = check_attempts(session_frames(rows, session), session, keys is not None)
        mine = {n for n, s, d in marks if in_session(session, s, d)}
        failures = {int(v["frame.number"]) for a, _, v in shown if a["result"] == "failure"}
        aborts = {int(v["frame.number"]) for a, _, v in shown if a["result"] == "aborted"}
        assert failures <= mine, "session %s: failure verdicts %s without mailsec.auth.failed" % (
            session["client_port"], sorted(failures - mine))
        assert mine <= failures | aborts, "session %s: mailsec.auth.failed on frames %s, not a rejection" % (
            session["client_port"], sorted(mine - failures - aborts))


def failure_timeline(tshark, case):
    """[(verdict frame, session port, result)] of every attempt, in frame order."""
    cap, keys, truth = case
    rows = rows_of(tshark, cap, keys)
    out = []
    for session in truth["sessions"]:
        for a, _, v in check_attempts(session_frames(rows, session), session, keys is not None):
            out.append((int(v["frame.number"]), session["client_port"], a["result"]))
    return sorted(out)


@pytest.mark.parametrize("case", CASES)
def test_brute_force_alerts_only_past_the_threshold(tshark, case):
    """brute_force needs 5 failures (in the session, or from this client: every
    session here comes from 127.0.0.1); success_after_failures needs a success
    after them. Sessions that reach 5 failures must raise them."""
    cap, keys, truth = case
    timeline = failure_timeline(tshark, case)

    def failures_upto(frame, port=None, inclusive=True):
        return sum(1 for n, p, r in timeline if r == "failure" and (n <= frame if inclusive else n < frame)
                   and (port is None or p == port))

    brute = flagged(tshark, cap, keys, "mailsec.auth.brute_force")
    after = flagged(tshark, cap, keys, "mailsec.auth.success_after_failures")
    successes = {(n, p) for n, p, r in timeline if r == "success"}
    for n, s, d in brute:
        port = next((sess["client_port"] for sess in truth["sessions"] if in_session(sess, s, d)), None)
        assert max(failures_upto(n, port), failures_upto(n)) >= BRUTE_FORCE_THRESHOLD, \
            "frame %d: mailsec.auth.brute_force after %d failures in its session, %d in the capture" % (
                n, failures_upto(n, port), failures_upto(n))
    for n, s, d in after:
        port = next((sess["client_port"] for sess in truth["sessions"] if in_session(sess, s, d)), None)
        assert (n, port) in successes, "frame %d: success_after_failures not on a success verdict" % n
        assert max(failures_upto(n, port, False), failures_upto(n, None, False)) >= BRUTE_FORCE_THRESHOLD, \
            "frame %d: success_after_failures after only %d failures" % (n, failures_upto(n, port, False))
    for session in truth["sessions"]:
        port = session["client_port"]
        fails = [n for n, p, r in timeline if p == port and r == "failure"]
        if len(fails) < BRUTE_FORCE_THRESHOLD:
            continue
        fifth = fails[BRUTE_FORCE_THRESHOLD - 1]
        assert any(n >= fifth and in_session(session, s, d) for n, s, d in brute), \
            "session %s: %d failures, no mailsec.auth.brute_force from frame %d on" % (port, len(fails), fifth)
        for n, p, r in timeline:
            if p == port and r == "success" and failures_upto(n, port, False) >= BRUTE_FORCE_THRESHOLD:
                assert n in {m for m, _, _ in after}, \
                    "session %s: success at frame %d after %d failures, no success_after_failures" % (
                        port, n, failures_upto(n, port, False))


@pytest.mark.parametrize("case", BRUTE)
def test_brute_force_capture_alert_severities(tshark, case):
    """The brute-force session (6 wrong passwords, then the right one): the
    alerts are there, with the contract's severities."""
    cap, keys, truth = case
    (session,) = truth["sessions"]
    assert [a["result"] for a in session["auth"]] == ["failure"] * 6 + ["success"]
    timeline = failure_timeline(tshark, case)
    fifth = [n for n, _, r in timeline if r == "failure"][4]
    success = [n for n, _, r in timeline if r == "success"][0]
    sev = "_ws.expert.severity == 0x%08x"
    brute = flagged(tshark, cap, keys, "mailsec.auth.brute_force && " + sev % SEVERITY["warn"])
    assert brute and min(n for n, _, _ in brute) >= fifth, (brute, fifth)
    after = flagged(tshark, cap, keys, "mailsec.auth.success_after_failures && " + sev % SEVERITY["error"])
    assert [n for n, _, _ in after] == [success]
    failed = flagged(tshark, cap, keys, "mailsec.auth.failed && " + sev % SEVERITY["note"])
    assert [n for n, _, _ in failed] == [n for n, _, r in timeline if r == "failure"]
    clear = flagged(tshark, cap, keys, "mailsec.auth.cleartext && " + sev % SEVERITY["warn"])
    assert len(clear) >= 7


@pytest.mark.parametrize("case", CASES)
def test_hide_secrets(tshark, case):
    """-o mailsec.hide_secrets:TRUE: passwords and tokens become ********; the
    rest (users, hashes, results, links) stays as it was."""
    cap, keys, truth = case
    plain = rows_of(tshark, cap, keys)
    hidden = rows_of(tshark, cap, keys, extra=("-o", "mailsec.hide_secrets:TRUE"))
    assert len(plain) == len(hidden)
    names = {a["username"] for s in truth["sessions"] for a in s["auth"]}
    secrets = {a[k] for s in truth["sessions"] for a in s["auth"] for k in ("password", "token")
               if a[k]} - names   # a guessed password may be a user name
    for p, h in zip(plain, hidden):
        for f in AUTH_FIELDS:
            if f in (PASSWORD, TOKEN) and p[f]:
                assert h[f] == HIDDEN, "frame %s: %s %r with hide_secrets" % (p["frame.number"], f, h[f])
            else:
                assert h[f] == p[f], "frame %s: %s %r, without hide_secrets %r" % (
                    p["frame.number"], f, h[f], p[f])
        for f in (USER, AUTHZID, PASSWORD, TOKEN, AUTH_USER):
            assert h[f] not in secrets, "frame %s: %s shows a secret" % (p["frame.number"], f)
    # Passwords and tokens were there to hide in the first place.
    if any(a["sends_password"] and a["password"] or a["token"] for s in truth["sessions"]
           for a in expected_attempts(s, keys is not None)):
        assert any(h[PASSWORD] == HIDDEN or h[TOKEN] == HIDDEN for h in hidden)


@pytest.mark.parametrize("case", CASES)
def test_two_pass_shows_the_same(tshark, case):
    """tshark -2 shows the same mailsec.auth.* (result_in aside: a request frame
    can only point at its verdict once the verdict has been seen), and then
    result_in links every request to its verdict."""
    cap, keys, truth = case
    one = rows_of(tshark, cap, keys)
    two = rows_of(tshark, cap, keys, two_pass=True)
    assert len(one) == len(two)
    for a, b in zip(one, two):
        for f in AUTH_FIELDS:
            if f != RESULT_IN:
                assert a[f] == b[f], "frame %s: %s %r in one pass, %r with -2" % (
                    a["frame.number"], f, a[f], b[f])
    by_number = {r["frame.number"]: r for r in two}
    for session in truth["sessions"]:
        for att, req, ver in check_attempts(session_frames(two, session), session, keys is not None):
            got = by_number[req["frame.number"]][RESULT_IN]
            assert got == ver["frame.number"], "session %s attempt %d: result_in %r, verdict in %s" % (
                session["client_port"], att["attempt"], got, ver["frame.number"])
