"""ssl_shared: self-supervised learning parts shared by the agents and the translation models.

Subpackages: ``augment`` (batched augmentations), ``losses`` (contrastive and pretext losses),
``encoders`` (pixel encoders), ``methods`` (SSL methods by name); modules ``momentum``
(EMA updates), ``queues`` (key queue, memory bank), ``heads`` (projection / prediction / bilinear
heads) and ``device``. Import what you need from the subpackage, e.g.
``from ssl_shared.augment import random_crop``.
"""

__version__ = "0.1.0"
