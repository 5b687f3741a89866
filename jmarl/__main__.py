"""``python -m jmarl ...`` runs the ``jmarl`` command."""

import sys

from jmarl.cli import main

sys.exit(main())
