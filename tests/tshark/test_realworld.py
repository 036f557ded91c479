"""Every mail session of the real-world corpus is recognised, and nothing else.

The corpus (../shared/realworld, Suricata's public test captures) was made by
other people with other tools. Which TCP streams are mail is decided here
without mailsec: the built-in dissectors show SMTP/POP/IMAP on them, they use a
standard mail port, or their first payload is a mail greeting or first command
(judged by this file's own patterns, not the plugin's code).
"""
import collections
import re

import pytest

from conftest import realworld_captures

MAIL_PORTS = {25, 587, 465, 110, 995, 143, 993}
GREETING = re.compile(rb"^(220[ -].*SMTP|\+OK|\* (OK|PREAUTH)|(EHLO|HELO) |[A-Za-z0-9.]+ (CAPABILITY|LOGIN|AUTHENTICATE)\b|CAPA\r?$)",
                      re.IGNORECASE)

CASES = [pytest.param(r, id=r["path"].split("/tests/")[-1]) for r in realworld_captures()]
if not CASES:
    raise RuntimeError("the real-world corpus is missing: expected ../shared/realworld/MANIFEST.tsv")

STARTTLS_PORTS = {"587"}  # the starttls_ports preference's default
BASE = ["frame.number", "tcp.stream", "tcp.srcport", "tcp.dstport", "tcp.payload", "frame.protocols"]
RECOGNISED = BASE + ["mailsec.proto", "mailsec.detected_by"]
LOGIN_FIELDS = ["tcp.stream", "smtp.req.command", "pop.request.command", "imap.request.command",
                "mailsec.auth.started", "mailsec.auth.attempt"]


def expected_mail_streams(rows):
    first_payload = {}
    mail = set()
    for r in rows:
        num, stream, sport, dport, payload, protocols = r[:6]
        if not stream:
            continue
        layers = protocols.split(":")
        if "icmp" in layers:
            continue
        if {"smtp", "pop", "imap"} & set(layers) or {int(sport), int(dport)} & MAIL_PORTS:
            mail.add(stream)
        if payload and stream not in first_payload:
            first_payload[stream] = int(num)
            data = bytes.fromhex(payload.replace(":", ""))[:200]
            if GREETING.match(data.split(b"\n")[0]):
                mail.add(stream)
    return mail, first_payload


@pytest.mark.parametrize("capture", CASES)
def test_every_mail_session_recognised(tshark, capture):
    path = capture["abspath"]
    base = tshark.fields(path, BASE, display_filter="tcp", plugin=False, wide=BASELINE_WIDE)
    mail, first_payload = expected_mail_streams(base)
    rows = tshark.fields(path, RECOGNISED, display_filter="tcp", wide=MAILSEC_WIDE)
    by_stream = collections.defaultdict(list)
    for r in rows:
        if "icmp" not in r[5].split(":"):
            by_stream[r[1]].append(r)
    for stream, frames in by_stream.items():
        if stream in mail:
            ports = {int(frames[0][2]), int(frames[0][3])}
            start = 0 if ports & MAIL_PORTS else first_payload.get(stream, 0)
            unmarked = [f[0] for f in frames if int(f[0]) >= start and not f[6]]
            assert not unmarked, "stream %s: frames without mailsec: %s" % (stream, unmarked[:10])
            assert {f[6] for f in frames if f[6]} <= {"smtp", "pop3", "imap"}
        else:
            marked = [f[0] for f in frames if f[6]]
            assert not marked, "stream %s is not mail but has mailsec on %s" % (stream, marked[:10])


@pytest.mark.parametrize("capture", CASES)
def test_clean_run(tshark, capture):
    """No start-up warning, no dissector bug, and the same exit as plain tshark."""
    out, err = tshark.run(capture["abspath"], ["-V"], cache=False)   # read by this test only
    base_out, base_err = tshark.run(capture["abspath"], ["-V"], plugin=False, cache=False)
    assert err == base_err
    assert "Dissector bug" not in out or out.count("Dissector bug") == base_out.count("Dissector bug")


LOGIN_COMMANDS = {"AUTH", "PASS", "APOP", "LOGIN", "AUTHENTICATE"}


@pytest.mark.parametrize("capture", CASES)
def test_every_login_decoded(tshark, capture):
    """Each login command the built-in dissectors show gives a mailsec attempt."""
    path = capture["abspath"]
    rows = tshark.fields(path, LOGIN_FIELDS, display_filter="tcp", wide=MAILSEC_WIDE)
    commands = collections.Counter()
    attempts = collections.defaultdict(set)
    for r in rows:
        stream = r[0]
        for col in (1, 2, 3):
            for cmd in r[col].split(","):
                if cmd.upper() in LOGIN_COMMANDS:
                    commands[stream] += 1
        # an attempt that began, completed or not
        for col in (4, 5):
            if r[col]:
                attempts[stream].update(r[col].split(","))
    for stream, n in commands.items():
        assert len(attempts[stream]) >= n, "stream %s: %d login commands, %d decoded" % (
            stream, n, len(attempts[stream]))


# What justifies each alert on a capture made by other people, judged from the
# built-in dissectors' fields and the raw payload, never from mailsec's output.
JUSTIFY_FIELDS = ["frame.number", "tcp.stream", "tcp.srcport", "frame.protocols", "frame.len", "frame.cap_len",
                  "tcp.analysis.lost_segment", "tcp.analysis.ack_lost_segment",
                  "smtp.req.command", "smtp.response.code", "pop.request.command", "pop.response.indicator",
                  "imap.request.command", "imap.response.status", "tcp.payload", "smtp.req.parameter",
                  "imap.request", "imf.from", "tls.handshake.type", "tls.handshake.extensions_server_name",
                  "tls.handshake.version", "tls.handshake.extensions.supported_version", "ip.src", "ipv6.src"]
# One -Y tcp run without mailsec serves both BASE and JUSTIFY_FIELDS, and one with
# mailsec both RECOGNISED and LOGIN_FIELDS (conftest: Tshark.fields, wide).
BASELINE_WIDE = JUSTIFY_FIELDS + [f for f in BASE if f not in JUSTIFY_FIELDS]
MAILSEC_WIDE = RECOGNISED + [f for f in LOGIN_FIELDS if f not in RECOGNISED]
LOGIN_REQUESTS = {"AUTH", "USER", "PASS", "APOP", "LOGIN", "AUTHENTICATE"}
LOGIN_LINE = re.compile(rb"^(AUTH|USER|PASS|APOP|\S+ (LOGIN|AUTHENTICATE)) ", re.I | re.M)
MAX_LINE = 4096  # the max_line preference's default
ENUM_THRESHOLD = 3  # the preferences' defaults
MASS_RCPT, MASS_MSG = 50, 20
# RFC 5321 4.1.1.4: only CR LF . CR LF ends DATA; any other line break around a
# lone dot (a control byte beside it allowed) is a look-alike
LOOKALIKE = re.compile(rb"(?:\r\n|\r|\n)[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]?\.[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]?(?:\r\n|\r|\n)")
DANGEROUS = re.compile(rb"(?:file)?name\*?(?:0\*?)?=\"?[^\r\n\"]*\.(?:exe|scr|com|pif|bat|cmd|vbs|vbe|js|jse|wsf|wsh|hta|msi|"
                       rb"msp|jar|ps1|psm1|lnk|cpl|reg|chm|scf|iso|img|vhd|vhdx|dll|apk|application|gadget|docm|"
                       rb"dotm|xlsm|xltm|xlam|pptm|potm|ppam|sldm)\"?\s*(?:;|\r?\n)", re.I)


def _org(domain):
    """The organisational part of a domain, as the README defines it for sender
    mismatch: the last two labels, three under a short second level below a
    two-letter country code."""
    labels = domain.lower().rstrip(".").split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and len(labels[-2]) <= 3 else 2
    return ".".join(labels[-keep:])


def _stream_evidence(rows):
    ev = collections.defaultdict(lambda: collections.defaultdict(int))
    side = collections.defaultdict(list)
    server_addr = {}
    for r in rows:
        d = dict(zip(JUSTIFY_FIELDS, r))
        s = d["tcp.stream"]
        if not s:
            continue
        e = ev[s]
        if d["tcp.analysis.lost_segment"] or d["tcp.analysis.ack_lost_segment"]:
            e["loss"] = True
        if d["frame.len"] and d["frame.cap_len"] and int(d["frame.cap_len"]) < int(d["frame.len"]):
            e["loss"] = True
        cmds = {c.upper() for col in ("smtp.req.command", "pop.request.command", "imap.request.command")
                for c in d[col].split(",") if c}
        smtp_cmds = [c.upper() for c in d["smtp.req.command"].split(",") if c]
        params = [p.lower() for p in d["smtp.req.parameter"].split(",")]
        for i, c in enumerate(smtp_cmds):
            if c in ("VRFY", "EXPN"):
                e["vrfy"] = True
                e["probes"] += 1
            if c == "MAIL":
                e["mail_seen"] = True
            if c in ("DATA", "BDAT") and not e["mail_seen"]:
                e["no_envelope"] = True  # data before any MAIL FROM
            if c in ("MAIL", "RCPT") and i < len(params):
                key = (c, params[i].split(" ")[0])
                e["envelope"] = e["envelope"] or set()
                if key in e["envelope"]:
                    e["duplicate"] = True
                e["envelope"].add(key)
            if c == "RCPT":
                e["rcpts"] += 1
            if c == "MAIL" and i < len(params):
                m = re.search(r"@([^>\s]+)", params[i])
                if m:
                    e["env_domains"] = (e["env_domains"] or set()) | {_org(m.group(1))}
        m = re.search(r"@([^>\s,]+)", d["imf.from"])
        if m:
            e["from_domains"] = (e["from_domains"] or set()) | {_org(m.group(1))}
        if cmds & {"STAR", "STARTTLS", "STLS"}:
            if e["login"]:
                e["login_before_tls"] = True  # a login command came first, in clear
            e["starttls_asked"] = True
            if not e["starttls_at"]:
                e["starttls_at"] = int(d["frame.number"])
                e["starttls_port"] = d["tcp.srcport"]
        if cmds & {"AUTH", "USER", "PASS", "APOP", "LOGIN", "AUTHENTICATE", "DATA", "BDAT", "RETR", "TOP",
                   "FETCH", "APPEND"} or (d["tcp.payload"] and re.match(rb"(?i)(data|bdat)\b",
                                                                      bytes.fromhex(d["tcp.payload"].replace(":", "")))):
            e["sensitive"] = True
        types = set(d["tls.handshake.type"].split(","))
        if "1" in types:
            e["client_hello"] = True
            if d["tls.handshake.extensions_server_name"]:
                e["sni"] = True
        if "2" in types:
            versions = [v for v in (d["tls.handshake.extensions.supported_version"] or d["tls.handshake.version"]).split(",") if v]
            if versions and int(versions[-1], 16) < 0x0303:
                e["old_tls"] = True
        if "DELE" in cmds or re.search(r"\\deleted|expunge|move", d["imap.request"], re.I):
            e["deletion"] = True
        if cmds & LOGIN_REQUESTS:
            e["login"] = True
        # mail on a port no built-in dissector takes: the login command in the raw bytes
        if d["tcp.payload"] and LOGIN_LINE.search(bytes.fromhex(d["tcp.payload"].replace(":", ""))):
            e["login"] = True
        codes = set(d["smtp.response.code"].split(",")) | set(d["pop.response.indicator"].split(",")) \
            | {c.upper() for c in d["imap.response.status"].split(",")}
        if codes & {"535", "534", "454", "501", "504", "-ERR", "NO", "BAD"}:
            e["refusal"] = True
        if codes & {"503", "550", "554"}:
            e["no_envelope"] = True  # a refused MAIL, RCPT or DATA
        e["probes"] += sum(1 for c in d["smtp.response.code"].split(",") if c in ("550", "551", "553"))
        if d["tcp.payload"]:
            # each side's bytes in capture order; a line is judged on the joined stream
            side[(s, d["tcp.srcport"])].append(d["tcp.payload"])
            server_addr.setdefault((s, d["tcp.srcport"]), d["ip.src"] or d["ipv6.src"])
            # after STARTTLS was asked for and answered, the next bytes are no TLS record
            if e["starttls_at"] and int(d["frame.number"]) > e["starttls_at"] and not e["after_starttls"]:
                payload = bytes.fromhex(d["tcp.payload"].replace(":", ""))
                if re.match(rb"(220|\+OK|\S+ OK)", payload) and not e["answered"]:
                    e["answered"] = True
                elif not e["answered"] and d["tcp.srcport"] == e["starttls_port"]:
                    e["buffered"] = True  # the client spoke again before the STARTTLS reply
                elif e["answered"]:
                    e["after_starttls"] = True
                    if not (payload[:1] and 20 <= payload[0] <= 23 and payload[1:2] == b"\x03"):
                        e["stripped"] = True
    for (s, port), payloads in side.items():
        joined = b"".join(bytes.fromhex(p.replace(":", "")) for p in payloads)
        if any(len(line) > MAX_LINE for line in joined.split(b"\n")):
            ev[s]["long"] = True
        if any(m.group(0) != b"\r\n.\r\n" for m in LOOKALIKE.finditer(joined)):
            ev[s]["lookalike"] = True
        if DANGEROUS.search(joined):
            ev[s]["dangerous"] = True
        if re.search(rb"(?im)^(250[ -]STARTTLS|STLS\r?$|\* CAPABILITY .*STARTTLS|\S+ OK \[CAPABILITY .*STARTTLS|"
                     rb"\* OK \[CAPABILITY .*STARTTLS)", joined):
            ev[s]["offered"] = True
        # a message carried in clear, seen from the server's side alone (a
        # capture that lost the client's half): an IMAP FETCH of a body literal
        if re.search(rb"(?im)^\* \d+ FETCH \([^\r\n]*(BODY|RFC822)[^\r\n]*\{\d+\}\r?$", joined):
            ev[s]["sensitive"] = True
        # a capability list (an EHLO reply, a CAPA list, an IMAP CAPABILITY)
        # without STARTTLS: the server side, with its address and port
        lists = re.findall(rb"(?im)^250[ -](?:PIPELINING|SIZE|AUTH|8BITMIME|ENHANCEDSTATUSCODES)\b|"
                           rb"^(?:SASL|UIDL|USER|TOP)\b.*$|CAPABILITY IMAP4", joined)
        if lists and not ev[s]["offered"]:
            ev[s]["cap_missing"] = True
        if lists or ev[s]["offered"]:
            ev[s]["server"] = (server_addr.get((s, port)), port)
        if re.search(rb"(?m)^\* PREAUTH", joined):
            ev[s]["preauth"] = True
        if b"[ALERT]" in joined.upper():
            ev[s]["imap_alert"] = True
        # a From header (a line of its own, so not MAIL FROM) in another
        # domain than the envelope's, and DATA before any MAIL FROM, in the
        # raw bytes: Wireshark's IMF wants CR LF headers, some clients send LF
        for m in re.finditer(rb"(?im)^from:[^\r\n]*@([A-Za-z0-9.-]+)", joined):
            ev[s]["from_domains"] = (ev[s]["from_domains"] or set()) | {_org(m.group(1).decode())}
        for m in re.finditer(rb"(?im)^mail from:\s*<?[^@\r\n>]*@([A-Za-z0-9.-]+)", joined):
            ev[s]["env_domains"] = (ev[s]["env_domains"] or set()) | {_org(m.group(1).decode())}
        first_mail = re.search(rb"(?im)^mail from:", joined)
        first_data = re.search(rb"(?im)^(data|bdat)\b", joined)
        if first_data and (not first_mail or first_data.start() < first_mail.start()):
            ev[s]["no_envelope"] = True
    # capability stripped: a list without STARTTLS on a port that expects it,
    # or where an earlier session of the same server offered it
    offered_by = {}
    for s in sorted(ev, key=int):
        e = ev[s]
        if e["cap_missing"] and (e["server"][1] in STARTTLS_PORTS or e["server"] in offered_by):
            e["cap_stripped"] = True
        if e["offered"] and e["server"]:
            offered_by.setdefault(e["server"], s)
    for e in ev.values():
        e["unused"] = bool(e["offered"] and not e["starttls_asked"] and e["sensitive"])
        e["no_sni"] = bool(e["client_hello"] and not e["sni"])
        e["mismatch"] = bool(e["env_domains"] and e["from_domains"] and e["from_domains"] - e["env_domains"])
        e["enumeration"] = e["probes"] >= ENUM_THRESHOLD
        e["mass"] = e["rcpts"] >= MASS_RCPT
    return ev


@pytest.mark.parametrize("capture", CASES)
def test_no_unjustified_alert(tshark, capture):
    """Every mailsec alert of warning or error severity on benign real-world
    traffic has a reason the built-in dissectors show too."""
    path = capture["abspath"]
    ev = _stream_evidence(tshark.fields(path, JUSTIFY_FIELDS, display_filter="tcp", plugin=False,
                                        wide=BASELINE_WIDE))
    rows = tshark.fields(path, ["tcp.stream", "frame.number", "mailsec.alert.name"], display_filter="mailsec.alert")
    reasons = {
        "mailsec.sequence.gap": "loss",
        "mailsec.auth.cleartext": "login",
        "mailsec.auth.failed": "refusal",
        "mailsec.malformed.line_too_long": "long",
        "mailsec.enum.vrfy_expn_used": "vrfy",
        "mailsec.enum.enumeration": "enumeration",
        "mailsec.smtp.data_without_envelope": "no_envelope",
        "mailsec.msg.duplicate_envelope": "duplicate",
        "mailsec.msg.deletion": "deletion",
        "mailsec.smtp.smuggling": "lookalike",
        "mailsec.smtp.nonstandard_end_accepted": "lookalike",
        "mailsec.msg.dangerous_attachment": "dangerous",
        "mailsec.msg.mass_mailing": "mass",
        "mailsec.msg.sender_mismatch": "mismatch",
        "mailsec.starttls.stripped": "stripped",
        "mailsec.starttls.offered_not_used": "unused",
        "mailsec.tls.no_sni": "no_sni",
        "mailsec.tls.old_version": "old_tls",
        "mailsec.imap.preauth_in_clear": "preauth",
        "mailsec.imap.alert_in_clear": "imap_alert",
        "mailsec.starttls.login_before_tls": "login_before_tls",
        "mailsec.starttls.capability_stripped": "cap_stripped",
        "mailsec.starttls.response_buffering": "buffered",
    }
    for stream, frame, names in rows:
        for name in names.split(","):
            need = reasons.get(name)
            if name == "mailsec.detected.content":
                continue  # a chat-level note, not an alert
            assert need, "frame %s: alert %s on a real-world capture has no justification" % (frame, name)
            assert ev[stream][need], \
                "frame %s (stream %s): %s without %s in the built-in fields" % (frame, stream, name, need)


PLAIN_NAME = re.compile(r"""(?:^|;)\s*(?:file)?name\s*=\s*"?([^";]+)"?""", re.I)


@pytest.mark.parametrize("capture", CASES)
def test_every_attachment_found(tshark, capture):
    """Every file name Wireshark's own IMF/MIME dissectors show on a MIME part
    (SMTP DATA, IMAP FETCH) is an attachment mailsec reports too. Names in
    RFC 2231 or RFC 2047 form are shown raw by Wireshark: those are left to the
    ground-truth tests, which know the decoded names."""
    path = capture["abspath"]
    rows = tshark.fields(path, ["tcp.stream", "mime_multipart.header.content-disposition",
                                "mime_multipart.header.content-type"], display_filter="mime_multipart", plugin=False)
    builtin = collections.defaultdict(set)
    for stream, disp, ctype in rows:
        for header in (disp + "," + ctype).split(","):
            for name in PLAIN_NAME.findall(header):
                if "=?" not in name:
                    builtin[stream].add(name.strip())
    if not builtin:
        return
    mine = collections.defaultdict(set)
    for stream, names in tshark.fields(path, ["tcp.stream", "mailsec.msg.attachment"],
                                       display_filter="mailsec.msg.attachment"):
        mine[stream].update(names.split(","))
    for stream, names in builtin.items():
        assert names <= mine[stream], "stream %s: Wireshark shows %s, mailsec %s" % (stream, names, mine[stream])
