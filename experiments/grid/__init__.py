"""The experiment layer: declarative grid files, one resumable runner, status, and rliable reports.

Modules: :mod:`~experiments.grid.spec` (grid files and planning), :mod:`~experiments.grid.trainers` (one
adapter per training command), :mod:`~experiments.grid.state` (run folders and per-cell records),
:mod:`~experiments.grid.launch` (local worker pool, submitit), :mod:`~experiments.grid.status`,
:mod:`~experiments.grid.report` with :mod:`~experiments.grid.rl_report` and
:mod:`~experiments.grid.table_report`, and the command line :mod:`~experiments.grid.cli`.
"""
