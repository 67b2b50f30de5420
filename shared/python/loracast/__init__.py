"""loracast's Python client (standard library only): publish PEFT adapters to the trainer service,
wait until the generators serve them, list and roll back versions, and sample rollouts from an
exact version, checked against the trainer's record.

    from loracast import Fleet, GeneratorClient, TrainerClient

    trainer = TrainerClient("http://127.0.0.1:9001", token="local-dev-token-change-me")
    fleet = Fleet(trainer, [GeneratorClient("http://127.0.0.1:9002")])
    v = trainer.publish_folder("my-run", "out/adapter")
    fleet.wait_active("my-run", v.version, timeout_s=30)
    samples = fleet.sample("my-run", v.version, ["q5:"], n=4, max_tokens=16)
"""

from .adapter import AdapterFiles
from .callback import AdapterPublisher, publishing_callback
from .errors import (
    AdapterFailedError,
    AdapterInputError,
    AdapterRevokedError,
    ApiError,
    BadRequestError,
    ConflictError,
    ConnectionFailedError,
    ForbiddenError,
    InvalidAdapterError,
    LoracastError,
    NotFoundError,
    PayloadTooLargeError,
    ProtocolError,
    RequestInfo,
    RequestTimeoutError,
    ServerError,
    TransportError,
    UnauthorizedError,
    VersionMismatchError,
    VersionStateError,
    WaitTimeoutError,
)
from .fleet import Fleet, verify
from .generator import AdapterState, Completion, GeneratorClient, Sample
from .safetensors import Tensor, encode_safetensors
from .trainer import Published, Rollback, RunVersions, TrainerClient, VersionRecord

__all__ = [
    "AdapterFailedError",
    "AdapterFiles",
    "AdapterInputError",
    "AdapterPublisher",
    "AdapterRevokedError",
    "AdapterState",
    "ApiError",
    "BadRequestError",
    "Completion",
    "ConflictError",
    "ConnectionFailedError",
    "Fleet",
    "ForbiddenError",
    "GeneratorClient",
    "InvalidAdapterError",
    "LoracastError",
    "NotFoundError",
    "PayloadTooLargeError",
    "ProtocolError",
    "Published",
    "RequestInfo",
    "RequestTimeoutError",
    "Rollback",
    "RunVersions",
    "Sample",
    "ServerError",
    "Tensor",
    "TrainerClient",
    "TransportError",
    "UnauthorizedError",
    "VersionMismatchError",
    "VersionRecord",
    "VersionStateError",
    "WaitTimeoutError",
    "encode_safetensors",
    "publishing_callback",
    "verify",
]
