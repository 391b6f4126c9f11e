"""Running a planned merge: each tensor in turn, merged and written to the shard writer.

Inputs are memory-mapped and each tensor's pages are released once it is merged. Elementwise
merges (linear, task arithmetic, TIES/DARE/... without sparsification) stream every tensor in
cache-sized chunks, converting from the mapped bytes as they go, so they need no full-size
buffers at all; other methods get whole tensors, for a peak of about (inputs + 1) × the largest
tensor in the compute dtype plus the method's own scratch: each input is converted on first
use (`_Inputs`), and a method that asks for task vectors (`ctx.task_vectors`) gets them
converted and subtracted from the mapped bytes piece by piece on the workers, without a
converted copy of the input; the result is converted and written by chunks, the workers
converting while this thread writes. Compute-time failures (NaN/Inf)
raise MergeError naming the tensor and, where one caused it, the model.

With a tokenizer block, the vocabulary tensors' rows are first aligned to the output vocabulary
(`AlignedRows`, MergeKit's `PermutedVocabulary`): gathered from the mapped inputs block by block,
so an elementwise merge still streams them in chunks, and a whole-tensor merge holds one aligned
tensor per model, as it holds one converted tensor per model for any other tensor.
"""

from __future__ import annotations

import collections
import concurrent.futures
import ctypes
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from mixmerge.merge.base import LazyInputs, TensorContext, fused_kernels, intra_op_threads
from mixmerge.merge.errors import MergeError
from mixmerge.merge.modelio import ModelFiles, ShardWriter
from mixmerge.merge.plan import MergeJob, TensorPlan
from mixmerge.merge.recipe import dtype_name
from mixmerge.merge.vocab_plan import VocabPlan

# Elements per chunk when streaming elementwise merges and converting outputs: small enough
# for the CPU caches (1 MiB of float32), large enough to amortise per-chunk Python overhead.
CHUNK_CPU = 1 << 18
CHUNK_CUDA = 1 << 24


def all_finite(t: torch.Tensor) -> bool:
    """NaN/Inf check without a full-size boolean temporary.

    Any NaN/Inf entry makes the sum non-finite; only a finite tensor whose sum overflows
    (e.g. fp16 weights summed) needs the exact elementwise check.
    """
    if t.numel() == 0:
        return True
    acc = torch.float64 if t.dtype == torch.float64 else torch.float32
    if bool(torch.isfinite(torch.sum(t, dtype=acc))):
        return True
    return bool(torch.isfinite(t).all())


def _bad_input(name: str, label: str) -> MergeError:
    """The error for an input tensor with NaN/Inf (one wording wherever it is found)."""
    return MergeError(f"non-finite values (NaN/Inf) in tensor {name} of model {label}")


def _convert(
    stored: torch.Tensor,
    dev: torch.device,
    dtype: torch.dtype,
    name: str,
    label: str,
    check: bool = True,
    fused: bool = False,
) -> torch.Tensor:
    """Stored (read-only, mapped) tensor -> a fresh, writable one in the compute dtype/device,
    checked for NaN/Inf (on the stored values, or on the converted ones when that is exact).
    `fused`: bf16 → float32 on CPU by the fused loop (the whole-tensor path, which loads
    numba for its task vectors anyway; streamed merges stay off numba and its ~1 s start)."""
    if fused and _bf16_widening(stored, dev, dtype):  # the conversion and the check, fused
        t = torch.empty(stored.shape, dtype=dtype)
        out = t.view(-1).numpy()
        if not fused_kernels().widen_bf16_if_finite(_bits(stored), out, out, False) and check:
            raise _bad_input(name, label)
        return t
    widening = not check or _widening(stored.dtype, dtype)
    if not widening and not all_finite(stored):
        raise _bad_input(name, label)
    t = stored.to(device=dev, dtype=dtype)
    if t.data_ptr() == stored.data_ptr():  # no conversion happened: never touch the mapping
        t = t.clone()
    if check and widening and not all_finite(t):
        raise _bad_input(name, label)
    return t


def _bf16_widening(stored: torch.Tensor, dev: torch.device, dtype: torch.dtype) -> bool:
    """bf16 stored, float32 computed on CPU: the fused loops convert (and check) it."""
    return (
        stored.dtype == torch.bfloat16
        and dtype == torch.float32
        and dev.type == "cpu"
        and stored.is_contiguous()
    )


def _bits(t: torch.Tensor) -> np.ndarray:
    """A contiguous 16-bit tensor's bit patterns as a flat int16 array (no copy)."""
    return t.view(torch.int16).reshape(-1).numpy()


def _widening(stored: torch.dtype, dtype: torch.dtype) -> bool:
    """Converting `stored` to `dtype` keeps every value, NaN/Inf included, so the converted
    values can be checked instead of the stored ones."""
    return stored.is_floating_point and (
        dtype == torch.float64 or (dtype == torch.float32 and stored != torch.float64)
    )


class _Inputs(LazyInputs):
    """A whole-tensor merge's inputs, each distinct model converted on first use (once, and
    thread-safe), its stored pages released then when `release`; or, through `delta_into`,
    a task vector formed straight from the stored bytes (see `LazyInputs`)."""

    def __init__(
        self,
        job: MergeJob,
        plan: TensorPlan,
        load: Callable[[ModelFiles], torch.Tensor],
        stored: Callable[[ModelFiles], torch.Tensor] | None,
        release: bool,
    ) -> None:
        self.readers = [r for _, r in job.inputs]
        self.base_reader = job.base
        self.name, self.release, self.dtype = plan.name, release, job.recipe.dtype
        self.device = job.device
        self._load, self._stored = load, stored
        self._cache: dict[int, torch.Tensor] = {}
        self._flat: dict[int, torch.Tensor] = {}
        self._formed: set[int] = set()
        every = [*self.readers, *([job.base] if job.base is not None else [])]
        self._uses = collections.Counter(id(r) for r in every)
        # one lock per model, held while it converts: a model two workers ask for loads once
        self._locks = {id(r): threading.Lock() for r in every}

    def __len__(self) -> int:
        return len(self.readers)

    def __getitem__(self, j):  # type: ignore[override]
        if isinstance(j, slice):
            return [self[i] for i in range(*j.indices(len(self)))]
        return self.load(self.readers[j])

    def load(self, reader: ModelFiles) -> torch.Tensor:
        with self._locks[id(reader)]:
            if id(reader) not in self._cache:
                self._cache[id(reader)] = self._load(reader)
                if self.release:
                    reader.release(self.name)
            return self._cache[id(reader)]

    def shared(self, j: int) -> bool:
        return self._uses[id(self.readers[j])] > 1

    def base_shared(self) -> bool:
        return self.base_reader is not None and any(r is self.base_reader for r in self.readers)

    def direct(self, j: int) -> bool:
        r = self.readers[j]
        if self._stored is None or self.shared(j) or id(r) in self._cache:
            return False
        view = self._stored(r)
        if self.device.type != "cpu" or not _widening(view.dtype, self.dtype):
            return False
        self._flat[id(r)] = view.reshape(-1)
        return True

    def delta_into(
        self, j: int, base: torch.Tensor, out: torch.Tensor, start: int, end: int
    ) -> None:
        reader = self.readers[j]
        part, stored = out[start:end], self._flat[id(reader)][start:end]
        if part.dtype == base.dtype == torch.float32 and base.is_contiguous():
            # the conversion (bf16), the NaN/Inf check and the subtraction in one pass
            below = base[start:end].numpy()
            if stored.dtype == torch.bfloat16:
                finite = fused_kernels().widen_bf16_if_finite(_bits(stored), part.numpy(), below, True)
            else:
                part.copy_(stored)
                finite = fused_kernels().subtract_if_finite(part.numpy(), below)
        else:
            part.copy_(stored)
            finite = all_finite(part)
            part.sub_(base[start:end])
        if not finite:
            raise _bad_input(self.name, reader.label)

    def formed(self, j: int) -> None:
        reader = self.readers[j]
        self._flat.pop(id(reader), None)
        self._formed.add(id(reader))
        if self.release:
            reader.release(self.name)

    def check_unread(self) -> None:
        """Load (and so check for NaN/Inf) each input the method did not read (tsv_c reads
        one): a bad model is reported whichever tensors a method looks at."""
        for r in self.readers:
            if id(r) not in self._cache and id(r) not in self._formed:
                self.load(r)
                self._cache.pop(id(r))


def _context(
    job: MergeJob,
    plan: TensorPlan,
    part: Callable[[ModelFiles], torch.Tensor],
    release: bool = False,
    check: bool = True,
    fresh: bool = False,
    pool: concurrent.futures.ThreadPoolExecutor | None = None,
    lazy: bool = False,
) -> TensorContext:
    """The method's view of one tensor (or one chunk of it): each distinct model converted
    once, so inputs that are the same model share one tensor object (see ctx.mutable).
    `release` unmaps each stored tensor as soon as it is converted; `check=False` skips the
    NaN/Inf check of the inputs (the streamed path checks its output instead). `fresh`: `part`
    gives new tensors already in the compute dtype and device (aligned vocabulary rows).
    `pool`: the CPU workers a whole-tensor method may spread its steps over (`ctx.map`).
    `lazy`: the inputs are converted on first use (`_Inputs`; the base is converted here)."""
    dtype = job.recipe.dtype

    def convert(reader: ModelFiles) -> torch.Tensor:
        if fresh:
            t = part(reader)
            if check and not all_finite(t):
                raise _bad_input(plan.name, reader.label)
            return t
        label = reader.label
        return _convert(part(reader), job.device, dtype, plan.name, label, check, fused=lazy)

    inputs = _Inputs(job, plan, convert, None if fresh or not check else part, release)
    base = inputs.load(job.base) if job.base is not None else None
    return TensorContext(
        name=plan.name,
        tensors=inputs if lazy else inputs[:],
        model_params=plan.model_params,
        params=plan.params,
        base=base,
        model_indices=[e.index for e, _ in job.inputs],
        model_labels=[e.label for e, _ in job.inputs],
        seed=job.seed,
        device=job.device,
        dtype=dtype,
        pool=pool,
    )


def _checked_output(
    name: str, part: torch.Tensor, out_dtype: torch.dtype, fused: bool = False
) -> torch.Tensor:
    """`part` in the output dtype on CPU; a NaN/Inf there (also one the cast made) is an error.
    `fused`: float32 → bf16 on CPU by the fused loop (as in `_convert`)."""
    cpu32 = part.dtype == torch.float32 and part.device.type == "cpu"
    if fused and cpu32 and out_dtype == torch.bfloat16:
        out = torch.empty(part.shape, dtype=out_dtype)
        finite = fused_kernels().narrow_bf16_if_finite(part.contiguous().view(-1).numpy(), _bits(out))
    else:
        out = part.to(device="cpu", dtype=out_dtype)
        finite = all_finite(out)
    if not finite:
        raise MergeError(
            f"merged tensor {name} has non-finite values (NaN/Inf) in {dtype_name(out_dtype)}"
        )
    return out


def _write_result(
    writer: ShardWriter,
    name: str,
    result: torch.Tensor,
    out_dtype: torch.dtype,
    chunk: int,
    pool: concurrent.futures.ThreadPoolExecutor | None,
    workers: int = 1,
) -> None:
    """Convert, check and write a whole merged tensor chunk by chunk; with `pool`, the
    workers convert the chunks (one thread per op) while this thread writes them, in order,
    with at most 2 × `workers` converted chunks in flight (for peak RSS)."""
    flat = result.reshape(-1)

    def convert(s: int) -> torch.Tensor:
        return _checked_output(name, flat[s : s + chunk], out_dtype, fused=True)

    writer.begin(name)
    if pool is None:
        for s in range(0, flat.numel(), chunk):
            writer.write(convert(s))
    else:
        pending: collections.deque = collections.deque()
        with intra_op_threads(1):
            for s in range(0, flat.numel(), chunk):
                pending.append(pool.submit(convert, s))
                if len(pending) >= 2 * workers:
                    writer.write(pending.popleft().result())
            while pending:
                writer.write(pending.popleft().result())
    writer.end()


class AlignedRows:
    """One vocabulary tensor of every model, in the output vocabulary (MergeKit 0.1.5's
    `PermutedVocabulary.execute`), in the compute dtype and device, by row blocks.

    Output row i of a model is its own row `perm[i]` when it has the token (and the token is not
    forced), else the token's default row (the donor's or the base's row, the mean of the models
    that have it, or zeros: `VocabPlan.defaults`); rows past the vocabulary are the model's mean
    row over the vocabulary, as MergeKit pads. The defaults are computed once per tensor, from
    the few rows they need; a model's padding mean (when `pad_to_multiple_of` pads) needs one pass
    over its aligned rows, once.
    """

    def __init__(self, job: MergeJob, name: str) -> None:
        vocab = job.vocab
        assert vocab is not None
        self.vocab: VocabPlan = vocab
        self.name, self.dev, self.dtype = name, job.device, job.recipe.dtype
        by_key = {r.path.resolve(): r for r in job.readers}
        self.readers = by_key
        self.stored = {key: r.view(name) for key, r in by_key.items()}
        self.token_shape = tuple(next(iter(self.stored.values())).shape[1:])
        self.perm = {key: torch.tensor(vocab.perms[key], dtype=torch.long) for key in by_key}
        forced = torch.zeros(vocab.size, dtype=torch.bool)
        if vocab.forced:
            forced[torch.tensor(sorted(vocab.forced))] = True
        self.forced = forced
        ids = sorted(vocab.defaults)
        self.default_pos = torch.full((vocab.size,), -1, dtype=torch.long)
        if ids:
            self.default_pos[torch.tensor(ids)] = torch.arange(len(ids))
        self.defaults = self._default_rows(ids)
        self.means: dict[Path, torch.Tensor] = {}

    def _gather(self, key: Path, rows: torch.Tensor) -> torch.Tensor:
        return self.stored[key].index_select(0, rows).to(device=self.dev, dtype=self.dtype)

    def _default_rows(self, ids: list[int]) -> torch.Tensor:
        """Each default token's row, as MergeKit computes it: a source row; or the rows of the
        models that have it added in group order, then divided by their count; or zeros."""
        out = torch.zeros((len(ids), *self.token_shape), dtype=self.dtype, device=self.dev)
        counts = torch.zeros(len(ids), dtype=self.dtype, device=self.dev)
        avg = []
        copied: dict[Path, tuple[list[int], list[int]]] = {}
        for pos, tid in enumerate(ids):
            d = self.vocab.defaults[tid]
            if d[0] == "row":
                at, rows = copied.setdefault(d[1], ([], []))
                at.append(pos)
                rows.append(d[2])
            elif d[0] == "avg":
                avg.append(pos)
                counts[pos] = len(d[1])
        for key, (at, rows) in copied.items():
            out[torch.tensor(at, device=self.dev)] = self._gather(key, torch.tensor(rows))
        for key in self.vocab.group:  # one model at a time, in MergeKit's summation order
            at = [p for p in avg if key in self.vocab.defaults[ids[p]][1]]
            if at:
                rows = torch.tensor([self.vocab.perms[key][ids[p]] for p in at])
                at_t = torch.tensor(at, device=self.dev)
                out[at_t] = out[at_t] + self._gather(key, rows)
        if avg:
            at_t = torch.tensor(avg, device=self.dev)
            shape = (len(avg),) + (1,) * len(self.token_shape)
            out[at_t] = out[at_t] / counts[at_t].reshape(shape)
        return out

    def _body(self, key: Path, a: int, b: int) -> torch.Tensor:
        out = torch.zeros((b - a, *self.token_shape), dtype=self.dtype, device=self.dev)
        perm = self.perm[key][a:b]
        own = (perm >= 0) & ~self.forced[a:b]
        at = own.nonzero().squeeze(1)
        if at.numel():
            out[at.to(self.dev)] = self._gather(key, perm[at])
        pos = self.default_pos[a:b]
        fill = (~own & (pos >= 0)).nonzero().squeeze(1)
        if fill.numel():
            out[fill.to(self.dev)] = self.defaults[pos[fill].to(self.dev)]
        return out

    def rows(self, key: Path, a: int, b: int) -> torch.Tensor:
        """Output rows [a, b) of model `key`."""
        size = self.vocab.size
        if b <= size:
            return self._body(key, a, b)
        out = torch.empty((b - a, *self.token_shape), dtype=self.dtype, device=self.dev)
        if a < size:
            body = self._body(key, a, size)
            out[: size - a] = body
            if a == 0 and key not in self.means:
                self.means[key] = torch.mean(body, dim=0)
        if key not in self.means:
            self.means[key] = torch.mean(self._body(key, 0, size), dim=0)
        out[max(a, size) - a :] = self.means[key]
        return out

    def whole(self, reader: ModelFiles) -> torch.Tensor:
        return self.rows(reader.path.resolve(), 0, self.vocab.rows)

    def flat(self, reader: ModelFiles, s: int, e: int) -> torch.Tensor:
        """Elements [s, e) of the aligned tensor, flattened (a streamed chunk)."""
        width = 1
        for d in self.token_shape:
            width *= d
        a, b = s // width, -(-e // width)
        block = self.rows(reader.path.resolve(), a, b).reshape(-1)
        return block[s - a * width : e - a * width]


def _merge_whole(
    job: MergeJob, plan: TensorPlan, pool: concurrent.futures.ThreadPoolExecutor | None = None
) -> torch.Tensor:
    """Whole tensors in, the whole merged tensor out (the caller converts and writes it)."""
    method = job.recipe.method
    if plan.vocab:
        part = AlignedRows(job, plan.name).whole
        ctx = _context(job, plan, part, True, fresh=True, pool=pool, lazy=True)
    else:
        ctx = _context(job, plan, lambda r: r.view(plan.name), True, pool=pool, lazy=True)
    result = method.merge(ctx)
    assert isinstance(ctx.tensors, _Inputs)
    ctx.tensors.check_unread()
    del ctx
    if tuple(result.shape) != plan.shape:
        raise MergeError(
            f"{method.name} produced shape {list(result.shape)} for tensor {plan.name}, "
            f"expected {list(plan.shape)}"
        )
    return result


_MALLOC_TUNED = False


def tune_malloc() -> None:
    """Keep chunk-sized blocks in glibc's heap (once per process).

    By default glibc serves blocks over 128 KiB–32 MiB with fresh mmaps and trims the heap
    top after frees, so every chunk's temporaries are new pages to fault in and zero: that
    page-fault churn, not the arithmetic, dominated streamed merges (≈5× slower). A fixed
    32 MiB mmap threshold and 128 MiB trim threshold keep freed chunks for reuse; blocks over
    32 MiB (whole large tensors) are still mapped and returned to the OS on free, so peak RSS
    grows by at most the trim threshold. Not glibc (or MIXMERGE_NO_MALLOPT=1): no-op.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or os.environ.get("MIXMERGE_NO_MALLOPT"):
        return
    _MALLOC_TUNED = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def _merge_streamed(
    job: MergeJob,
    plan: TensorPlan,
    writer: ShardWriter,
    chunk: int,
    pool: concurrent.futures.ThreadPoolExecutor | None = None,
    workers: int = 1,
) -> None:
    """Elementwise method: merge() runs on 1-D chunks taken straight from the mapped inputs.

    Chunk-sized ops gain nothing from intra-op threads (on a busy machine they lose a lot to
    thread hand-offs), so each op runs on one thread and `pool` computes several chunks at
    once instead (torch releases the GIL); chunks are written in order, so the output does
    not depend on the number of workers.
    """
    method, dev, out_dtype = job.recipe.method, job.device, job.out_dtype
    n = 1
    for d in plan.shape:
        n *= d
    readers = job.readers
    flat = {id(r): r.view(plan.name).reshape(-1) for r in readers}  # made here: not thread-safe
    aligned = AlignedRows(job, plan.name) if plan.vocab else None

    def part(r: ModelFiles, s: int, e: int) -> torch.Tensor:
        if aligned is not None:
            return aligned.flat(r, s, e)
        return flat[id(r)][s:e]

    def work(s: int, e: int) -> torch.Tensor:
        ctx = _context(job, plan, lambda r: part(r, s, e), check=False, fresh=aligned is not None)
        result = method.merge(ctx)
        if tuple(result.shape) != (e - s,):
            raise MergeError(
                f"{method.name} produced shape {list(result.shape)} for a chunk of "
                f"tensor {plan.name}, expected [{e - s}]"
            )
        try:
            return _checked_output(plan.name, result, out_dtype)
        except MergeError:  # find the input that caused it, if one did
            for r in readers:
                if not all_finite(part(r, s, e)):
                    raise _bad_input(plan.name, r.label) from None
            raise

    window = 2 * workers if pool is not None else 1
    pending: collections.deque = collections.deque()
    done = 0

    def write_next() -> None:
        nonlocal done
        e, fut = pending.popleft()
        writer.write(fut.result() if pool is not None else fut)
        done += 1
        if done % 64 == 0 and aligned is None:  # unmap what is written: no huge tensor piles up
            for r in readers:
                r.release(plan.name, e * flat[id(r)].element_size())

    writer.begin(plan.name)
    with intra_op_threads(1 if dev.type == "cpu" else torch.get_num_threads()):
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            pending.append((e, pool.submit(work, s, e) if pool is not None else work(s, e)))
            while len(pending) >= window:
                write_next()
        while pending:
            write_next()
    writer.end()


# A merged tensor up to this size is written behind: its own thread converts, checks and
# writes it while the workers merge the next one (the writes are serial, and the workers would
# wait on them). Larger ones are written in place, so a write never holds more than this
# beyond the engine's memory bound.
WRITE_BEHIND_MAX = 256 * 2**20


def merge_tensors(job: MergeJob, writer: ShardWriter, progress: bool = True) -> None:
    """Merge (or copy) every planned tensor, in plan order, into `writer`.

    The next tensor's pages are read ahead while one is merged (it matters on a cold cache),
    each tensor's pages are released once it is merged, and a whole-tensor result of up to
    WRITE_BEHIND_MAX is written while the next tensor is merged (in order: every other write
    waits for it).
    """
    dev, ref, plans = job.device, job.ref, job.tensors
    chunk = CHUNK_CUDA if dev.type == "cuda" else CHUNK_CPU
    # Workers for streamed (elementwise) tensors: one per intra-op thread torch would use.
    workers = torch.get_num_threads() if dev.type == "cpu" else 1
    distinct = job.readers
    behind: concurrent.futures.Future | None = None

    def settle() -> None:  # the write behind, finished (its error raised here)
        nonlocal behind
        if behind is not None:
            done, behind = behind, None
            done.result()

    with (
        concurrent.futures.ThreadPoolExecutor(workers) as pool,
        concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mixmerge-write") as writes,
    ):
        bar = tqdm(
            plans, desc=f"merge:{job.recipe.method.name}", unit="tensor", disable=not progress
        )
        for i, plan in enumerate(bar):
            if i + 1 < len(plans):
                for r in distinct if plans[i + 1].is_float else [ref]:
                    r.willneed(plans[i + 1].name)
            if not plan.is_float:
                settle()
                writer.add(plan.name, ref.get(plan.name))
            elif plan.elementwise:
                settle()
                _merge_streamed(job, plan, writer, chunk, pool if workers > 1 else None, workers)
            else:
                result = _merge_whole(job, plan, pool if workers > 1 else None)
                settle()
                if workers > 1 and result.nbytes <= WRITE_BEHIND_MAX:
                    args = (writer, plan.name, result, job.out_dtype, chunk, None)
                    behind = writes.submit(_write_result, *args)
                else:
                    _write_result(writer, plan.name, result, job.out_dtype, chunk,
                                  pool if workers > 1 else None, workers)
                del result
            for r in distinct:
                r.release(plan.name)
        settle()
        bar.close()
