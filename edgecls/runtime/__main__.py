"""``python -m edgecls.runtime classify MODEL IMAGE...``: the runtime's own command line."""
import sys

from edgecls.runtime.cli import main

sys.exit(main(prog="python -m edgecls.runtime"))
