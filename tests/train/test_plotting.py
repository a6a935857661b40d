"""Saving a plot writes a real PNG and leaves the session's matplotlib backend alone."""

from __future__ import annotations

import subprocess
import sys


def test_saving_plots_needs_no_pyplot(tmp_path):
    code = f"""
import sys
from bertkit.plotting import finish_figure, new_figure
from bertkit.train.history import History
fig, ax = new_figure()
ax.plot([1, 2], [3, 4])
finish_figure(fig, {str(tmp_path / 'a.png')!r})
History([{{"step": 1, "loss": 2.0}}, {{"step": 2, "loss": 1.0, }}, {{"step": 2, "val_loss": 1.5}}]).plot({str(tmp_path / 'b.png')!r})
assert "matplotlib.pyplot" not in sys.modules, "saving imported pyplot"
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    for name in ("a.png", "b.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_plotter_pairs_training_and_validation_values(tmp_path):
    from bertkit.train.history import metric_names, plot_history

    records = [{"step": 1, "epoch": 0, "lr": 1e-3, "loss": 2.0, "accuracy": 0.4},
               {"step": 2, "epoch": 0, "val_loss": 1.5, "val_accuracy": 0.5, "val_f1": 0.3}]
    assert metric_names(records) == ["loss", "accuracy", "f1"]
    fig = plot_history(records, tmp_path / "h.png")
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    assert titles == ["loss", "accuracy", "f1"]
    assert [line.get_label() for line in fig.axes[0].lines] == ["train", "validation"]
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    tagged = [{"phase": 1, "global_step": 5, "step": 5, "mlm_loss": 3.0, "perplexity": 20.0}]
    fig = plot_history(tagged, None, ["mlm_loss", "nsp_accuracy", "perplexity"], x="global_step")
    assert [ax.get_title() for ax in fig.axes if ax.axison] == ["mlm loss", "perplexity"]
    assert fig.axes[1].get_yscale() == "log" and fig.axes[0].get_xlabel() == "global step"
