"""Old ``gym`` as the official CURL code uses it: ``gym.Wrapper`` and ``gym.spaces`` only.

torchvision is imported here, before the official ``train.py`` imports dmc2gym (dm_control): on this
machine, importing triton (torchvision -> torch._dynamo) after dm_control's EGL libraries segfaults, and
``train.py`` imports torchvision last.
"""

import torchvision  # noqa: F401  (import order only, see above)
from gymnasium import Env, Wrapper, spaces  # noqa: F401
