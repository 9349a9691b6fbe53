"""A real one-node SLURM on localhost for the tests: munge + slurmctld + slurmd as child processes.

Everything lives in one temporary directory (its own slurm.conf, reached through SLURM_CONF; its own
munge socket; free ports). The one exception: the executor's job step runs a nested `srun` without
SLURM_CONF, so the same file is also written to /etc/slurm/slurm.conf for the test's duration (only
when there is none: a machine with its own SLURM makes the test skip). Without systemd and with
cgroups v1 the node uses proctrack/linuxproc and task/none. No accounting database: finished jobs
are read from slurmctld (`scontrol show job`, kept for MinJobAge seconds) and from the
job-completion log (jobcomp/filetxt).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

# Debian 12 packages (Slurm 22.05); tools/debian-packages.txt keeps to what the default run needs.
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")


def _missing(packages) -> list[str]:
    out = []
    for p in packages:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
        if "install ok installed" not in r.stdout:
            out.append(p)
    return out


def ensure_packages(packages=PACKAGES) -> str | None:
    """Install the missing Debian packages when root. None when all are there; otherwise why not."""
    if not shutil.which("dpkg-query"):
        return "not a Debian system (no dpkg-query)"
    missing = _missing(packages)
    if not missing:
        return None
    if os.geteuid() != 0:
        return f"Debian packages missing ({' '.join(missing)}) and not root to install them"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # another apt-get may hold the dpkg lock: wait for it rather than fail
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-qq"]
    for cmd in (apt + ["update"], apt + ["install", "-y", "--no-install-recommends", *missing]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            return f"`{' '.join(cmd)}` failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}"
    still = _missing(packages)
    return f"Debian packages still missing after apt-get: {' '.join(still)}" if still else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


SLURM_CONF = """\
ClusterName=t2stest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=slurm
AuthType=auth/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/log/jobcomp.txt
InactiveLimit=0
MinJobAge=7200
KillWait=5
SlurmdTimeout=60
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName={partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


# Where SLURM's clients look without SLURM_CONF (the test writes it only when absent, removes it after).
ETC_CONF = Path("/etc/slurm/slurm.conf")


def _stale_own_conf(path: Path) -> bool:
    """``path`` is a copy of one of our own configurations whose test was killed before it could
    remove it (ClusterName t2stest, its temporary folder gone): safe to replace. Anything else is
    somebody's SLURM."""
    text = path.read_text(errors="replace")
    state = next((ln.split("=", 1)[1] for ln in text.splitlines() if ln.startswith("StateSaveLocation=")), None)
    return "ClusterName=t2stest\n" in text and state is not None and not Path(state).exists()


class LocalSlurm:
    """Start with ``start()``, use ``env`` for every SLURM client call, ``stop()`` always."""

    def __init__(self, partition: str = "local"):
        self.partition = partition
        self.cpus = os.cpu_count() or 1
        self.mem_mb = int(_mem_mb() * 0.8)
        # world-traversable (slurmctld runs as the slurm user; pytest's tmp_path is root-only)
        self.root = Path(tempfile.mkdtemp(prefix="t2s-slurm-"))
        self.root.chmod(0o755)
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.procs: dict[str, subprocess.Popen] = {}
        self._etc_written = False
        self.env = {"SLURM_CONF": str(self.conf)}

    def _client_env(self) -> dict:
        return {**os.environ, **self.env}

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, capture_output=True, text=True, env=self._client_env(), check=check, timeout=60)

    def _spawn(self, name: str, cmd: list[str], **kw) -> None:
        log = open(self.root / "log" / f"{name}.out", "w")
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self._client_env(), **kw)
        log.close()

    def _wait(self, what: str, ok, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited ({p.returncode}) while waiting for {what}: {self.logs()}")
            if ok():
                return
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {what}: {self.logs()}")

    def logs(self) -> str:
        parts = []
        for f in sorted((self.root / "log").glob("*")):
            parts.append(f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(parts)

    def start(self) -> "LocalSlurm":
        if ETC_CONF.exists() and _stale_own_conf(ETC_CONF):
            ETC_CONF.unlink()  # left by a killed run of this test
        if ETC_CONF.exists():
            raise FileExistsError(f"{ETC_CONF} exists: a SLURM is configured here already; not touching it")
        for d in ("state", "spool", "log", "munge"):
            (self.root / d).mkdir()
        shutil.chown(self.root / "state", "slurm", "slurm")
        shutil.chown(self.root / "log", "slurm", "slurm")
        (self.root / "log").chmod(0o777)
        munge_dir = self.root / "munge"
        shutil.chown(munge_dir, "munge", "munge")
        munge_dir.chmod(0o755)  # munged wants its socket's directory open to all for execute
        self._spawn("munged", [
            "/usr/sbin/munged", "--foreground", f"--socket={self.munge_socket}",
            "--key-file=/etc/munge/munge.key", f"--log-file={munge_dir}/munged.log",
            f"--pid-file={munge_dir}/munged.pid", f"--seed-file={munge_dir}/munged.seed"],
            user="munge", group="munge", extra_groups=[])
        self._wait("the munge socket", self.munge_socket.exists, 30)
        cred = subprocess.run(["munge", "-n", f"--socket={self.munge_socket}"], capture_output=True, text=True,
                              check=True)
        check = subprocess.run(["unmunge", f"--socket={self.munge_socket}"], input=cred.stdout,
                               capture_output=True, text=True)
        if "Success" not in check.stdout:
            raise RuntimeError(f"munge does not decode its own credential: {check.stdout} {check.stderr}")
        self.conf.write_text(SLURM_CONF.format(
            host=socket.gethostname(), ctld_port=_free_port(), slurmd_port=_free_port(), root=self.root,
            munge_socket=self.munge_socket, cpus=self.cpus, mem_mb=self.mem_mb, partition=self.partition))
        # Inside a job the executor's job step drops every SLURM_* variable (SLURM_CONF too) before
        # its nested `srun`, which then reads only the default path: put our file there as well.
        shutil.copy(self.conf, ETC_CONF)
        self._etc_written = True
        self._spawn("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf)])
        self._wait("an idle node", lambda: "idle" in self.run("sinfo", "-h", "-o", "%T", check=False).stdout)
        return self

    def job(self, jobid: str) -> dict[str, str]:
        """`scontrol show job` as a dict (JobState, Partition, NodeList, ...)."""
        out = self.run("scontrol", "show", "job", "-o", jobid).stdout
        return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)

    def completed_jobs(self) -> list[dict[str, str]]:
        """The job-completion log: one dict per finished job."""
        path = self.root / "log" / "jobcomp.txt"
        if not path.exists():
            return []
        return [dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
                for line in path.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        """Cancel what is left, then stop the daemons this object started, by PID."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.run("scancel", "--user", getpass.getuser(), check=False)
            end = time.monotonic() + 20
            while time.monotonic() < end and self.run("squeue", "-h", check=False).stdout.strip():
                time.sleep(1)
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if self._etc_written:
            ETC_CONF.unlink(missing_ok=True)
        shutil.rmtree(self.root, ignore_errors=True)
