"""The trainer's SIGINT/SIGTERM handler stops training in its own process only: forked metric workers (frd-score's
multiprocessing pool) keep the default, so `Pool.terminate()` ends them (it hung a recorded run's FRD step)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from medgan_core.training.loop import StopRequest

POOLS = textwrap.dedent(
    """
    import contextlib, io, multiprocessing, sys
    from medgan_core.training.loop import StopRequest
    stop = StopRequest().install()
    for _ in range(int(sys.argv[1])):
        with contextlib.redirect_stdout(io.StringIO()):
            with multiprocessing.get_context("fork").Pool(processes=1) as pool:  # __exit__ = terminate()
                assert pool.map(abs, [-1, -2]) == [1, 2]
    assert stop.signum is None, "a worker's signal reached the trainer's flag"
    print("closed")
    """
)


def test_pool_workers_of_a_training_process_end_on_terminate():
    # 20 pools close in about a second; with the handler inherited, some workers ignored SIGTERM (20 s and more)
    result = subprocess.run([sys.executable, "-c", POOLS, "20"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("closed"), result.stderr[-2000:]


def test_the_installing_process_still_gets_the_flag():
    stop = StopRequest().install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signum == signal.SIGTERM
    finally:
        stop.uninstall()
