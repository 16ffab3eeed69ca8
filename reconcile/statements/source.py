"""A statement file as read: its bytes, hash, text encoding, lines and time zone.

Small helpers the parsers share. Files are always read as bytes; the text
encoding is decided here, strictly (a byte that does not decode is never
replaced), from a byte-order mark, then the parser's list of candidates.
Chinese banks write GBK (or its superset GB 18030) as often as UTF-8, so a
GBK candidate can be made conditional on the text being mostly Chinese: a
Latin-1 file then never reads as accidental Chinese.
"""

from __future__ import annotations

import bisect
import codecs
import contextlib
import datetime as dt
import gc
import hashlib
import re
from typing import Optional, Sequence, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import StatementError

#: The custody bank's own time zone unless told otherwise.
DEFAULT_TZ = "Asia/Shanghai"

#: A candidate that decodes as GB 18030 only when most non-ASCII text is Chinese.
GBK_IF_CHINESE = "gbk?"

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))
_GBK_NAMES = {"gbk", "gb2312", "gb18030", "936", "cp936", "ms936", "euc-cn", "euccn", "x-gbk",
              "gb_2312-80", "chinese", "csgb2312"}
_CJK = re.compile("[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")


class DecodeFailed(ValueError):
    """No candidate encoding decodes the bytes; ``tried`` lists them."""

    def __init__(self, tried: Sequence[str]):
        super().__init__("cannot decode the file as " + " or ".join(tried))
        self.tried = tuple(tried)


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


def codec_name(label: Optional[str]) -> Optional[str]:
    """Python's codec for an encoding label (GBK family -> gb18030), or None if unknown."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    if name in _GBK_NAMES:
        return "gb18030"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _mostly_chinese(text: str) -> bool:
    """Whether nine in ten non-ASCII characters are Chinese, and common Chinese (GB 2312).

    Latin-1 read as GBK pairs an accented letter with the ASCII letter after it
    ("Müller" -> "M黮ler"): a character of GBK's extension, whose second byte is
    ASCII; Chinese text is written in GB 2312's characters, both bytes above ASCII.
    """
    wide = "".join(ch for ch in text if ord(ch) > 127)
    if not wide or len(_CJK.findall(text)) * 10 < len(wide) * 9:
        return False
    rare = wide.encode("gb2312", "replace").count(b"?")   # (no "?" is wide)
    return rare * 10 <= len(wide)


def decode_text(data: bytes, candidates: Sequence[str]) -> tuple[str, str, int]:
    """``(text, encoding, bom_length)``; a byte-order mark decides first.

    ``candidates`` are tried in order, strictly; :data:`GBK_IF_CHINESE`
    decodes as gb18030 only when the result is mostly Chinese. Pure ASCII
    reads as ASCII. Raises :class:`DecodeFailed` when nothing fits.
    """
    for bom, name in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(name), name, len(bom)
            except UnicodeDecodeError:
                raise DecodeFailed([name]) from None
    if data.isascii():
        return data.decode("ascii"), "ascii", 0
    tried = []
    for candidate in candidates:
        if candidate is None or candidate in tried:
            continue
        tried.append(candidate)
        name = "gb18030" if candidate == GBK_IF_CHINESE else candidate
        try:
            text = data.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
        if candidate == GBK_IF_CHINESE and not _mostly_chinese(text):
            continue
        return text, name, 0
    raise DecodeFailed([("gb18030" if c == GBK_IF_CHINESE else c) for c in tried])


class LineIndex:
    """Line numbers (1-based) of character offsets in a text.

    The first few questions are answered by counting line breaks (a fast
    scan); only a parse that asks many (a file with many problems) builds
    the table of line starts and searches it.
    """

    SCANS = 8

    def __init__(self, text: str):
        self._text = text
        self._asked = 0
        self._starts: Optional[list] = None

    def line(self, offset: int) -> int:
        """The 1-based line holding character ``offset``."""
        if self._starts is None:
            self._asked += 1
            if self._asked <= self.SCANS:
                return self._text.count("\n", 0, offset) + 1
            self._starts = [0] + [m.end() for m in re.finditer("\n", self._text)]
        return bisect.bisect_right(self._starts, offset)


TzLike = Union[str, dt.tzinfo, None]


def resolve_tz(tz: TzLike) -> dt.tzinfo:
    """A tzinfo for a zone name (``"Asia/Shanghai"``) or a tzinfo; None means the default."""
    if isinstance(tz, dt.tzinfo):
        return tz
    name = tz or DEFAULT_TZ
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        if name == DEFAULT_TZ:  # no tz database here: China keeps one fixed offset
            return dt.timezone(dt.timedelta(hours=8), "CST")
        raise StatementError(f"unknown time zone {name!r}", tz=name) from None


def local_date(value: dt.datetime, tz: dt.tzinfo) -> dt.date:
    """The calendar day of ``value`` in ``tz`` (a naive time is already local)."""
    if value.tzinfo is None:
        return value.date()
    return value.astimezone(tz).date()


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector while a large file is parsed.

    A parse allocates one small object after another and frees none until
    the end; with the collector running, its repeated passes over the
    growing heap make parse time grow faster than the file. The parsers'
    values hold no reference cycles, so nothing is lost by collecting later.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


__all__ = ["DEFAULT_TZ", "GBK_IF_CHINESE", "DecodeFailed", "sha256_hex", "codec_name",
           "decode_text", "LineIndex", "resolve_tz", "local_date", "gc_paused"]
