"""A network guard for workflow runs in tests: every Python process of the run (snakemake and each
job) imports it through PYTHONPATH as ``sitecustomize``; any connection to a non-loopback address,
or a name lookup of a non-local host, is refused and logged. Used by the session's tiny run
(conftest.tiny_run), whose log the reliability test reads."""

from __future__ import annotations

from pathlib import Path

NETWORK_GUARD = '''\
import errno, ipaddress, os, socket, sys

_LOG = os.environ.get("T2S_NET_LOG")
try:  # (sys.argv is not final yet under -m; the kernel's copy is)
    _CMD = open("/proc/self/cmdline", "rb").read().replace(b"\\0", b" ").decode(errors="replace")[:300]
except OSError:
    _CMD = " ".join(sys.argv)[:300]


def _note(path, text):
    with open(path, "a") as f:
        f.write(text + "\\n")


def _loopback(host):
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host in ("localhost", "")


def _guard(orig):
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(str(address[0])):
            _note(_LOG, f"{os.getpid()} connect {address!r} {_CMD}")
            raise OSError(errno.ENETUNREACH, f"network blocked by the reliability test: {address!r}")
        return orig(self, address)
    return connect


def _lookup(orig):
    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _loopback(host if isinstance(host, str) else host.decode()):
            _note(_LOG, f"{os.getpid()} getaddrinfo {host!r} {_CMD}")
            raise socket.gaierror(socket.EAI_NONAME, f"name lookup blocked by the reliability test: {host!r}")
        return orig(host, *args, **kwargs)
    return getaddrinfo


if _LOG:
    _note(_LOG + ".armed", f"{os.getpid()} {_CMD}")
    socket.socket.connect = _guard(socket.socket.connect)
    socket.socket.connect_ex = _guard(socket.socket.connect_ex)
    socket.getaddrinfo = _lookup(socket.getaddrinfo)
'''



def guard_env(base: Path) -> dict[str, str]:
    """Environment entries that arm the guard; it logs to ``base / "network.log"`` (and one line per
    armed process to ``network.log.armed``)."""
    guard = base / "guard"
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(NETWORK_GUARD)
    return {"PYTHONPATH": str(guard), "T2S_NET_LOG": str(base / "network.log")}
