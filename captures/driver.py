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
scripted server on 127.0.0.2, since no Debian server here offers them; so does
an EXPN that should be answered 250 (Postfix has no EXPN).

The messages of the later scenarios (attachments, spoofing, mass mail, SMTP
smuggling) are written byte by byte (class Letter, smuggling_payload); the
retrieval scenarios compare what POP3 / IMAP delivered with the maildir files
on disk (MAILSEC_MAILDIR_BASE) and with what this run sent by SMTP.

The STARTTLS / TLS posture scenarios cap or lower the client's TLS version
(scenario(..., tls=...)), leave out the SNI, meet a Postfix listener that
cannot do TLS (127.0.0.3), and play the attacks no real server here shows
against peer.py's behaviours on 127.0.0.4 - 127.0.0.8. Each session records
what TLS it really got (version and cipher as the client's ssl module reports
them) and the attack it met, as observed on the wire; the run fails if that is
not the attack the scenario meant to play.
"""
import base64
import email
import email.policy
import email.utils
import hashlib
import hmac
import imaplib
import json
import os
import platform
import poplib
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from accounts import load_tokens, load_users  # noqa: E402
import ntlm  # noqa: E402  (captures/ntlm.py: MD4, DES, NTLMSSP)
from peer import POSTURE_PEERS  # noqa: E402  (where peer.py plays each STARTTLS / TLS behaviour)

HOST = "127.0.0.1"
PEER_HOST = "127.0.0.2"           # captures/peer.py, the scripted server
PEER_SERVER = "scripted peer (captures/peer.py)"
# Postfix and Dovecot listeners with other TLS settings (config/master.cf, dovecot.conf).
ALT_TLS_HOST = "127.0.0.3"
STRIPPING_HOST, PREAUTH_HOST, ALERT_HOST, CAPSTRIP_HOST, BUFFERING_HOST = (
    POSTURE_PEERS[b][0] for b in ("stripping", "preauth", "alert", "capability-stripping",
                                  "response-buffering"))
PEER_HOSTS = {PEER_HOST} | {host for host, _ in POSTURE_PEERS.values()}
# ssl.SSLSocket.version() -> the ground truth's name of the protocol version.
TLS_NAMES = {"TLSv1": "TLS 1.0", "TLSv1.1": "TLS 1.1", "TLSv1.2": "TLS 1.2", "TLSv1.3": "TLS 1.3"}
# response-buffering: the pause between STARTTLS and the command after it, which
# makes that command a TCP segment of its own (with TCP_NODELAY).
BUFFERING_PAUSE = 0.3
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


def scenario(name, protocol, port, *sessions, implicit_tls=False, host=HOST, settings=(), tls=None):
    """settings: Postfix parameters whose values (postconf -h) the ground
    truth records as server_settings. tls: the client's TLS settings, keys
    "sni" (the server name sent; None: no SNI; default SERVER_NAME), "min" and
    "max" (ssl.TLSVersion names; the run fails unless "max", or TLS 1.3 without
    it, is what the session negotiates) and "ciphers" (OpenSSL cipher string)."""
    return {"name": name, "protocol": protocol, "port": port, "host": host,
            "implicit_tls": implicit_tls, "sessions": list(sessions), "settings": list(settings),
            "tls": dict(tls or {})}


def smtp_session(*steps, starttls=False):
    pre = [("EHLO",), ("STARTTLS",), ("EHLO",)] if starttls else [("EHLO",)]
    return [*pre, *steps, ("QUIT",)]


def pop3_session(*steps, stls=False):
    return [*([("STLS",)] if stls else []), *steps, ("QUIT",)]


def imap_session(*steps, starttls=False):
    return [*([("STARTTLS",)] if starttls else []), *steps, ("LOGOUT",)]


def pop3_retrieval(user, stls=False):
    """Fetch everything, look at one message's top, delete one."""
    return pop3_session(auth("USER/PASS", user), ("LIST",), ("RETR_ALL",), ("TOP", 2, 5),
                        ("DELE", 3), stls=stls)


def imap_retrieval(user, starttls=False):
    """Fetch everything, expunge the first, move the (new) first to Trash."""
    return imap_session(auth("IMAP-LOGIN", user), ("SELECT", "INBOX"), ("FETCH_ALL",),
                        ("STORE", 1, "(\\Deleted)"), ("EXPUNGE",), ("CREATE", "Trash"),
                        ("MOVE", 1, "Trash"), starttls=starttls)


BAD_TOKEN = "ya29.mailsec-lab-token-expired.0000000000"
# The client's TLS settings of the posture scenarios.
TLS_12 = {"max": "TLSv1_2"}


def legacy_tls(version):
    """Exactly this old version; OpenSSL 3 needs security level 0 for it."""
    return {"min": version, "max": version, "ciphers": "DEFAULT:@SECLEVEL=0"}
# What a password-guessing client tries before the right one.
GUESSES = ["123456", "password", "alice", "qwerty", "Wonderland", "wonderland-42"]

# --- messages ------------------------------------------------------------------
# The feature-set scenarios write their messages byte by byte (fixed MIME
# boundaries, RFC 2047 and RFC 2231 encodings written out, base64 in 76-column
# lines), so the ground truth can say exactly which headers, attachments and
# URLs each message had. Attachment contents are deterministic filler with the
# right magic numbers: look-alikes, not working documents or programs.

# Recipients: team@mail.test is a Postfix virtual alias (config/virtual) for
# the six users of the retrieval scenarios; victim@ receives smuggling tests.
TEAM = f"team@{DOMAIN}"
VICTIM = f"victim@{DOMAIN}"
MASSMAIL_RECIPIENTS = [f"{u}@{DOMAIN}" for u in (
    "sales", "support", "hr", "finance", "it", "legal",
    "ops", "dev", "info", "pr", "marketing", "security")]
X_MAILER = "Microsoft Outlook 16.0"
X_ORIGINATING_IP = "[198.51.100.23]"   # RFC 5737 documentation range


def filler(label, size):
    """size deterministic bytes: SHA-256 in counter mode over label."""
    out, n = bytearray(), 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}:{n}".encode()).digest()
        n += 1
    return bytes(out[:size])


def fake_pdf(title, size):
    text = b"BT /F1 24 Tf 72 720 Td (" + title.encode() + b") Tj ET"
    head = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
            b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
            b"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n"
            b"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>\n"
            b"endobj\n4 0 obj\n<< /Length " + str(len(text)).encode() + b" >>\nstream\n" + text
            + b"\nendstream\nendobj\n5 0 obj\n<< /Length ")
    tail = b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    n = size - len(head) - len(tail) - len(b"0000 >>\nstream\n")
    return head + b"%04d >>\nstream\n" % n + filler(title, n) + tail


def fake_exe(label, size):
    """An MZ header, the DOS stub's message and a PE signature; not runnable."""
    head = (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"
            + b"\xb8" + b"\x00" * 7 + b"\x40" + b"\x00" * 35 + b"\x80\x00\x00\x00"
            + b"\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21\xb8\x01\x4c\xcd\x21"
            + b"This program cannot be run in DOS mode.\r\r\n$" + b"\x00" * 7)
    head = head.ljust(0x80, b"\x00") + b"PE\x00\x00\x4c\x01"
    return head + filler(label, size - len(head))


def fake_ooxml(label, members, size):
    """A ZIP local file header per member name, then filler (OOXML look-alike)."""
    out = b""
    for name in members:
        out += b"PK\x03\x04\x14\x00\x06\x00\x08\x00" + b"\x00" * 16 \
            + len(name).to_bytes(2, "little") + b"\x00\x00" + name.encode()
    return out + filler(label, size - len(out))


def encoded_word(text, encoding="B"):
    """One RFC 2047 encoded word, UTF-8."""
    if encoding == "B":
        return "=?UTF-8?B?" + b64(text.encode()) + "?="
    out = []
    for byte in text.encode():
        ch = chr(byte)
        if byte == 0x20:
            out.append("_")
        elif byte < 0x80 and (ch.isalnum() or ch in "-.!*+/"):
            out.append(ch)
        else:
            out.append("=%02X" % byte)
    return "=?UTF-8?Q?" + "".join(out) + "?="


def rfc2231_params(param, value, width=36):
    """param*0*=utf-8''...; param*1*=...: RFC 2231 continuations, every
    section percent-encoded (a %XX is never split)."""
    tokens = [t for t in re.findall(r"%[0-9A-F]{2}|.", urllib.parse.quote(value.encode(), safe=""))]
    sections, cur = [], ""
    for t in tokens:
        if len(cur) + len(t) > width:
            sections.append(cur)
            cur = ""
        cur += t
    sections.append(cur)
    return ";\r\n\t".join(f"{param}*{i}*=" + ("utf-8''" if i == 0 else "") + sec
                          for i, sec in enumerate(sections))


def attachment(filename, content_type, content, filename_encoding="plain"):
    """filename_encoding: how the name is written in both Content-Type (name)
    and Content-Disposition (filename): "plain" (quoted string), "rfc2047"
    (an encoded word in the quoted string) or "rfc2231" (continuations)."""
    return {"filename": filename, "content_type": content_type, "content": content,
            "filename_encoding": filename_encoding}


def attachment_part(a):
    fn, enc = a["filename"], a["filename_encoding"]
    if enc == "plain":
        name, filename = f'name="{fn}"', f'filename="{fn}"'
    elif enc == "rfc2047":
        name, filename = f'name="{encoded_word(fn)}"', f'filename="{encoded_word(fn)}"'
    else:
        name, filename = rfc2231_params("name", fn), rfc2231_params("filename", fn)
    headers = [("Content-Type", f"{a['content_type']};\r\n\t{name}"),
               ("Content-Disposition", f"attachment;\r\n\t{filename}"),
               ("Content-Transfer-Encoding", "base64")]
    body = base64.encodebytes(a["content"]).replace(b"\n", b"\r\n")
    return headers, body


def text_part(subtype, text):
    return ([("Content-Type", f"text/{subtype}; charset=us-ascii"),
             ("Content-Transfer-Encoding", "7bit")],
            text.replace("\n", "\r\n").encode("ascii"))


def render_part(headers, body):
    return b"".join(f"{n}: {v}\r\n".encode() for n, v in headers) + b"\r\n" + body


def multipart(subtype, boundary, parts):
    # Each part ends with <CR><LF>, which the next delimiter line takes as its own.
    body = b"This is a multi-part message in MIME format.\r\n"
    for headers, part_body in parts:
        body += f"--{boundary}\r\n".encode() + render_part(headers, part_body)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return [("Content-Type", f'multipart/{subtype};\r\n\tboundary="{boundary}"')], body


def unfold(value):
    return re.sub(r"\r\n(?=[ \t])", "", value)


class Letter:
    """A message the client writes itself. text / html: the bodies of the text
    parts ("\\n" line ends; lines starting with "." get dot-stuffed on the
    wire); urls: (part, url) pairs that must appear in those parts, recorded
    as the message's URLs."""

    def __init__(self, key, header_from, to, subject, subject_encoding=None, cc=None,
                 reply_to=None, mailer=None, originating_ip=None, text="", html=None,
                 urls=(), attachments=()):
        self.key = key
        self.header_from, self.to, self.cc = header_from, to, cc
        self.subject, self.subject_encoding = subject, subject_encoding
        self.reply_to, self.mailer, self.originating_ip = reply_to, mailer, originating_ip
        self.text, self.html, self.urls = text, html, list(urls)
        self.attachments = list(attachments)

    def build(self):
        """(DATA bytes as the client means them, ground-truth record)."""
        for part, url in self.urls:
            check(url in (self.html if part == "text/html" else self.text),
                  f"{self.key}: {url} not in its {part} part")
        message_id = email.utils.make_msgid(idstring=self.key, domain=CLIENT_NAME)
        subject_raw = (encoded_word(self.subject, self.subject_encoding)
                       if self.subject_encoding else self.subject)
        headers = [("From", self.header_from), ("To", self.to)]
        if self.cc:
            headers.append(("Cc", self.cc))
        headers += [("Subject", subject_raw), ("Date", email.utils.formatdate()),
                    ("Message-ID", message_id)]
        if self.reply_to:
            headers.append(("Reply-To", self.reply_to))
        if self.mailer:
            headers.append(("X-Mailer", self.mailer))
        if self.originating_ip:
            headers.append(("X-Originating-IP", self.originating_ip))
        headers.append(("MIME-Version", "1.0"))
        body_part = text_part("plain", self.text)
        if self.html is not None:
            body_part = multipart("alternative", f"=_alt_{self.key}",
                                  [body_part, text_part("html", self.html)])
        if self.attachments:
            top_headers, body = multipart("mixed", f"=_mixed_{self.key}",
                                          [body_part] + [attachment_part(a) for a in self.attachments])
        else:
            top_headers, body = body_part
        headers += top_headers
        data = render_part(headers, body)
        record = {
            "header_from": self.header_from,
            "subject": self.subject,
            "message_id": message_id,
            "headers": [[n, unfold(v)] for n, v in headers],
            "urls": [{"part": part, "url": url} for part, url in self.urls],
            "attachments": [{
                "filename": a["filename"],
                "filename_encoding": a["filename_encoding"],
                "content_type": a["content_type"],
                "transfer_encoding": "base64",
                "size": len(a["content"]),
                "sha256": hashlib.sha256(a["content"]).hexdigest(),
            } for a in self.attachments],
        }
        self.self_check(data)
        return data, record

    def self_check(self, data):
        """Python's email parser must read back what the record says."""
        msg = email.message_from_bytes(data, policy=email.policy.default)
        check(str(msg["Subject"]) == self.subject, f"{self.key}: subject reads back as {msg['Subject']}")
        found = [(p.get_filename(), p.get_content_type(), p.get_payload(decode=True))
                 for p in msg.iter_attachments()]
        want = [(a["filename"], a["content_type"].lower(), a["content"]) for a in self.attachments]
        check(found == want, f"{self.key}: attachments do not read back")


def message_facts(data):
    """What the ground truth says of any DATA payload."""
    return {"data_size": len(data), "data_sha256": hashlib.sha256(data).hexdigest(),
            "dot_stuffed_lines": sum(1 for line in data.split(b"\r\n") if line.startswith(b"."))}


ATTACHMENT_LETTERS = [
    Letter("attachments-1", "Bob Builder <bob@mail.test>", "Team <team@mail.test>",
           "Rechnung Nr. 4711 – bitte umgehend prüfen", subject_encoding="B",
           cc="Carol <carol@mail.test>", reply_to="Billing <billing@othercorp.example>",
           mailer=X_MAILER, originating_ip=X_ORIGINATING_IP,
           text="Hello team,\n\nplease find the quarterly report and the invoice attached.\n"
                "The invoice can also be downloaded from\n"
                "https://portal.othercorp.example/invoice/4711?session=8f3a2c\n"
                "or directly: http://198.51.100.23/dl/invoice.pdf.exe\n"
                ".this line starts with a dot (dot-stuffed on the wire)\n\nBob\n",
           urls=[("text/plain", "https://portal.othercorp.example/invoice/4711?session=8f3a2c"),
                 ("text/plain", "http://198.51.100.23/dl/invoice.pdf.exe")],
           attachments=[attachment("Q4-report.pdf", "application/pdf",
                                   fake_pdf("Q4 report", 3000)),
                        attachment("invoice.pdf.exe", "application/octet-stream",
                                   fake_exe("invoice.pdf.exe", 24576))]),
    Letter("attachments-2", "Bob Builder <bob@mail.test>", "Team <team@mail.test>",
           "Jahresabschluss 2023 – Übersicht", subject_encoding="Q",
           cc="Carol <carol@mail.test>", reply_to="Bob Builder <bob@mail.test>",
           mailer=X_MAILER, originating_ip=X_ORIGINATING_IP,
           text="Hi,\n\nthe annual statement is on SharePoint:\n"
                "https://sharepoint.othercorp.example/sites/finance/Shared%20Documents/JA2023.xlsx\n"
                "and attached, with the transfer confirmation.\n\nBob\n",
           html="<html><body><p>Hi,</p>\n<p>the annual statement is on "
                "<a href=\"https://login.othercorp.example/owa/?redirect=https%3A%2F%2Fmail.test%2F\">"
                "https://mail.test/owa</a>.</p>\n<p>Bob</p></body></html>\n",
           urls=[("text/plain",
                  "https://sharepoint.othercorp.example/sites/finance/Shared%20Documents/JA2023.xlsx"),
                 ("text/html", "https://login.othercorp.example/owa/?redirect=https%3A%2F%2Fmail.test%2F"),
                 ("text/html", "https://mail.test/owa")],
           attachments=[
               attachment("Jahresabschluss_2023_Übersicht_der_Finanzabteilung_vertraulich_"
                          "endgültige_Fassung_März.xlsx",
                          "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                          fake_ooxml("xlsx", ["[Content_Types].xml", "xl/workbook.xml"], 5000),
                          filename_encoding="rfc2231"),
               attachment("Überweisungsbestätigung.pdf", "application/pdf",
                          fake_pdf("Ueberweisung", 2000), filename_encoding="rfc2047")]),
    Letter("attachments-3", "Bob Builder <bob@mail.test>", "Team <team@mail.test>",
           "Budget Q4 – Makros aktivieren", subject_encoding="B",
           cc="Carol <carol@mail.test>", reply_to="Bob Builder <bob@mail.test>",
           mailer=X_MAILER, originating_ip=X_ORIGINATING_IP,
           text="Hi,\n\nplease enable macros to see the budget figures.\n"
                "Instructions: https://docs.othercorp.example/macros/enable.html\n\nBob\n",
           urls=[("text/plain", "https://docs.othercorp.example/macros/enable.html")],
           attachments=[attachment("Q4_budget.docm",
                                   "application/vnd.ms-word.document.macroEnabled.12",
                                   fake_ooxml("docm", ["[Content_Types].xml", "word/document.xml",
                                                       "word/vbaProject.bin"], 8000))]),
]

SPOOF_LETTER = Letter(
    "spoof", "CEO <ceo@othercorp.example>", "Team <team@mail.test>", "Urgent wire transfer",
    reply_to="CEO <ceo.private@freemail.example>", mailer=X_MAILER,
    originating_ip=X_ORIGINATING_IP,
    text="Team,\n\nI need a wire transfer of EUR 48,500 today. Details follow,\n"
         "reply to this address only.\n\nCEO\n")

RESEND_LETTER = Letter(
    "resend", "Bob <bob@mail.test>", "Team <team@mail.test>", "Meeting notes (sent twice)",
    text="The client sent MAIL FROM twice and RCPT TO the same recipient twice.\n")


# smtp-bdat: RFC 3030 CHUNKING. BDAT has no dot-stuffing and no end-of-data
# line: the bytes go as they are, a line of only "." included. Delivery-only
# recipients, so the retrieval users' mailboxes stay as they were.
BDAT_LETTERS = [
    Letter("bdat-1", "Bob Builder <bob@mail.test>", "Info <info@mail.test>",
           "Chunked delivery (BDAT, three chunks)", mailer=X_MAILER,
           text="Hello,\n\nthis message went out in three BDAT chunks.\n"
                ".this line starts with a dot (sent as is: BDAT does no dot-stuffing)\n"
                ".\n"
                "The line above is a single dot: inside BDAT it is text, not the end.\n\nBob\n"),
    Letter("bdat-2", "Bob Builder <bob@mail.test>", "Sales <sales@mail.test>",
           "Chunked delivery (BDAT, one LAST chunk)", mailer=X_MAILER,
           text="Hello,\n\nthis message went out as a single BDAT ... LAST chunk.\n\nBob\n"),
]


def bdat_chunks(data, parts):
    """data cut into parts chunks: the first ends on the CR of the CR LF before
    the first line that starts with a dot (its LF opens the next chunk), the
    rest of equal size."""
    if parts == 1:
        return [data]
    cut = data.index(b"\r\n.") + 1
    rest = data[cut:]
    n = parts - 1
    step = -(-len(rest) // n)
    return [data[:cut]] + [rest[i:i + step] for i in range(0, len(rest), step)]


def utf8_letter(key, header_from, to, subject, text):
    """A message in raw UTF-8 (RFC 6531/6532): Subject and body unencoded,
    Content-Transfer-Encoding 8bit, for MAIL FROM ... BODY=8BITMIME SMTPUTF8."""
    message_id = email.utils.make_msgid(idstring=key, domain=CLIENT_NAME)
    headers = [("From", header_from), ("To", to), ("Subject", subject),
               ("Date", email.utils.formatdate()), ("Message-ID", message_id),
               ("MIME-Version", "1.0"), ("Content-Type", "text/plain; charset=utf-8"),
               ("Content-Transfer-Encoding", "8bit")]
    data = render_part(headers, text.replace("\n", "\r\n").encode("utf-8"))
    record = {"header_from": header_from, "subject": subject, "message_id": message_id,
              "headers": [[n, v] for n, v in headers], "urls": [], "attachments": []}
    msg = email.message_from_bytes(data, policy=email.policy.default)
    check(str(msg["Subject"]) == subject, f"{key}: subject reads back as {msg['Subject']}")
    return data, record


UTF8_SUBJECT = "Grüße aus Köln – Καλημέρα κόσμε"
UTF8_TEXT = ("Hallo Team,\n\n"
             "Größenänderung der Übersicht: bitte prüfen, ob die Maße stimmen.\n"
             "Ελληνικά: Γειά σου κόσμε, η συνάντηση είναι την Τρίτη.\n"
             ".Zeile mit Punkt am Anfang (dot-stuffed on the wire)\n"
             "\nGrüße, Bob\n")


def massmail_letter(n, total):
    return Letter(f"massmail-{n}", "Bob <bob@mail.test>", "undisclosed-recipients:;",
                  f"Newsletter {n}/{total}", mailer="MassMailer 2.1",
                  text=f"Newsletter part {n} of {total}.\n"
                       "Unsubscribe: https://news.mail.test/unsubscribe?id=4242\n",
                  urls=[("text/plain", "https://news.mail.test/unsubscribe?id=4242")])


# --- SMTP smuggling --------------------------------------------------------------
# End-of-data look-alikes (SEC Consult, "SMTP Smuggling", December 2023, and
# Postfix's smtp-smuggling.html / smtpd_forbid_bare_newline): each is put in
# a message's DATA, followed by a complete smuggled transaction, then the real
# <CR><LF>.<CR><LF>.
SMUGGLING_SEQUENCES = [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r.\n", b"\r.\r\n", b"\r\n.\r",
                       b"\r\n.\n", b"\r\n\x00.\r\n", b"\r\n.\x00\r\n", b"\n.\r", b"\r\n.\r\r\n"]
SMUGGLED_SENDER = f"admin@{DOMAIN}"


def printable_sequence(seq):
    return "".join({"\r": "\\r", "\n": "\\n", "\x00": "\\x00"}.get(c, c) for c in seq.decode("ascii"))


def smuggling_payload(n, seq):
    """(DATA bytes up to the real terminator's <CR><LF>, offset of seq, the
    smuggled text after it, the smuggled commands)."""
    outer = (f"From: Bob <bob@{DOMAIN}>\r\nTo: <{VICTIM}>\r\n"
             f"Subject: smuggling test {n} ({printable_sequence(seq)})\r\n"
             f"Date: {email.utils.formatdate()}\r\n"
             f"Message-ID: {email.utils.make_msgid(idstring=f'smuggling-{n}', domain=CLIENT_NAME)}\r\n"
             "\r\n"
             "The outer message, as the sending client meant it.\r\n"
             "Last line before the end-of-data look-alike").encode()
    commands = [f"MAIL FROM:<{SMUGGLED_SENDER}>", f"RCPT TO:<{VICTIM}>", "DATA"]
    smuggled = ("\r\n".join(commands) + "\r\n"
                f"From: Admin <{SMUGGLED_SENDER}>\r\nTo: <{VICTIM}>\r\n"
                f"Subject: smuggled message {n}\r\n"
                f"Message-ID: {email.utils.make_msgid(idstring=f'smuggled-{n}', domain=CLIENT_NAME)}\r\n"
                "\r\n"
                "This message was smuggled inside the outer one.\r\n").encode()
    return outer + seq + smuggled, len(outer), smuggled, commands


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

    # --- reconnaissance ------------------------------------------------------
    # (VERB, argument, expected code): the run fails if Postfix answers otherwise.
    scenario("smtp-vrfy", "smtp", 25,
             smtp_session(("VRFY", "alice@mail.test", 252), ("VRFY", "nobody@mail.test", 550),
                          ("VRFY", "bob", 252), ("VRFY", "admin@mail.test", 550),
                          ("VRFY", "root", 550), ("VRFY", "team@mail.test", 252),
                          ("VRFY", "webmaster@mail.test", 550),
                          ("EXPN", "team@mail.test", 500), ("EXPN", "staff", 500)),
             settings=["disable_vrfy_command", "smtpd_reject_unlisted_recipient"]),
    # RCPT TO as a user-existence oracle; nothing is sent (RSET).
    scenario("smtp-rcpt-probe", "smtp", 25,
             smtp_session(("MAIL", "bob@mail.test"),
                          *[("RCPT", f"{u}@{DOMAIN}", 550, True)
                            for u in ("admin", "root", "test", "webmaster", "nobody")],
                          ("RCPT", "alice@mail.test", 250, True), ("RSET",)),
             settings=["smtpd_reject_unlisted_recipient"]),
    # Postfix has no EXPN (500, command not recognized): the scripted peer answers it.
    scenario("smtp-expn-peer", "smtp", 25,
             smtp_session(("EXPN", "staff", 250), ("EXPN", "alice", 250),
                          ("EXPN", "nosuchlist", 550)),
             host=PEER_HOST),

    # --- messages ---------------------------------------------------------------
    # One session, three messages, twelve recipients (four each).
    scenario("smtp-massmail", "smtp", 25,
             smtp_session(*[step for n in range(3) for step in (
                 ("MAIL", "bob@mail.test"),
                 *[("RCPT", r) for r in MASSMAIL_RECIPIENTS[4 * n:4 * n + 4]],
                 ("DATA", massmail_letter(n + 1, 3)))])),
    scenario("smtp-attachments", "smtp", 25,
             smtp_session(*[step for letter in ATTACHMENT_LETTERS for step in (
                 ("MAIL", "bob@mail.test"), ("RCPT", TEAM), ("DATA", letter))])),
    # Envelope bob@, header From: the CEO of another company, Reply-To elsewhere.
    scenario("smtp-spoof", "smtp", 25,
             smtp_session(("MAIL", "bob@mail.test"), ("RCPT", TEAM), ("DATA", SPOOF_LETTER))),
    # MAIL FROM twice (503 nested MAIL), RCPT TO the same address twice.
    scenario("smtp-resend", "smtp", 25,
             smtp_session(("MAIL", "bob@mail.test"), ("MAIL", "bob@mail.test", 503),
                          ("RCPT", TEAM), ("RCPT", TEAM), ("DATA", RESEND_LETTER))),

    # RFC 3030 CHUNKING: one message in three BDAT chunks, one in a single LAST chunk.
    scenario("smtp-bdat", "smtp", 25,
             smtp_session(("MAIL", "bob@mail.test"), ("RCPT", "info@mail.test"),
                          ("BDAT", BDAT_LETTERS[0], 3),
                          ("MAIL", "bob@mail.test"), ("RCPT", "sales@mail.test"),
                          ("BDAT", BDAT_LETTERS[1], 1))),
    # RFC 6152 8BITMIME + RFC 6531 SMTPUTF8: raw UTF-8 Subject and body, smtplib's sendmail.
    scenario("smtp-8bitmime", "smtp", 25,
             smtp_session(("SENDMAIL", "bob@mail.test", ["info@mail.test"],
                           ["BODY=8BITMIME", "SMTPUTF8"]))),

    # --- SMTP smuggling: one session per end-of-data look-alike ---------------
    # The SMUGGLE step sends DATA, the content, the real end and QUIT itself.
    scenario("smtp-smuggling", "smtp", 25,
             *[[("EHLO",), ("MAIL", "bob@mail.test"), ("RCPT", VICTIM), ("SMUGGLE", n, seq)]
               for n, seq in enumerate(SMUGGLING_SEQUENCES, 1)],
             settings=["smtpd_forbid_bare_newline", "smtpd_forbid_bare_newline_exclusions",
                       "smtpd_forbid_unauth_pipelining", "mynetworks"]),

    # --- retrieval of what the SMTP scenarios delivered ---------------------
    # Each user got one copy of every message to team@mail.test (attachments
    # x3, spoof, resend), through the alias in config/virtual.
    scenario("pop3-retrieve", "pop3", 110, pop3_retrieval("dave")),
    scenario("pop3-retrieve-stls", "pop3", 110, pop3_retrieval("erin", stls=True)),
    scenario("pop3-retrieve-implicit", "pop3", 995, pop3_retrieval("frank"), implicit_tls=True),
    scenario("imap-retrieve", "imap", 143, imap_retrieval("grace")),
    scenario("imap-retrieve-starttls", "imap", 143, imap_retrieval("heidi", starttls=True)),
    scenario("imap-retrieve-implicit", "imap", 993, imap_retrieval("ivan"), implicit_tls=True),

    # --- STARTTLS / TLS posture ---------------------------------------------------
    # Real servers, the client's TLS capped at 1.2 (the scenarios above get 1.3).
    # No mail to alice and no SELECT: the older scenarios' mailboxes stay as they were.
    scenario("smtp-starttls-tls12", "smtp", 587, smtp_session(auth("PLAIN", "alice"), starttls=True),
             tls=TLS_12),
    scenario("pop3-stls-tls12", "pop3", 110, pop3_session(auth("USER/PASS", "alice"), ("STAT",), stls=True),
             tls=TLS_12),
    scenario("imap-starttls-tls12", "imap", 143, imap_session(auth("IMAP-LOGIN", "alice"), starttls=True),
             tls=TLS_12),
    # TLS 1.0: Postfix's own submission service negotiates it with a client that
    # asks for it. TLS 1.1: Dovecot only on its IMAPS listener on 127.0.0.3
    # (ssl_min_protocol = TLSv1 there; TLS 1.2 is its minimum elsewhere).
    scenario("smtp-starttls-tls10", "smtp", 587, smtp_session(auth("PLAIN", "alice"), starttls=True),
             tls=legacy_tls("TLSv1")),
    scenario("imap-implicit-tls11", "imap", 993, imap_session(auth("IMAP-LOGIN", "alice")),
             implicit_tls=True, host=ALT_TLS_HOST, tls=legacy_tls("TLSv1_1")),
    # TLS 1.3 without a server name in the ClientHello.
    scenario("pop3-implicit-nosni", "pop3", 995, pop3_session(auth("USER/PASS", "alice"), ("STAT",)),
             implicit_tls=True, tls={"sni": None}),
    # Postfix on 127.0.0.3:25 lists STARTTLS but cannot load its certificate: 454.
    # The client goes on in clear, as an opportunistic MTA does.
    scenario("smtp-starttls-refused", "smtp", 25,
             smtp_session(("STARTTLS", "refused"), *mail_transaction("bob", "bob")), host=ALT_TLS_HOST),
    # CAPA lists STLS; the client logs in in clear all the same.
    scenario("pop3-stls-offered-unused", "pop3", 110,
             pop3_session(("CAPA",), auth("USER/PASS", "alice"), ("STAT",))),

    # Scripted peer (peer.py's STARTTLS / TLS behaviours). ("ATTACK", name)
    # states what the session is meant to meet; the run checks that it did.
    # Stripping: STARTTLS / STLS answered yes, the client goes on in clear.
    scenario("smtp-starttls-stripped", "smtp", 587,
             smtp_session(("ATTACK", "stripping"), ("STARTTLS_CLEAR",), ("EHLO",), auth("PLAIN", "alice"),
                          *mail_transaction("alice", "bob")),
             host=STRIPPING_HOST),
    scenario("imap-starttls-stripped", "imap", 143,
             imap_session(("ATTACK", "stripping"), ("STARTTLS_CLEAR",), auth("IMAP-LOGIN", "alice"),
                          ("SELECT", "INBOX")),
             host=STRIPPING_HOST),
    scenario("pop3-stls-stripped", "pop3", 110,
             pop3_session(("ATTACK", "stripping"), ("CAPA",), ("STLS_CLEAR",), auth("USER/PASS", "alice"),
                          ("STAT",)),
             host=STRIPPING_HOST),
    # PREAUTH in clear; the STARTTLS that follows is refused (BAD).
    scenario("imap-preauth", "imap", 143,
             imap_session(("ATTACK", "preauth"), ("STARTTLS", "refused"), ("SELECT", "INBOX")),
             host=PREAUTH_HOST),
    # LOGIN answered "NO [ALERT] ..." in clear (no STARTTLS offered).
    scenario("imap-alert", "imap", 143,
             imap_session(("ATTACK", "alert"), auth("IMAP-LOGIN", "alice", expect="failure")),
             host=ALERT_HOST),
    # Two sessions to one address and port: STARTTLS offered and used, then not offered.
    scenario("smtp-capability-stripped", "smtp", 587,
             smtp_session(auth("PLAIN", "alice"), starttls=True),
             smtp_session(("ATTACK", "capability-stripped"), auth("PLAIN", "alice")),
             host=CAPSTRIP_HOST),
    scenario("imap-capability-stripped", "imap", 143,
             imap_session(auth("IMAP-LOGIN", "alice"), starttls=True),
             imap_session(("ATTACK", "capability-stripped"), auth("IMAP-LOGIN", "alice")),
             host=CAPSTRIP_HOST),
    # A command in clear after STARTTLS, before the reply; answered inside TLS.
    scenario("smtp-response-buffering", "smtp", 587,
             smtp_session(("ATTACK", "response-buffering"), ("STARTTLS_BUFFERED", "NOOP"), ("EHLO",),
                          auth("PLAIN", "alice")),
             host=BUFFERING_HOST),
    scenario("imap-response-buffering", "imap", 143,
             imap_session(("ATTACK", "response-buffering"), ("STARTTLS_BUFFERED", "CAPABILITY"),
                          auth("IMAP-LOGIN", "alice")),
             host=BUFFERING_HOST),
]

STARTTLS_VERBS = {"STARTTLS", "STLS"}


def transport_of(steps, implicit_tls):
    """The transport a session's steps are meant to end in (recorded is what it
    really got: Session.tls_started)."""
    if implicit_tls:
        return "implicit-tls"
    return "starttls" if any(s[0] in STARTTLS_VERBS and s[1:] in ((), ("accepted",))
                             or s[0] == "STARTTLS_BUFFERED" for s in steps) else "cleartext"


def may_use_tls(steps, implicit_tls):
    return implicit_tls or any(s[0] in STARTTLS_VERBS or s[0] == "STARTTLS_BUFFERED" for s in steps)


# --- recording ---------------------------------------------------------------

class Session:
    """What one client connection did and what the server answered."""

    def __init__(self, protocol, server_port, transport, server=None, tcp_stream=None,
                 server_address=HOST):
        self.protocol = protocol
        self.server_port = server_port
        self.server_address = server_address
        self.transport = transport
        self.server = server   # only when not the capture's usual server
        self.client_port = None
        self.sni = None
        self.greeting = None
        self.offered = False
        self.requested = False
        self.accepted = False
        # STARTTLS / TLS posture: the answer to STARTTLS / STLS, the TLS the
        # client really got, every capability list it received, the attack met.
        self.starttls_result = None      # "accepted" | "refused" | None (not asked)
        self.starttls_reply = None       # {"code", "text"} of that answer
        self.under_tls = False
        self.tls_started = False
        self.tls_version = None
        self.tls_cipher = None
        self.capabilities = []
        self.buffered = None             # what was sent after STARTTLS, before its reply
        self.alert_in_clear = None       # the first IMAP [ALERT] text received in clear
        self.meant_attack = None         # ("ATTACK", name) in the steps
        self.attack = None
        self.auth = []
        self.commands = []
        self.replies = []   # one list of reply statuses per command
        self.messages = []
        # The session's index among the capture's TCP connections (they run one
        # after the other, so it is Wireshark's tcp.stream).
        self.tcp_stream = tcp_stream
        # Parallel to commands: the line as sent, each reply's status and text.
        self.exchanges = []
        self.probes = []        # VRFY / EXPN / probing RCPT TO, with the answers
        self.retrieved = None   # POP3 / IMAP retrieval: what came back, and from where

    def sent(self, verb, line=None):
        """Returns the command's index (for answers that come out of order)."""
        self.commands.append(verb)
        self.replies.append([])
        self.exchanges.append({"command": line, "replies": [], "tcp_stream": self.tcp_stream})
        return len(self.commands) - 1

    def sent_line(self, line):
        """The line of the last command, when it is known only as it goes out (IMAP)."""
        if self.exchanges and self.exchanges[-1]["command"] is None:
            self.exchanges[-1]["command"] = line

    def answered(self, status, text, detail=None, index=None):
        """status: the reply's code / +OK / tag status; text: the whole line
        (used for the greeting); detail: the text after the status; index:
        the command answered (default: the last one sent)."""
        said = detail if detail is not None else text
        if self.alert_in_clear is None and not self.under_tls and said and "[ALERT]" in said.upper():
            self.alert_in_clear = said
        if self.commands:
            i = len(self.commands) - 1 if index is None else index
            self.replies[i].append(status)
            self.exchanges[i]["replies"].append({"code": status, "text": detail})
        elif self.greeting is None:
            self.greeting = text

    def capability_list(self, command, names, tls):
        """A capability answer the client received (EHLO, CAPA, CAPABILITY, or
        the IMAP greeting's CAPABILITY code)."""
        starttls = any(n.upper() in STARTTLS_VERBS for n in names)
        self.capabilities.append({"command": command, "starttls": starttls, "tls": tls})
        if starttls and not tls:
            self.offered = True

    def offered_in_clear(self):
        return any(c["starttls"] for c in self.capabilities if not c["tls"])

    def observed_attack(self, earlier):
        """The attack the session met, from what crossed the wire. earlier:
        the capture's sessions before this one (same address and port)."""
        if self.starttls_result == "accepted" and not self.tls_started:
            return "stripping"
        if self.buffered is not None and self.tls_started:
            return "response-buffering"
        if self.protocol == "imap" and (self.greeting or "").upper().startswith("* PREAUTH") \
                and self.transport != "implicit-tls":
            return "preauth"
        if self.alert_in_clear is not None:
            return "alert"
        clear_lists = [c for c in self.capabilities if not c["tls"]]
        if clear_lists and not self.offered_in_clear() and any(e.offered_in_clear() for e in earlier):
            return "capability-stripped"
        return None

    def to_json(self):
        return {
            "client_port": self.client_port,
            "server_port": self.server_port,
            "protocol": self.protocol,
            "transport": self.transport,
            "sni": self.sni,
            "greeting": self.greeting,
            "starttls": {"offered": self.offered, "requested": self.requested,
                         "accepted": self.accepted, "result": self.starttls_result,
                         "reply": self.starttls_reply},
            "server_address": self.server_address,
            "starttls_offered": self.offered,
            "starttls_used": self.requested,
            "tls_started": self.tls_started,
            "tls_version": self.tls_version,
            "tls_cipher": self.tls_cipher,
            "capabilities": self.capabilities,
            "attack": self.attack,
            "buffered_after_starttls": self.buffered,
            "alert": self.alert_in_clear,
            "auth": self.auth,
            "commands": self.commands,
            "replies": self.replies,
            "messages": self.messages,
            **({"server": self.server} if self.server else {}),
            "tcp_stream": self.tcp_stream,
            "exchanges": self.exchanges,
            **({"probes": self.probes} if self.probes else {}),
            **({"retrieved": self.retrieved} if self.retrieved is not None else {}),
        }


def under_tls(sock):
    return isinstance(sock, ssl.SSLSocket)


def pop_status(line):
    """(status, whole line, text after the status) of a POP3 response line."""
    status, _, detail = line.partition(" ")
    return status, line, detail


class NamedServerContext(ssl.SSLContext):
    """We connect to an address, but send the server's name as SNI, as a
    client configured with that name would; the libraries pass the address.
    sni None: no server name at all."""

    sni = SERVER_NAME

    def wrap_socket(self, sock, *args, server_hostname=None, **kwargs):
        return super().wrap_socket(sock, *args, server_hostname=self.sni, **kwargs)


def tls_context(keylog, settings=None):
    """settings: scenario(..., tls=...)."""
    settings = settings or {}
    ctx = NamedServerContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE   # the lab's certificate is self-signed
    ctx.sni = settings.get("sni", SERVER_NAME)
    if "ciphers" in settings:
        ctx.set_ciphers(settings["ciphers"])
    with warnings.catch_warnings():
        # TLS 1.0 / 1.1 are deprecated: asking for them is the point here.
        warnings.simplefilter("ignore", DeprecationWarning)
        if "min" in settings:
            ctx.minimum_version = getattr(ssl.TLSVersion, settings["min"])
        if "max" in settings:
            ctx.maximum_version = getattr(ssl.TLSVersion, settings["max"])
    ctx.keylog_filename = str(keylog)
    return ctx


def expected_tls_version(settings):
    return TLS_NAMES[{"TLSv1": "TLSv1", "TLSv1_1": "TLSv1.1", "TLSv1_2": "TLSv1.2",
                      "TLSv1_3": "TLSv1.3"}[settings.get("max", "TLSv1_3")]]


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
        self.session.answered(*pop_status(line))
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


# --- what was sent, what was stored -------------------------------------------

# Message-ID -> {"scenario", "data"} of every message this run sent with DATA
# (the retrieval scenarios link what they fetch to it).
SENT = {}
# id(retrieved entry) -> the bytes received (for TOP's comparison).
SENT_RETRIEVED = {}
# user -> maildir paths already reported (smtp-smuggling's "stored").
STORED_SEEN = {}
# The maildirs' root (generate.sh sets it); without it nothing is read from disk.
MAILDIR_BASE = os.environ.get("MAILSEC_MAILDIR_BASE")


def maildir_files(user):
    """{path under the user's Maildir: content} of every message file in INBOX
    (new/, cur/) and Trash (.Trash/new/, .Trash/cur/); None without MAILDIR_BASE."""
    if not MAILDIR_BASE or not user:
        return None
    root = Path(MAILDIR_BASE) / user / "Maildir"
    files = {}
    for folder in ("new", "cur", ".Trash/new", ".Trash/cur"):
        d = root / folder
        if d.is_dir():
            for f in sorted(d.iterdir()):
                if f.is_file():
                    files[str(f.relative_to(root))] = f.read_bytes()
    return files


def header_fields(message):
    """[[name, value], ...] of a message's header section, unfolded (the
    <CR><LF> before each continuation line removed), values without the
    blanks after the colon."""
    head = message.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    head = re.sub(r"\r\n(?=[ \t])", "", head)
    fields = []
    for line in head.split("\r\n"):
        name, _, value = line.partition(":")
        fields.append([name, value.lstrip(" \t")])
    return fields


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
        line = cmd if args == "" else f"{cmd} {args}"   # as smtplib writes it
        # The base64 lines that follow AUTH go through putcmd too; they are
        # SASL data, not commands.
        if verb == "AUTH":
            self.in_sasl = True
            self.session.sent(verb, line)
        elif not self.in_sasl:
            self.session.sent(verb, line)
        super().putcmd(cmd, args)

    def getreply(self):
        code, msg = super().getreply()
        text = msg.decode(errors="replace")
        self.session.answered(str(code), f"{code} {text}", text)
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
        self.session.sent(line.split(" ", 1)[0].upper(), line)
        super()._putcmd(line)

    def _getresp(self):
        try:
            resp = super()._getresp()
        except poplib.error_proto as e:
            line = e.args[0]
            self.session.answered(*pop_status(line.decode(errors="replace")))
            raise
        self.session.answered(*pop_status(resp.decode(errors="replace")))
        return resp

    def capa(self):
        caps = super().capa()
        self.session.capability_list("CAPA", list(caps), under_tls(self.sock))
        return caps


class RecordingPOP3(_PopRecording, poplib.POP3):
    pass


class RecordingPOP3_SSL(_PopRecording, poplib.POP3_SSL):
    pass


class _ImapRecording:
    def __init__(self, session, *args, **kwargs):
        self.session = session
        self.line_pending = False   # the next send() starts a command line
        self.last_text = None       # text of the last tagged (or BYE) response
        super().__init__(*args, timeout=TIMEOUT, **kwargs)
        self.session.greeting = self.welcome.decode(errors="replace")
        if "[ALERT]" in self.session.greeting.upper() and not under_tls(self.sock):
            self.session.alert_in_clear = self.session.greeting

    def _command(self, name, *args):
        self.session.sent(name)
        self.line_pending = True
        return super()._command(name, *args)

    def send(self, data):
        if self.line_pending:
            self.line_pending = False
            self.session.sent_line(data.split(b"\r\n", 1)[0].decode("utf-8", "backslashreplace"))
        super().send(data)

    def _get_tagged_response(self, tag, expect_bye=False):
        typ, data = super()._get_tagged_response(tag, expect_bye=expect_bye)
        last = data[-1] if data else None
        self.last_text = last.decode(errors="replace") if isinstance(last, bytes) else None
        return typ, data

    def _command_complete(self, name, tag):
        self.last_text = None
        try:
            typ, data = super()._command_complete(name, tag)
        except self.abort:
            self.session.answered("BYE", None, self.last_text)
            raise
        except self.error:
            self.session.answered("BAD", None, self.last_text)
            raise
        self.session.answered(typ, None, self.last_text)
        return typ, data

    def _get_capabilities(self):
        if not self.session.capabilities:
            # The greeting came first (imaplib asks CAPABILITY right after it).
            m = re.search(rb"\[CAPABILITY ([^\]]*)\]", self.welcome, re.I)
            if m:
                self.session.capability_list("greeting", m.group(1).decode().split(),
                                             under_tls(self.sock))
        super()._get_capabilities()
        self.session.capability_list("CAPABILITY", list(self.capabilities), under_tls(self.sock))


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
        self.login_user = None      # who logged in (retrieval reads that user's maildir)
        self.stored_before = None   # the maildir's message files before retrieval
        self.conn = self.connect(implicit_tls)
        self.s.client_port = self.conn.sock.getsockname()[1]
        if implicit_tls:
            self.tls_began()

    def run(self, step):
        getattr(self, "do_" + step[0])(*step[1:])

    def do_ATTACK(self, name):
        """Not a command: the attack this session is meant to meet (checked
        against what it met when it ends)."""
        self.s.meant_attack = name

    def tls_began(self):
        """TLS is up on the connection: record what the client negotiated."""
        sock = self.conn.sock
        check(under_tls(sock), f"{self.name}: no TLS on the socket")
        self.s.under_tls = self.s.tls_started = True
        self.s.tls_version = TLS_NAMES[sock.version()]
        self.s.tls_cipher = sock.cipher()[0]
        self.s.sni = self.ctx.sni

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
        if result == "success":
            self.login_user = spec["username"]
        check(result == spec["expect"],
              f"{self.name}: {m} as {spec['username']} was {result}, should be {spec['expect']}")

    # --- retrieval (POP3 RETR / IMAP FETCH) ground truth ---------------------

    def start_retrieval(self):
        self.s.retrieved = []
        self.stored_before = maildir_files(self.login_user)

    def retrieved_entry(self, received, number, **ids):
        """One retrieved message: as the client received it (dot-unstuffed
        RETR body / IMAP literal) and as the server stored it on disk."""
        headers = header_fields(received)
        first = {}
        for n, v in headers:
            first.setdefault(n.lower(), v)
        message_id = first.get("message-id")
        stored_path = stored = None
        if self.stored_before is not None:
            stored_path, stored = next(((p, c) for p, c in self.stored_before.items()
                                        if c.replace(b"\n", b"\r\n") == received), (None, None))
            check(stored is not None, f"{self.name}: message {number} not found on disk")
        sent = SENT.get(message_id)
        entry = {
            "number": number, **ids,
            "message_id": message_id,
            "header_from": first.get("from"),
            "subject": str(email.message_from_bytes(received, policy=email.policy.default)["Subject"]),
            "received_size": len(received),
            "received_sha256": hashlib.sha256(received).hexdigest(),
            "stored_file": stored_path,
            "stored_size": len(stored) if stored is not None else None,
            "stored_sha256": hashlib.sha256(stored).hexdigest() if stored is not None else None,
            "headers": headers,
            "smtp_scenario": sent["scenario"] if sent else None,
            "smtp_data_sha256": hashlib.sha256(sent["data"]).hexdigest() if sent else None,
            "stored_ends_with_smtp_data": (stored.endswith(sent["data"].replace(b"\r\n", b"\n"))
                                           if sent and stored is not None else None),
            "fate": "kept",
            "moved_to": None,
        }
        self.s.retrieved.append(entry)
        SENT_RETRIEVED[id(entry)] = received
        return entry

    def entry_by_number(self, n):
        return next(e for e in self.s.retrieved if e["number"] == n)

    def finish_retrieval(self):
        """After QUIT / LOGOUT: where each retrieved message is on disk now."""
        if self.s.retrieved is None or self.stored_before is None:
            return
        after = maildir_files(self.login_user)
        for e in self.s.retrieved:
            content = self.stored_before[e["stored_file"]]
            places = {p.split("/", 1)[0] for p, c in after.items() if c == content}
            where = "trash" if ".Trash" in places else "inbox" if places else "gone"
            e["on_disk_after"] = where
            want = {"kept": "inbox", "deleted": "gone", "expunged": "gone", "moved": "trash"}[e["fate"]]
            check(where == want, f"{self.name}: message {e['number']} ({e['fate']}) is {where} on disk")

    def make_mech(self, spec, service):
        return MECHS[spec["mechanism"]](spec, service, self.s.server_port)

    def starttls_done(self, verb, accepted, expect="accepted", tls=True):
        """After STARTTLS / STLS. tls: whether the client went on to TLS after
        a yes (not when it plays a stripped session)."""
        # The libraries give up without sending anything when the server's
        # capabilities do not list the upgrade.
        self.s.requested = verb in self.s.commands
        self.s.accepted = accepted
        if self.s.requested:
            i = len(self.s.commands) - 1 - self.s.commands[::-1].index(verb)
            replies = self.s.exchanges[i]["replies"]
            self.s.starttls_reply = replies[-1] if replies else None
            self.s.starttls_result = "accepted" if accepted else "refused"
        if accepted and tls:
            self.tls_began()
        check((self.s.starttls_result or "not sent") == expect,
              f"{self.name}: {verb} {self.s.starttls_result or 'not sent'}, expected {expect}")


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
        self.s.capability_list("EHLO", [k.upper() for k in self.conn.esmtp_features],
                               under_tls(self.conn.sock))

    def do_STARTTLS(self, expect="accepted"):
        try:
            self.conn.starttls(context=self.ctx)
            accepted = True
        except (smtplib.SMTPResponseException, smtplib.SMTPNotSupportedError):
            accepted = False
        self.starttls_done("STARTTLS", accepted, expect)

    def forget_ehlo(self):
        # RFC 3207 4.2: after STARTTLS the client forgets what it learnt (smtplib does the same).
        c = self.conn
        c.helo_resp = c.ehlo_resp = None
        c.esmtp_features = {}
        c.does_esmtp = False

    def do_STARTTLS_CLEAR(self):
        """STARTTLS answered 220, and the client goes on in clear (as behind
        a middlebox that answered for the server and strips TLS)."""
        c = self.conn
        c.putcmd("STARTTLS")
        code, _ = c.getreply()
        self.forget_ehlo()
        self.starttls_done("STARTTLS", code == 220, tls=False)

    def do_STARTTLS_BUFFERED(self, line):
        """STARTTLS, then line in a segment of its own before the reply; after
        the 220, TLS, and line's answer read inside it."""
        c = self.conn
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        first = self.s.sent("STARTTLS", "STARTTLS")
        c.send(b"STARTTLS\r\n")
        time.sleep(BUFFERING_PAUSE)
        second = self.s.sent(line.split(" ", 1)[0].upper(), line)
        c.send(line.encode() + b"\r\n")
        self.s.buffered = line + "\r\n"
        code, msg = smtplib.SMTP.getreply(c)          # recorded here, against STARTTLS
        text = msg.decode(errors="replace")
        self.s.answered(str(code), f"{code} {text}", text, index=first)
        if code == 220:
            c.sock = self.ctx.wrap_socket(c.sock, server_hostname=self.host)
            c.file = None
        self.starttls_done("STARTTLS", code == 220)
        code, msg = smtplib.SMTP.getreply(c)
        text = msg.decode(errors="replace")
        self.s.answered(str(code), f"{code} {text}", text, index=second)
        check(code == 250, f"{self.name}: {line} answered {code} inside TLS")
        self.forget_ehlo()

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

    def do_MAIL(self, sender, expect=250):
        code, msg = self.conn.mail(sender)
        check(code == expect, f"{self.name}: MAIL FROM answered {code}, expected {expect}")
        if code == 250:
            self.envelope = {"mail_from": sender, "rcpt_to": []}
        else:
            # A refused MAIL (e.g. 503 nested MAIL) leaves the transaction as it was.
            self.envelope.setdefault("mail_from_refused", []).append(
                {"mail_from": sender, "code": str(code), "text": msg.decode(errors="replace")})

    def do_RCPT(self, recipient, expect=250, probe=False):
        code, msg = self.conn.rcpt(recipient)
        check(code == expect, f"{self.name}: RCPT TO {recipient} answered {code}, expected {expect}")
        if probe:
            self.probe("RCPT", recipient, code, msg)
        if code == 250:
            self.envelope["rcpt_to"].append(recipient)
        else:
            self.envelope.setdefault("rcpt_rejected", []).append(recipient)

    def probe(self, command, argument, code, msg):
        self.s.probes.append({"command": command, "argument": argument, "code": str(code),
                              "text": msg.decode(errors="replace"), "exists": code in (250, 251, 252),
                              "exchange": len(self.s.exchanges) - 1})

    def do_VRFY(self, argument, expect):
        code, msg = self.conn.verify(argument)
        self.probe("VRFY", argument, code, msg)
        check(code == expect, f"{self.name}: VRFY {argument} answered {code}, expected {expect}")

    def do_EXPN(self, argument, expect):
        code, msg = self.conn.expn(argument)
        self.probe("EXPN", argument, code, msg)
        check(code == expect, f"{self.name}: EXPN {argument} answered {code}, expected {expect}")

    def do_RSET(self):
        code, _ = self.conn.rset()
        check(code == 250, f"{self.name}: RSET answered {code}")
        self.envelope = None

    def do_DATA(self, letter=None):
        env = self.envelope
        if letter is not None:
            data, record = letter.build()
            code, msg = self.conn.data(data)   # raises SMTPDataError unless 354 then 250
            check(code == 250, f"{self.name}: end of DATA answered {code}")
            self.record_message(env, record, data, code, msg)
            return
        sender = env["mail_from"]
        header_from = f"{sender.split('@')[0].capitalize()} <{sender}>"
        subject = f"mailsec capture {self.name}"
        message_id = email.utils.make_msgid(domain=CLIENT_NAME)
        headers = [("From", header_from), ("To", ", ".join(env["rcpt_to"])), ("Subject", subject),
                   ("Date", email.utils.formatdate()), ("Message-ID", message_id)]
        body = "\r\n".join([
            *(f"{n}: {v}" for n, v in headers),
            "",
            "This message was sent by captures/driver.py to a throwaway Postfix",
            "so that the mailsec plugin has a real SMTP session to dissect.",
        ])
        code, msg = self.conn.data(body)   # raises SMTPDataError unless 354 then 250
        # What smtplib put between the 354 and the final ".": CRLF line ends,
        # a last CRLF added (before its dot-stuffing, which is undone here).
        data = smtplib._fix_eols(body).encode("ascii")
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        self.record_message(env, {"header_from": header_from, "subject": subject,
                                  "message_id": message_id,
                                  "headers": [[n, v] for n, v in headers],
                                  "urls": [], "attachments": []}, data, code, msg)

    def record_message(self, env, record, data, code, msg):
        text = msg.decode(errors="replace")
        queued = re.search(r"queued as (\S+)", text)
        entry = {**env, "header_from": record["header_from"], "subject": record["subject"],
                 "accepted": code == 250, **record, **message_facts(data),
                 "reply": {"code": str(code), "text": text},
                 "queue_id": queued.group(1) if queued else None}
        self.s.messages.append(entry)
        SENT[record["message_id"]] = {"scenario": self.name, "data": data}

    def do_BDAT(self, letter, parts):
        """RFC 3030: the message in parts BDAT chunks on smtplib's socket
        (smtplib has no BDAT), each "BDAT <n>" line and its n bytes in one
        write, the last "BDAT <n> LAST"; every reply recorded."""
        c = self.conn
        env = self.envelope
        check("chunking" in c.esmtp_features, f"{self.name}: CHUNKING not offered")
        data, record = letter.build()
        chunks = bdat_chunks(data, parts)
        check(b"".join(chunks) == data and len(chunks) == parts, f"{self.name}: bad chunks")
        replies = []
        for i, chunk in enumerate(chunks):
            line = f"BDAT {len(chunk)}" + (" LAST" if i == len(chunks) - 1 else "")
            self.s.sent("BDAT", line)
            c.send(line.encode("ascii") + b"\r\n" + chunk)
            code, msg = c.getreply()
            replies.append({"code": str(code), "text": msg.decode(errors="replace")})
            check(code == 250, f"{self.name}: {line} answered {code}")
        self.record_message(env, record, data, code, msg)
        self.s.messages[-1].update({
            "dot_stuffed_lines": 0,   # BDAT: no dot-stuffing at all
            "transfer": "BDAT",
            "chunks": [len(ch) for ch in chunks],
            "chunk_replies": replies,
        })
        self.envelope = None

    def do_SENDMAIL(self, sender, recipients, mail_options):
        """smtplib's sendmail with ESMTP MAIL parameters (it adds SIZE=n itself)
        and a raw UTF-8 message as bytes (smtplib dot-stuffs it and ends it)."""
        c = self.conn
        for kw in ("8bitmime", "smtputf8"):
            check(kw in c.esmtp_features, f"{self.name}: {kw.upper()} not offered")
        data, record = utf8_letter("8bitmime", f"Bob Builder <{sender}>",
                                   ", ".join(f"<{r}>" for r in recipients), UTF8_SUBJECT, UTF8_TEXT)
        first = len(self.s.exchanges)
        refused = c.sendmail(sender, recipients, data, mail_options=mail_options)
        check(not refused, f"{self.name}: recipients refused: {refused}")
        mail_line = self.s.exchanges[first]["command"]
        check(mail_line.upper().startswith("MAIL FROM:"), f"{self.name}: {mail_line}")
        data_ex = self.s.exchanges[-1]
        check(data_ex["command"].upper() == "DATA" and [r["code"] for r in data_ex["replies"]] == ["354", "250"],
              f"{self.name}: DATA exchange {data_ex}")
        # What smtplib put between the 354 and the final "." (before its dot-stuffing).
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        env = {"mail_from": sender, "rcpt_to": list(recipients)}
        self.record_message(env, record, data, 250, data_ex["replies"][-1]["text"].encode())
        self.s.messages[-1].update({"mail_parameters": mail_line.split(">", 1)[1].split(),
                                    "transfer": "DATA"})

    def do_SMUGGLE(self, n, seq):
        """DATA whose content holds the end-of-data look-alike seq, then a
        smuggled MAIL/RCPT/DATA and message, then the real <CR><LF>.<CR><LF>,
        written raw (smtplib would dot-stuff the look-alike away). QUIT is
        pipelined right behind, so every reply the server gives before its
        221 answers the content, whatever the server made of it."""
        c = self.conn
        env = self.envelope
        content, offset, smuggled, commands = smuggling_payload(n, seq)
        c.putcmd("data")
        code, msg = c.getreply()
        check(code == 354, f"{self.name}: DATA answered {code}")
        c.send(content + b".\r\n")
        c.send(b"QUIT\r\n")
        replies = []
        while True:
            try:
                code, msg = smtplib.SMTP.getreply(c)   # not recorded yet: see below
            except smtplib.SMTPServerDisconnected:
                break
            replies.append((code, msg.decode(errors="replace")))
            if code == 221:
                break
        check(replies and replies[-1][0] == 221, f"{self.name}: no 221 after the content: {replies}")
        for code, text in replies[:-1]:
            self.s.answered(str(code), f"{code} {text}", text)
        self.s.sent("QUIT", "QUIT")
        self.s.answered("221", f"221 {replies[-1][1]}", replies[-1][1])
        c.close()
        answers = [{"code": str(code), "text": text} for code, text in replies[:-1]]
        codes = [a["code"] for a in answers]
        if codes == ["250"]:
            ended = "final"       # one message, look-alike and all
        elif codes == ["250", "250", "250", "354", "250"]:
            ended = "sequence"    # the look-alike ended the data; the smuggled commands ran
        else:
            ended = "other"
        queue_ids = [m.group(1) for a in answers if (m := re.search(r"queued as (\S+)", a["text"]))]
        # The same replies as the server paired them: with the look-alike taken
        # as the end, the smuggled lines were commands to it.
        if ended == "sequence":
            server_exchanges = [{"command": "<end of data: the look-alike>", "replies": answers[0:1]},
                                {"command": commands[0], "replies": answers[1:2]},
                                {"command": commands[1], "replies": answers[2:3]},
                                {"command": commands[2], "replies": answers[3:5]}]
        elif ended == "final":
            server_exchanges = [{"command": "<end of data: the real <CR><LF>.<CR><LF>>",
                                 "replies": answers}]
        else:
            server_exchanges = None
        subject = f"smuggling test {n} ({printable_sequence(seq)})"
        self.s.messages.append({
            **env, "header_from": f"Bob <bob@{DOMAIN}>", "subject": subject,
            "accepted": bool(codes) and codes[0] == "250",
            "message_id": re.search(rb"Message-ID: (\S+)", content).group(1).decode(),
            **message_facts(content),
            "dot_stuffed_lines": 0,   # sent raw: no dot-stuffing at all
            "sent_raw": True,
            "wire_size": len(content) + 3, "wire_sha256": hashlib.sha256(content + b".\r\n").hexdigest(),
            "reply": answers[0] if answers else None,
            "queue_id": queue_ids[0] if queue_ids else None,
            "smuggling": {
                "sequence": printable_sequence(seq),
                "sequence_hex": seq.hex(),
                "offset": offset,
                "smuggled_text": smuggled.decode("ascii"),
                "smuggled_commands": commands,
                "smuggled_mail_from": SMUGGLED_SENDER,
                "smuggled_rcpt_to": [VICTIM],
                "replies": answers,
                "server_ended_data_at": ended,
                "server_exchanges": server_exchanges,
                "queue_ids": queue_ids,
                "stored": self.newly_stored("victim", queue_ids),
            },
        })

    def newly_stored(self, user, queue_ids):
        """The message files Postfix delivered to user since the last call
        (after the queue is empty): what the server made of the DATA. None
        without MAILDIR_BASE."""
        wait_for_delivery()
        files = maildir_files(user)
        if files is None:
            return None
        seen = STORED_SEEN.setdefault(user, set())
        stored = []
        for path, content in sorted(files.items()):
            if path in seen:
                continue
            seen.add(path)
            fields = {n.lower(): v for n, v in reversed(header_fields(content.replace(b"\n", b"\r\n")))}
            queued = re.search(r"\bid (\S+?);?\s", fields.get("received", "") + " ")
            stored.append({"file": path, "size": len(content),
                           "sha256": hashlib.sha256(content).hexdigest(),
                           "queue_id": queued.group(1) if queued else None,
                           "subject": fields.get("subject"), "message_id": fields.get("message-id"),
                           "holds_smuggled_commands": f"MAIL FROM:<{SMUGGLED_SENDER}>".encode() in content})
        # In the order the server queued them (its replies' queue IDs).
        return sorted(stored, key=lambda m: (queue_ids.index(m["queue_id"])
                                             if m["queue_id"] in queue_ids else len(queue_ids)))

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

    def do_STLS(self, expect="accepted"):
        try:
            self.conn.stls(self.ctx)
            accepted = True
        except poplib.error_proto:
            accepted = False
        self.starttls_done("STLS", accepted, expect)

    def do_STLS_CLEAR(self):
        """STLS answered +OK, and the client goes on in clear."""
        try:
            self.conn._shortcmd("STLS")
            accepted = True
        except poplib.error_proto:
            accepted = False
        self.starttls_done("STLS", accepted, tls=False)

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
        _, listing, _ = self.conn.list()
        self.list_sizes = {int(n): int(size) for n, size in (l.split() for l in listing)}

    def do_RETR_ALL(self):
        """RETR of every message LIST showed."""
        self.start_retrieval()
        for n in sorted(self.list_sizes):
            _, lines, _ = self.conn.retr(n)   # poplib undoes the dot-stuffing
            received = b"".join(line + b"\r\n" for line in lines)
            entry = self.retrieved_entry(received, number=n, list_size=self.list_sizes[n])
            check(entry["received_size"] == self.list_sizes[n],
                  f"{self.name}: RETR {n} gave {entry['received_size']} octets, LIST said {self.list_sizes[n]}")

    def do_TOP(self, n, count):
        _, lines, _ = self.conn.top(n, count)
        received = b"".join(line + b"\r\n" for line in lines)
        entry = self.entry_by_number(n)
        full = SENT_RETRIEVED[id(entry)]
        head, _, body = full.partition(b"\r\n\r\n")
        prefix = head + b"\r\n\r\n" + b"".join(l + b"\r\n" for l in body.split(b"\r\n")[:count])
        entry["top"] = {"lines": count, "received_size": len(received),
                        "received_sha256": hashlib.sha256(received).hexdigest(),
                        "is_retr_prefix": received == prefix}

    def do_DELE(self, n):
        self.conn.dele(n)
        self.entry_by_number(n)["fate"] = "deleted"

    def do_QUIT(self):
        self.conn.quit()
        self.finish_retrieval()


class ImapClient(Client):
    library = "python3 imaplib"

    def connect(self, implicit_tls):
        if implicit_tls:
            return RecordingIMAP4_SSL(self.s, self.host, self.s.server_port, ssl_context=self.ctx)
        return RecordingIMAP4(self.s, self.host, self.s.server_port)

    def do_CAPABILITY(self):
        self.conn.capability()

    def do_STARTTLS(self, expect="accepted"):
        if self.conn.state != "NONAUTH":
            # imaplib will not send it after PREAUTH (RFC 3501: not in the
            # authenticated state); a client that ignores that writes it itself.
            tag = self.new_tag("STARTTLS")
            self.conn.send(tag + b" STARTTLS\r\n")
            _, status = self.read_until_tagged(tag)
            check(status != "OK", f"{self.name}: STARTTLS accepted after PREAUTH (not played here)")
            self.starttls_done("STARTTLS", False, expect)
            return
        try:
            self.conn.starttls(ssl_context=self.ctx)
            accepted = True
        except imaplib.IMAP4.error:
            accepted = False
        self.starttls_done("STARTTLS", accepted, expect)

    def do_STARTTLS_CLEAR(self):
        """STARTTLS answered OK, and the client goes on in clear."""
        tag = self.new_tag("STARTTLS")
        self.conn.send(tag + b" STARTTLS\r\n")
        _, status = self.read_until_tagged(tag)
        self.starttls_done("STARTTLS", status == "OK", tls=False)

    def do_STARTTLS_BUFFERED(self, command):
        """STARTTLS, then command in a segment of its own before the reply;
        after the OK, TLS, and command's answer read inside it."""
        c = self.conn
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tag1 = self.new_tag("STARTTLS")
        first = len(self.s.commands) - 1
        c.send(tag1 + b" STARTTLS\r\n")
        time.sleep(BUFFERING_PAUSE)
        tag2 = self.new_tag(command.split(" ", 1)[0].upper())
        second = len(self.s.commands) - 1
        line = tag2 + b" " + command.encode()
        c.send(line + b"\r\n")
        self.s.buffered = line.decode() + "\r\n"
        _, status = self.read_until_tagged(tag1, index=first)
        if status == "OK":
            c.sock = self.ctx.wrap_socket(c.sock, server_hostname=self.host)
            c.file = c.sock.makefile("rb")
            c._tls_established = True
        self.starttls_done("STARTTLS", status == "OK")
        caps = None
        while True:
            got = c._get_line()
            if got.upper().startswith(b"* CAPABILITY "):
                caps = got[len(b"* CAPABILITY "):].decode().split()
            if got.startswith(tag2 + b" "):
                parts = got.split(b" ", 2)
                self.s.answered(parts[1].decode(), None, parts[2].decode(errors="replace")
                                if len(parts) > 2 else "", index=second)
                check(parts[1] == b"OK", f"{self.name}: {command} answered {got!r} inside TLS")
                break
        if caps is not None:
            c.capabilities = tuple(n.upper() for n in caps)
            self.s.capability_list("CAPABILITY", caps, True)

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
        self.conn.line_pending = True
        return tag

    def read_until_tagged(self, tag, continuation_ok=False, index=None):
        """("continuation", text after "+ ") or ("tagged", OK|NO|BAD); untagged lines are skipped.
        index: the command the tagged answer is recorded against (default: the last one)."""
        while True:
            line = self.conn._get_line()
            if line.startswith(b"+"):
                check(continuation_ok, f"{self.name}: unexpected continuation {line!r}")
                return "continuation", line[2:].decode("ascii")
            if line.startswith(tag + b" "):
                parts = line.split(b" ", 2)
                status = parts[1].decode("ascii")
                self.s.answered(status, None,
                                parts[2].decode(errors="replace") if len(parts) > 2 else "", index=index)
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
        typ, data = self.conn.select(mailbox)
        check(typ == "OK", f"{self.name}: SELECT answered {typ}")
        self.exists = int(data[0])
        self.uids = []   # UID of each sequence number, kept up to date below

    def do_FETCH_ALL(self):
        """FETCH n (UID BODY[]) of every message, one command each."""
        self.start_retrieval()
        for n in range(1, self.exists + 1):
            typ, data = self.conn.fetch(str(n), "(UID BODY[])")
            check(typ == "OK", f"{self.name}: FETCH {n} answered {typ}")
            meta, literal = next(item for item in data if isinstance(item, tuple))
            uid = int(re.search(rb"UID (\d+)", meta).group(1))
            self.uids.append(uid)
            self.retrieved_entry(literal, number=n, uid=uid)

    def entry_by_seq(self, n):
        uid = self.uids[n - 1]
        return next(e for e in self.s.retrieved if e["uid"] == uid)

    def do_STORE(self, n, flags):
        typ, _ = self.conn.store(str(n), "+FLAGS", flags)
        check(typ == "OK", f"{self.name}: STORE answered {typ}")
        self.entry_by_seq(n).setdefault("flags_added", []).append(flags)

    def do_EXPUNGE(self):
        typ, data = self.conn.expunge()
        check(typ == "OK", f"{self.name}: EXPUNGE answered {typ}")
        for seq in data:
            if seq is None:
                continue
            n = int(seq)
            self.entry_by_seq(n)["fate"] = "expunged"
            del self.uids[n - 1]

    def do_CREATE(self, mailbox):
        typ, _ = self.conn.create(mailbox)
        check(typ == "OK", f"{self.name}: CREATE {mailbox} answered {typ}")

    def do_MOVE(self, n, mailbox):
        # imaplib keeps the pre-login capabilities (Dovecot lists MOVE only after
        # login, in the LOGIN reply's CAPABILITY code): the answer decides.
        typ, _ = self.conn._simple_command("MOVE", str(n), mailbox)
        check(typ == "OK", f"{self.name}: MOVE answered {typ}")
        entry = self.entry_by_seq(n)
        entry["fate"], entry["moved_to"] = "moved", mailbox
        del self.uids[n - 1]

    def do_LOGOUT(self):
        self.conn.logout()
        self.finish_retrieval()


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


def postfix_settings(names):
    """{parameter: value} as the running Postfix has them (postconf -h)."""
    conf = os.environ.get("MAILSEC_POSTFIX_CONFIG")
    cmd = ["postconf", *(["-c", conf] if conf else []), "-h", *names]
    values = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
    check(len(values) == len(names), f"postconf gave {values} for {names}")
    return dict(zip(names, values))


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


def check_posture(sc, session, earlier):
    """After a session: what it really got must be what the scenario meant."""
    name = sc["name"]
    got = "implicit-tls" if sc["implicit_tls"] else "starttls" if session.tls_started else "cleartext"
    check(got == session.transport, f"{name}: session {session.tcp_stream} ended {got}, "
                                    f"meant {session.transport}")
    if session.tls_started:
        want = expected_tls_version(sc["tls"])
        check(session.tls_version == want, f"{name}: {session.tls_version} negotiated, meant {want}")
    session.attack = session.observed_attack(earlier)
    check(session.attack == session.meant_attack,
          f"{name}: session {session.tcp_stream} met {session.attack}, meant {session.meant_attack}")


def run_scenario(sc, outdir, versions):
    name = sc["name"]
    pcap, keys, truth = (outdir / f"{name}{ext}" for ext in (".pcapng", ".keys", ".json"))
    for stale in (pcap, keys, truth):
        stale.unlink(missing_ok=True)   # the key log is opened for append

    uses_tls = any(may_use_tls(steps, sc["implicit_tls"]) for steps in sc["sessions"])
    ctx = tls_context(keys, sc["tls"]) if uses_tls else None
    client_class = CLIENTS[sc["protocol"]]
    peer = sc["host"] in PEER_HOSTS
    sessions = []
    try:
        with Capture(pcap, sc["port"], sc["host"] if sc["host"] != HOST else None):
            for steps in sc["sessions"]:
                session = Session(sc["protocol"], sc["port"],
                                  transport_of(steps, sc["implicit_tls"]),
                                  server=PEER_SERVER if peer else None,
                                  tcp_stream=len(sessions), server_address=sc["host"])
                client = client_class(session, ctx, sc["implicit_tls"], name, sc["host"])
                for step in steps:
                    client.run(step)
                check_posture(sc, session, sessions)
                sessions.append(session)
    except BaseException:
        # No capture without its ground truth.
        for partial in (pcap, keys):
            partial.unlink(missing_ok=True)
        raise
    # Python creates the key log when the context is made; no handshake, no keys.
    if keys.exists() and not [l for l in keys.read_text().splitlines() if l and not l.startswith("#")]:
        keys.unlink()
    transports = {s.transport for s in sessions}
    transport = transports.pop() if len(transports) == 1 else "mixed"

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
        "server_address": sc["host"],
        "keylog": keys.name if keys.exists() else None,
        **({"server_settings": postfix_settings(sc["settings"])} if sc["settings"] else {}),
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
