"""Texts that services store or raise: an English template and its parameters, translated when shown. Pure.

A service that writes a notification, an engine that explains an outcome and
a rule that refuses an action do not know who will read the text, nor in
which language. They build a :class:`Msg`: an English msgid with
``%(name)s`` placeholders (marked with :func:`N_` / :func:`N_plural` so
``pybabel extract`` finds it) and the values to put in. ``str(msg)`` is the
English sentence, byte for byte what these services wrote before (the JSON
API and the ``message`` columns keep it); :func:`marketplace.i18n.render_text`
translates the template and formats the values for the reader's locale.

Values keep their meaning, not their English look: :class:`Money` is integer
minor units and a currency, :class:`Rate` basis points, :class:`Moment` a UTC datetime, a nested
:class:`Msg` is translated too, and a list of them is joined with ", ".
:meth:`Msg.to_json` / :meth:`Msg.from_json` store one in a JSON column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .money import format_amount

__all__ = ["N_", "N_plural", "Money", "Rate", "Moment", "Msg", "by_status"]


def N_(message: str) -> str:  # noqa: N802 - the gettext convention: marked for extraction, translated when shown
    return message


def N_plural(singular: str, plural: str) -> tuple[str, str]:  # noqa: N802 - ``N_plural:1,2`` in babel.cfg
    return singular, plural


@dataclass(frozen=True)
class Money:
    """An amount in integer minor units; English ``"1,234.56 EUR"`` (``format_amount``)."""

    amount: int
    currency: str = ""

    def english(self) -> str:
        return format_amount(self.amount, self.currency)


@dataclass(frozen=True)
class Rate:
    """A yearly rate in basis points; English ``"7.25 %"``."""

    bps: int

    def english(self) -> str:
        return f"{self.bps // 100}.{self.bps % 100:02d} %"


@dataclass(frozen=True)
class Moment:
    """A UTC moment; English ``"2026-11-23 13:30 UTC"``."""

    value: datetime

    def english(self) -> str:
        return f"{self.value:%Y-%m-%d %H:%M} UTC"


JOIN = ", "


class Msg:
    """A translatable sentence: ``template % params``, or ``ngettext(singular, plural, num) % params``."""

    __slots__ = ("template", "plural", "params")

    def __init__(self, template: str, /, **params: Any):
        self.template = template
        self.plural: str | None = None
        self.params = params

    @classmethod
    def plural_of(cls, forms: tuple[str, str], num: int, **params: Any) -> Msg:
        """``forms`` from :func:`N_plural`; ``num`` chooses the form and is the ``%(num)d`` parameter."""
        msg = cls(forms[0], num=num, **params)
        msg.plural = forms[1]
        return msg

    # ------------------------------------------------------------ rendering

    def render(self, translate: Callable[[Msg], str], value: Callable[[Any], Any]) -> str:
        """``translate(msg)``: the (translated) template; ``value(param)``: a parameter as it is shown."""
        return translate(self) % {name: value(param) for name, param in self.params.items()}

    def english_template(self) -> str:
        if self.plural is not None and self.params.get("num") != 1:
            return self.plural
        return self.template

    def __str__(self) -> str:
        return self.render(Msg.english_template, english)

    def __repr__(self) -> str:
        return f"Msg({self.template!r}, {self.params!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Msg):
            return NotImplemented
        return (self.template, self.plural, self.params) == (other.template, other.plural, other.params)

    def __hash__(self) -> int:
        return hash((self.template, self.plural))

    # ------------------------------------------------------------ storing

    def to_json(self) -> dict:
        data: dict[str, Any] = {"t": self.template, "p": {k: _encode(v) for k, v in self.params.items()}}
        if self.plural is not None:
            data["pl"] = self.plural
        return data

    @classmethod
    def from_json(cls, data: Any) -> Msg | None:
        """None for anything that is not a stored message (old rows, damaged JSON)."""
        if not isinstance(data, dict) or not isinstance(data.get("t"), str) or not isinstance(data.get("p"), dict):
            return None
        try:
            msg = cls(data["t"], **{str(k): _decode(v) for k, v in data["p"].items()})
        except (KeyError, TypeError, ValueError):
            return None
        plural = data.get("pl")
        msg.plural = plural if isinstance(plural, str) else None
        return msg


def by_status(sentences: dict[str, str], status: str, english: str, **params: Any) -> Msg | str:
    """One full sentence per status word (so each language can make it agree), as a Msg;
    a status the table does not know gives ``english``, the same sentence untranslated."""
    template = sentences.get(status)
    return Msg(template, **params) if template is not None else english


def english(param: Any) -> Any:
    """A parameter as the English sentence shows it (ints stay ints for ``%(num)d``)."""
    if isinstance(param, (Money, Rate, Moment)):
        return param.english()
    if isinstance(param, Msg):
        return str(param)
    if isinstance(param, (list, tuple)):
        return JOIN.join(str(english(p)) for p in param)
    return param


def _encode(param: Any) -> Any:
    if isinstance(param, Money):
        return {"$money": [int(param.amount), param.currency]}
    if isinstance(param, Rate):
        return {"$rate": int(param.bps)}
    if isinstance(param, Moment):
        return {"$moment": param.value.isoformat()}
    if isinstance(param, Msg):
        return {"$msg": param.to_json()}
    if isinstance(param, (list, tuple)):
        return {"$list": [_encode(p) for p in param]}
    if param is None or isinstance(param, (bool, int, str)):
        return param
    return str(param)


def _decode(data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    if "$money" in data:
        amount, currency = data["$money"]
        return Money(int(amount), str(currency))
    if "$rate" in data:
        return Rate(int(data["$rate"]))
    if "$moment" in data:
        return Moment(datetime.fromisoformat(data["$moment"]))
    if "$msg" in data:
        inner = Msg.from_json(data["$msg"])
        if inner is None:
            raise ValueError("not a stored message")
        return inner
    if "$list" in data:
        return [_decode(p) for p in data["$list"]]
    raise ValueError("unknown parameter")
