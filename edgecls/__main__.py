"""``python -m edgecls`` is the ``edgecls`` command."""
import sys

from edgecls.cli import main

sys.exit(main())
