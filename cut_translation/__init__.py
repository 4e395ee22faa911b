"""cut_translation: unpaired image-to-image translation with CUT / FastCUT (Park et al., ECCV 2020) and a
CycleGAN baseline (Zhu et al., ICCV 2017) on shared blocks.

Modules: ``networks`` (ResNet generator, PatchGAN, blur-pool), ``models`` (CUT/FastCUT, CycleGAN, GAN
losses, patch sampler, image pool), ``trainer`` (training loop, resume, collapse monitor), ``checkpoint``
(checkpoint layout and reading), ``cli``
(``scv-cut-train``, ``scv-cut-translate``, ``scv-cut-evaluate``), ``data`` (trainA/trainB datasets), ``restyle`` (the
offline ``dmc-restyle`` benchmark) and ``metrics`` (paired L1/PSNR/SSIM, FID/KID). PatchNCE itself is
``ssl_shared.losses.patch_nce_loss``.
"""
