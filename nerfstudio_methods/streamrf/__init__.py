"""StreamRF (Li et al., NeurIPS 2022): streaming voxel radiance fields for multi-view video, ``ns-train streamrf``.

See ../shared/papers/streamrf.md for the algorithm and the published numbers. Modules:

- :mod:`.sh`, :mod:`.grid`: degree-2 spherical harmonics and the dense voxel grid with trilinear lookup;
- :mod:`.masks`: occupancy dilation / erosion, the narrow band and pilot-mask upsampling;
- :mod:`.codec`, :mod:`.store`: compressed per-frame deltas and their atomic on-disk store;
- :mod:`.optim`: Plenoxels' masked RMSprop and learning-rate schedules;
- :mod:`.render`: NDC rays, uniform marching with empty-space skipping (pure torch) and nerfacc's CUDA sampler;
- :mod:`.model`, :mod:`.datamanager`, :mod:`.pipeline`, :mod:`.trainer`, :mod:`.config`: the nerfstudio method.
"""
