"""The StyleGAN2-ADA training loop (NVIDIA's `training_loop`: every option a keyword of its signature).

One iteration ("batch_idx") shows `batch_size` real images over all ranks: for each phase due this iteration
(Gmain every step, Greg every 4th, Dmain every step, Dreg every 16th) the phase's network gets gradients from
`StyleGAN2Loss`, they are averaged over ranks (non-finite values cleaned), and its Adam steps. Then G_ema
follows G, ADA adjusts p every 4 iterations, and every `kimg_per_tick` kimg a tick prints progress, writes
stats and checks for a stop request (SIGINT / SIGTERM on any rank: the tick ends the run with a last snapshot);
every `image_snapshot_ticks` ticks an image grid, every `network_snapshot_ticks` a snapshot and the metrics.

Snapshots are named as NVIDIA's, network-snapshot-<kimg:06d>.safetensors with the integer kimg
(cur_nimg // 1000; ticks of at least 1 kimg never give two snapshots the same kimg). With ticks under 1 kimg
(--tick < 1, which NVIDIA does not allow) two snapshots could share an integer kimg, so such runs add the images
past a whole kimg, network-snapshot-<kimg:06d>.<rest:03d>.safetensors (e.g. 000000.040; 000002 at exactly
2 kimg): no snapshot overwrites another (order them by the number, as autoresume.snapshot_nimg reads it).
"""

from __future__ import annotations

import copy
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


# ---- the loop ------------------------------------------------------------------------------------------------------
def training_loop(
    run_dir=".",  # Output directory.
    training_set_kwargs=None,  # Options of the training set (ImageFolderDataset: path, use_labels, max_size, ...).
    data_loader_kwargs=None,  # Options of torch.utils.data.DataLoader: num_workers, pin_memory, prefetch_factor.
    G_kwargs=None,  # Options of the generator (medgan_core.networks.Generator).
    D_kwargs=None,  # Options of the discriminator.
    G_opt_kwargs=None,  # Adam options of G: lr, betas, eps.
    D_opt_kwargs=None,  # Adam options of D.
    augment_kwargs=None,  # Options of the augmentation pipeline (probability multipliers). None = no augmentation.
    loss_kwargs=None,  # Options of StyleGAN2Loss: r1_gamma, style_mixing_prob, pl_weight, pl_batch_shrink, pl_decay.
    metrics=(),  # Metrics to evaluate at each network snapshot (names of medgan_core.metrics.runner).
    random_seed=0,  # Global random seed.
    num_gpus=1,  # Number of ranks taking part.
    rank=0,  # Rank of this process in [0, num_gpus).
    batch_size=4,  # Total batch size of one iteration (all ranks); a multiple of batch_gpu * num_gpus.
    batch_gpu=4,  # Images one rank processes at a time (gradients accumulate over batch_size / num_gpus).
    ema_kimg=10,  # Half-life of the exponential moving average (EMA) of G's weights, in kimg.
    ema_rampup=0.05,  # EMA ramp-up coefficient (half-life at most ema_rampup * images shown). None = no ramp-up.
    G_reg_interval=4,  # Every how many iterations path-length regularisation runs. None = with every G step.
    D_reg_interval=16,  # Every how many iterations R1 runs. None = with every D step.
    augment_p=0,  # Initial augmentation probability.
    ada_target=None,  # ADA target for the mean sign of D's real logits. None = fixed p.
    ada_interval=4,  # Every how many iterations ADA adjusts p.
    ada_kimg=500,  # ADA speed: kimg for p to move by 1.
    total_kimg=25000,  # Training length in kimg of real images shown.
    kimg_per_tick=4,  # Progress (tick) interval in kimg.
    image_snapshot_ticks=50,  # Every how many ticks the fakes grid is saved.
    network_snapshot_ticks=50,  # Every how many ticks a network snapshot is saved and the metrics run.
    resume_pkl=None,  # Our snapshot (continue its run) or a network pickle / checkpoint (transfer learning).
    cudnn_benchmark=True,  # torch.backends.cudnn.benchmark.
    device="cpu",  # medgan: this rank's torch device.
    debug_hashes=False,  # medgan: each rank writes debug/weights-rank<r>.json (hashes of its weights) at the end.
    cli_options=None,  # medgan: the command line as given (recorded in every snapshot with these options).
    training_set=None,  # medgan: the dataset already opened from training_set_kwargs (else opened here).
    progress_fn=print,  # medgan: where rank 0 prints progress.
) -> dict:
    """Train until `total_kimg` or a stop request; returns {'kimg', 'tick', 'stopped_by'}."""
    recorded = _recorded_options(locals())  # what each snapshot records as its training options
    start_time = time.time()
    device = torch.device(device)
    is_main = rank == 0
    log = progress_fn if is_main else _silent
    run_path = Path(run_dir)
    seed = random_seed * num_gpus + rank  # each rank its own stream, reproducible from the seed
    _seed_and_backends(seed, cudnn_benchmark)

    # ---- setup: data, networks (resumed or transferred), loss, optimisers, image order, grids, logs ----
    training_set = _open_training_set(training_set, training_set_kwargs, log)
    G, D, G_ema = build_networks(G_kwargs, D_kwargs, device)
    augment_pipe, ada = build_augment(augment_kwargs, augment_p, ada_target, ada_interval, ada_kimg, batch_size,
                                      device)  # fmt: skip
    state = _start_networks(resume_pkl, G, D, G_ema, augment_pipe, device, log, run_path if is_main else None)
    stats = StatsCollector(device)
    loss = StyleGAN2Loss(device, G, D, augment_pipe=augment_pipe, stats=stats, ada=ada,
                         **_constructor_kwargs(loss_kwargs))  # fmt: skip
    phases, optimizers = build_phases(G, D, G_opt_kwargs, D_opt_kwargs, G_reg_interval, D_reg_interval)
    cur_nimg, cur_tick, batch_idx = (0, 0, 0) if state is None else restore_state(state, optimizers, loss, ada,
                                                                                   rank, seed)  # fmt: skip
    # a resumed run draws a fresh (still seeded) image order
    data_iter = _data_iterator(training_set, rank, num_gpus, random_seed + cur_nimg, batch_size // num_gpus,
                               data_loader_kwargs, device)  # fmt: skip
    grid_z, grid_c = _start_grids(training_set, G_ema, random_seed, device, run_path) if is_main else (None, None)
    logger = _open_logger(run_path, resumed_at=cur_nimg if state is not None else None) if is_main else None
    stop = StopRequest().install()
    tick_start_nimg, tick_start_time = cur_nimg, time.time()
    maintenance_time = tick_start_time - start_time
    stopped_by = None
    log(f"Training for {total_kimg} kimg from kimg {cur_nimg / 1000:.1f}...")
    try:  # ---- the loop: one iteration per pass, a tick every kimg_per_tick ----
        while True:
            _train_iteration(phases, loss, data_iter, training_set, G.z_dim, batch_size // num_gpus, batch_gpu,
                             device, batch_idx, cur_nimg, num_gpus)  # fmt: skip
            _update_ema(G, G_ema, ema_kimg, ema_rampup, cur_nimg, batch_size)
            cur_nimg += batch_size
            batch_idx += 1
            if ada is not None:
                ada.step()
            done = cur_nimg >= int(total_kimg * 1000)
            # tick 0 comes right after the first iteration (NVIDIA's `cur_tick != 0`): the kimg-0 grid, snapshot
            # and metrics every curve starts from
            if not done and cur_tick != 0 and cur_nimg < tick_start_nimg + kimg_per_tick * 1000:
                continue

            # ---- tick: a stop request from any rank, progress and stats, grids, snapshot and metrics ----
            stopped_by = _stop_reason(stop, device)
            done = done or stopped_by is not None
            tick_stats = _tick_stats(stats, cur_tick, cur_nimg, tick_start_nimg, start_time, tick_start_time,
                                     maintenance_time, augment_pipe, ada, device)  # fmt: skip
            if is_main:
                _report_tick(tick_stats, cur_nimg, logger, log)
            maintenance_start = time.time()
            if is_main and (done or _due(cur_tick, image_snapshot_ticks)):
                _save_fakes(G_ema, grid_z, grid_c, run_path / f"fakes{cur_nimg // 1000:06d}.png")
            if done or _due(cur_tick, network_snapshot_ticks):
                snap_name = snapshot_name(cur_nimg, fractional=kimg_per_tick < 1)
                if is_main:  # written once: the metrics below read G_ema, not the file
                    _write_snapshot(run_path / snap_name, G, D, G_ema, augment_pipe, ada, loss, optimizers, recorded,
                                    cur_nimg=cur_nimg, cur_tick=cur_tick, batch_idx=batch_idx)  # fmt: skip
                distrib.barrier()
                _evaluate_metrics(metrics, G_ema, training_set, rank, num_gpus, device, run_path, snap_name,
                                  cur_nimg, logger, log)  # fmt: skip
            maintenance_time = time.time() - maintenance_start
            cur_tick += 1
            tick_start_nimg, tick_start_time = cur_nimg, time.time()
            if done:
                break
    finally:
        stop.uninstall()
        if logger is not None:
            logger.close()

    if debug_hashes:
        _write_weight_hashes(run_path, rank, G, D, G_ema, augment_pipe)
    distrib.barrier()
    log(f"Exiting at kimg {cur_nimg / 1000:.1f}" + (f" (stopped by {stopped_by})" if stopped_by else ""))
    return dict(kimg=cur_nimg / 1000, tick=cur_tick, stopped_by=stopped_by)


def _train_iteration(phases, loss, data_iter, training_set, z_dim, local_batch, batch_gpu, device, batch_idx,
                     cur_nimg, num_gpus) -> None:  # fmt: skip
    """One iteration: this rank's reals, latents and labels for every phase, and each due phase's Adam step."""
    real_img, real_c = next(data_iter)
    real_img = uint8_to_float(real_img.to(device)).split(batch_gpu)
    real_c = real_c.to(device).split(batch_gpu)
    all_gen_z = torch.randn([len(phases) * local_batch, z_dim], device=device)
    all_gen_z = [z.split(batch_gpu) for z in all_gen_z.split(local_batch)]
    label_idx = np.random.randint(len(training_set), size=len(phases) * local_batch)
    all_gen_c = torch.from_numpy(np.stack([training_set.get_label(int(i)) for i in label_idx])).to(device)
    all_gen_c = [c.split(batch_gpu) for c in all_gen_c.split(local_batch)]
    for phase, phase_z, phase_c in zip(phases, all_gen_z, all_gen_c):
        if batch_idx % phase.interval != 0:
            continue
        phase.opt.zero_grad(set_to_none=True)
        phase.module.requires_grad_(True)
        for r_img, r_c, g_z, g_c in zip(real_img, real_c, phase_z, phase_c):
            loss.accumulate_gradients(phase=phase.name, real_img=r_img, real_c=r_c, gen_z=g_z, gen_c=g_c,
                                      gain=phase.interval, cur_nimg=cur_nimg)  # fmt: skip
        phase.module.requires_grad_(False)
        distrib.all_reduce_gradients(list(phase.module.parameters()), num_gpus)
        phase.opt.step()


# ---- building blocks -----------------------------------------------------------------------------------------------
@dataclass
class Phase:
    name: str  # 'Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg' or 'Dboth'
    module: torch.nn.Module
    opt: torch.optim.Optimizer
    interval: int


class StopRequest:
    """Turns SIGINT / SIGTERM into a flag the loop checks once per tick (then snapshots and exits).

    Only in the process that installed it: a forked child (a metric's multiprocessing pool worker, e.g.
    frd-score's) inherits the handler, and `Pool.terminate()` ends its workers with SIGTERM, so there the signal
    gets the handler that was in place before (default: exit); a flag in the worker hung the pool's join.
    """

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}
        self._pid = os.getpid()

    def install(self) -> StopRequest:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (e.g. a test runner's worker)
                pass
        return self

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame) -> None:
        if os.getpid() != self._pid:  # a forked child: behave as before install
            previous = self._previous.get(signum, signal.SIG_DFL)
            signal.signal(signum, previous)
            if callable(previous):
                previous(signum, frame)
            elif previous != signal.SIG_IGN:
                os.kill(os.getpid(), signum)
            return
        if self.signum is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"\nSignal {signal.Signals(signum).name}: finishing the tick, writing a snapshot, then exiting "
            "(signal again to stop at once).",
            flush=True,
        )


def _constructor_kwargs(kwargs: dict | None) -> dict:
    """NVIDIA's *_kwargs without `class_name` (NVIDIA's class; medgan constructs its own)."""
    return {key: value for key, value in (kwargs or {}).items() if key != "class_name"}


def build_networks(G_kwargs: dict, D_kwargs: dict, device: torch.device):
    from medgan_core.networks import Discriminator, Generator

    G = Generator(**copy.deepcopy(_constructor_kwargs(G_kwargs))).train().requires_grad_(False).to(device)
    D = Discriminator(**copy.deepcopy(_constructor_kwargs(D_kwargs))).train().requires_grad_(False).to(device)
    G_ema = copy.deepcopy(G).eval()
    return G, D, G_ema


def build_augment(augment_kwargs, augment_p, ada_target, ada_interval, ada_kimg, batch_size, device):
    """(augment_pipe, ada controller) for --aug ada / fixed; (None, None) for noaug."""
    if augment_kwargs is None:
        return None, None
    from medgan_core.augment import AdaController, AugmentPipe

    pipe = AugmentPipe(**_constructor_kwargs(augment_kwargs)).train().requires_grad_(False).to(device)
    pipe.p.copy_(torch.as_tensor(augment_p))
    ada = None
    if ada_target is not None:
        ada = AdaController(pipe, target=ada_target, interval=ada_interval, kimg=ada_kimg, batch_size=batch_size)
    return pipe, ada


def build_phases(G, D, G_opt_kwargs, D_opt_kwargs, G_reg_interval, D_reg_interval):
    """(phases, {'G': G's Adam, 'D': D's Adam}): main and lazy-regularisation phases of each network; the reg
    phases' Adam uses lr * r and betas ** r, r = k / (k + 1)."""
    phases, optimizers = [], {}
    for name, module, opt_kwargs, reg_interval in [
        ("G", G, _constructor_kwargs(G_opt_kwargs), G_reg_interval),
        ("D", D, _constructor_kwargs(D_opt_kwargs), D_reg_interval),
    ]:
        ratio = 1 if reg_interval is None else reg_interval / (reg_interval + 1)
        betas = tuple(beta**ratio for beta in opt_kwargs["betas"])
        opt = torch.optim.Adam(module.parameters(), lr=opt_kwargs["lr"] * ratio, betas=betas, eps=opt_kwargs["eps"])
        optimizers[name] = opt
        if reg_interval is None:
            phases.append(Phase(name + "both", module, opt, 1))
        else:
            phases.append(Phase(name + "main", module, opt, 1))
            phases.append(Phase(name + "reg", module, opt, reg_interval))
    return phases, optimizers


def memory_stats(device: torch.device) -> dict[str, dict]:
    """Resources/cpu_mem_gb (resident set), and on CUDA NVIDIA's peak_gpu_mem_gb and peak_gpu_mem_reserved_gb."""
    entries = {}
    try:
        with open("/proc/self/status") as f:
            rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        entries["Resources/cpu_mem_gb"] = scalar_entry(rss_kb / 2**20)
    except (OSError, StopIteration):
        pass
    if device.type == "cuda":
        entries["Resources/peak_gpu_mem_gb"] = scalar_entry(torch.cuda.max_memory_allocated(device) / 2**30)
        entries["Resources/peak_gpu_mem_reserved_gb"] = scalar_entry(torch.cuda.max_memory_reserved(device) / 2**30)
        torch.cuda.reset_peak_memory_stats(device)
    return entries


def _data_iterator(training_set, rank, num_gpus, seed, local_batch, data_loader_kwargs, device):
    """Endless batches of this rank's share (uint8 images [local_batch, C, H, W], labels [local_batch, c_dim])."""
    sampler = InfiniteSampler(training_set, rank=rank, num_replicas=num_gpus, seed=seed)
    options = dict(data_loader_kwargs or {})
    workers = options.get("num_workers", 0)
    loader = torch.utils.data.DataLoader(
        training_set,
        sampler=sampler,
        batch_size=local_batch,
        num_workers=workers,
        pin_memory=bool(options.get("pin_memory", False)) and device.type == "cuda",
        prefetch_factor=options.get("prefetch_factor", 2) if workers > 0 else None,
        worker_init_fn=_seed_worker if workers > 0 else None,
    )
    return iter(loader)


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % (1 << 31)
    np.random.seed(seed)


def _recorded_options(arguments: dict) -> dict:
    """training_loop's keyword arguments as recorded in a snapshot (= training_options.json)."""
    skip = ("rank", "device", "training_set", "progress_fn")
    return {key: value for key, value in arguments.items() if key not in skip}


def _silent(*_args, **_kwargs) -> None:
    pass


def _open_training_set(training_set, training_set_kwargs: dict, log):
    """The dataset the launcher opened, or a new one from training_set_kwargs (a spawned or torchrun rank)."""
    if training_set is None:
        training_set = ImageFolderDataset(**_constructor_kwargs(training_set_kwargs))
    log(
        f"Dataset {training_set.path}: {len(training_set)} images (x-flips included), {training_set.num_channels} "
        f"channel(s), {training_set.resolution}x{training_set.resolution}, labels {training_set.label_dim}"
    )
    return training_set


def _seed_and_backends(seed: int, cudnn_benchmark: bool) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = False  # as NVIDIA: fp32 means fp32 (mixed precision is explicit)
    torch.backends.cudnn.allow_tf32 = False


def _start_networks(resume_pkl, G, D, G_ema, augment_pipe, device, log, run_path: Path | None) -> dict | None:
    """Resume or transfer from `resume_pkl` (when given), then give every rank rank 0's weights; returns the
    resumed training state (None for a fresh run or a transfer). run_path: where rank 0 writes the transfer report."""
    report_path = run_path / "transfer_report.txt" if run_path is not None else None  # what a transfer copied
    state = (
        None if resume_pkl is None else resume_from(resume_pkl, G, D, G_ema, augment_pipe, device, log, report_path)
    )
    for module in (G, D, G_ema, augment_pipe):
        distrib.broadcast_module(module)
    return state


def _open_logger(run_path: Path, resumed_at: int | None) -> RunLogger:
    """Rank 0's stats log; TensorBoard hides the events a killed attempt wrote after the snapshot a run resumes."""
    return RunLogger(run_path, purge_step=resumed_at + 1 if resumed_at is not None else None)


def _stop_reason(stop: StopRequest, device) -> str | None:
    """The signal that asked any rank to stop (checked once per tick: a collective over all ranks), or None."""
    if not distrib.any_rank(stop.signum is not None, device):
        return None
    return signal.Signals(stop.signum).name if stop.signum else "signal on another rank"


def _due(cur_tick: int, every_ticks: int) -> bool:
    """Whether an every-N-ticks task (grid, snapshot) runs at this tick: ticks 0, N, 2N, ... (NVIDIA's
    `cur_tick % ticks == 0`; a continued run resumes at the tick after its snapshot's, so never twice)."""
    return cur_tick % every_ticks == 0


def _report_tick(tick_stats: dict, cur_nimg: int, logger: RunLogger, log) -> None:
    """Rank 0: the tick's stats into stats.jsonl / TensorBoard and its progress line."""
    logger.write(tick_stats, cur_nimg / 1000)
    log(_tick_line(tick_stats))


def _write_snapshot(path: Path, G, D, G_ema, augment_pipe, ada, loss, optimizers, recorded: dict, **progress) -> None:
    """Everything a continuation needs: networks, optimisers, RNG (snapshot.py) and the loop's counters."""
    state = dict(progress, augment_p=float(augment_pipe.p) if augment_pipe is not None else 0.0,
                 pl_mean=float(loss.pl_mean), ada=ada.state_dict() if ada is not None else None)  # fmt: skip
    save_snapshot(path, G=G, D=D, G_ema=G_ema, augment_pipe=augment_pipe, optimizers=optimizers, state=state,
                  options=recorded)  # fmt: skip


# ---- resume --------------------------------------------------------------------------------------------------------
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
    if augment_pipe is not None:  # transfer learning: p starts at 0 as a fresh run
        augment_pipe.p.zero_()
    if report_path is not None:
        with atomic_write(report_path, "wt") as f:
            f.write("\n".join(lines) + "\n")
    return None


def restore_state(state: dict, optimizers: dict, loss, ada, rank: int, seed: int) -> tuple[int, int, int]:
    """Optimiser moments, path-length target, ADA counters and RNG of a resumed snapshot; returns
    (cur_nimg, cur_tick, batch_idx) to continue from (the tick after the snapshot's)."""
    cur_nimg, cur_tick, batch_idx = state["cur_nimg"], state["cur_tick"] + 1, state["batch_idx"]
    restore_optimizers(optimizers, state["snapshot"])
    loss.pl_mean.fill_(state.get("pl_mean", 0.0))
    if ada is not None and state.get("ada") is not None:
        ada.load_state_dict(state["ada"])
    if rank == 0:
        restore_rng_state(state["snapshot"]["extra_tensors"], state["rng"])
    else:
        torch.manual_seed(seed + cur_nimg)
        np.random.seed((seed + cur_nimg) % (1 << 31))
    del state["snapshot"]
    return cur_nimg, cur_tick, batch_idx


# ---- EMA, grids, stats, metrics ------------------------------------------------------------------------------------
@torch.no_grad()
def _update_ema(G, G_ema, ema_kimg: float, ema_rampup: float | None, cur_nimg: int, batch_size: int) -> None:
    """G_ema <- G + (G_ema - G) * beta, beta = 0.5 ** (batch / ema_nimg); ema_nimg ramps up as 0.05 * nimg."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    ema_beta = 0.5 ** (batch_size / max(ema_nimg, 1e-8))
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, ema_beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def _start_grids(training_set, G_ema, random_seed: int, device, run_path: Path):
    """reals.png and fakes_init.png; returns the grid's fixed latents and labels (rank 0)."""
    grid_count = min(GRID_SHAPE[0] * GRID_SHAPE[1], len(training_set))
    grid_gen = np.random.RandomState(random_seed)
    grid_idx = grid_gen.choice(len(training_set), grid_count, replace=False)
    reals = np.stack([training_set[int(i)][0] for i in grid_idx]).transpose(0, 2, 3, 1)
    save_png(image_grid(reals, GRID_SHAPE[0]), run_path / "reals.png")
    grid_z = torch.from_numpy(grid_gen.randn(grid_count, G_ema.z_dim).astype(np.float32)).to(device)
    grid_c = torch.from_numpy(np.stack([training_set.get_label(int(i)) for i in grid_idx])).to(device)
    if not (run_path / "fakes_init.png").is_file():  # a continued run (--auto-resume) keeps its first grid
        _save_fakes(G_ema, grid_z, grid_c, run_path / "fakes_init.png")
    return grid_z, grid_c


@torch.no_grad()
def _save_fakes(G_ema, grid_z, grid_c, path: Path) -> None:
    images = torch.cat([G_ema(z, c, noise_mode="const") for z, c in zip(grid_z.split(8), grid_c.split(8))])
    save_png(image_grid(images_to_uint8(images), GRID_SHAPE[0]), path)


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


def _tick_stats(stats, cur_tick, cur_nimg, tick_start_nimg, start_time, tick_start_time, maintenance_time,
                augment_pipe, ada, device) -> dict:  # fmt: skip
    """The tick's means over ranks of the reported losses, plus NVIDIA's Progress/, Timing/ and Resources/ keys."""
    tick_end_time = time.time()
    tick_stats = stats.collect(names_on_all_ranks=_STAT_NAMES)
    tick_kimg = (cur_nimg - tick_start_nimg) / 1000
    total_sec = tick_end_time - start_time
    tick_stats.update(
        {
            "Progress/tick": scalar_entry(cur_tick),
            "Progress/kimg": scalar_entry(cur_nimg / 1000),
            "Progress/augment": scalar_entry(float(augment_pipe.p) if augment_pipe is not None else 0.0),
            "Timing/total_sec": scalar_entry(total_sec),
            "Timing/sec_per_tick": scalar_entry(tick_end_time - tick_start_time),
            "Timing/sec_per_kimg": scalar_entry((tick_end_time - tick_start_time) / max(tick_kimg, 1e-8)),
            "Timing/maintenance_sec": scalar_entry(maintenance_time),
            "Timing/total_hours": scalar_entry(total_sec / (60 * 60)),
            "Timing/total_days": scalar_entry(total_sec / (24 * 60 * 60)),
            **memory_stats(device),
        }
    )
    if ada is not None and ada.last_sign is not None:
        tick_stats["Progress/ada_rt"] = scalar_entry(ada.last_sign)
    return tick_stats


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
        parts.append(f"reserved {value('Resources/peak_gpu_mem_reserved_gb', '.2f')}")
    return "  ".join(parts)


def _evaluate_metrics(metrics, G_ema, training_set, rank, num_gpus, device, run_path: Path, snap_name: str,
                      cur_nimg: int, logger, log) -> None:  # fmt: skip
    """Run each metric on every rank; rank 0 appends metric-<name>.jsonl and, when the first metric is at its
    best so far, writes best.json naming the snapshot (every snapshot is kept, so the best one is too)."""
    if not metrics:
        return
    try:
        from medgan_core.metrics import runner
    except ImportError as exc:
        _warn_once(f"metrics unavailable ({exc}); continuing without them", log)
        return
    for index, metric in enumerate(metrics):
        if metric not in _AVAILABLE:
            _AVAILABLE[metric] = runner.is_available(metric)
        available, reason = _AVAILABLE[metric]
        if not available:
            _warn_once(f"metric {metric} unavailable: {reason}; continuing without it", log)
            continue
        result = runner.calc_metric(metric, G_ema, training_set.path, device, rank=rank, world_size=num_gpus)
        if rank != 0:
            continue
        is_best = runner.report_metric(result, str(run_path), snapshot=snap_name)
        value = float(result["results"].get(metric, next(iter(result["results"].values()))))
        log(f"{metric} {value:.4f} at kimg {cur_nimg / 1000:.1f} ({result['total_time']:.0f} s)")
        if result["results"].get(f"{metric}_collapse") == 1:  # a collapse metric (div128) says so in the log
            coverage = result["results"].get(f"{metric}_coverage", float("nan"))
            log(f"mode collapse at kimg {cur_nimg / 1000:.1f}: {metric} {value:.3f} (spread of the generated "
                f"images against the reals'), coverage {coverage:.2f} (medgan_core.evaluation.collapse)")  # fmt: skip
        if logger is not None:
            logger.write_metric(metric, value, cur_nimg / 1000)
        if index == 0 and is_best:
            best = dict(metric=metric, value=value, kimg=cur_nimg / 1000, snapshot=snap_name)
            with atomic_write(run_path / "best.json", "wt") as f:
                json.dump(best, f, indent=2)


_AVAILABLE: dict[str, tuple[bool, str]] = {}  # metric -> is_available(), asked once per process
_WARNED: set[str] = set()


def _warn_once(message: str, log) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        log(f"warning: {message}")


def _write_weight_hashes(run_path: Path, rank: int, G, D, G_ema, augment_pipe) -> None:
    digest = dict(
        rank=rank,
        G=weights_digest(G),
        D=weights_digest(D),
        G_ema=weights_digest(G_ema),
        augment_p=float(augment_pipe.p) if augment_pipe is not None else None,
    )
    with atomic_write(run_path / "debug" / f"weights-rank{rank}.json", "wt") as f:
        json.dump(digest, f)
