"""``python -m n2n_core.cli``: the same as the ``n2n-core`` script."""

import sys

from n2n_core.cli.main import main

sys.exit(main())
