"""OFX text: encoding, and a linear single-pass reader for OFX 1.x SGML and 2.x XML.

This module owns everything about an OFX file that comes before field
meanings: deciding its text encoding from the SGML header (``ENCODING``,
``CHARSET``) or the XML declaration, finding the ``<OFX>`` body, and reading
the body's elements in one pass.

Why a reader of our own
-----------------------
ofxparse closes SGML's unclosed leaf tags by checking every opening tag
against a *list* of every closing tag in the file, which is quadratic: a
10,000-transaction file takes tens of seconds, 100,000 would take hours.
This reader applies the same rule (an element whose name never appears as
a closing tag anywhere in the file is a leaf, closed at the next tag) with
a set, in one regex pass, and records for each aggregate the first
occurrence of every descendant element name, which is what ofxparse's
``find`` answers. :func:`close_leaves` writes the same normalization back as
text, so ofxparse itself, fed the closed text, does no quadratic work.

Each statement aggregate (``STMTRS``, ``CCSTMTRS``) and each ``STMTTRN``
keeps its character span, so the raw SGML/XML text of every transaction and
its line number are exact.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Optional, Union

from .errors import Problem, StatementFormatError
from .source import GBK_IF_CHINESE, DecodeFailed, codec_name, decode_text

#: Aggregates whose descendants the reader records.
FRAMES = frozenset({"SONRS", "STMTTRNRS", "CCSTMTTRNRS", "STATUS", "STMTRS", "CCSTMTRS",
                    "INVSTMTRS", "STMTTRN", "LEDGERBAL", "AVAILBAL"})
STATEMENT_AGGREGATES = ("STMTRS", "CCSTMTRS")
#: Real OFX nests about a dozen deep; deeper is a broken file, refused.
MAX_DEPTH = 256

_TOKEN = re.compile(r"<(/?)([A-Za-z0-9_.]+)>|<!\[CDATA\[(.*?)\]\]>|<!--.*?-->|<[?!][^>]*>", re.S)
_CLOSER = re.compile(r"</([A-Za-z0-9_.]+)>")
_SPLIT = re.compile(r"(</?[A-Za-z0-9_.]+>)")
_OPEN = re.compile(r"<([A-Za-z0-9_.]+)>")
_BODY = re.compile(r"<OFX>", re.I)
_SGML_HEADER = re.compile(rb"(?im)^[ \t]*(ENCODING|CHARSET)[ \t]*:[ \t]*([^\r\n<]*)")
_XML_ENCODING = re.compile(rb"""<\?xml[^>]*?encoding\s*=\s*["']([^"']+)["']""", re.I)
_UNSET = object()


@dataclass(frozen=True, slots=True)
class OfxText:
    """An OFX file decoded.

    Attributes:
      text: the whole file as text.
      encoding: the codec it was decoded with.
      body_start: offset of ``<OFX>`` in ``text``.
    """

    text: str
    encoding: str
    body_start: int


#: An element other than a recorded aggregate is kept as a plain ``(text, start)``
#: tuple: its first text (entities decoded, CDATA as is, not stripped; None when
#: it has no content at all or starts with a child element) and the offset of
#: its start tag. Plain tuples, because a large file has millions of them.
Leaf = tuple


@dataclass(slots=True)
class Frame:
    """An aggregate and the first occurrence of each element name inside it.

    Attributes:
      name: the aggregate's tag name (upper case).
      start, end: its span in the text (end exclusive; the closing tag included).
      first: tag name -> the first :data:`Leaf` or :class:`Frame` of that name.
      transactions: the ``STMTTRN`` frames inside, or what the reader's
        ``on_transaction`` made of them (a list for statement aggregates,
        None for the others).
    """

    name: str
    start: int
    end: int = -1
    first: dict = field(default_factory=dict)
    transactions: Optional[list] = None

    def get(self, name: str) -> Union[Leaf, "Frame", None]:
        """The first descendant named ``name``, or None."""
        return self.first.get(name)


@dataclass(slots=True)
class OfxDocument:
    """What the reader found: every recorded aggregate, in document order.

    Attributes:
      statements: ``STMTRS`` / ``CCSTMTRS`` frames.
      responses: ``SONRS`` / ``STMTTRNRS`` / ``CCSTMTTRNRS`` frames (with their STATUS).
      investment: ``INVSTMTRS`` frames (investment statements are refused).
    """

    statements: list = field(default_factory=list)
    responses: list = field(default_factory=list)
    investment: list = field(default_factory=list)


def _declared_codec(head: bytes) -> Optional[str]:
    m = _XML_ENCODING.search(head)
    if m:
        return codec_name(m.group(1).decode("ascii", "replace"))
    values = {k.upper().decode(): v.strip().upper().decode("ascii", "replace")
              for k, v in _SGML_HEADER.findall(head)}
    enc, charset = values.get("ENCODING", ""), values.get("CHARSET", "")
    if enc in ("UTF-8", "UTF8", "UNICODE"):
        return "utf-8"
    if charset and charset != "NONE":
        label = {"8859-1": "latin-1", "ISO-8859-1": "latin-1"}.get(charset, charset)
        named = codec_name(label) or (codec_name("cp" + label) if label.isdigit() else None)
        if named:
            return named
    if enc and enc != "USASCII":
        return codec_name(enc)
    return None


def decode_ofx(data: bytes, *, file: Optional[str]) -> OfxText:
    """Decode an OFX file, whatever its header claims; refuse what does not decode."""
    head = data[:4096]
    lt = head.find(b"<")
    declared = _declared_codec(head if head.lstrip().startswith(b"<?") else head[:max(lt, 0)])
    if declared in ("utf-8", "gb18030"):
        candidates = [declared, "utf-8", GBK_IF_CHINESE, "cp1252"]
    else:
        candidates = ["utf-8", GBK_IF_CHINESE, declared or "cp1252"]
    try:
        text, encoding, _ = decode_text(data, candidates)
    except DecodeFailed as exc:
        raise StatementFormatError(f"not readable text: {exc}", file=file,
                                   problems=(Problem(None, "encoding", str(exc)),)) from None
    m = _BODY.search(text)
    if m is None:
        raise StatementFormatError("no <OFX> element: not an OFX file", file=file,
                                   problems=(Problem(None, "OFX", "no <OFX> element"),))
    return OfxText(text, encoding, m.start())


def closing_names(body: str, start: int = 0) -> frozenset:
    """Upper-case names of every element closed somewhere in ``body`` (from ``start``)."""
    return frozenset(name.upper() for name in set(_CLOSER.findall(body, start)))


def _text(raw: str) -> str:
    return html.unescape(raw) if "&" in raw else raw


def read_document(ofx: OfxText, *, file: Optional[str], line_of,
                  on_transaction=None) -> OfxDocument:
    """Read the body once, linearly, recording the aggregates in :data:`FRAMES`.

    One loop over the tokens, kept flat because it runs once per tag of a
    possibly very large file: the stack holds ``[name, start, first_text,
    frame or None]``; an element never closed anywhere in the file is a
    leaf (``pending``) that ends at the next tag. ``on_transaction(frame,
    statement)``, when given, turns each finished ``STMTTRN`` frame (and
    the statement frame around it, or None) into the value kept in the
    statement's ``transactions``, so a large file's frames need not all
    stay in memory.
    """
    text, start = ofx.text, ofx.body_start
    closed = closing_names(text, start)
    frame_names = FRAMES
    doc = OfxDocument()
    stack: list = []
    frames: list = []         # the open frames, innermost last
    open_count: dict = {}
    unset = _UNSET
    unescape = html.unescape
    upper: dict = {}          # tag as spelled -> its upper-case name

    def register(name: str, value) -> None:
        for fr in frames:
            first = fr.first
            if name not in first:
                first[name] = value

    def pop(end: int) -> None:
        name, at, value, fr = stack.pop()
        open_count[name] -= 1
        if fr is None:
            register(name, (None if value is unset else value, at))
            return
        frames.pop()
        fr.end = end
        if name in STATEMENT_AGGREGATES:
            doc.statements.append(fr)
        elif name == "INVSTMTRS":
            doc.investment.append(fr)
        elif name in ("SONRS", "STMTTRNRS", "CCSTMTTRNRS"):
            doc.responses.append(fr)
        elif name == "STMTTRN":
            outers = [outer for outer in frames if outer.name in STATEMENT_AGGREGATES]
            item = fr if on_transaction is None else on_transaction(
                fr, outers[-1] if outers else None)
            for outer in outers:
                outer.transactions.append(item)
        register(name, fr)

    pos = start
    top = None                # the innermost open element's stack entry
    leaf = None               # an unclosed leaf's name, start and first text
    leaf_start = 0
    leaf_text = unset
    for m in _TOKEN.finditer(text, start):
        mstart, mend = m.span()
        closing, spelled, cdata = m.groups()
        value = None
        if mstart > pos:
            value = text[pos:mstart]
            if "&" in value:
                value = unescape(value)
        elif spelled is None:
            value = cdata
        if value is not None:
            if leaf is not None:
                if leaf_text is unset:
                    leaf_text = value
            elif top is not None and top[2] is unset:
                top[2] = value
        pos = mend
        if spelled is None:
            continue
        if leaf is not None:
            register(leaf, (None if leaf_text is unset else leaf_text, leaf_start))
            leaf = None
        name = upper.get(spelled)
        if name is None:
            name = upper[spelled] = spelled.upper()
        if top is not None and top[2] is unset:
            top[2] = None  # the element starts with a child, not text
        if closing:
            if open_count.get(name):
                while stack[-1][0] != name:
                    pop(mstart)
                pop(mend)
                top = stack[-1] if stack else None
            continue
        if name not in closed:
            leaf, leaf_start, leaf_text = name, mstart, unset
            continue
        if len(stack) >= MAX_DEPTH:
            raise StatementFormatError(
                f"elements nest deeper than {MAX_DEPTH}: not a well-formed OFX file",
                file=file, position=f"line {line_of(mstart)}",
                problems=(Problem(line_of(mstart), name, "nesting too deep"),))
        fr = None
        if name in frame_names:
            fr = Frame(name, mstart, transactions=[] if name in STATEMENT_AGGREGATES else None)
        top = [name, mstart, unset, fr]
        stack.append(top)
        open_count[name] = open_count.get(name, 0) + 1
        if fr is not None:
            frames.append(fr)
    if len(text) > pos:
        value = _text(text[pos:])
        if leaf is not None:
            if leaf_text is unset:
                leaf_text = value
        elif top is not None and top[2] is unset:
            top[2] = value
    if leaf is not None:
        register(leaf, (None if leaf_text is unset else leaf_text, leaf_start))
    while stack:
        pop(len(text))
    doc.statements.sort(key=lambda fr: fr.start)
    doc.responses.sort(key=lambda fr: fr.start)
    return doc


def close_leaves(body: str) -> str:
    """``body`` with every unclosed leaf closed, as ofxparse's preprocessing does it.

    The same loop as ofxparse's ``OfxPreprocessedFile`` with a set instead
    of a list, so the output is identical and made in linear time; fed to
    ofxparse, its own preprocessing then finds every tag already closed.
    """
    closed = closing_names(body)
    out: list[str] = []
    last = None
    for token in _SPLIT.split(body):
        is_tag = token.startswith("<") and not token.startswith("<!")
        if is_tag and last is not None:
            out.append(f"</{last}>")
            last = None
        if is_tag and not token.startswith("</") and not token.startswith("<?"):
            m = _OPEN.match(token)
            if m and m.group(1).upper() not in closed:
                last = m.group(1)
        out.append(token)
    return "".join(out)


__all__ = ["OfxText", "Leaf", "Frame", "OfxDocument", "decode_ofx", "read_document",
           "close_leaves", "closing_names", "FRAMES", "STATEMENT_AGGREGATES", "MAX_DEPTH"]
