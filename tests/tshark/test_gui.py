"""The real Wireshark GUI (Debian's wireshark-qt) under Xvfb, through
scripts/gui.sh: it starts with the plugin and the "Mail Forensics" profile,
opens a bundled capture (its window is titled with the capture's name), raises
no dialog nobody asked for (a plugin that failed to load, a display filter
`mailsec` it rejected), stays alive, and its screenshots are not blank. File >
Export Objects > MAILSEC > Save All writes every message and attachment, whose
SHA-256 are the generator's ground truth.
"""
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import BUNDLED, ROOT, _plugin_path
from test_main_command import truth

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="scripts/gui.sh runs as root (it drops to nobody)")

SHOTS = {"packets": "smtp-auth-bruteforce.pcapng", "expert": "smtp-auth-bruteforce.pcapng",
         "stats": "smtp-auth-bruteforce.pcapng", "export": "smtp-attachments.pcapng"}


@pytest.fixture(scope="module")
def gui_run():
    out = pathlib.Path(tempfile.mkdtemp(prefix="mailsec-gui-test-"))
    saved = out / "saved"
    saved.mkdir()
    os.chmod(out, 0o755)
    os.chmod(saved, 0o777)
    env = dict(os.environ, MAILSEC_GUI_SAVE_ALL=str(saved))
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gui.sh"), "--plugin", str(_plugin_path()), str(out)],
                          capture_output=True, text=True, env=env, timeout=900)
    yield proc, out, saved
    shutil.rmtree(out, ignore_errors=True)


def test_gui_starts_loads_the_plugin_and_stays_up(gui_run):
    proc, out, _ = gui_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = {l.split()[0]: l for l in proc.stdout.splitlines() if l.strip()}
    assert set(lines) == set(SHOTS), proc.stdout
    for shot, cap in SHOTS.items():
        m = re.match(r"^%s ok title=(\S+) windows=(\d) alive=(\d) png=(\S+)$" % shot, lines[shot])
        assert m, lines[shot]
        assert m.group(1) == cap and m.group(3) == "1"
        assert m.group(2) == ("1" if shot == "packets" else "2")


@pytest.mark.parametrize("shot", sorted(SHOTS))
def test_screenshot_is_not_blank(gui_run, shot):
    _, out, _ = gui_run
    png = out / ("%s.png" % shot)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info = subprocess.run(["identify", "-format", "%w %h %k %[fx:standard_deviation]", str(png)],
                          capture_output=True, text=True, check=True).stdout.split()
    width, height, colours, deviation = int(info[0]), int(info[1]), int(info[2]), float(info[3])
    assert (width, height) == (1600, 1000)
    assert colours > 50 and deviation > 0.05, info


def test_export_objects_save_all_writes_the_ground_truth(gui_run):
    _, _, saved = gui_run
    t = truth("smtp-attachments")
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in saved.iterdir()}
    messages = [h for n, h in sorted(files.items(), key=lambda kv: kv[0]) if n.endswith(".eml")]
    want = [m["data_sha256"] for s in t["sessions"] for m in s["messages"] if m.get("data_sha256")]
    assert sorted(messages) == sorted(want)
    attachments = sorted(h for n, h in files.items() if "-att" in n)
    assert attachments == sorted(a["sha256"] for s in t["sessions"] for m in s["messages"]
                                 for a in m.get("attachments", []))
