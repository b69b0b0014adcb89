"""Download errors: `DownloadError` (one line saying why and what to do, with a `kind`), and
the pure reading of what yt-dlp, ffmpeg and the network say into that kind and message
(`classify_error`, `classify`, `explain`).
"""
from __future__ import annotations

import errno
import re
from pathlib import Path
from urllib.parse import urlparse


class DownloadError(ValueError):
    """A download that cannot go on; the message says why and what to do, on one line.
    `kind`: 'disk', 'unavailable', 'network', 'expired', 'rate_limited', 'request' (the request
    itself is wrong, e.g. an interval past the video's end) or 'other'; the
    transient ones (TRANSIENT) keep a resumable download's finished pieces."""

    def __init__(self, message: str, *, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


TRANSIENT = ("network", "expired", "rate_limited")  # worth retrying; resume state is kept


_UNAVAILABLE = ("video unavailable", "private video", "is private", "been removed", "terminated",
                "http error 404", "http error 410", "http error 403", "members-only",
                "this video is not available", "sign in to confirm", "unsupported url", "copyright")
_NETWORK = ("failed to resolve", "name or service not known", "temporary failure in name resolution",
            "connection refused", "timed out", "network is unreachable", "unable to download",
            "connection reset", "remote end closed", "incompleteread", "errno 101", "errno 111",
            "errno 110", "getaddrinfo", "unable to connect", "http error 5", "server returned 5",
            "error opening input", "input/output error", "end of file", "connection aborted",
            "content too short", "did not get any data", "more expected", "incomplete read")


def _causes(err: BaseException) -> list[BaseException]:
    """`err`, the exception yt-dlp wrapped in it (`exc_info`), and their causes and contexts."""
    seen, queue = [], [err]
    while queue:
        e = queue.pop(0)
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        wrapped = getattr(e, "exc_info", None)
        queue += [wrapped[1] if isinstance(wrapped, tuple) and len(wrapped) > 1 else None, e.__cause__, e.__context__]
    return seen


def _http_status(err: BaseException) -> int | None:
    for attr in ("status", "code"):
        value = getattr(err, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    return None


def classify_error(err: BaseException, *, context: str = "", during_fetch: bool = False) -> str:
    """The kind of a download failure (see DownloadError.kind), by the exception's type and
    HTTP status first, its text only as a fallback (ffmpeg's messages have nothing else).
    `during_fetch`: the failure came after the media download began, where a 403 is most often
    an expired stream URL (transient), not a removed video."""
    for e in _causes(err):
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return "disk"
        status = _http_status(e)
        if status == 429:
            return "rate_limited"
        if status is not None and (status >= 500 or status == 408):
            return "network"
        if status in (401, 403):
            return "expired" if during_fetch else "unavailable"
        if status in (404, 410, 451):
            return "unavailable"
        name = type(e).__name__
        if name in ("GeoRestrictedError", "UnavailableVideoError") or (name == "ExtractorError" and getattr(e, "expected", False)):
            return "unavailable"
        if name in ("TransportError", "IncompleteRead", "ContentTooShortError", "SSLError", "ProxyError") or isinstance(
                e, (ConnectionError, TimeoutError)):
            return "network"
    kind = classify(f"{err} {context}")
    return "expired" if kind == "unavailable" and during_fetch and "403" in str(err) else kind


def classify(message: str) -> str:
    """'disk', 'unavailable', 'network', 'rate_limited' or 'other' for an error message of
    yt-dlp/ffmpeg (the text rules; `classify_error` looks at the exception first)."""
    text = message.lower()
    if "http error 429" in text or "too many requests" in text:
        return "rate_limited"
    if "no space left" in text or "errno 28" in text:
        return "disk"
    if any(p in text for p in _UNAVAILABLE):
        return "unavailable"
    if any(p in text for p in _NETWORK):
        return "network"
    return "other"


def short_message(message: str) -> str:
    """The last meaningful line of a tool's message, without 'ERROR:' and colours."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(message).splitlines()]
    lines = [line for line in lines if line]
    text = lines[-1] if lines else "unknown error"
    return re.sub(r"^(ERROR|error):\s*", "", text)[:300]


def explain(message: str, *, source: str, out_dir: Path, resumable: bool, kind: str | None = None) -> DownloadError:
    """A one-line DownloadError for a failure of yt-dlp or ffmpeg fetching `source` (`kind`
    from `classify_error`; else from the message's text)."""
    kind, detail = kind or classify(message), short_message(message)
    again = " (what was fetched is kept: it resumes)" if resumable else ""
    if kind == "disk":
        return DownloadError(f"disk full while writing to {out_dir} ({detail}); free some space "
                             "or choose another --out, then run the same command again", kind=kind)
    if kind == "unavailable":
        return DownloadError(f"{source} is unavailable: removed, private, region- or age-restricted, "
                             f"or a wrong URL ({detail}); check the URL, or get the video by hand "
                             "and pass it with --from FILE", kind=kind)
    if kind == "rate_limited":
        return DownloadError(f"the server refused more requests for now (HTTP 429, {detail}); wait a few "
                             f"minutes, then run the same command again{again}", kind=kind)
    if kind == "expired":
        return DownloadError(f"the server refused the media stream part-way (HTTP 403: most often an expired "
                             f"stream address, {detail}); run the same command again{again}", kind=kind)
    if kind == "network":
        host = urlparse(source).netloc or source
        return DownloadError(f"no network: cannot reach {host} ({detail}); check the connection or "
                             f"proxy, then run the same command again{again}", kind=kind)
    return DownloadError(f"download of {source} failed: {detail}", kind=kind)
