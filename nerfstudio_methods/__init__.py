"""nerfstudio plugins for StreamRF, MonoNeRF, Soft Mining, 3Da-AE and InfoNeRF.

The modules that nerfstudio loads through entry points call :func:`nerfstudio_methods.compat.install`; importing
the package itself stays light (no torch), so tools such as the scene generator start fast.
"""
