"""Simulated network conditions and injected faults: what a bad night looks like, repeatably.

:class:`FaultConfig` is the setting (``--faults`` and its compact spec); :class:`FaultDraws`
makes a sandbox's seeded random draws from it, so a seed and an order of calls always give
the same latency and the same faults. Which answer a fault gives is the server's business.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigError

__all__ = [
    "FAULTS",
    "GARBLED_ANSWER_FAULTS",
    "GZIP_BOMB_BYTES",
    "HUGE_BODY_BYTES",
    "NESTED_BODY_DEPTH",
    "NETWORK_FAULTS",
    "FaultConfig",
    "FaultDraws",
]

# Fault names in the order a draw walks them (keep: a seed's faults depend on it).
FAULTS = (
    "error_500_plain",
    "error_500_mx",
    "error_200",
    "throttle_429",
    "throttle_403",
    "throttle_200",
    "proxy_502",
    "drop_before",
    "drop_after",
    # New faults go at the end: inserting one would shift what an old seed draws.
    "redirect",
    "echo_headers",
    "html_200",
    "empty_200",
    "truncated_200",
    "huge_body",
    "nested_200",
    "echo_encoded",
    "gzip_bomb",
)
# Faults of the network in front of the API: they hit every CreateCustom or bulk call, before
# authentication and the rate limiter (drop_before, proxy_502, redirect) or after the answer
# (drop_after).
NETWORK_FAULTS = frozenset({"drop_before", "proxy_502", "drop_after", "redirect"})
# Faults that let the call be processed (lead and activity created) and then replace its
# success answer with one the client cannot read.
GARBLED_ANSWER_FAULTS = frozenset(
    {"html_200", "empty_200", "truncated_200", "huge_body", "nested_200", "gzip_bomb"}
)
# huge_body's answer size: twice lsq-import's cap on an answer body (1 MiB), and far more
# than any LeadSquared answer (a few hundred bytes).
HUGE_BODY_BYTES = 2 * 1024 * 1024
# gzip_bomb's answer once decompressed: 200 MiB, sent as about 200 kB of gzip (far under the
# 1 MiB cap on what is read), the size a client without a bound on decompression fills its
# memory with.
GZIP_BOMB_BYTES = 200 * 1024 * 1024
# nested_200's depth of lists: far past what Python's json parses (about 1,000 levels) in
# 200 kB, well under the body cap, so the client reads it whole and must not crash on it.
NESTED_BODY_DEPTH = 100_000
_TRUE = {"1", "true", "yes", "on", ""}
_FALSE = {"0", "false", "no", "off"}


@dataclass
class FaultConfig:
    """Simulated network conditions and injected faults, deterministic under ``seed``.

    Latency: each ``/v2/`` call draws ``max(0, latency + uniform(-jitter, jitter))`` seconds:
    half is spent before the arrival is recorded (uplink), half after the response is decided
    (downlink). Jitter can reorder arrivals, as a real network does.

    Faults (CreateCustom and the two bulk POSTs, ``Lead/Bulk/CreateOrUpdate`` and
    ``Bulk/CustomActivity/Add/ByLeadField``; each a probability per call, 0..1, summing to at
    most 1): one ``random()`` per arriving such call picks at most one of them, walking
    :data:`FAULTS` in order. Latency and faults share one ``random.Random(seed)``, so a seed
    and an order of calls always give the same faults. None of them creates anything except
    ``drop_after`` and the garbled answers (``html_200``, ``empty_200``, ``truncated_200``,
    ``huge_body``, ``nested_200``, ``gzip_bomb``).

    On a bulk call each fault means what it means for CreateCustom, for the whole call: the
    network faults and the server faults (500s, ``error_200``, throttling, the echoes)
    process none of its records; ``drop_after`` processes every record and then closes the
    connection; a garbled answer processes every record and replaces the ``{"Status":
    "Success", "Response": [...]}`` answer as it replaces CreateCustom's success (the
    padding of ``huge_body``, ``nested_200`` and ``gzip_bomb`` goes before the answer's
    fields). The ``throttle_*`` faults name the bulk limit on a bulk call ("API calls
    exceeded the limit of B in P second(s)", B the sandbox's ``bulk_rate``).

    - ``error_500_plain``: HTTP 500 with no MX type (a bare HTML page or
      ``{"Status": "Error", "Message": ...}``): transient, worth a retry.
    - ``error_500_mx``: HTTP 500 ``MXInvalidInputException`` "Something went wrong": LeadSquared's
      way of reporting a row error, so permanent.
    - ``error_200``: HTTP 200 with ``Status: Error`` and ``MXInvalidInputException``: permanent.
    - ``throttle_429``/``throttle_403``/``throttle_200``: the rate-limit answer
      (``MXAPIRateLimitExceededException``, "API calls exceeded the limit of R in P
      second(s)") with that status, even though the real limiter admitted the call.
    - ``proxy_502``: a proxy's HTML 502 page; the API never saw the call (not metered).
    - ``drop_before``: the connection is closed before the call is processed (not metered);
      the client sees a disconnect, so it cannot know that nothing happened.
    - ``drop_after``: the call is processed (lead and activity created, if valid), then the
      connection is closed instead of answering: "response lost after the activity was
      created".
    - ``redirect``: a ``302 Found`` (not metered, nothing created) whose ``Location`` is the
      same path under ``/_sandbox/redirected/`` on the other loopback name (``localhost``
      for ``127.0.0.1`` and the reverse), as a hijacked DNS name or a misconfigured proxy
      would send. The sandbox serves that target: it answers a fake success (an ``Id`` that
      is no activity) and records each arrival in :attr:`Sandbox.redirected`, with whether
      it carried the keys, so a test can prove that a client never followed with them.
    - ``echo_headers``: HTTP 500 ``MXInvalidInputException`` whose ExceptionMessage echoes
      the request headers, both keys included, as a careless (or hostile) server's error
      page would: permanent, and the keys must not reach any output.
    - ``echo_encoded``: likewise, but the headers are echoed in a disguise, a different one
      each call, in turn: base64 (standard, then URL-safe), hex, HTML numeric entities,
      JSON ``\\u`` escapes, and each key cut in two by a line break. A client that only
      looks for the keys as they are lets every one through; lsq-import withholds the
      whole message.
    - ``html_200``, ``empty_200``, ``truncated_200``: the call is processed (lead and
      activity created, like ``drop_after``), then its success answer is replaced by an
      HTTP 200 with an HTML page, with an empty body, or with the success JSON cut in half.
      The client cannot tell whether the activity exists: the row must end ``unknown``, not
      be sent again. A call the account refuses (an invalid row) gets its error as usual.
    - ``huge_body``: likewise processed, then answered with the success JSON padded to
      :data:`HUGE_BODY_BYTES` (2 MiB), sent chunked (no Content-Length to check first), as a
      broken or hostile server that streams without end would: a client must stop reading
      at its cap, and since the call was processed, the row ends ``unknown``.
    - ``nested_200``: likewise processed, then answered with the success JSON plus a
      ``Padding`` of lists nested :data:`NESTED_BODY_DEPTH` (100,000) levels deep (200 kB):
      a parser without a depth limit overflows its stack (Python's json raises
      RecursionError), a client must treat it as an unreadable body: the row ends
      ``unknown``.
    - ``gzip_bomb``: likewise processed, then answered with ``Content-Encoding: gzip``:
      about 200 kB that decompress to :data:`GZIP_BOMB_BYTES` (200 MiB) of JSON, a
      ``Padding`` string and then the success. A client that bounds only the bytes it reads
      (not what they decompress to) takes 200 MiB of memory; it must stop decompressing at
      its cap, and since the call was processed, the row ends ``unknown``. The compressed
      padding is made once per process (about a second), on the first such call.

    ``record_error`` (bulk calls only; a probability per *record*, not counted in the sum
    above): each record of a processed bulk call independently fails, unprocessed, with the
    record error ``{"RowNumber", "ExceptionType": "MXUnknownException", "ExceptionMessage":
    "Record could not be processed (sandbox fault)"}`` in its place in the answer, while the
    other records succeed (or fail on their own merits): a partial failure, in an HTTP 200.
    ``MXUnknownException`` (:data:`~importer.sandbox.errors.RECORD_FAULT_TYPE`) is this
    sandbox's choice of a type that is no input error, so that a client can tell "this record
    is wrong" from "this record was not processed". One ``random()`` per record, in order,
    taken as the call is processed, with no await since its arrival (a call refused, or
    answered by a fault that processes nothing, draws none), so a seed and an order of calls
    repeat them.
    :attr:`CallRecord.faulted_rows` names the rows it failed.

    ``nonatomic_upsert``: CreateCustom looks the lead up, sleeps ``upsert_pause`` seconds,
    then inserts, so two concurrent calls for one new key create two leads (LeadSquared may
    do so; see :meth:`Sandbox.duplicate_leads`). Bulk calls stay atomic: it does not apply
    to them.

    ``read_lag``: seconds (of the sandbox's clock) before a new activity is listed by the
    read endpoint (``ProspectActivity.svc/Retrieve``: neither in its page nor in its
    ``RecordCount``), as a read side that lags behind the writes would; 0 lists it at once.
    Leads are found at once. Like ``latency``, not a probability and draws nothing.

    The compact form used by ``--faults`` is :meth:`from_spec`.
    """

    latency: float = 0.0
    jitter: float = 0.0
    seed: int | None = None
    error_500_plain: float = 0.0
    error_500_mx: float = 0.0
    error_200: float = 0.0
    throttle_429: float = 0.0
    throttle_403: float = 0.0
    throttle_200: float = 0.0
    proxy_502: float = 0.0
    drop_before: float = 0.0
    drop_after: float = 0.0
    redirect: float = 0.0
    echo_headers: float = 0.0
    html_200: float = 0.0
    empty_200: float = 0.0
    truncated_200: float = 0.0
    huge_body: float = 0.0
    nested_200: float = 0.0
    echo_encoded: float = 0.0
    gzip_bomb: float = 0.0
    record_error: float = 0.0
    nonatomic_upsert: bool = False
    upsert_pause: float = 0.05
    read_lag: float = 0.0

    @classmethod
    def from_spec(cls, spec: str) -> FaultConfig:
        """Parse ``"drop_after=0.05,error_500_plain=0.1,seed=7,read_lag=2"``: comma-separated
        ``name=value`` items naming fields of this class; a bare ``nonatomic_upsert`` means
        ``nonatomic_upsert=true``. An empty spec means no faults.

        Raises ConfigError (one line, naming the bad item) on an unknown name, a bad value, a
        repeated name, or probabilities outside 0..1 or summing to more than 1.
        """
        where = f"--faults {spec!r}"
        known = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            name, _, raw = (s.strip() for s in item.partition("="))
            if name not in known:
                raise ConfigError(f"{where}: unknown fault {name!r}; use one of {', '.join(known)}")
            if name in values:
                raise ConfigError(f"{where}: {name!r} is given twice; give it once")
            if name == "nonatomic_upsert":
                if raw.lower() not in _TRUE | _FALSE:
                    raise ConfigError(f"{where}: {name}={raw!r} must be true or false")
                values[name] = raw.lower() in _TRUE
                continue
            try:
                values[name] = int(raw) if name == "seed" else float(raw)
            except ValueError:
                kind = "a whole number" if name == "seed" else "a number"
                raise ConfigError(f"{where}: {name}={raw!r} must be {kind}") from None
        config = cls(**values)
        config.validate(where)
        return config

    def to_spec(self) -> str:
        """The compact form of this config (fields that differ from the defaults)."""
        parts: list[str] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            if isinstance(value, bool):
                parts.append(f"{f.name}={'true' if value else 'false'}")
            else:
                parts.append(f"{f.name}={value!r}")
        return ",".join(parts)

    def validate(self, where: str = "sandbox faults") -> None:
        """Raise ConfigError unless every setting is in range."""
        for name in ("latency", "jitter", "upsert_pause", "read_lag"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(
                    f"{where}: {name} must be a number of seconds >= 0, not {value!r}"
                )
        total = 0.0
        for name in FAULTS:
            p = getattr(self, name)
            if not (isinstance(p, int | float) and 0 <= p <= 1):
                raise ConfigError(f"{where}: {name} must be a probability from 0 to 1, not {p!r}")
            total += p
        p = self.record_error  # per record, so not part of the per-call total
        if not (isinstance(p, int | float) and 0 <= p <= 1):
            raise ConfigError(f"{where}: record_error must be a probability from 0 to 1, not {p!r}")
        if total > 1 + 1e-9:
            raise ConfigError(
                f"{where}: fault probabilities add up to {total:g}, more than 1; lower them"
            )

    @property
    def any_fault(self) -> bool:
        """Whether any fault has a chance to happen (else no fault is drawn at all)."""
        return any(getattr(self, name) for name in FAULTS)

    def pick(self, u: float) -> str:
        """The fault that a uniform draw ``u`` in [0, 1) selects, or "" for none."""
        edge = 0.0
        for name in FAULTS:
            edge += getattr(self, name)
            if u < edge:
                return name
        return ""


class FaultDraws:
    """The seeded random draws of one sandbox under a :class:`FaultConfig`.

    One ``random.Random(config.seed)`` serves every draw, in the order the calls make them,
    so the same seed and call order give the same run. A draw that cannot matter (no
    latency, no fault on) takes nothing from the generator, which keeps a seed's faults
    independent of settings that are off.
    """

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._random = random.Random(config.seed)

    def latency_halves(self) -> tuple[float, float]:
        """The uplink and downlink delays of one call, in seconds (each half the draw)."""
        f = self.config
        if f.latency == 0 and f.jitter == 0:
            return 0.0, 0.0
        total = f.latency + (self._random.uniform(-f.jitter, f.jitter) if f.jitter else 0.0)
        half = max(0.0, total) / 2
        return half, half

    def fault(self) -> str:
        """The fault of one arriving CreateCustom or bulk call, "" for none."""
        if not self.config.any_fault:
            return ""
        return self.config.pick(self._random.random())

    def record_fault(self) -> bool:
        """Whether one record of a bulk call fails by the ``record_error`` fault (no draw
        when it is off)."""
        if not self.config.record_error:
            return False
        return self._random.random() < self.config.record_error

    def coin(self) -> bool:
        """A fair coin, e.g. to pick one of the two shapes of a plain 500."""
        return self._random.random() < 0.5
