"""One analysis, whatever the pass and whoever reads it.

mailsec analyses each frame once, on the first pass, and stores what it
learnt; every later pass (tshark -2, the GUI's re-dissection) and every
consumer (packet details, -T fields, a display filter, the expert tap, the
credentials tap) reads that stored result, and rendering is skipped when
nobody looks. These tests make the consumers agree with each other on a slice
of the benchmark capture, which holds a copy of every bundled real-server
session (bench/make_captures.py: cleartext, STARTTLS and implicit TLS, all
three protocols, IPv4 and IPv6, logins that succeed and fail). Nothing here is
compared with a stored copy of mailsec's own output.
"""
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def bench_slice(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-slice")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "make_captures.py"), str(out),
                           "--size-mb", "1", "--seed", "3", "--kind", "mail"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    cap, keys = out / "mail.pcap", out / "mail.keys"
    assert cap.stat().st_size > 500_000 and keys.stat().st_size > 0
    return cap, keys


def mailsec_fields(tshark):
    rc, out, err = tshark.invoke(["-G", "fields"])
    assert rc == 0, err
    names = [line.split("\t")[2] for line in out.splitlines()
             if line.startswith("F\t") and line.split("\t")[4] == "mailsec"]
    assert len(names) > 20
    return names


def test_two_passes_store_and_show_the_same(tshark, bench_slice):
    cap, keys = bench_slice
    # result_in links forward to the verdict: like Wireshark's own response
    # links it exists only once the verdict has been seen (second pass)
    fields = ["frame.number"] + [f for f in mailsec_fields(tshark) if f != "mailsec.auth.result_in"]
    one = tshark.fields(cap, fields, keylog=keys)
    two = tshark.fields(cap, fields, keylog=keys, two_pass=True)
    analysed = [r for r in one if any(r[1:])]
    assert len(analysed) > 1000, "the slice should be mostly mail"
    assert one == two


def _mailsec_subtrees(text):
    """The Mail Forensics subtree of each frame, in order. Like Wireshark's own
    response links, "Result in" points forward, so a single pass cannot know
    it yet: that line alone is left out."""
    frames, current, inside = [], None, False
    for line in text.splitlines():
        if line.startswith("Frame "):
            current = []
            frames.append(current)
            inside = False
        elif line.startswith("Mail Forensics"):
            inside = True
        elif line and not line.startswith(" "):
            inside = False
        if inside and current is not None and "[Result in: " not in line:
            current.append(line)
    return frames


def test_packet_details_of_two_passes_agree(tshark, bench_slice):
    cap, keys = bench_slice
    one, _ = tshark.run(cap, ["-V", "-c", "3000"], keylog=keys)
    two, _ = tshark.run(cap, ["-V", "-c", "3000"], keylog=keys, two_pass=True)
    a, b = _mailsec_subtrees(one), _mailsec_subtrees(two)
    assert len(a) == 3000 and sum(1 for f in a if f) > 1000
    assert a == b


def test_expert_tap_sees_every_alert_without_a_tree(tshark, bench_slice):
    """-z expert shows no packet tree: the alerts must still reach the tap."""
    cap, keys = bench_slice
    rows = tshark.fields(cap, ["mailsec.alert.name"], keylog=keys)
    alerts = sum(len([v for v in r[0].split(",") if v]) for r in rows)
    out, _ = tshark.run(cap, ["-q", "-z", "expert"], keylog=keys)
    tapped = sum(int(m.group(1)) for m in re.finditer(r"^\s+(\d+)\s+\S+\s+MAILSEC\s", out, re.M))
    assert alerts > 100
    assert tapped == alerts


def test_credentials_tap_gets_every_login_request(tshark, bench_slice):
    cap, keys = bench_slice
    rows = tshark.fields(cap, ["mailsec.auth.exposed"], keylog=keys)
    requests = sum(len([v for v in r[0].split(",") if v]) for r in rows)
    out, _ = tshark.run(cap, ["-q", "-z", "credentials"], keylog=keys)
    tapped = [line for line in out.splitlines() if "mailsec:" in line]
    assert requests > 100
    assert len(tapped) == requests


def test_a_filter_alone_finds_what_the_fields_show(tshark, bench_slice):
    """Only a display filter references mailsec: the filtered frames are those
    whose fields carry a user name."""
    cap, keys = bench_slice
    rows = tshark.fields(cap, ["frame.number", "mailsec.auth.username"], keylog=keys)
    expected = [r[0] for r in rows if r[1]]
    out, _ = tshark.run(cap, ["-Y", "mailsec.auth.username", "-T", "fields", "-e", "frame.number"], keylog=keys)
    assert len(expected) > 100
    assert out.split() == expected


def test_no_tree_run_still_analyses(tshark, bench_slice):
    """A run that builds no tree for its own output (-q -z conv,tcp) still
    analyses every frame: its protocol hierarchy in the same run counts
    mailsec on as many frames as the fields run shows."""
    cap, keys = bench_slice
    rows = tshark.fields(cap, ["mailsec.proto"], keylog=keys)
    frames = sum(1 for r in rows if r[0])
    out, _ = tshark.run(cap, ["-q", "-z", "conv,tcp", "-z", "io,phs"], keylog=keys)
    counts = [int(m.group(1)) for m in re.finditer(r"^\s+mailsec\s+frames:(\d+)", out, re.M)]
    assert counts, out[-2000:]
    assert sum(counts) == frames


MAILSEC_TAP_LISTENER = """
local frames, repeated, seen = 0, 0, {}
local tap = Listener.new("mailsec")
function tap.packet(pinfo, tvb, record)
    frames = frames + 1
    if seen[pinfo.number] then repeated = repeated + 1 end
    seen[pinfo.number] = true
end
function tap.draw()
    print("mailsec-tap frames=" .. frames .. " repeated=" .. repeated)
end
"""


def test_mailsec_tap_gets_every_analysed_frame_once(tshark, bench_slice, tmp_path):
    """The mailsec tap (register_tap("mailsec")) is queued once per analysed
    frame, with or without a tree: a Lua listener in a -q run (no tree) counts
    exactly the frames that carry mailsec in the fields run."""
    cap, keys = bench_slice
    rows = tshark.fields(cap, ["mailsec.proto"], keylog=keys)
    frames = sum(1 for r in rows if r[0])
    script = tmp_path / "mailsec-tap.lua"
    script.write_text(MAILSEC_TAP_LISTENER)
    out, _ = tshark.run(cap, ["-q", "-X", "lua_script:%s" % tshark.copy(script)], keylog=keys)
    m = re.search(r"mailsec-tap frames=(\d+) repeated=(\d+)", out)
    assert m, out[-2000:]
    assert frames > 1000
    assert int(m.group(1)) == frames
    assert int(m.group(2)) == 0
