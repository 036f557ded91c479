"""`tshark -q -z mailsec,tree` (Statistics → Mail Forensics in the GUI).

Expected counts come from the generator's ground truth (the sessions it
opened, each login's mechanism and the server's verdict, each probe and the
server's code, the messages it sent) or from Wireshark's own output, never
from mailsec's: the tree must count what happened on the wire.
"""
import collections
import re

import pytest

from conftest import ground_truth_captures, realworld_captures
from test_messages_gt import VERDICT


def stats(tshark, cap, keys=None, extra=(), plugin=True):
    """{(node, child, ...): count} of the Mail Forensics tree."""
    out, _ = tshark.run(cap, list(extra) + ["-q", "-z", "mailsec,tree"], keylog=keys, plugin=plugin)
    lines = out.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("Topic / Item"))
    tree, path = {}, []
    for line in lines[start + 2:]:
        if line.startswith("---") or not line.strip():
            break
        depth = len(line) - len(line.lstrip(" "))
        m = re.match(r"^ *(.+?)\s{2,}(\d+)\s", line + " ")
        assert m, "unreadable stats line %r" % line
        path = path[:depth] + [m.group(1)]
        tree[tuple(path)] = int(m.group(2))
    return tree


def children(tree, *prefix):
    """{child name: count} of the node at prefix."""
    n = len(prefix)
    return {k[n]: v for k, v in tree.items() if len(k) == n + 1 and k[:n] == prefix and v}


CASES = ground_truth_captures()


def _usable(case):
    cap, keys, truth = case
    if truth["transport"] != "cleartext" and not keys:
        pytest.skip("TLS without keys")
    return cap, keys, truth


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("case", CASES)
def test_sessions_and_logins_match_the_ground_truth(tshark, case, two_pass):
    cap, keys, truth = _usable(case)
    tree = stats(tshark, cap, keys, ["-2"] if two_pass else [])
    # sessions by protocol: every session the generator opened, once
    want = collections.Counter(s["protocol"] for s in truth["sessions"])
    assert children(tree, "Sessions") == dict(want)
    assert tree[("Sessions",)] == len(truth["sessions"])
    # by transport, where TLS really began (a stripped STARTTLS stays in clear)
    for proto in want:
        got = children(tree, "Sessions", proto)
        exp = collections.Counter()
        for s in truth["sessions"]:
            if s["protocol"] != proto:
                continue
            t = s["transport"]
            if t == "starttls" and s.get("tls_started") is False:
                t = "cleartext"
            exp[t] += 1
        assert got == dict(exp), proto
    # logins by mechanism, and each verdict under its mechanism
    mech = collections.Counter(a["mechanism"] for s in truth["sessions"] for a in s["auth"])
    assert children(tree, "Logins") == dict(mech)
    for m in mech:
        verdicts = collections.Counter(a["result"] for s in truth["sessions"] for a in s["auth"]
                                       if a["mechanism"] == m and a["result"])
        assert children(tree, "Logins", m) == dict(verdicts), m
    failures = sum(1 for s in truth["sessions"] for a in s["auth"] if a["result"] == "failure")
    assert tree.get(("Failed logins by client",), 0) == failures


@pytest.mark.parametrize("case", [c for c in CASES if any(s.get("probes") for s in c.values[0][2]["sessions"])])
def test_probes_by_verdict_and_client(tshark, case):
    cap, keys, truth = _usable(case)
    tree = stats(tshark, cap, keys)
    want = collections.Counter()
    for s in truth["sessions"]:
        for p in s.get("probes", []):
            if p["command"] == "RCPT" and p["code"] not in ("550", "551", "553"):
                continue    # an accepted recipient is no probe
            want[(p["command"], VERDICT.get(p["code"], "refused"))] += 1
    got = {(c, v): n for c in children(tree, "Probes") for v, n in children(tree, "Probes", c).items()}
    assert got == dict(want)
    clients = {s.get("client_address", "127.0.0.1") for s in truth["sessions"] if s.get("probes")}
    assert set(children(tree, "Probes by client")) <= clients | {"127.0.0.1", "::1"}
    assert tree[("Probes by client",)] == sum(want.values())


@pytest.mark.parametrize("case", [c for c in CASES if any(m.get("data_sha256") for s in c.values[0][2]["sessions"]
                                                          for m in s.get("messages", []))])
def test_messages_and_recipients(tshark, case):
    """Messages carried by SMTP DATA (or BDAT): one per message the client sent
    whose data the server read to its end; recipients: every RCPT TO the
    client sent (the generator's exchanges)."""
    cap, keys, truth = _usable(case)
    tree = stats(tshark, cap, keys)
    sent = sum(1 for s in truth["sessions"] for m in s.get("messages", []) if m.get("data_sha256"))
    got = children(tree, "Messages")
    assert got.get("SMTP DATA", 0) + got.get("SMTP BDAT", 0) == sent
    rcpt = sum(1 for s in truth["sessions"] for ex in s.get("exchanges", [])
               if ex["command"].split(" ", 1)[0].upper() == "RCPT")
    assert tree.get(("Recipients (RCPT TO)",), 0) == rcpt


@pytest.mark.parametrize("case", CASES)
def test_alerts_are_the_expert_infos(tshark, case):
    """Alerts by severity and name: the same as Wireshark's own Expert
    Information (tshark -z expert) lists for mailsec."""
    cap, keys, truth = _usable(case)
    tree = stats(tshark, cap, keys)
    got = {(sev, name): n for sev in children(tree, "Alerts") for name, n in children(tree, "Alerts", sev).items()}
    out, _ = tshark.run(cap, ["-q", "-z", "expert"], keylog=keys)
    want = collections.Counter()
    sev = None
    for line in out.splitlines():
        m = re.match(r"^(Errors|Warns|Notes|Chats) \(\d+\)", line)
        if m:
            sev = {"Errors": "error", "Warns": "warning", "Notes": "note", "Chats": "chat"}[m.group(1)]
            continue
        m = re.match(r"^\s+(\d+)\s+\S+\s+MAILSEC\s+(.*)$", line)
        if m and sev:
            want[(sev, m.group(2))] += int(m.group(1))
    # expert lists summaries per message text; the tree per alert name: compare totals per severity
    per_sev = collections.Counter()
    for (s, _), n in got.items():
        per_sev[s] += n
    want_sev = collections.Counter()
    for (s, _), n in want.items():
        want_sev[s] += n
    assert dict(per_sev) == dict(want_sev)


@pytest.mark.parametrize("capture", [pytest.param(r, id=r["path"].split("/tests/")[-1])
                                     for r in realworld_captures()])
def test_realworld_sessions_counted_once(tshark, capture):
    """Over the real-world corpus: one session per TCP stream that carries
    Wireshark's own smtp, pop or imap (what recognition tests already require),
    and a clean exit."""
    path = capture["abspath"]
    tree = stats(tshark, path)
    rows = tshark.fields(path, ["tcp.stream"], display_filter="smtp || pop || imap", plugin=False)
    streams = {r[0] for r in rows if r[0]}
    assert tree.get(("Sessions",), 0) >= len(streams)
    assert sum(children(tree, "Sessions").values()) == tree.get(("Sessions",), 0)
