#!/usr/bin/env python3
"""The service on the GPU machine, measured against the engine's own benchmark.

Starts a coordinator and one worker per visible GPU (deploy/gpu/start-workers.sh) on
builtin:sdxl-base, runs a warm-up job and then an N-image job (1024x1024, 30 steps, CFG 6,
Euler) per dtype, then spriteforge-bench at the same batch size in the same run, and writes
one JSON report: images/min through the service (first submit to last result on disk), the
benchmark's images/min, their ratio, GPU idle time between consecutive batches (from the
render timestamps in the result sidecars), batch sizes and peak memory.

With --controls DIR (random full-size models, written there by spriteforge-bench
--write-controls unless already there) the jobs are consistent sprite sets: each item one
character (an IP-Adapter Plus on its own reference picture) over the poses of
builtin:walk-8dir (a full ControlNet on each pose), two characters for a 64-image job; the
workers get DIR's ControlNets and IP-Adapters, and the benchmark runs with the same ControlNet
and adapter.

usage: service_check.py --build DIR --out FILE [--dtypes fp16,fp8] [--images 64] [--batch 8]
       [--jobs 64,256] [--skip-bench] [--controls DIR]
"""
import argparse
import glob
import json
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import time
import urllib.request
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JOB_SIZE, JOB_STEPS = 1024, 30  # every job's image size and steps (a CPU smoke run sets smaller)
# --speedup: the manifest defaults and spriteforge-bench flags of each opt-in speed-up.
SPEEDUPS = {
    "interval": (" guidance_interval: {start: 0.0, end: 0.5},", ["--guidance-interval", "0,0.5"]),
    "deep-cache": (" deep_cache: 3,", ["--deep-cache", "3"]),
    "both": (" guidance_interval: {start: 0.0, end: 0.5}, deep_cache: 3,",
             ["--guidance-interval", "0,0.5", "--deep-cache", "3"]),
}
SPEEDUP = None  # the one chosen, or None for the exact path
# --fewstep: SDXL-Lightning's shape (4 steps, CFG 1, Euler trailing) with a random rank-64
# LoRA on every transformer Linear, uploaded with the job; spriteforge-bench writes the file.
FEWSTEP = False
FEWSTEP_LORA = "/tmp/spriteforge-bench-lora-r64-0.safetensors"
FEWSTEP_BENCH = ["--steps", "4", "--cfg", "1", "--schedule", "trailing", "--lora-rank", "64"]


def store_seconds(metrics_text):
    """Sums and counts of spriteforge_result_store_seconds by phase, from /metrics' text."""
    out = {}
    for line in metrics_text.splitlines():
        for field in ("sum", "count"):
            prefix = f"spriteforge_result_store_seconds_{field}{{phase=\""
            if line.startswith(prefix):
                phase, value = line[len(prefix):].split("\"}")
                out.setdefault(phase, {})[field] = float(value)
    return out


def gpu_clocks(samples_text):
    """The SM clock, power and temperature that nvidia-smi sampled while a phase ran (lines of
    "index, utilization %, clocks.sm MHz, power.draw W, temperature C"), over every GPU and only
    while busy (utilization >= 90%: model loading and idle clocks left out): a benchmark and a
    service run a few percent apart are compared at the clocks they ran at."""
    rows = []
    for line in samples_text.splitlines():
        try:
            utilization, *row = [float(x) for x in line.split(",")[1:5]]
        except ValueError:
            continue  # a header or a "[N/A]" field
        if utilization >= 90 and len(row) == 3:
            rows.append(row)
    if not rows:
        return {}
    clocks, power, temp = zip(*rows)
    return {"samples": len(rows), "sm_mhz_median": statistics.median(clocks), "sm_mhz_min": min(clocks),
            "power_w_mean": round(statistics.mean(power), 1), "temperature_c_max": max(temp)}


class ClockSampler:
    """nvidia-smi sampling every 200 ms for the length of a with-block; `.summary` afterwards."""

    def __enter__(self):
        self.summary = {}
        try:
            self.proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=index,utilization.gpu,clocks.sm,power.draw,temperature.gpu",
                 "--format=csv,noheader,nounits", "-lms", "200"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            self.proc = None  # no nvidia-smi (a CPU smoke run): nothing sampled
        return self

    def __exit__(self, *exc):
        if self.proc:
            self.proc.terminate()
            self.summary = gpu_clocks(self.proc.communicate(timeout=10)[0])
        return False


def log(msg):
    print(f"[service-check] {msg}", flush=True)


class Service:
    def __init__(self, build, work, logdir):
        self.build, self.work, self.logdir = build, work, logdir
        shutil.rmtree(work, ignore_errors=True)  # a ready file of an earlier run must not count
        os.makedirs(work)
        ready = os.path.join(work, "ready.json")
        self.coordinator = subprocess.Popen(
            [f"{build}/coordinator/spriteforge-coordinator", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
             "--db", f"{work}/jobs.db", "--output", f"{work}/out", "--ready-file", ready],
            stdout=open(f"{logdir}/service-coordinator.log", "w"), stderr=subprocess.STDOUT)
        for _ in range(200):
            if os.path.exists(ready):
                break
            time.sleep(0.1)
        addresses = json.load(open(ready))
        self.address, self.http = addresses["grpc"], addresses["http"]
        self.workers = None

    def store_seconds(self):
        return store_seconds(urllib.request.urlopen(f"http://{self.http}/metrics", timeout=10).read().decode())

    def client(self, *args):
        out = subprocess.run([f"{self.build}/client/spriteforge", "--coordinator", self.address, *args],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"spriteforge {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def start_workers(self, dtype, batch, tag, controls=None):
        env = dict(os.environ, SPRITEFORGE_WORKER_BIN=f"{self.build}/worker/spriteforge-worker")
        folders = [] if not controls else ["--controlnet-dir", f"{controls}/controlnet", "--ip-adapter-dir",
                                           f"{controls}/ip-adapter"]
        self.workers = subprocess.Popen(
            [f"{REPO}/deploy/gpu/start-workers.sh", "--", "--coordinator", self.address, "--model", "builtin:sdxl-base",
             "--model-name", "sdxl-base", "--dtype", dtype, "--max-batch", str(batch), *folders],
            stdout=open(f"{self.logdir}/service-workers-{tag}.log", "w"), stderr=subprocess.STDOUT, env=env,
            start_new_session=True)

    def connected_workers(self):
        return [w for w in json.loads(self.client("workers", "--json"))["workers"] if w.get("connected")]

    def stop_workers(self):
        if self.workers:
            os.killpg(self.workers.pid, signal.SIGTERM)
            self.workers.wait(timeout=60)
            self.workers = None
        for _ in range(100):  # the coordinator notices the streams closing
            if not self.connected_workers():
                return
            time.sleep(0.1)

    def run_job(self, name, images, batch_seed, controls=False):
        manifest = os.path.join(self.work, f"{name}.yaml")
        with open(manifest, "w") as f:
            sampling = (f"steps: 4, cfg: 1.0, sampler: euler, schedule: trailing, lora: [{{path: {FEWSTEP_LORA}}}],"
                        if FEWSTEP else f"steps: {JOB_STEPS}, cfg: 6.0, sampler: euler, schedule: normal,")
            f.write(f"name: {name}\nmodel: sdxl-base\n"
                    f"defaults: {{width: {JOB_SIZE}, height: {JOB_SIZE}, {sampling}" + (SPEEDUPS[SPEEDUP][0] if SPEEDUP else "") +
                    " negative: \"blurry, photo, text\"}\n")
            if controls:
                f.write(pose_identity_items(self.work, images, batch_seed))
            else:
                f.write(f"items:\n  - {{prompt: \"red potion bottle, game item icon, flat colors\", count: {images},"
                        f" seed: {batch_seed}}}\n")
        stored_before = self.store_seconds()
        t0 = time.time()
        job = self.client("submit", manifest).strip().split()[-1]
        while True:
            # The job as the API's JSON mapping: states by enum name, 64-bit integers as strings.
            status = json.loads(self.client("status", job, "--json"))["job"]
            if status["state"] in ("JOB_DONE", "JOB_FAILED", "JOB_CANCELLED"):
                break
            time.sleep(0.05)
        wall = time.time() - t0
        sidecars = [json.load(open(p)) for p in glob.glob(os.path.join(status["output_dir"], "*_*.json"))]
        # The coordinator's mean time per phase of storing this job's results ("check" per
        # batch; "sync" and "record" per group of batches stored together).
        stored = {}
        for phase, after in self.store_seconds().items():
            before = stored_before.get(phase, {})
            n = after.get("count", 0) - before.get("count", 0)
            if n > 0:
                stored[phase] = round(1000 * (after.get("sum", 0) - before.get("sum", 0)) / n, 1)
        status["store_ms_mean"] = stored
        return job, wall, status, sidecars

    def close(self):
        self.stop_workers()
        self.coordinator.terminate()
        self.coordinator.wait(timeout=30)


# The benchmark's random models (spriteforge-bench --write-controls): the full ControlNet and
# IP-Adapter Plus with its ViT-H encoder, by the names the workers' folders list them under.
CONTROLNET = "controlnet-canny-sdxl-1.0"
IP_ADAPTER = "ip-adapter-plus_sdxl_vit-h"
DIRECTIONS = ["s", "sw", "w", "nw", "n", "ne", "e", "se"]  # builtin:walk-8dir: 4 frames each


def write_png(path, width, height, pixel):
    """An 8-bit RGB PNG of pixel(x, y) -> (r, g, b), with the standard library only."""
    rows = b"".join(b"\0" + bytes(c for x in range(width) for c in pixel(x, y)) for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def pose_identity_items(work, images, seed):
    """Manifest items for `images` images (a multiple of 4): one character per 32 (a reference
    picture each, the IP-Adapter Plus), walking in 8 directions x 4 frames (the full
    ControlNet on builtin:walk-8dir's poses); a last character takes the directions left."""
    if images % 4:
        raise ValueError(f"a pose x identity job has a multiple of 4 images, not {images}")
    text, character = "items:\n", 0
    while images > 0:
        reference = os.path.join(work, f"character-{character}.png")
        if not os.path.exists(reference):
            write_png(reference, 256, 256, lambda x, y, c=character: ((x + 97 * c) % 256, (y * 3) % 256, 60 + 120 * (c % 2)))
        directions = DIRECTIONS[:min(8, images // 4)]
        text += (f"  - name: character{character}\n"
                 f"    prompt: \"full body game sprite of adventurer {character}, plain white background\"\n"
                 f"    seed: {seed + character}\n"
                 f"    set:\n      poses: builtin:walk-8dir\n      model: {CONTROLNET}\n")
        if len(directions) < 8:
            text += f"      directions: [{', '.join(directions)}]\n"
        text += (f"      reference: {{images: [{os.path.basename(reference)}], adapter: {IP_ADAPTER},"
                 " encoder: image_encoder, scale: 0.6}\n")
        images -= 4 * len(directions)
        character += 1
    return text


def analyse(wall, status, sidecars):
    done = status["counts"]["done"]
    span_s = (int(status["finished_unix_ms"]) - int(status["created_unix_ms"])) / 1000.0
    batches = {}
    for s in sidecars:
        batches.setdefault(s["batch_id"], s)
    by_worker = {}
    for b in batches.values():
        by_worker.setdefault(b["worker"], []).append(b)
    gaps, per_worker = [], {}
    for worker, bs in by_worker.items():
        bs.sort(key=lambda b: b["render_unix_ms"]["start"])
        wgaps = [bs[i + 1]["render_unix_ms"]["start"] - bs[i]["render_unix_ms"]["end"] for i in range(len(bs) - 1)]
        gaps += wgaps
        per_worker[worker] = {
            "images": sum(b["batch_size"] for b in bs), "batches": len(bs),
            "gpu_busy_s": sum(b["render_unix_ms"]["end"] - b["render_unix_ms"]["start"] for b in bs) / 1000.0,
            "idle_between_batches_ms": wgaps,
            "peak_allocated_gb": max(b["peak_memory_bytes"]["allocated"] for b in bs) / 1e9,
            "peak_reserved_gb": max(b["peak_memory_bytes"]["reserved"] for b in bs) / 1e9,
        }
    # A job's fixed cost: from its creation to the first render, and from the last render's
    # end to the job's end (the last batch's packaging, transfer and storing).
    starts = [b["render_unix_ms"]["start"] for b in batches.values()]
    ends = [b["render_unix_ms"]["end"] for b in batches.values()]
    head_ms = min(starts) - int(status["created_unix_ms"]) if starts else None
    tail_ms = int(status["finished_unix_ms"]) - max(ends) if ends else None
    sizes = {}
    for b in batches.values():
        sizes[str(b["batch_size"])] = sizes.get(str(b["batch_size"]), 0) + b["batch_size"]
    return {
        "images": done, "failed": status["counts"]["failed"], "state": status["state"],
        "wall_s": round(wall, 3), "submit_to_last_result_s": round(span_s, 3),
        "images_per_minute": round(done / span_s * 60, 2) if span_s > 0 else 0,
        "batch_sizes": sizes,
        "gpu_idle_between_batches_ms": {
            "median": statistics.median(gaps) if gaps else None, "max": max(gaps) if gaps else None,
            "count": len(gaps)},
        "first_render_after_created_ms": head_ms, "finished_after_last_render_ms": tail_ms,
        "store_ms_mean": status.get("store_ms_mean", {}),
        "package_ms_median": statistics.median(b["timings_ms"].get("package", 0) for b in batches.values()),
        "batch_total_ms_median": statistics.median(b["timings_ms"]["total"] for b in batches.values()),
        # The engine's phases per batch, to set beside the benchmark's (encode, steps, decode).
        "batch_phase_ms_median": {phase: statistics.median(b["timings_ms"].get(phase, 0) for b in batches.values())
                                  for phase in ("encode", "denoise", "decode")},
        "workers": per_worker,
    }


def expected_gpus():
    """The GPUs start-workers.sh will use: the ids in SPRITEFORGE_GPUS or
    CUDA_VISIBLE_DEVICES, else every GPU nvidia-smi lists."""
    ids = os.environ.get("SPRITEFORGE_GPUS") or os.environ.get("CUDA_VISIBLE_DEVICES")
    if ids:
        return len(ids.split(","))
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
    return max(1, len([line for line in out.splitlines() if line.startswith("GPU")]))


def bench(build, dtype, batch, logdir, controls=None):
    """spriteforge-bench at the jobs' settings (CFG 6, Euler, 30 steps, 1024x1024; with
    controls the full ControlNet and IP-Adapter Plus, one reference picture per image)."""
    tag = (f"{dtype}-controls" if controls else dtype) + (f"-{SPEEDUP}" if SPEEDUP else "") + ("-fewstep" if FEWSTEP else "")
    out = os.path.join(logdir, f"bench-service-{tag}.json")
    extra = [] if not controls else [
        "--controlnet", f"{controls}/controlnet/{CONTROLNET}", "--ip-adapter",
        f"{controls}/ip-adapter/{IP_ADAPTER}.safetensors", "--image-encoder", f"{controls}/ip-adapter/image_encoder"]
    if SPEEDUP:
        extra += SPEEDUPS[SPEEDUP][1]
    extra += FEWSTEP_BENCH if FEWSTEP else ["--cfg", "6"]
    # A few-step batch takes about a second: the median of 5 rather than one run.
    runs = "5" if FEWSTEP else "1"
    with open(f"{logdir}/bench-service-{tag}.txt", "w") as f, ClockSampler() as clocks:
        subprocess.run([f"{build}/worker/engine/bench/spriteforge-bench", "--dtypes", dtype, "--batches", str(batch),
                        "--runs", runs, "--json", out, *extra], stdout=f, stderr=subprocess.STDOUT, check=True)
    return dict(json.load(open(out))["results"][0], gpu_clocks=clocks.summary)


def write_controls(build, controls):
    """The random full-size ControlNets and IP-Adapter Plus (kept when already complete)."""
    sys.stdout.flush()
    subprocess.run([f"{build}/worker/engine/bench/spriteforge-bench", "--write-controls", controls], check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=f"{REPO}/build-gpu")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtypes", default="fp16,fp8")
    ap.add_argument("--jobs", default="64", help="image counts of the measured jobs, in order")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--skip-bench", action="store_true")
    ap.add_argument("--work", default="/tmp/spriteforge-service")
    ap.add_argument("--baseline", help="an earlier report (e.g. one GPU) to compute the speed-up against")
    ap.add_argument("--controls", help="a folder of random ControlNets and IP-Adapters: pose x identity jobs")
    ap.add_argument("--speedup", choices=["interval", "deep-cache", "both"],
                    help="jobs and benchmark with an opt-in speed-up: CFG on the first half of the steps, "
                         "deep cache every 3 steps, or both")
    ap.add_argument("--fewstep", action="store_true",
                    help="jobs and benchmark at 4 steps, CFG 1, Euler trailing, with a random rank-64 LoRA")
    a = ap.parse_args()
    global SPEEDUP, FEWSTEP
    SPEEDUP, FEWSTEP = a.speedup, a.fewstep
    logdir = os.path.dirname(os.path.abspath(a.out))
    if a.controls:
        a.controls = os.path.abspath(a.controls)
        write_controls(a.build, a.controls)
    svc = Service(a.build, a.work, logdir)
    report = {"machine": {}, "commit": os.environ.get("SPRITEFORGE_COMMIT", "unknown"), "runs": [],
              "speedup": a.speedup, "fewstep": a.fewstep,
              "controls": None if not a.controls else {
                  "controlnet": CONTROLNET, "ip_adapter": IP_ADAPTER, "poses": "builtin:walk-8dir",
                  "references_per_image": 1}}
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True).stdout.strip().splitlines()
        report["machine"] = {"gpus": gpu, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "all")}
        for dtype in a.dtypes.split(","):
            # Few-step jobs upload the LoRA file the benchmark writes: the benchmark first.
            b = bench(a.build, dtype, a.batch, logdir, a.controls) if FEWSTEP and not a.skip_bench else None
            svc.start_workers(dtype, a.batch, dtype, a.controls)
            expected = expected_gpus()
            for _ in range(1200):
                if len(svc.connected_workers()) >= expected:
                    break
                time.sleep(0.25)
            n_workers = len(svc.connected_workers())
            log(f"{dtype}: {n_workers} worker(s) connected; warm-up")
            svc.run_job(f"warmup-{dtype}", a.batch * n_workers, 1, bool(a.controls))
            for images in [int(x) for x in a.jobs.split(",")]:
                with ClockSampler() as clocks:
                    job, wall, status, sidecars = svc.run_job(f"service-{dtype}-{images}", images, 100,
                                                              bool(a.controls))
                run = {"dtype": dtype, "gpus": n_workers, "job": job, **analyse(wall, status, sidecars),
                       "gpu_clocks": clocks.summary}
                log(f"{dtype} {images} images: {run['images_per_minute']} images/min, idle median "
                    f"{run['gpu_idle_between_batches_ms']['median']} ms")
                report["runs"].append(run)
            svc.stop_workers()
            if not a.skip_bench:
                b = b or bench(a.build, dtype, a.batch, logdir, a.controls)
                for run in report["runs"]:
                    if run["dtype"] == dtype:
                        run["bench_images_per_minute"] = round(b["images_per_minute"], 2)
                        run["bench_peak_allocated_gb"] = round(b["peak_allocated_gb"], 2)
                        run["bench_gpu_clocks"] = b["gpu_clocks"]
                        run["bench_phase_ms"] = {k: round(b[k], 1) for k in ("encode_ms", "unet_step_ms", "decode_ms")
                                                 if k in b}
                        per_gpu = run["images_per_minute"] / max(1, run["gpus"])
                        run["ratio_service_per_gpu_to_bench"] = round(per_gpu / b["images_per_minute"], 4)
                log(f"{dtype} bench batch {a.batch}: {b['images_per_minute']:.2f} images/min")
                for run in report["runs"]:
                    if run["dtype"] == dtype:
                        # The service's share of the benchmark's rate (target: at least 97%).
                        log(f"{dtype} {run['images']} images: {100 * run['ratio_service_per_gpu_to_bench']:.1f}% of the "
                            f"benchmark per GPU, peak {run['bench_peak_allocated_gb']} GB in the benchmark")
        if a.baseline and os.path.exists(a.baseline):
            base = {(r["dtype"], r["images"]): r for r in json.load(open(a.baseline))["runs"]}
            for run in report["runs"]:
                b = base.get((run["dtype"], run["images"]))
                if b:
                    run["baseline_gpus"] = b["gpus"]
                    run["baseline_images_per_minute"] = b["images_per_minute"]
                    run["speedup"] = round(run["images_per_minute"] / b["images_per_minute"], 3)
                    log(f"{run['dtype']} {run['images']} images: {run['speedup']}x the {b['gpus']}-GPU run")
    finally:
        svc.close()
        with open(a.out, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
