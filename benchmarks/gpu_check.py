"""On a CUDA device: bertkit vs transformers at BERT-base size — equal outputs (fp32 and bf16
autocast), inference and training throughput, and the training loop's bf16 path.

    python benchmarks/gpu_check.py [--seq 128] [--batch-size 32] [--steps 20] [--out figures.json]

Weights are random (a BERT-base-shaped model made by transformers and converted), so it needs no
download; both libraries run identical weights and inputs.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import report

from bertkit import BertkitModel, EncoderConfig
from bertkit.model.checkpoint import load_state
from bertkit.train import TrainConfig, fit


def timed(fn, steps: int) -> float:
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out")
    args = parser.parse_args()
    import transformers as hf

    if not torch.cuda.is_available():
        raise SystemExit("No CUDA device: this check is for a GPU machine.")
    torch.manual_seed(0)
    device = "cuda"
    reference = hf.BertForSequenceClassification(hf.BertConfig(num_labels=2)).to(device).eval()
    ours = BertkitModel(EncoderConfig.from_hf(reference.config.to_dict()), head="classification", num_labels=2)
    load_state(ours, {k: v.cpu() for k, v in reference.state_dict().items()})
    ours = ours.to(device).eval()
    b, t = args.batch_size, args.seq
    ids = torch.randint(1000, 30000, (b, t), device=device)
    mask = torch.ones_like(ids)
    mask[b // 2:, t // 2:] = 0
    figures = {"benchmark": "gpu_check", "device": torch.cuda.get_device_name(), "torch": torch.__version__,
               "transformers": hf.__version__, "batch_size": b, "seq": t}
    with torch.no_grad():
        a = ours(ids, mask).logits
        r = reference(input_ids=ids, attention_mask=mask).logits
        figures["fp32_max_abs_diff"] = (a - r).abs().max().item()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            a16 = ours(ids, mask).logits.float()
            r16 = reference(input_ids=ids, attention_mask=mask).logits.float()
        figures["bf16_max_abs_diff_vs_fp32"] = (a16 - r).abs().max().item()
        figures["bf16_reference_max_abs_diff_vs_fp32"] = (r16 - r).abs().max().item()

    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        def infer(model, call, dtype=dtype):
            with torch.inference_mode(), torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                call(model)
        t_ours = timed(lambda: infer(ours, lambda m: m(ids, mask)), args.steps)
        t_ref = timed(lambda: infer(reference, lambda m: m(input_ids=ids, attention_mask=mask)), args.steps)
        figures[f"inference_{name}_bertkit_seq_per_s"] = round(b / t_ours, 1)
        figures[f"inference_{name}_transformers_seq_per_s"] = round(b / t_ref, 1)
        figures[f"inference_{name}_ratio"] = round(t_ref / t_ours, 3)

    labels = torch.randint(0, 2, (b,), device=device)
    for name, model, call in (
        ("bertkit", ours, lambda m: torch.nn.functional.cross_entropy(m(ids, mask).logits, labels)),
        ("transformers", reference, lambda m: m(input_ids=ids, attention_mask=mask, labels=labels).loss),
    ):
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

        def step(model=model, call=call, optimizer=optimizer):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = call(model)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        figures[f"train_bf16_{name}_seq_per_s"] = round(b / timed(step, args.steps), 1)
    figures["train_bf16_ratio"] = round(figures["train_bf16_bertkit_seq_per_s"] / figures["train_bf16_transformers_seq_per_s"], 3)

    data = [{"input_ids": ids[i].tolist(), "attention_mask": mask[i].tolist(), "label": int(labels[i])}
            for i in range(b)] * 4
    from bertkit.data.batching import pad_collate

    def loss_fn(model, batch):
        loss = torch.nn.functional.cross_entropy(model(batch["input_ids"], batch["attention_mask"]).logits, batch["label"])
        return loss, {}
    history = fit(ours, data, loss_fn, TrainConfig(lr=2e-5, max_steps=8, batch_size=b, bf16=True, progress=False, log_every=2),
                  collate=lambda f: pad_collate(f, pad_id=0), device=device)
    figures["fit_bf16_losses"] = [round(r["loss"], 4) for r in history.records if "loss" in r]
    report(figures, args.out)


if __name__ == "__main__":
    main()
