"""The trainer service's REST API: publish adapters, list versions, roll back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .adapter import CONFIG_FILE, WEIGHTS_FILE, AdapterFiles
from .errors import NotFoundError, RequestInfo
from .http import DEFAULT_TIMEOUT_S, FilePart, HttpClient, field


@dataclass(frozen=True)
class Published:
    """The trainer's answer to a publish (201): the new version and the sha256 of its weights."""

    run: str
    version: int
    sha256: str
    manifest_key: str
    manifest_sha256: str
    uploaded_bytes: int


@dataclass(frozen=True)
class VersionRecord:
    """One row of ``GET /v1/runs/<run>/versions``: the store's view of a version.

    ``state`` is ``active``, ``retired``, ``revoked`` or ``failed``; ``sha256`` (of
    ``adapter_model.safetensors``) and ``created_at`` are None for a failed version; ``reason`` says
    why a version is revoked or failed.
    """

    version: int
    state: str
    sha256: str | None
    created_at: str | None
    manifest_key: str
    reason: str | None


@dataclass(frozen=True)
class RunVersions:
    """A run's versions, oldest first, and ``current``: the active one (None before any publish)."""

    run: str
    current: int | None
    versions: list[VersionRecord]

    def get(self, version: int) -> VersionRecord | None:
        """The record of ``version``, or None when the trainer lists no such version."""
        return next((v for v in self.versions if v.version == version), None)


@dataclass(frozen=True)
class Rollback:
    """The trainer's answer to a rollback: the run's current version now, and the versions it revoked."""

    run: str
    current: int
    revoked: list[int]


class TrainerClient:
    """The trainer at ``url`` (``http://127.0.0.1:9001``), with its ``TRAINER_API_TOKEN``."""

    def __init__(self, url: str, token: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.http = HttpClient(url, token, timeout_s)

    def publish(self, run: str, adapter: AdapterFiles) -> Published:
        """Publishes ``adapter`` as the run's next version (``POST /v1/runs/<run>/adapters``).

        The trainer verifies it against its base and signs its manifest. Raises
        :class:`~loracast.errors.InvalidAdapterError` when it refuses the adapter (malformed,
        non-finite, for another base), :class:`~loracast.errors.UnauthorizedError` for a bad token.
        """
        if not run:
            raise ValueError("run must be a non-empty run name")
        res = self.http.post_files(
            f"/v1/runs/{quote(run, safe='')}/adapters",
            [FilePart(CONFIG_FILE, CONFIG_FILE, adapter.config), FilePart(WEIGHTS_FILE, WEIGHTS_FILE, adapter.weights)],
        )
        b, r = res.body, res.request
        return Published(
            run=field(b, "run", r),
            version=field(b, "version", r),
            sha256=field(b, "sha256", r),
            manifest_key=field(b, "manifestKey", r),
            manifest_sha256=field(b, "manifestSha256", r),
            uploaded_bytes=field(b, "uploadedBytes", r),
        )

    def publish_folder(self, run: str, folder: str | Path) -> Published:
        """Publishes a PEFT ``save_pretrained`` folder (see :meth:`publish`)."""
        return self.publish(run, AdapterFiles.from_folder(folder))

    def versions(self, run: str, timeout_s: float | None = None) -> RunVersions:
        """Every version of ``run`` with its state and sha256 (``GET /v1/runs/<run>/versions``)."""
        res = self.http.get(f"/v1/runs/{quote(run, safe='')}/versions", timeout_s)
        rows = field(res.body, "versions", res.request)
        return RunVersions(
            run=field(res.body, "run", res.request),
            current=field(res.body, "current", res.request),
            versions=[
                VersionRecord(
                    version=field(v, "version", res.request),
                    state=field(v, "state", res.request),
                    sha256=field(v, "sha256", res.request),
                    created_at=field(v, "createdAt", res.request),
                    manifest_key=field(v, "manifestKey", res.request),
                    reason=field(v, "reason", res.request),
                )
                for v in rows
            ],
        )

    def version(self, run: str, version: int) -> VersionRecord:
        """The trainer's record of ``run@version``; :class:`~loracast.errors.NotFoundError` when it lists none."""
        record = self.versions(run).get(version)
        if record is None:
            url = f"{self.http.base_url}/v1/runs/{quote(run, safe='')}/versions"
            raise NotFoundError(404, "not_found", f"{run}@{version} is not published", RequestInfo("GET", url))
        return record

    def rollback(self, run: str, version: int) -> Rollback:
        """Rolls ``run`` back to ``version``: later versions are revoked (``POST /v1/runs/<run>/rollback``)."""
        res = self.http.post_json(f"/v1/runs/{quote(run, safe='')}/rollback", {"version": version})
        return Rollback(
            run=field(res.body, "run", res.request),
            current=field(res.body, "current", res.request),
            revoked=list(field(res.body, "revoked", res.request)),
        )
