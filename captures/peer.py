#!/usr/bin/env python3
"""A SCRIPTED PEER for the capture lab, not a mail server.

No Debian server in the lab offers SASL NTLM, XOAUTH2, OAUTHBEARER or GSSAPI,
so this small program plays the server side of those logins for SMTP (port
25), IMAP (143) and POP3 (110) on 127.0.0.2, while Postfix and Dovecot keep
127.0.0.1. It speaks just enough of each protocol for Python's smtplib,
imaplib and poplib (greeting, EHLO / CAPABILITY / CAPA, AUTH / AUTHENTICATE,
NOOP, QUIT / LOGOUT) and nothing of mail itself, plus SMTP EXPN, which it
answers 250 with the members of a list (Postfix never does: it has no EXPN). Captures made against it say
so in their ground truth: "server": "scripted peer (captures/peer.py)".

It checks what it is sent for real:
  NTLM         NTLMv2 (and NTLMv1) responses against the password of the user
               named in the AUTHENTICATE message (config/users), with a random
               8-byte server challenge per attempt;
  XOAUTH2,
  OAUTHBEARER  the bearer token against config/oauth-tokens; a wrong one gets
               the mechanism's JSON error challenge, then a failure;
  GSSAPI       nothing: one opaque blob exchange, then always a failure.
And EXPN (SMTP): a list of LISTS is expanded (250, one line per member), a
user of config/users is answered with that one address (250), anything else
with 550 5.1.1.

It also plays the STARTTLS / TLS behaviours no correctly configured Postfix
or Dovecot shows, each on a loopback address of its own and the protocols'
standard ports (POSTURE_PEERS below), so that their captures are recognised
by port like the real servers' ones:
  stripping             127.0.0.4  SMTP 587, IMAP 143, POP3 110: STARTTLS / STLS
                        is answered yes and the session simply goes on in
                        clear, as a client behind a stripping middlebox does;
  preauth               127.0.0.5  IMAP 143: a PREAUTH greeting in clear that
                        lists STARTTLS, whose STARTTLS then gets BAD (RFC 3501:
                        not in the authenticated state);
  alert                 127.0.0.6  IMAP 143: LOGIN answered "NO [ALERT] ..." in
                        clear;
  capability-stripping  127.0.0.7  SMTP 587, IMAP 143: the 1st, 3rd, ...
                        connection to a port is offered STARTTLS (and gets real
                        TLS), the 2nd, 4th, ... is not;
  response-buffering    127.0.0.8  SMTP 587, IMAP 143: after STARTTLS the peer
                        waits for one more client line, then says yes, does
                        real TLS and answers that line inside TLS.
Their logins are PLAIN / LOGIN / USER+PASS checked against config/users; SMTP
mail is acknowledged and thrown away. TLS uses --tls-cert / --tls-key
(generate.sh passes the lab's self-signed certificate).

usage: peer.py [--host 127.0.0.2] [--smtp 25] [--imap 143] [--pop3 110]
               [--tls-cert FILE --tls-key FILE] [--no-posture]
       peer.py --version | --listeners
Stops on SIGTERM or SIGINT. Logs one line per connection and attempt on stderr.
"""
import argparse
import base64
import binascii
import json
import os
import signal
import socketserver
import ssl
import struct
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from accounts import load_tokens, load_users  # noqa: E402
import ntlm  # noqa: E402

VERSION = "mailsec-peer 1.2"   # 1.1: SMTP EXPN; 1.2: the STARTTLS / TLS behaviours
NAME = "peer.mail.test"
BANNER = "mailsec scripted peer (captures/peer.py)"
MECHANISMS = ["NTLM", "XOAUTH2", "OAUTHBEARER", "GSSAPI"]
TIMEOUT = 30
DOMAIN = "mail.test"
# EXPN: mailing lists and their members, as RFC 5321 3.5.1 writes them.
LISTS = {
    "staff": ["Alice <alice@mail.test>", "Bob <bob@mail.test>", "Carol <carol@mail.test>"],
    "admins": ["Bob <bob@mail.test>"],
}


USERS = load_users(HERE / "config" / "users")
TOKENS = load_tokens(HERE / "config" / "oauth-tokens")


def log(*parts):
    print("peer:", *parts, file=sys.stderr, flush=True)


# --- server side of the mechanisms ---------------------------------------------
# step(data) gets each decoded client message and returns ("challenge", bytes),
# ("success", user) or ("failure", user).

class NtlmServer:
    def __init__(self):
        self.server_challenge = None

    def step(self, data):
        kind = ntlm.message_type(data)
        if self.server_challenge is None:
            if kind != 1:
                return "failure", None
            client_flags = struct.unpack("<I", data[12:16])[0]
            keep = (ntlm.NEGOTIATE_UNICODE | ntlm.NEGOTIATE_NTLM | ntlm.NEGOTIATE_ALWAYS_SIGN
                    | ntlm.NEGOTIATE_EXTENDED_SESSIONSECURITY | ntlm.NEGOTIATE_128
                    | ntlm.NEGOTIATE_56)
            flags = (client_flags & keep) | ntlm.REQUEST_TARGET | ntlm.TARGET_TYPE_DOMAIN \
                | ntlm.NEGOTIATE_TARGET_INFO | ntlm.NEGOTIATE_VERSION
            self.server_challenge = os.urandom(8)
            filetime = (int(time.time()) + 11644473600) * 10**7
            info = ntlm.av_pairs([(2, "MAILTEST"), (1, "PEER"), (4, "mail.test"),
                                  (3, NAME), (7, struct.pack("<Q", filetime))])
            return "challenge", ntlm.challenge_message(flags, self.server_challenge, "MAILTEST", info)
        if kind != 3:
            return "failure", None
        try:
            auth = ntlm.parse_authenticate(data)
        except (ValueError, struct.error, UnicodeDecodeError):
            return "failure", None
        password = next((p for u, p in USERS.items() if u.lower() == auth["user"].lower()), None)
        ok = password is not None and ntlm.verify(auth, password, self.server_challenge)
        version = 1 if len(auth["nt"]) == 24 else 2
        log(f"NTLMv{version} {auth['domain']}\\{auth['user']} from {auth['workstation']}:",
            "verified" if ok else "wrong response")
        return ("success" if ok else "failure"), auth["user"]


class BearerServer:
    """XOAUTH2 and OAUTHBEARER: a token check, and the error challenge on failure."""

    def __init__(self, mech):
        self.mech = mech
        self.refused = None

    def parse(self, data):
        text = data.decode("utf-8", "replace")
        if self.mech == "XOAUTH2":
            kv = dict(p.split("=", 1) for p in text.split("\x01") if "=" in p)
            user = kv.get("user")
        else:
            gs2, _, rest = text.partition("\x01")
            user = next((a[2:] for a in gs2.split(",") if a.startswith("a=")), None)
            kv = dict(p.split("=", 1) for p in rest.split("\x01") if "=" in p)
        auth = kv.get("auth", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else None
        return user, token

    def step(self, data):
        if self.refused is not None:
            # The client acknowledged the error challenge (empty line / ^A).
            return "failure", self.refused
        user, token = self.parse(data)
        if user is not None and token is not None and TOKENS.get(user) == token:
            log(f"{self.mech} {user}: token accepted")
            return "success", user
        log(f"{self.mech} {user}: token refused")
        self.refused = user or ""
        if self.mech == "XOAUTH2":
            error = {"status": "401", "schemes": "Bearer", "scope": "https://mail.google.com/"}
        else:
            error = {"status": "invalid_token", "scope": "mail", "schemes": "bearer"}
        return "challenge", json.dumps(error, separators=(",", ":")).encode()


class GssapiServer:
    def __init__(self):
        self.steps = 0

    def step(self, data):
        self.steps += 1
        if self.steps == 1:
            # Opaque, like an AP-REP would be; the next client message fails.
            return "challenge", b"\x60\x10\x06\x09\x2a\x86\x48\x86\xf7\x12\x01\x02\x02\x02\x00" + b"\x6f\x00"
        log("GSSAPI: no Kerberos here, refused")
        return "failure", None


def new_mechanism(name):
    if name == "NTLM":
        return NtlmServer()
    if name in ("XOAUTH2", "OAUTHBEARER"):
        return BearerServer(name)
    if name == "GSSAPI":
        return GssapiServer()
    return None


def run_sasl(mech, initial, challenge, read_line):
    """One exchange. initial: the initial response as written (None if none);
    challenge(bytes) sends a continuation; read_line() gets the client's next
    line. Returns ("success"|"failure"|"aborted", user)."""
    def decode(text):
        if text == "=":
            return b""
        return base64.b64decode(text, validate=True)

    try:
        if initial is None:
            challenge(b"")
            line = read_line()
            if line == "*":
                return "aborted", None
            data = decode(line)
        else:
            data = decode(initial)
        for _ in range(6):
            verdict, value = mech.step(data)
            if verdict != "challenge":
                return verdict, value
            challenge(value)
            line = read_line()
            if line is None:
                return "failure", None
            if line == "*":
                return "aborted", None
            data = decode(line)
    except (binascii.Error, ValueError):
        return "failure", None
    return "failure", None


# --- protocols -------------------------------------------------------------------

class Handler(socketserver.StreamRequestHandler):
    timeout = TIMEOUT

    def send(self, *lines):
        self.wfile.write(b"".join(line.encode() + b"\r\n" for line in lines))
        self.wfile.flush()

    def read_line(self):
        raw = self.rfile.readline(65536)
        if not raw:
            return None
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    def handle(self):
        peer = "%s:%d" % self.client_address
        log(f"{self.protocol} connection from {peer}")
        try:
            self.converse()
        except (OSError, TimeoutError) as e:
            log(f"{self.protocol} {peer}: {e}")

    def auth(self, args, challenge):
        name, _, initial = args.partition(" ")
        mech = new_mechanism(name.upper())
        if mech is None:
            return "unknown", None
        return run_sasl(mech, initial or None, challenge, self.read_line)


class SmtpHandler(Handler):
    protocol = "smtp"

    def converse(self):
        self.send(f"220 {NAME} ESMTP {BANNER}")
        authed = False
        while (line := self.read_line()) is not None:
            verb, _, args = line.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self.send(f"250-{NAME}", "250-AUTH " + " ".join(MECHANISMS),
                          "250-ENHANCEDSTATUSCODES", "250 8BITMIME")
            elif verb == "HELO":
                self.send(f"250 {NAME}")
            elif verb == "AUTH" and authed:
                self.send("503 5.5.1 Error: already authenticated")
            elif verb == "AUTH":
                result, _ = self.auth(args, lambda c: self.send("334 " + base64.b64encode(c).decode()))
                authed = result == "success"
                self.send({"success": "235 2.7.0 Authentication successful",
                           "failure": "535 5.7.8 Error: authentication failed",
                           "aborted": "501 5.7.0 Authentication aborted",
                           "unknown": "504 5.5.4 Unrecognized authentication type"}[result])
            elif verb in ("NOOP", "RSET"):
                self.send("250 2.0.0 Ok")
            elif verb == "EXPN":
                self.send(*self.expn(args))
            elif verb == "QUIT":
                self.send("221 2.0.0 Bye")
                return
            else:
                self.send("502 5.5.2 Error: command not recognized")


    @staticmethod
    def expn(args):
        name = args.strip().strip("<>")
        local = name.split("@", 1)[0].lower()
        if not name or ("@" in name and not name.lower().endswith("@" + DOMAIN)):
            return ["550 5.1.1 <%s>: mailing list unknown" % name]
        if local in LISTS:
            members = LISTS[local]
            return ["250-2.1.5 " + m for m in members[:-1]] + ["250 2.1.5 " + members[-1]]
        user = next((u for u in USERS if u.lower() == local), None)
        if user is not None:
            return ["250 2.1.5 %s <%s@%s>" % (user.capitalize(), user, DOMAIN)]
        log(f"EXPN {name}: unknown")
        return ["550 5.1.1 <%s>: mailing list unknown" % name]


class Pop3Handler(Handler):
    protocol = "pop3"

    def converse(self):
        self.send(f"+OK {BANNER} ready.")
        authed = False
        while (line := self.read_line()) is not None:
            verb, _, args = line.partition(" ")
            verb = verb.upper()
            if verb == "CAPA":
                self.send("+OK", "CAPA", "SASL " + " ".join(MECHANISMS),
                          f"IMPLEMENTATION {VERSION}", ".")
            elif verb == "AUTH" and not args:
                self.send("+OK", *MECHANISMS, ".")
            elif verb == "AUTH" and not authed:
                result, _ = self.auth(args, lambda c: self.send("+ " + base64.b64encode(c).decode()))
                authed = result == "success"
                self.send({"success": "+OK Logged in.",
                           "failure": "-ERR [AUTH] Authentication failed.",
                           "aborted": "-ERR Authentication aborted by client.",
                           "unknown": "-ERR Unsupported authentication mechanism."}[result])
            elif verb == "STAT" and authed:
                self.send("+OK 0 0")
            elif verb == "NOOP" and authed:
                self.send("+OK")
            elif verb == "QUIT":
                self.send("+OK Logging out.")
                return
            else:
                self.send("-ERR Unknown command.")


class ImapHandler(Handler):
    protocol = "imap"
    CAPS = "IMAP4rev1 SASL-IR " + " ".join("AUTH=" + m for m in MECHANISMS)

    def converse(self):
        self.send(f"* OK [CAPABILITY {self.CAPS}] {BANNER} ready.")
        authed = False
        while (line := self.read_line()) is not None:
            tag, _, rest = line.partition(" ")
            verb, _, args = rest.partition(" ")
            verb = verb.upper()
            if verb == "CAPABILITY":
                self.send(f"* CAPABILITY {self.CAPS}", f"{tag} OK Capability completed.")
            elif verb == "AUTHENTICATE" and not authed:
                result, _ = self.auth(args, lambda c: self.send("+ " + base64.b64encode(c).decode()))
                authed = result == "success"
                self.send({"success": f"{tag} OK Logged in",
                           "failure": f"{tag} NO [AUTHENTICATIONFAILED] Authentication failed.",
                           "aborted": f"{tag} BAD Authentication aborted by client.",
                           "unknown": f"{tag} NO Unsupported authentication mechanism."}[result])
            elif verb == "NOOP":
                self.send(f"{tag} OK NOOP completed.")
            elif verb == "LOGOUT":
                self.send("* BYE Logging out", f"{tag} OK Logout completed.")
                return
            else:
                self.send(f"{tag} BAD Error in IMAP command received by server.")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


# --- STARTTLS / TLS behaviours ------------------------------------------------------
# One loopback address per behaviour, the protocols' standard ports.

POSTURE_PEERS = {
    "stripping": ("127.0.0.4", {"smtp": 587, "imap": 143, "pop3": 110}),
    "preauth": ("127.0.0.5", {"imap": 143}),
    "alert": ("127.0.0.6", {"imap": 143}),
    "capability-stripping": ("127.0.0.7", {"smtp": 587, "imap": 143}),
    "response-buffering": ("127.0.0.8", {"smtp": 587, "imap": 143}),
}
PREAUTH_USER = "alice"
ALERT_TEXT = ("Your mailbox will be suspended in 24 hours. "
              "Confirm your password at http://mail-account-check.example/verify")


def check_password(user, password):
    return user is not None and USERS.get(user) == password


class PostureServer(Server):
    """A listener for one behaviour; counts its connections (capability-stripping)."""

    def __init__(self, address, handler, behaviour, tls):
        self.behaviour = behaviour
        self.tls = tls                 # server SSLContext, or None
        self.connections = 0
        self.lock = threading.Lock()
        super().__init__(address, handler)

    def next_connection(self):
        with self.lock:
            self.connections += 1
            return self.connections


class PostureHandler(socketserver.BaseRequestHandler):
    """Reads lines itself (no buffered file object), so that nothing the
    client sends after the STARTTLS reply can be swallowed before the TLS
    handshake."""
    protocol = None

    def setup(self):
        self.sock = self.request
        self.sock.settimeout(TIMEOUT)
        self.buf = b""
        self.tls = False
        self.upgraded = False   # STARTTLS answered yes (with or without TLS after it)
        self.authed = False
        self.behaviour = self.server.behaviour
        self.number = self.server.next_connection()
        # capability-stripping: STARTTLS on odd connections only
        self.offer = not (self.behaviour == "capability-stripping" and self.number % 2 == 0)

    def handle(self):
        peer = "%s:%d" % self.client_address
        log(f"{self.protocol} ({self.behaviour}) connection {self.number} from {peer}"
            + ("" if self.offer else ", STARTTLS not offered"))
        try:
            self.greet()
            while (line := self.read_line()) is not None:
                if not self.command(line):
                    return
        except (OSError, TimeoutError, ssl.SSLError) as e:
            log(f"{self.protocol} {peer}: {e}")

    def read_line(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                return None
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def send(self, *lines):
        self.sock.sendall(b"".join(line.encode() + b"\r\n" for line in lines))

    def offers_starttls(self):
        return self.offer and not self.upgraded and self.behaviour != "alert"

    def upgrade(self, yes):
        """Answer a STARTTLS the behaviour accepts: stripping says yes and
        stays in clear; response-buffering reads the client's next line first
        and answers it inside TLS; the others say yes and do TLS."""
        pending = None
        if self.behaviour == "response-buffering":
            pending = self.read_line()
            log(f"{self.protocol}: line before the STARTTLS reply: {pending!r}")
        self.send(yes)
        self.upgraded = True
        if self.behaviour == "stripping":
            log(f"{self.protocol}: STARTTLS answered, staying in clear")
            return True
        if self.buf:
            raise OSError("client data read ahead of the TLS handshake")
        self.sock = self.server.tls.wrap_socket(self.sock, server_side=True)
        self.tls = True
        log(f"{self.protocol}: {self.sock.version()} {self.sock.cipher()[0]}")
        return self.command(pending) if pending is not None else True


class PostureSmtp(PostureHandler):
    protocol = "smtp"

    def greet(self):
        self.send(f"220 {NAME} ESMTP {BANNER}")

    def command(self, line):
        verb, _, args = line.partition(" ")
        verb = verb.upper()
        if verb == "EHLO":
            self.send(f"250-{NAME}", "250-PIPELINING",
                      *(["250-STARTTLS"] if self.offers_starttls() else []),
                      "250-AUTH PLAIN LOGIN", "250-ENHANCEDSTATUSCODES", "250 8BITMIME")
        elif verb == "STARTTLS":
            if not self.offers_starttls():
                self.send("502 5.5.1 Error: command not implemented")
            else:
                return self.upgrade("220 2.0.0 Ready to start TLS")
        elif verb == "AUTH" and self.authed:
            self.send("503 5.5.1 Error: already authenticated")
        elif verb == "AUTH":
            self.auth(args)
        elif verb == "MAIL":
            self.send("250 2.1.0 Ok")
        elif verb == "RCPT":
            self.send("250 2.1.5 Ok")
        elif verb == "DATA":
            self.send("354 End data with <CR><LF>.<CR><LF>")
            size = 0
            while (data := self.read_line()) is not None and data != ".":
                size += len(data) + 2
            self.send("250 2.0.0 Ok: queued as PEER%06d" % size)
            log(f"smtp: message of {size} bytes thrown away")
        elif verb in ("NOOP", "RSET"):
            self.send("250 2.0.0 Ok")
        elif verb == "QUIT":
            self.send("221 2.0.0 Bye")
            return False
        else:
            self.send("502 5.5.2 Error: command not recognized")
        return True

    def auth(self, args):
        mech, _, initial = args.partition(" ")
        mech = mech.upper()
        try:
            if mech == "PLAIN":
                if not initial:
                    self.send("334 ")
                    initial = self.read_line() or ""
                _, user, password = base64.b64decode(initial, validate=True).decode().split("\0")
            elif mech == "LOGIN":
                if initial:
                    user = base64.b64decode(initial, validate=True).decode()
                else:
                    self.send("334 " + base64.b64encode(b"Username:").decode())
                    user = base64.b64decode(self.read_line() or "", validate=True).decode()
                self.send("334 " + base64.b64encode(b"Password:").decode())
                password = base64.b64decode(self.read_line() or "", validate=True).decode()
            else:
                self.send("504 5.5.4 Unrecognized authentication type")
                return
        except (binascii.Error, ValueError, UnicodeDecodeError):
            self.send("501 5.5.2 Cannot decode response")
            return
        self.authed = check_password(user, password)
        log(f"smtp AUTH {mech} {user}: {'accepted' if self.authed else 'refused'}"
            + (" (in TLS)" if self.tls else " (in clear)"))
        self.send("235 2.7.0 Authentication successful" if self.authed
                  else "535 5.7.8 Error: authentication failed")


def imap_arguments(text):
    """Atoms and quoted strings (with \\ and \" escapes) of an IMAP command."""
    out, i = [], 0
    while i < len(text):
        if text[i] == " ":
            i += 1
        elif text[i] == '"':
            i += 1
            value = ""
            while i < len(text) and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                value += text[i]
                i += 1
            out.append(value)
            i += 1
        else:
            end = text.find(" ", i)
            end = len(text) if end < 0 else end
            out.append(text[i:end])
            i = end
    return out


class PostureImap(PostureHandler):
    protocol = "imap"

    def capabilities(self):
        caps = "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE"
        if self.offers_starttls():
            caps += " STARTTLS"
        return caps + " AUTH=PLAIN"

    def greet(self):
        if self.behaviour == "preauth":
            self.authed = True
            self.send(f"* PREAUTH [CAPABILITY {self.capabilities()}] "
                      f"Logged in as {PREAUTH_USER} (pre-authenticated by the {BANNER})")
        else:
            self.send(f"* OK [CAPABILITY {self.capabilities()}] {BANNER} ready.")

    def command(self, line):
        tag, _, rest = line.partition(" ")
        verb, _, args = rest.partition(" ")
        verb = verb.upper()
        if verb == "CAPABILITY":
            self.send(f"* CAPABILITY {self.capabilities()}", f"{tag} OK Capability completed.")
        elif verb == "STARTTLS":
            if self.authed:
                # RFC 3501 6.2.1: only in the not authenticated state.
                self.send(f"{tag} BAD STARTTLS not allowed: already authenticated.")
            elif not self.offers_starttls():
                self.send(f"{tag} BAD Unknown command.")
            else:
                return self.upgrade(f"{tag} OK Begin TLS negotiation now.")
        elif verb == "LOGIN" and not self.authed:
            words = imap_arguments(args)
            user, password = (words + [None, None])[:2]
            if self.behaviour == "alert":
                log(f"imap LOGIN {user}: answered with an [ALERT]")
                self.send(f"{tag} NO [ALERT] {ALERT_TEXT}")
                return True
            self.authed = check_password(user, password)
            log(f"imap LOGIN {user}: {'accepted' if self.authed else 'refused'}"
                + (" (in TLS)" if self.tls else " (in clear)"))
            self.send(f"{tag} OK [CAPABILITY IMAP4rev1 LITERAL+ ID ENABLE IDLE MOVE] Logged in"
                      if self.authed else f"{tag} NO [AUTHENTICATIONFAILED] Authentication failed.")
        elif verb in ("SELECT", "EXAMINE") and self.authed:
            self.send("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
                      "* 0 EXISTS", "* 0 RECENT", "* OK [UIDVALIDITY 1700000000] UIDs valid",
                      "* OK [UIDNEXT 1] Predicted next UID",
                      f"{tag} OK [{'READ-WRITE' if verb == 'SELECT' else 'READ-ONLY'}] {verb.capitalize()} completed.")
        elif verb == "NOOP":
            self.send(f"{tag} OK NOOP completed.")
        elif verb == "LOGOUT":
            self.send("* BYE Logging out", f"{tag} OK Logout completed.")
            return False
        else:
            self.send(f"{tag} BAD Error in IMAP command received by server.")
        return True


class PosturePop3(PostureHandler):
    protocol = "pop3"

    def greet(self):
        self.send(f"+OK {BANNER} ready.")
        self.user = None

    def command(self, line):
        verb, _, args = line.partition(" ")
        verb = verb.upper()
        if verb == "CAPA":
            self.send("+OK", "CAPA", "TOP", "UIDL", "RESP-CODES", "USER",
                      *(["STLS"] if self.offers_starttls() else []), "SASL PLAIN", ".")
        elif verb == "STLS":
            if not self.offers_starttls():
                self.send("-ERR Unknown command.")
            else:
                return self.upgrade("+OK Begin TLS negotiation now.")
        elif verb == "USER" and not self.authed:
            self.user = args
            self.send("+OK")
        elif verb == "PASS" and not self.authed:
            self.authed = check_password(self.user, args)
            log(f"pop3 USER/PASS {self.user}: {'accepted' if self.authed else 'refused'}"
                + (" (in TLS)" if self.tls else " (in clear)"))
            self.send("+OK Logged in." if self.authed else "-ERR [AUTH] Authentication failed.")
        elif verb == "STAT" and self.authed:
            self.send("+OK 0 0")
        elif verb == "NOOP" and self.authed:
            self.send("+OK")
        elif verb == "QUIT":
            self.send("+OK Logging out.")
            return False
        else:
            self.send("-ERR Unknown command.")
        return True


POSTURE_HANDLERS = {"smtp": PostureSmtp, "imap": PostureImap, "pop3": PosturePop3}


def posture_listeners():
    """(behaviour, protocol, address, port) of every STARTTLS / TLS behaviour."""
    return [(b, proto, host, port) for b, (host, ports) in POSTURE_PEERS.items()
            for proto, port in ports.items()]


def main():
    ap = argparse.ArgumentParser(description="scripted SMTP/IMAP/POP3 peer for the capture lab")
    ap.add_argument("--version", action="store_true")
    ap.add_argument("--host", default="127.0.0.2")
    ap.add_argument("--smtp", type=int, default=25)
    ap.add_argument("--imap", type=int, default=143)
    ap.add_argument("--pop3", type=int, default=110)
    ap.add_argument("--tls-cert", help="certificate (PEM) for the behaviours that do TLS")
    ap.add_argument("--tls-key", help="its private key (PEM)")
    ap.add_argument("--no-posture", action="store_true",
                    help="only the SASL / EXPN peer, none of the STARTTLS / TLS behaviours")
    ap.add_argument("--listeners", action="store_true",
                    help="print ADDRESS:PORT of every listener and exit")
    args = ap.parse_args()
    if args.version:
        print(VERSION)
        return
    basic = [(args.host, args.smtp, SmtpHandler), (args.host, args.imap, ImapHandler),
             (args.host, args.pop3, Pop3Handler)]
    posture = [] if args.no_posture else posture_listeners()
    if args.listeners:
        for host, port, _ in basic:
            print(f"{host}:{port}")
        for _, _, host, port in posture:
            print(f"{host}:{port}")
        return
    tls = None
    if posture:
        if not (args.tls_cert and args.tls_key):
            sys.exit("peer.py: the STARTTLS / TLS behaviours need --tls-cert and --tls-key (or --no-posture)")
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    servers = []
    try:
        for host, port, handler in basic:
            servers.append(Server((host, port), handler))
        for behaviour, proto, host, port in posture:
            servers.append(PostureServer((host, port), POSTURE_HANDLERS[proto], behaviour, tls))
    except OSError as e:
        for s in servers:
            s.server_close()
        sys.exit(f"peer.py: cannot listen: {e}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for s in servers:
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    log(f"{VERSION} listening on {args.host} ports {args.smtp} {args.imap} {args.pop3}"
        + "".join(f"; {b} {p} on {h}:{n}" for b, p, h, n in posture))
    while not stop.wait(0.5):
        pass
    for s in servers:
        s.shutdown()
        s.server_close()
    log("stopped")


if __name__ == "__main__":
    main()
