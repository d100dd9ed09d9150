"""Taking the samples: one worker process per sample, rounds in a rotating order, and the command line.

Every sample is taken in a fresh interpreter (``python -m fastspawn.bench --worker IMPL WORKLOAD``,
which prints one JSON line), implementations take turns in a rotating order, and a first warm-up round
is thrown away.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from typing import Any, Optional, Sequence

from .loops import IMPLS, INSTALL, OPTIONAL, CheckError, available, check_spawner
from .plot import plot
from .report import format_summary, format_table, json_report, machine_info, summarize
from .workloads import WORKLOADS, Workload, select_workloads

__all__ = ["compare", "main", "replay", "run_worker", "sample"]


def run_worker(impl: str, wid: str, params: dict[str, Any]) -> dict[str, Any]:
    """Takes one sample in this process: ``{"metrics": {...}}`` or ``{"fail": reason}``."""
    try:
        check_spawner(impl)
        return {"metrics": WORKLOADS[wid].func(impl, **params)}
    except CheckError as e:
        return {"fail": str(e)}
    except Exception as e:
        return {"fail": f"{type(e).__name__}: {e}"}


def sample(impl: str, wid: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Takes one sample in a fresh interpreter."""
    cmd = [sys.executable, "-m", "fastspawn.bench", "--worker", impl, wid, "--params", json.dumps(params)]
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"fail": f"worker timed out after {timeout:.0f} s"}
    lines = res.stdout.decode(errors="replace").strip().splitlines()
    if res.returncode == 0 and lines:
        try:
            result: dict[str, Any] = json.loads(lines[-1])
            return result
        except ValueError:
            pass
    err = res.stderr.decode(errors="replace").strip().splitlines()
    return {"fail": f"worker exited with {res.returncode}: {err[-1] if err else '(no output)'}"}


def _progress(text: str) -> None:
    sys.stderr.write(f"\r{text:<78.78}")
    sys.stderr.flush()


def compare(args: argparse.Namespace) -> int:
    impls = [i.strip() for i in args.impls.split(",") if i.strip()] if args.impls else list(IMPLS)
    unknown = [i for i in impls if i not in IMPLS]
    if unknown:
        raise SystemExit(f"unknown implementation(s) {', '.join(unknown)}; known: {', '.join(IMPLS)}")
    for impl in [i for i in impls if i in OPTIONAL]:
        reason = available(impl)
        if reason is not None:
            print(f"{impl} is not importable ({reason}); leaving it out ({INSTALL[impl]})", file=sys.stderr)
            impls.remove(impl)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        print("--plot needs matplotlib: pip install 'fastspawn[plot]'", file=sys.stderr)
        return 2
    workloads: list[Workload] = []
    params: dict[str, dict[str, Any]] = {}
    for w in select_workloads(args.workloads):
        p = w.params_for(args.quick)
        if p is None:
            print(f"workload {w.id} ({w.title}) is left out of --quick", file=sys.stderr)
            continue
        workloads.append(w)
        params[w.id] = p
    rounds: dict[str, int] = {
        w.id: args.rounds if args.rounds is not None else (2 if args.quick else w.rounds) for w in workloads
    }

    runs: list[dict[str, Any]] = []
    total = sum(rounds[w.id] + 1 for w in workloads) * len(impls)
    started = time.monotonic()
    for w in workloads:
        for rnd in range(rounds[w.id] + 1):
            # Rotate the order every round so that no implementation always runs first or last.
            order = impls[rnd % len(impls) :] + impls[: rnd % len(impls)]
            for impl in order:
                label = "warm-up" if rnd == 0 else f"round {rnd}/{rounds[w.id]}"
                _progress(f"[{len(runs) + 1}/{total}] {w.id} {impl} {label} ...")
                t0 = time.monotonic()
                result = sample(impl, w.id, params[w.id], args.timeout)
                result["seconds"] = round(time.monotonic() - t0, 3)
                runs.append({"workload": w.id, "impl": impl, "round": rnd, "warmup": rnd == 0, **result})
    _progress("")
    sys.stderr.write("\r")

    rows = summarize(workloads, impls, runs)
    info = machine_info()
    counts = sorted(set(rounds.values()))
    if len(counts) == 1:
        rounds_text = f"median of {counts[0]} round{'s' if counts[0] != 1 else ''}"
    else:
        rounds_text = "median of " + ", ".join(
            f"{n} rounds for {', '.join(wid for wid, k in rounds.items() if k == n)}" for n in counts
        )
    print(
        f"fastspawn {info['fastspawn']} bench: Python {info['python']}, Linux {info['kernel']}, "
        f"{info['cpu_count']} CPUs; {'quick, ' if args.quick else ''}{rounds_text} after a "
        f"warm-up, each sample in a fresh process ({time.monotonic() - started:.0f} s)"
    )
    print(
        "/ floor, / asyncio: the median over rounds of this sample / the floor's (asyncio's) sample of the "
        "same round (a round runs the implementations back to back, so the machine's drift cancels), then "
        "in words; 'ranges overlap' marks a difference within the spread of the samples"
    )
    print(format_table(rows, params))
    print()
    print(format_summary(rows, params))
    fails = [r for r in rows if r.fail is not None]

    if args.json:
        config = {"quick": args.quick, "rounds": rounds, "impls": impls, "params": params}
        report = json_report(info, config, runs, rows)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        print(f"\nwrote {args.json}")
    if args.plot:
        plot(rows, args.plot, params, info)
        print(f"wrote {args.plot}")
    return 1 if fails else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastspawn.bench",
        description="Compare subprocess spawning and pipes: stock asyncio, uvloop, rsloop, fastspawn and a "
        "posix_spawn floor. Each sample runs in a fresh interpreter.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and smaller sizes (about a minute)")
    parser.add_argument("--rounds", type=int, help="measured rounds per workload (default 5, --quick 2)")
    parser.add_argument("--workloads", help="e.g. 1,2,9 (9 means 9a,9b,9c) or 9b; default all")
    parser.add_argument("--impls", help=f"comma-separated subset of {','.join(IMPLS)}; default all")
    parser.add_argument("--json", metavar="FILE", help="write raw samples, medians, ratios and machine info")
    parser.add_argument("--plot", metavar="FILE.png", help="bar chart of the ratios to asyncio (needs matplotlib)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per sample (default 300)")
    parser.add_argument(
        "--from-json", metavar="FILE", help="print the table (and --plot) of a saved --json run; measure nothing"
    )
    parser.add_argument("--worker", nargs=2, metavar=("IMPL", "WORKLOAD"), help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        impl, wid = args.worker
        print(json.dumps(run_worker(impl, wid, json.loads(args.params))))
        return 0
    if args.from_json:
        return replay(args.from_json, args.plot)
    return compare(args)


def replay(path: str, plot_path: Optional[str]) -> int:
    """The table and chart of a run saved with --json, without measuring again."""
    with open(path) as f:
        report = json.load(f)
    config = report["config"]
    params: dict[str, dict[str, Any]] = config["params"]
    workloads = [w for w in select_workloads(None) if w.id in params]
    rows = summarize(workloads, config["impls"], report["runs"])
    print(f"(from {path}: {report['machine']})")
    print(format_table(rows, params))
    print()
    print(format_summary(rows, params))
    if plot_path:
        plot(rows, plot_path, params, report["machine"])
        print(f"wrote {plot_path}")
    return 0
