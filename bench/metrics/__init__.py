"""Measurements a trial records: NLL (fp32), FID/KID/precision-recall through torch-fidelity, mode
coverage, sharpness, sampling speed, imputation, training cost, and the protocol stamp.

Public API: `evaluate(family, dataset, cfg, *, cache_dir, out_dir, seed)` (bench.metrics.evaluate),
`EvalConfig` (bench.metrics.config) and `TrainMonitor` (bench.metrics.cost).
"""

from bench.metrics.config import EvalConfig
from bench.metrics.cost import TrainMonitor
from bench.metrics.evaluate import evaluate

__all__ = ["EvalConfig", "TrainMonitor", "evaluate"]
