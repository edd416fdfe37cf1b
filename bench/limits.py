"""The open-files limit of the benchmark's processes: one definition for the harness, the generator and the
recovery-memory bench. No imports beyond the standard library, so a script run on its own can use it."""

from __future__ import annotations

import contextlib
import resource

NOFILE = 65_536
"""What every benchmark process asks for: a server or a generator holds one descriptor per client, and the
growth curve goes as far as this allows (see ``run.growth_top``). This machine's hard limit is 20,000 and
its root lacks ``CAP_SYS_RESOURCE``, so 20,000 it is here."""


def raise_nofile(limit: int = NOFILE) -> int:
    """Raise this process's ``RLIMIT_NOFILE`` to ``limit``, the hard limit too where that is allowed (root
    or ``CAP_SYS_RESOURCE``; it stays at the hard limit otherwise). Returns the soft limit now in force:
    the most descriptors, hence clients, this process can hold."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < limit:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
            return limit
        except (ValueError, OSError):
            limit = hard  # not allowed to raise the hard limit: as far as it goes
    if soft < limit:
        # (It fails above the kernel's fs.nr_open under an unlimited hard limit: the soft limit stays.)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
