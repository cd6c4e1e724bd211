"""`python -m c2c_rig ...`: the same command line as rig.py and c2c-rig."""

import sys

from c2c_rig.cli import main

if __name__ == "__main__":
    sys.exit(main())
