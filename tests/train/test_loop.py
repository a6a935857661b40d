"""The training loop on a toy model: optimizers, schedules, accumulation, resume, checkpoints."""

import json
import math

import pytest
import torch
from torch import nn

from bertkit.data import pad_collate
from bertkit.train import History, Lamb, TrainConfig, fit, get_schedule, param_groups
from bertkit.train.checkpoint import step_dirs


class Toy(nn.Module):
    """Embedding → LayerNorm → dropout → mean-pool → linear: the shape of a tiny text classifier."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.emb = nn.Embedding(32, 16)
        self.norm = nn.LayerNorm(16)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(16, 2)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.drop(self.norm(self.emb(ids)))  # (batch, seq, 16)
        h = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return self.out(h)


def loss_fn(model, batch):
    logits = model(batch["input_ids"], batch["attention_mask"])
    loss = nn.functional.cross_entropy(logits, batch["labels"])
    return loss, {"accuracy": (logits.argmax(-1) == batch["labels"]).float().mean().item()}


def make_data(n: int, seed: int = 0, fixed_len: int | None = None) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    data = []
    for _ in range(n):
        length = fixed_len or int(torch.randint(2, 12, (1,), generator=g))
        ids = torch.randint(1, 32, (length,), generator=g).tolist()
        data.append({"input_ids": ids, "attention_mask": [1] * length, "labels": int(ids[0] < 16)})
    return data


def collate(features):
    return pad_collate(features, pad_id=0)


def lengths(data):
    return [len(f["input_ids"]) for f in data]


def toy(dropout: float = 0.0, seed: int = 0) -> Toy:
    torch.manual_seed(seed)
    return Toy(dropout)


QUIET = dict(progress=False, log_every=1)


def test_schedule_shapes():
    lin = get_schedule("linear", 100, 10)
    assert lin(0) == 0 and lin(10) == 1 and lin(5) == 0.5 and lin(100) == 0
    assert max(map(lin, range(100))) == 1
    cos = get_schedule("cosine", 100, 10)
    assert cos(10) == 1 and cos(99) < 0.01
    assert get_schedule("constant", 100, 10)(90) == 1
    one = get_schedule("onecycle", 100)
    assert one(0) == pytest.approx(1 / 25) and one(30) == pytest.approx(1)
    assert max(range(100), key=one) == 30 and one(99) < 1e-3
    tri = get_schedule("triangular", 100, cycle_steps=20)
    assert (
        tri(0) == pytest.approx(0.1)
        and tri(10) == pytest.approx(1)
        and tri(20) == pytest.approx(0.1)
    )
    with pytest.raises(ValueError, match="unknown schedule"):
        get_schedule("step", 10)


def test_no_weight_decay_on_bias_and_layernorm():
    model = toy()
    decayed, plain = param_groups(model, 0.01)
    assert {id(p) for p in decayed["params"]} == {id(model.emb.weight), id(model.out.weight)}
    no_decay = {id(p) for p in plain["params"]}
    assert no_decay == {id(model.norm.weight), id(model.norm.bias), id(model.out.bias)}
    assert plain["weight_decay"] == 0 and decayed["weight_decay"] == 0.01


def test_lamb_reduces_loss():
    torch.manual_seed(0)
    x, y = torch.randn(64, 8), torch.randint(0, 2, (64,))
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))
    opt = Lamb(param_groups(model, 0.01), lr=0.05)
    first = nn.functional.cross_entropy(model(x), y).item()
    for _ in range(50):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


@pytest.mark.parametrize("optimizer", ["adamw", "lamb"])
def test_overfits_one_batch(optimizer):
    data = make_data(8)
    config = TrainConfig(
        lr=0.05, max_steps=60, batch_size=8, warmup=0, optimizer=optimizer, **QUIET
    )
    history = fit(toy(), data, loss_fn, config, collate=collate)
    assert history.records[-1]["loss"] < 0.05
    assert history.records[-1]["accuracy"] == 1.0


def test_grad_accum_matches_bigger_batch():
    data = make_data(8, fixed_len=5)
    big, small = toy(), toy()
    base = dict(lr=0.01, max_steps=1, warmup=0, **QUIET)
    fit(big, data, loss_fn, TrainConfig(batch_size=8, **base), collate=collate)
    fit(small, data, loss_fn, TrainConfig(batch_size=4, grad_accum=2, **base), collate=collate)
    for a, b in zip(big.parameters(), small.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert not torch.equal(
        big.out.weight.cpu(), toy().out.weight
    )  # the step did change the weights


class Crash:
    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_step_end(self, state):
        if state.step == self.at_step:
            raise RuntimeError("simulated kill")


def test_resume_after_kill_is_exact(tmp_path):
    data = make_data(40)  # 10 micro-batches of 4 per epoch; 5 optimizer steps per epoch
    config = TrainConfig(
        lr=0.01, epochs=2, batch_size=4, grad_accum=2, checkpoint_every=3, **QUIET,
        checkpoint_dir=str(tmp_path / "ckpt"),
    )
    whole = toy(dropout=0.3)
    reference = fit(
        whole,
        data,
        loss_fn,
        TrainConfig(**{**config.__dict__, "checkpoint_dir": None}),
        collate=collate,
        lengths=lengths(data),
    )
    killed = toy(dropout=0.3)
    with pytest.raises(RuntimeError, match="simulated kill"):
        fit(
            killed,
            data,
            loss_fn,
            config,
            collate=collate,
            lengths=lengths(data),
            callbacks=[Crash(4)],
        )
    assert [p.name for p in step_dirs(tmp_path / "ckpt")] == ["step-000003"]  # mid-epoch
    assert json.loads((tmp_path / "ckpt/step-000003/state.json").read_text())["micro_batches"] == 6
    resumed = toy(dropout=0.3, seed=123)  # different init: the checkpoint must overwrite it
    history = fit(resumed, data, loss_fn, config, collate=collate, lengths=lengths(data))
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert [r["loss"] for r in history.records] == pytest.approx(
        [r["loss"] for r in reference.records], abs=1e-6
    )


def test_early_stopping_and_restore_best(tmp_path):
    data = make_data(16)
    scores = iter([0.5, 0.3, 0.4, 0.45, 0.2, 0.1])
    weights_at_eval = []

    def eval_fn(model):
        assert not model.training and not torch.is_grad_enabled()
        weights_at_eval.append(model.out.weight.detach().clone())
        return {"val_loss": next(scores)}

    config = TrainConfig(
        lr=0.01, epochs=10, batch_size=4, eval_every=1, early_stopping=2, restore_best=True, **QUIET,
        checkpoint_dir=str(tmp_path),
    )
    model = toy()
    history = fit(model, data, loss_fn, config, collate=collate, eval_fn=eval_fn)
    assert len(weights_at_eval) == 4  # best at eval 2, then two evaluations without improvement
    assert history.series("val_loss")[0] == [1, 2, 3, 4]
    torch.testing.assert_close(model.out.weight, weights_at_eval[1])
    # resuming an early-stopped run trains no further and restores the best weights from disk
    again = toy(seed=5)
    assert (
        fit(again, data, loss_fn, config, collate=collate, eval_fn=eval_fn).records
        == history.records
    )
    torch.testing.assert_close(again.out.weight, weights_at_eval[1])


def test_callback_can_stop():
    class StopAt2:
        def on_step_end(self, state):
            state.should_stop = state.step == 2

    history = fit(
        toy(),
        make_data(40),
        loss_fn,
        TrainConfig(batch_size=4, **QUIET),
        collate=collate,
        callbacks=[StopAt2()],
    )
    assert history.records[-1]["step"] == 2


def test_checkpoints_pruned_complete_and_weights_only(tmp_path):
    config = TrainConfig(
        max_steps=5, batch_size=4, checkpoint_dir=str(tmp_path), checkpoint_every=1,
        keep_checkpoints=2, **QUIET,
    )
    fit(toy(), make_data(16), loss_fn, config, collate=collate)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-000004",
        "step-000005",
    ]  # no temp folders
    last = tmp_path / "step-000005"
    assert {p.name for p in last.iterdir()} == {
        "model.safetensors",
        "optimizer.pt",
        "scheduler.pt",
        "rng.pt",
        "state.json",
    }
    for name in ("optimizer.pt", "scheduler.pt", "rng.pt"):
        torch.load(last / name, weights_only=True)
    assert json.loads((last / "state.json").read_text())["step"] == 5


def test_history_json_and_png(tmp_path):
    evals = iter(range(100))
    history = fit(
        toy(), make_data(16), loss_fn, TrainConfig(epochs=2, batch_size=4, **QUIET),
        collate=collate, eval_fn=lambda m: {"val_loss": 1.0 / (1 + next(evals)), "val_accuracy": 0.5},
    )
    assert isinstance(history, History)
    assert {"step", "epoch", "lr", "loss", "examples_per_s"} <= set(history.records[0])
    assert history.series("val_accuracy")[0] == [4, 8]
    history.to_json(tmp_path / "h.json")
    assert json.loads((tmp_path / "h.json").read_text()) == history.records
    png = history.plot(tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_bf16_autocast_runs_and_learns():
    history = fit(
        toy(), make_data(8), loss_fn, TrainConfig(lr=0.05, max_steps=20, batch_size=8, warmup=0, bf16=True, **QUIET),
        collate=collate,
    )
    assert math.isfinite(history.records[-1]["loss"])
    assert history.records[-1]["loss"] < history.records[0]["loss"]


def test_every_schedule_name_has_its_function():
    from typing import get_args

    from bertkit.train.schedules import SCHEDULES, ScheduleName

    assert tuple(SCHEDULES) == get_args(ScheduleName)  # the CLI's choices come from the Literal
