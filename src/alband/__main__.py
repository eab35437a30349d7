"""``python -m alband`` is the ``alband`` command."""

import sys

from alband.cli.main import main

sys.exit(main())
