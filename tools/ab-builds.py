"""A/B of two builds of fastspawn on one bench workload, alternating in one run.

Each venv has a different build installed (e.g. a wheel of the branch point in
``.venv-before``, ``maturin develop --release`` in ``.venv``). For each round, every cell
(venv, implementation) runs one sample in a fresh interpreter through the bench's own
worker (``python -m fastspawn.bench --worker``), the order reversed every other round so
neither build always runs first on a drifting machine. Prints each cell's median and the
medians of same-round ratios to the first cell.

    python tools/ab-builds.py --rounds 11 --workload 6 --params '{"nbytes": 268435456}' \\
        before=.venv-before/bin/python:fastspawn after=.venv/bin/python:fastspawn \\
        before=.venv-before/bin/python:floor before=.venv-before/bin/python:asyncio
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workload", default="6")
    parser.add_argument("--params", default='{"nbytes": 268435456}', help="the workload's parameters, as JSON")
    parser.add_argument("cells", nargs="+", metavar="LABEL=PYTHON:IMPL")
    args = parser.parse_args()
    cells = []
    for spec in args.cells:
        label, rest = spec.split("=", 1)
        python, impl = rest.rsplit(":", 1)
        cells.append((label, os.path.abspath(python), impl))
    samples: dict[int, list[dict[str, float]]] = {i: [] for i in range(len(cells))}
    # Outside the work tree, so each venv imports its own installed build.
    with tempfile.TemporaryDirectory() as cwd:
        for r in range(args.rounds):
            order = list(range(len(cells)))
            if r % 2:
                order.reverse()
            for i in order:
                _, python, impl = cells[i]
                cmd = [python, "-m", "fastspawn.bench", "--worker", impl, args.workload, "--params", args.params]
                out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, check=True).stdout
                samples[i].append(json.loads(out)["metrics"])
    metrics = list(samples[0][0])
    for metric in metrics:
        print(f"== {metric}")
        for i, (label, _, impl) in enumerate(cells):
            values = [s[metric] for s in samples[i]]
            print(f"{label:>10} {impl:<10} median {statistics.median(values):14.4g}  {[round(v, 4) for v in values]}")
        for i in range(1, len(cells)):
            ratios = [a[metric] / b[metric] for a, b in zip(samples[i], samples[0], strict=True) if b[metric]]
            if ratios:
                label, _, impl = cells[i]
                base = f"{cells[0][0]} {cells[0][2]}"
                print(f"{label} {impl} / {base}: {statistics.median(ratios):.3f} (median of same-round ratios)")


if __name__ == "__main__":
    main()
