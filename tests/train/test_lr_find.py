"""LR range test on a toy classifier: sane suggestion, model and RNG left untouched, plot."""

import torch
from test_loop import collate, lengths, loss_fn, make_data, toy

from bertkit.train import lr_find
from bertkit.train.lr_find import suggest_lr


def test_lr_find_suggests_sane_lr_and_restores_state(tmp_path):
    data = make_data(64)
    model = toy(dropout=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(7)
    expected_next = torch.rand(3)
    torch.manual_seed(7)
    result = lr_find(
        model, data, loss_fn, collate=collate, lengths=lengths(data), batch_size=8, num_steps=100
    )
    assert torch.equal(torch.rand(3), expected_next)  # RNG restored
    for k, v in model.state_dict().items():
        assert torch.equal(v.cpu(), before[k]), k
    assert 5 < len(result.lrs) <= 100
    assert result.lrs == sorted(result.lrs) and result.lrs[0] == 1e-7
    assert result.suggestion is not None and 1e-4 <= result.suggestion <= 1.0
    # the range test stops once the loss blows up, well before end_lr on this problem
    assert len(result.lrs) < 100 or result.losses[-1] > min(result.losses)
    fig_path = tmp_path / "lr.png"
    result.plot(fig_path)
    assert fig_path.read_bytes()[:4] == b"\x89PNG"


def test_suggestion_is_steepest_descent():
    lrs = [10 ** (-6 + i * 0.1) for i in range(60)]
    losses = (
        [1.0] * 20
        + [1.0 - 0.05 * i for i in range(10)]
        + [0.5 - 0.2 * i for i in range(3)]
        + [0.1] * 27
    )
    assert suggest_lr(lrs, losses) == lrs[31]
    assert suggest_lr(lrs[:4], losses[:4]) is None
