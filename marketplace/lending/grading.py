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

from dataclasses import dataclass

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
    """``factor``: "kyc", "membership", "history" or "affordability"."""

    factor: str
    points: int
    text: str


@dataclass(frozen=True)
class Grade:
    letter: str
    score: int
    reasons: tuple[Reason, ...]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _signed(points: int) -> str:
    return f"{points:+d}"


def _kyc(verified: bool) -> Reason:
    if verified:
        return Reason("kyc", KYC_POINTS, f"Identity verified ({_signed(KYC_POINTS)} points).")
    return Reason("kyc", 0, f"Identity not verified yet (verifying it earns {KYC_POINTS} points).")


def _membership(days: int) -> Reason:
    full_days, full_points = MEMBERSHIP_STEPS[0]
    for at_least, points in MEMBERSHIP_STEPS:
        if days >= at_least:
            if points == full_points:
                return Reason("membership", points, f"Member for {_plural(days, 'day')} ({_signed(points)} points).")
            return Reason(
                "membership",
                points,
                f"Member for {_plural(days, 'day')} ({_signed(points)} points; "
                f"{full_days} days or more earns {full_points}).",
            )
    first_days, first_points = MEMBERSHIP_STEPS[-1]
    return Reason(
        "membership",
        0,
        f"Member for {_plural(days, 'day')} (0 points; {first_days} days earns {first_points}, "
        f"{full_days} days earns {full_points}).",
    )


def _history(inp: GradeInput) -> Reason:
    repaid = min(REPAID_MAX, REPAID_POINTS * inp.loans_repaid)
    on_time = min(ON_TIME_MAX, ON_TIME_POINTS * inp.installments_on_time)
    late = -min(LATE_MAX, LATE_POINTS * inp.installments_late)
    defaulted = -DEFAULT_POINTS * inp.loans_defaulted
    points = repaid + on_time + late + defaulted
    if not (inp.loans_repaid or inp.installments_on_time or inp.installments_late or inp.loans_defaulted):
        return Reason("history", 0, "No repayment history here yet (0 points).")
    parts = [
        f"{_plural(count, noun)} {verb} ({_signed(earned)})"
        for count, noun, verb, earned in (
            (inp.loans_repaid, "loan", "repaid", repaid),
            (inp.installments_on_time, "installment", "paid on time", on_time),
            (inp.installments_late, "installment", "paid late", late),
            (inp.loans_defaulted, "loan", "defaulted", defaulted),
        )
        if count
    ]
    return Reason("history", points, f"Repayment history: {', '.join(parts)}; {_signed(points)} points in all.")


def _percent_text(debt: int, income: int) -> str:
    """The DTI as a whole percentage, rounded half up; "just over N %" when rounding would hide a step."""
    shown = (200 * debt + income) // (2 * income)
    if any(shown == limit for limit, _ in DTI_STEPS) and 100 * debt > shown * income:
        return f"just over {shown} %"
    return f"{shown} %"


def _affordability(inp: GradeInput) -> Reason:
    debt = inp.monthly_debt + inp.new_payment
    best_limit, best_points = DTI_STEPS[0]
    rule = f"at most {best_limit} % earns the full {best_points} points"
    if inp.monthly_income is None:
        return Reason(
            "affordability",
            0,
            f"No income declared, so affordability was not checked (0 points; declaring it can earn up to {best_points}).",
        )
    income = inp.monthly_income
    if income == 0:
        return Reason(
            "affordability",
            DTI_OVER_POINTS,
            f"Declared income is 0, so debt payments would be more than 50 % of it ({_signed(DTI_OVER_POINTS)} points).",
        )
    for limit, points in DTI_STEPS:
        if 100 * debt <= limit * income:
            share = _percent_text(debt, income)
            return Reason(
                "affordability",
                points,
                f"Debt payments would be {share} of declared income ({_signed(points)} points; {rule}).",
            )
    over = DTI_STEPS[-1][0]
    share = _percent_text(debt, income)
    return Reason(
        "affordability",
        DTI_OVER_POINTS,
        f"Debt payments would be {share} of declared income, above {over} % ({_signed(DTI_OVER_POINTS)} points; {rule}).",
    )


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
