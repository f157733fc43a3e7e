"""genbench entry point: `python run_bench.py {validate,run,list,report} ...` (bench/cli.py)."""

import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
