"""``python -m tframex_asgi`` runs the ``tframex-asgi`` command line."""

import sys

from tframex_asgi.cli import main

sys.exit(main())
