"""The plugin loads, registers what the README promises, and says nothing at start-up."""
import re
import subprocess

from conftest import ROOT


def readme_names(prefix_pattern):
    text = (ROOT / "README.md").read_text()
    return set(re.findall(r"^\| `(%s[a-z0-9_.]*)` \|" % prefix_pattern, text, re.M))


def run_g(tshark, report):
    rc, out, err = tshark.invoke(["-G", report])
    assert rc == 0
    return out, err


def test_plugin_is_loaded(tshark):
    out, err = run_g(tshark, "plugins")
    assert re.search(r"^mailsec\.so\s+\S+\s+dissector\s", out, re.M), out
    assert err == ""


def test_protocol_and_fields_registered(tshark):
    out, err = run_g(tshark, "fields")
    assert err == ""
    rows = [l.split("\t") for l in out.splitlines()]
    protocols = {r[2] for r in rows if r[0] == "P"}
    fields = {r[2] for r in rows if r[0] == "F"}
    assert "mailsec" in protocols
    promised = readme_names(r"mailsec\.") - {"mailsec"}
    assert promised, "README lists no fields"
    assert promised - fields == set()


def test_expert_infos_registered(tshark):
    out, err = run_g(tshark, "fields")
    fields = {l.split("\t")[2] for l in out.splitlines() if l.startswith("F\t")}
    text = (ROOT / "README.md").read_text()
    promised = set(re.findall(r"^\| `(mailsec\.[a-z_]+\.[a-z_]+)` \| [A-Z][a-z]+ / ", text, re.M))
    assert len(promised) >= 5
    assert promised - fields == set()


def test_heuristic_registered(tshark):
    out, _ = run_g(tshark, "heuristic-decodes")
    assert re.search(r"^tcp\s+mailsec\s+T", out, re.M), out


def test_no_startup_warnings_without_plugin_difference(tshark):
    cap = str(ROOT / "captures" / "real" / "smtp-cleartext.pcapng")
    _, err_with = tshark.run(cap, ["-z", "io,phs", "-q"])
    _, err_without = tshark.run(cap, ["-z", "io,phs", "-q"], plugin=False)
    assert err_with == err_without == ""
