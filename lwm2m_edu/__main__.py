"""``python -m lwm2m_edu`` runs the ``lwm2m-edu`` command."""

import sys

from .cli import main

sys.exit(main())
