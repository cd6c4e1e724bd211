import os
import sys

# ---- c2c-ami test rig (real Asterisk): fixtures `rig`, `rig_factory` ------------------
# They live in asterisk-test-config/rig_fixtures.py, next to the rig tool (rig.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "asterisk-test-config"))
from rig_fixtures import *  # noqa: E402,F401,F403
# ---- end of the rig block ---------------------------------------------------------------
