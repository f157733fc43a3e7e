"""The one interface every model family implements.

A family owns its networks and optimizers. The trial loop only calls `attach`, `step` (= the
family's `train_step` + the weight average's update), `evaluation_weights`, `sample`, `nll`,
`state_dict` and `training_state` / `load_training_state` (checkpoints); nothing outside a
family's module knows how it trains.

Equal terms, defined once here for every family: the divergence rule (`check_divergence`,
LOSS_LIMIT) and the exponential moving average of the weights (`ema` hyper-parameter, default
EMA_DEFAULT; evaluation swaps the average in through `evaluation_weights`).

Tensor conventions: x is (B, *spec.shape) float32 in model space (see bench.datasets.base).
NLLs are per example, in nats; for images they bound the NLL of the *discrete* data.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, get_args

import torch
from torch import nn

from bench.datasets.base import DataSpec, Kind
from bench.units import dequantization_correction_nats

if TYPE_CHECKING:
    from bench.families.ode import OdeNll, OdeSettings

# The one divergence rule of every family: a step whose losses are non-finite or exceed this in
# magnitude ends training. Losses are per-example nats or per-element MSEs; 1e10 is ~1e4 nats per
# dimension even for a megapixel RGB image, so no sane trajectory reaches it, while an exploding one
# (a GAN at lr = 1e3 reaches ~1e34) passes it within a few steps.
LOSS_LIMIT = 1e10
EMA_DEFAULT = 0.999  # every family's default weight averaging (the `ema` hyper-parameter)


@dataclass
class CommonHparams:
    """Hyper-parameters every family has, with one default each; families' Hparams inherit them."""

    # decay of the exponential moving average of the weights that evaluation uses (sampling, NLL,
    # imputation); 0 = evaluate the raw trained weights. Warm-up: decay_n = min(ema, (1+n)/(10+n)).
    ema: float = EMA_DEFAULT

    def validate(self) -> None:
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1) (got {self.ema})")


def every_kind(estimator: str | None) -> Mapping[str, str | None]:
    """The same headline NLL estimator on every kind of data."""
    return MappingProxyType({kind: estimator for kind in get_args(Kind)})


# a continuous density (flow, gmm): exact on points; on discrete images a dequantization bound
CONTINUOUS_DENSITY: Mapping[str, str] = MappingProxyType({"points": "exact", "image": "dequantized"})


class Family(ABC):
    """Base class of a model family. Subclasses set `Hparams`, `nll_kinds` and `tiny_hparams`.

    Everything a family declares as a ClassVar is a fact about the family that callers read without
    building a model (`genbench list`, suite validation, the report)."""

    Hparams: ClassVar[type]  # @dataclass of hyper-parameters with a comment on each default
    # headline NLL estimator per data kind (bench.datasets.base.Kind): "exact", "dequantized",
    # "elbo", "iwae", "vlb", "ode", "ode_dequantized" (bench.families.ode), or None (no likelihood: the GAN)
    nll_kinds: ClassVar[Mapping[str, str | None]]
    # a reference family (a memoriser, a classical density model): compared, never deciding a verdict
    baseline: ClassVar[bool] = False
    # one of the lecture's families (GAN, VAE, flow, DDPM), whose claims the report tests; any other
    # family (a baseline, flow matching) is shown as a reference where a claim compares "other families"
    lecture: ClassVar[bool] = False
    # the smallest hyper-parameters that still exercise every part of the family: the family-generic
    # tests train each registered family with these, on points and on images
    tiny_hparams: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    @property
    def nll_kind(self) -> str | None:
        """The headline NLL estimator on this family's data."""
        return self.nll_kinds[self.spec.kind]

    @classmethod
    def has_likelihood(cls) -> bool:
        """Whether the family reports an NLL on some kind of data."""
        return any(kind is not None for kind in cls.nll_kinds.values())

    def __init__(self, spec: DataSpec, hparams: Any):
        self.spec = spec
        self.hp = hparams
        self.accelerator = None  # set by attach(); plain PyTorch when None
        self._ema: dict[str, dict[str, torch.Tensor]] = {}  # module -> parameter -> average
        self._ema_updates = 0  # train steps averaged so far (drives the warm-up)

    # --- what a family provides ------------------------------------------------------------
    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Named networks (their parameters are counted, saved and moved to the device)."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Named optimizers, one per independently stepped module group."""

    @abstractmethod
    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        """One optimizer step (the GAN: its D/G alternation) on batch x; returns finite floats.

        The caller sets the mode (`train(True)` before the loop, evaluation restores it), so a step
        does not re-set it: Module.train walks every submodule, ~5 % of a toy step.
        """

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None, *, steps: int | None = None) -> torch.Tensor:
        """(n, *spec.shape) float32 samples in model space; images clamped to [-1, 1].

        `steps` is the number of sampling steps for iterative samplers (DDPM: strided ancestral
        sampling); one-shot families raise ValueError when it is given.
        """

    def nll(
        self, x: torch.Tensor, generator: torch.Generator | None = None, *, iwae_k: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Per-example NLL estimates in nats, {estimator label: (B,)}, headline estimator first.

        Labels: "exact", "elbo", "iwae-K", "vlb". `iwae_k` is the evaluation's importance-sample
        count for estimators that take one (the VAE's IWAE-K); others ignore it. The default (no
        likelihood) returns {}: a family without a likelihood reports none rather than a made-up number.
        """
        return {}

    def ode_nll(
        self, x: torch.Tensor, generator: torch.Generator | None = None, *, settings: OdeSettings
    ) -> OdeNll | None:
        """The density of an ODE the family defines (DDPM: its probability flow; flow matching: its
        velocity field), solved as in bench.families.ode with the evaluation's `settings`: per-example
        nats of the discrete data (images dequantized like the flow), Hutchinson standard errors, NFE.
        The default: None (no ODE density)."""
        return None

    def nfe_per_sample(self, steps: int | None = None) -> int:
        """Network function evaluations to draw one sample (1 for one-shot generators)."""
        return 1

    # samplers of bench.families.samplers.SAMPLERS whose `sampler=` this family's sample accepts; () = one-shot
    samplers: ClassVar[tuple[str, ...]] = ()

    def sampling_steps(self) -> int | None:
        """Default number of sampling steps for iterative samplers (DDPM: T), None for one-shot."""
        return None

    def impute(
        self, x: torch.Tensor, known: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor | None:
        """Fill the entries of x where `known` (bool, x's shape) is False; None if unsupported."""
        return None

    # key of train_step's dict whose trajectory measures training (in)stability
    main_loss: ClassVar[str] = "loss"

    def check_divergence(self, losses: dict[str, float]) -> str | None:
        """The one divergence rule (same for every family): non-finite or |loss| > LOSS_LIMIT."""
        bad = [k for k, v in losses.items() if not math.isfinite(v)]
        if bad:
            return f"non-finite loss: {', '.join(bad)}"
        big = [f"{k}={v:.3g}" for k, v in losses.items() if abs(v) > LOSS_LIMIT]
        return f"loss beyond {LOSS_LIMIT:g}: {', '.join(big)}" if big else None

    def mode_collapsed(self) -> bool | None:
        """A family's own collapse detector (the GAN's), measured during training; None: none."""
        return None

    # --- the training step and the weights evaluation uses ----------------------------------------
    def step(self, x: torch.Tensor) -> dict[str, float]:
        """What the trial loop calls: `train_step`, then the weight average's update."""
        losses = self.train_step(x)
        self.update_ema()
        return losses

    def _named_params(self) -> Iterator[tuple[str, str, nn.Parameter]]:
        for name, module in self.modules().items():
            for pname, p in self.unwrapped(module).named_parameters():
                yield name, pname, p

    @torch.no_grad()
    def update_ema(self) -> None:
        """One step of the weight average (hp.ema; warm-up so short runs are not stuck at init)."""
        if self.hp.ema <= 0:
            return
        decay = min(self.hp.ema, (1 + self._ema_updates) / (10 + self._ema_updates))
        avgs, params = [], []
        for name, pname, p in self._named_params():
            avg = self._ema.setdefault(name, {}).get(pname)
            if avg is None or avg.device != p.device:
                self._ema[name][pname] = p.detach().float().clone()
            else:
                avgs.append(avg)
                params.append(p.detach().float())
        if avgs:  # one fused call, not a kernel per tensor (the average costs 1-2.5 % of a CPU toy step)
            torch._foreach_lerp_(avgs, params, 1 - decay)
        self._ema_updates += 1

    def weights_evaluated(self) -> str:
        """ "ema" when evaluation uses averaged weights, else "raw" (ema = 0, no step, no weights)."""
        return "ema" if self.hp.ema > 0 and self._ema_updates > 0 and self._ema else "raw"

    @contextlib.contextmanager
    def evaluation_weights(self) -> Iterator[str]:
        """Swap the averaged weights in for the duration (raw weights restored after); yields which."""
        which = self.weights_evaluated()
        if which == "raw":
            yield which
            return
        raw = []
        with torch.no_grad():
            for name, pname, p in self._named_params():
                raw.append((p, p.detach().clone()))
                p.copy_(self._ema[name][pname].to(p.device, p.dtype))
        try:
            yield which
        finally:
            with torch.no_grad():
                for p, value in raw:
                    p.copy_(value)

    def extra_state(self) -> dict[str, Any]:
        """Training state outside modules and optimizers (EMA weights, step counters that drive
        warm-ups and LR schedules): tensors and plain values. The base holds the weight average;
        families with more state extend this and `load_extra_state` (calling super); a resumed
        trial is bit-identical only if nothing is missing."""
        ema = {name: {k: v.cpu() for k, v in params.items()} for name, params in self._ema.items()}
        return {"ema": ema, "ema_updates": self._ema_updates}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        device = self.device
        self._ema = {name: {k: v.to(device) for k, v in params.items()} for name, params in state["ema"].items()}
        self._ema_updates = int(state["ema_updates"])

    # --- shared machinery -------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        module = next(iter(self.modules().values()))
        return next(itertools.chain(module.parameters(), module.buffers())).device  # baselines: buffers only

    def attach(self, accelerator) -> None:
        """Hand modules and optimizers to an `accelerate.Accelerator` (device, mixed precision)."""
        mods, opts = self.modules(), self.optimizers()
        prepared = accelerator.prepare(*mods.values(), *opts.values())
        if len(mods) + len(opts) == 1:
            prepared = (prepared,)
        prepared_opts = prepared[len(mods) :]
        if accelerator.scaler is None and accelerator.gradient_accumulation_steps == 1:
            # Without a loss scaler or gradient accumulation, Accelerate's optimizer wrapper steps the
            # inner optimizer unchanged, after per-step package lookups (is_lomo_available: importlib
            # find_spec over sys.path, twice a step) and an inspect.signature in zero_grad: ~0.1 ms
            # a step (docs/benchmarks.md). prepare() has already placed the optimizer state.
            prepared_opts = [opt.optimizer for opt in prepared_opts]
        self._replace(dict(zip(mods, prepared[: len(mods)])), dict(zip(opts, prepared_opts)))
        self.accelerator = accelerator

    def detach(self) -> None:
        """End training's Accelerate wrapping: modules become the bare fp32 networks (no autocast
        wrapper), optimizers the bare ones, and the family runs as plain PyTorch from here on."""
        if self.accelerator is None:
            return
        # keep_fp32_wrapper=False also removes the autocast wrapper around forward
        unwrap = self.accelerator.unwrap_model
        opts = {name: getattr(opt, "optimizer", opt) for name, opt in self.optimizers().items()}
        self._replace({name: unwrap(m, keep_fp32_wrapper=False) for name, m in self.modules().items()}, opts)
        self.accelerator = None
        self.__dict__.pop("_unwrapped", None)

    @contextlib.contextmanager
    def fp32(self) -> Iterator[None]:
        """Run the modules in fp32 for the duration: Accelerate's autocast wrapper around a prepared
        module's forward is swapped for the original, and autocast is off (enter it once per loop,
        not per network call). Restored on exit, so training may go on in mixed precision."""
        swapped = []
        for module in self.modules().values():
            # Accelerator.prepare keeps the unwrapped forward here when it adds the autocast wrapper
            original = module.__dict__.get("_original_forward")
            if original is not None:
                swapped.append((module, module.__dict__["forward"]))
                module.forward = original
        try:
            with torch.autocast(self.device.type, enabled=False):
                yield
        finally:
            for module, wrapped in swapped:
                module.forward = wrapped

    def randn(
        self, shape: tuple[int, ...], generator: torch.Generator | None = None, *, device: torch.device | None = None
    ) -> torch.Tensor:
        """N(0, I) of `shape` on `device` (default: the model's), drawn on the generator's device so
        that a seeded generator reproduces it; moved only when the two devices differ."""
        device = self.device if device is None else torch.device(device)
        dev = generator.device if generator is not None else device
        x = torch.randn(shape, generator=generator, device=dev)
        return x if dev == device else x.to(device)

    # --- continuous densities on discrete images (flow, gmm) ------------------------------------
    def dequantize(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images: x + u, u ~ U(−Δ/2, Δ/2) per entry (drawn on the generator's device); points: x."""
        if not self.spec.is_image:
            return x
        dev = generator.device if generator is not None else x.device
        u = torch.rand(x.shape, generator=generator, device=dev).to(x.device)
        return x + (u - 0.5) * self.spec.bin_width

    def dequantization_nats(self) -> float:
        """Nats added to a dequantized continuous NLL: −D·log Δ on images (bench.units), 0 on points."""
        return dequantization_correction_nats(self.spec.dim, self.spec.bin_width) if self.spec.is_image else 0.0

    def to_data_range(self, x: torch.Tensor) -> torch.Tensor:
        """float32 samples in model space: images clamped to [-1, 1], points unchanged."""
        return x.float().clamp(-1, 1) if self.spec.is_image else x.float()

    def _replace(self, modules: dict[str, nn.Module], optimizers: dict[str, Any]) -> None:
        """Store prepared objects back; default: attributes named like the dict keys."""
        for name, obj in {**modules, **optimizers}.items():
            setattr(self, name, obj)

    def unwrapped(self, module: nn.Module) -> nn.Module:
        """The bare module behind a prepared one (fp32 forward kept). Cached: unwrapping walks the
        wrappers (~0.3 ms), and families need the bare network every step (EMA, data init)."""
        if self.accelerator is None:
            return module
        cache = self.__dict__.setdefault("_unwrapped", {})
        if id(module) not in cache:  # the module itself is kept in the value, so ids stay unique
            cache[id(module)] = (module, self.accelerator.unwrap_model(module, keep_fp32_wrapper=True))
        return cache[id(module)][1]

    def backward(self, loss: torch.Tensor) -> None:
        if self.accelerator is not None:
            self.accelerator.backward(loss)
        else:
            loss.backward()

    def clip_gradients(self, optimizer, max_norm: float) -> None:
        """Clip the global gradient norm of `optimizer`'s parameters to `max_norm` (0 disables).

        Under a loss scaler (fp16) the optimizer's gradients are unscaled first, and only its own:
        unscaling every optimizer would touch the GAN's other network mid-step. One trial is one
        process without FSDP/DeepSpeed, so this is what Accelerate's clip_grad_norm_ reduces to,
        minus its per-parameter DTensor scan (~0.5 ms a step).
        """
        if max_norm <= 0:
            return
        if self.accelerator is not None:
            self.accelerator.unscale_gradients(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        nn.utils.clip_grad_norm_(params, max_norm)

    def param_count(self) -> int:
        return sum(p.numel() for m in self.modules().values() for p in m.parameters())

    def state_dict(self) -> dict[str, Any]:
        """Raw weights per module, plus the weight average under "ema" ({"module.param": tensor})
        when there is one (what evaluation used)."""
        out = {name: self.unwrapped(m).state_dict() for name, m in self.modules().items()}
        ema = {f"{name}.{k}": v.cpu() for name, params in self._ema.items() for k, v in params.items()}
        return out | ({"ema": ema} if ema else {})

    # --- checkpoints (resume a trial exactly) ------------------------------------------------
    def training_state(self) -> dict[str, Any]:
        """Everything the family needs to continue training exactly: modules, optimizers, extra."""
        return {
            "modules": {name: self.unwrapped(m).state_dict() for name, m in self.modules().items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers().items()},
            "extra": self.extra_state(),
        }

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore `training_state()` (after `attach`: optimizer states follow their parameters)."""
        for name, m in self.modules().items():
            self.unwrapped(m).load_state_dict(state["modules"][name])
        for name, opt in self.optimizers().items():
            opt.load_state_dict(state["optimizers"][name])
        self.load_extra_state(state["extra"])

    def train(self, mode: bool = True) -> None:
        for m in self.modules().values():
            m.train(mode)
