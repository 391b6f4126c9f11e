"""lm-eval's model for the lm-eval benchmarks: hf (an HFLM around the process's one loaded model)
or vllm (lm-eval's own engine), built once per process and counting the requests it runs."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from mixmerge.runtime.settings import GenerationSettings

log = logging.getLogger(__name__)


# lm-eval vLLM models of this process (one engine at a time: each holds its GPU memory share).
_LMS: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}


def lm_settings(
    model_dir: str | Path, bench_cfg: dict[str, Any], eval_cfg: dict[str, Any], benchmark: str
) -> tuple[str, dict[str, Any]]:
    """(lm-eval model type, its model_args) from the config: backend hf | vllm."""
    bench_cfg, eval_cfg = bench_cfg or {}, eval_cfg or {}
    g = GenerationSettings.from_config(
        {**(eval_cfg.get("generation") or {}), **(bench_cfg.get("generation") or {})}
    )
    backend = g.backend
    path = Path(model_dir)
    pretrained = str(path.resolve()) if path.exists() else str(model_dir)
    dtype = bench_cfg.get("dtype") or eval_cfg.get("dtype") or g.dtype
    if backend == "hf":
        return backend, {
            "pretrained": pretrained,
            "device": bench_cfg.get("device") or eval_cfg.get("device") or "cpu",
            "dtype": dtype,
            "batch_size": bench_cfg.get("batch_size") or eval_cfg.get("batch_size") or 1,
        }
    if backend == "vllm":
        args: dict[str, Any] = {
            "pretrained": pretrained,
            "dtype": dtype,
            # vLLM schedules its own batches; evaluate.batch_size is for the hf backend
            "batch_size": bench_cfg.get("batch_size") or "auto",
            "tensor_parallel_size": int(g.tensor_parallel_size),
            "gpu_memory_utilization": float(g.gpu_memory_utilization),
            "seed": int(g.seed),
        }
        if g.max_model_len:
            args["max_model_len"] = int(g.max_model_len)
        return backend, args
    raise ValueError(f"{benchmark}: unknown generation backend {backend!r} (known: hf, vllm)")


def cached_lm(backend: str, model_args: dict[str, Any]) -> Any:
    """The lm-eval LM for these settings; the model itself is loaded once per process.

    hf: an HFLM wrapping the (model, tokenizer) of `generation.load_hf_model`, the same object the
    generation-based benchmarks (evalplus, judged ones) of this process use. vllm: lm-eval's VLLM
    (it builds its own engine), kept for the next benchmark; other engines are freed first.
    """
    from mixmerge.runtime import generation

    if backend == "hf":
        from lm_eval.models.huggingface import HFLM

        model, tokenizer = generation.load_hf_model(
            model_args["pretrained"], model_args["device"], model_args["dtype"]
        )
        return counting(HFLM)(
            pretrained=model, tokenizer=tokenizer, batch_size=model_args["batch_size"]
        )
    key = (backend, tuple(sorted(model_args.items())))
    if key not in _LMS:
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise ImportError(
                "generation backend 'vllm' needs the vllm package (pip install vllm) on a GPU "
                "machine; or set evaluate.generation.backend: hf"
            ) from None
        from lm_eval.api.registry import get_model

        release_lms()
        generation.release_models()  # a generation engine would hold GPU memory beside ours
        log.info("loading lm-eval %s model %s", backend, model_args.get("pretrained"))
        _LMS[key] = counting(get_model(backend)).create_from_arg_obj(dict(model_args))
    return _LMS[key]


@functools.cache
def counting(cls: type) -> type:
    """`cls` (an lm-eval LM class) counting the requests it really runs: lm-eval's request cache
    (CachingLM) hands it only those it holds no answer for."""

    class Counting(cls):  # type: ignore[misc, valid-type]
        requests_run = 0

        def loglikelihood(self, requests: list[Any], *args: Any, **kwargs: Any) -> Any:
            self.requests_run += len(requests)
            return super().loglikelihood(requests, *args, **kwargs)

        def loglikelihood_rolling(self, requests: list[Any], *args: Any, **kwargs: Any) -> Any:
            self.requests_run += len(requests)
            return super().loglikelihood_rolling(requests, *args, **kwargs)

        def generate_until(self, requests: list[Any], *args: Any, **kwargs: Any) -> Any:
            self.requests_run += len(requests)
            return super().generate_until(requests, *args, **kwargs)

    Counting.__name__ = Counting.__qualname__ = cls.__name__
    return Counting


def release_lms() -> None:
    """Free the lm-eval vLLM engines of this process (before another engine is built)."""
    if _LMS:
        from mixmerge.runtime.generation import free_memory

        _LMS.clear()
        free_memory()
