"""genbench's RealNVP train step vs normflows' RealNVP, same architecture and batches.

    pip install --no-deps --target /tmp/nflib normflows     # scratch copy; not a dependency
    PYTHONPATH=/tmp/nflib python benchmarks/flow_vs_normflows.py [--steps 2000 --batch 512 --seeds 8]

Both flows: 8 affine couplings on 2-D points, each after an ActNorm, s/t from one MLP 1 -> 128 ->
128 -> 2 (ReLU, zero-initialised last layer), N(0, I) base; Adam(W) at lr 1e-3 with a cosine decay
to 1e-5 over the run. normflows is built the way its README builds RealNVP (AffineCouplingBlock +
Permute "swap"), plus its ActNorm. Both see the same batches of 8gaussians training points; one
torch thread; steps run in interleaved chunks (order alternating) and each side's process CPU time
is summed. At the end both NLLs are measured on the dataset's test points against the true entropy; a
run's NLL varies by ~0.03 nats with its seed, so the comparison is of means over --seeds seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.append(str(Path(__file__).resolve().parents[1]))  # append: a PYTHONPATH checkout wins

from bench.datasets import make_dataset  # noqa: E402
from bench.families import make_family  # noqa: E402

try:
    import normflows as nf
except ImportError:
    sys.exit("normflows is not importable: install it into a scratch folder and add it to PYTHONPATH (see top)")


def normflows_realnvp(layers: int, hidden: int):
    flows = []
    for _ in range(layers):
        flows.append(nf.flows.ActNorm((2,)))
        flows.append(nf.flows.AffineCouplingBlock(nf.nets.MLP([1, hidden, hidden, 2], init_zeros=True)))
        flows.append(nf.flows.Permute(2, mode="swap"))
    return nf.NormalizingFlow(nf.distributions.DiagGaussian(2, trainable=False), flows)


def one_seed(args, seed: int) -> tuple[dict[str, float], float, float]:
    """Both flows trained on the same batches from `seed`: (CPU seconds per side, test NLLs − entropy)."""
    data = make_dataset("8gaussians")
    train, test = data.train(), data.test()
    true_nll = data.true_nll_nats()[0]
    torch.manual_seed(seed)
    ours = make_family(
        "flow", data.spec, {"batch_size": args.batch, "lr_decay_steps": args.steps, **json.loads(args.hp)}
    )
    ours.train(True)
    torch.manual_seed(seed)
    theirs = normflows_realnvp(ours.hp.coupling_layers, ours.hp.hidden)
    opt = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps, eta_min=1e-5)

    def their_step(x):
        loss = theirs.forward_kld(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()

    g = torch.Generator().manual_seed(seed)
    batches = [train[torch.randint(len(train), (args.batch,), generator=g)] for _ in range(args.steps)]
    cpu = {"genbench": 0.0, "normflows": 0.0}
    steps = {"genbench": ours.train_step, "normflows": their_step}
    for c, start in enumerate(range(0, args.steps, args.chunk)):
        chunk = batches[start : start + args.chunk]
        for name in ("genbench", "normflows") if c % 2 == 0 else ("normflows", "genbench"):
            t = time.process_time()
            for x in chunk:
                steps[name](x)
            cpu[name] += time.process_time() - t
    ours.train(False)
    theirs.eval()
    with torch.no_grad():
        nll_ours = ours.nll(test)["exact"].mean().item() - true_nll
        nll_theirs = -theirs.log_prob(test).mean().item() - true_nll
    assert math.isfinite(nll_ours) and math.isfinite(nll_theirs)
    return cpu, nll_ours, nll_theirs


def mean_se(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) / math.sqrt(len(values))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--chunk", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=8, help="seeds 0..N-1: a run's NLL varies ~0.03 nats with its seed")
    ap.add_argument("--hp", default="{}", help="extra genbench flow hyper-parameters, JSON")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cpu = {"genbench": 0.0, "normflows": 0.0}
    ours, theirs = [], []
    for seed in range(args.seeds):
        c, a, b = one_seed(args, seed)
        cpu = {k: cpu[k] + c[k] for k in cpu}
        ours.append(a)
        theirs.append(b)
        print(f"seed {seed}: CPU ratio {c['genbench'] / c['normflows']:.3f}, NLL − entropy {a:+.4f} vs {b:+.4f}")
    (mo, so), (mt, st) = mean_se(ours), mean_se(theirs)
    n = args.steps * args.seeds
    print(
        f"| flow train step, 8gaussians, {args.steps} batches of {args.batch}, 1 thread, {args.seeds} seeds: genbench "
        f"{1e3 * cpu['genbench'] / n:.2f} ms vs normflows {1e3 * cpu['normflows'] / n:.2f} ms CPU "
        f"| {cpu['genbench'] / cpu['normflows']:.3f}× | ≤ 1.0× |"
    )
    print(
        f"| test NLL − true entropy, mean ± s.e. over {args.seeds} seeds: genbench {mo:+.4f} ± {so:.4f}, "
        f"normflows {mt:+.4f} ± {st:.4f} | {mo - mt:+.4f} ± {math.hypot(so, st):.4f} nats | ≤ 0 |"
    )


if __name__ == "__main__":
    main()
