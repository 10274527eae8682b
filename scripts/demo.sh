#!/usr/bin/env bash
# Main job: set up the environment, generate a small sample scene (no download), train on it, evaluate it with
# ns-eval, render a video with ns-render, and print where the config, metrics JSON and video are.
#   DEMO_OUTPUT=dir (default ./demo_output)   DEMO_STEPS=n (default 800)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
OUT="$(mkdir -p "${DEMO_OUTPUT:-$ROOT/demo_output}" && cd "${DEMO_OUTPUT:-$ROOT/demo_output}" && pwd)"
STEPS="${DEMO_STEPS:-800}"
METHOD=infonerf  # InfoNeRF (CVPR'22), few-shot: trained on 4 of the 24 generated views

echo "[demo] 1/4 generating a 64x64 Blender-format scene with exact ground truth in $OUT/scene"
rm -rf "$OUT/scene"
nerfstudio-methods-scene --format blender --output "$OUT/scene" --width 64 --height 64 --num-cameras 24 --seed 0 --quiet

cd "$OUT"
if python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    DEVICE=()
    echo "[demo] CUDA found: training on the GPU"
else
    DEVICE=(--machine.device-type cpu)
    echo "[demo] no CUDA: training on the CPU (pure torch)"
fi
RUN="outputs/demo/$METHOD/latest"
rm -rf "$RUN"
echo "[demo] 2/4 ns-train $METHOD for $STEPS steps on 4 views (CPU-sized: 256 seen + 256 unseen rays, 32+32 samples, 4x64 MLPs)"
ns-train "$METHOD" "${DEVICE[@]}" --vis tensorboard --viewer.quit-on-train-completion True \
    --max-num-iterations "$STEPS" --steps-per-save "$STEPS" --steps-per-eval-image "$STEPS" \
    --steps-per-eval-batch "$STEPS" --steps-per-eval-all-images "$((STEPS + 1))" \
    --pipeline.datamanager.train-num-rays-per-batch 256 --pipeline.datamanager.num-unseen-rays 256 \
    --pipeline.datamanager.precrop-iters "$((STEPS / 4))" \
    --pipeline.model.num-coarse-samples 32 --pipeline.model.num-importance-samples 32 \
    --pipeline.model.mlp-layer-width 64 --pipeline.model.coarse-mlp-num-layers 4 --pipeline.model.fine-mlp-num-layers 4 \
    --experiment-name demo --timestamp latest \
    blender-fewshot-data --data scene --num-train-views 4 --eval-skip 1
echo "[demo] 3/4 ns-eval"
ns-eval --load-config "$RUN/config.yml" --output-path metrics.json
echo "[demo] 4/4 ns-render (orbit through the training cameras)"
ns-render interpolate --load-config "$RUN/config.yml" --output-path renders/demo.mp4 \
    --pose-source train --interpolation-steps 6 --order-poses True --frame-rate 12

python - "$OUT" "$RUN" <<'PY'
import json, sys
from pathlib import Path
out, run = Path(sys.argv[1]), sys.argv[2]
results = json.loads((out / "metrics.json").read_text())["results"]
print("\n[demo] done")
print(f"  config : {out / run / 'config.yml'}")
print(f"  metrics: {out / 'metrics.json'}  (PSNR {results['psnr']:.2f} dB, SSIM {results['ssim']:.3f}"
      + (f", LPIPS {results['lpips']:.3f})" if "lpips" in results else ", LPIPS left out: no cached AlexNet weights)"))
print(f"  video  : {out / 'renders' / 'demo.mp4'}")
PY
