"""The field and alert reference cannot drift from the plugin.

plugin/REFERENCE.md is generated from what tshark lists with the plugin loaded
(`tshark -G fields`); the README's own tables of fields and expert infos are
checked against the same glossary and against the registrations.
"""
import re
import subprocess
import sys

from conftest import ROOT, _plugin_path

sys.path.insert(0, str(ROOT / "scripts"))
import reference  # noqa: E402


def _glossary():
    return reference.glossary(_plugin_path())


def test_reference_is_current():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "reference.py"), str(_plugin_path()), "-"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    committed = (ROOT / "plugin" / "REFERENCE.md").read_text()
    assert out.stdout == committed, "plugin/REFERENCE.md is stale: run scripts/reference.py build/mailsec.so"


def _readme_section(title):
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## %s\n" % title)
    end = text.find("\n## ", start + 1)
    return text[start:end]


def _readme_fields():
    """Every field name the README's Fields table names (`a.b.c` / `.d`: a.b.d)."""
    names = set()
    section = _readme_section("Fields")
    table = section[:section.index("Expert info")]
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        last_full = None
        for tok in re.findall(r"`([^`]+)`", first):
            if tok.startswith("mailsec"):
                names.add(tok)
                last_full = tok
            elif tok.startswith(".") and last_full:
                names.add(last_full.rsplit(".", 1)[0] + tok)   # a sibling of the last full name
    return names


def test_readme_fields_are_the_registered_ones():
    _, fields = _glossary()
    regs = reference.registrations()
    registered = {f[0] for f in fields if f[0] not in regs} | {"mailsec"}
    documented = _readme_fields()
    assert documented, "README lost its Fields table"
    assert not documented - registered, "in the README, not registered: %s" % sorted(documented - registered)
    assert not registered - documented, "registered, not in the README: %s" % sorted(registered - documented)


def test_readme_expert_table_is_the_registered_one():
    _, fields = _glossary()
    regs = reference.registrations()
    glossary = {f[0] for f in fields}
    assert set(regs) <= glossary, "registered expert infos tshark does not list: %s" % sorted(set(regs) - glossary)
    rows = {}
    for line in _readme_section("Fields").splitlines():
        m = re.match(r"^\| `(mailsec\.[a-z0-9_.]+)` \| ([A-Za-z ]+) / ([A-Za-z]+) \|", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3))
    assert rows == regs
