"""`python -m worker …` is the `mics-worker` command."""

import sys

from worker.cli import main

sys.exit(main())
