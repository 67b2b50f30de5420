"""One generator's API: its adapter list (``GET /v1/adapters``) and completions naming ``<run>@<version>``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import RequestInfo
from .http import DEFAULT_TIMEOUT_S, HttpClient, Response, field

#: Response headers naming the adapter version behind every generator answer.
VERSION_HEADER = "x-loracast-adapter-version"
SHA256_HEADER = "x-loracast-adapter-sha256"


@dataclass(frozen=True)
class AdapterState:
    """One row of a generator's ``GET /v1/adapters``: its view of ``run@version``.

    ``state`` is ``announced``, ``staged``, ``active``, ``retired``, ``revoked`` or ``failed``;
    ``reason`` says why it failed or was revoked.
    """

    run: str
    version: int
    state: str
    sha256: str | None
    reason: str | None


@dataclass(frozen=True)
class Sample:
    """One completion choice: its text, token ids and the sampled tokens' logprobs (natural log).

    ``prompt_index`` is the prompt it continues; ``version`` and ``sha256`` are what the generator
    reported for the whole response (its ``x-loracast-adapter-*`` headers), ``model`` its ``model``.
    """

    prompt_index: int
    text: str
    token_ids: list[int]
    prompt_token_ids: list[int]
    logprobs: list[float]
    finish_reason: str
    model: str
    version: int | None
    sha256: str | None
    #: With ``logprobs=N`` (N > 0): for each sampled token, its N most likely alternatives (token
    #: text → logprob), as the API's ``top_logprobs``; None when none were asked for.
    top_logprobs: list[dict[str, float]] | None = None


@dataclass(frozen=True)
class Completion:
    """A completions answer: its samples, and the call, for errors that refer to it."""

    samples: list[Sample]
    model: str
    version: int | None
    sha256: str | None
    request: RequestInfo


def _header_version(res: Response) -> int | None:
    raw = res.headers.get(VERSION_HEADER)
    return int(raw) if raw is not None and raw.isdigit() else None


class GeneratorClient:
    """The generator at ``url`` (``http://127.0.0.1:9002``). Its completions need no token."""

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.http = HttpClient(url, None, timeout_s)

    @property
    def url(self) -> str:
        """The generator's base URL."""
        return self.http.base_url

    def adapters(self, timeout_s: float | None = None) -> list[AdapterState]:
        """Every version this generator knows of, with its state (``GET /v1/adapters``)."""
        res = self.http.get("/v1/adapters", timeout_s)
        return [
            AdapterState(
                run=field(row, "run", res.request),
                version=field(row, "version", res.request),
                state=field(row, "state", res.request),
                sha256=field(row, "sha256", res.request),
                reason=field(row, "reason", res.request),
            )
            for row in field(res.body, "data", res.request)
        ]

    def complete(
        self,
        model: str,
        prompts: Sequence[str] | Sequence[Sequence[int]],
        *,
        n: int = 1,
        max_tokens: int = 16,
        temperature: float = 1.0,
        logprobs: int = 0,
        seed: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Completion:
        """``POST /v1/completions`` for ``model``, with ``return_token_ids`` and ``logprobs`` (0 to 20 alternatives).

        ``prompts`` are strings or token id lists; choices come back as samples in the API's order
        (prompt by prompt, ``n`` each). ``extra`` adds any other parameter of docs/api.md except
        ``stream`` (this call reads one JSON answer). Raises ``TypeError`` for a bare string (a list
        of prompts is expected) and ``ValueError`` for ``stream`` in ``extra``.
        """
        if isinstance(prompts, str | bytes):
            raise TypeError("prompts is a list of prompts: wrap a single prompt in a list")
        if extra is not None and "stream" in extra:
            raise ValueError("complete() reads one JSON answer: stream is not supported here")
        body: dict[str, Any] = {
            **(extra or {}),
            "model": model,
            "prompt": [p if isinstance(p, str) else list(p) for p in prompts],
            "n": n,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "logprobs": logprobs,
            "return_token_ids": True,
        }
        if seed is not None:
            body["seed"] = seed
        res = self.http.post_json("/v1/completions", body)
        r = res.request
        answered_model = field(res.body, "model", r)
        version, sha256 = _header_version(res), res.headers.get(SHA256_HEADER)
        samples = []
        for choice in field(res.body, "choices", r):
            lp = field(choice, "logprobs", r)
            samples.append(
                Sample(
                    prompt_index=field(choice, "index", r) // n,
                    text=field(choice, "text", r),
                    token_ids=list(field(choice, "token_ids", r)),
                    prompt_token_ids=list(field(choice, "prompt_token_ids", r)),
                    logprobs=list(field(lp, "token_logprobs", r)),
                    finish_reason=field(choice, "finish_reason", r),
                    model=answered_model,
                    version=version,
                    sha256=sha256,
                    top_logprobs=lp.get("top_logprobs") if logprobs > 0 and isinstance(lp, dict) else None,
                )
            )
        return Completion(samples, answered_model, version, sha256, r)
