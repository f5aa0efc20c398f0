"""Risk grade A-E of a borrower, with the reasons in plain words. Pure.

The rule: a score from 0 to 100 (clamped) is the sum of four factors, each
explained by one ``Reason``:

- kyc: identity verified +30, otherwise 0;
- membership: at least 365 days +20, 180 +15, 90 +10, 30 +5, otherwise 0;
- history: +5 per repaid loan (at most +15), +1 per installment paid on time
  (at most +10), -5 per late installment (at most -20), -40 per defaulted loan;
- affordability: DTI = (monthly_debt + new_payment) / monthly_income; at most
  20 % +25, 35 % +15, 50 % +5, above 50 % -10 (income 0 counts as above 50 %);
  no income declared 0.

Letter: 75 or more A, 60 B, 45 C, 30 D, otherwise E. Integer math only;
percentages shown are rounded half up. More income or a longer membership
never gives a lower score.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from marketplace.texts import N_, Msg, N_plural

KYC_POINTS = 30
MEMBERSHIP_STEPS = ((365, 20), (180, 15), (90, 10), (30, 5))  # (days at least, points)
REPAID_POINTS, REPAID_MAX = 5, 15
ON_TIME_POINTS, ON_TIME_MAX = 1, 10
LATE_POINTS, LATE_MAX = 5, 20
DEFAULT_POINTS = 40
DTI_STEPS = ((20, 25), (35, 15), (50, 5))  # (percent at most, points)
DTI_OVER_POINTS = -10
LETTERS = ((75, "A"), (60, "B"), (45, "C"), (30, "D"))  # (score at least, letter); below: E


@dataclass(frozen=True)
class GradeInput:
    """``monthly_debt``: other monthly debt payments, the member's active loans here included;
    ``new_payment``: this loan's estimated monthly payment; ``monthly_income`` None: not declared."""

    kyc_verified: bool
    membership_days: int
    loans_repaid: int
    installments_on_time: int
    installments_late: int
    loans_defaulted: int
    monthly_income: int | None
    monthly_debt: int
    new_payment: int


@dataclass(frozen=True)
class Reason:
    """``factor``: "kyc", "membership", "history" or "affordability"; ``text`` is the English sentence,
    ``message`` the same sentence as a translatable text (``str(message) == text``)."""

    factor: str
    points: int
    text: str
    message: Msg | None = field(default=None, compare=False)


def reason_row(reason: Reason) -> dict:
    """A reason as a loan request stores it (``grade_reasons``): ``msg`` lets a page show it translated."""
    row = {"factor": reason.factor, "points": reason.points, "text": reason.text}
    if reason.message is not None:
        row["msg"] = reason.message.to_json()
    return row


def _reason(factor: str, points: int, message: Msg) -> Reason:
    return Reason(factor, points, str(message), message)


@dataclass(frozen=True)
class Grade:
    letter: str
    score: int
    reasons: tuple[Reason, ...]


def _signed(points: int) -> str:
    return f"{points:+d}"


def _kyc(verified: bool) -> Reason:
    if verified:
        return _reason("kyc", KYC_POINTS, Msg(N_("Identity verified (%(points)s points)."), points=_signed(KYC_POINTS)))
    return _reason(
        "kyc", 0, Msg(N_("Identity not verified yet (verifying it earns %(points)s points)."), points=KYC_POINTS)
    )


def _membership(days: int) -> Reason:
    full_days, full_points = MEMBERSHIP_STEPS[0]
    for at_least, points in MEMBERSHIP_STEPS:
        if days >= at_least:
            if points == full_points:
                forms = N_plural(
                    "Member for %(num)d day (%(points)s points).", "Member for %(num)d days (%(points)s points)."
                )
                return _reason("membership", points, Msg.plural_of(forms, days, points=_signed(points)))
            forms = N_plural(
                "Member for %(num)d day (%(points)s points; %(full_days)s days or more earns %(full_points)s).",
                "Member for %(num)d days (%(points)s points; %(full_days)s days or more earns %(full_points)s).",
            )
            message = Msg.plural_of(forms, days, points=_signed(points), full_days=full_days, full_points=full_points)
            return _reason("membership", points, message)
    first_days, first_points = MEMBERSHIP_STEPS[-1]
    forms = N_plural(
        "Member for %(num)d day (0 points; %(first_days)s days earns %(first_points)s, "
        "%(full_days)s days earns %(full_points)s).",
        "Member for %(num)d days (0 points; %(first_days)s days earns %(first_points)s, "
        "%(full_days)s days earns %(full_points)s).",
    )
    message = Msg.plural_of(
        forms, days, first_days=first_days, first_points=first_points, full_days=full_days, full_points=full_points
    )
    return _reason("membership", 0, message)


_HISTORY_PARTS = (
    N_plural("%(num)d loan repaid (%(points)s)", "%(num)d loans repaid (%(points)s)"),
    N_plural("%(num)d installment paid on time (%(points)s)", "%(num)d installments paid on time (%(points)s)"),
    N_plural("%(num)d installment paid late (%(points)s)", "%(num)d installments paid late (%(points)s)"),
    N_plural("%(num)d loan defaulted (%(points)s)", "%(num)d loans defaulted (%(points)s)"),
)


def _history(inp: GradeInput) -> Reason:
    repaid = min(REPAID_MAX, REPAID_POINTS * inp.loans_repaid)
    on_time = min(ON_TIME_MAX, ON_TIME_POINTS * inp.installments_on_time)
    late = -min(LATE_MAX, LATE_POINTS * inp.installments_late)
    defaulted = -DEFAULT_POINTS * inp.loans_defaulted
    points = repaid + on_time + late + defaulted
    if not (inp.loans_repaid or inp.installments_on_time or inp.installments_late or inp.loans_defaulted):
        return _reason("history", 0, Msg(N_("No repayment history here yet (0 points).")))
    parts = [
        Msg.plural_of(forms, count, points=_signed(earned))
        for forms, count, earned in zip(
            _HISTORY_PARTS,
            (inp.loans_repaid, inp.installments_on_time, inp.installments_late, inp.loans_defaulted),
            (repaid, on_time, late, defaulted),
            strict=True,
        )
        if count
    ]
    message = Msg(N_("Repayment history: %(parts)s; %(points)s points in all."), parts=parts, points=_signed(points))
    return _reason("history", points, message)


def _percent_text(debt: int, income: int) -> Msg:
    """The DTI as a whole percentage, rounded half up; "just over N %" when rounding would hide a step."""
    shown = (200 * debt + income) // (2 * income)
    if any(shown == limit for limit, _ in DTI_STEPS) and 100 * debt > shown * income:
        return Msg(N_("just over %(percent)s %%"), percent=shown)
    return Msg(N_("%(percent)s %%"), percent=shown)


def _affordability(inp: GradeInput) -> Reason:
    debt = inp.monthly_debt + inp.new_payment
    best_limit, best_points = DTI_STEPS[0]
    rule = Msg(N_("at most %(limit)s %% earns the full %(points)s points"), limit=best_limit, points=best_points)
    if inp.monthly_income is None:
        message = Msg(
            N_(
                "No income declared, so affordability was not checked "
                "(0 points; declaring it can earn up to %(points)s)."
            ),
            points=best_points,
        )
        return _reason("affordability", 0, message)
    income = inp.monthly_income
    if income == 0:
        message = Msg(
            N_("Declared income is 0, so debt payments would be more than 50 %% of it (%(points)s points)."),
            points=_signed(DTI_OVER_POINTS),
        )
        return _reason("affordability", DTI_OVER_POINTS, message)
    for limit, points in DTI_STEPS:
        if 100 * debt <= limit * income:
            message = Msg(
                N_("Debt payments would be %(share)s of declared income (%(points)s points; %(rule)s)."),
                share=_percent_text(debt, income),
                points=_signed(points),
                rule=rule,
            )
            return _reason("affordability", points, message)
    over = DTI_STEPS[-1][0]
    message = Msg(
        N_("Debt payments would be %(share)s of declared income, above %(limit)s %% (%(points)s points; %(rule)s)."),
        share=_percent_text(debt, income),
        limit=over,
        points=_signed(DTI_OVER_POINTS),
        rule=rule,
    )
    return _reason("affordability", DTI_OVER_POINTS, message)


def letter_for(score: int) -> str:
    for at_least, letter in LETTERS:
        if score >= at_least:
            return letter
    return "E"


def grade(inp: GradeInput) -> Grade:
    """The grade, its score and one reason per factor (kyc, membership, history, affordability)."""
    counts = (
        inp.membership_days,
        inp.loans_repaid,
        inp.installments_on_time,
        inp.installments_late,
        inp.loans_defaulted,
        inp.monthly_debt,
        inp.new_payment,
    )
    if any(value < 0 for value in counts) or (inp.monthly_income is not None and inp.monthly_income < 0):
        raise ValueError("counts, days and amounts must be >= 0")
    reasons = (_kyc(inp.kyc_verified), _membership(inp.membership_days), _history(inp), _affordability(inp))
    score = min(100, max(0, sum(r.points for r in reasons)))
    return Grade(letter_for(score), score, reasons)
