"""Run the benchmarks and write the report: ``python -m bench [--smoke] [--only NAME] [--out PATH]``.

Needs root, runc, conmon and busybox-static, like the ``runc`` tests. Every container and
process a group starts is ended by that group, whether it finishes or fails.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import appends, concurrency, lifecycle, listing, memory, recovery, replay
from bench.common import REPOSITORY, Section, Sizes
from bench.report import write_plot, write_report
from tests.daemon_support import missing_real_runtime

GROUPS: dict[str, Callable[[Sizes], Section]] = {
    "lifecycle": lifecycle.run,
    "concurrency": concurrency.run,
    "cli": listing.run,
    "journal": appends.run,
    "replay": replay.run,
    "memory": memory.run,
    "recovery": recovery.run,
}
PLOT_NAME = "bench-latency.png"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that everything runs, in about a minute")
    parser.add_argument("--only", choices=sorted(GROUPS), action="append", metavar="NAME",
                        help=f"run only this group; repeat for more (groups: {', '.join(GROUPS)})")
    parser.add_argument("--out", type=Path, default=REPOSITORY / "docs" / "benchmarks.md",
                        help=f"the Markdown report to write; the plot goes beside it as {PLOT_NAME} "
                        "(default: docs/benchmarks.md)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    reason = missing_real_runtime()
    if reason is not None:
        print(f"python -m bench: cannot run: {reason}", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sizes = Sizes.smoke() if args.smoke else Sizes()
    names = args.only or list(GROUPS)

    load_before = os.getloadavg()
    began = time.perf_counter()
    sections: list[Section] = []
    failed = []
    for name in names:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        group_began = time.perf_counter()
        try:
            section = GROUPS[name](sizes)
        except Exception as exc:  # one broken group must not lose the others' results
            traceback.print_exc()
            failed.append(name)
            section = Section(name, name.capitalize(), f"This group failed: {type(exc).__name__}: {exc}")
        print(f"bench: {name} took {time.perf_counter() - group_began:.1f} s", file=sys.stderr, flush=True)
        sections.append(section)

    plot_path = args.out.with_name(PLOT_NAME)
    lifecycle_samples = next((s.samples for s in sections if s.name == "lifecycle"), {})
    plotted = write_plot(plot_path, {key: lifecycle_samples.get(key, []) for key in ("bosun run --rm", "runc run")})
    bench_args = list(argv) if argv is not None else sys.argv[1:]
    command = shlex.join(["python", "-m", "bench", *bench_args])
    load_after = os.getloadavg()
    load = (
        f"Load average (1, 5, 15 min) was {_loads(load_before)} at the start and {_loads(load_after)} "
        f"at the end, on {os.cpu_count()} cores; other work on the machine counts in it."
    )
    write_report(args.out, sections, command=command, smoke=args.smoke, duration=time.perf_counter() - began,
                 plot=plot_path if plotted else None, preamble=[load])
    print(f"bench: wrote {args.out}" + (f" and {plot_path}" if plotted else ""), file=sys.stderr)
    if failed:
        print(f"bench: failed groups: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _loads(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


if __name__ == "__main__":
    sys.exit(main())
