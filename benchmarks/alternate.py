"""Times one `memjax` command side by side: this tree against another checkout, alternated.

    git worktree add /tmp/before 8c37866
    python benchmarks/alternate.py --before /tmp/before -n 6 -- train --set en --tasks 2 --seeds 1

Each round runs the command once with the other checkout's ``src`` first on ``PYTHONPATH`` and once
with this tree's (the order alternates from round to round), cold (``MEMJAX_CACHE=off``), and prints
the wall time of the whole process, the command's own ``time:`` line, and the medians. On a VM whose
speed drifts, only alternated runs compare: run nothing else meanwhile.

``--errors`` first runs the command once more with each checkout, untimed, with ``--out``, and compares
the per-run errors of their ``results.json`` (every task, every seed, every split): the same
arithmetic gives the same errors.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIME_LINE = re.compile(r"time: ([\d.]+)s total \(([\d.]+)s compile, ([\d.]+)s train\)")
MEAN_LINE = re.compile(r"^ mean\s+([\d.]+)", re.M)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the other checkout (its src/ is imported)")
    parser.add_argument("-n", type=int, default=4, help="rounds (each runs both; default 4)")
    parser.add_argument("--errors", action="store_true", help="first compare the per-run errors (untimed, with --out)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the memjax arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    before = Path(args.before, "src")
    if not (before / "memjax" / "__init__.py").is_file():
        parser.error(f"{before} holds no memjax package")
    if not command or args.n < 1:
        parser.error("give -n >= 1 and the memjax arguments after --")
    env = dict(os.environ, MEMJAX_CACHE="off")
    env.pop("PYTHONPATH", None)
    if args.errors and not same_errors(command, env, before):
        return 1
    walls: dict[str, list[float]] = {"before": [], "after": []}
    for r in range(args.n):
        for name in ("before", "after") if r % 2 == 0 else ("after", "before"):
            run_env = dict(env, PYTHONPATH=str(before)) if name == "before" else env
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "memjax", *command], env=run_env, capture_output=True, text=True)
            wall = time.perf_counter() - t
            if out.returncode:
                print(f"{name}: exit {out.returncode}\n{out.stderr[-2000:]}", file=sys.stderr)
                return 1
            walls[name].append(wall)
            inner = TIME_LINE.search(out.stdout + out.stderr)
            mean = MEAN_LINE.search(out.stdout)
            print(f"round {r + 1} {name:6s} wall {wall:7.2f} s"
                  + (f"  (total {inner[1]} s, compile {inner[2]} s, train {inner[3]} s)" if inner else "")
                  + (f"  mean test error {mean[1]}" if mean else ""), flush=True)
    for name, values in walls.items():
        print(f"{name:6s} median {statistics.median(values):7.2f} s  [{', '.join(f'{v:.2f}' for v in values)}]")
    return 0


def same_errors(command: list[str], env: dict, before: Path) -> bool:
    """Runs ``command --out`` with each checkout and prints whether every run's errors are the same."""
    import json

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("before", "after"):
            run_env = dict(env, PYTHONPATH=str(before)) if name == "before" else env
            out = Path(tmp, name)
            r = subprocess.run([sys.executable, "-m", "memjax", *command, "--quiet", "--out", str(out)], env=run_env,
                               capture_output=True, text=True)
            if r.returncode:
                print(f"{name}: exit {r.returncode}\n{r.stderr[-2000:]}", file=sys.stderr)
                return False
            tasks = json.loads((out / "results.json").read_text())["tasks"]
            runs[name] = {t: e["runs"] for t, e in tasks.items()}
    differ = [t for t in runs["before"] if runs["before"][t] != runs["after"].get(t)]
    count = sum(len(v) for v in runs["after"].values())
    print(f"per-run errors ({count} runs): " + ("identical" if not differ and runs["before"].keys() == runs["after"].keys()
                                                else f"differ in task(s) {', '.join(differ)}"), flush=True)
    for t in differ[:5]:
        print(f"  task {t}: before {runs['before'][t]}\n          after  {runs['after'][t]}")
    return True


if __name__ == "__main__":
    sys.exit(main())
