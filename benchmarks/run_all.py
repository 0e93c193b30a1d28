"""Run every benchmark and write one markdown table.

    python benchmarks/run_all.py                 # quick sizes, < 10 minutes on 2 cores
    python benchmarks/run_all.py --full          # the sizes the issues ask for (long)
    python benchmarks/run_all.py -o benchmarks/RESULTS.md --only synth,pack

Each `benchmarks/bench_<name>.py` exposes `run(quick: bool) -> list[dict]` with keys
benchmark, value, unit, note.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = float("nan")
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Python {platform.python_version()}, "
            f"torch {torch.__version__}, no GPU" if not torch.cuda.is_available()
            else f"GPU {torch.cuda.get_device_name(0)}")


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"bench_{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="full-size measurements (slow)")
    ap.add_argument("--only", default="", help="comma-separated bench names (default: all)")
    ap.add_argument("-o", "--output", default=None, help="also write the markdown table here")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    from pgprep.cliutil import format_table

    names = sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))
    if args.only:
        names = [n for n in names if n in set(args.only.split(","))]
    rows, failed = [], 0
    for name in names:
        t0 = time.perf_counter()
        print(f"running bench_{name} ...", file=sys.stderr, flush=True)
        try:
            for r in load(name).run(quick=not args.full):
                rows.append([r["benchmark"], r["value"], r["unit"], r.get("note", "")])
        except Exception:  # noqa: BLE001 - a failing bench is reported in the table, not fatal
            failed += 1
            traceback.print_exc()
            rows.append([f"bench_{name}", "FAILED", "", "see stderr"])
        print(f"  {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    text = (f"Measured on: {machine()}; sizes: {'full' if args.full else 'quick'}\n\n"
            + format_table(rows, ["benchmark", "value", "unit", "note"]))
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
