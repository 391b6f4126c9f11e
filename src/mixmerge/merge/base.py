"""The merge-method interface: declared parameters, validation hooks and a per-tensor merge.

A method is a `MergeMethod` subclass that declares its parameters and implements `merge`,
which sees one tensor name at a time (the engine streams, so a method never holds a model).
Adding a method = one file in `methods/` whose class carries `@register_method`; the registry
finds the module by itself.
"""

from __future__ import annotations

import abc
import concurrent.futures
import contextlib
import inspect
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import torch

from mixmerge.merge.errors import MergeError
from mixmerge.merge.rng import tensor_generator, tensor_seed

_REQUIRED = object()
_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


def fused_kernels() -> Any:
    """`mixmerge.merge.kernels` (the fused numba loops), imported on first use: numba's import
    and start-up (~1 s) only in a merge that runs one."""
    from mixmerge.merge import kernels

    return kernels


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to `n` for the block (process-wide: main thread only)."""
    old = torch.get_num_threads()
    if old == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass(frozen=True)
class Param:
    """One declared parameter: type, default (omit for required) and an allowed range.

    `low`/`high` bound numeric values; `low_open`/`high_open` make the bound exclusive.
    `kind=str` takes one of `choices`; `kind=list` is a list of strings (e.g. name filters),
    taken literally for every tensor (never interpolated as a gradient) and stored as a tuple.
    """

    name: str
    kind: type = float  # float, bool, int, str or list
    default: Any = _REQUIRED
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def coerce(self, value: Any, where: str) -> Any:
        """Type-check and range-check a resolved value; `where` names model/tensor for errors."""
        if self.kind is str:
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise MergeError(
                    f"parameter {self.name!r}{where} must be one of {', '.join(self.choices)}, "
                    f"got {value!r}"
                )
            return value
        if self.kind is list:
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)) or not all(
                isinstance(v, str) and v for v in items
            ):
                raise MergeError(
                    f"parameter {self.name!r}{where} must be a list of non-empty strings, "
                    f"got {value!r}"
                )
            return tuple(items)
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
            raise MergeError(f"parameter {self.name!r}{where} must be a boolean, got {value!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MergeError(f"parameter {self.name!r}{where} must be a number, got {value!r}")
        if self.kind is int:
            if float(value) != int(value):
                raise MergeError(f"parameter {self.name!r}{where} must be an integer, got {value}")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise MergeError(f"parameter {self.name!r}{where} must be finite, got {value}")
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise MergeError(
                f"parameter {self.name!r}{where} = {value} out of range ({self._range()})"
            )
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            raise MergeError(
                f"parameter {self.name!r}{where} = {value} out of range ({self._range()})"
            )
        return value

    def _range(self) -> str:
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"{'(' if self.low_open or self.low is None else '['}{lo}, {hi}" + (
            ")" if self.high_open or self.high is None else "]"
        )


# Elements per piece when `TensorContext.task_vectors` forms task vectors from stored bytes
# (16 MiB of float32): per-piece dispatch, not the cache, set the time at 325M parameters, where
# 2²² took 2.24-2.30 s against 3.2 s at 2¹⁸ and 5.1 s at 2¹⁶ (perf/merge_bench.py's sce model).
DELTA_PIECE = 1 << 22


# Elements per piece of `TensorContext.map_pieces` (1 MiB of float32: a few inputs' pieces
# stay in the cache together).
PIECE = 1 << 18


class LazyInputs(Sequence[torch.Tensor], abc.ABC):
    """A context's inputs when the engine converts each model on first use (`tensors[j]`).

    It lets `TensorContext.task_vectors` form a task vector straight from the stored bytes,
    piece by piece on the engine's workers (convert, check and subtract the base while the
    piece is in the cache), rather than convert the whole input first and subtract after:
    one pass over memory instead of three, and spread evenly over the workers.
    """

    @abc.abstractmethod
    def shared(self, j: int) -> bool:
        """Input j's model is also the base or another input (one tensor serves both)."""

    @abc.abstractmethod
    def base_shared(self) -> bool:
        """The base model is also an input."""

    @abc.abstractmethod
    def direct(self, j: int) -> bool:
        """Input j's task vector can be formed from its stored bytes (it is not loaded, not
        shared, and its conversion needs no check of the stored values)."""

    @abc.abstractmethod
    def delta_into(
        self, j: int, base: torch.Tensor, out: torch.Tensor, start: int, end: int
    ) -> None:
        """out[start:end] = input j's converted elements [start, end) − base[start:end] (all
        flat), with loading's NaN/Inf check on the converted elements."""

    @abc.abstractmethod
    def formed(self, j: int) -> None:
        """Input j's task vector is formed: its stored pages may be released (called on the
        worker that formed its last piece)."""


@dataclass
class TensorContext:
    """Everything a method sees for one output tensor.

    `tensors[j]` is model j's tensor (compute dtype, on `device`; the engine converts it on
    first use, see `LazyInputs`), `model_params[j]` its
    resolved per-model parameters, `model_indices[j]` its position in the recipe's `models`
    list (used for RNG streams, so dropping the base from the list shifts nothing).
    `base` is the base model's tensor when the recipe has a base model, else None.
    """

    name: str
    tensors: Sequence[torch.Tensor]
    model_params: list[dict[str, Any]]
    params: dict[str, Any]
    base: torch.Tensor | None
    model_indices: list[int]
    model_labels: list[str]
    seed: int
    device: torch.device
    dtype: torch.dtype
    extra: dict[str, Any] = field(default_factory=dict)
    # The engine's CPU worker threads, for a whole-tensor method's independent steps (`map`).
    pool: concurrent.futures.ThreadPoolExecutor | None = None

    def map(self, fn: Callable[[_Item], _Result], items: Iterable[_Item]) -> list[_Result]:
        """[fn(x) for x in items], on the engine's worker threads when it has some.

        For steps that are independent and each a few passes over a large tensor (one task
        vector's sparsification, one chunk of the combine): each then runs its ops on one
        intra-op thread and the workers take different items, which keeps every core busy
        through numpy's single-threaded selection and the serial random draws. Each result
        depends only on its item, so the output does not depend on the number of workers.
        Call it from the method's own thread only (never from inside `fn`).
        """
        items = list(items)
        if self.pool is None or len(items) < 2:
            return [fn(x) for x in items]
        with intra_op_threads(1):
            return list(self.pool.map(fn, items))

    def map_pieces(self, fn: Callable[[int, int], _Result], n: int) -> list[_Result]:
        """[fn(s, e) for each PIECE-sized slice [s, e) of 0..n], in order, on the workers
        (`map`): a whole-tensor method's pass over flat tensors in cache-sized pieces, with
        piece-sized temporaries instead of full-size ones. A reduction summed over the
        results in this order does not depend on the number of workers.

        Return Python numbers (`.tolist()`), not tensors: a small tensor kept past its piece
        pins that piece's freed temporaries in glibc's heap (measured: 125 pieces of a 5-model
        tensor kept 600 MiB resident through their 0-d sums)."""
        return self.map(lambda s: fn(s, min(n, s + PIECE)), range(0, n, PIECE))

    def piece_sums(
        self,
        fn: Callable[[int, int], Sequence[float]],
        n: int,
        width: int,
        dtype: torch.dtype = torch.float64,
    ) -> torch.Tensor:
        """Reductions by pieces: `fn(s, e)` gives `width` numbers for piece [s, e) (its partial
        sums); their totals over the pieces, added in piece order as Python numbers (float64,
        or exact for ints), as a `dtype` tensor of `width` on the device (zeros when n = 0)."""
        totals = [0] * width
        for part in self.map_pieces(fn, n):
            totals = [t + x for t, x in zip(totals, part, strict=True)]
        return torch.tensor(totals, dtype=dtype, device=self.device)

    def generator(self, j: int) -> torch.Generator:
        """CPU generator for input j of this tensor; draw on CPU, then `.to(self.device)`."""
        return tensor_generator(self.seed, self.name, self.model_indices[j])

    def stream_seed(self, j: int) -> int:
        """The seed of `generator(j)`: the fused loops draw its stream themselves."""
        return tensor_seed(self.seed, self.name, self.model_indices[j])

    def bernoulli(self, j: int, probs: torch.Tensor) -> torch.Tensor:
        """Device-independent Bernoulli mask for input j (drawn on CPU in float32)."""
        drawn = torch.bernoulli(
            probs.detach().to("cpu", torch.float32), generator=self.generator(j)
        )
        return drawn.to(device=self.device, dtype=probs.dtype)

    def uniform(self, j: int, shape: Sequence[int] | torch.Size) -> torch.Tensor:
        """Device-independent U[0, 1) float32 draws for input j (drawn on CPU, then moved).

        `ctx.uniform(j, shape) < p` is a Bernoulli(p) mask; it is about twice as fast as
        `torch.bernoulli` on CPU and needs no probability tensor when p is a scalar. The
        draws are `torch.rand(shape, generator=self.generator(j))`'s, bit for bit, made by a
        fused loop (`kernels.uniform_fill`, ~12x faster than torch's one-by-one draws).
        """
        drawn = torch.empty(tuple(shape), dtype=torch.float32)
        fused_kernels().uniform_fill(drawn.view(-1).numpy(), self.stream_seed(j))
        return drawn.to(self.device)

    def mutable(self, j: int) -> torch.Tensor:
        """Input j as a tensor the method may modify in place.

        The engine loads a model listed twice (or the base listed as a model) once, so
        inputs can share storage; a shared tensor is cloned, an unshared one is returned as is
        (modifying it in place saves a full-size buffer per input).
        """
        t = self.tensors[j]
        if isinstance(self.tensors, LazyInputs):
            shared = self.tensors.shared(j)
        else:
            shared = t is self.base or any(
                o is t for i, o in enumerate(self.tensors) if i != j and o is not None
            )
        return t.clone() if shared else t

    def mutable_base(self) -> torch.Tensor:
        """The base tensor as one the method may modify in place (cloned if an input shares it)."""
        assert self.base is not None
        if isinstance(self.tensors, LazyInputs):
            shared = self.tensors.base_shared()
        else:
            shared = any(o is self.base for o in self.tensors)
        return self.base.clone() if shared else self.base

    def task_vectors(self) -> list[torch.Tensor]:
        """Every input minus the base (δ_j = θ_j − θ_base, in the base's shape), each in a
        buffer the method owns: `mutable(j).sub_(base)`, the same values bit for bit.

        With the engine's inputs (`LazyInputs`) an input not yet loaded never is: its task
        vector is converted and subtracted from the stored bytes piece by piece, on the
        workers. Read `tensors[j]` before this call, not after (it may hold δ_j).
        """
        base = self.base
        assert base is not None
        inputs = self.tensors
        if not isinstance(inputs, LazyInputs):
            return [self.mutable(j).sub_(base) for j in range(len(inputs))]
        shape, dtype, dev = base.shape, base.dtype, base.device
        direct = {
            j: torch.empty(shape, dtype=dtype, device=dev)
            for j in range(len(inputs))
            if inputs.direct(j)
        }
        flat_base, n = base.reshape(-1), base.numel()
        starts = range(0, n, DELTA_PIECE)
        left = dict.fromkeys(direct, len(starts))
        lock = threading.Lock()

        def piece(item: tuple[int, int]) -> None:
            j, s = item
            inputs.delta_into(j, flat_base, direct[j].view(-1), s, min(n, s + DELTA_PIECE))
            with lock:
                left[j] -= 1
                last = left[j] == 0
            if last:  # release its stored pages now: one input at a time stays mapped
                inputs.formed(j)

        self.map(piece, [(j, s) for j in direct for s in starts])
        return [
            direct[j] if j in direct else self.mutable(j).sub_(base) for j in range(len(inputs))
        ]

    def weights(self, key: str = "weight") -> torch.Tensor:
        """Per-model scalar parameter as a tensor broadcastable against `torch.stack(tensors)`."""
        w = torch.tensor([p[key] for p in self.model_params], dtype=self.dtype, device=self.device)
        ndim = self.tensors[0].dim() if self.tensors else 0
        return w.view(-1, *([1] * ndim))


class MergeMethod(abc.ABC):
    """Base class. Subclasses set the class attributes and implement `merge`.

    - `global_params`: recipe-level `parameters:` (e.g. normalize, lambda).
    - `model_params`: per-model `models[i].parameters` (e.g. weight, density); MergeKit also
      lets these be set once under the global `parameters:` as a fallback for every model.
    - `needs_base`: recipe must name `base_model`; a model equal to the base is dropped from
      the inputs (MergeKit skips it when building task vectors).
    - `uses_rng`: the method draws random numbers (via `ctx.generator`/`ctx.bernoulli`).
    - `optional_base`: a `base_model` is optional; when given, a model equal to it is dropped
      from the inputs too (MergeKit's BasePolicy.OPTIONAL: the base is not a "non-base" input).
    - `exact_models`: the number of inputs (besides the base) the method takes, when fixed
      (MergeKit's input contracts: slerp 1, nuslerp 2, ...); the plan checks it.
    """

    name: ClassVar[str] = ""
    pretty_name: ClassVar[str] = ""
    reference_url: ClassVar[str] = ""
    needs_base: ClassVar[bool] = False
    optional_base: ClassVar[bool] = False
    exact_models: ClassVar[int | None] = None
    uses_rng: ClassVar[bool] = False
    global_params: ClassVar[tuple[Param, ...]] = ()
    model_params: ClassVar[tuple[Param, ...]] = ()

    def validate(
        self,
        tensor_name: str,
        params: dict[str, Any],
        model_params: Sequence[dict[str, Any]],
        model_labels: Sequence[str],
    ) -> None:
        """Cross-parameter checks for one tensor (single-parameter ranges live on `Param`).

        Called during planning, before any tensor is read; raise MergeError to reject.
        Default: nothing to check.
        """
        return None

    def elementwise(self, params: dict[str, Any], model_params: Sequence[dict[str, Any]]) -> bool:
        """True when, with these parameters, output element i depends only on the inputs'
        element i (no norms, ranks, shapes or random draws).

        The engine then streams the tensor through `merge` in 1-D chunks converted straight
        from the mapped inputs: much faster (cache-resident, no full-size buffers) and lighter
        on memory. Such a merge must let NaN/Inf in any input reach its output (plain
        arithmetic does: x·0 and x − x stay NaN for x = ±Inf): the engine then checks only the
        output chunk, and looks for the offending input when it is not finite.
        Default False: `merge` always sees whole tensors.
        """
        return False

    @abc.abstractmethod
    def merge(self, ctx: TensorContext) -> torch.Tensor:
        """Return the merged tensor (compute dtype, base/first-model shape)."""


_M = TypeVar("_M", bound=type[MergeMethod])
# name -> class, filled as the method modules are imported; `mixmerge.merge.registry` imports
# them all and is the place to look methods up.
REGISTERED: dict[str, type[MergeMethod]] = {}


def register_method(cls: _M) -> _M:
    """Class decorator: make `cls` the merge method called `cls.name` in recipes.

    Kept here, beside the interface, so that a method module imports nothing that imports the
    other methods (the registry imports them all).
    """
    if not (isinstance(cls, type) and issubclass(cls, MergeMethod)) or inspect.isabstract(cls):
        raise MergeError(f"@register_method needs a concrete MergeMethod subclass, got {cls!r}")
    if not cls.name:
        raise MergeError(f"merge method {cls.__module__}.{cls.__qualname__} has no `name`")
    other = REGISTERED.get(cls.name)
    if other is not None and other is not cls:
        raise MergeError(
            f"merge method name {cls.name!r} is registered twice: by "
            f"{other.__module__}.{other.__qualname__} and {cls.__module__}.{cls.__qualname__}"
        )
    REGISTERED[cls.name] = cls
    return cls
