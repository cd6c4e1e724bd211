"""``python -m c2c_ami --config ...``"""
import sys

from .cli import main

sys.exit(main())
