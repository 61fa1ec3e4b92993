"""Linux capabilities: names to bits, and applying the five sets of an OCI process.

May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

from berth.errors import InvalidArgument
from berth.oci.spec import Capabilities
from berth.util import linux

NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
    "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
BITS = {name: bit for bit, name in enumerate(NAMES)}


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def mask(names: tuple[str, ...], *, known_up_to: int) -> int:
    """The bit mask of names; capabilities the running kernel does not know are ignored (as runc does)."""
    out = 0
    for name in names:
        bit = BITS.get(name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper())
        if bit is None:
            raise InvalidArgument(f"unknown capability {name!r}")
        if bit <= known_up_to:
            out |= 1 << bit
    return out


def names_of(bits: int) -> list[str]:
    return [name for bit, name in enumerate(NAMES) if bits >> bit & 1]


class CapPlan:
    """The five sets of a process as masks, computed before fork so the child only makes syscalls."""
    __slots__ = ("bounding", "effective", "inheritable", "permitted", "ambient", "last")

    def __init__(self, caps: Capabilities | None) -> None:
        self.last = last_cap()
        c = caps or Capabilities()
        self.bounding = mask(c.bounding, known_up_to=self.last)
        self.effective = mask(c.effective, known_up_to=self.last)
        self.inheritable = mask(c.inheritable, known_up_to=self.last)
        self.permitted = mask(c.permitted, known_up_to=self.last)
        self.ambient = mask(c.ambient, known_up_to=self.last)

    def check_grantable(self) -> None:
        """Refuse, before anything is created, capabilities this process cannot hand out."""
        _, permitted, _ = linux.capget()
        missing = (self.permitted | self.effective | self.bounding) & ~permitted
        if missing:
            raise InvalidArgument(f"cannot grant capabilities the runtime does not hold: {', '.join(names_of(missing))}")

    def drop_bounding(self) -> None:
        """Step 1, while still root: drop what is not in the bounding set (needs CAP_SETPCAP)."""
        for bit in range(self.last + 1):
            if not self.bounding >> bit & 1:
                linux.prctl(linux.PR_CAPBSET_DROP, bit)

    def apply(self) -> None:
        """Step 2, after setuid with PR_SET_KEEPCAPS: the final sets, then the ambient ones."""
        linux.capset(self.effective, self.permitted, self.inheritable)
        linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL)
        for bit in range(self.last + 1):
            if self.ambient >> bit & 1 and self.inheritable >> bit & 1 and self.permitted >> bit & 1:
                # the kernel refuses an ambient capability that is not also permitted and inheritable; runc's
                # example spec lists ambient ones without inheritable, so they are skipped, as runc does
                linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, bit)
