"""A real single-node SLURM cluster on this machine, for tests and benchmarks (Debian's slurm
22.05 + munge).

Starts munged, slurmctld and slurmd by hand (no systemd) with a private configuration, and stops
them by their pid files. One node with all CPUs, most of the memory and one (file-less) GPU gres,
so the workflow's GPU requests are scheduled as on a real cluster.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from cxr14.testing import hangguard

PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client")
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol")
# First line of the configuration files a test cluster writes; the run's own mark adds who
# wrote them (pid and folder), so a run never removes another run's files.
MARK = "# cxr14 test cluster: written and removed by cxr14/testing/slurm.py"
ETC = Path("/etc/slurm")
FILES = ("slurm.conf", "gres.conf")
# Snakemake options that fit the profile's site-sized requests to this node (2 CPUs and a few
# GB to spare on the development machine).
FIT_NODE = [
    "--default-resources",
    "mem_mb=500",
    "runtime=30",
    "cpus_per_task=1",
    "--set-resources",
] + [
    f"{rule}:{key}={value}"
    for rule in (
        "downsample_images",
        "generate_synthetic_data_synthetic",  # one such rule per synthetic data set
        "train_model",
        "evaluate_model",
        "localize_findings",
    )
    for key, value in (("cpus_per_task", 1), ("mem_mb", 1000))
]


def run_mark(workdir: Path) -> str:
    return f"{MARK} (pid {os.getpid()}, {workdir})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_config(etc: Path, mark: str) -> None:
    """Make sure ``etc``'s SLURM configuration may be written by this run: absent, this run's,
    or left behind by a test run that is gone. Another live run's cluster, or a real cluster's
    configuration, is an error naming it."""
    conf = etc / "slurm.conf"
    if not conf.exists():
        return
    first = conf.read_text().split("\n", 1)[0]
    if not first.startswith(MARK):
        raise RuntimeError(f"{conf} exists and is not a test configuration; not touching it")
    if first == mark:
        return
    found = re.search(r"\(pid (\d+), (.*)\)$", first)
    if found and _alive(int(found.group(1))):
        raise RuntimeError(
            f"{conf} belongs to another test run's SLURM cluster (pid {found.group(1)}, "
            f"{found.group(2)}); run the SLURM tests of one checkout at a time"
        )


def release_config(etc: Path, mark: str) -> None:
    """Remove the configuration files this run wrote, and only those."""
    for name in FILES:
        with contextlib.suppress(FileNotFoundError):
            if (etc / name).read_text().split("\n", 1)[0] == mark:
                (etc / name).unlink()


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]


def install() -> None:
    """apt-get install the packages (root, Debian); raises CalledProcessError if impossible."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *PACKAGES], check=True, env=env, capture_output=True
    )


def _conf(d: Path, host: str, cpus: int, mem_mb: int, port: int) -> str:
    return f"""ClusterName=cxr14test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={port}
SlurmdPort={port + 1}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MinJobAge=600
GresTypes=gpu
MpiDefault=none
SchedulerType=sched/backfill
SlurmctldTimeout=30
NodeName={host} CPUs={cpus} RealMemory={mem_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill(pidfile: Path) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def _start_munge(d: Path, env: dict) -> tuple[Path, Path]:
    """munged with its own socket, key and pid file in ``d``, so nothing of the machine's is
    touched; returns the socket and the pid file."""
    key, sock, pid = d / "munge.key", d / "munge.socket", d / "munged.pid"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    Path("/run/munge").mkdir(exist_ok=True)
    files = [f"--key-file={key}", f"--socket={sock}", f"--pid-file={pid}"]
    files += [f"--log-file={d / 'munged.log'}", f"--seed-file={d / 'munged.seed'}"]
    subprocess.run(["munged", "--force", *files], check=True, env=env)
    return sock, pid


def _wait_until_idle(d: Path, env: dict) -> None:
    states = []

    def idle() -> bool:
        cmd = ["sinfo", "-h", "-o", "%T"]
        states.append(subprocess.run(cmd, capture_output=True, text=True, env=env).stdout.strip())
        return states[-1] in ("idle", "mixed", "allocated")

    try:
        hangguard.wait_for(idle, hangguard.CLUSTER_START, interval=0.5)
    except hangguard.HangError:
        logs = "".join(
            (d / f).read_text()[-2000:] for f in ("slurmctld.log", "slurmd.log") if (d / f).exists()
        )
        message = f"the SLURM node did not become idle (state {states[-1]!r}):\n{logs}"
        raise RuntimeError(message) from None


@contextlib.contextmanager
def cluster(workdir: Path) -> Iterator[dict[str, str]]:
    """Run a one-node cluster for the duration of the block; yields the environment to use."""
    d = Path(workdir)
    for sub in ("state", "spool", "munge"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    mem_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
    port = _free_port()
    # Jobs must find the configuration at the default path: the Snakemake SLURM plugin clears
    # every SLURM_* variable (SLURM_CONF too) inside jobs. Never overwrite a real cluster's.
    etc, mark = ETC, run_mark(d)
    conf_path = etc / "slurm.conf"
    claim_config(etc, mark)
    etc.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    sock, munge_pid = _start_munge(d / "munge", env)
    # Slurm's clients and daemons find munge's socket through AuthInfo.
    conf_path.write_text(
        mark + "\n" + _conf(d, host, cpus, mem_mb, port) + f"AuthInfo=socket={sock}\n"
    )
    (etc / "gres.conf").write_text(mark + "\nName=gpu File=/dev/null\n")
    try:
        subprocess.run(["slurmctld"], check=True, env=env)
        subprocess.run(["slurmd"], check=True, env=env)
        _wait_until_idle(d, env)
        yield env
    finally:
        _kill(d / "slurmd.pid")
        _kill(d / "slurmctld.pid")
        _kill(munge_pid)
        release_config(etc, mark)
