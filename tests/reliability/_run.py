"""Subprocess helpers for the reliability tests: run the real ``edgekd`` command as a user would."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def env(**extra):
    """A child environment: one thread, no torchrun variables inherited, edgekd importable."""
    e = {k: v for k, v in os.environ.items()
         if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    e.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT), **extra)
    return e


def edgekd(*args, cwd=None, timeout=120):
    """Run ``python -m edgekd.cli ARGS``; returns the CompletedProcess (text output)."""
    return subprocess.run([sys.executable, "-m", "edgekd.cli", *map(str, args)], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def torchrun(nproc, *args, cwd=None, timeout=120):
    """``python -m torch.distributed.run --nproc_per_node=N -m edgekd.cli ARGS`` (what ``torchrun`` runs)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "edgekd.cli", *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
