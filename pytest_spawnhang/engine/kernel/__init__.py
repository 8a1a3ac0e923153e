"""What each thread of a process tree waits for, as the kernel shows it (/proc, netlink), and
native stacks for processes that are not Python. Standard library only."""

from .native import NativeFrame, NativeStack, native_stack
from .records import KINDS, FdRef, Peer, ProcessWaits, ThreadWait
from .waits import held_addresses, read_waits

__all__ = ["KINDS", "FdRef", "NativeFrame", "NativeStack", "Peer", "ProcessWaits", "ThreadWait",
           "held_addresses", "native_stack", "read_waits"]
