"""3Da-AE: many scenes as tri-planes in a 3D-aware latent space (Schnepf, Kassab et al., CVPR 2024 3DMV workshop).

Methods: ``rgb-triplanes`` (the paper's RGB tri-plane baseline), ``3da-ae`` (stage 1: the autoencoder trained
jointly with N latent tri-plane scenes) and ``3da-ae-exploit`` (stage 2: new scenes in the frozen latent space of a
stage-1 run), each with a ``-cpu`` preset. Brief: ``../shared/papers/3da-ae.md``.
"""
