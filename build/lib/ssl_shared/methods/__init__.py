"""SSL methods: a backbone plus heads, a loss and optional momentum/queue/memory bank, one module each.

Every method subclasses :class:`SSLMethod` (see :mod:`.base` for the contract the trainer uses) and is
reachable by name through :data:`METHODS` / :func:`build_method`::

    from ssl_shared.encoders import SmallResNet
    from ssl_shared.methods import build_method

    method = build_method("rotation", SmallResNet(3, 128), 128)
    method.validate_input((3, 32, 32))
    loss, logs = method.training_step({"image": images})
"""

from ssl_shared.methods.base import MethodEncoder, SSLMethod
from ssl_shared.methods.registry import FAMILIES, METHODS, build_method
from ssl_shared.methods.views import ViewConfig

__all__ = ["FAMILIES", "METHODS", "MethodEncoder", "SSLMethod", "ViewConfig", "build_method"]
