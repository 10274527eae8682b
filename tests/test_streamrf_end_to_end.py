"""StreamRF end to end on a generated N3DV video, as a user runs it: an ``ns-train streamrf`` run that is interrupted
mid-sequence, resumed with ``--load-dir``, then ``ns-eval`` (per-frame and mean metrics) and ``ns-render
camera-path`` across time from the held-out camera.

A 16^3 grid, 3 training cameras + cam00 held out, 3 frames of 32x32 and a few steps per phase keep each command to
nerfstudio's ~15-20 s of imports plus seconds of work.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from tests.conftest import (
    assert_succeeded,
    best_constant_psnr,
    generate_scene,
    min_frame_std,
    one_error_line,
    run_command,
    run_folder,
)

pytestmark = pytest.mark.slow

FRAMES = 3
FRAME0_STEPS, PILOT0_STEPS, PILOT_STEPS, FULL_STEPS = 12, 4, 3, 3
TOTAL_STEPS = FRAME0_STEPS + PILOT0_STEPS + (FRAMES - 1) * (PILOT_STEPS + FULL_STEPS)
TINY = [
    "--machine.device-type", "cpu",
    "--vis", "tensorboard",
    "--viewer.quit-on-train-completion", "True",
    "--steps-per-save", "1000",
    "--pipeline.model.frame0-resolutions", "8", "8", "8", "16", "16", "16",
    "--pipeline.model.frame0-upsample-every", "6",
    "--pipeline.model.frame0-steps", str(FRAME0_STEPS),
    "--pipeline.model.pilot-frame0-steps", str(PILOT0_STEPS),
    "--pipeline.model.pilot-steps", str(PILOT_STEPS),
    "--pipeline.model.steps-per-frame", str(FULL_STEPS),
    # no density warm-up, so a dozen frame-0 steps leave empty voxels below StreamRF's threshold 5 (a narrow band)
    "--pipeline.model.frame0-lr-density-delay-steps", "0",
    "--pipeline.model.dilate-after", "1",
    # 3 steps per frame at the preset's SH rates change few voxels' 27 SH values by more than its keep threshold (L1
    # 1.0): the resumed run stored 3 and 0 changed voxels for frames 1 and 2; at 0.1, 164 and 119 (uninterrupted runs
    # 88-567). (A 0.3 SH rate stored changes too, but put frames 1 and 2 below one colour for 2 of 4 seeds: MARGIN_DB.)
    "--pipeline.model.sh-keep-threshold", "0.1",
    "--pipeline.keyframe-every", "2",
    "--pipeline.datamanager.train-num-rays-per-batch", "128",
    "--pipeline.datamanager.frame0-num-rays-per-batch", "128",
    "--pipeline.model.eval-num-rays-per-chunk", "1024",
    "--experiment-name", "e2e",
]  # fmt: skip


# Tensors this small run fastest on one thread, and the CI machine's 2 cores are shared by the suite.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}

MARGIN_DB = 2.0
"""How far ns-eval's PSNR of every frame (the held-out camera) must beat the best constant colour of that frame
(19.15, 19.19, 19.30 dB). Measured: 23.77, 22.79, 23.99 dB in this suite's interrupted and resumed run; frame 0
23.66-23.88 dB, frames 1 and 2 22.76-24.47 in uninterrupted runs (seeds 42, 2, 3), i.e. at least 3.5 dB above. 2 dB fails a constant render and leaves 1.5 dB for thread
counts and platforms. (An SH rate of 0.3 for later frames, which these settings used to set, measured frames 1 and 2
at 9.3-15.0 dB for seeds 2 and 3, worse than one colour; the preset's rate never did.)"""


def heldout_frames(scene: Path) -> np.ndarray:
    """The held-out camera's frames (cam00.mp4) as ns-eval compares them, [T, H, W, 3] in [0, 1]."""
    return iio.imread(scene / "cam00.mp4", plugin="pyav").astype(np.float64) / 255.0


def store(work: Path, timestamp: str) -> Path:
    return work / "outputs" / "e2e" / "streamrf" / timestamp / "streamrf_frames"


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run 1 stops after frame 0 and part of frame 1 (as if killed); run 2 resumes it; returns run 2's config.yml."""
    work = tmp_path_factory.mktemp("streamrf_e2e")
    scene = generate_scene("n3dv", work / "scene", "--width", "32", "--height", "32", "--num-cameras", "4",
                           "--num-frames", str(FRAMES))  # fmt: skip
    data = ["n3dv-data", "--data", str(scene), "--downscale-factor", "1"]
    interrupted_at = FRAME0_STEPS + PILOT0_STEPS + PILOT_STEPS + 1  # inside frame 1's full pass
    first = run_command(
        ["ns-train", "streamrf", *TINY, "--timestamp", "first", "--max-num-iterations", str(interrupted_at), *data],
        cwd=work,
        env=ONE_THREAD,
    )
    assert_succeeded(first)
    assert "StreamRF frame 1/3" in first.stdout and "StreamRF frame 2/3" not in first.stdout
    first_store = store(work, "first")
    assert sorted(p.name for p in first_store.glob("frame_*.npz")) == ["frame_00000.npz"]
    # frame 1's pilot pass finished but its full pass did not: the pilot delta is there, frame 1 is not finished
    assert (first_store / "pilot" / "frame_00001.npz").is_file()
    frame0 = (first_store / "frame_00000.npz").read_bytes()

    second = run_command(
        ["ns-train", "streamrf", *TINY, "--timestamp", "second",
         "--load-dir", str(work / "outputs" / "e2e" / "streamrf" / "first" / "nerfstudio_models"), *data],
        cwd=work,
        env=ONE_THREAD,
    )  # fmt: skip
    assert_succeeded(second)
    assert "1 finished frame(s) taken over" in second.stdout
    assert f"{TOTAL_STEPS - FRAME0_STEPS - PILOT0_STEPS} training step(s) to go" in second.stdout
    assert "StreamRF frame 1/3" not in second.stdout and "StreamRF frame 3/3" in second.stdout
    second_store = store(work, "second")
    assert sorted(p.name for p in second_store.glob("frame_*.npz")) == [f"frame_{t:05d}.npz" for t in range(FRAMES)]
    assert (second_store / "frame_00000.npz").read_bytes() == frame0  # the finished frame is kept, not retrained
    assert (first_store / "frame_00000.npz").read_bytes() == frame0  # and the earlier run is left as it was
    assert (second_store / "keyframe_00002.npz").is_file()
    config = second_store.parent / "config.yml"
    text = config.read_text()
    for name in ("nerfstudio_methods.streamrf.trainer.StreamRFTrainerConfig",
                 "nerfstudio_methods.streamrf.pipeline.StreamRFPipelineConfig",
                 "nerfstudio_methods.streamrf.model.StreamRFModelConfig",
                 "dataparsers.n3dv.N3dvDataParserConfig"):  # fmt: skip
        assert name in text
    return config


def test_ns_eval_reports_every_frame_and_the_mean(resumed_run: Path) -> None:
    work = run_folder(resumed_run)
    result = run_command(
        ["ns-eval", "--load-config", str(resumed_run), "--output-path", "metrics.json",
         "--render-output-path", "eval_renders"],
        cwd=work,
        env=ONE_THREAD,
    )  # fmt: skip
    assert_succeeded(result)
    report = json.loads((work / "metrics.json").read_text())
    assert report["method_name"] == "streamrf"
    results = report["results"]
    per_frame = [results[f"psnr_frame_{t:04d}"] for t in range(FRAMES)]
    assert all(math.isfinite(p) and 5 < p < 60 for p in per_frame)
    assert results["psnr"] == pytest.approx(sum(per_frame) / FRAMES, rel=1e-6)
    ssim = [results[f"ssim_frame_{t:04d}"] for t in range(FRAMES)]
    assert results["ssim"] == pytest.approx(sum(ssim) / FRAMES, rel=1e-6)
    assert results["num_frames"] == FRAMES and "lpips" not in results
    # replaying the stored deltas reproduces what training saw after each frame
    log = [json.loads(line) for line in (resumed_run.parent / "streamrf_frames" / "log.jsonl").read_text().splitlines()]
    for entry in log:
        assert results[f"psnr_frame_{entry['frame']:04d}"] == pytest.approx(entry["heldout_psnr"], abs=1e-3)
    assert all(entry["phases"]["full"]["changed"] > 0 for entry in log if entry["frame"] > 0)
    # each frame is rendered from its own grid (lossless PNGs: ground truth | render)
    images = [iio.imread(work / "eval_renders" / f"eval_img_frame{t:04d}.png").astype(float) for t in range(FRAMES)]
    renders = [image[:, 32:] for image in images]
    assert all(abs(renders[0] - later).max() > 0 for later in renders[1:])
    # Every frame learned: it beats the best constant colour of its ground truth, decoded here from the video (the
    # same pixels as the ground truth half of ns-eval's images) by MARGIN_DB.
    truth = heldout_frames(work / "scene")
    assert truth.shape == (FRAMES, 32, 32, 3)
    assert all(np.array_equal(image[:, :32], 255.0 * frame) for image, frame in zip(images, truth))
    floors = [best_constant_psnr([frame]) for frame in truth]
    assert all(18.5 < floor < 20.0 for floor in floors), floors  # 19.15-19.30 dB measured
    assert all(p > floor + MARGIN_DB for p, floor in zip(per_frame, floors)), (per_frame, floors)


def test_ns_render_renders_the_held_out_camera_across_time(resumed_run: Path) -> None:
    work = run_folder(resumed_run)
    path = resumed_run.parent / "camera_paths" / "heldout_camera.json"
    camera_path = json.loads(path.read_text())
    assert [k["render_time"] for k in camera_path["camera_path"]] == [0.0, 0.5, 1.0]
    video = work / "renders" / "heldout.mp4"
    result = run_command(
        ["ns-render", "camera-path", "--load-config", str(resumed_run), "--camera-path-filename", str(path),
         "--output-path", str(video)],
        cwd=work,
        env=ONE_THREAD,
    )  # fmt: skip
    assert_succeeded(result)
    frames = iio.imread(video, plugin="pyav")
    assert frames.shape == (FRAMES, 32, 32, 3)  # one video frame per time step (small changes may not survive h264)
    # Not one colour: every frame's pixel std is above a quarter of the held-out camera's smallest (29.7 in 8-bit
    # units; ~0 for a frame in one colour after h264). Measured: 23.0 here, 22.1-23.3 in uninterrupted runs.
    truth = 255.0 * heldout_frames(work / "scene")
    assert min_frame_std(frames) > 0.25 * min_frame_std(truth), (min_frame_std(frames), min_frame_std(truth))


def kill_during_frame_2_full_pass(command: list[str], cwd: Path, killed_store: Path, settle: float = 0.0) -> int:
    """Start ``ns-train`` and ``kill -9`` it once frames 0 and 1 are stored and frame 2's pilot pass is done (its
    full pass running), ``settle`` seconds later; returns the exit status."""
    import os
    import signal
    import subprocess
    import time

    from tests.conftest import BIN

    process = subprocess.Popen(
        [str(BIN / "ns-train"), *command],
        cwd=cwd,
        env={**os.environ, **ONE_THREAD, "PYTHONWARNINGS": "ignore"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            if (killed_store / "pilot" / "frame_00002.npz").is_file():
                break
            time.sleep(0.02)
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(settle)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return process.returncode


def test_resume_after_a_hard_kill_during_a_full_pass(tmp_path: Path) -> None:
    """``kill -9`` while frame 2's full pass runs, before any checkpoint exists; then the README's resume command
    (``--load-dir <run>/nerfstudio_models``, a folder the killed run never made) finishes the stream from the frame
    store, keeping the finished frames byte for byte."""
    import signal

    frames, full_steps = 4, 200  # a long full pass: a wide window to kill the process in
    scene = generate_scene("n3dv", tmp_path / "scene", "--width", "32", "--height", "32", "--num-cameras", "4",
                           "--num-frames", str(frames))  # fmt: skip
    data = ["n3dv-data", "--data", str(scene), "--downscale-factor", "1"]
    settings = [*TINY, "--pipeline.model.steps-per-frame", str(full_steps)]
    killed_store = store(tmp_path, "killed")
    status = kill_during_frame_2_full_pass(
        ["streamrf", *settings, "--timestamp", "killed", *data], tmp_path, killed_store
    )
    assert status == -signal.SIGKILL
    finished = sorted(p.name for p in killed_store.glob("frame_*.npz"))
    assert finished == ["frame_00000.npz", "frame_00001.npz"]
    kept = {name: (killed_store / name).read_bytes() for name in finished}
    models = killed_store.parent / "nerfstudio_models"
    assert not any(models.glob("step-*.ckpt")), "the kill was meant to come before the first checkpoint"

    resumed = run_command(
        ["ns-train", "streamrf", *settings, "--timestamp", "resumed", "--load-dir", str(models), *data],
        cwd=tmp_path,
        env=ONE_THREAD,
    )
    assert_succeeded(resumed)
    assert "no checkpoint at" in resumed.stdout and "2 finished frame(s) taken over" in resumed.stdout
    assert "StreamRF frame 3/4" in resumed.stdout and "StreamRF frame 2/4" not in resumed.stdout
    resumed_store = store(tmp_path, "resumed")
    expected = [f"frame_{t:05d}.npz" for t in range(frames)]
    assert sorted(p.name for p in resumed_store.glob("frame_*.npz")) == expected
    for name, content in kept.items():
        assert (resumed_store / name).read_bytes() == content  # taken over, not retrained
        assert (killed_store / name).read_bytes() == content  # and the killed run is left as it was


def test_resume_with_nothing_to_resume_names_the_folder(tmp_path: Path) -> None:
    scene = generate_scene("n3dv", tmp_path / "scene", "--width", "32", "--height", "32", "--num-cameras", "4",
                           "--num-frames", "2")  # fmt: skip
    missing = tmp_path / "no_run" / "nerfstudio_models"
    result = run_command(
        ["ns-train", "streamrf", *TINY, "--load-dir", str(missing),
         "n3dv-data", "--data", str(scene), "--downscale-factor", "1"],
        cwd=tmp_path,
        env=ONE_THREAD,
    )  # fmt: skip
    one_error_line(result, str(missing), "nothing to resume")


def test_a_killed_run_is_evaluated_and_rendered_on_its_trained_frames_wherever_it_is_moved(tmp_path: Path) -> None:
    """``kill -9`` after 2 of 4 frames (checkpoints saved every few steps): ``ns-eval`` measures frames 0 and 1 only
    and says 2 are missing; ``ns-render`` of the held-out camera across time stops after frame 1 instead of
    repeating it; the run folder moved elsewhere (the original removed) reads its own frames and checkpoints."""
    import shutil
    import signal

    frames, full_steps = 4, 200
    scene = generate_scene("n3dv", tmp_path / "scene", "--width", "32", "--height", "32", "--num-cameras", "4",
                           "--num-frames", str(frames))  # fmt: skip
    settings = [*TINY, "--pipeline.model.steps-per-frame", str(full_steps), "--steps-per-save", "5"]
    data = ["n3dv-data", "--data", str(scene), "--downscale-factor", "1"]
    killed_store = store(tmp_path, "killed")
    # a few full-pass steps after frame 1, so that a checkpoint after frame 1 exists
    command = ["streamrf", *settings, "--timestamp", "killed", *data]
    assert kill_during_frame_2_full_pass(command, tmp_path, killed_store, settle=0.5) == -signal.SIGKILL
    run = killed_store.parent
    assert sorted(p.name for p in killed_store.glob("frame_*.npz")) == ["frame_00000.npz", "frame_00001.npz"]
    assert any((run / "nerfstudio_models").glob("step-*.ckpt"))
    assert "streamrf_frames" not in (run / "config.yml").read_text()  # the store is not pinned to this folder

    def evaluate(config: Path, output: Path) -> dict:
        result = run_command(["ns-eval", "--load-config", str(config), "--output-path", str(output)],
                             cwd=tmp_path, env=ONE_THREAD)  # fmt: skip
        assert_succeeded(result)
        text = " ".join(result.stdout.split())
        assert text.count("unfinished run: 2 of 4 frames trained") == 1, result.stdout[-2000:]
        return json.loads(output.read_text())["results"]

    results = evaluate(run / "config.yml", tmp_path / "metrics.json")
    assert results["num_frames"] == 2 and results["frames_missing"] == 2 and results["num_images"] == 2
    assert {key for key in results if key.startswith("psnr_frame_")} == {"psnr_frame_0000", "psnr_frame_0001"}
    log = [json.loads(line) for line in (killed_store / "log.jsonl").read_text().splitlines()]
    assert [entry["frame"] for entry in log] == [0, 1]
    for entry in log:  # the stored frames, as training measured them
        assert results[f"psnr_frame_{entry['frame']:04d}"] == pytest.approx(entry["heldout_psnr"], abs=1e-3)

    video = tmp_path / "heldout.mp4"
    rendered = run_command(
        ["ns-render", "camera-path", "--load-config", str(run / "config.yml"),
         "--camera-path-filename", str(run / "camera_paths" / "heldout_camera.json"), "--output-path", str(video)],
        cwd=tmp_path,
        env=ONE_THREAD,
    )  # fmt: skip
    assert_succeeded(rendered)
    assert "unfinished run: 2 of 4 frames trained" in " ".join(rendered.stdout.split())
    assert iio.imread(video, plugin="pyav").shape[0] == 2  # frames 0 and 1; frames 2 and 3 never trained

    moved = tmp_path / "elsewhere" / "killed"
    shutil.copytree(run, moved)
    shutil.rmtree(run)
    moved_results = evaluate(moved / "config.yml", tmp_path / "moved.json")
    for key, value in results.items():
        if not key.startswith(("num_rays_per_sec", "fps")):  # timings differ from run to run
            assert moved_results[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key


def test_a_schedule_that_trains_no_later_frame_is_refused_in_one_line(tmp_path: Path) -> None:
    scene = generate_scene("n3dv", tmp_path / "scene", "--width", "32", "--height", "32", "--num-cameras", "4",
                           "--num-frames", "3")  # fmt: skip
    result = run_command(
        ["ns-train", "streamrf", *TINY, "--pipeline.model.steps-per-frame", "0",
         "n3dv-data", "--data", str(scene), "--downscale-factor", "1"],
        cwd=tmp_path,
        env=ONE_THREAD,
    )  # fmt: skip
    one_error_line(result, "--pipeline.model.steps-per-frame: 0 step(s)")
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("config.yml"))
