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

usage: peer.py [--host 127.0.0.2] [--smtp 25] [--imap 143] [--pop3 110]
       peer.py --version
Stops on SIGTERM or SIGINT. Logs one line per connection and attempt on stderr.
"""
import argparse
import base64
import binascii
import json
import os
import signal
import socketserver
import struct
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from accounts import load_tokens, load_users  # noqa: E402
import ntlm  # noqa: E402

VERSION = "mailsec-peer 1.1"   # 1.1: SMTP EXPN
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


def main():
    ap = argparse.ArgumentParser(description="scripted SMTP/IMAP/POP3 peer for the capture lab")
    ap.add_argument("--version", action="store_true")
    ap.add_argument("--host", default="127.0.0.2")
    ap.add_argument("--smtp", type=int, default=25)
    ap.add_argument("--imap", type=int, default=143)
    ap.add_argument("--pop3", type=int, default=110)
    args = ap.parse_args()
    if args.version:
        print(VERSION)
        return
    servers = []
    try:
        for port, handler in ((args.smtp, SmtpHandler), (args.imap, ImapHandler),
                              (args.pop3, Pop3Handler)):
            servers.append(Server((args.host, port), handler))
    except OSError as e:
        for s in servers:
            s.server_close()
        sys.exit(f"peer.py: cannot listen on {args.host}: {e}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for s in servers:
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    log(f"{VERSION} listening on {args.host} ports {args.smtp} {args.imap} {args.pop3}")
    while not stop.wait(0.5):
        pass
    for s in servers:
        s.shutdown()
        s.server_close()
    log("stopped")


if __name__ == "__main__":
    main()
