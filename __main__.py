"""``python -m <this folder> run|batch|download ...``: the headless client (see ``headless/cli.py``)."""
import sys

from .headless.cli import main

sys.exit(main())
