"""The StyleGAN2-ADA training loop (NVIDIA's `training_loop` structure, one function per concern).

One iteration ("batch_idx") shows `batch_size` real images over all ranks: for each phase due this iteration
(Gmain every step, Greg every 4th, Dmain every step, Dreg every 16th) the phase's network gets gradients from
`StyleGAN2Loss`, they are averaged over ranks (non-finite values cleaned), and its Adam steps. Then G_ema
follows G, ADA adjusts p every 4 iterations, and every `kimg_per_tick` kimg a tick prints progress and writes
stats; every `snapshot_ticks` ticks a snapshot, image grid and metrics. A SIGINT/SIGTERM writes a last snapshot.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medgan_core.loss import StyleGAN2Loss
from medgan_core.training import distributed as distrib
from medgan_core.training.dataset import ImageFolderDataset, InfiniteSampler
from medgan_core.training.snapshot import (
    is_training_snapshot,
    load_snapshot,
    restore_optimizers,
    restore_rng_state,
    save_snapshot,
    snapshot_name,
    weights_digest,
)
from medgan_core.training.stats import RunLogger, StatsCollector, scalar_entry
from medgan_core.utils.images import image_grid, images_to_uint8, uint8_to_float
from medgan_core.utils.io import atomic_write, save_png

GRID_SHAPE = (8, 4)  # images per row, rows of reals.png / fakes*.png


@dataclass
class Phase:
    name: str  # 'Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg' or 'Dboth'
    module: torch.nn.Module
    opt: torch.optim.Optimizer
    interval: int


class StopRequest:
    """Turns SIGINT / SIGTERM into a flag the loop checks once per iteration (then snapshots and exits)."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (e.g. a test runner's worker)
                pass

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, _frame) -> None:
        if self.signum is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"\nSignal {signal.Signals(signum).name}: finishing the step, writing a snapshot, then exiting.",
            flush=True,
        )


# ---- building blocks ---------------------------------------------------------------------------------------
def build_networks(config: dict, device: torch.device):
    from medgan_core.networks import Discriminator, Generator

    G = Generator(**copy.deepcopy(config["G_kwargs"])).train().requires_grad_(False).to(device)
    D = Discriminator(**copy.deepcopy(config["D_kwargs"])).train().requires_grad_(False).to(device)
    G_ema = copy.deepcopy(G).eval()
    return G, D, G_ema


def build_augment(config: dict, device: torch.device, world_size: int):
    """(augment_pipe, ada controller) for --aug ada / fixed; (None, None) for noaug."""
    if config["augment_kwargs"] is None:
        return None, None
    from medgan_core.augment import AdaController, make_augment_pipe

    pipe = make_augment_pipe(config["augment_kwargs"]["preset"]).train().requires_grad_(False).to(device)
    pipe.p.copy_(torch.as_tensor(config["augment_p"]))
    ada = None
    if config["ada_target"] is not None:
        ada = AdaController(
            pipe,
            target=config["ada_target"],
            interval=config["ada_interval"],
            kimg=config["ada_kimg"],
            batch_size=config["batch_size"],
        )
    return pipe, ada


def build_phases(config: dict, G, D) -> list[Phase]:
    """Main and lazy-regularisation phases; the reg phases' Adam uses lr * r and betas ** r, r = k / (k + 1)."""
    phases = []
    for name, module, opt_kwargs, reg_interval in [
        ("G", G, config["G_opt_kwargs"], config["G_reg_interval"]),
        ("D", D, config["D_opt_kwargs"], config["D_reg_interval"]),
    ]:
        params = list(module.parameters())
        if reg_interval is None:
            opt = torch.optim.Adam(
                params, lr=opt_kwargs["lr"], betas=tuple(opt_kwargs["betas"]), eps=opt_kwargs["eps"]
            )
            phases.append(Phase(name + "both", module, opt, 1))
        else:
            mb_ratio = reg_interval / (reg_interval + 1)
            betas = tuple(beta**mb_ratio for beta in opt_kwargs["betas"])
            opt = torch.optim.Adam(params, lr=opt_kwargs["lr"] * mb_ratio, betas=betas, eps=opt_kwargs["eps"])
            phases.append(Phase(name + "main", module, opt, 1))
            phases.append(Phase(name + "reg", module, opt, reg_interval))
    return phases


def memory_stats(device: torch.device) -> dict[str, dict]:
    entries = {}
    try:
        with open("/proc/self/status") as f:
            rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        entries["Resources/cpu_mem_gb"] = scalar_entry(rss_kb / 2**20)
    except (OSError, StopIteration):
        pass
    if device.type == "cuda":
        entries["Resources/peak_gpu_mem_gb"] = scalar_entry(torch.cuda.max_memory_allocated(device) / 2**30)
        torch.cuda.reset_peak_memory_stats(device)
    return entries


# ---- resume ------------------------------------------------------------------------------------------------
def resume_from(
    path: str, G, D, G_ema, augment_pipe, device: torch.device, log, report_path: Path | None = None
) -> dict | None:
    """Load our snapshot (returns its training state) or transfer weights from another network (returns None)."""
    if is_training_snapshot(path):
        snapshot = load_snapshot(path, device=device)
        for name, module in [("G", G), ("D", D), ("G_ema", G_ema)]:
            module.load_state_dict(snapshot["networks"][name].state_dict())
        if augment_pipe is not None and "augment_pipe" in snapshot["networks"]:
            augment_pipe.load_state_dict(snapshot["networks"]["augment_pipe"].state_dict())
        state = dict(snapshot["record"]["training_state"])
        state["snapshot"] = snapshot
        log(
            f"Resuming from {path}: kimg {state['cur_nimg'] / 1000:.1f}, tick {state['cur_tick']}, "
            f"augment p {state.get('augment_p', 0):.4f}"
        )
        return state
    from medgan_core.checkpoint import load_network, transfer_weights

    source = load_network(path, device="cpu")
    lines = [f"Transfer learning from {path} ({source.get('source')}); augment p starts at 0, kimg at 0"]
    for name, module in [("G", G), ("D", D), ("G_ema", G_ema)]:
        src = source.get(name)
        lines.append(
            f"{name}: not in {path}, left at initialisation"
            if src is None
            else f"{name}: {transfer_weights(src, module)}"
        )
    log("\n".join(lines))
    if report_path is not None:
        with atomic_write(report_path, "wt") as f:
            f.write("\n".join(lines) + "\n")
    return None


# ---- the loop ----------------------------------------------------------------------------------------------
def training_loop(
    config: dict,
    run_dir: str,
    dist_info: distrib.DistInfo,
    options: dict,
    resume: str | None = None,
    debug_hashes: bool = False,
    progress=print,
) -> dict:
    """Train until `config['total_kimg']` or a stop signal; returns {'kimg', 'tick', 'stopped_by'}."""
    rank, world, device = dist_info.rank, dist_info.world_size, dist_info.device
    is_main = rank == 0
    log = progress if is_main else (lambda *_a, **_k: None)
    run_path = Path(run_dir)
    start_time = time.time()

    # determinism: each rank its own stream, reproducible from the seed
    seed = config["random_seed"] * world + rank
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = config["cudnn_benchmark"]
    torch.backends.cuda.matmul.allow_tf32 = False  # as NVIDIA: fp32 means fp32 (mixed precision is explicit)
    torch.backends.cudnn.allow_tf32 = False

    # data
    dataset = ImageFolderDataset(**config["training_set_kwargs"])
    log(
        f"Dataset {dataset.path}: {len(dataset)} images (x-flips included), {dataset.num_channels} channel(s), "
        f"{dataset.resolution}x{dataset.resolution}, labels {dataset.label_dim}"
    )

    # networks, augmentation, resume
    G, D, G_ema = build_networks(config, device)
    augment_pipe, ada = build_augment(config, device, world)
    state = None
    if resume is not None:
        report_path = run_path / "transfer_report.txt" if is_main else None
        state = resume_from(resume, G, D, G_ema, augment_pipe, device, log, report_path)
        if state is None and augment_pipe is not None:  # transfer learning: p starts at 0 as a fresh run
            augment_pipe.p.zero_()
    for module in (G, D, G_ema, augment_pipe):
        distrib.broadcast_module(module)

    stats = StatsCollector(device)
    loss = StyleGAN2Loss(device, G, D, augment_pipe=augment_pipe, stats=stats, ada=ada, **config["loss_kwargs"])
    phases = build_phases(config, G, D)
    optimizers = {"G": phases[0].opt, "D": phases[-1].opt}

    cur_nimg, cur_tick, batch_idx = 0, 0, 0
    best = None
    if state is not None:
        cur_nimg, cur_tick, batch_idx = state["cur_nimg"], state["cur_tick"] + 1, state["batch_idx"]
        restore_optimizers(optimizers, state["snapshot"])
        loss.pl_mean.fill_(state.get("pl_mean", 0.0))
        if ada is not None and state.get("ada") is not None:
            ada.load_state_dict(state["ada"])
        best = state.get("best")
        if is_main:
            restore_rng_state(state["snapshot"]["extra_tensors"], state["rng"])
        else:
            torch.manual_seed(seed + cur_nimg)
            np.random.seed((seed + cur_nimg) % (1 << 31))
        del state["snapshot"]

    sampler_seed = config["random_seed"] + cur_nimg  # a resumed run draws a fresh (still seeded) image order
    sampler = InfiniteSampler(dataset, rank=rank, num_replicas=world, seed=sampler_seed)
    loader = torch.utils.data.DataLoader(
        dataset,
        sampler=sampler,
        batch_size=config["batch_size"] // world,
        num_workers=config["num_workers"],
        pin_memory=device.type == "cuda",
        prefetch_factor=2 if config["num_workers"] > 0 else None,
        worker_init_fn=_seed_worker if config["num_workers"] > 0 else None,
    )
    data_iter = iter(loader)

    # image grids (rank 0): fixed reals and fixed latents
    grid_z = grid_c = None
    if is_main:
        grid_count = min(GRID_SHAPE[0] * GRID_SHAPE[1], len(dataset))
        grid_gen = np.random.RandomState(config["random_seed"])
        grid_idx = grid_gen.choice(len(dataset), grid_count, replace=False)
        reals = np.stack([dataset[int(i)][0] for i in grid_idx]).transpose(0, 2, 3, 1)
        save_png(image_grid(reals, GRID_SHAPE[0]), run_path / "reals.png")
        grid_z = torch.from_numpy(grid_gen.randn(grid_count, G.z_dim).astype(np.float32)).to(device)
        grid_c = torch.from_numpy(np.stack([dataset.get_label(int(i)) for i in grid_idx])).to(device)
        _save_fakes(G_ema, grid_z, grid_c, run_path / "fakes_init.png")

    logger = RunLogger(run_path) if is_main else None
    stop = StopRequest()
    stop.install()
    batch_size, batch_gpu = config["batch_size"], config["batch_gpu"]
    total_nimg = int(config["total_kimg"] * 1000)
    tick_start_nimg, tick_start_time = cur_nimg, time.time()
    maintenance_time = tick_start_time - start_time
    stopped_by = None
    log(f"Training for {config['total_kimg']} kimg from kimg {cur_nimg / 1000:.1f}...")

    try:
        while True:
            # fetch one iteration's reals (per rank) and latents (per phase), split into batch_gpu rounds
            real_img, real_c = next(data_iter)
            real_img = uint8_to_float(real_img.to(device)).split(batch_gpu)
            real_c = real_c.to(device).split(batch_gpu)
            local_batch = batch_size // world
            all_gen_z = torch.randn([len(phases) * local_batch, G.z_dim], device=device)
            all_gen_z = [z.split(batch_gpu) for z in all_gen_z.split(local_batch)]
            label_idx = np.random.randint(len(dataset), size=len(phases) * local_batch)
            all_gen_c = torch.from_numpy(np.stack([dataset.get_label(int(i)) for i in label_idx])).to(device)
            all_gen_c = [c.split(batch_gpu) for c in all_gen_c.split(local_batch)]

            for phase, phase_z, phase_c in zip(phases, all_gen_z, all_gen_c):
                if batch_idx % phase.interval != 0:
                    continue
                phase.opt.zero_grad(set_to_none=True)
                phase.module.requires_grad_(True)
                for r_img, r_c, g_z, g_c in zip(real_img, real_c, phase_z, phase_c):
                    loss.accumulate_gradients(
                        phase=phase.name,
                        real_img=r_img,
                        real_c=r_c,
                        gen_z=g_z,
                        gen_c=g_c,
                        gain=phase.interval,
                        cur_nimg=cur_nimg,
                    )
                phase.module.requires_grad_(False)
                distrib.all_reduce_gradients(list(phase.module.parameters()), world)
                phase.opt.step()

            _update_ema(G, G_ema, config, cur_nimg, batch_size)
            cur_nimg += batch_size
            batch_idx += 1
            if ada is not None:
                ada.step()

            stop_now = distrib.any_rank(stop.signum is not None, device)
            done = cur_nimg >= total_nimg or stop_now
            if not done and cur_nimg < tick_start_nimg + config["kimg_per_tick"] * 1000:
                continue

            # ---- tick ----
            tick_end_time = time.time()
            tick_stats = stats.collect(names_on_all_ranks=_STAT_NAMES)
            tick_kimg = (cur_nimg - tick_start_nimg) / 1000
            p_now = float(augment_pipe.p) if augment_pipe is not None else 0.0
            tick_stats.update(
                {
                    "Progress/tick": scalar_entry(cur_tick),
                    "Progress/kimg": scalar_entry(cur_nimg / 1000),
                    "Progress/augment": scalar_entry(p_now),
                    "Timing/total_sec": scalar_entry(tick_end_time - start_time),
                    "Timing/sec_per_tick": scalar_entry(tick_end_time - tick_start_time),
                    "Timing/sec_per_kimg": scalar_entry((tick_end_time - tick_start_time) / max(tick_kimg, 1e-8)),
                    "Timing/maintenance_sec": scalar_entry(maintenance_time),
                    **memory_stats(device),
                }
            )
            if ada is not None and ada.last_sign is not None:
                tick_stats["Progress/ada_rt"] = scalar_entry(ada.last_sign)
            if is_main:
                logger.write(tick_stats, cur_nimg / 1000)
                log(_tick_line(tick_stats))

            if done or (cur_tick > 0 and cur_tick % config["snapshot_ticks"] == 0):
                maint_start = time.time()
                if is_main:
                    _save_fakes(G_ema, grid_z, grid_c, run_path / f"fakes{cur_nimg // 1000:06d}.png")
                snap_path = run_path / snapshot_name(cur_nimg)
                train_state = dict(
                    cur_nimg=cur_nimg,
                    cur_tick=cur_tick,
                    batch_idx=batch_idx,
                    augment_p=p_now,
                    pl_mean=float(loss.pl_mean),
                    ada=ada.state_dict() if ada is not None else None,
                    best=best,
                )
                write_snapshot = functools.partial(
                    save_snapshot, snap_path, G=G, D=D, G_ema=G_ema, augment_pipe=augment_pipe,
                    optimizers=optimizers, state=train_state, options=options,
                )  # fmt: skip

                if is_main:
                    write_snapshot()
                distrib.barrier()
                best = _evaluate_metrics(
                    config, G_ema, dataset, dist_info, run_path, snap_path, cur_nimg, best, logger, log
                )
                if is_main and best is not None and best.get("snapshot") == snap_path.name:
                    # rewrite the record so that a resume from the best snapshot knows it is the best
                    train_state["best"] = best
                    write_snapshot()
                maintenance_time = time.time() - maint_start
            else:
                maintenance_time = 0.0

            cur_tick += 1
            tick_start_nimg, tick_start_time = cur_nimg, time.time()
            if stop_now:
                stopped_by = signal.Signals(stop.signum).name if stop.signum else "signal on another rank"
            if done:
                break
    finally:
        stop.uninstall()
        if logger is not None:
            logger.close()

    if debug_hashes:
        digest = dict(
            rank=rank,
            G=weights_digest(G),
            D=weights_digest(D),
            G_ema=weights_digest(G_ema),
            augment_p=float(augment_pipe.p) if augment_pipe is not None else None,
        )
        with atomic_write(run_path / "debug" / f"weights-rank{rank}.json", "wt") as f:
            json.dump(digest, f)
    distrib.barrier()
    log(f"Exiting at kimg {cur_nimg / 1000:.1f}" + (f" (stopped by {stopped_by})" if stopped_by else ""))
    return dict(kimg=cur_nimg / 1000, tick=cur_tick, stopped_by=stopped_by)


_STAT_NAMES = [
    "Loss/G/loss",
    "Loss/D/loss",
    "Loss/scores/fake",
    "Loss/scores/real",
    "Loss/signs/fake",
    "Loss/signs/real",
    "Loss/r1_penalty",
    "Loss/D/reg",
    "Loss/pl_penalty",
    "Loss/G/reg",
]


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % (1 << 31)
    np.random.seed(seed)


@torch.no_grad()
def _update_ema(G, G_ema, config: dict, cur_nimg: int, batch_size: int) -> None:
    """G_ema <- G + (G_ema - G) * beta, beta = 0.5 ** (batch / ema_nimg); ema_nimg ramps up as 0.05 * nimg."""
    ema_nimg = config["ema_kimg"] * 1000
    if config["ema_rampup"] is not None:
        ema_nimg = min(ema_nimg, cur_nimg * config["ema_rampup"])
    ema_beta = 0.5 ** (batch_size / max(ema_nimg, 1e-8))
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, ema_beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


@torch.no_grad()
def _save_fakes(G_ema, grid_z, grid_c, path: Path) -> None:
    images = torch.cat([G_ema(z, c, noise_mode="const") for z, c in zip(grid_z.split(8), grid_c.split(8))])
    save_png(image_grid(images_to_uint8(images), GRID_SHAPE[0]), path)


def _evaluate_metrics(
    config, G_ema, dataset, dist_info, run_path: Path, snap_path: Path, cur_nimg: int, best: dict | None, logger, log
) -> dict | None:
    """Run each metric on every rank; rank 0 appends metric-<name>.jsonl and, when the first metric is at its
    best so far, writes best.json naming the snapshot (every snapshot is kept, so the best one is too)."""
    if not config["metrics"]:
        return best
    try:
        from medgan_core.metrics import runner
    except ImportError as exc:
        _warn_once(f"metrics unavailable ({exc}); continuing without them", log)
        return best
    for index, metric in enumerate(config["metrics"]):
        if metric not in _AVAILABLE:
            _AVAILABLE[metric] = runner.is_available(metric)
        available, reason = _AVAILABLE[metric]
        if not available:
            _warn_once(f"metric {metric} unavailable: {reason}; continuing without it", log)
            continue
        result = runner.calc_metric(
            metric, G_ema, dataset.path, dist_info.device, rank=dist_info.rank, world_size=dist_info.world_size
        )
        if dist_info.rank != 0:
            continue
        is_best = runner.report_metric(result, str(run_path), snapshot=snap_path.name)
        value = float(result["results"].get(metric, next(iter(result["results"].values()))))
        log(f"{metric} {value:.4f} at kimg {cur_nimg / 1000:.1f} ({result['total_time']:.0f} s)")
        if logger is not None:
            logger.write_metric(metric, value, cur_nimg / 1000)
        if index == 0 and is_best:
            best = dict(metric=metric, value=value, kimg=cur_nimg / 1000, snapshot=snap_path.name)
            with atomic_write(run_path / "best.json", "wt") as f:
                json.dump(best, f, indent=2)
    return best


_AVAILABLE: dict[str, tuple[bool, str]] = {}  # metric -> is_available(), asked once per process
_WARNED: set[str] = set()


def _warn_once(message: str, log) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        log(f"warning: {message}")


def _tick_line(stats: dict) -> str:
    def value(name, fmt):
        return format(stats[name]["mean"], fmt) if name in stats else "-"

    total = stats["Timing/total_sec"]["mean"]
    parts = [
        f"tick {int(stats['Progress/tick']['mean']):<5d}",
        f"kimg {value('Progress/kimg', '<8.1f')}",
        f"time {int(total) // 3600}h {int(total) // 60 % 60:02d}m {int(total) % 60:02d}s",
        f"sec/kimg {value('Timing/sec_per_kimg', '<7.2f')}",
        f"G {value('Loss/G/loss', '.3f')}",
        f"D {value('Loss/D/loss', '.3f')}",
        f"augment {value('Progress/augment', '.3f')}",
        f"cpumem {value('Resources/cpu_mem_gb', '.2f')}",
    ]
    if "Resources/peak_gpu_mem_gb" in stats:
        parts.append(f"gpumem {value('Resources/peak_gpu_mem_gb', '.2f')}")
    return "  ".join(parts)


def write_options(run_dir: str | os.PathLike, options: dict, config: dict) -> None:
    with atomic_write(Path(run_dir) / "training_options.json", "wt") as f:
        json.dump(dict(options=options, config=config), f, indent=2)
