"""Entry point: `python -m berth.monitor --id ID --bundle DIR ...` (see berth.monitor). May import: berth.monitor."""

import sys

from berth.monitor.main import main

sys.exit(main(sys.argv[1:]))
