#!/usr/bin/env python3
"""Drive real mail clients (Python's smtplib, poplib, imaplib) against the
capture lab's Postfix and Dovecot (started by generate.sh), capture every
scenario with dumpcap, and write NAME.pcapng, NAME.keys (NSS key log, TLS
scenarios only) and NAME.json, the ground truth of what the client did and
what the servers answered.

usage: driver.py OUTDIR [SCENARIO ...]   (default: every scenario)

The ground truth comes from the clients and the servers' replies, never from
a dissector. To add a scenario, add an entry to SCENARIOS.
"""
import email.utils
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
HOST = "127.0.0.1"
SERVER_NAME = "mx.mail.test"      # certificate CN; sent as SNI
CLIENT_NAME = "client.mail.test"  # EHLO name (avoids a DNS lookup of our own name)
DOMAIN = "mail.test"
TIMEOUT = 10
# Ports the plugin knows by default; anything else must be found by content.
WELL_KNOWN_PORTS = {25, 587, 465, 110, 995, 143, 993}


def load_users(path):
    """user -> password, from the same passwd-file Dovecot authenticates with."""
    users = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            user, password = line.split(":")[:2]
            users[user] = password
    return users


USERS = load_users(HERE / "config" / "users")


# --- scenario table ----------------------------------------------------------
# A scenario is one capture: one or more client sessions against one port.
# A session is a list of steps (VERB, *args); each client class below has a
# do_VERB method for the verbs of its protocol.

def auth(mechanism, user, password=None, expect="success", initial_response=None):
    """An authentication step. password defaults to the user's real one; give
    another one (and expect="failure") for a failed attempt. initial_response
    (SMTP only) chooses whether smtplib sends the first SASL response on the
    AUTH line; by default it does for PLAIN and not for the others."""
    return ("AUTH", {
        "mechanism": mechanism,
        "username": user,
        "password": USERS[user] if password is None else password,
        "expect": expect,
        "initial_response": initial_response,
    })


def mail_transaction(sender="bob", recipient="alice"):
    return [("MAIL", f"{sender}@{DOMAIN}"), ("RCPT", f"{recipient}@{DOMAIN}"), ("DATA",)]


def scenario(name, protocol, port, *sessions, implicit_tls=False):
    return {"name": name, "protocol": protocol, "port": port,
            "implicit_tls": implicit_tls, "sessions": list(sessions)}


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
]

STARTTLS_VERBS = {"STARTTLS", "STLS"}


def transport_of(steps, implicit_tls):
    if implicit_tls:
        return "implicit-tls"
    return "starttls" if any(s[0] in STARTTLS_VERBS for s in steps) else "cleartext"


# --- recording ---------------------------------------------------------------

class Session:
    """What one client connection did and what the server answered."""

    def __init__(self, protocol, server_port, transport):
        self.protocol = protocol
        self.server_port = server_port
        self.transport = transport
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


# --- clients -----------------------------------------------------------------
# Each library class gets a mixin that records, at the library's own
# send/receive hooks, every command it puts on the wire and every reply status.

class _SmtpRecording:
    def __init__(self, session, **kwargs):
        self.session = session
        self.in_sasl = False
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

    def __init__(self, session, ctx, implicit_tls, scenario_name):
        self.s = session
        self.ctx = ctx
        self.name = scenario_name
        self.conn = self.connect(implicit_tls)
        self.s.client_port = self.conn.sock.getsockname()[1]
        if implicit_tls:
            self.s.sni = SERVER_NAME

    def run(self, step):
        getattr(self, "do_" + step[0])(*step[1:])

    def record_auth(self, spec, ok, tls, initial_response=None):
        self.s.auth.append({
            "mechanism": spec["mechanism"],
            "username": spec["username"],
            "password": spec["password"],
            "result": "success" if ok else "failure",
            "tls": tls,
            "initial_response": initial_response,
        })
        check(("success" if ok else "failure") == spec["expect"],
              f"{self.name}: {spec['mechanism']} as {spec['username']} should be {spec['expect']}")

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
        conn.connect(HOST, self.s.server_port)
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
        c.user, c.password = spec["username"], spec["password"]
        # smtplib's own mechanism implementations.
        authobject = {"PLAIN": c.auth_plain, "LOGIN": c.auth_login,
                      "CRAM-MD5": c.auth_cram_md5}[spec["mechanism"]]
        initial = spec["initial_response"]
        if initial is None:
            initial = spec["mechanism"] == "PLAIN"
        tls = under_tls(c.sock)
        try:
            c.auth(spec["mechanism"], authobject, initial_response_ok=initial)
            ok = True
        except smtplib.SMTPAuthenticationError:
            ok = False
        finally:
            c.in_sasl = False
        self.record_auth(spec, ok, tls, initial)

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
            return RecordingPOP3_SSL(self.s, HOST, self.s.server_port, context=self.ctx)
        return RecordingPOP3(self.s, HOST, self.s.server_port)

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
        try:
            if spec["mechanism"] == "USER/PASS":
                c.user(spec["username"])
                c.pass_(spec["password"])
            elif spec["mechanism"] == "APOP":
                c.apop(spec["username"], spec["password"])
            else:
                raise Failed(f"{self.name}: no POP3 mechanism {spec['mechanism']}")
            ok = True
        except poplib.error_proto:
            ok = False
        self.record_auth(spec, ok, tls)

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
            return RecordingIMAP4_SSL(self.s, HOST, self.s.server_port, ssl_context=self.ctx)
        return RecordingIMAP4(self.s, HOST, self.s.server_port)

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
        try:
            if spec["mechanism"] == "IMAP-LOGIN":
                c.login(user, password)
            elif spec["mechanism"] == "PLAIN":
                c.authenticate("PLAIN", lambda _: f"\0{user}\0{password}".encode())
            elif spec["mechanism"] == "CRAM-MD5":
                c.login_cram_md5(user, password)
            else:
                raise Failed(f"{self.name}: no IMAP mechanism {spec['mechanism']}")
            ok = True
        except imaplib.IMAP4.error:
            ok = False
        # imaplib never sends a SASL initial response with AUTHENTICATE.
        self.record_auth(spec, ok, tls, None if spec["mechanism"] == "IMAP-LOGIN" else False)

    def do_SELECT(self, mailbox):
        typ, _ = self.conn.select(mailbox)
        check(typ == "OK", f"{self.name}: SELECT answered {typ}")

    def do_LOGOUT(self):
        self.conn.logout()


CLIENTS = {"smtp": SmtpClient, "pop3": Pop3Client, "imap": ImapClient}


# --- capture -----------------------------------------------------------------

class Capture:
    """dumpcap on lo for one TCP port, running for the duration of a with block."""

    def __init__(self, path, port):
        self.path = path
        self.port = port

    def __enter__(self):
        self.proc = subprocess.Popen(
            ["dumpcap", "-i", "lo", "-f", f"tcp port {self.port}", "-w", str(self.path), "-q"],
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
    return {"smtp": ("postfix", postfix), "pop3": ("dovecot", dovecot),
            "imap": ("dovecot", dovecot)}


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
    sessions = []
    try:
        with Capture(pcap, sc["port"]):
            for steps in sc["sessions"]:
                session = Session(sc["protocol"], sc["port"],
                                  transport_of(steps, sc["implicit_tls"]))
                client = client_class(session, ctx, sc["implicit_tls"], name)
                for step in steps:
                    client.run(step)
                sessions.append(session)
    except BaseException:
        # No capture without its ground truth.
        for partial in (pcap, keys):
            partial.unlink(missing_ok=True)
        raise

    server, version = versions[sc["protocol"]]
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
    if sc["protocol"] == "smtp":
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
