"""`mixmerge train`: full-parameter DPO with trl on one or more pair files, saved as a plain HF model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mixmerge.io import atomic_dir, read_jsonl


def _supports_system_role(tokenizer) -> bool:
    """Some chat templates (Mistral-7B-Instruct-v0.2) reject a system turn."""
    try:
        tokenizer.apply_chat_template(
            [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], tokenize=False
        )
        return True
    except Exception:
        return False


def fold_system(prompt: list[dict[str, str]]) -> list[dict[str, str]]:
    """Merge a leading system message into the first user turn."""
    if not prompt or prompt[0]["role"] != "system" or len(prompt) < 2:
        return prompt
    first = dict(prompt[1])
    first["content"] = f"{prompt[0]['content']}\n\n{first['content']}"
    return [first, *prompt[2:]]


def to_trl_rows(pairs: list[dict[str, Any]], keep_system: bool) -> list[dict[str, Any]]:
    """Pair format -> trl's conversational preference format."""
    rows = []
    for pair in pairs:
        prompt = pair["prompt"] if keep_system else fold_system(pair["prompt"])
        rows.append(
            {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": pair["chosen"]}],
                "rejected": [{"role": "assistant", "content": pair["rejected"]}],
            }
        )
    return rows


def train_dpo(
    model_path: str | Path,
    data: list[str | Path],
    out_dir: str | Path,
    train_cfg: dict[str, Any],
    seed: int = 0,
) -> dict[str, Any]:
    """Train one DPO model; `train_cfg` is config["train"] with any sweep overrides applied."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    pairs = [pair for path in data for pair in read_jsonl(path)]
    if not pairs:
        raise ValueError(f"no training pairs in {', '.join(map(str, data))}")
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows = to_trl_rows(pairs, keep_system=_supports_system_role(tokenizer))
    dataset = datasets.Dataset.from_list(rows).shuffle(seed=seed)

    on_cpu = train_cfg.get("device", "cuda") == "cpu" or not torch.cuda.is_available()
    bf16 = bool(train_cfg.get("bf16", False)) and not on_cpu
    dtype = torch.bfloat16 if bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        args = DPOConfig(
            output_dir=str(tmp / "trainer"),
            beta=float(train_cfg["beta"]),
            learning_rate=float(train_cfg["learning_rate"]),
            num_train_epochs=float(train_cfg.get("epochs", 1)),
            per_device_train_batch_size=int(train_cfg.get("per_device_batch_size", 1)),
            gradient_accumulation_steps=int(train_cfg.get("gradient_accumulation_steps", 1)),
            max_length=int(train_cfg.get("max_length", 4096)),
            lr_scheduler_type=train_cfg.get("lr_scheduler", "cosine"),
            warmup_steps=float(
                train_cfg.get("warmup_ratio", 0.1)
            ),  # a float < 1 is a ratio in transformers 5
            optim=train_cfg.get("optimizer", "adamw_torch"),
            bf16=bf16,
            use_cpu=on_cpu,
            gradient_checkpointing=bool(train_cfg.get("gradient_checkpointing", False)),
            seed=seed,
            data_seed=seed,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            dataset_num_proc=1,
        )
        trainer = DPOTrainer(
            model=model, args=args, train_dataset=dataset, processing_class=tokenizer
        )
        result = trainer.train()
        trainer.save_model(str(tmp))
        tokenizer.save_pretrained(tmp)
        # The Trainer's scratch folder and any checkpoints are not part of the model directory.
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        summary = {
            "base_model": str(model_path),
            "data": [str(p) for p in data],
            "pairs": len(rows),
            "seed": seed,
            "hyperparameters": dict(train_cfg),
            "train_loss": result.training_loss,
            "steps": result.global_step,
            "log_history": trainer.state.log_history,
        }
        with open(tmp / "mixmerge_train.json", "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2, default=str)
    return summary
