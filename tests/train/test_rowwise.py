"""Row-wise embedding updates: the same weights as torch's AdamW + clip_grad_norm_, exact resume."""

import pytest
import torch
from torch import nn

from bertkit.data import pad_collate
from bertkit.train import TrainConfig, fit, param_groups
from bertkit.train.checkpoint import step_dirs
from bertkit.train.rowwise import RowAdamW, clip_grad_norm, row_gradients, row_tables

VOCAB = 2048


class WideToy(nn.Module):
    """A text classifier with a vocabulary big enough for row-wise updates, and a small position table."""

    def __init__(self) -> None:
        super().__init__()
        self.word = nn.Embedding(VOCAB, 8, padding_idx=0)
        self.position = nn.Embedding(16, 8)
        self.norm = nn.LayerNorm(8)
        self.out = nn.Linear(8, 2)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.word(ids) + self.position.weight[: ids.shape[1]])  # (batch, seq, 8)
        return self.out((h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))


def wide_toy(seed: int = 0) -> WideToy:
    torch.manual_seed(seed)
    return WideToy()


def batches(steps: int, seed: int = 0, width: int = 60, shape: tuple[int, int] = (4, 6)) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Each batch draws ids from a narrow window that moves: rows go untouched for many steps,
    and most of the vocabulary is never touched at all. Padding (id 0) appears in every batch."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for step in range(steps):
        low = 1 + 40 * (step % 4)
        ids = torch.randint(low, min(low + width, VOCAB), shape, generator=g)
        ids[:, 0] = 5  # one row touched at every step, repeatedly within a batch
        ids[1:, 4:] = 0
        out.append((ids, (ids != 0).float(), torch.randint(0, 2, (shape[0],), generator=g)))
    return out


def reference_step(model, optimizer, batch, max_norm):
    ids, mask, labels = batch
    nn.functional.cross_entropy(model(ids, mask), labels).backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def row_step(model, optimizer, batch, max_norm):
    ids, mask, labels = batch
    nn.functional.cross_entropy(model(ids, mask), labels).backward()
    assert model.word.weight.grad.is_sparse
    clip_grad_norm(model.parameters(), max_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


@pytest.mark.parametrize(("fused", "max_norm", "width"), [
    (True, 0.05, 60),  # a small max_norm: every step is clipped
    (False, 0.05, 60),
    (True, 100.0, 60),  # never clipped
    (True, 0.05, 1500),  # hundreds of rows become active: the compact moments grow
])
def test_row_adamw_matches_adamw_with_clipping(fused, max_norm, width):
    steps, lr = 12, 0.05
    data = batches(steps, width=width, shape=(32, 6) if width > 60 else (4, 6))
    reference, fast = wide_toy(), wide_toy()
    ref_opt = torch.optim.AdamW(param_groups(reference, 0.1), lr=lr, foreach=False)
    fast_opt = RowAdamW(param_groups(fast, 0.1), lr=lr, fused=fused)
    schedules = [torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1.0 / (1 + s)) for o in (ref_opt, fast_opt)]
    with row_gradients(fast, fast_opt) as tables:
        assert tables == [fast.word]  # the 16-row position table stays dense
        for batch in data:
            reference_step(reference, ref_opt, batch, max_norm)
            row_step(fast, fast_opt, batch, max_norm)
            for s in schedules:
                s.step()
        assert fast.word.sparse
        fast_opt.sync_weights()
    assert not fast.word.sparse  # restored on exit
    touched = torch.cat([b[0].flatten() for b in data]).unique()
    assert len(touched) > (600 if width > 60 else 100)
    never = torch.ones(VOCAB, dtype=torch.bool)
    never[touched] = False
    initial = wide_toy().word.weight.detach()
    # never-touched rows moved by weight decay alone; rows of the first window sat idle for steps
    assert not torch.equal(fast.word.weight[never], initial[never])
    for (name, a), b in zip(reference.state_dict().items(), fast.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, atol=2e-6, rtol=1e-5, msg=name)
    ref_state, fast_state = ref_opt.state_dict()["state"], fast_opt.state_dict()["state"]
    for key in ref_state:
        for name in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(fast_state[key][name], ref_state[key][name], atol=1e-7, rtol=1e-5)
    # the state keeps AdamW's layout: torch's own AdamW takes it over
    torch.optim.AdamW(param_groups(wide_toy(), 0.1), lr=lr).load_state_dict(fast_opt.state_dict())


def test_clip_grad_norm_with_sparse_rows_equals_dense():
    dense, sparse = wide_toy(), wide_toy()
    batch = batches(1)[0]
    with row_gradients(sparse, RowAdamW(sparse.parameters())):
        for model in (dense, sparse):
            nn.functional.cross_entropy(model(batch[0], batch[1]), batch[2]).backward()
    expected = nn.utils.clip_grad_norm_(dense.parameters(), 0.01)
    total = clip_grad_norm(sparse.parameters(), 0.01)
    torch.testing.assert_close(total, expected)
    torch.testing.assert_close(sparse.word.weight.grad.to_dense(), dense.word.weight.grad)


def test_tied_or_small_tables_are_not_row_wise():
    model = wide_toy()
    head = nn.Linear(8, VOCAB, bias=False)
    head.weight = model.word.weight  # a tied decoder: the table also gets a dense gradient
    assert row_tables(nn.ModuleList([model, head])) == []
    assert row_tables(model) == [model.word]


def data(n: int, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        length = int(torch.randint(2, 10, (1,), generator=g))
        ids = torch.randint(1, VOCAB, (length,), generator=g).tolist()
        rows.append({"input_ids": ids, "attention_mask": [1] * length, "labels": int(ids[0] < VOCAB // 2)})
    return rows


def loss_fn(model, batch):
    return nn.functional.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"]), {}


def collate(features):
    return pad_collate(features, pad_id=0)


def test_fit_row_wise_equals_dense_adamw(monkeypatch):
    rows = data(48)
    config = TrainConfig(lr=0.02, epochs=2, batch_size=4, weight_decay=0.1, progress=False, log_every=1)
    lengths = [len(r["input_ids"]) for r in rows]
    fast = wide_toy()
    fast_history = fit(fast, rows, loss_fn, config, collate=collate, lengths=lengths)
    monkeypatch.setattr("bertkit.train.rowwise.ROW_UPDATE_MIN_ROWS", 10**9)  # every table dense
    dense = wide_toy()
    dense_history = fit(dense, rows, loss_fn, config, collate=collate, lengths=lengths)
    assert not fast.word.sparse
    for a, b in zip(dense.state_dict().values(), fast.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, atol=2e-6, rtol=1e-5)
    assert [r["loss"] for r in fast_history.records] == pytest.approx(
        [r["loss"] for r in dense_history.records], abs=1e-5
    )


class StopAt:
    """A callback that ends training after `step` steps, as a time budget does."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, state) -> None:
        state.should_stop = state.step >= self.step


def test_a_checkpoint_of_a_run_a_callback_stopped_holds_adamws_weights(tmp_path, monkeypatch):
    """The checkpoint written when a callback stops the run holds standard AdamW's weights, the
    weight decay that untouched rows owe included."""
    import safetensors.torch

    rows = data(48)
    lengths = [len(r["input_ids"]) for r in rows]
    config = TrainConfig(lr=0.02, epochs=2, batch_size=4, weight_decay=0.1, progress=False,
                         checkpoint_every=1000, checkpoint_dir=str(tmp_path / "ckpt"))
    fit(wide_toy(), rows, loss_fn, config, collate=collate, lengths=lengths, callbacks=[StopAt(3)])
    saved = safetensors.torch.load_file(str(step_dirs(tmp_path / "ckpt")[-1] / "model.safetensors"))
    monkeypatch.setattr("bertkit.train.rowwise.ROW_UPDATE_MIN_ROWS", 10**9)  # every table dense
    dense = wide_toy()
    fit(dense, rows, loss_fn, TrainConfig(**{**config.__dict__, "checkpoint_dir": None}),
        collate=collate, lengths=lengths, callbacks=[StopAt(3)])
    for name, tensor in dense.state_dict().items():
        torch.testing.assert_close(saved[name], tensor, atol=2e-6, rtol=1e-5, msg=name)


def crashing_loss_fn(at_call: int):
    """`loss_fn` that dies on its `at_call`-th call: a kill that needs no callback (callbacks read
    synced weights, which would apply the deferred decay at every step)."""
    calls = [0]

    def fn(model, batch):
        calls[0] += 1
        if calls[0] == at_call:
            raise RuntimeError("simulated kill")
        return loss_fn(model, batch)

    return fn


def test_resume_with_row_wise_updates_is_bit_exact(tmp_path):
    rows = data(40)
    lengths = [len(r["input_ids"]) for r in rows]
    config = TrainConfig(lr=0.02, epochs=2, batch_size=4, checkpoint_every=4, weight_decay=0.1,
                         progress=False, checkpoint_dir=str(tmp_path / "ckpt"))
    whole = wide_toy()
    fit(whole, rows, loss_fn, TrainConfig(**{**config.__dict__, "checkpoint_dir": None}),
        collate=collate, lengths=lengths)
    with pytest.raises(RuntimeError, match="simulated kill"):
        fit(wide_toy(), rows, crashing_loss_fn(7), config, collate=collate, lengths=lengths)
    assert [p.name for p in step_dirs(tmp_path / "ckpt")] == ["step-000004"]
    resumed = wide_toy(seed=1)  # the checkpoint must overwrite these weights
    fit(resumed, rows, loss_fn, config, collate=collate, lengths=lengths)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_facade_fine_tuning_equals_dense_adamw(tmp_path, monkeypatch):
    """The ktrain-style path on a tiny BERT with a real 30,522-row vocabulary: same weights as with
    every table dense (a padding row, position and token-type tables, most rows never touched)."""
    from finetune_helpers import emotion_data, make_tiny_model

    import bertkit as ktrain
    from bertkit import text

    folder = str(make_tiny_model(tmp_path / "model", dropout=0.0))
    x, y = emotion_data(18)
    t = text.Transformer(folder, maxlen=32, batch_size=6)
    train = t.preprocess_train(x, y)

    def trained() -> dict[str, torch.Tensor]:
        learner = ktrain.get_learner(t.get_classifier(seed=0), train_data=train, batch_size=6)
        learner.fit_onecycle(1e-2, 2, progress=False)
        return learner.model.state_dict()

    row_steps = []
    original = RowAdamW._row_step
    monkeypatch.setattr(RowAdamW, "_row_step", lambda self, p, group: row_steps.append(p.shape) or original(self, p, group))
    fast = trained()
    assert row_steps == [(30522, 32)] * 6  # only the word table, at every step
    monkeypatch.setattr("bertkit.train.rowwise.ROW_UPDATE_MIN_ROWS", 10**9)
    dense = trained()
    assert len(row_steps) == 6
    for name, value in dense.items():
        torch.testing.assert_close(fast[name], value, atol=2e-6, rtol=1e-5, msg=name)
