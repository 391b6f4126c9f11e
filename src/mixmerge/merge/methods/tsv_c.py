"""`tsv_c`: Task Singular Vectors compression, TSV-C (Gargiulo et al., CVPR 2025), as fusion_bench
0.2.33 defines it (method/task_singular_vector/utils/TSVC_utils.py: `compress_tv`).

fusion_bench's TaskSingularVectorCompression.run raises NotImplementedError; what it does
define is `compress_tv(task_vectors, sv_reduction)`: per task and per 2-D tensor the thin SVD
of δᵢ = θᵢ − θ₀ truncated to its k = int(r · sv_reduction) leading components (r = min(m, n));
every other tensor is kept whole ("dim1"). The authors' code (AntoAndGar/task_singular_vectors,
src/eval/aggregation.py and src/eval/eval.py) calls it with sv_reduction = 1/T and evaluates
task i on its own model θ₀ + 1.0 · δ̂ᵢ, δ̂ᵢ = U_k diag(s_k) V_kᵀ: TSV-C gives T per-task models
whose low-rank task vectors together take about the storage of one model, not one merged model.

Single output here: the engine writes one model, so `task` (an index into the recipe's models
besides the base, default 0) picks whose compressed model is written,
θ₀ + alpha · δ̂_task on 2-D tensors and θ₀ + alpha · δ_task on the others (alpha 1.0 is the
authors' evaluation). Running the recipe with task 0 … T−1 gives fusion_bench's T outputs. The
other models only set T (hence k); they are read but not computed on, so one model with an
explicit `sv_reduction` (e.g. 0.125 for T = 8) gives the same tensors as listing all eight
when int(r · sv_reduction) = r // 8.

Parameters: `sv_reduction` in (0, 1], default unset = 1/T (the authors' call; there is no
fusion_bench config for TSV-C); `alpha` ≥ 0, default 1.0; `svd: exact | full | lowrank`, `niter`,
`oversample`, `exclude` as tsvm (a lowrank SVD draws from model `task`'s per-tensor generator,
so δ̂_task is tsvm's candidate block for that task with the same seed and k).

LLM choices the CLIP code did not make, and deviations:
- Embeddings (embed_tokens, lm_head): 2-D, compressed like every 2-D tensor (fusion_bench
  compresses every 2-D key; its `"text_projection" not in key` exception is commented out).
  A vocab × hidden matrix truncated to r/T components loses the rows of rare tokens first;
  `exclude: [embed_tokens, lm_head]` (name substrings) keeps their full task vectors instead.
- 1-D tensors (norms, biases) and excluded tensors: the task's full delta, as "dim1".
- Non-square matrices: thin SVD, r = min(m, n), as fusion_bench.
- Rank rounding: the default k is r // T (fusion_bench's int(r · (1/T)) can round down one too
  far in floating point, as tsvm notes); an explicit sv_reduction takes int(r · sv_reduction)
  exactly as fusion_bench. k = 0 (r < T, or a small fraction) keeps no component: the base's
  tensor (fusion_bench's empty factors multiply to zero too).
- The SVD runs in fp32 on the compute dtype's delta (as tsvm).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mixmerge.merge.base import MergeMethod, Param, TensorContext, register_method
from mixmerge.merge.errors import MergeError
from mixmerge.merge.methods.tsvm import SVD_PARAMS, excluded, leading_svd


def compressed_rank(r: int, tasks: int, sv_reduction: float | None) -> int:
    """k: r // T by default, int(r · sv_reduction) (fusion_bench's formula) when given."""
    return r // tasks if sv_reduction is None else int(r * sv_reduction)


@register_method
class TSVCompress(MergeMethod):
    name = "tsv_c"
    pretty_name = "TSV-C"
    reference_url = "https://arxiv.org/abs/2412.00081"
    needs_base = True
    global_params = (
        Param("alpha", float, default=1.0, low=0.0, doc="multiplies the compressed task vector"),
        Param("task", int, default=0, low=0, doc="which model's compressed version is written"),
        Param(
            "sv_reduction",
            float,
            default=None,
            low=0.0,
            high=1.0,
            low_open=True,
            doc="fraction of each matrix's singular values kept; unset = 1/T",
        ),
        *SVD_PARAMS,
    )
    model_params = ()

    def validate(
        self,
        tensor_name: str,
        params: dict[str, Any],
        model_params: Sequence[dict[str, Any]],
        model_labels: Sequence[str],
    ) -> None:
        if params["task"] >= len(model_params):
            raise MergeError(
                f"tsv_c: task {params['task']} at tensor {tensor_name} is out of range: "
                f"{len(model_params)} model(s) besides the base (tasks count from 0)"
            )

    def merge(self, ctx: TensorContext) -> torch.Tensor:
        base = ctx.base
        assert base is not None
        j = ctx.params["task"]
        delta = ctx.mutable(j).sub_(base)
        if base.dim() == 2 and not excluded(ctx.name, ctx.params["exclude"]):
            m, n = delta.shape
            k = compressed_rank(min(m, n), len(ctx.tensors), ctx.params["sv_reduction"])
            if k == 0:
                return base
            p = ctx.params
            u, s, vh = leading_svd(
                delta.to(torch.float32), k, p["svd"], p["niter"], p["oversample"], ctx.generator(j)
            )
            del delta
            delta = ((u * s) @ vh).to(base.dtype)
            del u, s, vh
        if ctx.params["alpha"] != 1:
            delta.mul_(ctx.params["alpha"])
        return ctx.mutable_base().add_(delta)
