"""genbench's RealNVP train step vs normflows' RealNVP, same architecture and batches.

    pip install --no-deps --target /tmp/nflib normflows     # scratch copy; not a dependency
    PYTHONPATH=/tmp/nflib python benchmarks/flow_vs_normflows.py [--steps 2000 --batch 512]

Both flows: 8 affine couplings on 2-D points, each after an ActNorm, s/t from one MLP 1 -> 128 ->
128 -> 2 (ReLU, zero-initialised last layer), N(0, I) base; Adam(W) at lr 1e-3 with a cosine decay
to 1e-5 over the run. normflows is built the way its README builds RealNVP (AffineCouplingBlock +
Permute "swap"), plus its ActNorm. Both see the same batches of 8gaussians training points; one
torch thread; steps run in interleaved chunks (order alternating) and each side's process CPU time
is summed. At the end both NLLs are measured on the dataset's test points against the true entropy.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--chunk", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hp", default="{}", help="extra genbench flow hyper-parameters, JSON")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = make_dataset("8gaussians")
    train, test = data.train(), data.test()
    true_nll = data.true_nll_nats()[0]
    torch.manual_seed(args.seed)
    ours = make_family(
        "flow", data.spec, {"batch_size": args.batch, "lr_decay_steps": args.steps, **json.loads(args.hp)}
    )
    ours.train(True)
    torch.manual_seed(args.seed)
    theirs = normflows_realnvp(ours.hp.coupling_layers, ours.hp.hidden)
    opt = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps, eta_min=1e-5)

    def their_step(x):
        loss = theirs.forward_kld(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()

    g = torch.Generator().manual_seed(args.seed)
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
        nll_ours = ours.nll(test)["exact"].mean().item()
        nll_theirs = -theirs.log_prob(test).mean().item()
    ratio = cpu["genbench"] / cpu["normflows"]
    print(
        f"| flow train step, 8gaussians, {args.steps} batches of {args.batch}, 1 thread: genbench "
        f"{1e3 * cpu['genbench'] / args.steps:.2f} ms vs normflows {1e3 * cpu['normflows'] / args.steps:.2f} ms CPU "
        f"| {ratio:.3f}× | ≤ 1.0× |"
    )
    print(
        f"| test NLL − true entropy ({true_nll:.4f} nats), {len(test)} points: genbench {nll_ours - true_nll:+.4f}, "
        f"normflows {nll_theirs - true_nll:+.4f} | {nll_ours - nll_theirs:+.4f} nats | ≤ 0 |"
    )
    assert math.isfinite(nll_ours) and math.isfinite(nll_theirs)


if __name__ == "__main__":
    main()
