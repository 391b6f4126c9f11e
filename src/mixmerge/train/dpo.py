"""`mixmerge train`: DPO with trl on one or more pair files, saved as a plain HF model directory.

Full-parameter by default; `lora:` trains adapters and merges them back, so every trained model
is a plain checkpoint that the merge engine reads the same way. Checkpoints go to a folder beside
the output that survives a failed or killed job; a rerun resumes from the newest one.
Works under `accelerate launch` (DeepSpeed ZeRO-3 / FSDP): only the main process writes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mixmerge.chat import prepare_conversation
from mixmerge.io import read_jsonl
from mixmerge.model_hash import write_hash
from mixmerge.train.settings import LoraSettings, TrainSettings

# Metrics of the final evaluation on the training pairs that go into mixmerge_train.json.
FINAL_METRICS = (
    "loss",
    "rewards/accuracies",
    "rewards/margins",
    "rewards/chosen",
    "rewards/rejected",
)


def to_trl_rows(pairs: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    """Pair format -> trl's conversational preference format.

    trl renders the tokenizer's chat template itself, so the prompts are prepared here: a
    leading system turn is folded into the first user turn when the template has no system
    role (Mistral-7B-Instruct-v0.2), see `mixmerge.chat`.
    """
    rows = []
    for pair in pairs:
        rows.append(
            {
                "prompt": prepare_conversation(pair["prompt"], tokenizer),
                "chosen": [{"role": "assistant", "content": pair["chosen"]}],
                "rejected": [{"role": "assistant", "content": pair["rejected"]}],
            }
        )
    return rows


def gradient_accumulation(settings: TrainSettings, world_size: int) -> int:
    """Accumulation steps that reach `global_batch_size` (paper: 128) on this many devices."""
    per_device = settings.per_device_train_batch_size
    if not settings.global_batch_size:
        return settings.gradient_accumulation_steps
    global_batch = settings.global_batch_size
    steps, rest = divmod(global_batch, per_device * world_size)
    if steps < 1 or rest:
        raise ValueError(
            f"train.global_batch_size={global_batch} is not a multiple of "
            f"per_device_train_batch_size ({per_device}) x devices ({world_size})"
        )
    return steps


def policy_dtype(bf16: bool, deepspeed: bool):
    """The dtype the policy is loaded in: `train.bf16` means bf16 compute, fp32 master weights.

    AdamW on bf16 parameters at the paper's learning rates (3e-7, 5e-7) rounds almost every
    update to nothing (a step of ~lr is far below half a bf16 ulp of a typical weight), so the
    weights the optimizer updates must be fp32:
    - DeepSpeed (workflow/accelerate/zero3.yaml): the parameters are bf16 (half the load memory
      per rank) and DeepSpeed's bf16 ZeRO optimizer keeps and updates fp32 master partitions.
    - one process, DDP and FSDP (workflow/accelerate/fsdp.yaml): the parameters are loaded in
      fp32 and the Trainer's bf16 mixed precision does bf16 compute (torch.autocast; under FSDP,
      accelerate's MixedPrecision(param_dtype=bf16) over the fp32 sharded parameters).
    """
    import torch

    return torch.bfloat16 if bf16 and deepspeed else torch.float32


def latest_checkpoint(checkpoint_dir: Path) -> str | None:
    checkpoints = sorted(
        (p for p in checkpoint_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    return str(checkpoints[-1]) if checkpoints else None


def _versions() -> dict[str, str]:
    import accelerate
    import datasets
    import peft
    import torch
    import transformers
    import trl

    return {
        m.__name__: m.__version__ for m in (torch, transformers, trl, peft, accelerate, datasets)
    }


def _model_card(summary: dict[str, Any]) -> str:
    hp = summary["hyperparameters"]
    final = summary["final_metrics"]
    lines = [
        "---",
        "library_name: transformers",
        "tags: [dpo, trl, mixmerge]",
        "---",
        f"# DPO model trained by mixmerge from `{summary['base_model']}`",
        "",
        f"- pairs: {summary['pairs']} from {', '.join(summary['sources'])}",
        f"- beta {hp['beta']}, learning rate {hp['learning_rate']}, "
        f"epochs {hp['num_train_epochs']}, global batch {summary['global_batch_size']}, "
        f"max length {hp['max_length']}",
        f"- steps: {summary['steps']}, train loss: {summary['train_loss']:.4f}",
    ]
    if final:
        lines.append(
            "- on the training pairs after training: "
            + ", ".join(f"{k} {v:.4f}" for k, v in final.items())
        )
    lines += ["", "Full settings, versions and logs: `mixmerge_train.json`."]
    return "\n".join(lines) + "\n"


def _lora_config(lora: LoraSettings):
    from peft import LoraConfig

    modules = lora.target_modules
    return LoraConfig(
        r=lora.r,
        lora_alpha=int(lora.alpha),
        lora_dropout=float(lora.dropout),
        # peft matches a list (as a set) or one name / regex string; not a tuple
        target_modules=modules if isinstance(modules, str) else list(modules),
        task_type="CAUSAL_LM",
    )


def _checkpointing_field(config_class: type) -> str:
    """transformers renamed `gradient_checkpointing` to `activation_checkpointing` (the old name
    warns); the pinned range has releases with and without the new one."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(config_class)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def train_dpo(
    model_path: str | Path,
    data: list[str | Path],
    out_dir: str | Path,
    settings: TrainSettings,
    callbacks: list[Any] | None = None,
) -> dict[str, Any]:
    """Train one DPO model with `settings` (config `train`, a sweep candidate's beta and lr)."""
    import datasets
    import torch
    from accelerate import PartialState
    from accelerate.utils import DistributedType
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    state = PartialState()
    out_dir = Path(out_dir)
    partial = (
        out_dir.parent / f".{out_dir.name}.partial"
    )  # shared by every rank, renamed at the end
    checkpoints = out_dir.parent / f".{out_dir.name}.checkpoints"  # survives a failed job

    pairs = [pair for path in data for pair in read_jsonl(path)]
    if not pairs:
        raise ValueError(f"no training pairs in {', '.join(map(str, data))}")
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows = to_trl_rows(pairs, tokenizer)
    seed = settings.seed
    dataset = datasets.Dataset.from_list(rows).shuffle(seed=seed)

    on_cpu = settings.device == "cpu" or not torch.cuda.is_available()
    # bf16 compute with fp32 master weights, on CPU too (torch's CPU autocast does bf16)
    bf16 = settings.bf16
    deepspeed = state.distributed_type == DistributedType.DEEPSPEED
    param_dtype = policy_dtype(bf16, deepspeed)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=param_dtype)
    accumulation = gradient_accumulation(settings, state.num_processes)
    per_device = settings.per_device_train_batch_size
    save_steps = settings.save_steps

    args = DPOConfig(
        output_dir=str(checkpoints),
        beta=float(settings.beta),
        learning_rate=float(settings.learning_rate),
        num_train_epochs=float(settings.num_train_epochs),
        per_device_train_batch_size=per_device,
        per_device_eval_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        max_length=settings.max_length,
        lr_scheduler_type=settings.lr_scheduler_type,
        warmup_steps=float(settings.warmup_steps),
        optim=settings.optim,
        bf16=bf16,
        use_cpu=on_cpu,
        **{_checkpointing_field(DPOConfig): settings.gradient_checkpointing and not on_cpu},
        seed=seed,
        data_seed=seed,
        logging_steps=1,
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        save_total_limit=2,
        report_to=[],
        dataset_num_proc=1,
    )
    peft_config = _lora_config(settings.lora) if settings.lora is not None else None
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
    resume = latest_checkpoint(checkpoints) if checkpoints.is_dir() else None
    result = trainer.train(resume_from_checkpoint=resume)

    final_metrics: dict[str, float] = {}
    n_final = settings.final_eval_pairs
    if n_final:
        # Reward accuracy/margins of the trained policy on (a sample of) its own training pairs.
        sample = dataset.select(range(min(n_final, len(dataset))))
        metrics = trainer.evaluate(eval_dataset=sample)
        final_metrics = {
            k: float(metrics[f"eval_{k}"]) for k in FINAL_METRICS if f"eval_{k}" in metrics
        }

    if state.is_main_process and partial.exists():
        shutil.rmtree(partial)
    state.wait_for_everyone()
    if peft_config is not None:
        merged = (
            trainer.model.merge_and_unload()
        )  # plain weights, so merging treats it like any model
        if state.is_main_process:
            merged.save_pretrained(partial)
    else:
        trainer.save_model(str(partial))  # gathers ZeRO-3 / FSDP shards onto the main process

    summary = {
        "base_model": str(model_path),
        "data": [str(p) for p in data],
        "sources": sorted({p["source"] for p in pairs}),
        "pairs": len(rows),
        "seed": seed,
        "hyperparameters": settings.record(),
        "devices": state.num_processes,
        "gradient_accumulation_steps": accumulation,
        "global_batch_size": per_device * accumulation * state.num_processes,
        "resumed_from": resume,
        # compute precision (train.bf16 or the accelerate config) and the loaded parameters'
        # dtype; under DeepSpeed bf16 its optimizer holds the fp32 masters
        "precision": {
            "mixed_precision": str(getattr(args, "mixed_precision", "bf16" if bf16 else "no")),
            "param_dtype": str(param_dtype).removeprefix("torch."),
        },
        "train_loss": float(result.training_loss),
        "steps": int(result.global_step),
        "final_metrics": final_metrics,
        "versions": _versions(),
        "log_history": trainer.state.log_history,
    }
    if state.is_main_process:
        tokenizer.save_pretrained(partial)
        write_hash(partial)  # the model's content hash, read by every later stage
        (partial / "mixmerge_train.json").write_text(json.dumps(summary, indent=2, default=str))
        (partial / "README.md").write_text(_model_card(summary))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        partial.rename(out_dir)
        shutil.rmtree(checkpoints, ignore_errors=True)
    state.wait_for_everyone()
    return summary
