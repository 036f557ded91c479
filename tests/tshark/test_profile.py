"""The "Mail Forensics" configuration profile (packaging/profiles/Mail Forensics).

The profile is three Wireshark 4.0 files: preferences (packet-list columns,
with custom columns for mailsec fields), colorfilters (mailsec's coloring
rules, then Wireshark's default rules) and dfilter_buttons (filter buttons).
Here it is installed the way a user installs one, into the personal profiles
folder of the unprivileged user's HOME, and tshark runs with -C:

- the files are well formed, in Wireshark's formats, and name only fields and
  expert infos that plugin/REFERENCE.md lists; the default rules are the
  content of Wireshark's own /usr/share/wireshark/colorfilters;
- tshark's default text output takes its columns from the profile, and the
  user / mechanism / verdict columns of the login frames show what the
  capture generator's ground truth (captures/real/*.json) says;
- every filter of colorfilters and dfilter_buttons compiles with the plugin
  loaded (tshark -z io,stat exits 0; --color prints no warning), each
  button's filter matches frames exactly where the ground truth says that thing
  happened, and the coloring rules color those frames (a STARTTLS injection
  capture is written here, since no bundled capture has one);
- frames no mailsec rule colors get the rule Wireshark's default list gives
  them, and the built-in fields are the same with the profile as without it
  (the profile changes presentation only, even though its custom columns make
  mailsec build its tree on every frame);
- tshark -C also finds the profile in a global profiles folder (the one the
  Debian package installs into, <data dir>/profiles): WIRESHARK_DATA_DIR
  points tshark at a staged data folder here, nothing is written to /usr.

Expectations come from the ground truth, from Wireshark's own files and
dissectors, and from what this file writes; never from mailsec's output.
"""
import json
import os
import pathlib
import re
import shutil

import pytest

from conftest import BUNDLED, ROOT, Tshark
from e2e import Capture, client_hello, unhex

PROFILE_NAME = "Mail Forensics"
PROFILE = ROOT / "packaging" / "profiles" / PROFILE_NAME
REFERENCE = ROOT / "plugin" / "REFERENCE.md"
WIRESHARK_DATA = pathlib.Path("/usr/share/wireshark")
DEFAULT_COLORFILTERS = WIRESHARK_DATA / "colorfilters"

BRUTE_FORCE_THRESHOLD = 5   # README: brute_force_threshold (5)

# The packet-list columns: Wireshark's defaults, then one custom column per
# field (either field is accepted for the user column).
STANDARD_FORMATS = ["%m", "%t", "%s", "%d", "%p", "%L", "%i"]
CUSTOM = {
    "protocol": ("mailsec.proto",),
    "transport": ("mailsec.transport",),
    "user": ("mailsec.auth.username", "mailsec.session.auth_user"),
    "mechanism": ("mailsec.auth.mechanism",),
    "verdict": ("mailsec.auth.result",),
    "alert": ("mailsec.alert.name",),
}

# What each kind of coloring rule must test (any of these fields).
RULES = {
    "credentials": {"mailsec.auth.exposed", "mailsec.auth.cleartext"},
    "injection": {"mailsec.starttls.command_injection", "mailsec.starttls.response_injection"},
    "smuggling": {"mailsec.smtp.smuggling", "mailsec.smtp.smuggling_answered"},
    "brute_force": {"mailsec.auth.brute_force"},
    "enumeration": {"mailsec.enum.enumeration", "mailsec.enum.vrfy_expn_used"},
}

BUTTONS = {
    "Logins": "mailsec.auth.attempt",
    "Failures": 'mailsec.auth.result == "failure"',
    "Exposed": "mailsec.auth.exposed == 1",
    "STARTTLS": "mailsec.starttls.command || mailsec.starttls.result",
    "Probes": "mailsec.enum.command",
    "Messages": "mailsec.msg.sha256",
    "Alerts": "mailsec.alert",
}

# Built-in fields that must not change with the profile (no mailsec field here).
BUILTIN = ["frame.len", "ip.src", "ip.dst", "tcp.stream", "tcp.srcport", "tcp.dstport", "tcp.seq",
           "tcp.len", "tcp.flags", "tcp.analysis.flags", "tls.record.content_type",
           "smtp.req.command", "smtp.req.parameter", "smtp.response.code",
           "_ws.col.Protocol", "_ws.col.Info"]

CAPTURES = ["smtp-auth-bruteforce", "smtp-starttls", "smtp-vrfy", "smtp-smuggling"]
SEP = "\x1f"


# --- the profile's files, read as Wireshark reads them -----------------------------

def reference_names():
    """Fields and expert infos the plugin registers (plugin/REFERENCE.md)."""
    return set(re.findall(r"^\| `(mailsec[a-z0-9_.]*)` \|", REFERENCE.read_text(), re.M))


def mailsec_names(text):
    return set(re.findall(r"\bmailsec(?:\.[a-z0-9_]+)*", text))


def read_preferences():
    """{preference: value} of the lines that are not comments (a value goes on
    over the lines that begin with white space)."""
    prefs, key = {}, None
    for line in (PROFILE / "preferences").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            key = None
            continue
        if line[0] in " \t":
            assert key is not None, "continuation line without a preference: %r" % line
            prefs[key] += " " + line.strip()
            continue
        m = re.match(r"^([A-Za-z0-9_.-]+):(.*)$", line)
        assert m, "not a preference line: %r" % line
        key = m.group(1)
        prefs[key] = m.group(2).strip()
    return prefs


def columns():
    """[(title, format)] of gui.column.format."""
    value = read_preferences()["gui.column.format"]
    strings = re.findall(r'"((?:[^"\\]|\\.)*)"', value)
    assert re.fullmatch(r'\s*("(?:[^"\\]|\\.)*"\s*,\s*)*"(?:[^"\\]|\\.)*"\s*', value), value
    assert len(strings) % 2 == 0, "titles and formats do not pair up: %r" % value
    return list(zip(strings[0::2], strings[1::2]))


def custom_titles():
    """{field: column title} of the custom columns."""
    out = {}
    for title, fmt in columns():
        m = re.fullmatch(r"%Cus:([^:]+):(\d+):([RU])", fmt)
        if m:
            out[m.group(1)] = title
    return out


def title_of(kind):
    titles = custom_titles()
    (field,) = [f for f in CUSTOM[kind] if f in titles]
    return titles[field]


def read_colorfilters(path):
    """[(name, filter, background, foreground)], in order (comments skipped): Wireshark writes the
    background first (its own "Bad TCP": a dark background, light red text)."""
    rules = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = re.fullmatch(r"@([^@]+)@(.+)@\[(\d+),(\d+),(\d+)\]\[(\d+),(\d+),(\d+)\]", line)
        assert m, "not a coloring rule: %r" % line
        colors = [int(v) for v in m.groups()[2:]]
        rules.append((m.group(1), m.group(2), tuple(colors[:3]), tuple(colors[3:])))
    return rules


def rule_names():
    """{kind: name of the profile's rule for it} (RULES, then the alert severities)."""
    out = {}
    for name, flt, _, _ in read_colorfilters(PROFILE / "colorfilters"):
        for kind, fields in RULES.items():
            if kind not in out and mailsec_names(flt) & fields:
                out[kind] = name
        for sev in ("error", "warning"):
            if re.search(r'mailsec\.alert\.severity\s*(==|eq)\s*"%s"' % sev, flt):
                out.setdefault(sev, name)
    return out


def _unescape(s):
    # UAT files escape '"', '\' and bytes outside printable ASCII as \xHH
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), s)


def read_buttons():
    """[(enabled, label, filter, comment)] of dfilter_buttons."""
    out = []
    for line in (PROFILE / "dfilter_buttons").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = re.fullmatch(r'"(TRUE|FALSE)","([^"]*)","([^"]*)","([^"]*)"', line)
        assert m, "not a dfilter_buttons record: %r" % line
        out.append((m.group(1) == "TRUE",) + tuple(_unescape(g) for g in m.groups()[1:]))
    return out


def mailsec_colorfilters():
    return [r for r in read_colorfilters(PROFILE / "colorfilters") if mailsec_names(r[1])]


def all_filters():
    """Every filter of the profile that names a mailsec field, labelled."""
    return ([("button " + label, flt) for _, label, flt, _ in read_buttons()] +
            [("rule " + name, flt) for name, flt, _, _ in mailsec_colorfilters()])


# --- the files ------------------------------------------------------------------------

def test_preferences_sets_only_the_columns():
    assert list(read_preferences()) == ["gui.column.format"]
    cols = columns()
    formats = [f for _, f in cols]
    # Wireshark's default columns, in their order, all kept
    assert [f for f in formats if not f.startswith("%Cus:")] == STANDARD_FORMATS
    customs = [f for f in formats if f.startswith("%Cus:")]
    for f in customs:
        assert re.fullmatch(r"%Cus:mailsec(\.[a-z0-9_]+)+:0:R", f), f
    titles = custom_titles()
    assert len(titles) == len(customs) == len(CUSTOM)
    for kind, fields in CUSTOM.items():
        assert len([f for f in fields if f in titles]) == 1, "no single %s column: %r" % (kind, titles)
    assert set(titles) <= reference_names()
    # plain one-word titles, so that -T fields can name them as _ws.col.<title>
    for title in titles.values():
        assert re.fullmatch(r"[A-Za-z]+", title), title
    assert len({t for t, _ in cols}) == len(cols), "two columns with one title"


def test_colorfilters_mailsec_rules_then_wiresharks_defaults():
    rules = read_colorfilters(PROFILE / "colorfilters")
    for name, flt, bg, fg in rules:
        assert all(0 <= v <= 65535 for v in fg + bg), name
    mine = mailsec_colorfilters()
    assert rules[:len(mine)] == mine, "the mailsec rules must come first (the first match colors)"
    for _, flt, _, _ in mine:
        assert mailsec_names(flt) <= reference_names(), flt
    kinds = rule_names()
    assert set(kinds) == set(RULES) | {"error", "warning"}, kinds
    # the specific rules before the catch-all severity rules
    order = [n for n, _, _, _ in rules]
    for kind in RULES:
        assert order.index(kinds[kind]) < order.index(kinds["error"]) < order.index(kinds["warning"])
    if not DEFAULT_COLORFILTERS.exists():
        pytest.skip("no %s to compare the default rules with" % DEFAULT_COLORFILTERS)
    assert rules[len(mine):] == read_colorfilters(DEFAULT_COLORFILTERS)


def test_dfilter_buttons():
    buttons = read_buttons()
    assert all(enabled for enabled, _, _, _ in buttons)
    assert {label: flt for _, label, flt, _ in buttons} == BUTTONS
    assert len(buttons) == len(BUTTONS)
    for _, label, flt, comment in buttons:
        assert comment, label
        assert mailsec_names(flt) <= reference_names(), flt


# --- tshark with the profile ------------------------------------------------------------

def _home(stage, name):
    home = stage / ("home-%s-%s" % (os.environ.get("PYTEST_XDIST_WORKER", "main"), name))
    if home.exists():
        shutil.rmtree(home)
    home.mkdir()
    os.chmod(home, 0o777)
    return home


def _readable(path):
    for d, _, files in os.walk(path):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)


@pytest.fixture(scope="module")
def ts(tshark):
    """tshark (plain build) whose HOME holds the profile in the personal profiles folder."""
    t = Tshark("plain")
    t.home = _home(t.stage, "profile")
    dst = t.home / ".config" / "wireshark" / "profiles" / PROFILE_NAME
    shutil.copytree(PROFILE, dst)
    _readable(t.home / ".config")
    return t


def bundled(name):
    truth = json.loads((BUNDLED / (name + ".json")).read_text())
    keys = BUNDLED / truth["keylog"] if truth.get("keylog") else None
    return BUNDLED / (name + ".pcapng"), keys, truth


def table(t, capture, fields, extra, keylog=None):
    """(rows as {field: [occurrences]}, stderr) of a -T fields run."""
    args = list(extra) + ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=" + SEP]
    for f in fields:
        args += ["-e", f]
    out, err = t.run(capture, args, keylog=keylog)
    rows = []
    for line in out.splitlines():
        cols = line.split("\t")
        assert len(cols) == len(fields), "row does not split into %d fields: %r" % (len(fields), line)
        rows.append({f: (c.split(SEP) if c else []) for f, c in zip(fields, cols)})
    return rows, err


def column_fields():
    return ["_ws.col." + t for t in custom_titles().values()]


def with_profile(t, name):
    cap, keys, _ = bundled(name)
    return table(t, cap, ["frame.number", "frame.coloring_rule.name"] + column_fields() + BUILTIN,
                 ["-C", PROFILE_NAME, "--color"], keys)


def without_profile(t, name):
    cap, keys, _ = bundled(name)
    return table(t, cap, ["frame.number", "frame.coloring_rule.name"] + BUILTIN, ["--color"], keys)


def value(row, field):
    vals = row[field]
    assert len(vals) <= 1, "frame %s: %s = %r" % (row["frame.number"], field, vals)
    return vals[0] if vals else ""


def attempts(truth):
    return [a for s in truth["sessions"] for a in s.get("auth") or []]


def attempts_in_clear(truth):
    return [a for a in attempts(truth) if a["sends_password"] and not a["tls"]]


def logins(rows, transport_field=None):
    """(user, mechanism, verdict[, transport]) of the frames whose verdict column is filled."""
    user, mech, verdict = ("_ws.col." + title_of(k) for k in ("user", "mechanism", "verdict"))
    out = []
    for r in rows:
        if r[verdict]:
            t = (value(r, user), value(r, mech), value(r, verdict))
            out.append(t + ((value(r, transport_field),) if transport_field else ()))
    return out


def test_text_output_takes_the_profiles_columns(ts):
    """tshark -C "Mail Forensics" -r CAP -T tabs: the default text output has
    the profile's columns, and the custom ones hold the ground truth's logins."""
    cap, _, truth = bundled("smtp-auth-bruteforce")
    out, err = ts.run(cap, ["-C", PROFILE_NAME, "-T", "tabs"])
    assert err == ""
    titles = [t for t, _ in columns()]
    rows = []
    for line in out.splitlines():
        cells = line.split("\t", len(titles))
        # tshark puts an arrow between adjacent source and destination columns
        src = [f for _, f in columns()].index("%s")
        if len(cells) == len(titles) + 1 and cells[src + 1] == "\u2192":
            del cells[src + 1]
        assert len(cells) == len(titles), "not one cell per profile column: %r" % line
        rows.append(dict(zip(titles, (c.strip() for c in cells))))
    assert len(rows) > 0
    proto, transport, user, mech, verdict = (title_of(k) for k in
                                              ("protocol", "transport", "user", "mechanism", "verdict"))
    (session,) = truth["sessions"]
    assert {r[proto] for r in rows} == {session["protocol"]}
    assert {r[transport] for r in rows} == {session["transport"]}
    assert [(r[user], r[mech], r[verdict]) for r in rows if r[verdict]] == \
        [(a["username"], a["mechanism"], a["result"]) for a in session["auth"]]
    # the same frames as numbered by tshark's No. column, in order
    assert [int(r[titles[0]]) for r in rows] == list(range(1, len(rows) + 1))


@pytest.mark.parametrize("name", ["smtp-auth-bruteforce", "smtp-starttls"])
def test_columns_show_the_ground_truth(ts, name):
    """The columns the profile defines, read as _ws.col.<title>: every login's
    verdict frame shows the ground truth's user, mechanism, verdict and
    transport (starttls after the upgrade, cleartext otherwise); the
    protocol column shows the ground truth's protocol."""
    _, _, truth = bundled(name)
    rows, _ = with_profile(ts, name)
    transport = "_ws.col." + title_of("transport")
    expected = []
    for s in truth["sessions"]:
        for a in s.get("auth") or []:
            expected.append((a["username"], a["mechanism"], a["result"],
                             s["transport"] if a["tls"] else "cleartext"))
    assert expected, "the capture has logins"
    assert logins(rows, transport) == expected
    protos = {value(r, "_ws.col." + title_of("protocol")) for r in rows} - {""}
    assert protos == {s["protocol"] for s in truth["sessions"]}
    alert = "_ws.col." + title_of("alert")
    cleartext = [r for r in rows if "mailsec.auth.cleartext" in value(r, alert).split(",")]
    assert len(cleartext) == len(attempts_in_clear(truth))


@pytest.mark.parametrize("name", CAPTURES)
def test_profile_loads_cleanly(ts, name):
    """With --color every coloring rule compiled (no warning on stderr) and
    dfilter_buttons loaded (no table error); every frame is colored."""
    rows, err = with_profile(ts, name)
    assert err == "", err
    assert rows and all(r["frame.coloring_rule.name"] for r in rows)


@pytest.mark.parametrize("name", CAPTURES)
def test_profile_changes_presentation_only(ts, name):
    """The built-in fields, Protocol and Info are the same with the profile
    as without it."""
    mine, _ = with_profile(ts, name)
    plain, _ = without_profile(ts, name)
    keep = ["frame.number"] + BUILTIN
    assert [{f: r[f] for f in keep} for r in mine] == [{f: r[f] for f in keep} for r in plain]


@pytest.mark.parametrize("name", CAPTURES)
def test_coloring(ts, name):
    """The mailsec rules color the frames the ground truth implies; every other
    frame keeps the rule Wireshark's defaults give it without the profile."""
    _, _, truth = bundled(name)
    mine, _ = with_profile(ts, name)
    plain, _ = without_profile(ts, name)
    kinds = rule_names()
    ours = {n for n, _, _, _ in mailsec_colorfilters()}
    colored = [value(r, "frame.coloring_rule.name") for r in mine]
    count = {kind: colored.count(rule) for kind, rule in kinds.items()}

    # frames no mailsec rule colors: exactly as without the profile
    for r, p, c in zip(mine, plain, colored):
        if c not in ours:
            assert c == value(p, "frame.coloring_rule.name"), "frame %s" % value(r, "frame.number")

    assert count["credentials"] == len(attempts_in_clear(truth))
    failures = [a for a in attempts(truth) if a["result"] == "failure"]
    # README: an alert each time the failures reach the threshold (one session here)
    assert count["brute_force"] == max(0, len(failures) - BRUTE_FORCE_THRESHOLD + 1)
    probes = [p for s in truth["sessions"] for p in s.get("probes") or []]
    asked = [p for p in probes if p["command"] in ("VRFY", "EXPN")]
    if probes:
        assert count["enumeration"] >= len(asked) > 0
    else:
        assert count["enumeration"] == 0
    smuggled = [m for s in truth["sessions"] for m in s.get("messages") or [] if m.get("smuggling")]
    if smuggled:
        assert count["smuggling"] >= len(smuggled)
    else:
        assert count["smuggling"] == 0
    assert count["injection"] == 0   # no bundled capture has a STARTTLS injection


def io_stat(t, name, filters):
    """Frames matching each filter (tshark -z io,stat,0,...), with the profile."""
    cap, keys, _ = bundled(name)
    for f in filters:
        assert "," not in f, "io,stat cannot take a filter with a comma: %r" % f
    out, err = t.run(cap, ["-C", PROFILE_NAME, "-q", "-z", "io,stat,0," + ",".join(filters)], keylog=keys)
    (row,) = [line for line in out.splitlines() if "<>" in line]
    cells = [c.strip() for c in row.strip().strip("|").split("|")]
    frames = [int(c) for c in cells[1::2]]
    assert len(frames) == len(filters), row
    return frames


@pytest.mark.parametrize("name", CAPTURES)
def test_every_filter_compiles_and_buttons_match(ts, name):
    """All the profile's mailsec filters compile (tshark exits 0; run() fails
    otherwise); each button matches frames where the ground truth says that
    thing happened, and none where it says it did not."""
    _, _, truth = bundled(name)
    labelled = all_filters()
    counts = dict(zip([label for label, _ in labelled], io_stat(ts, name, [f for _, f in labelled])))
    b = {label[len("button "):]: n for label, n in counts.items() if label.startswith("button ")}

    tried = attempts(truth)
    assert (b["Logins"] >= len(tried) > 0) if tried else b["Logins"] == 0
    # one verdict frame per refused login, one frame per login sent in clear
    assert b["Failures"] == len([a for a in tried if a["result"] == "failure"])
    assert b["Exposed"] == len(attempts_in_clear(truth))
    asked = [s for s in truth["sessions"] if s["starttls"]["requested"]]
    assert (b["STARTTLS"] >= len(asked) > 0) if asked else b["STARTTLS"] == 0
    probes = [p for s in truth["sessions"] for p in s.get("probes") or []]
    assert (b["Probes"] >= len(probes) > 0) if probes else b["Probes"] == 0
    messages = [m for s in truth["sessions"] for m in (s.get("messages") or []) + (s.get("retrieved") or [])]
    assert (b["Messages"] >= len(messages) > 0) if messages else b["Messages"] == 0
    if attempts_in_clear(truth) or probes or any(m.get("smuggling") for m in messages):
        assert b["Alerts"] > 0


def test_starttls_injection_is_colored(ts, tmp_path):
    """Plaintext pipelined after STARTTLS in the same segment, and server lines
    sent with the STARTTLS OK: this file writes both and the injection rule
    colors exactly those two segments."""
    cap = Capture()
    c1 = cap.conversation(25)
    cap.send(c1, "s", b"220 mx.example.org ESMTP Postfix\r\n")
    (command,) = cap.send(c1, "c", b"STARTTLS\r\nMAIL FROM:<attacker@example.org>\r\n")
    cap.send(c1, "s", b"220 2.0.0 Ready to start TLS\r\n")
    c1.ack("c")
    cap.send(c1, "c", client_hello())
    c2 = cap.conversation(25)
    cap.send(c2, "s", b"220 mx.example.org ESMTP Postfix\r\n")
    cap.send(c2, "c", b"STARTTLS\r\n")
    (response,) = cap.send(c2, "s", b"220 2.0.0 Ready to start TLS\r\n250-injected.example.org\r\n250 AUTH PLAIN\r\n")
    c2.ack("c")
    cap.send(c2, "c", client_hello())
    path = cap.write(tmp_path / "starttls-injection.pcap")

    rows, err = table(ts, path, ["frame.number", "tcp.payload", "frame.coloring_rule.name"],
                      ["-C", PROFILE_NAME, "--color"])
    assert err == ""
    by = {int(value(r, "frame.number")): r for r in rows}
    for c in (c1, c2):   # the numbering this test computed holds the bytes it wrote
        for n, (_, payload) in cap.payload_frames(c).items():
            assert unhex(value(by[n], "tcp.payload")) == payload
    rule = rule_names()["injection"]
    assert sorted(n for n, r in by.items() if value(r, "frame.coloring_rule.name") == rule) == \
        sorted([cap.number(command), cap.number(response)])


def test_global_profile(tshark):
    """tshark -C finds the profile in the global profiles folder as well (here
    a staged data folder, through WIRESHARK_DATA_DIR): it copies it into the
    personal profiles folder, then uses it just like a personal one."""
    stage = tshark.stage
    data = stage / ("data-%s" % os.environ.get("PYTEST_XDIST_WORKER", "main"))
    if data.exists():
        shutil.rmtree(data)
    data.mkdir()
    for entry in WIRESHARK_DATA.iterdir():
        if entry.name != "profiles":
            (data / entry.name).symlink_to(entry)
    shutil.copytree(PROFILE, data / "profiles" / PROFILE_NAME)
    _readable(data / "profiles")
    os.chmod(data, 0o755)
    t = Tshark("plain", {"WIRESHARK_DATA_DIR": str(data)})
    t.home = _home(stage, "global")

    rows, err = with_profile(t, "smtp-auth-bruteforce")
    assert err == ""
    _, _, truth = bundled("smtp-auth-bruteforce")
    assert logins(rows) == [(a["username"], a["mechanism"], a["result"]) for a in attempts(truth)]
    assert {value(r, "frame.coloring_rule.name") for r in rows} & set(rule_names().values())
    # Wireshark 4.0: -C with a profile found only globally copies it into the
    # personal folder (so HOME must be writable) and uses that copy from then on
    copy = t.home / ".config" / "wireshark" / "profiles" / PROFILE_NAME
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in PROFILE.iterdir())
    for p in PROFILE.iterdir():
        assert (copy / p.name).read_bytes() == p.read_bytes()
