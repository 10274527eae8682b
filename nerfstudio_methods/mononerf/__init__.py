"""MonoNeRF (Tian, Du, Duan, ICCV 2023): a generalizable dynamic radiance field from monocular videos (mononerf.md)."""
