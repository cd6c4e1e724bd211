#!/usr/bin/env python3
"""The rig's command line from a source checkout, with any python3 and no install:
`python3 asterisk-test-config/rig.py --help`.  The code is the c2c_rig package next to this file."""

import sys

from c2c_rig.cli import main

if __name__ == "__main__":
    sys.exit(main())
