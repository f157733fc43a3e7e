"""Feature extractors for the sample-quality metrics, chosen explicitly by name (never downloaded).

| eval.feature_extractor | features | where the weights come from |
|---|---|---|
| raw | the data itself (2-D coordinates / flattened pixels) | none |
| classifier | 128-d penultimate layer of a small CNN ("LeNet-FID") | trained once per dataset |
| inception-v3-compat | torch-fidelity's InceptionV3 pool3 (2048-d) | its weights_path setting |

"auto" picks raw for points and classifier for images. The classifier is trained deterministically
(fixed seed, CPU, single thread order) on the dataset's *train* split and saved under
`cache_dir/extractors/` in a file named by a hash of the training data and recipe; its weights' own
content hash goes on every result row, so two rows are comparable only if that hash matches.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from bench.errors import ConfigError
from bench.metrics.cache import (
    atomic_torch_save,
    file_hash,
    file_lock,
    safe_name,
    state_dict_hash,
    tensor_hash,
)
from bench.metrics.config import AUTO_EXTRACTOR
from bench.metrics.fidelity import FidelityExtractor, to_uint8

log = logging.getLogger(__name__)

CLASSIFIER_NAME = "genbench-classifier"  # torch-fidelity registry name of the offline extractor
CLASSIFIER_FORMAT = "genbench-classifier-v1"  # bump when the architecture or recipe changes
FEATURE_DIM = 128  # width of the feature layer used by FID/KID/PRC


class SmallClassifier(nn.Module):
    """(B, C, H, W) in [-1, 1] -> features (B, 128), logits (B, classes): 3 convs, 2 strided.

    The features are the penultimate layer standardised with the training split's per-dimension mean
    and std (buffers `shift`, `scale`, fixed after training), so FID/KID are in units of the
    training-feature spread whatever the dataset, and KID's cubic kernel (gamma = 1/F) sees O(1)
    inputs.
    """

    def __init__(self, channels: int, height: int, width: int, classes: int, hidden: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(hidden, 2 * hidden, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(2 * hidden, 2 * hidden, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Flatten(),
        )
        flat = 2 * hidden * math.ceil(math.ceil(height / 2) / 2) * math.ceil(math.ceil(width / 2) / 2)
        self.features = nn.Linear(flat, FEATURE_DIM)
        self.head = nn.Sequential(nn.SiLU(), nn.Linear(FEATURE_DIM, classes))
        self.register_buffer("shift", torch.zeros(FEATURE_DIM))
        self.register_buffer("scale", torch.ones(FEATURE_DIM))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.features(self.body(x))
        return (raw - self.shift) / self.scale, self.head(raw)


def load_classifier(path: str | Path) -> SmallClassifier:
    """Rebuild a saved classifier (weights_only: the file holds tensors and plain values only)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("format") != CLASSIFIER_FORMAT:
        raise ConfigError(f"{path}: not a {CLASSIFIER_FORMAT} file (format={blob.get('format')!r})")
    model = SmallClassifier(**blob["config"])
    model.load_state_dict(blob["state_dict"])
    return model.eval().requires_grad_(False)


def uint8_to_input(x: torch.Tensor) -> torch.Tensor:
    """uint8 on 0..255 -> the classifier's float input on [-1, 1]."""
    return x.float() / 127.5 - 1.0


def classifier_input(x: torch.Tensor, spec) -> torch.Tensor:
    """Model-space images -> exactly what the classifier sees inside torch-fidelity (via uint8)."""
    return uint8_to_input(to_uint8(x, spec))


class ClassifierExtractor(FeatureExtractorBase):
    """torch-fidelity wrapper: uint8 (B, C, H, W) on 0..255 -> (features (B, 128), logits)."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if not feature_extractor_weights_path:
            raise ConfigError(f"{name}: feature_extractor_weights_path is required (it never downloads)")
        self.net = load_classifier(feature_extractor_weights_path)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        assert x.dtype == torch.uint8 and x.dim() == 4, (x.dtype, x.shape)
        # float64 out: torch-fidelity then computes FID/KID in float64 (KID subtracts large sums)
        feats = dict(zip(("features", "logits"), (f.double() for f in self.net(uint8_to_input(x)))))
        return tuple(feats[name] for name in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return "features", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"fid": "features", "kid": "features", "prc": "features", "isc": "logits"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 1, 8, 8, dtype=torch.uint8)


# Registered at import; the guard keeps a re-import (pytest, notebooks) from raising a duplicate.
if CLASSIFIER_NAME not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(CLASSIFIER_NAME, ClassifierExtractor)


@dataclass(frozen=True)
class Extractor:
    """The resolved choice for one evaluation: `fidelity` is None for raw features."""

    name: str  # on the row: raw | genbench-classifier | inception-v3-compat
    hash: str  # content hash of the weights ('' for raw)
    fidelity: FidelityExtractor | None


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int,
    seed: int,
    batch_size: int = 128,
    lr: float = 1e-3,
) -> SmallClassifier:
    """Deterministic training on (N, C, H, W) model-space images in [-1, 1] with (N,) int64 labels.

    One CPU thread: the result (and so the extractor hash) does not depend on the machine's thread
    count, and on a shared 2-core box a single thread is also ~20× faster than two contended ones.
    """
    gen = torch.Generator().manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
            torch.manual_seed(seed)
            _, c, h, w = images.shape
            model = SmallClassifier(c, h, w, int(labels.max()) + 1)
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            for _ in range(steps):
                idx = torch.randint(len(images), (min(batch_size, len(images)),), generator=gen)
                loss = nn.functional.cross_entropy(model(images[idx])[1], labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            model.eval().requires_grad_(False)
            with torch.no_grad():
                raw = torch.cat([model.features(model.body(chunk)) for chunk in images.split(1000)])
            model.shift.copy_(raw.mean(0))
            model.scale.copy_(raw.std(0).clamp_min(1e-6))
    finally:
        torch.set_num_threads(threads)
    return model


@torch.no_grad()
def accuracy(model: SmallClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    preds = torch.cat([model(chunk)[1].argmax(1) for chunk in images.split(1000)])
    return (preds == labels).float().mean().item()


def classifier_file(dataset, cache_dir: Path, steps: int, seed: int) -> Path:
    """The classifier for `dataset`, trained on first use (locked: parallel trials train once)."""
    train_x, train_y = dataset.train(), dataset.train_labels()
    if train_y is None:
        raise ConfigError(
            f"eval.feature_extractor: dataset {dataset.spec.name!r} has no train labels for the "
            "classifier extractor; use 'inception-v3-compat' with a local weights path, or 'raw'"
        )
    train_x = classifier_input(train_x, dataset.spec)
    key = tensor_hash(train_x, train_y.long(), torch.tensor([steps, seed]))
    path = cache_dir / "extractors" / f"{safe_name('classifier', dataset.spec.name, key, CLASSIFIER_FORMAT)}.pt"
    if path.exists():
        return path
    with file_lock(path.with_suffix(".lock")):
        if not path.exists():  # another process may have finished it while we waited
            log.info(
                "training the %s extractor for %s (%d steps, seed %d)",
                CLASSIFIER_NAME,
                dataset.spec.name,
                steps,
                seed,
            )
            model = train_classifier(train_x, train_y.long(), steps=steps, seed=seed)
            test_y = dataset.test_labels()
            test_x = classifier_input(dataset.test(), dataset.spec)
            acc = accuracy(model, test_x, test_y.long()) if test_y is not None else float("nan")
            log.info("%s on %s: test accuracy %.3f", CLASSIFIER_NAME, dataset.spec.name, acc)
            _, c, h, w = train_x.shape
            config = {"channels": c, "height": h, "width": w, "classes": int(train_y.max()) + 1}
            atomic_torch_save(
                {
                    "format": CLASSIFIER_FORMAT,
                    "config": config,
                    "state_dict": model.state_dict(),
                    "test_accuracy": acc,
                    "dataset": dataset.spec.name,
                },
                path,
            )
    return path


# --- resolution: eval.feature_extractor -> Extractor ----------------------------------------------
def _raw(dataset, cfg, cache_dir: Path) -> Extractor:
    return Extractor("raw", "", None)


def _classifier(dataset, cfg, cache_dir: Path) -> Extractor:
    path = classifier_file(dataset, cache_dir, cfg.classifier_steps, cfg.classifier_seed)
    digest = state_dict_hash(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
    return Extractor(
        CLASSIFIER_NAME,
        digest,
        FidelityExtractor(CLASSIFIER_NAME, "features", str(path), digest, rgb=False),
    )


def _inception(dataset, cfg, cache_dir: Path) -> Extractor:
    path = Path(cfg.feature_extractor_weights_path).expanduser()
    if not path.is_file():  # checked here: torch-fidelity would otherwise try to download
        raise ConfigError(f"eval.feature_extractor_weights_path: no such file {str(path)!r}")
    digest = file_hash(path)
    name = "inception-v3-compat"
    return Extractor(name, digest, FidelityExtractor(name, "2048", str(path.resolve()), digest, rgb=True))


RESOLVERS: dict[str, Callable[..., Extractor]] = {
    "raw": _raw,
    "classifier": _classifier,
    "inception-v3-compat": _inception,
}
AUTO = AUTO_EXTRACTOR  # what "auto" means per data kind (defined with EvalConfig)


def resolve_extractor(dataset, cfg, cache_dir: Path) -> Extractor:
    """The extractor eval.feature_extractor asks for, with its weights ready on disk."""
    name = AUTO[dataset.spec.kind] if cfg.feature_extractor == "auto" else cfg.feature_extractor
    if name not in RESOLVERS:
        raise ConfigError(f"eval.feature_extractor must be one of auto, {', '.join(RESOLVERS)}; got {name!r}")
    if name != "raw" and not dataset.spec.is_image:
        raise ConfigError(f"eval.feature_extractor {name!r} needs images; dataset {dataset.spec.name!r} is points")
    return RESOLVERS[name](dataset, cfg, Path(cache_dir))


def label_classifier(dataset, cfg, cache_dir: Path, extractor: Extractor) -> SmallClassifier | None:
    """The classifier for the class histogram of samples (mode coverage); None without labels.

    Reuses the feature extractor's file when that is the classifier (no second data hash).
    """
    if not dataset.spec.is_image or dataset.train_labels() is None:
        return None
    if extractor.name == CLASSIFIER_NAME:
        return load_classifier(extractor.fidelity.weights_path)
    steps, seed = cfg.classifier_steps, cfg.classifier_seed
    return load_classifier(classifier_file(dataset, Path(cache_dir), steps, seed))
