"""--allocator: the process re-executes itself once with the allocator's environment, which glibc (or the
preloaded library) then really uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from medgan_core.training import allocator

SCRIPT = """
import json, os, sys
from medgan_core.training import allocator
print("start", flush=True)
chosen = allocator.ensure(sys.argv[1], "cpu", log=lambda m: print(m, flush=True))
maps = open("/proc/self/maps").read()
print(json.dumps(dict(chosen=chosen, marker=os.environ.get("MEDGAN_ALLOCATOR"),
                      mmap_max=os.environ.get("MALLOC_MMAP_MAX_"), trim=os.environ.get("MALLOC_TRIM_THRESHOLD_"),
                      jemalloc="libjemalloc" in maps, tcmalloc="libtcmalloc" in maps)))
"""


def run_script(tmp_path, choice: str) -> tuple[dict, str]:
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MEDGAN_ALLOCATOR", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD")
    }
    result = subprocess.run(
        [sys.executable, str(script), choice], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stdout


def test_auto_is_tuned_on_cpu():
    assert allocator.resolve("auto", "cpu") == "tuned"
    assert allocator.resolve("default", "cpu") == "default"


def test_tuned_re_executes_once_with_glibc_settings(tmp_path):
    report, stdout = run_script(tmp_path, "tuned")
    assert stdout.splitlines().count("start") == 2  # the script ran twice: before and after the re-exec, not more
    assert report == dict(
        chosen="tuned", marker="tuned", mmap_max="0", trim="68719476736", jemalloc=False, tcmalloc=False
    )


def test_default_leaves_the_process_alone(tmp_path):
    report, stdout = run_script(tmp_path, "default")
    assert stdout.splitlines().count("start") == 1 and report["marker"] is None and report["mmap_max"] is None


@pytest.mark.parametrize("name", ["jemalloc", "tcmalloc"])
def test_preloaded_allocators(tmp_path, name):
    if allocator.find_library(name) is None:
        with pytest.raises(RuntimeError, match="apt-get install"):
            allocator.allocator_env(name)
        return
    report, _ = run_script(tmp_path, name)
    assert report["chosen"] == name and report[name] is True
