#!/usr/bin/env python3
"""Drive real mail clients (Python's smtplib, poplib, imaplib) against the
capture lab's Postfix and Dovecot (started by generate.sh), capture every
scenario with dumpcap, and write NAME.pcapng, NAME.keys (NSS key log, TLS
scenarios only) and NAME.json, the ground truth of what the client did and
what the servers answered.

usage: driver.py OUTDIR [SCENARIO ...]   (default: every scenario)

The ground truth comes from the clients and the servers' replies, never from
a dissector. To add a scenario, add an entry to SCENARIOS.

The SASL mechanisms the libraries lack (DIGEST-MD5, SCRAM-SHA-1/256, NTLM,
XOAUTH2, OAUTHBEARER, GSSAPI, and every POP3 AUTH and IMAP AUTHENTICATE) are
played by hand below (class Mech and its subclasses) over the libraries' own
connections. NTLM, XOAUTH2, OAUTHBEARER and GSSAPI go to captures/peer.py, a
scripted server on 127.0.0.2, since no Debian server here offers them.
"""
import base64
import email.utils
import hashlib
import hmac
import imaplib
import json
import os
import platform
import poplib
import signal
import smtplib
import ssl
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from accounts import load_tokens, load_users  # noqa: E402
import ntlm  # noqa: E402  (captures/ntlm.py: MD4, DES, NTLMSSP)

HOST = "127.0.0.1"
PEER_HOST = "127.0.0.2"           # captures/peer.py, the scripted server
PEER_SERVER = "scripted peer (captures/peer.py)"
SERVER_NAME = "mx.mail.test"      # certificate CN; sent as SNI
CLIENT_NAME = "client.mail.test"  # EHLO name (avoids a DNS lookup of our own name)
DOMAIN = "mail.test"
TIMEOUT = 10
# Ports the plugin knows by default; anything else must be found by content.
WELL_KNOWN_PORTS = {25, 587, 465, 110, 995, 143, 993}


USERS = load_users(HERE / "config" / "users")
TOKENS = load_tokens(HERE / "config" / "oauth-tokens")
# NTLM identity of the client (the peer checks the response against USERS).
NTLM_DOMAIN = "MAILTEST"
NTLM_WORKSTATION = "CLIENT-PC"


# --- scenario table ----------------------------------------------------------
# A scenario is one capture: one or more client sessions against one port.
# A session is a list of steps (VERB, *args); each client class below has a
# do_VERB method for the verbs of its protocol.

# Mechanisms whose client sends the password itself (as opposed to a hash of
# it, a token, or nothing a sniffer could use directly).
SENDS_PASSWORD = {"PLAIN", "LOGIN", "USER/PASS", "IMAP-LOGIN"}
OAUTH = {"XOAUTH2", "OAUTHBEARER"}


def auth(mechanism, user, password=None, expect="success", initial_response=None,
         authzid=None, abort_at=None, form=None, ntlm_version=None, token=None):
    """An authentication step.

    password defaults to the user's real one; give another one (and
    expect="failure") for a failed attempt. initial_response chooses whether
    the first SASL response rides on the AUTH/AUTHENTICATE line (SMTP default:
    only for PLAIN; POP3/IMAP default: no). authzid: PLAIN's authorization
    identity. abort_at=N answers the server's N-th challenge with "*"
    (expect="aborted"). form: how IMAP LOGIN writes its arguments: "quoted"
    (imaplib, the default), "atom", "literal" (password as a synchronising
    literal), "literal-user" (user and password both literals), "literal+"
    (password as a LITERAL+ non-synchronising literal). ntlm_version: 1 or 2
    (default 2). token: the OAuth bearer token (default: the user's valid one
    from config/oauth-tokens; give another one for a failure)."""
    if mechanism in OAUTH:
        password = None
        token = TOKENS.get(user) if token is None else token
    elif password is None and user is not None:
        password = USERS[user]
    return ("AUTH", {
        "mechanism": mechanism,
        "username": user,
        "password": password,
        "expect": expect,
        "initial_response": initial_response,
        "authzid": authzid,
        "abort_at": abort_at,
        "form": form,
        "ntlm_version": (ntlm_version or 2) if mechanism == "NTLM" else None,
        "token": token,
    })


def fail(mechanism, user, password="not-the-password", **kw):
    """A failed attempt: the right user, a wrong password."""
    return auth(mechanism, user, password=password, expect="failure", **kw)


def mail_transaction(sender="bob", recipient="alice"):
    return [("MAIL", f"{sender}@{DOMAIN}"), ("RCPT", f"{recipient}@{DOMAIN}"), ("DATA",)]


def scenario(name, protocol, port, *sessions, implicit_tls=False, host=HOST):
    return {"name": name, "protocol": protocol, "port": port, "host": host,
            "implicit_tls": implicit_tls, "sessions": list(sessions)}


def smtp_session(*steps, starttls=False):
    pre = [("EHLO",), ("STARTTLS",), ("EHLO",)] if starttls else [("EHLO",)]
    return [*pre, *steps, ("QUIT",)]


def pop3_session(*steps, stls=False):
    return [*([("STLS",)] if stls else []), *steps, ("QUIT",)]


def imap_session(*steps, starttls=False):
    return [*([("STARTTLS",)] if starttls else []), *steps, ("LOGOUT",)]


BAD_TOKEN = "ya29.mailsec-lab-token-expired.0000000000"
# What a password-guessing client tries before the right one.
GUESSES = ["123456", "password", "alice", "qwerty", "Wonderland", "wonderland-42"]

SCENARIOS = [
    scenario("smtp-cleartext", "smtp", 25,
             [("EHLO",), *mail_transaction(), ("QUIT",)]),
    scenario("smtp-starttls", "smtp", 587,
             [("EHLO",), ("STARTTLS",), ("EHLO",), auth("PLAIN", "alice"),
              *mail_transaction("alice", "bob"), ("QUIT",)]),
    scenario("smtp-implicit", "smtp", 465,
             [("EHLO",), auth("LOGIN", "alice", initial_response=False),
              *mail_transaction("alice", "bob"), ("QUIT",)],
             implicit_tls=True),
    scenario("smtp-nonstd", "smtp", 2525,
             [("EHLO",), auth("PLAIN", "alice"), *mail_transaction("alice", "bob"), ("QUIT",)]),
    scenario("pop3-cleartext", "pop3", 110,
             [auth("USER/PASS", "alice"), ("STAT",), ("LIST",), ("QUIT",)]),
    # poplib's stls() asks CAPA itself before STLS, so no separate CAPA step.
    scenario("pop3-stls", "pop3", 110,
             [("STLS",), auth("USER/PASS", "alice"), ("STAT",), ("QUIT",)]),
    scenario("pop3-implicit", "pop3", 995,
             [auth("USER/PASS", "alice"), ("STAT",), ("QUIT",)],
             implicit_tls=True),
    # imaplib sends CAPABILITY by itself on connect (and again after STARTTLS).
    scenario("imap-cleartext", "imap", 143,
             [auth("IMAP-LOGIN", "alice"), ("SELECT", "INBOX"), ("LOGOUT",)]),
    scenario("imap-starttls", "imap", 143,
             [("STARTTLS",), auth("IMAP-LOGIN", "alice"), ("SELECT", "INBOX"), ("LOGOUT",)]),
    scenario("imap-implicit", "imap", 993,
             [auth("IMAP-LOGIN", "alice"), ("SELECT", "INBOX"), ("LOGOUT",)],
             implicit_tls=True),
    scenario("imap-nonstd", "imap", 1143,
             [auth("IMAP-LOGIN", "alice"), ("SELECT", "INBOX"), ("LOGOUT",)]),

    # --- credentials: every mechanism, one TCP session per mechanism --------
    # SMTP submission: Postfix passes SASL to Dovecot.
    scenario("smtp-auth-mechs", "smtp", 587,
             smtp_session(fail("PLAIN", "alice"), auth("PLAIN", "alice")),
             smtp_session(auth("PLAIN", "alice", initial_response=False)),
             # Dovecot refuses to let alice act as bob (no master users), then
             # accepts alice's own name as authzid.
             smtp_session(fail("PLAIN", "alice", password=USERS["alice"], authzid="bob"),
                          auth("PLAIN", "alice", authzid="alice")),
             smtp_session(auth("LOGIN", "alice", initial_response=False)),
             smtp_session(auth("LOGIN", "bob", initial_response=True)),   # AUTH LOGIN <b64 user>
             smtp_session(fail("CRAM-MD5", "alice"), auth("CRAM-MD5", "alice")),
             smtp_session(fail("DIGEST-MD5", "alice"), auth("DIGEST-MD5", "alice")),
             smtp_session(fail("SCRAM-SHA-1", "alice", initial_response=True),
                          auth("SCRAM-SHA-1", "alice", initial_response=True)),
             smtp_session(fail("SCRAM-SHA-256", "bob", initial_response=False),
                          auth("SCRAM-SHA-256", "bob", initial_response=True)),
             # "*" at the Password: prompt, after the user name went out.
             smtp_session(auth("LOGIN", "alice", initial_response=False, abort_at=2,
                               expect="aborted"))),
    scenario("smtp-auth-starttls", "smtp", 587,
             smtp_session(fail("CRAM-MD5", "alice"), auth("LOGIN", "alice", initial_response=True),
                          starttls=True),
             smtp_session(auth("SCRAM-SHA-256", "alice", initial_response=True), starttls=True)),
    scenario("smtp-auth-implicit", "smtp", 465,
             smtp_session(fail("PLAIN", "alice"), auth("DIGEST-MD5", "alice")),
             smtp_session(auth("SCRAM-SHA-1", "bob", initial_response=True)),
             implicit_tls=True),
    # One session: six wrong guesses, then the right password.
    scenario("smtp-auth-bruteforce", "smtp", 587,
             smtp_session(*[fail("LOGIN", "alice", password=g, initial_response=False)
                            for g in GUESSES],
                          auth("LOGIN", "alice", initial_response=False))),
    # Mechanisms no Debian server here offers: the scripted peer on 127.0.0.2.
    scenario("smtp-auth-peer", "smtp", 25,
             smtp_session(fail("NTLM", "alice", initial_response=True),
                          auth("NTLM", "alice", initial_response=False)),
             smtp_session(auth("NTLM", "bob", ntlm_version=1, initial_response=True)),
             smtp_session(auth("XOAUTH2", "alice@mail.test", token=BAD_TOKEN, expect="failure",
                               initial_response=True),
                          auth("XOAUTH2", "alice@mail.test", initial_response=True)),
             smtp_session(auth("OAUTHBEARER", "bob@mail.test", token=BAD_TOKEN, expect="failure",
                               initial_response=True),
                          auth("OAUTHBEARER", "bob@mail.test", initial_response=False)),
             smtp_session(auth("GSSAPI", None, expect="failure", initial_response=True)),
             host=PEER_HOST),

    scenario("pop3-auth-mechs", "pop3", 110,
             pop3_session(("CAPA",), fail("USER/PASS", "alice"), auth("USER/PASS", "alice")),
             pop3_session(fail("APOP", "alice"), auth("APOP", "alice")),
             pop3_session(auth("PLAIN", "alice", initial_response=True)),
             pop3_session(auth("PLAIN", "bob", initial_response=False)),
             pop3_session(auth("LOGIN", "alice")),
             pop3_session(fail("CRAM-MD5", "alice"), auth("CRAM-MD5", "alice")),
             pop3_session(fail("DIGEST-MD5", "bob"), auth("DIGEST-MD5", "bob")),
             pop3_session(fail("SCRAM-SHA-1", "alice", initial_response=False),
                          auth("SCRAM-SHA-1", "alice", initial_response=True)),
             pop3_session(fail("SCRAM-SHA-256", "alice", initial_response=True),
                          auth("SCRAM-SHA-256", "alice", initial_response=False)),
             # "*" in answer to the empty "+ " of AUTH PLAIN: nothing was sent.
             pop3_session(auth("PLAIN", None, password=None, initial_response=False, abort_at=1,
                               expect="aborted"))),
    scenario("pop3-auth-stls", "pop3", 110,
             # APOP under TLS still hashes the timestamp of the cleartext greeting.
             pop3_session(fail("APOP", "alice"), auth("USER/PASS", "alice"), stls=True),
             pop3_session(auth("PLAIN", "bob", initial_response=True), stls=True)),
    scenario("pop3-auth-implicit", "pop3", 995,
             pop3_session(auth("CRAM-MD5", "alice")),
             pop3_session(fail("USER/PASS", "bob"), auth("SCRAM-SHA-1", "bob", initial_response=True)),
             implicit_tls=True),
    scenario("pop3-auth-peer", "pop3", 110,
             pop3_session(("CAPA",), fail("NTLM", "bob", initial_response=False),
                          auth("NTLM", "bob", initial_response=True)),
             pop3_session(auth("XOAUTH2", "alice@mail.test", initial_response=True)),
             pop3_session(auth("OAUTHBEARER", "alice@mail.test", token=BAD_TOKEN,
                               expect="failure", initial_response=True)),
             host=PEER_HOST),

    scenario("imap-auth-mechs", "imap", 143,
             imap_session(fail("IMAP-LOGIN", "alice"), auth("IMAP-LOGIN", "alice", form="atom")),
             # imaplib quotes: "Mad\"Hatter\\Tea"
             imap_session(auth("IMAP-LOGIN", "carol")),
             imap_session(auth("IMAP-LOGIN", "alice", form="literal-user")),
             imap_session(fail("IMAP-LOGIN", "bob", form="literal+"),
                          auth("IMAP-LOGIN", "bob", form="literal")),
             imap_session(auth("PLAIN", "alice", initial_response=True)),      # SASL-IR
             imap_session(auth("PLAIN", "bob", authzid="bob", initial_response=False)),
             imap_session(auth("LOGIN", "alice")),
             imap_session(fail("CRAM-MD5", "alice"), auth("CRAM-MD5", "alice")),
             imap_session(fail("DIGEST-MD5", "alice"), auth("DIGEST-MD5", "alice")),
             imap_session(fail("SCRAM-SHA-1", "bob", initial_response=True),
                          auth("SCRAM-SHA-1", "bob", initial_response=False)),
             imap_session(fail("SCRAM-SHA-256", "alice", initial_response=True),
                          auth("SCRAM-SHA-256", "alice", initial_response=True)),
             # "*" in answer to the CRAM-MD5 challenge: nothing was sent.
             imap_session(auth("CRAM-MD5", None, password=None, abort_at=1, expect="aborted"))),
    scenario("imap-auth-starttls", "imap", 143,
             imap_session(fail("PLAIN", "alice", initial_response=True),
                          auth("IMAP-LOGIN", "alice", form="literal"), starttls=True),
             imap_session(auth("CRAM-MD5", "bob"), starttls=True)),
    scenario("imap-auth-implicit", "imap", 993,
             imap_session(auth("LOGIN", "alice")),
             imap_session(fail("SCRAM-SHA-1", "alice", initial_response=True),
                          auth("DIGEST-MD5", "alice")),
             implicit_tls=True),
    scenario("imap-auth-peer", "imap", 143,
             imap_session(fail("NTLM", "alice", initial_response=False),
                          auth("NTLM", "alice", initial_response=True)),
             imap_session(auth("XOAUTH2", "bob@mail.test", token=BAD_TOKEN, expect="failure",
                               initial_response=True),
                          auth("XOAUTH2", "bob@mail.test", initial_response=False)),
             imap_session(auth("OAUTHBEARER", "alice@mail.test", initial_response=True)),
             host=PEER_HOST),
]

STARTTLS_VERBS = {"STARTTLS", "STLS"}


def transport_of(steps, implicit_tls):
    if implicit_tls:
        return "implicit-tls"
    return "starttls" if any(s[0] in STARTTLS_VERBS for s in steps) else "cleartext"


# --- recording ---------------------------------------------------------------

class Session:
    """What one client connection did and what the server answered."""

    def __init__(self, protocol, server_port, transport, server=None):
        self.protocol = protocol
        self.server_port = server_port
        self.transport = transport
        self.server = server   # only when not the capture's usual server
        self.client_port = None
        self.sni = None
        self.greeting = None
        self.offered = False
        self.requested = False
        self.accepted = False
        self.auth = []
        self.commands = []
        self.replies = []   # one list of reply statuses per command
        self.messages = []

    def sent(self, verb):
        self.commands.append(verb)
        self.replies.append([])

    def answered(self, status, text):
        if self.commands:
            self.replies[-1].append(status)
        elif self.greeting is None:
            self.greeting = text

    def to_json(self):
        return {
            "client_port": self.client_port,
            "server_port": self.server_port,
            "protocol": self.protocol,
            "transport": self.transport,
            "sni": self.sni,
            "greeting": self.greeting,
            "starttls": {"offered": self.offered, "requested": self.requested,
                         "accepted": self.accepted},
            "auth": self.auth,
            "commands": self.commands,
            "replies": self.replies,
            "messages": self.messages,
            **({"server": self.server} if self.server else {}),
        }


def under_tls(sock):
    return isinstance(sock, ssl.SSLSocket)


class NamedServerContext(ssl.SSLContext):
    """We connect to an address, but send the server's name as SNI, as a
    client configured with that name would; the libraries pass the address."""

    def wrap_socket(self, sock, *args, server_hostname=None, **kwargs):
        return super().wrap_socket(sock, *args, server_hostname=SERVER_NAME, **kwargs)


def tls_context(keylog):
    ctx = NamedServerContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE   # the lab's certificate is self-signed
    ctx.keylog_filename = str(keylog)
    return ctx


class Failed(Exception):
    """The lab did not behave as the scenario expects: abort the run."""


def check(condition, what):
    if not condition:
        raise Failed(what)


# --- SASL clients ----------------------------------------------------------------
# The mechanisms the libraries lack, by hand. A Mech gets every server
# challenge as the server sent it (base64 text; None for the initial
# response) and returns its answer as raw bytes; sasl_exchange() does the
# base64 and the "*" of an abort, over a protocol's Sasl transport.

PEER_NAME = "peer.mail.test"   # the scripted peer's name, as a client would know it


def b64(data):
    return base64.b64encode(data).decode("ascii")


def md5_hex(data):
    return hashlib.md5(data.encode() if isinstance(data, str) else data).hexdigest()


class Mech:
    name = None
    client_first = True   # the client speaks first (an initial response is possible)

    def __init__(self, spec, service, port):
        self.spec = spec
        self.user = spec["username"]
        self.password = spec["password"]
        self.service = service   # "smtp" | "pop" | "imap" (DIGEST-MD5 digest-uri)
        self.port = port
        self.steps = 0
        self.challenge = None    # what the ground truth records as the server challenge
        self.user_sent = False   # the user name went on the wire
        self.secret_sent = False  # the password, something computed from it, or the token did
        self.server_proof = None  # DIGEST-MD5 rspauth / SCRAM v=: the server knew the password

    def respond(self, text):
        self.steps += 1
        data = base64.b64decode(text, validate=True) if text else b""
        return self.step(self.steps, text, data)

    def step(self, n, text, data):
        raise NotImplementedError

    def sent(self, user=True, secret=True):
        self.user_sent = self.user_sent or user
        self.secret_sent = self.secret_sent or secret


class PlainMech(Mech):
    name = "PLAIN"

    def step(self, n, text, data):
        check(n == 1, "PLAIN: unexpected second challenge")
        self.sent()
        return f"{self.spec['authzid'] or ''}\0{self.user}\0{self.password}".encode()


class LoginMech(Mech):
    name = "LOGIN"
    client_first = False   # but an SMTP client may put the user on the AUTH line

    def step(self, n, text, data):
        if n == 1:
            self.sent(secret=False)
            return self.user.encode()
        check(n == 2, "LOGIN: unexpected third challenge")
        self.sent()
        return self.password.encode()


class CramMd5Mech(Mech):
    name = "CRAM-MD5"
    client_first = False

    def step(self, n, text, data):
        check(n == 1, "CRAM-MD5: unexpected second challenge")
        self.challenge = text
        self.sent()
        digest = hmac.new(self.password.encode(), data, "md5").hexdigest()
        return f"{self.user} {digest}".encode()


def parse_digest_challenge(text):
    """RFC 2831 key=value / key="quoted" list."""
    fields, i = {}, 0
    while i < len(text):
        while i < len(text) and text[i] in " ,":
            i += 1
        eq = text.find("=", i)
        if eq < 0:
            break
        key = text[i:eq].strip().lower()
        i = eq + 1
        if i < len(text) and text[i] == '"':
            i += 1
            value = ""
            while i < len(text) and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                value += text[i]
                i += 1
            i += 1
        else:
            end = text.find(",", i)
            end = len(text) if end < 0 else end
            value = text[i:end].strip()
            i = end
        fields[key] = value
    return fields


class DigestMd5Mech(Mech):
    name = "DIGEST-MD5"
    client_first = False

    def step(self, n, text, data):
        if n == 1:
            self.challenge = text
            ch = parse_digest_challenge(data.decode())
            check("auth" in ch.get("qop", "auth").split(","), "DIGEST-MD5: no qop=auth")
            realm, nonce = ch.get("realm"), ch["nonce"]
            cnonce = b64(os.urandom(15))
            nc, qop = "00000001", "auth"
            uri = f"{self.service}/{SERVER_NAME}"
            authzid = self.spec["authzid"]
            a1 = (hashlib.md5(f"{self.user}:{realm or ''}:{self.password}".encode()).digest()
                  + f":{nonce}:{cnonce}".encode() + (f":{authzid}".encode() if authzid else b""))

            def kd(a2):
                return md5_hex(f"{md5_hex(a1)}:{nonce}:{nc}:{cnonce}:{qop}:{md5_hex(a2)}")

            self.rspauth = kd(f":{uri}")
            parts = ["charset=utf-8", f'username="{self.user}"']
            if realm is not None:
                parts.append(f'realm="{realm}"')
            parts += [f'nonce="{nonce}"', f"nc={nc}", f'cnonce="{cnonce}"',
                      f'digest-uri="{uri}"', f"response={kd('AUTHENTICATE:' + uri)}", f"qop={qop}"]
            if authzid:
                parts.append(f'authzid="{authzid}"')
            self.sent()
            return ",".join(parts).encode()
        check(n == 2, "DIGEST-MD5: unexpected third challenge")
        self.server_proof = parse_digest_challenge(data.decode()).get("rspauth") == self.rspauth
        return b""


class ScramMech(Mech):
    """RFC 5802 / 7677, no channel binding ("n,,")."""
    client_first = True
    hash_name = None

    def step(self, n, text, data):
        h = self.hash_name
        if n == 1:
            self.nonce = b64(os.urandom(18))
            name = self.user.replace("=", "=3D").replace(",", "=2C")
            self.bare = f"n={name},r={self.nonce}"
            self.sent(secret=False)
            return f"n,,{self.bare}".encode()
        if n == 2:
            self.challenge = text
            server_first = data.decode()
            attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
            check(attrs["r"].startswith(self.nonce), f"{self.name}: server nonce does not extend ours")
            salted = hashlib.pbkdf2_hmac(h, self.password.encode(), base64.b64decode(attrs["s"]),
                                         int(attrs["i"]))
            client_key = hmac.new(salted, b"Client Key", h).digest()
            stored_key = hashlib.new(h, client_key).digest()
            without_proof = f"c=biws,r={attrs['r']}"
            auth_message = f"{self.bare},{server_first},{without_proof}".encode()
            signature = hmac.new(stored_key, auth_message, h).digest()
            proof = bytes(a ^ b for a, b in zip(client_key, signature))
            server_key = hmac.new(salted, b"Server Key", h).digest()
            self.server_signature = hmac.new(server_key, auth_message, h).digest()
            self.sent()
            return f"{without_proof},p={b64(proof)}".encode()
        check(n == 3, f"{self.name}: unexpected fourth challenge")
        attrs = dict(kv.split("=", 1) for kv in data.decode().split(","))
        self.server_proof = "v" in attrs and base64.b64decode(attrs["v"]) == self.server_signature
        return b""


class ScramSha1Mech(ScramMech):
    name, hash_name = "SCRAM-SHA-1", "sha1"


class ScramSha256Mech(ScramMech):
    name, hash_name = "SCRAM-SHA-256", "sha256"


class NtlmMech(Mech):
    name = "NTLM"
    FLAGS = (ntlm.NEGOTIATE_UNICODE | ntlm.REQUEST_TARGET | ntlm.NEGOTIATE_NTLM
             | ntlm.NEGOTIATE_ALWAYS_SIGN | ntlm.NEGOTIATE_TARGET_INFO | ntlm.NEGOTIATE_VERSION
             | ntlm.NEGOTIATE_128 | ntlm.NEGOTIATE_56)

    def step(self, n, text, data):
        v2 = self.spec["ntlm_version"] == 2
        # Extended session security would turn an NTLMv1 response into an
        # NTLM2 session response; a plain NTLMv1 client does not ask for it.
        flags = self.FLAGS | (ntlm.NEGOTIATE_EXTENDED_SESSIONSECURITY if v2 else 0)
        if n == 1:
            return ntlm.negotiate_message(flags)
        check(n == 2, "NTLM: unexpected third challenge")
        _, server_challenge, target_info = ntlm.parse_challenge(data)
        self.challenge = server_challenge.hex()
        if v2:
            filetime = (int(time.time()) + 11644473600) * 10**7
            client_challenge = os.urandom(8)
            blob = ntlm.ntlmv2_blob(filetime, client_challenge, target_info)
            nt, _ = ntlm.ntlmv2_response(self.password, self.user, NTLM_DOMAIN, server_challenge, blob)
            lm = ntlm.lmv2_response(self.password, self.user, NTLM_DOMAIN, server_challenge,
                                    client_challenge)
        else:
            nt = ntlm.ntlmv1_response(self.password, server_challenge)
            lm = nt   # no LM hash: the NT response is repeated (MS-NLMP 3.3.1)
        self.sent()
        return ntlm.authenticate_message(flags, lm, nt, NTLM_DOMAIN, self.user, NTLM_WORKSTATION)


class XOAuth2Mech(Mech):
    name = "XOAUTH2"

    def step(self, n, text, data):
        if n == 1:
            self.sent()
            return f"user={self.user}\x01auth=Bearer {self.spec['token']}\x01\x01".encode()
        # The server's error (a JSON document) is answered with an empty line.
        check(n == 2, "XOAUTH2: unexpected third challenge")
        return b""


class OAuthBearerMech(Mech):
    name = "OAUTHBEARER"

    def step(self, n, text, data):
        if n == 1:
            self.sent()
            return (f"n,a={self.user},\x01host={PEER_NAME}\x01port={self.port}\x01"
                    f"auth=Bearer {self.spec['token']}\x01\x01").encode()
        # RFC 7628 3.2.3: the error challenge is acknowledged with a lone ^A.
        check(n == 2, "OAUTHBEARER: unexpected third challenge")
        return b"\x01"


class GssapiMech(Mech):
    """Not Kerberos: a GSS-API initial context token of the right outer shape
    (RFC 2743 3.1, Kerberos V5 OID, AP-REQ token id) around filler bytes. The
    peer rejects it; the user name never appears in clear in GSSAPI anyway."""
    name = "GSSAPI"

    def step(self, n, text, data):
        if n == 1:
            ap_req = b"\x6e\x81\x80" + bytes(range(0x80))
            inner = b"\x06\x09\x2a\x86\x48\x86\xf7\x12\x01\x02\x02" + b"\x01\x00" + ap_req
            self.sent(user=False)
            return b"\x60\x81" + bytes([len(inner)]) + inner
        return b""


MECHS = {m.name: m for m in (PlainMech, LoginMech, CramMd5Mech, DigestMd5Mech, ScramSha1Mech,
                             ScramSha256Mech, NtlmMech, XOAuth2Mech, OAuthBearerMech, GssapiMech)}


def sasl_exchange(transport, mech, initial_response, abort_at):
    """Run one AUTH/AUTHENTICATE exchange; returns the result word."""
    ir = None
    if initial_response:
        ir = b64(mech.respond(None)) or "="
    kind, value = transport.start(mech.name, ir)
    n, aborted = 0, False
    while kind == "challenge":
        n += 1
        check(n <= 6, f"{mech.name}: too many challenges")
        if abort_at == n:
            aborted = True
            kind, value = transport.cont("*")
            break
        kind, value = transport.cont(b64(mech.respond(value)))
    check(kind == "final", f"{mech.name}: server kept challenging after the abort")
    return transport.verdict(value, aborted)


class SmtpSasl:
    def __init__(self, conn):
        self.conn = conn

    def start(self, mech, ir):
        self.conn.in_sasl = True
        self.conn.putcmd("AUTH", mech if ir is None else f"{mech} {ir}")
        return self.reply()

    def cont(self, line):
        self.conn.send(line + "\r\n")
        return self.reply()

    def reply(self):
        code, msg = self.conn.getreply()
        if code == 334:
            return "challenge", msg.decode("ascii")
        return "final", code

    def verdict(self, code, aborted):
        self.conn.in_sasl = False
        if code == 235:
            return "success"
        if aborted and code == 501:
            return "aborted"
        check(code == 535, f"AUTH answered {code}")
        return "failure"


class PopSasl:
    def __init__(self, conn, session):
        self.conn = conn
        self.session = session

    def start(self, mech, ir):
        self.conn._putcmd(f"AUTH {mech}" if ir is None else f"AUTH {mech} {ir}")
        return self.reply()

    def cont(self, line):
        self.conn._putline(line.encode("ascii"))
        return self.reply()

    def reply(self):
        line = self.conn._getline()[0].decode("ascii", "replace")
        status = line.split(" ", 1)[0]
        self.session.answered(status, line)
        if status == "+":
            return "challenge", line[2:]
        self.text = line
        return "final", status

    def verdict(self, status, aborted):
        if status == "+OK":
            return "success"
        check(status == "-ERR", f"AUTH answered {status}")
        if aborted:
            # POP3 has one negative answer; the text tells an abort apart.
            check("abort" in self.text.lower(), f"AUTH abort answered {self.text!r}")
            return "aborted"
        return "failure"


class ImapSasl:
    def __init__(self, client):
        self.client = client

    def start(self, mech, ir):
        self.tag = self.client.new_tag("AUTHENTICATE")
        line = f"AUTHENTICATE {mech}" if ir is None else f"AUTHENTICATE {mech} {ir}"
        self.client.conn.send(self.tag + b" " + line.encode("ascii") + b"\r\n")
        return self.reply()

    def cont(self, line):
        self.client.conn.send(line.encode("ascii") + b"\r\n")
        return self.reply()

    def reply(self):
        kind, value = self.client.read_until_tagged(self.tag, continuation_ok=True)
        if kind == "continuation":
            return "challenge", value
        return "final", value

    def verdict(self, status, aborted):
        if status == "OK":
            self.client.conn.state = "AUTH"
            return "success"
        if aborted and status == "BAD":
            return "aborted"
        check(status == "NO", f"AUTHENTICATE answered {status}")
        return "failure"


# --- clients -----------------------------------------------------------------
# Each library class gets a mixin that records, at the library's own
# send/receive hooks, every command it puts on the wire and every reply status.

class _SmtpRecording:
    def __init__(self, session, **kwargs):
        self.session = session
        self.in_sasl = False
        self.challenges = []   # text of each 334 during AUTH, as sent
        super().__init__(local_hostname=CLIENT_NAME, timeout=TIMEOUT, **kwargs)

    def putcmd(self, cmd, args=""):
        verb = cmd.upper()
        # The base64 lines that follow AUTH go through putcmd too; they are
        # SASL data, not commands.
        if verb == "AUTH":
            self.in_sasl = True
            self.session.sent(verb)
        elif not self.in_sasl:
            self.session.sent(verb)
        super().putcmd(cmd, args)

    def getreply(self):
        code, msg = super().getreply()
        self.session.answered(str(code), f"{code} {msg.decode(errors='replace')}")
        if self.in_sasl and code == 334:
            self.challenges.append(msg.decode("ascii"))
        return code, msg


class RecordingSMTP(_SmtpRecording, smtplib.SMTP):
    pass


class RecordingSMTP_SSL(_SmtpRecording, smtplib.SMTP_SSL):
    pass


class _PopRecording:
    def __init__(self, session, *args, **kwargs):
        self.session = session
        super().__init__(*args, timeout=TIMEOUT, **kwargs)

    def _putcmd(self, line):
        self.session.sent(line.split(" ", 1)[0].upper())
        super()._putcmd(line)

    def _getresp(self):
        try:
            resp = super()._getresp()
        except poplib.error_proto as e:
            line = e.args[0]
            self.session.answered(line.split(b" ", 1)[0].decode(errors="replace"),
                                  line.decode(errors="replace"))
            raise
        self.session.answered(resp.split(b" ", 1)[0].decode(), resp.decode(errors="replace"))
        return resp

    def capa(self):
        caps = super().capa()
        if not under_tls(self.sock) and "STLS" in caps:
            self.session.offered = True
        return caps


class RecordingPOP3(_PopRecording, poplib.POP3):
    pass


class RecordingPOP3_SSL(_PopRecording, poplib.POP3_SSL):
    pass


class _ImapRecording:
    def __init__(self, session, *args, **kwargs):
        self.session = session
        super().__init__(*args, timeout=TIMEOUT, **kwargs)
        self.session.greeting = self.welcome.decode(errors="replace")

    def _command(self, name, *args):
        self.session.sent(name)
        return super()._command(name, *args)

    def _command_complete(self, name, tag):
        try:
            typ, data = super()._command_complete(name, tag)
        except self.abort:
            self.session.answered("BYE", None)
            raise
        except self.error:
            self.session.answered("BAD", None)
            raise
        self.session.answered(typ, None)
        return typ, data

    def _get_capabilities(self):
        super()._get_capabilities()
        if not under_tls(self.sock) and "STARTTLS" in self.capabilities:
            self.session.offered = True


class RecordingIMAP4(_ImapRecording, imaplib.IMAP4):
    pass


class RecordingIMAP4_SSL(_ImapRecording, imaplib.IMAP4_SSL):
    pass


class Client:
    """One connection; do_VERB runs a step through the library's own API."""

    library = None

    def __init__(self, session, ctx, implicit_tls, scenario_name, host=HOST):
        self.s = session
        self.ctx = ctx
        self.name = scenario_name
        self.host = host
        self.conn = self.connect(implicit_tls)
        self.s.client_port = self.conn.sock.getsockname()[1]
        if implicit_tls:
            self.s.sni = SERVER_NAME

    def run(self, step):
        getattr(self, "do_" + step[0])(*step[1:])

    def record_auth(self, spec, result, tls, initial_response=None, challenge=None, mech=None):
        """One attempt of the ground truth. result is the server's verdict:
        "success", "failure" or "aborted". With a Mech, what actually went on
        the wire decides whether the user name and password are recorded (an
        abort may come before either)."""
        m = spec["mechanism"]
        user_sent = mech.user_sent if mech else True
        secret_sent = mech.secret_sent if mech else True
        if mech:
            challenge = mech.challenge
            # A server that says yes must have proved it knows the password.
            if result == "success" and isinstance(mech, (ScramMech, DigestMd5Mech)):
                check(mech.server_proof, f"{self.name}: {m} server proof did not verify")
        entry = {
            "attempt": len(self.s.auth) + 1,
            "mechanism": m,
            "username": spec["username"] if user_sent else None,
            "authzid": spec["authzid"] if user_sent else None,
            "password": spec["password"] if secret_sent else None,
            "sends_password": m in SENDS_PASSWORD,
            "token": spec["token"] if secret_sent and m in OAUTH else None,
            "result": result,
            "tls": tls,
            "initial_response": initial_response,
            "ntlm_version": spec["ntlm_version"],
            "challenge": challenge,
        }
        if m == "IMAP-LOGIN":
            entry["form"] = spec["form"] or "quoted"
        if m == "NTLM":
            entry["ntlm_domain"] = NTLM_DOMAIN
            entry["ntlm_workstation"] = NTLM_WORKSTATION
        self.s.auth.append(entry)
        check(result == spec["expect"],
              f"{self.name}: {m} as {spec['username']} was {result}, should be {spec['expect']}")

    def make_mech(self, spec, service):
        return MECHS[spec["mechanism"]](spec, service, self.s.server_port)

    def starttls_done(self, verb, accepted):
        # The libraries give up without sending anything when the server's
        # capabilities do not list the upgrade.
        self.s.requested = verb in self.s.commands
        self.s.accepted = accepted
        if accepted:
            self.s.sni = SERVER_NAME
        check(accepted, f"{self.name}: STARTTLS refused")


class SmtpClient(Client):
    library = "python3 smtplib"

    def connect(self, implicit_tls):
        if implicit_tls:
            conn = RecordingSMTP_SSL(self.s, context=self.ctx)
        else:
            conn = RecordingSMTP(self.s)
        conn.connect(self.host, self.s.server_port)
        self.envelope = None
        return conn

    def do_EHLO(self):
        code, _ = self.conn.ehlo()
        check(code == 250, f"{self.name}: EHLO answered {code}")
        if not under_tls(self.conn.sock) and self.conn.has_extn("starttls"):
            self.s.offered = True

    def do_STARTTLS(self):
        try:
            self.conn.starttls(context=self.ctx)
            accepted = True
        except (smtplib.SMTPResponseException, smtplib.SMTPNotSupportedError):
            accepted = False
        self.starttls_done("STARTTLS", accepted)

    def do_AUTH(self, spec):
        c = self.conn
        mechanism = spec["mechanism"]
        initial = spec["initial_response"]
        if initial is None:
            initial = mechanism == "PLAIN"
        if not MECHS[mechanism].client_first and mechanism != "LOGIN":
            initial = False
        tls = under_tls(c.sock)
        c.challenges = []
        if mechanism in ("PLAIN", "LOGIN", "CRAM-MD5") and not spec["authzid"] \
                and not spec["abort_at"]:
            # smtplib's own mechanism implementations.
            c.user, c.password = spec["username"], spec["password"]
            authobject = {"PLAIN": c.auth_plain, "LOGIN": c.auth_login,
                          "CRAM-MD5": c.auth_cram_md5}[mechanism]
            try:
                c.auth(mechanism, authobject, initial_response_ok=initial)
                result = "success"
            except smtplib.SMTPAuthenticationError as e:
                check(e.smtp_code == 535, f"{self.name}: AUTH answered {e.smtp_code}")
                result = "failure"
            finally:
                c.in_sasl = False
            challenge = c.challenges[0] if mechanism == "CRAM-MD5" else None
            self.record_auth(spec, result, tls, initial, challenge=challenge)
        else:
            mech = self.make_mech(spec, "smtp")
            result = sasl_exchange(SmtpSasl(c), mech, initial, spec["abort_at"])
            self.record_auth(spec, result, tls, initial, mech=mech)

    def do_MAIL(self, sender):
        code, _ = self.conn.mail(sender)
        check(code == 250, f"{self.name}: MAIL FROM answered {code}")
        self.envelope = {"mail_from": sender, "rcpt_to": []}

    def do_RCPT(self, recipient):
        code, _ = self.conn.rcpt(recipient)
        check(code == 250, f"{self.name}: RCPT TO answered {code}")
        self.envelope["rcpt_to"].append(recipient)

    def do_DATA(self):
        env = self.envelope
        sender = env["mail_from"]
        header_from = f"{sender.split('@')[0].capitalize()} <{sender}>"
        subject = f"mailsec capture {self.name}"
        body = "\r\n".join([
            f"From: {header_from}",
            f"To: {', '.join(env['rcpt_to'])}",
            f"Subject: {subject}",
            f"Date: {email.utils.formatdate()}",
            f"Message-ID: {email.utils.make_msgid(domain=CLIENT_NAME)}",
            "",
            "This message was sent by captures/driver.py to a throwaway Postfix",
            "so that the mailsec plugin has a real SMTP session to dissect.",
        ])
        code, _ = self.conn.data(body)   # raises SMTPDataError unless 354 then 250
        self.s.messages.append({**env, "header_from": header_from, "subject": subject,
                                "accepted": code == 250})

    def do_QUIT(self):
        self.conn.quit()


class Pop3Client(Client):
    library = "python3 poplib"

    def connect(self, implicit_tls):
        if implicit_tls:
            return RecordingPOP3_SSL(self.s, self.host, self.s.server_port, context=self.ctx)
        return RecordingPOP3(self.s, self.host, self.s.server_port)

    def do_CAPA(self):
        self.conn.capa()

    def do_STLS(self):
        try:
            self.conn.stls(self.ctx)
            accepted = True
        except poplib.error_proto:
            accepted = False
        self.starttls_done("STLS", accepted)

    def do_AUTH(self, spec):
        c = self.conn
        tls = under_tls(c.sock)
        mechanism = spec["mechanism"]
        if mechanism in ("USER/PASS", "APOP"):
            challenge = None
            try:
                if mechanism == "USER/PASS":
                    c.user(spec["username"])
                    c.pass_(spec["password"])
                else:
                    # poplib hashes the greeting's <timestamp> (RFC 1939).
                    challenge = c.timestamp.match(c.welcome).group(1).decode()
                    c.apop(spec["username"], spec["password"])
                result = "success"
            except poplib.error_proto:
                result = "failure"
            self.record_auth(spec, result, tls, challenge=challenge)
        else:
            # RFC 5034 AUTH, by hand: poplib has none.
            initial = bool(spec["initial_response"]) and MECHS[mechanism].client_first
            mech = self.make_mech(spec, "pop")
            result = sasl_exchange(PopSasl(c, self.s), mech, initial, spec["abort_at"])
            self.record_auth(spec, result, tls, initial, mech=mech)

    def do_STAT(self):
        self.conn.stat()

    def do_LIST(self):
        self.conn.list()

    def do_QUIT(self):
        self.conn.quit()


class ImapClient(Client):
    library = "python3 imaplib"

    def connect(self, implicit_tls):
        if implicit_tls:
            return RecordingIMAP4_SSL(self.s, self.host, self.s.server_port, ssl_context=self.ctx)
        return RecordingIMAP4(self.s, self.host, self.s.server_port)

    def do_CAPABILITY(self):
        self.conn.capability()

    def do_STARTTLS(self):
        try:
            self.conn.starttls(ssl_context=self.ctx)
            accepted = True
        except imaplib.IMAP4.error:
            accepted = False
        self.starttls_done("STARTTLS", accepted)

    def do_AUTH(self, spec):
        c = self.conn
        user, password = spec["username"], spec["password"]
        tls = under_tls(c.sock)
        mechanism = spec["mechanism"]
        if mechanism == "IMAP-LOGIN":
            form = spec["form"] or "quoted"
            if form == "quoted":
                # imaplib writes the user as it is and quotes the password.
                try:
                    c.login(user, password)
                    result = "success"
                except imaplib.IMAP4.error:
                    result = "failure"
            else:
                result = self.raw_login(user, password, form)
            self.record_auth(spec, result, tls)
        else:
            # AUTHENTICATE by hand: imaplib never sends a SASL-IR initial response.
            initial = bool(spec["initial_response"]) and MECHS[mechanism].client_first
            mech = self.make_mech(spec, "imap")
            result = sasl_exchange(ImapSasl(self), mech, initial, spec["abort_at"])
            self.record_auth(spec, result, tls, initial, mech=mech)

    # Raw commands over imaplib's own connection (same socket, buffer and tags).

    def new_tag(self, verb):
        tag = self.conn._new_tag()
        self.conn.tagged_commands.pop(tag, None)   # we read its completion ourselves
        self.s.sent(verb)
        return tag

    def read_until_tagged(self, tag, continuation_ok=False):
        """("continuation", text after "+ ") or ("tagged", OK|NO|BAD); untagged lines are skipped."""
        while True:
            line = self.conn._get_line()
            if line.startswith(b"+"):
                check(continuation_ok, f"{self.name}: unexpected continuation {line!r}")
                return "continuation", line[2:].decode("ascii")
            if line.startswith(tag + b" "):
                status = line.split(b" ", 2)[1].decode("ascii")
                self.s.answered(status, None)
                return "tagged", status

    def raw_login(self, user, password, form):
        """LOGIN with the arguments as an atom or as literals (RFC 3501 / 7888)."""
        c = self.conn
        u, p = user.encode(), password.encode()
        tag = self.new_tag("LOGIN")
        if form == "atom":
            check(all(ch > 0x20 and ch < 0x7f and ch not in b'(){%*"\\]' for ch in p),
                  f"{self.name}: password is not an atom")
            c.send(tag + b" LOGIN " + u + b" " + p + b"\r\n")
        elif form == "literal":
            c.send(tag + b" LOGIN " + u + b" {%d}\r\n" % len(p))
            self.read_until_tagged(tag, continuation_ok=True)
            c.send(p + b"\r\n")
        elif form == "literal-user":
            c.send(tag + b" LOGIN {%d}\r\n" % len(u))
            self.read_until_tagged(tag, continuation_ok=True)
            c.send(u + b" {%d}\r\n" % len(p))
            self.read_until_tagged(tag, continuation_ok=True)
            c.send(p + b"\r\n")
        elif form == "literal+":
            check("LITERAL+" in c.capabilities, f"{self.name}: no LITERAL+")
            c.send(tag + b" LOGIN " + u + b" {%d+}\r\n" % len(p) + p + b"\r\n")
        else:
            raise Failed(f"{self.name}: unknown LOGIN form {form}")
        kind, status = self.read_until_tagged(tag)
        if status == "OK":
            c.state = "AUTH"
            return "success"
        check(status == "NO", f"{self.name}: LOGIN answered {status}")
        return "failure"

    def do_SELECT(self, mailbox):
        typ, _ = self.conn.select(mailbox)
        check(typ == "OK", f"{self.name}: SELECT answered {typ}")

    def do_LOGOUT(self):
        self.conn.logout()


CLIENTS = {"smtp": SmtpClient, "pop3": Pop3Client, "imap": ImapClient}


# --- capture -----------------------------------------------------------------

class Capture:
    """dumpcap on lo for one TCP port (of one address, for the scripted peer,
    which shares its port numbers with the real servers), running for the
    duration of a with block."""

    def __init__(self, path, port, host=None):
        self.path = path
        self.port = port
        self.filter = f"tcp port {port}" + (f" and host {host}" if host else "")

    def __enter__(self):
        self.proc = subprocess.Popen(
            ["dumpcap", "-i", "lo", "-f", self.filter, "-w", str(self.path), "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        # dumpcap writes the file header once the interface is open.
        while not (self.path.exists() and self.path.stat().st_size > 0):
            if self.proc.poll() is not None:
                raise Failed(f"dumpcap exited: {self.proc.stderr.read().decode(errors='replace')}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise Failed("dumpcap did not start capturing")
            time.sleep(0.05)
        time.sleep(1)
        return self

    def __exit__(self, *exc):
        time.sleep(1)   # let the last FIN/ACKs land
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Failed("dumpcap did not stop on SIGINT")
        if self.proc.returncode != 0 and exc[0] is None:
            raise Failed(f"dumpcap failed: {err.decode(errors='replace')}")
        return False


# --- main ----------------------------------------------------------------------

def server_versions():
    postfix = subprocess.run(["postconf", "-dh", "mail_version"],
                             capture_output=True, text=True, check=True).stdout.strip()
    dovecot = subprocess.run(["dovecot", "--version"],
                             capture_output=True, text=True, check=True).stdout.split()[0]
    peer = subprocess.run([sys.executable, str(HERE / "peer.py"), "--version"],
                          capture_output=True, text=True, check=True).stdout.strip()
    return {"smtp": ("postfix", postfix), "pop3": ("dovecot", dovecot),
            "imap": ("dovecot", dovecot), "peer": (PEER_SERVER, peer)}


def wait_for_delivery():
    """Let Postfix deliver what the SMTP scenarios sent before the POP3/IMAP
    ones look at the mailboxes, so their answers do not depend on timing."""
    conf = os.environ.get("MAILSEC_POSTFIX_CONFIG")
    if not conf:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        queue = subprocess.run(["postqueue", "-c", conf, "-j"],
                               capture_output=True, text=True).stdout
        if not queue.strip():
            return
        time.sleep(0.2)
    print("driver.py: warning: Postfix queue not empty after 20 s", file=sys.stderr)


def run_scenario(sc, outdir, versions):
    name = sc["name"]
    pcap, keys, truth = (outdir / f"{name}{ext}" for ext in (".pcapng", ".keys", ".json"))
    for stale in (pcap, keys, truth):
        stale.unlink(missing_ok=True)   # the key log is opened for append

    transport = transport_of([s for steps in sc["sessions"] for s in steps], sc["implicit_tls"])
    ctx = tls_context(keys) if transport != "cleartext" else None
    client_class = CLIENTS[sc["protocol"]]
    peer = sc["host"] == PEER_HOST
    sessions = []
    try:
        with Capture(pcap, sc["port"], sc["host"] if peer else None):
            for steps in sc["sessions"]:
                session = Session(sc["protocol"], sc["port"],
                                  transport_of(steps, sc["implicit_tls"]),
                                  server=PEER_SERVER if peer else None)
                client = client_class(session, ctx, sc["implicit_tls"], name, sc["host"])
                for step in steps:
                    client.run(step)
                sessions.append(session)
    except BaseException:
        # No capture without its ground truth.
        for partial in (pcap, keys):
            partial.unlink(missing_ok=True)
        raise

    server, version = versions["peer" if peer else sc["protocol"]]
    doc = {
        "name": name,
        "generator": "captures/driver.py",
        "capture": pcap.name,
        "server": server,
        "server_version": version,
        "client": client_class.library,
        "client_version": f"Python {platform.python_version()}, {ssl.OPENSSL_VERSION}",
        "protocol": sc["protocol"],
        "server_port": sc["port"],
        "transport": transport,
        "expect_detected_by": "port" if sc["port"] in WELL_KNOWN_PORTS else "heuristic",
        "keylog": keys.name if ctx else None,
        "sessions": [s.to_json() for s in sessions],
    }
    truth.write_text(json.dumps(doc, indent=2) + "\n")
    for f in (pcap, keys, truth):
        if f.exists():
            f.chmod(0o644)
    if sc["protocol"] == "smtp" and not peer:
        wait_for_delivery()
    print(f"{name}: {pcap.stat().st_size} bytes, {len(sessions)} session(s)")


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    outdir = Path(argv[1]).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    wanted = set(argv[2:])
    unknown = wanted - {sc["name"] for sc in SCENARIOS}
    if unknown:
        sys.exit(f"driver.py: unknown scenario(s): {', '.join(sorted(unknown))}")
    versions = server_versions()
    # SMTP first: the POP3/IMAP scenarios then find the delivered messages.
    for sc in sorted(SCENARIOS, key=lambda sc: sc["protocol"] != "smtp"):
        if not wanted or sc["name"] in wanted:
            run_scenario(sc, outdir, versions)


if __name__ == "__main__":
    main(sys.argv)
