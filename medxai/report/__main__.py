"""Entry point of ``python -m medxai.report RUN_DIR``."""

import sys

from medxai.report.cli import main

sys.exit(main())
