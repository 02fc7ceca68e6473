"""``python -m classcord.bench``: the bench command without the main CLI."""

from __future__ import annotations

import argparse
import sys

from classcord.bench.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="classcord bench", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
