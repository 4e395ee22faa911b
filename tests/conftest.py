"""Shared test settings: headless rendering and thread count.

Tests use tiny tensors, for which one thread is fastest (OpenMP spin-waiting on a loaded 2-core
machine made multi-threaded runs several times slower); set OMP_NUM_THREADS to change it.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

import torch  # noqa: E402
import torchvision  # noqa: E402,F401  (load torchvision/triton before dm_control: the reverse order crashes under EGL)

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
