"""Message templates: parsing merge fields, binding them to CSV columns, and rendering one row fast."""

from __future__ import annotations

import difflib
from operator import itemgetter
from typing import Callable, NamedTuple, Sequence

from bulksend.errors import InputError

_SYNTAX_HINT = (
    'Merge fields look like {first_name} or {first_name|there}; write "{{" and "}}" for literal braces.'
)
_MAX_LISTED_COLUMNS = 30


class _Field(NamedTuple):
    name: str  # as written between the braces, without surrounding spaces
    default: str | None  # None: the value is required; "" for {name|}: empty is fine


class Template:
    """A parsed message: literal text and merge fields, checked for well-formed braces."""

    __slots__ = ("source", "origin", "fields", "_pieces")

    def __init__(self, source: str, origin: str, pieces: tuple[str | _Field, ...]) -> None:
        self.source = source
        self.origin = origin
        self._pieces = pieces
        self.fields: tuple[str, ...] = tuple(
            dict.fromkeys(p.name for p in pieces if isinstance(p, _Field))
        )

    def __repr__(self) -> str:
        return f"Template({self.source!r}, origin={self.origin!r})"

    @classmethod
    def parse(cls, text: str, origin: str = "--message") -> Template:
        """Parse ``text``; ``origin`` (a flag or a file name) is where error messages say it came from.

        ``{column}`` inserts the row's value, ``{column|default}`` falls back to ``default`` when the
        value is empty, ``{column|}`` allows it to be empty, ``{{`` and ``}}`` are literal braces.
        """
        if not text.strip():
            raise InputError(
                f"The message in {origin} is empty.",
                hint="Give the text to send, e.g. 'Hi {first_name}, our spring sale starts today.'",
            )
        pieces: list[str | _Field] = []
        literal: list[str] = []
        i, n = 0, len(text)
        while i < n:
            char = text[i]
            if char == "{" and text.startswith("{", i + 1):
                literal.append("{")
                i += 2
            elif char == "}":
                if not text.startswith("}", i + 1):
                    raise InputError(
                        f'Unmatched "}}" at {_where(text, i)} of {origin}.',
                        hint='Write "}}" for a literal "}". ' + _SYNTAX_HINT,
                    )
                literal.append("}")
                i += 2
            elif char == "{":
                end = text.find("}", i + 1)
                body = text[i + 1 : end] if end != -1 else text[i + 1 :]
                if "\n" in body or "{" in body or end == -1:
                    raise InputError(
                        f'Unclosed "{{" at {_where(text, i)} of {origin}.',
                        hint='End the merge field with "}" on the same line, '
                        'or write "{{" for a literal "{". ' + _SYNTAX_HINT,
                    )
                name, bar, default = body.partition("|")
                name = name.strip()
                if not name:
                    raise InputError(
                        f"Merge field with no column name at {_where(text, i)} of {origin}.",
                        hint="Put a column name between the braces. " + _SYNTAX_HINT,
                    )
                if literal:
                    pieces.append("".join(literal))
                    literal = []
                pieces.append(_Field(name, default if bar else None))
                i = end + 1
            else:
                literal.append(char)
                i += 1
        if literal:
            pieces.append("".join(literal))
        return cls(text, origin, tuple(pieces))

    def bind(self, headers: Sequence[str]) -> BoundTemplate:
        """Match every field to one of ``headers``, ignoring case and surrounding spaces.

        Raises InputError naming the field, this template's origin and the columns found when a field
        matches no column, or when it matches two columns that differ only in case or spacing.
        """
        by_key: dict[str, list[str]] = {}
        for header in headers:
            by_key.setdefault(_key(header), []).append(header)
        column_of: dict[str, str] = {}
        for name in self.fields:
            matches = by_key.get(_key(name), [])
            if not matches:
                raise self._unknown_field(name, headers)
            if len(matches) > 1:
                listed = ", ".join(f'"{m}"' for m in matches)
                raise InputError(
                    f"Merge field {{{name}}} in {self.origin} matches {len(matches)} columns "
                    f"of the CSV: {listed}.",
                    hint="Rename one of those columns so the names differ by more than case or spaces.",
                )
            column_of[name] = matches[0]
        return BoundTemplate(self, column_of)

    def _unknown_field(self, name: str, headers: Sequence[str]) -> InputError:
        from bulksend.schema import clip

        shown = [h.strip() for h in headers if h.strip()]
        listed = ", ".join(clip(h, 40) for h in shown[:_MAX_LISTED_COLUMNS]) or "(none)"
        if len(shown) > _MAX_LISTED_COLUMNS:
            listed += f" and {len(shown) - _MAX_LISTED_COLUMNS} more"
        close = difflib.get_close_matches(_key(name), {_key(h): h for h in shown}, n=1, cutoff=0.75)
        if close:
            suggestion = next(h for h in shown if _key(h) == close[0])
            hint = (
                f"Did you mean {{{suggestion}}}? "
                "Fields match column names ignoring case and surrounding spaces."
            )
        else:
            hint = "Use one of the CSV's column names; case and surrounding spaces are ignored."
        return InputError(
            f"Unknown merge field {{{name}}} in {self.origin}: the CSV has no such column. "
            f"Its columns are: {listed}.",
            hint=hint,
        )


class BoundTemplate:
    """A template whose fields are matched to CSV columns, compiled for rendering once per row."""

    __slots__ = ("template", "columns", "_format", "_pick", "_slots")

    def __init__(self, template: Template, column_of: dict[str, str]) -> None:
        self.template = template
        self.columns: tuple[str, ...] = tuple(dict.fromkeys(column_of[n] for n in template.fields))
        index = {column: i for i, column in enumerate(self.columns)}
        # The whole message becomes one str.format pattern with a positional slot per field use, so a
        # render is one C-level call; literal braces are doubled back for format's own escaping.
        pattern: list[str] = []
        slots: list[tuple[int, str | None, str]] = []
        for piece in template._pieces:
            if isinstance(piece, _Field):
                pattern.append("{}")
                slots.append((index[column_of[piece.name]], piece.default, piece.name))
            else:
                pattern.append(piece.replace("{", "{{").replace("}", "}}"))
        self._format: Callable[..., str] = "".join(pattern).format
        self._slots = tuple(slots)
        self._pick = _picker([column for column, _, _ in slots])

    def __repr__(self) -> str:
        return f"BoundTemplate({self.template.source!r}, columns={self.columns!r})"

    def parts(self) -> tuple[str | tuple[int, str | None], ...]:
        """The template in order: literal text, and each field as (index into :attr:`columns`, default)."""
        out: list[str | tuple[int, str | None]] = []
        slots = iter(self._slots)
        for piece in self.template._pieces:
            if isinstance(piece, _Field):
                column, default, _ = next(slots)
                out.append((column, default))
            else:
                out.append(piece)
        return tuple(out)

    def render(self, values: Sequence[str]) -> tuple[str | None, str | None]:
        """The message for one row; ``values`` are the row's strings for :attr:`columns`, in order.

        Returns ``(text, None)``, or ``(None, field)`` naming the first field (as written) whose value
        is empty after stripping and that has no default.
        """
        stripped = list(map(str.strip, values))
        if all(stripped):
            return self._format(*self._pick(stripped)), None
        args = []
        for column, default, name in self._slots:
            value = stripped[column]
            if not value:
                if default is None:
                    return None, name
                value = default
            args.append(value)
        return self._format(*args), None


def _picker(indices: list[int]) -> Callable[[list[str]], Sequence[str]]:
    # itemgetter returns a bare item rather than a tuple for a single index, and needs at least one.
    if not indices:
        return lambda values: ()
    if len(indices) == 1:
        only = indices[0]
        return lambda values: (values[only],)
    return itemgetter(*indices)


def _key(name: str) -> str:
    return name.strip().casefold()


def _where(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column}"
