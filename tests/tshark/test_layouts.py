"""The guard on Wireshark's private layouts (issue: robust).

mailsec mirrors two structures the development package does not export: the
TLS dissector's per-frame record store and the credentials tap's record. Under
a libwireshark release they were not checked against, it must read neither and
say so. Another release cannot be installed here, so a preloaded shim makes
epan_get_version_number() (what the plugin asks at start-up) answer 4.6.0; the
same run without the shim is the control. Expected logins come from the
generator's ground truth.
"""
import os
import subprocess

import pytest

from conftest import BUNDLED, Tshark, _stage
from test_main_command import truth

SHIM = r"""
void epan_get_version_number(int *major, int *minor, int *micro)
{
    *major = 4; *minor = 6; *micro = 0;
}
"""


@pytest.fixture(scope="module")
def pretend_46():
    d = _stage() / "shim46"
    d.mkdir(exist_ok=True)
    src, so = d / "shim.c", d / "libpretend46.so"
    src.write_text(SHIM)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    os.chmod(d, 0o755)
    os.chmod(so, 0o755)
    return Tshark("plain", {"LD_PRELOAD": str(so)})


CAP = BUNDLED / "smtp-auth-starttls.pcapng"
KEYS = BUNDLED / "smtp-auth-starttls.keys"


def _logins(t):
    rows = t.fields(CAP, ["mailsec.auth.username", "mailsec.auth.result"], display_filter="mailsec.auth.result",
                    keylog=KEYS)
    return [tuple(r) for r in rows]


def test_checked_release_reads_tls_and_feeds_credentials(tshark):
    """Control: Wireshark 4.0 (checked): the logins inside TLS are decoded and tapped."""
    want = [(a["username"], a["result"]) for s in truth("smtp-auth-starttls")["sessions"] for a in s["auth"]]
    assert want and _logins(tshark) == want
    out, _ = tshark.run(CAP, ["-q", "-z", "credentials"], keylog=KEYS)
    assert "mailsec" in out.split("Packet     Protocol")[1]


def test_unchecked_release_reads_neither_and_says_so(tshark, pretend_46):
    out, err = pretend_46.run(CAP, ["-q", "-z", "credentials", "-z", "expert,note"], keylog=KEYS)
    assert "4.6.0" in err and "not read" in err                 # said once in the log
    assert err.count("mailsec: libwireshark") == 1
    creds = out.split("Packet     Protocol")[1]                 # the credentials table
    assert "mailsec" not in creds                               # no credentials tapped
    assert out.count("is not a release mailsec was checked against") == 1   # one note, on the first mail frame
    assert _logins(pretend_46) == []                            # nothing read from inside TLS
    # the first mail frame carries the note: the first frame mailsec marks at all
    first = pretend_46.fields(CAP, ["frame.number"], display_filter="mailsec", keylog=KEYS)[0][0]
    noted = pretend_46.fields(CAP, ["frame.number"], display_filter="mailsec.layout_unchecked", keylog=KEYS)
    assert noted == [[first]]
    # what is in clear is analysed as under a checked release (the STARTTLS story)
    fields = ["frame.number", "mailsec.starttls.offered", "mailsec.starttls.command", "mailsec.starttls.result"]
    clear = "mailsec.transport == \"cleartext\""
    assert pretend_46.fields(CAP, fields, display_filter=clear) == tshark.fields(CAP, fields, display_filter=clear)
    assert pretend_46.fields(CAP, fields, display_filter=clear)
