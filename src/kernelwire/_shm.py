"""Big buffers through shared memory between kernelwire Sessions on one host.

Both cores call this module from their send and their receive (the work is
one copy per buffer and a few system calls: compiling it gains nothing).

The wire format stays jupyter_client's: a buffer at or above the threshold
is sent as an empty frame, and the signed header says where its bytes are::

    header["kernelwire_shm"] = [[frame_index, segment_name, offset, nbytes], ...]
    header["kernelwire_host"] = "<token of this host, user and shared-memory mount>"

A segment is a file in /dev/shm, mode 0600, named
``kernelwire-<pid namespace>-<creator pid>-<128 random bits>``.  The sender
writes the buffer into it once; every receiver maps it copy-on-write
(``MAP_PRIVATE``), so its writes stay its own, and keeps the mapping as long
as it keeps the buffer, so the sender may unlink the file at any time after
the receivers have mapped it.  The sender unlinks:

- a segment sent in a ``*_request``: ``grace`` seconds after every request
  that carried it has had its reply (the receivers mapped it before they
  replied);
- any other: ``linger`` seconds after the send;
- all of them when the process exits, and a segment whose creator died
  (SIGKILL included) at the next Session start (``sweep``).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import logging
import mmap
import os
import re
import secrets
import signal
import stat
import sys
import threading
import time
import typing as t
import weakref

DESCRIPTOR_KEY = "kernelwire_shm"
HOST_KEY = "kernelwire_host"
SHM_DIR = os.environ.get("KERNELWIRE_SHM_DIR", "/dev/shm")
PREFIX = "kernelwire-"
_NAME = re.compile(r"kernelwire-(\d+)-(\d+)-([0-9a-f]{32})\Z")
_PAGE = mmap.ALLOCATIONGRANULARITY
_CHUNK = 1 << 26  # pwrite at most 64 MB at a time

log = logging.getLogger("kernelwire.shared_memory")


class SharedMemoryError(ValueError):
    """A shared-memory descriptor that cannot be honoured (a ValueError, as
    jupyter_client raises for any other invalid message)."""


def supported() -> bool:
    """Shared memory needs Linux and a writable shared-memory directory."""
    return sys.platform.startswith("linux") and os.access(SHM_DIR, os.W_OK | os.X_OK)


def _pid_namespace() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def host_token() -> str:
    """Same boot, same user, same shared-memory mount: the peers that can map our segments."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        shm = os.stat(SHM_DIR)
    except OSError:
        return ""
    seed = f"{boot}/{os.geteuid()}/{shm.st_dev}/{shm.st_ino}"
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


# -- segments ------------------------------------------------------------------


def _path(name: str) -> str:
    return os.path.join(SHM_DIR, name)


def create_segment(data: memoryview) -> str:
    """A new 0600 segment holding a copy of ``data``; OSError (ENOSPC...) leaves nothing."""
    name = f"{PREFIX}{_PIDNS}-{os.getpid()}-{secrets.token_hex(16)}"
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(_path(name), flags, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        view = data.cast("B") if data.ndim != 1 or data.format != "B" else data
        offset, total = 0, view.nbytes
        while offset < total:
            written = os.pwrite(fd, view[offset : offset + _CHUNK], offset)
            if written <= 0:
                raise OSError(errno.ENOSPC, "short write to shared memory")
            offset += written
    except BaseException:
        os.close(fd)
        unlink(name)
        raise
    os.close(fd)
    return name


def _creator(name: str) -> int:
    match = _NAME.match(name)
    return int(match.group(2)) if match else -1


def unlink(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_path(name))


def map_segment(name: t.Any, offset: t.Any, nbytes: t.Any) -> memoryview:
    """A private (copy-on-write) view of ``nbytes`` at ``offset`` in our own 0600 segment."""
    if not (
        type(name) is str
        and _NAME.match(name)
        and type(offset) is int
        and type(nbytes) is int
        and offset >= 0
        and nbytes >= 0
    ):
        raise SharedMemoryError(
            f"malformed shared-memory descriptor: {name!r}, {offset!r}, {nbytes!r}"
        )
    try:
        fd = os.open(_path(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SharedMemoryError(
            f"shared-memory segment {name} is gone: its sender released it or exited"
        ) from None
    except OSError as e:
        raise SharedMemoryError(f"cannot open shared-memory segment {name}: {e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise SharedMemoryError(f"shared-memory segment {name} is not owned by this user")
        if stat.S_IMODE(st.st_mode) != 0o600:
            raise SharedMemoryError(
                f"shared-memory segment {name} has mode {stat.S_IMODE(st.st_mode):o}, not 600"
            )
        if offset + nbytes > st.st_size:
            raise SharedMemoryError(
                f"shared-memory descriptor for {name} asks for bytes {offset}..{offset + nbytes}"
                f" of a {st.st_size}-byte segment"
            )
        if nbytes == 0:
            return memoryview(bytearray())
        start = offset - offset % _PAGE
        mapped = mmap.mmap(
            fd,
            offset + nbytes - start,
            flags=mmap.MAP_PRIVATE,
            prot=mmap.PROT_READ | mmap.PROT_WRITE,
            offset=start,
        )
    finally:
        os.close(fd)
    return memoryview(mapped)[offset - start : offset - start + nbytes]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return True


def sweep() -> list[str]:
    """Remove our user's segments whose creator (in our pid namespace) has died."""
    removed = []
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return removed
    uid = os.geteuid()
    for name in names:
        match = _NAME.match(name)
        if not match or int(match.group(1)) != _PIDNS:
            continue
        if pid_alive(int(match.group(2))):
            continue
        try:
            if os.lstat(_path(name)).st_uid != uid:
                continue
        except FileNotFoundError:
            continue
        unlink(name)
        removed.append(name)
    if removed:
        log.info("removed %d shared-memory segments of exited processes", len(removed))
    return removed


def live_segments() -> list[str]:
    """Names of every kernelwire segment in the shared-memory directory."""
    try:
        return sorted(n for n in os.listdir(SHM_DIR) if n.startswith(PREFIX))
    except OSError:
        return []


_PIDNS = _pid_namespace()
_HOST = host_token()


# -- one Session's shared memory -----------------------------------------------


class _Segment:
    """A segment one Session sent: its own copy, or a kernelwire.shared array it borrows."""

    __slots__ = ("name", "nbytes", "pending", "release_at", "allocation")

    def __init__(
        self, name: str, nbytes: int, release_at: float, allocation: Allocation | None = None
    ) -> None:
        self.name = name
        self.nbytes = nbytes
        self.pending: set[str] = set()  # requests carrying it, awaiting their reply
        self.release_at = release_at
        self.allocation = allocation

    def release(self) -> None:
        if self.allocation is not None:
            self.allocation.drop_hold()
        elif _creator(self.name) == os.getpid():  # a forked child leaves its parent's
            unlink(self.name)


class Allocation:
    """A kernelwire.shared array's segment: unlinked once the array is gone and no
    Session still holds it for receivers that have not mapped it yet."""

    def __init__(self, name: str, address: int, nbytes: int) -> None:
        self.name = name
        self.address = address
        self.nbytes = nbytes
        self.holds = 0
        self.alive = True
        self._lock = threading.Lock()

    def hold(self) -> None:
        with self._lock:
            self.holds += 1

    def drop_hold(self) -> None:
        with self._lock:
            self.holds -= 1
            gone = not self.alive and self.holds <= 0
        if gone:
            self._unlink()

    def array_gone(self) -> None:
        with self._lock:
            self.alive = False
            gone = self.holds <= 0
        if gone:
            self._unlink()

    def _unlink(self) -> None:
        _ALLOCATIONS.pop(self.address, None)
        if _creator(self.name) == os.getpid():
            unlink(self.name)


#: live kernelwire.shared allocations of this process, by start address
_ALLOCATIONS: dict[int, Allocation] = {}


def locate(view: memoryview) -> tuple[Allocation, int] | None:
    """The shared allocation ``view``'s bytes lie in, and their offset there."""
    if not _ALLOCATIONS:
        return None
    try:
        import numpy

        address = numpy.frombuffer(view, numpy.uint8).ctypes.data
    except (ImportError, ValueError, TypeError):
        return None
    for allocation in list(_ALLOCATIONS.values()):
        start = allocation.address
        if start <= address and address + view.nbytes <= start + allocation.nbytes:
            return allocation, address - start
    return None


def allocate(nbytes: int) -> tuple[str, mmap.mmap]:
    """A new 0600 segment of ``nbytes`` (reserved now: ENOSPC here, never SIGBUS later),
    mapped shared and writable."""
    name = f"{PREFIX}{_PIDNS}-{os.getpid()}-{secrets.token_hex(16)}"
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(_path(name), flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.posix_fallocate(fd, 0, max(nbytes, 1))
        mapped = mmap.mmap(fd, max(nbytes, 1), flags=mmap.MAP_SHARED)
    except BaseException:
        os.close(fd)
        unlink(name)
        raise
    os.close(fd)
    return name, mapped


class SharedMemory:
    """What one Session has in shared memory, and its rules for sending.

    ``peers="all"``: every peer is a kernelwire Session on this host with the
    same setting (the user says so).  ``peers="known"``: only a reply to a
    request that came from this host with shared memory on, or a message
    routed to identities whose own messages said so (``learned``).
    """

    def __init__(
        self,
        threshold: int,
        limit: int,
        linger: float = 30.0,
        grace: float = 2.0,
        peers: str = "all",
    ) -> None:
        self.threshold = threshold
        self.limit = limit
        self.linger = linger
        self.grace = grace
        self.peers = peers
        self.learned: set[bytes] = set()
        self.fallbacks = 0
        self._segments: dict[str, _Segment] = {}
        self._by_request: dict[str, list[_Segment]] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self._batch: dict | None = None
        self._batch_depth = 0
        self._warned: set[str] = set()
        _REAPER.watch(self)
        _release_on_sigterm()
        sweep()  # at every Session start: what dead processes left goes

    # -- sending -------------------------------------------------------------

    def held(self) -> list[str]:
        """Names of the segments this Session keeps for its receivers."""
        with self._lock:
            return [segment.name for segment in self._segments.values()]

    def allowed(self, msg: dict, ident: t.Any) -> bool:
        if self.peers == "all":
            return True
        parent = msg.get("parent_header")
        if parent and parent.get(HOST_KEY) == _HOST:
            return True  # a reply to a request from a Session that can map our segments
        if not ident:
            return False
        idents = [ident] if isinstance(ident, (bytes, str)) else ident
        learned = self.learned
        return all((i.encode() if isinstance(i, str) else bytes(i)) in learned for i in idents)

    def outgoing(self, msg: dict, buffers: list, ident: t.Any) -> tuple[dict, list]:
        """The message and frames to put on the wire: big buffers become descriptors."""
        header = dict(msg["header"])
        header.pop(DESCRIPTOR_KEY, None)  # a relayed message's descriptors are not ours
        header[HOST_KEY] = _HOST
        descriptors = []
        if buffers and self.allowed(msg, ident):
            threshold = self.threshold
            msg_type, msg_id = header["msg_type"], header["msg_id"]
            for index, buf in enumerate(buffers):
                view = buf if type(buf) is memoryview else memoryview(buf)
                if view.nbytes < threshold:
                    continue
                shared = locate(view)
                if shared is not None:  # already in shared memory: no copy at all
                    allocation, offset = shared
                    allocation.hold()
                    segment = _Segment(
                        allocation.name, 0, time.monotonic() + self.linger, allocation
                    )
                    self._keep(segment, msg_type, msg_id)
                    descriptors.append([index, allocation.name, offset, view.nbytes])
                    continue
                name = self._segment_for(buf, view, msg_type, msg_id)
                if name is not None:
                    descriptors.append([index, name, 0, view.nbytes])
        if descriptors:
            header[DESCRIPTOR_KEY] = descriptors
            buffers = list(buffers)
            for index, *_ in descriptors:
                buffers[index] = b""
        wire = dict(msg)
        wire["header"] = header
        return wire, buffers

    def _segment_for(self, buf: t.Any, view: memoryview, msg_type: str, msg_id: str) -> str | None:
        batch = self._batch
        # in a batch, the very same buffer object sent again is the same bytes
        found = batch.get(id(buf)) if batch is not None else None
        if found is None:
            if self._bytes + view.nbytes > self.limit:
                self._fallback("limit", f"holding {self._bytes} of {self.limit} bytes")
                return None
            try:
                name = create_segment(view)
            except OSError as e:
                self._fallback(errno.errorcode.get(e.errno or 0, "OSError"), str(e))
                return None
            segment = _Segment(name, view.nbytes, time.monotonic() + self.linger)
            if batch is not None:
                batch[id(buf)] = (segment, buf)  # holding buf keeps its id unique
        else:
            segment = found[0]
        self._keep(segment, msg_type, msg_id)
        return segment.name

    def _keep(self, segment: _Segment, msg_type: str, msg_id: str) -> None:
        with self._lock:
            if id(segment) not in self._segments:
                self._segments[id(segment)] = segment
                self._bytes += segment.nbytes
            if msg_type.endswith("_request"):
                segment.pending.add(msg_id)
                segment.release_at = float("inf")
                self._by_request.setdefault(msg_id, []).append(segment)

    def _fallback(self, reason: str, detail: str) -> None:
        self.fallbacks += 1
        level = logging.DEBUG if reason in self._warned else logging.WARNING
        self._warned.add(reason)
        log.log(level, "buffer sent as a frame, not through shared memory (%s): %s", reason, detail)

    def begin_batch(self) -> None:
        """Until end_batch, a buffer object sent again reuses its segment (broadcast).

        Only for sends of buffers nobody modifies in between, such as one
        DirectView call to N engines: begin and end run in the thread that sends.
        """
        self._batch_depth += 1
        if self._batch is None:
            self._batch = {}

    def end_batch(self) -> None:
        self._batch_depth = max(0, self._batch_depth - 1)
        if not self._batch_depth:
            self._batch = None

    @contextlib.contextmanager
    def batch(self) -> t.Iterator[None]:
        self.begin_batch()
        try:
            yield
        finally:
            self.end_batch()

    # -- receiving -------------------------------------------------------------

    def incoming(self, message: dict) -> dict:
        """Map the descriptors of a received message; release what its reply settles."""
        header = message["header"]
        token = header.get(HOST_KEY)
        if token is not None and token == _HOST:
            session = header.get("session")
            if isinstance(session, str):  # ipyparallel engines route by their session id
                self.learned.add(session.encode())
        parent = message["parent_header"]
        if self._by_request and parent:
            self._replied(parent.get("msg_id"))
        descriptors = header.pop(DESCRIPTOR_KEY, None)
        if descriptors is not None:
            resolve(message, descriptors)
        return message

    def _replied(self, msg_id: t.Any) -> None:
        with self._lock:
            segments = self._by_request.pop(msg_id, None) if type(msg_id) is str else None
            if not segments:
                return
            now = time.monotonic()
            for segment in segments:
                segment.pending.discard(msg_id)
                if not segment.pending:
                    segment.release_at = now + self.grace

    # -- releasing ---------------------------------------------------------------

    def release_expired(self, now: float) -> None:
        with self._lock:
            expired = [s for s in self._segments.values() if s.release_at <= now]
            for segment in expired:
                del self._segments[id(segment)]
                self._bytes -= segment.nbytes
        for segment in expired:
            segment.release()

    def release_all(self) -> None:
        """Unlink every segment this Session created (receivers keep their mappings)."""
        with self._lock:
            segments = list(self._segments.values())
            self._segments.clear()
            self._by_request.clear()
            self._bytes = 0
        for segment in segments:
            segment.release()


def resolve(message: dict, descriptors: t.Any) -> None:
    """Replace the placeholder frames of ``message`` with the segments they name."""
    buffers = message["buffers"]
    if not isinstance(descriptors, list):
        raise SharedMemoryError(f"malformed shared-memory descriptors: {descriptors!r}")
    resolved = list(buffers)
    for descriptor in descriptors:
        if not (isinstance(descriptor, list) and len(descriptor) == 4):
            raise SharedMemoryError(f"malformed shared-memory descriptor: {descriptor!r}")
        index, name, offset, nbytes = descriptor
        if type(index) is not int or not 0 <= index < len(buffers) or len(buffers[index]):
            raise SharedMemoryError(
                f"shared-memory descriptor for frame {index!r} of a message with"
                f" {len(buffers)} buffer frames, or the frame is not empty"
            )
        resolved[index] = map_segment(name, offset, nbytes)
    message["buffers"] = resolved


def refuse(message: dict) -> t.NoReturn:
    """A receiver with shared memory off got a message that needs it."""
    raise SharedMemoryError(
        f"message {message['header'].get('msg_id')!r} carries buffers in shared memory, but"
        " this Session has shared_memory_threshold=0; enable it on every peer"
        " (kernelwire.ipp.Cluster(shared_memory=True) does so for a cluster)"
    )


def incoming(shm: SharedMemory | None, message: dict) -> dict:
    """The receive step both cores call when shared memory is on or a descriptor came."""
    if shm is None:
        refuse(message)
    return shm.incoming(message)


# -- one thread per process unlinks what is due ----------------------------------


class _Reaper:
    def __init__(self) -> None:
        self._sessions: weakref.WeakSet[SharedMemory] = weakref.WeakSet()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pid = 0

    def watch(self, shm: SharedMemory) -> None:
        with self._lock:
            self._sessions.add(shm)
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="kernelwire-shm-reaper", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(0.5)
            now = time.monotonic()
            for shm in list(self._sessions):
                shm.release_expired(now)

    def release_all(self) -> None:
        for shm in list(self._sessions):
            shm.release_all()


_REAPER = _Reaper()
atexit.register(_REAPER.release_all)


def _release_on_sigterm() -> None:
    """SIGTERM (how ipyparallel stops engines) skips atexit: release first, then die."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # the program handles it (and exits through atexit, or not at all)

    def release_and_die(signum: int, frame: t.Any) -> None:
        _REAPER.release_all()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, release_and_die)
