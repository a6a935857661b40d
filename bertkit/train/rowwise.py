"""AdamW whose embedding tables take row-wise (sparse) gradients, with standard AdamW maths kept exact.

A rare-token row that a batch does not touch still changes under AdamW: weight decay shrinks it and
its decaying moments keep moving it. Rows with non-zero moments ("active") are therefore updated
every step like any dense tensor. Rows that never had a gradient have zero moments, so AdamW only
multiplies them by (1 - lr * weight_decay) each step; that product is kept as one number and applied
when a forward pass is about to read such a row, or when the weights are read (`sync_weights`).
The weights, gradients and moments of active rows live in compact buffers (one row per active row,
in the order the rows became active), which AdamW updates in place. The table itself receives only
the rows a forward pass is about to read, and all of them when the weights are read; the full-size
AdamW state is written back when it is read (`state_dict`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.optim.adamw import adamw as adamw_step

# Tables with fewer rows (positions, token types) are cheap as dense tensors.
ROW_UPDATE_MIN_ROWS = 1024


class RowAdamW(torch.optim.AdamW):
    """`torch.optim.AdamW` (fused kernel where PyTorch has one) that also takes sparse row gradients.

    Dense gradients go through the parent class unchanged. For a parameter with a sparse gradient
    (an `nn.Embedding(sparse=True)` table) only the active rows are read and written; the
    optimizer state keeps AdamW's layout (full-size `exp_avg`/`exp_avg_sq`), so checkpoints load
    into either class. Call `sync_weights()` before reading weights mid-training.
    """

    def __init__(self, params: Iterable[Any], **options: Any) -> None:
        super().__init__(params, **options)
        self._rows: dict[nn.Parameter, _RowState] = {}

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        sparse: list[tuple[nn.Parameter, dict[str, Any]]] = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.grad.is_sparse:
                    sparse.append((p, group))
        held = [p.grad for p, _ in sparse]
        for p, _ in sparse:
            p.grad = None  # the parent class steps the dense parameters only
        try:
            super().step()
        finally:
            for (p, _), grad in zip(sparse, held, strict=True):
                p.grad = grad
        for p, group in sparse:
            self._row_step(p, group)
        return loss

    def _row_state(self, p: nn.Parameter) -> _RowState:
        rows = self._rows.get(p)
        if rows is None:
            group = next(g for g in self.param_groups if any(q is p for q in g["params"]))
            state = self.state[p]
            if not state:
                device = p.device if group["fused"] else "cpu"
                state["step"] = torch.zeros((), dtype=torch.float32, device=device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            rows = self._rows[p] = _RowState(state, p)
        return rows

    def prepare_rows(self, p: nn.Parameter, ids: torch.Tensor) -> None:
        """Bring the rows `ids` of `p` up to date before a forward pass reads them."""
        rows = self._row_state(p)
        if rows.pending != 1.0 or rows.stale:  # nothing is owed right after a sync (e.g. evaluation)
            with torch.no_grad():
                rows.refresh(p, ids.unique())

    def _row_step(self, p: nn.Parameter, group: dict[str, Any]) -> None:
        rows = self._row_state(p)
        grad = p.grad.coalesce()
        index, values = grad.indices()[0], grad.values()
        rows.activate(p, index[(values != 0).any(dim=1)])  # rows a forward pass did not announce
        n = rows.count
        # touched rows that stay inactive had zero gradients: they go to the spare row past the end
        slots = rows.slot[index]
        rows.grad[slots] = values.to(p.dtype)
        _adamw(rows.weight[:n], rows.grad[:n], rows.exp_avg[:n], rows.exp_avg_sq[:n], self.state[p]["step"], group)
        rows.grad[slots] = 0.0
        rows.stale = True
        rows.pending *= 1.0 - group["lr"] * group["weight_decay"]

    def sync_weights(self) -> None:
        """Apply the weight decay deferred for never-updated rows, so the weights are AdamW's own."""
        with torch.no_grad():
            for p, rows in self._rows.items():
                rows.flush(p)

    def state_dict(self) -> dict[str, Any]:
        self.sync_weights()
        for p, rows in self._rows.items():
            rows.write_moments(self.state[p])
            # 0/1 per row (floats survive load_state_dict's cast to the parameter's dtype)
            self.state[p]["active_rows"] = rows.active.to(torch.float32)
        return super().state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._rows = {}  # active rows and their moments are read again from the loaded state


class _RowState:
    """Which rows of one table have had a gradient; their weights, gradients and moments (compact);
    and the decay owed to the others."""

    def __init__(self, state: dict[str, Any], p: torch.Tensor) -> None:
        if "active_rows" in state:
            active = state["active_rows"] != 0  # (rows,)
        else:  # a plain AdamW state: rows that ever had a gradient have non-zero moments
            active = (state["exp_avg"] != 0).any(dim=1) | (state["exp_avg_sq"] != 0).any(dim=1)
        full = state["exp_avg"]
        self.active = torch.zeros_like(active)
        self.slot = torch.zeros(len(active), dtype=torch.long, device=active.device)  # active row -> slot
        self.order = torch.zeros(0, dtype=torch.long, device=active.device)  # slot -> row
        self.exp_avg = full.new_zeros(0, full.shape[1])
        self.exp_avg_sq = full.new_zeros(0, full.shape[1])
        self.weight = p.new_zeros(0, p.shape[1])  # ahead of the table's rows while `stale`
        self.grad = p.new_zeros(1, p.shape[1])  # zero between steps; one spare row past `count`
        self.count = 0
        self.pending = 1.0  # product of (1 - lr * wd) over the steps since the last flush
        self.stale = False  # the table's active rows are behind `weight`
        self._add(active.nonzero().squeeze(1), p, state)

    def _add(self, new: torch.Tensor, p: torch.Tensor, state: dict[str, Any] | None = None) -> None:
        """Give the rows `new` the next slots, with their weights from `p` and their moments from
        `state` (else zero)."""
        n, k = self.count, len(new)
        if n + k >= len(self.grad):  # grow the buffers geometrically (`grad` keeps a spare row)
            capacity = max(n + k, 2 * len(self.order), 256)
            self.order = _grown(self.order, capacity, n)
            self.exp_avg = _grown(self.exp_avg, capacity, n)
            self.exp_avg_sq = _grown(self.exp_avg_sq, capacity, n)
            self.weight = _grown(self.weight, capacity, n)
            self.grad = self.grad.new_zeros(capacity + 1, self.grad.shape[1])
        self.order[n : n + k] = new
        self.weight[n : n + k] = p[new]
        if state is not None:  # slots past `count` are still zero otherwise
            self.exp_avg[n : n + k] = state["exp_avg"][new]
            self.exp_avg_sq[n : n + k] = state["exp_avg_sq"][new]
        self.active[new] = True
        self.count = n + k
        self.slot[~self.active] = self.count  # the spare row past the end
        self.slot[new] = torch.arange(n, n + k, device=new.device)

    def activate(self, p: torch.Tensor, touched: torch.Tensor) -> None:
        new = touched[~self.active[touched]]
        if len(new):
            if self.pending != 1.0:
                p[new] *= self.pending  # catch up on the decay skipped while dormant
            self._add(new, p)

    def refresh(self, p: torch.Tensor, rows: torch.Tensor) -> None:
        """Make the table's `rows` current: dormant ones catch up on decay and become active,
        active ones take their weights from `weight`."""
        self.activate(p, rows)
        if self.stale:
            p[rows] = self.weight[self.slot[rows]]

    def flush(self, p: torch.Tensor) -> None:
        if self.pending != 1.0:
            scale = torch.where(self.active, 1.0, self.pending).to(p.dtype)
            p.mul_(scale[:, None])
            self.pending = 1.0
        if self.stale:
            p.index_copy_(0, self.order[: self.count], self.weight[: self.count])
            self.stale = False

    def write_moments(self, state: dict[str, Any]) -> None:
        """Copy the compact moments into AdamW's full-size `exp_avg` / `exp_avg_sq`."""
        order = self.order[: self.count]
        state["exp_avg"].index_copy_(0, order, self.exp_avg[: self.count])
        state["exp_avg_sq"].index_copy_(0, order, self.exp_avg_sq[: self.count])


def _grown(buffer: torch.Tensor, capacity: int, used: int) -> torch.Tensor:
    grown = buffer.new_zeros(capacity, *buffer.shape[1:])
    grown[:used] = buffer[:used]
    return grown


def _adamw(weight, grad, exp_avg, exp_avg_sq, step, group: dict[str, Any]) -> None:
    """One AdamW step of one tensor through PyTorch's own implementation (fused where configured);
    it also counts the step."""
    beta1, beta2 = group["betas"]
    adamw_step(
        [weight], [grad], [exp_avg], [exp_avg_sq], [], [step], foreach=False, fused=bool(group["fused"]),
        lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
        amsgrad=False, maximize=False,
    )


def fused_supported(device: torch.device) -> bool:
    """Whether PyTorch has a fused AdamW kernel for `device` (CPU and CUDA do)."""
    from torch.optim.optimizer import _get_fused_kernels_supported_devices

    return device.type in _get_fused_kernels_supported_devices()


def row_tables(model: nn.Module) -> list[nn.Embedding]:
    """Embedding tables worth row-wise updates: large, trained, and not shared with another module
    (a tied MLM decoder gives the same weight a dense gradient too)."""
    counts: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        counts[id(p)] = counts.get(id(p), 0) + 1
    return [
        m for m in model.modules()
        if isinstance(m, nn.Embedding) and m.num_embeddings >= ROW_UPDATE_MIN_ROWS
        and m.weight.requires_grad and counts[id(m.weight)] == 1 and m.max_norm is None
    ]


@contextlib.contextmanager
def row_gradients(model: nn.Module, optimizer: RowAdamW, enabled: bool = True) -> Iterator[list[nn.Embedding]]:
    """Within the block, `row_tables(model)` produce sparse gradients for `optimizer`, and each
    forward pass first asks it to bring the rows it reads up to date. Restored on exit."""
    tables = row_tables(model) if enabled else []
    before = [t.sparse for t in tables]
    hooks = []
    for t in tables:
        t.sparse = True
        hooks.append(t.register_forward_pre_hook(functools.partial(_prepare_rows, optimizer)))
    try:
        yield tables
    finally:
        for t, sparse, hook in zip(tables, before, hooks, strict=True):
            t.sparse = sparse
            hook.remove()


def _prepare_rows(optimizer: RowAdamW, table: nn.Embedding, args: tuple[Any, ...]) -> None:
    optimizer.prepare_rows(table.weight, args[0])


def clip_grad_norm(params: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """`torch.nn.utils.clip_grad_norm_` (2-norm) that also takes sparse gradients (coalesced here:
    a row touched twice in a batch counts once, with its summed gradient, as in the dense tensor)."""
    grads = []
    for p in params:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            grads.append(p.grad.values())
        else:
            grads.append(p.grad)
    if not grads:
        return torch.zeros(())
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    # multiplying by 1 changes nothing; on the CPU, reading `coef` costs no device synchronisation
    if total.device.type != "cpu" or coef < 1.0:
        torch._foreach_mul_(grads, coef)
    return total
