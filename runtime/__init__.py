"""The fake Docker: images, containers, programs and the simulated network.

No Kubernetes words here; a node agent drives it through :mod:`runtime.cri`.
Build one :class:`Registry` and one :class:`Network` per cluster, then one
:class:`FakeRuntime` per machine, all sharing one :class:`actors.timers.TimerService`.
"""

from runtime.cri import (
    ContainerConfig,
    ContainerExit,
    ContainerInfo,
    ContainerNotFound,
    ContainerRuntime,
    ContainerState,
    ContainerStateError,
    ImageNotPresent,
    ImagePullError,
    ProbeResult,
    RuntimeDown,
    RuntimeError_,
    SandboxInfo,
    SandboxNotFound,
)
from runtime.fake import FakeRuntime
from runtime.images import ImageSpec, Registry, normalize_image
from runtime.network import (
    AddressInUse,
    ConnectionRefused,
    ConnectionReset,
    Fault,
    HostInfo,
    HostUnreachable,
    Listener,
    NameNotFound,
    Network,
    NetworkError,
    NetworkTimeout,
)
from runtime.programs import (
    DEFAULT_PROGRAM,
    Curve,
    MiB,
    Program,
    ProgramContext,
    ProgramExit,
    ProgramFn,
    Timeline,
)
from runtime.shell import compile_argv

__all__ = [
    "DEFAULT_PROGRAM",
    "AddressInUse",
    "ConnectionRefused",
    "ConnectionReset",
    "ContainerConfig",
    "ContainerExit",
    "ContainerInfo",
    "ContainerNotFound",
    "ContainerRuntime",
    "ContainerState",
    "ContainerStateError",
    "Curve",
    "FakeRuntime",
    "Fault",
    "HostInfo",
    "HostUnreachable",
    "ImageNotPresent",
    "ImagePullError",
    "ImageSpec",
    "Listener",
    "MiB",
    "NameNotFound",
    "Network",
    "NetworkError",
    "NetworkTimeout",
    "ProbeResult",
    "Program",
    "ProgramContext",
    "ProgramExit",
    "ProgramFn",
    "Registry",
    "RuntimeDown",
    "RuntimeError_",
    "SandboxInfo",
    "SandboxNotFound",
    "Timeline",
    "compile_argv",
    "normalize_image",
]
