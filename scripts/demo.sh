#!/usr/bin/env bash
# A demo per method, each on a generated scene of its own format (no download), sized for a CPU:
#   bash scripts/demo.sh [soft-mining|infonerf|streamrf|mononerf|3da-ae]     (default: soft-mining)
#   infonerf     few-shot (4 views): the render beside the same model trained without InfoNeRF's regulariser
#   soft-mining  held-out PSNR against steps and a video: soft-mining-ngp beside the same preset with uniform sampling
#   streamrf     a multi-view video: the held-out camera's video across time
#   mononerf     a monocular video: the evaluation camera across time (static, then dynamic stage)
#   3da-ae       latent tri-planes of several scenes with a jointly trained autoencoder: per-scene held-out PSNR
# Each prints where its config, metrics and video are.   DEMO_OUTPUT=dir (default ./demo_output/<method>)
# Each ends with demo_<method>.png (its video's middle frame) and demo_<method>.json (held-out metrics, video size,
# seconds) in DEMO_OUTPUT; DEMO_RECORD=1 writes them to benchmarks/results/ instead, where the docs' pages read them.
# DEMO_STEPS=n overrides the training steps (infonerf, soft-mining, mononerf); DEMO_VIDEO_DOWNSCALE=k renders the
# training-path videos (infonerf, soft-mining) at 1/k of the training resolution (quick checks; default 1, and 0.75
# for soft-mining: 128 px from its 96 px views).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
METHOD="${1:-soft-mining}"
case "$METHOD" in
    infonerf | soft-mining | streamrf | mononerf | 3da-ae) ;;
    *) echo "error: no demo for '$METHOD' (choose infonerf, soft-mining, streamrf, mononerf or 3da-ae)" >&2; exit 2 ;;
esac
OUT="$(mkdir -p "${DEMO_OUTPUT:-$ROOT/demo_output/$METHOD}" && cd "${DEMO_OUTPUT:-$ROOT/demo_output/$METHOD}" && pwd)"
REPORT=(python "$ROOT/scripts/demo_report.py")
cd "$OUT"
rm -rf outputs renders scene metrics_*.json
if python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    DEVICE=()
    echo "[demo] CUDA found: training on the GPU"
else
    DEVICE=(--machine.device-type cpu)
    echo "[demo] no CUDA: training on the CPU (pure torch)"
fi
COMMON=("${DEVICE[@]}" --vis tensorboard --viewer.quit-on-train-completion True --experiment-name demo)
scene() { echo "[demo] generating a $1 scene in $OUT/scene"; nerfstudio-methods-scene --format "$@" --output scene --quiet; }
run_dir() { echo "outputs/demo/$1/$2"; }

# The docs' record of this demo: the middle frame of VIDEO and the held-out metrics (LABEL=ns-eval JSON pairs).
#   record_still VIDEO LABEL=METRICS...
record_still() {
    local stem="$OUT/demo_$METHOD"
    [ "${DEMO_RECORD:-0}" = 1 ] && stem="$ROOT/benchmarks/results/demo_$METHOD"
    # CPU seconds of every finished command this script ran (bash's `times`, children's user + system): unlike the
    # wall-clock seconds, not inflated by other jobs on the machine
    # (`times` runs in this shell, not in a $(...) subshell, whose children are its own)
    times > "$OUT/.demo_times"
    local cpu; cpu="$(awk 'NR == 2 { total = 0; for (i = 1; i <= 2; i++) { split($i, t, "m");
        sub("s", "", t[2]); total += t[1] * 60 + t[2] } print total }' "$OUT/.demo_times")"
    "${REPORT[@]}" still "$1" "${@:2}" --method "$METHOD" --output "$stem" --seconds "$SECONDS" --cpu-seconds "$cpu"
}

# ns-render along a run's training cameras (ordered, STEPS poses between neighbours) to renders/NAME.mp4
# at 1/DOWNSCALE of the training resolution (default: DEMO_VIDEO_DOWNSCALE, else 1; below 1 upsamples the cameras)
#   training_path_video RUN_DIR NAME STEPS [DOWNSCALE]
training_path_video() {
    ns-render interpolate --load-config "$1/config.yml" --output-path "renders/$2.mp4" --pose-source train \
        --interpolation-steps "$3" --order-poses True --frame-rate 12 \
        --downscale-factor "${4:-${DEMO_VIDEO_DOWNSCALE:-1}}"
}

# Video methods: ns-eval (per-frame metrics), then ns-render of the camera path across time that the run wrote.
#   video_across_time RUN_DIR NAME CAMERA_PATH DESCRIPTION   -> metrics_NAME.json, renders/CAMERA_PATH.mp4
video_across_time() {
    local run="$1" name="$2" path="$3"
    ns-eval --load-config "$run/config.yml" --output-path "metrics_$name.json"
    echo "[demo] ns-render: $4 across time"
    ns-render camera-path --load-config "$run/config.yml" --camera-path-filename "$run/camera_paths/$path.json" \
        --output-path "renders/$path.mp4"
    "${REPORT[@]}" summary "config=$run/config.yml" "metrics=metrics_$name.json" "video=renders/$path.mp4"
}

demo_infonerf() {
    # CPU size (README, InfoNeRF few-shot benchmark): 4 x 64 MLPs at Adam 2e-3; the preset's entropy weight (0.01
    # emptied every view in 300 steps: 15.12 dB, the all-white render's PSNR); the baseline draws no unseen rays.
    local steps="${DEMO_STEPS:-300}"
    scene blender --width 64 --height 64 --num-cameras 24 --seed 0
    local variant flags
    for variant in infonerf without_regularizer; do
        flags=(--pipeline.datamanager.num-unseen-rays 256)
        [ "$variant" = without_regularizer ] && flags=(--pipeline.model.entropy-lambda 0 --pipeline.model.kl-lambda 0
            --pipeline.datamanager.num-unseen-rays 0)
        echo "[demo] ns-train infonerf ($variant) for $steps steps on 4 of the 24 views"
        ns-train infonerf "${COMMON[@]}" --timestamp "$variant" --max-num-iterations "$steps" \
            --steps-per-save "$steps" --steps-per-eval-image "$steps" --steps-per-eval-batch "$steps" \
            --steps-per-eval-all-images "$((steps + 1))" \
            --pipeline.datamanager.train-num-rays-per-batch 256 --optimizers.fields.optimizer.lr 2e-3 \
            --pipeline.datamanager.precrop-iters "$((steps / 4))" \
            --pipeline.model.num-coarse-samples 32 --pipeline.model.num-importance-samples 32 \
            --pipeline.model.mlp-layer-width 64 --pipeline.model.coarse-mlp-num-layers 4 \
            --pipeline.model.fine-mlp-num-layers 4 "${flags[@]}" \
            blender-fewshot-data --data scene --num-train-views 4 --eval-skip 1
        ns-eval --load-config "$(run_dir infonerf "$variant")/config.yml" --output-path "metrics_$variant.json"
        training_path_video "$(run_dir infonerf "$variant")" "$variant" 6 "${DEMO_VIDEO_DOWNSCALE:-0.5}"
    done
    "${REPORT[@]}" side-by-side renders/infonerf.mp4 renders/without_regularizer.mp4 renders/infonerf_vs_plain.mp4
    "${REPORT[@]}" summary "config=$(run_dir infonerf infonerf)/config.yml" "metrics=metrics_infonerf.json" \
        "metrics_plain=metrics_without_regularizer.json" "video=renders/infonerf_vs_plain.mp4"
    record_still renders/infonerf_vs_plain.mp4 "infonerf=metrics_infonerf.json" \
        "without regularizer=metrics_without_regularizer.json"
    echo "  (the video: InfoNeRF left, the same model without the entropy regulariser right; 128 px from 64 px views)"
}

demo_soft_mining() {
    # One preset, two samplers: ns-train soft-mining-ngp (the released code's base model and recipe: hash grid, one
    # proposal network, Adam 1e-2 with cosine decay, schedule scaled to the demo's steps) and its uniform twin
    # (--pipeline.sampler uniform: a random image and pixel per ray, plain MSE). CPU size: 96 x 96 px, 256 rays,
    # 32 + 16 samples per ray. Initial density 0.1 in both arms: at the preset's 1 this model renders the white
    # background only at this size (both samplers, 15.13 dB; so did 32 x 32 px runs for some seeds).
    # Measured (2 val views, ns-train's curve): soft mining 22.5 / 25.1 / 26.0 / 26.8 / 27.9 / 28.3 / 29.0 dB at steps
    # 50-350, uniform 21.4 / 23.3 / 24.6 / 25.7 / 26.6 / 27.3 / 27.7: soft mining reaches in 250 steps what uniform
    # sampling reaches in 350.
    local steps="${DEMO_STEPS:-400}" every=50
    scene blender --width 96 --height 96 --num-cameras 24 --seed 0
    local model=(--pipeline.model.implementation torch --pipeline.model.num-proposal-samples-per-ray 32
        --pipeline.model.num-nerf-samples-per-ray 16 --pipeline.model.log2-hashmap-size 15
        --pipeline.model.average-init-density 0.1 --pipeline.model.eval-num-rays-per-chunk 4096)
    local schedule=(--max-num-iterations "$steps" --steps-per-save "$steps" --steps-per-eval-all-images "$every"
        --steps-per-eval-image "$((steps + 1))" --steps-per-eval-batch "$((steps + 1))"
        --optimizers.fields.scheduler.max-steps "$steps" --optimizers.proposal-networks.scheduler.max-steps "$steps"
        --pipeline.alpha-warmup-steps "$((steps / 20))" --pipeline.datamanager.train-num-rays-per-batch 256)
    local sampler
    for sampler in soft-mining uniform; do
        echo "[demo] ns-train soft-mining-ngp --pipeline.sampler $sampler for $steps steps (held-out PSNR every $every)"
        ns-train soft-mining-ngp "${COMMON[@]}" --timestamp "${sampler//-/_}" "${schedule[@]}" "${model[@]}" \
            --pipeline.sampler "$sampler" blender-data --data scene
        ns-eval --load-config "$(run_dir soft-mining-ngp "${sampler//-/_}")/config.yml" \
            --output-path "metrics_${sampler//-/_}.json"
    done
    echo "[demo] held-out PSNR against steps"
    "${REPORT[@]}" curves "soft mining=$(run_dir soft-mining-ngp soft_mining)" \
        "uniform=$(run_dir soft-mining-ngp uniform)" --output psnr_curves
    # videos at 128 px (training cameras upsampled from 96 px) unless DEMO_VIDEO_DOWNSCALE is set
    echo "[demo] ns-render: both models along the training cameras"
    training_path_video "$(run_dir soft-mining-ngp soft_mining)" soft_mining 2 "${DEMO_VIDEO_DOWNSCALE:-0.75}"
    training_path_video "$(run_dir soft-mining-ngp uniform)" uniform 2 "${DEMO_VIDEO_DOWNSCALE:-0.75}"
    "${REPORT[@]}" side-by-side renders/soft_mining.mp4 renders/uniform.mp4 renders/soft_mining_vs_uniform.mp4
    "${REPORT[@]}" summary "config=$(run_dir soft-mining-ngp soft_mining)/config.yml" \
        "metrics=metrics_soft_mining.json" "metrics_uniform=metrics_uniform.json" "plot=psnr_curves.png" \
        "video=renders/soft_mining_vs_uniform.mp4"
    record_still renders/soft_mining_vs_uniform.mp4 "soft mining=metrics_soft_mining.json" \
        "uniform=metrics_uniform.json"
    echo "  (the video: soft mining left, uniform sampling right)"
}

demo_streamrf() {
    scene n3dv --width 128 --height 96 --num-cameras 5 --num-frames 20 --seed 0
    echo "[demo] ns-train streamrf: frame 0 from scratch, then each frame as a change of the previous one"
    ns-train streamrf "${COMMON[@]}" --timestamp run --steps-per-save 100000 \
        --pipeline.model.frame0-resolutions 16 16 16 32 32 32 --pipeline.model.frame0-upsample-every 150 \
        --pipeline.model.frame0-steps 300 --pipeline.model.pilot-frame0-steps 40 --pipeline.model.pilot-steps 20 \
        --pipeline.model.steps-per-frame 40 --pipeline.datamanager.train-num-rays-per-batch 1024 \
        --pipeline.datamanager.frame0-num-rays-per-batch 1024 n3dv-data --data scene --downscale-factor 1
    video_across_time "$(run_dir streamrf run)" streamrf heldout_camera "the held-out camera"
    record_still renders/heldout_camera.mp4 "streamrf=metrics_streamrf.json"
}

demo_mononerf() {
    local steps="${DEMO_STEPS:-600}"
    scene nvidia-dynamic --width 128 --height 72 --num-frames 20 --seed 0
    echo "[demo] ns-train mononerf-cpu for $steps steps (static stage, then the dynamic one)"
    ns-train mononerf-cpu "${COMMON[@]}" --timestamp run --max-num-iterations "$steps" --steps-per-save "$steps" \
        --pipeline.model.static-steps "$((steps * 3 / 5))" dynamic-scene-data --data scene
    video_across_time "$(run_dir mononerf-cpu run)" mononerf fixed_camera "the evaluation camera"
    record_still renders/fixed_camera.mp4 "mononerf=metrics_mononerf.json"
}

demo_3da_ae() {
    scene srn --width 128 --height 128 --num-cameras 10 --num-instances 6 --seed 0
    echo "[demo] ns-train 3da-ae-cpu: an autoencoder from scratch, then 6 scenes of 128 px as latent tri-planes"
    ns-train 3da-ae-cpu "${COMMON[@]}" --timestamp run --pipeline.model.phases.autoencoder.epochs 10 \
        --pipeline.model.phases.latent.epochs 10 --pipeline.model.phases.joint.epochs 5 \
        --pipeline.datamanager.dataparser.num-eval-views 2 --data scene/cars_train
    local run; run="$(run_dir 3da-ae-cpu run)"
    ns-eval --load-config "$run/config.yml" --output-path metrics_3da_ae.json
    ns-render interpolate --load-config "$run/config.yml" --output-path renders/scene0.mp4 --pose-source train \
        --interpolation-steps 4 --frame-rate 12
    "${REPORT[@]}" summary "config=$run/config.yml" "metrics=metrics_3da_ae.json" "video=renders/scene0.mp4"
    record_still renders/scene0.mp4 "3da-ae=metrics_3da_ae.json"
    echo "  (metrics_3da_ae.json also holds psnr_scene_indexNN per scene)"
}

"demo_${METHOD//-/_}"
