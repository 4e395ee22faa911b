"""Zero-shot visual transfer: a CUT translator in front of a frozen pixel agent when the scene's look changes.

Pixel agents fail when the scene looks different from training (DMControl Generalization Benchmark, Hansen &
Wang 2021, arXiv 2011.13389). Instead of training the agent with augmentation (SODA, SVEA) or adapting it at
test time (PAD, Hansen et al. 2021, arXiv 2007.04309), a patch-contrastive translator (CUT, Park et al. 2020,
arXiv 2007.15651) trained on unpaired frames of the two looks maps each new frame back into the training
look; the agent is unchanged and no reward in the new look is used.

Modules: ``agents`` (trained agents: settings, loading, envs), ``frames`` (unpaired frame collection),
``translators`` (training and loading the translators), ``evaluation`` (returns and timing per condition),
``stats`` (two-level bootstrap intervals), ``report`` (grids, table, chart, markdown) and ``pipeline`` (the
``scv-transfer`` command, also ``python -m cut_translation.transfer``).
"""
