"""Hiding the keys in whatever the server (or the network stack) says back.

A server, proxy or attacker may echo the request headers in an error message ("invalid
request, headers: x-LSQ-SecretKey: ..."); from there the text would reach the results file,
``--summary-json``, the log and the HTML report. The client passes every such text through a
:class:`Scrubber` before anything else sees it: the raw body, each string of the parsed body
(keys of objects included), the ``Location`` of a redirect and the text of a transport
exception (which may quote URLs or headers).

Two steps, for each text:

1. **Hidden in place**: each key as it is, JSON-escaped (with or without ``\\u`` escapes and
   ``\\/``), HTML-escaped, URL- or form-encoded, or as the Latin-1/cp1252 mojibake of its
   UTF-8, is replaced by ``<hidden>`` (ignoring case), so an echoed header still reads
   ``x-LSQ-SecretKey: <hidden>``.
2. **Withheld whole**: what is left is looked at in normalised views: HTML entities, JSON and
   ``\\xHH`` escapes and percent-escapes undone (a few rounds, for double encodings), then
   whitespace and invisible format characters removed, then NFKC (full-width letters). If any
   view shows a key (ignoring case), or its hex encoding (either case), or its base64
   encoding (standard or URL-safe, at any of the three byte alignments, so also inside a
   longer base64 blob), the whole text is replaced by :data:`WITHHELD`: editing an encoding
   out of a text surgically is where leaks hide.

Parsed bodies are scrubbed string by string, so a withheld ``ExceptionMessage`` leaves the
envelope (``Status``, ``ExceptionType``) to say what the answer was.

No scrubber recognises every transformation (a server that holds the key can always encrypt
it, spell it backwards or send it in halves over two answers): the keys' real protection is
that they only travel to the configured host, in headers, and that redirects are never
followed. The views assume keys of a real length (``settings.MIN_KEY_LENGTH`` refuses
shorter ones): the encoding of a one-character key would turn up in most texts, so needles
shorter than six characters are not looked for, and such a key is only hidden in place.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus, unquote

HIDDEN = "<hidden>"
WITHHELD = "(the server's text was withheld: it contained your access or secret key)"

# Whitespace, and the invisible characters that can split a key without showing: soft
# hyphen, Mongolian vowel separator, zero-width spaces and joiners, bidi marks, word joiner
# and invisible operators, byte-order mark.
_INVISIBLE = re.compile(r"[\s\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]+")
# Backslash escapes of JSON, JavaScript, Python and C.
_BACKSLASH = re.compile(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|x[0-9a-fA-F]{2}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "0": "\0"}
_UNESCAPE_ROUNDS = 3
_TAG = re.compile(r"<[^<>]{0,200}>")
_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]+")
# An encoded needle shorter than this would turn up by chance (only a key far shorter than a
# real one gives one).
_MIN_NEEDLE = 6


def _forms(secret: str) -> set[str]:
    """The ways ``secret`` can appear in a body that are hidden in place: as it is,
    JSON-escaped (with or without ``\\u`` escapes and ``\\/``), HTML-escaped, URL-encoded,
    and as the mojibake of its UTF-8 read as Latin-1 or cp1252 (the same as the key itself
    for an ASCII key)."""
    as_json = json.dumps(secret)[1:-1]
    as_utf8_json = json.dumps(secret, ensure_ascii=False)[1:-1]
    forms = {
        secret,
        as_json,
        as_utf8_json,
        as_json.replace("/", "\\/"),
        as_utf8_json.replace("/", "\\/"),
        html.escape(secret),
        html.escape(secret, quote=False),
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
    }
    forms.update(_mojibake(secret))
    return forms


def _mojibake(secret: str) -> Iterator[str]:
    raw = secret.encode("utf-8", errors="surrogatepass")
    for codec in ("latin-1", "cp1252"):
        with contextlib.suppress(UnicodeDecodeError):  # cp1252 leaves five bytes undefined
            yield raw.decode(codec)


def _base64_needles(secret: str | bytes) -> Iterator[str]:
    """The base64 characters that encode ``secret``'s UTF-8 wherever it starts in a longer
    encoded blob: for each of the three alignments, the characters that depend on the
    secret's bytes alone (the first ones share bits with the bytes before it, the last one
    with the bytes after)."""
    raw = secret if isinstance(secret, bytes) else secret.encode("utf-8", errors="surrogatepass")
    for offset, lead in ((0, 0), (1, 2), (2, 3)):
        encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii").rstrip("=")
        trail = 1 if (offset + len(raw)) % 3 else 0
        core = encoded[lead : len(encoded) - trail]
        if len(core) >= _MIN_NEEDLE:
            yield core
            yield core.translate(str.maketrans("+/", "-_"))  # URL-safe alphabet


def _unescape_backslashes(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if len(code) > 1:  # \uXXXX, \UXXXXXXXX, \xHH
            point = int(code[1:], 16)
            return chr(point) if point <= 0x10FFFF else match.group()
        return _SIMPLE_ESCAPES.get(code, code)  # \/ -> /, \" -> ", \\ -> \

    return _BACKSLASH.sub(one, text)


def _unescaped(text: str) -> str:
    """``text`` with HTML entities (``&#117;``, ``&#x75;``, ``&amp;``), backslash escapes and
    percent-escapes undone, a few rounds over (a double encoding needs two)."""
    for _ in range(_UNESCAPE_ROUNDS):
        before = text
        if "&" in text:
            text = html.unescape(text)
        if "\\" in text:
            text = _unescape_backslashes(text)
        if "%" in text:
            text = unquote(text, errors="surrogateescape")
        if text == before:
            break
    return text


def _compact(text: str) -> str:
    """``text`` without whitespace and invisible characters."""
    if text.isascii():
        return "".join(text.split())  # several times faster than the regular expression
    return _INVISIBLE.sub("", text)


def _views(text: str) -> Iterator[str]:
    """``text`` as it is, and normalised in the ways a key could be disguised."""
    yield text
    unescaped = _unescaped(text)
    if unescaped != text:
        yield unescaped
    compact = text
    for seen in (text, unescaped) if unescaped != text else (text,):
        compact = _compact(seen)
        if compact != seen:
            yield compact
    if "<" in unescaped:  # markup between the characters (<wbr>, <span>)
        yield _compact(_TAG.sub("", unescaped))
    alphanumeric = _NOT_ALNUM.sub("", unescaped)  # hex as 78-2D-4C or 78:2d:4c
    if alphanumeric != compact:
        yield alphanumeric
    if not compact.isascii():  # full-width letters and other compatibility forms
        folded = _compact(unicodedata.normalize("NFKC", compact))
        if folded != compact:
            yield folded


def _alternation(needles: Iterable[str], flags: int = 0) -> re.Pattern[str] | None:
    # Longest first, so that a form containing a shorter one is replaced whole.
    ordered = sorted(set(needles), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, ordered)), flags) if ordered else None


class Scrubber:
    """Hides the given secrets in texts: in place where it can, else by withholding the
    whole text (see the module docstring)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        plain: set[str] = set()  # looked for in the views, ignoring case
        encoded: set[str] = set()  # base64: case matters
        for key in (secret for secret in secrets if secret):
            forms |= _forms(key)
            plain.update({key, _INVISIBLE.sub("", key), *_mojibake(key)})
            raw = key.encode("utf-8", errors="surrogatepass")
            wide = key.encode("utf-16-le", errors="surrogatepass")  # .NET's Encoding.Unicode
            # Hex (also with separators: the alphanumeric view drops them), UTF-16 hex, and
            # base32 of the key alone (its last character shares bits with what follows).
            plain.update({raw.hex(), wide.hex(), key.encode("utf-16-be", "surrogatepass").hex()})
            plain.add(base64.b32encode(raw).decode("ascii").rstrip("=")[:-1])
            encoded.update(_base64_needles(key))
            encoded.update(_base64_needles(wide))
            encoded.update(_base64_needles(base64.b64encode(raw)))  # base64 of the base64
        # Case-insensitive: a proxy that re-cases echoed header values must not reveal a key.
        self._pattern = _alternation(forms, re.IGNORECASE)
        # Substring tests (``in``) are several times faster than one alternation over a large
        # body, and there are only a few needles. A key shorter than a real one (only the
        # scrubber's own tests have them) is hidden in place only.
        self._plain = tuple(sorted({n.lower() for n in plain if len(n) >= _MIN_NEEDLE}))
        self._encoded = tuple(sorted({n for n in encoded if len(n) >= _MIN_NEEDLE}))
        # No view of an ASCII text is longer than the text (only NFKC can lengthen one), so
        # a shorter ASCII text cannot hold a needle: most strings of an answer ("Status",
        # "Success", an Id) are let through at once.
        self._shortest = min(map(len, self._plain + self._encoded), default=0)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        """``text`` with every secret hidden, or :data:`WITHHELD` if a secret is still there
        in a disguise."""
        if self._pattern is None or not text:
            return text
        hidden = self._pattern.sub(HIDDEN, text)
        if len(hidden) < self._shortest and hidden.isascii():
            return hidden
        return WITHHELD if self.shows_a_key(hidden) else hidden

    def shows_a_key(self, text: str) -> bool:
        """Whether any normalised view of ``text`` shows a secret, plainly or encoded."""
        for view in _views(text):
            lowered = view.lower()
            if any(needle in lowered for needle in self._plain):
                return True
            if any(needle in view for needle in self._encoded):
                return True
        return False

    def value(self, value: Any) -> Any:
        """A parsed JSON value with every secret hidden in its strings (keys included)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        return value
