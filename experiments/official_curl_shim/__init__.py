"""Stand-ins for two imports of the official CURL code (MishaLaskin/curl) that cannot be installed here.

``experiments/run_official_curl.py`` puts this folder first on the official code's ``PYTHONPATH`` so that
its ``import dmc2gym`` and ``import gym`` resolve to:

- ``dmc2gym.py``: our own minimal re-implementation of dmc2gym's pixel path (dmc2gym is not on PyPI);
- ``gym/``: gymnasium's ``Wrapper`` and ``spaces`` under the old name (the official code uses no other
  part of gym; old gym does not build on Python 3.11 with current numpy).

Nothing here is imported by the suite itself; ``tests/test_official_curl.py`` checks that the
stand-in env emits the same frames and rewards as ``curl_agents.envs.make_env`` for the same seed.
"""
