"""Run the CLI as ``python -m bosun``."""

from bosun.cli import main

raise SystemExit(main())
