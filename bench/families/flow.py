"""RealNVP (Dinh et al. 2017): a stack of affine coupling layers with an exact log-likelihood.

One coupling layer with a binary mask m (1 = conditioning entries x_{1:d}, 0 = transformed ones):

    y = x ⊙ exp(s(m ⊙ x)) + t(m ⊙ x),   s and t zero wherever m = 1,
    x = (y − t(m ⊙ y)) ⊙ exp(−s(m ⊙ y)),  log|det ∂y/∂x| = Σ_j s_j

(the errata's corrected form; the lecture's `x ⊙ exp(s + t)` is a typo). Masks alternate from layer
to layer (points: alternating dimensions; images: a checkerboard of alternating parity), so every
dimension is transformed. Between couplings sits an ActNorm layer (Kingma & Dhariwal 2018), a
per-dimension (points) or per-channel (images) affine map with log-det Σ log-scale, initialised from
the first training batch so the stack starts near whitened data. The base distribution is N(0, I).

NLL in nats per example: points, the exact continuous NLL −log N(z; 0, I) − log|det ∂z/∂x|. Images,
uniform dequantization x + u, u ~ U(−Δ/2, Δ/2)^D, plus −D·log Δ, a bound on the NLL of the discrete
data (single-sample; exact for the dequantized density), labelled "dequantized" rather than "exact".
Training on images dequantizes likewise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from bench.datasets.base import DataSpec
from bench.errors import ConfigError
from bench.families.base import CONTINUOUS_DENSITY, CommonHparams, Family
from bench.families.likelihood import LOG_2PI
from bench.families.nets import ConvNet, mlp


@dataclass
class FlowHparams(CommonHparams):
    coupling_layers: int = 8  # affine couplings; >= 2 so every dimension is transformed at least once
    hidden: int = 128  # width of each point s/t MLP
    layers: int = 2  # hidden layers of each point s/t MLP
    act: Literal["relu", "silu", "tanh"] = "relu"  # point MLP activation; piecewise-linear relu
    # fits the sharp gaps between 8gaussians modes best (SiLU: +0.05 nats at equal steps)
    width: int = 32  # channels of each image s/t conv net (bench.families.nets.ConvNet)
    blocks: int = 2  # residual blocks of each image s/t conv net
    s_clamp: float = 2.0  # |s| < s_clamp per coupling (soft tanh bound): exp(±s) stays finite
    actnorm: bool = True  # ActNorm before each coupling (data-initialised; exact log-det)
    lr: float = 1e-3  # Adam(W) learning rate
    lr_decay_steps: int = 8000  # cosine-anneal lr to lr_min over this many steps, then hold
    # lr_min; 0 = constant lr. 8000 = the 8gaussians benchmark budget (set it to a trial's steps)
    lr_min: float = 1e-5  # learning rate at and after the end of the cosine decay
    batch_size: int = 256  # examples per optimizer step (drawn by the trial loop)
    weight_decay: float = 0.0  # AdamW decoupled weight decay; 0 = plain Adam
    grad_clip: float = 100.0  # max global gradient norm of the per-dim loss; 0 disables clipping

    def validate(self) -> None:
        super().validate()
        if self.coupling_layers < 2:
            raise ValueError(f"coupling_layers must be >= 2 (got {self.coupling_layers})")
        for name in ("hidden", "width", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")
        for name in ("layers", "blocks"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (got {getattr(self, name)})")
        for name in ("s_clamp", "lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 (got {getattr(self, name)})")
        if not 0 <= self.lr_min <= self.lr:
            raise ValueError(f"lr_min must lie in [0, lr] (got {self.lr_min}, lr {self.lr})")
        for name in ("weight_decay", "grad_clip", "lr_decay_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (got {getattr(self, name)})")


class ActNorm(nn.Module):
    """y = (x + bias) ⊙ exp(log_scale), parameters of shape `param_shape` broadcast over the example.

    log|det| = Σ log_scale × (entries per example sharing each parameter). Before `initialize`
    it is the identity.
    """

    def __init__(self, param_shape: tuple[int, ...], example_dim: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(param_shape))
        self.log_scale = nn.Parameter(torch.zeros(param_shape))
        self.reps = example_dim // math.prod(param_shape)  # e.g. H·W for per-channel image params
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Set bias/scale so the batch x (B, *shape) leaves with zero mean and unit variance."""
        reduce = [0] + [i + 1 for i, n in enumerate(self.bias.shape) if n == 1]
        self.bias.copy_(-x.mean(reduce).view_as(self.bias))
        self.log_scale.copy_(-x.std(reduce).clamp_min(1e-3).log().view_as(self.log_scale))
        self.initialized.fill_(True)

    def logdet(self, batch: int) -> torch.Tensor:
        return (self.log_scale.sum() * self.reps).expand(batch)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (x + self.bias) * self.log_scale.exp(), self.logdet(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * (-self.log_scale).exp() - self.bias


class AffineCoupling(nn.Module):
    """Affine coupling with a fixed binary `mask` (1 = conditioning, 0 = transformed).

    `net` maps m ⊙ x (B, *shape) to (B, 2·C, ...) = raw s and t stacked along dim 1. Images apply
    the checkerboard mask as written. Points split instead of masking (same parameters, same
    function): the conditioning coordinates x[:, first::2] meet only their columns of the first
    layer, and only the rows of s and t for the transformed coordinates are computed, so no
    full-width mask products and half the output layer.
    """

    def __init__(self, mask: torch.Tensor, net: nn.Module, s_clamp: float):
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = net
        self.s_clamp = s_clamp
        self.first = None  # images: masked
        if mask.dim() == 1:  # points: a Sequential MLP (Linear, act, ..., Linear) on D inputs, 2·D outputs
            d = len(mask)
            self.first = int(mask[1].item())  # 1: odd coordinates condition, 0: even ones
            self.cond_cols = slice(self.first, None, 2)
            free = torch.arange(1 - self.first, d, 2)
            # rows of (s, t) for the transformed coordinates; a strided slice when D is even
            self.free_rows = slice(1 - self.first, None, 2) if d % 2 == 0 else torch.cat([free, d + free])
            self.hidden = list(net)[1:-1]  # plain list: the layers stay registered once, in net
            if len(net) > 1:  # the first layer reads only the conditioning coordinates: init for them
                _init_for_fan_in(net[0], len(range(self.first, d, 2)))

    def _clamp(self, raw_s: torch.Tensor) -> torch.Tensor:
        # soft bound: ≈ raw_s near 0, never beyond ±s_clamp, so exp(s) cannot overflow
        return self.s_clamp * torch.tanh(raw_s / self.s_clamp)

    def _s_t(self, x_cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_s, t = self.net(x_cond).chunk(2, dim=1)
        free = 1 - self.mask
        return self._clamp(raw_s) * free, t * free

    def _s_t_split(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Points: (s, t) of the transformed coordinates from the conditioning ones, (B, D_t) each."""
        inp, out = self.net[0], self.net[-1]
        if inp is out:  # layers = 0: a single linear map
            w = out.weight[self.free_rows][:, self.cond_cols]
            return self._chunk(F.linear(cond, w, out.bias[self.free_rows]))
        h = F.linear(cond, inp.weight[:, self.cond_cols], inp.bias)
        for layer in self.hidden:
            h = layer(h)
        return self._chunk(F.linear(h, out.weight[self.free_rows], out.bias[self.free_rows]))

    def _chunk(self, st: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_s, t = st.chunk(2, dim=1)
        return self._clamp(raw_s), t

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Points: (conditioning, transformed) coordinates, strided views of x."""
        return x[:, self.first :: 2], x[:, 1 - self.first :: 2]

    def _merge(self, cond: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
        """Inverse of _split: interleave the two halves back into (B, D)."""
        even, odd = (free, cond) if self.first else (cond, free)
        if even.shape[1] == odd.shape[1]:
            return torch.stack((even, odd), 2).flatten(1)
        out = even.new_empty(even.shape[0], even.shape[1] + odd.shape[1])
        out[:, 0::2], out[:, 1::2] = even, odd
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.first is None:
            s, t = self._s_t(x * self.mask)
            return x * s.exp() + t, s.flatten(1).sum(1)
        cond, free = self._split(x)
        s, t = self._s_t_split(cond)
        return self._merge(cond, free * s.exp() + t), s.sum(1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        if self.first is None:
            s, t = self._s_t(y * self.mask)  # y and x agree on the conditioning entries
            return (y - t) * (-s).exp()
        cond, free = self._split(y)
        s, t = self._s_t_split(cond)
        return self._merge(cond, (free - t) * (-s).exp())


class FlowNet(nn.Module):
    """The invertible stack: `encode` x -> (z, log|det ∂z/∂x|), `decode` z -> x; shapes (B, *shape)."""

    def __init__(self, spec: DataSpec, hp: FlowHparams):
        super().__init__()
        layers: list[nn.Module] = []
        for k in range(hp.coupling_layers):
            channels = spec.shape[0]  # point coordinates, or image channels
            if hp.actnorm:
                layers.append(ActNorm((channels, 1, 1) if spec.is_image else (channels,), spec.dim))
            layers.append(AffineCoupling(_mask(spec, parity=k % 2), _conditioner(spec, hp), hp.s_clamp))
        self.layers = nn.ModuleList(layers)
        # optimizer steps taken; a buffer so a restored state_dict resumes the lr schedule
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = None
        for layer in self.layers:
            x, ld = layer(x)
            logdet = ld if logdet is None else logdet + ld
        return x, logdet

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training entry point (the one Accelerate wraps with autocast/DDP)."""
        return self.encode(x)

    @torch.no_grad()
    def data_init(self, x: torch.Tensor) -> None:
        """Initialise every ActNorm from the batch x as it arrives at that layer."""
        for layer in self.layers:
            if isinstance(layer, ActNorm) and not layer.initialized:
                layer.initialize(x)
            x, _ = layer(x)

    def needs_init(self) -> bool:
        return any(isinstance(m, ActNorm) and not m.initialized for m in self.layers)


ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


def _mask(spec: DataSpec, parity: int) -> torch.Tensor:
    """Points: alternating dimensions (D=2: alternating halves). Images: a checkerboard (1,1,H,W)."""
    if spec.is_image:
        _, h, w = spec.shape
        ij = torch.arange(h)[:, None] + torch.arange(w)[None, :]
        return ((ij + parity) % 2).float()[None, None]
    return ((torch.arange(spec.dim) + parity) % 2).float()


@torch.no_grad()
def _init_for_fan_in(layer: nn.Linear, fan_in: int) -> None:
    """Rescale nn.Linear's default init, U(±1/√in_features), to U(±1/√fan_in): the inputs it reads.

    A split coupling's first layer is built D wide but reads only its conditioning columns; the
    default init scaled for D left it √(D/fan_in) too small (8 seeds on 8gaussians: test NLL 0.011 ±
    0.008 nats worse, docs/benchmarks.md). Rescaling draws no random numbers."""
    scale = math.sqrt(layer.in_features / fan_in)
    layer.weight.mul_(scale)
    layer.bias.mul_(scale)


def _conditioner(spec: DataSpec, hp: FlowHparams) -> nn.Module:
    """s/t network whose last layer starts at zero, so each coupling starts as the identity."""
    if spec.is_image:
        net = ConvNet(spec.shape[0], 2 * spec.shape[0], hp.width, hp.blocks)
        last = net.out
    else:
        net = mlp(spec.dim, 2 * spec.dim, hp.hidden, hp.layers, act=ACTIVATIONS[hp.act])
        last = net[-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return net


class RealNVP(Family):
    """RealNVP flow; `nll` gives {"exact": (B,) nats} on points, {"dequantized": (B,) nats} on images
    (a one-sample uniform-dequantization upper bound on the discrete NLL)."""

    Hparams = FlowHparams
    tiny_hparams = MappingProxyType({"coupling_layers": 2, "hidden": 32, "width": 8, "blocks": 1, "lr_decay_steps": 40})
    nll_kinds = CONTINUOUS_DENSITY
    lecture = True  # a lecture family: its claims are tested, it decides "other families" comparisons

    def __init__(self, spec: DataSpec, hparams: FlowHparams):
        super().__init__(spec, hparams)
        if spec.dim < 2:
            raise ConfigError(f"family 'flow' needs data with >= 2 dimensions, {spec.name!r} has {spec.dim}")
        self.net = FlowNet(spec, hparams)
        # fused: one kernel over all parameters (CPU too, torch >= 2.4): ~0.3 ms a step instead of
        # ~1.4 ms for the per-tensor loop on the default-size point flow (docs/benchmarks.md)
        self.opt = torch.optim.AdamW(
            self.net.parameters(), lr=hparams.lr, weight_decay=hparams.weight_decay, fused=True
        )
        self._step: int | None = None  # mirror of the net's `steps` buffer, read once (no per-step .item())

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    # --- the bijection -------------------------------------------------------------------------
    def _flow(self) -> FlowNet:
        """The bare FlowNet (fp32, no autocast/DDP wrapper) for evaluation and sampling."""
        return self.unwrapped(self.net)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, *shape) -> z (B, *shape), log|det ∂z/∂x| (B,) in nats."""
        return self._flow().encode(x)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, *shape) -> x (B, *shape), the exact inverse of `forward`."""
        return self._flow().decode(z)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous log-density log p(x) in nats, (B,): log N(z; 0, I) + log|det ∂z/∂x|."""
        z, logdet = self.forward(x)
        return _std_normal_log_prob(z) + logdet

    # --- Family interface ----------------------------------------------------------------------
    def lr_at(self, k: int) -> float:
        """Cosine annealing from hp.lr to hp.lr_min over hp.lr_decay_steps steps, then constant."""
        hp = self.hp
        if hp.lr_decay_steps == 0:
            return hp.lr
        frac = min(k / hp.lr_decay_steps, 1.0)
        return hp.lr_min + 0.5 * (hp.lr - hp.lr_min) * (1 + math.cos(math.pi * frac))

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        flow = self._flow()
        x = self.dequantize(x)
        if self._step is None:  # first step of this run (or after a restore): read the buffers once
            self._step = int(flow.steps)
            if flow.needs_init():
                flow.data_init(x)
        z, logdet = self.net(x)  # through the (possibly) Accelerate-wrapped module
        loss = self.dequantization_nats() - (_std_normal_log_prob(z.float()) + logdet.float()).mean()
        lr = self.lr_at(self._step)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        self.backward(loss / self.spec.dim)  # per-dim scale: one lr fits 2-D points and images
        self.clip_gradients(self.opt, self.hp.grad_clip)
        self.opt.step()
        flow.steps.add_(1)
        self._step += 1
        return {"loss": loss.item()}

    @torch.no_grad()
    def nll(
        self, x: torch.Tensor, generator: torch.Generator | None = None, *, iwae_k: int | None = None
    ) -> dict[str, torch.Tensor]:
        x = self.dequantize(x.to(self.device).float(), generator)
        return {self.nll_kind: self.dequantization_nats() - self.log_prob(x)}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, *, steps: int | None = None) -> torch.Tensor:
        if steps is not None:
            raise ValueError(f"RealNVP samples in one pass; steps must be None, got {steps}")
        return self.to_data_range(self.inverse(self.randn((n, *self.spec.shape), generator)))


def _std_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over all but the batch dimension: (B, ...) -> (B,)."""
    return -0.5 * (z.flatten(1) ** 2 + LOG_2PI).sum(1)
