"""Saving a plot writes a real PNG and leaves the session's matplotlib backend alone."""

from __future__ import annotations

import subprocess
import sys


def test_saving_plots_needs_no_pyplot(tmp_path):
    code = f"""
import sys
from bertkit.plotting import finish_figure, new_figure
from bertkit.train.plots import History
fig, ax = new_figure()
ax.plot([1, 2], [3, 4])
finish_figure(fig, {str(tmp_path / 'a.png')!r})
History([{{"step": 1, "loss": 2.0}}, {{"step": 2, "loss": 1.0, }}, {{"step": 2, "val_loss": 1.5}}]).plot({str(tmp_path / 'b.png')!r})
assert "matplotlib.pyplot" not in sys.modules, "saving imported pyplot"
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    for name in ("a.png", "b.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
