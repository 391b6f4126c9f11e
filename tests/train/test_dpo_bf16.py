"""`train.bf16` is bf16 compute with fp32 master weights: one DPO step at the paper's learning rate
(5e-7) moves every trained tensor, where the same AdamW step on pure-bf16 parameters (the old
behaviour on one GPU / FSDP) leaves almost every weight where it was."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from mixmerge.io import read_json, write_jsonl
from mixmerge.train.dpo import policy_dtype, train_dpo
from mixmerge.train.settings import TrainSettings

LR = 5e-7
CFG = TrainSettings(
    beta=0.1,
    learning_rate=LR,
    num_train_epochs=1,
    per_device_train_batch_size=4,
    max_length=64,
    device="cpu",
    bf16=True,
    warmup_steps=0.0,  # the one step runs at the full learning rate
)


def _pairs(path: Path, n: int = 4) -> Path:
    write_jsonl(
        path,
        [
            {
                "prompt": [{"role": "user", "content": f"Question {i}: is the sky blue?"}],
                "chosen": "Yes, the sky is blue.",
                "rejected": "banana seven window cloud",
                "source": "easy",
                "dimension": "honesty",
            }
            for i in range(n)
        ],
    )
    return path


class _ComputeDtypes:
    """Records the parameter dtype and an MLP output dtype seen during training."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        seen = self.seen = {}

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
                seen["param"] = next(model.parameters()).dtype

                def hook(module, inputs, output) -> None:  # noqa: ANN001
                    seen.setdefault("compute", output.dtype)

                model.model.layers[0].mlp.down_proj.register_forward_hook(hook)

        self.callback = Callback()


def _changed_fraction(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> float:
    changed = sum(int((before[k] != after[k].to(before[k].dtype)).sum()) for k in before)
    return changed / sum(t.numel() for t in before.values())


def test_load_dtype_per_launcher() -> None:
    assert policy_dtype(bf16=True, deepspeed=False) == torch.float32  # one process, DDP, FSDP
    assert policy_dtype(bf16=True, deepspeed=True) == torch.bfloat16  # DeepSpeed keeps fp32 masters
    assert policy_dtype(bf16=False, deepspeed=False) == torch.float32


def test_one_bf16_step_at_paper_lr_moves_fp32_masters(tmp_path: Path, tiny_model_dir: Path) -> None:
    dtypes = _ComputeDtypes()
    out = tmp_path / "m"
    summary = train_dpo(
        tiny_model_dir, [_pairs(tmp_path / "p.jsonl")], out, CFG, callbacks=[dtypes.callback]
    )
    assert summary["steps"] == 1
    # the real path: fp32 parameters, bf16 compute (CPU autocast)
    assert dtypes.seen == {"param": torch.float32, "compute": torch.bfloat16}
    assert read_json(out / "mixmerge_train.json")["precision"] == {
        "mixed_precision": "bf16",
        "param_dtype": "float32",
    }
    before = load_file(tiny_model_dir / "model.safetensors")
    after = load_file(out / "model.safetensors")
    assert set(before) == set(after)
    moved = [k for k in before if not torch.equal(before[k], after[k].to(before[k].dtype))]
    # every tensor gets a gradient here (embedding rows of the tokens used, all layers, head)
    assert len(moved) >= 0.95 * len(before), sorted(set(before) - set(moved))
    # Adam's first step moves each element with a gradient by ~lr: fp32 keeps all of them
    assert _changed_fraction(before, after) > 0.5


def test_pure_bf16_adamw_step_at_paper_lr_rounds_to_nothing(tiny_model_dir: Path) -> None:
    """The old behaviour, built directly: one AdamW step on bf16 parameters vs on fp32 ones."""
    from transformers import AutoModelForCausalLM

    fractions = {}
    for dtype in (torch.bfloat16, torch.float32):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=dtype)
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        ids = torch.randint(7, model.config.vocab_size, (4, 32))
        model(input_ids=ids, labels=ids).loss.backward()
        has_grad = {k: v.grad != 0 for k, v in model.named_parameters()}
        torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0).step()
        changed = sum(
            int(((before[k] != v.detach()) & has_grad[k]).sum())
            for k, v in model.named_parameters()
        )
        fractions[dtype] = changed / sum(int(g.sum()) for g in has_grad.values())
    # of the elements with a gradient: measured 1.0% (bf16) and 100% (fp32) at lr 5e-7
    assert fractions[torch.bfloat16] < 0.05
    assert fractions[torch.float32] > 0.99
