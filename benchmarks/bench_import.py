"""Import time of ``import mimgw`` against ``import httpx, pydantic``, in fresh interpreters.

Each measure starts a new interpreter with bytecode already compiled (one warm-up run
compiles it), times the import statement inside it with ``time.perf_counter``, and
takes the median of ``--runs`` interpreters. The sides are interleaved so drift hits
both. Prints the ratio mimgw / (httpx + pydantic); the goal is at most 1.4x.

    uv run python benchmarks/bench_import.py
    uv run python benchmarks/bench_import.py --runs 31 --json import.json

Also shown, for context: the import a send through the default provider needs
(``from mimgw.providers import MimSmsV4``) and ``from mimgw import Gateway``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys

BASELINE = "import httpx, pydantic"
CASES = {
    "import mimgw": "import mimgw",
    "send path (MimSmsV4)": "import mimgw; from mimgw.providers import MimSmsV4",
    "Gateway": "from mimgw import Gateway",
}
GOAL = 1.4


def measure(statement: str) -> float:
    """Seconds the statement takes in a fresh interpreter."""
    code = f"import time; t = time.perf_counter()\n{statement}\nprint(time.perf_counter() - t)"
    out = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="interpreters per side")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()

    statements = {"baseline": BASELINE, **CASES}
    for statement in statements.values():  # compile bytecode, warm the file cache
        measure(statement)
    times: dict[str, list[float]] = {name: [] for name in statements}
    for _ in range(args.runs):
        for name, statement in statements.items():
            times[name].append(measure(statement))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["baseline"]

    print(f"python {platform.python_version()}, {args.runs} fresh interpreters per line")
    print(f"{'import':<26}{'median ms':>10}{'ratio':>8}")
    print(f"{BASELINE:<26}{base * 1000:>10.1f}{1.0:>8.2f}")
    for name in CASES:
        print(f"{name:<26}{medians[name] * 1000:>10.1f}{medians[name] / base:>8.2f}")
    ratio = medians["import mimgw"] / base
    verdict = "meets" if ratio <= GOAL else "misses"
    print(f"import mimgw / import httpx, pydantic = {ratio:.2f}x ({verdict} the {GOAL}x goal)")
    if args.json:
        result = {
            "python": platform.python_version(),
            "runs": args.runs,
            "median_seconds": medians,
            "ratios": {name: medians[name] / base for name in CASES},
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
