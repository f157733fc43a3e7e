"""Small networks shared by the families. Sizes are hyper-parameters of the family that uses them.

Shapes: MLPs map (B, D) -> (B, out); conv nets take (B, C, H, W) images with H and W divisible by 4.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def mlp(d_in: int, d_out: int, hidden: int, layers: int, act: type[nn.Module] = nn.SiLU) -> nn.Sequential:
    """`layers` hidden layers of width `hidden`; layers=0 gives a single linear map."""
    dims = [d_in] + [hidden] * layers
    mods: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        mods += [nn.Linear(a, b), act()]
    mods.append(nn.Linear(dims[-1], d_out))
    return nn.Sequential(*mods)


def _groups(ch: int) -> int:
    return math.gcd(ch, 8)


class ConvEncoder(nn.Module):
    """(B, C, H, W) -> (B, out): two stride-2 convs (H/4 × W/4 × 2·width) then a linear head."""

    def __init__(self, shape: tuple[int, int, int], out: int, width: int = 32, act=nn.SiLU):
        super().__init__()
        c, h, w = shape
        self.body = nn.Sequential(
            nn.Conv2d(c, width, 4, 2, 1),
            act(),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
            act(),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width * (h // 4) * (w // 4), out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class ConvDecoder(nn.Module):
    """(B, z) -> (B, C_out, H, W): a linear map to H/4 × W/4 × 2·width, then two 2× upsamplings."""

    def __init__(self, z_dim: int, shape: tuple[int, int, int], width: int = 32, out_channels: int | None = None):
        super().__init__()
        c, h, w = shape
        self.start = (2 * width, h // 4, w // 4)
        self.fc = nn.Linear(z_dim, math.prod(self.start))
        self.body = nn.Sequential(
            nn.SiLU(),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
            nn.SiLU(),
            nn.ConvTranspose2d(width, out_channels or c, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.fc(z).view(-1, *self.start))


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (B,) integer or float timesteps -> (B, dim) (Vaswani et al.)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.nn.functional.pad(emb, (0, dim % 2))


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, twice, with an optional additive conditioning vector."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int = 0):
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(_groups(c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.n2, self.c2 = nn.GroupNorm(_groups(c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.cond = nn.Linear(cond_dim, c_out) if cond_dim else None
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.c1(nn.functional.silu(self.n1(x)))
        if self.cond is not None and cond is not None:
            h = h + self.cond(cond)[:, :, None, None]
        h = self.c2(nn.functional.silu(self.n2(h)))
        return h + self.skip(x)


class SmallUNet(nn.Module):
    """Two-level U-Net with timestep conditioning: (B, C, H, W), (B,) -> (B, C_out, H, W)."""

    def __init__(self, channels: int, width: int = 32, out_channels: int | None = None, emb_dim: int = 128):
        super().__init__()
        self.emb_dim = emb_dim
        self.temb = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        w1, w2 = width, 2 * width
        self.inp = nn.Conv2d(channels, w1, 3, padding=1)
        self.down1 = ResBlock(w1, w1, emb_dim)
        self.pool1 = nn.Conv2d(w1, w1, 4, 2, 1)
        self.down2 = ResBlock(w1, w2, emb_dim)
        self.pool2 = nn.Conv2d(w2, w2, 4, 2, 1)
        self.mid = ResBlock(w2, w2, emb_dim)
        self.up2 = nn.ConvTranspose2d(w2, w2, 4, 2, 1)
        self.dec2 = ResBlock(2 * w2, w1, emb_dim)
        self.up1 = nn.ConvTranspose2d(w1, w1, 4, 2, 1)
        self.dec1 = ResBlock(2 * w1, w1, emb_dim)
        self.out = nn.Sequential(
            nn.GroupNorm(_groups(w1), w1), nn.SiLU(), nn.Conv2d(w1, out_channels or channels, 3, padding=1)
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """t: (B,) per-row timesteps, or (1,) shared by every row (embedded once, broadcast)."""
        e = self.temb(timestep_embedding(t, self.emb_dim))
        h1 = self.down1(self.inp(x), e)
        h2 = self.down2(self.pool1(h1), e)
        m = self.mid(self.pool2(h2), e)
        d2 = self.dec2(torch.cat([self.up2(m), h2], 1), e)
        d1 = self.dec1(torch.cat([self.up1(d2), h1], 1), e)
        return self.out(d1)


class TimeMLP(nn.Module):
    """MLP on points conditioned on a timestep: (B, D), (B,) -> (B, D_out)."""

    def __init__(self, d: int, hidden: int = 128, layers: int = 3, emb_dim: int = 32, d_out: int | None = None):
        super().__init__()
        self.emb_dim = emb_dim
        self.net = mlp(d + emb_dim, d_out or d, hidden, layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """t: (B,) per-row timesteps, or (1,) shared by every row (embedded once, broadcast)."""
        emb = timestep_embedding(t, self.emb_dim)
        return self.net(torch.cat([x, emb.expand(len(x), -1)], dim=-1))


class ConvNet(nn.Module):
    """Resolution-preserving conv net: (B, C_in, H, W) -> (B, C_out, H, W); the flow's s/t net."""

    def __init__(self, c_in: int, c_out: int, width: int = 32, blocks: int = 2):
        super().__init__()
        self.inp = nn.Conv2d(c_in, width, 3, padding=1)
        self.blocks = nn.ModuleList([ResBlock(width, width) for _ in range(blocks)])
        self.out = nn.Conv2d(width, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for b in self.blocks:
            h = b(h)
        return self.out(nn.functional.silu(h))
