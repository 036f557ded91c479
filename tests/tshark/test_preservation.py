"""Nothing lost: the built-in dissection is the same with and without mailsec.

For every bundled and every real-world capture, every field of the built-in
smtp, pop, imap, imf, tls and tcp layers (with their expert info) is compared,
frame by frame, in one pass and with -2. Only frame.protocols may differ, and
only by mailsec.

Two differences are wanted:
- a mail session on a port no built-in dissector registers (SMTP on 2525) is
  handed to the built-in dissector by mailsec's heuristic, so those frames gain
  SMTP fields. For such frames the check is that everything the built-ins
  showed without mailsec is still there, unchanged;
- a POP3 frame that completes a RETR or TOP message the POP3 dissector did not
  hand to IMF gains IMF layers (mailsec hands the message over, the
  pop3_imf preference). On such a frame every other layer must be exactly as
  without mailsec, and the frame had no IMF layer before.
"""
import collections
import xml.etree.ElementTree as ET

import pytest

from conftest import BUNDLED, realworld_captures

LAYERS = ("smtp", "pop", "imap", "imf", "tls", "tcp")
MAIL = ("smtp", "pop", "imap")


def _collect(elem, acc):
    for f in elem.findall("field"):
        name = f.get("name", "")
        acc.append((name, f.get("show", ""), f.get("value", "")))
        _collect(f, acc)
    for p in elem.findall("proto"):  # expert info and other nested items
        acc.append(("<proto>" + p.get("name", ""), p.get("showname", ""), ""))
        _collect(p, acc)


def pdml_layers(tshark, capture, plugin, two_pass, keylog=None):
    """frame number -> {layer: [fields...]} and frame.protocols."""
    # each of these runs is read by one test only: not kept (conftest)
    out, err = tshark.run(capture, ["-T", "pdml"], plugin=plugin, two_pass=two_pass, keylog=keylog,
                          cache=False)
    frames = {}
    for pkt in ET.fromstring(out).findall("packet"):
        num = None
        layers = collections.defaultdict(list)
        protocols = ""
        for proto in pkt.findall("proto"):
            pname = proto.get("name")
            if pname == "frame":
                for f in proto.iter("field"):
                    if f.get("name") == "frame.number":
                        num = int(f.get("show"))
                    elif f.get("name") == "frame.protocols":
                        protocols = f.get("show")
            elif pname in LAYERS:
                acc = []
                _collect(proto, acc)
                layers[pname].append(acc)
        frames[num] = (dict(layers), protocols)
    return frames, err


def compare(base, with_plugin):
    problems = []
    assert base.keys() == with_plugin.keys(), "frame count changed"
    for num, (b_layers, b_protocols) in base.items():
        p_layers, p_protocols = with_plugin[num]
        gained = not any(l in b_layers for l in MAIL) and any(l in p_layers for l in MAIL)
        if gained:
            # heuristic hand-over: the built-in fields that were there stay
            for layer, occurrences in b_layers.items():
                have = collections.Counter(x for occ in p_layers.get(layer, []) for x in occ)
                for occ in occurrences:
                    for item in occ:
                        if have[item] <= 0:
                            problems.append((num, layer, "lost", item))
                        have[item] -= 1
            continue
        if "pop" in b_layers and "imf" not in b_layers and "imf" in p_layers:
            # POP3 messages handed to IMF: only imf layers were added
            p_layers = {k: v for k, v in p_layers.items() if k != "imf"}
        if b_layers != p_layers:
            for layer in sorted(set(b_layers) | set(p_layers)):
                if b_layers.get(layer) != p_layers.get(layer):
                    problems.append((num, layer, "changed"))
        stripped = ":".join(x for x in p_protocols.split(":") if x != "mailsec")
        if stripped != b_protocols:
            problems.append((num, "frame.protocols", b_protocols, p_protocols))
    return problems


def captures():
    out = [pytest.param((str(p), None), id="bundled/" + p.stem) for p in sorted(BUNDLED.glob("*.pcapng"))]
    out += [pytest.param((str(p), str(p.with_suffix(".keys"))), id="bundled-keys/" + p.stem)
            for p in sorted(BUNDLED.glob("*.pcapng")) if p.with_suffix(".keys").exists()]
    out += [pytest.param((r["abspath"], None), id="realworld/" + r["path"].split("/tests/")[-1])
            for r in realworld_captures()]
    return out


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("case", captures())
def test_builtin_fields_unchanged(tshark, case, two_pass):
    capture, keylog = case
    base, _ = pdml_layers(tshark, capture, plugin=False, two_pass=two_pass, keylog=keylog)
    mine, err = pdml_layers(tshark, capture, plugin=True, two_pass=two_pass, keylog=keylog)
    problems = compare(base, mine)
    assert not problems, problems[:20]
