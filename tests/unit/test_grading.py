"""grading.py: every letter boundary and every factor by hand, and monotonicity by property."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.lending import grading
from marketplace.lending.grading import Grade, GradeInput, Reason, grade, letter_for


@pytest.fixture(autouse=True)
def _clean_database():
    """Overrides the suite's autouse database fixture: the grading rule needs no app and no database."""
    yield


BASE = GradeInput(
    kyc_verified=True,
    membership_days=400,
    loans_repaid=0,
    installments_on_time=0,
    installments_late=0,
    loans_defaulted=0,
    monthly_income=100000,
    monthly_debt=10000,
    new_payment=8000,
)  # 30 + 20 + 0 + 25 = 75


def reason(g: Grade, factor: str) -> Reason:
    (found,) = [r for r in g.reasons if r.factor == factor]
    return found


def points(inp: GradeInput, factor: str) -> int:
    return reason(grade(inp), factor).points


def minus_one(inp: GradeInput) -> GradeInput:
    """4 installments on time (+4) and 1 late (-5): one point less."""
    return replace(inp, installments_on_time=4, installments_late=1)


# --- letters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inp", "score", "letter"),
    [
        (BASE, 75, "A"),  # 30 + 20 + 0 + 25
        (minus_one(BASE), 74, "B"),
        (replace(BASE, membership_days=200, monthly_debt=20000), 60, "B"),  # 30 + 15 + 0 + 15
        (minus_one(replace(BASE, membership_days=200, monthly_debt=20000)), 59, "C"),
        (replace(BASE, membership_days=100, monthly_debt=40000), 45, "C"),  # 30 + 10 + 0 + 5
        (minus_one(replace(BASE, membership_days=100, monthly_debt=40000)), 44, "D"),
        (replace(BASE, membership_days=0, monthly_income=None), 30, "D"),  # 30 + 0 + 0 + 0
        (minus_one(replace(BASE, membership_days=0, monthly_income=None)), 29, "E"),
        (replace(BASE, loans_defaulted=3, kyc_verified=False), 0, "E"),  # -75 clamps to 0
        (replace(BASE, loans_repaid=3, installments_on_time=10), 100, "A"),  # the most there is
    ],
)
def test_letter_boundaries(inp, score, letter):
    g = grade(inp)
    assert (g.score, g.letter) == (score, letter)
    assert [r.factor for r in g.reasons] == ["kyc", "membership", "history", "affordability"]
    assert g.score == min(100, max(0, sum(r.points for r in g.reasons)))


def test_letter_for():
    assert [letter_for(s) for s in (100, 75, 74, 60, 59, 45, 44, 30, 29, 0)] == list("AABBCCDDEE")


# --- factors ------------------------------------------------------------------------------------


def test_kyc():
    assert reason(grade(BASE), "kyc") == Reason("kyc", 30, "Identity verified (+30 points).")
    assert reason(grade(replace(BASE, kyc_verified=False)), "kyc") == Reason(
        "kyc", 0, "Identity not verified yet (verifying it earns 30 points)."
    )


@pytest.mark.parametrize(
    ("days", "expected"),
    [(0, 0), (29, 0), (30, 5), (89, 5), (90, 10), (179, 10), (180, 15), (364, 15), (365, 20), (4000, 20)],
)
def test_membership_steps(days, expected):
    assert points(replace(BASE, membership_days=days), "membership") == expected


def test_membership_texts():
    assert reason(grade(replace(BASE, membership_days=1)), "membership").text == (
        "Member for 1 day (0 points; 30 days earns 5, 365 days earns 20)."
    )
    assert reason(grade(replace(BASE, membership_days=200)), "membership").text == (
        "Member for 200 days (+15 points; 365 days or more earns 20)."
    )
    assert reason(grade(replace(BASE, membership_days=365)), "membership").text == "Member for 365 days (+20 points)."


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ((0, 0, 0, 0), 0),
        ((1, 0, 0, 0), 5),
        ((3, 0, 0, 0), 15),
        ((5, 0, 0, 0), 15),  # at most +15
        ((0, 7, 0, 0), 7),
        ((0, 25, 0, 0), 10),  # at most +10
        ((0, 0, 1, 0), -5),
        ((0, 0, 4, 0), -20),
        ((0, 0, 10, 0), -20),  # at most -20
        ((0, 0, 0, 1), -40),
        ((0, 0, 0, 2), -80),  # no floor per default
        ((2, 12, 3, 1), 10 + 10 - 15 - 40),
    ],
)
def test_history_points(counts, expected):
    repaid, on_time, late, defaulted = counts
    inp = replace(
        BASE,
        loans_repaid=repaid,
        installments_on_time=on_time,
        installments_late=late,
        loans_defaulted=defaulted,
    )
    assert points(inp, "history") == expected


def test_history_texts():
    assert reason(grade(BASE), "history").text == "No repayment history here yet (0 points)."
    inp = replace(BASE, loans_repaid=2, installments_on_time=12, installments_late=1, loans_defaulted=0)
    assert reason(grade(inp), "history").text == (
        "Repayment history: 2 loans repaid (+10), 12 installments paid on time (+10), "
        "1 installment paid late (-5); +15 points in all."
    )
    assert reason(grade(replace(BASE, loans_defaulted=1)), "history").text == (
        "Repayment history: 1 loan defaulted (-40); -40 points in all."
    )


@pytest.mark.parametrize(
    ("income", "debt", "expected"),
    [
        (100000, 0, 25),
        (100000, 20000, 25),  # exactly 20 %
        (100000, 20001, 15),
        (100000, 35000, 15),
        (100000, 35001, 5),
        (100000, 50000, 5),
        (100000, 50001, -10),
        (1, 0, 25),
        (0, 0, -10),  # income 0 counts as above 50 %
        (0, 500, -10),
        (None, 99999, 0),  # not declared
    ],
)
def test_affordability_steps(income, debt, expected):
    inp = replace(BASE, monthly_income=income, monthly_debt=debt, new_payment=0)
    assert points(inp, "affordability") == expected
    assert points(replace(BASE, monthly_income=income, monthly_debt=0, new_payment=debt), "affordability") == expected


@pytest.mark.parametrize(
    ("income", "debt", "text"),
    [
        (
            100000,
            18000,
            "Debt payments would be 18 % of declared income (+25 points; at most 20 % earns the full 25 points).",
        ),
        (
            100000,
            12500,  # 12.5 % rounds half up
            "Debt payments would be 13 % of declared income (+25 points; at most 20 % earns the full 25 points).",
        ),
        (
            100000,
            20040,  # 20.04 % shows as 20 %, but is over the step
            "Debt payments would be just over 20 % of declared income "
            "(+15 points; at most 20 % earns the full 25 points).",
        ),
        (
            100000,
            60000,
            "Debt payments would be 60 % of declared income, above 50 % "
            "(-10 points; at most 20 % earns the full 25 points).",
        ),
        (
            0,
            100,
            "Declared income is 0, so debt payments would be more than 50 % of it (-10 points).",
        ),
        (
            None,
            100,
            "No income declared, so affordability was not checked (0 points; declaring it can earn up to 25).",
        ),
    ],
)
def test_affordability_texts(income, debt, text):
    inp = replace(BASE, monthly_income=income, monthly_debt=debt - debt // 2, new_payment=debt // 2)
    assert reason(grade(inp), "affordability").text == text


def test_negative_inputs_are_refused():
    for field in (
        "membership_days",
        "loans_repaid",
        "installments_late",
        "monthly_debt",
        "new_payment",
        "monthly_income",
    ):
        with pytest.raises(ValueError):
            grade(replace(BASE, **{field: -1}))


# --- properties ---------------------------------------------------------------------------------

inputs = st.builds(
    GradeInput,
    kyc_verified=st.booleans(),
    membership_days=st.integers(0, 2000),
    loans_repaid=st.integers(0, 6),
    installments_on_time=st.integers(0, 30),
    installments_late=st.integers(0, 6),
    loans_defaulted=st.integers(0, 2),
    monthly_income=st.none() | st.integers(0, 10**7),
    monthly_debt=st.integers(0, 10**6),
    new_payment=st.integers(0, 10**6),
)


@settings(max_examples=400, deadline=None)
@given(inputs)
def test_score_range_and_reasons(inp):
    g = grade(inp)
    assert 0 <= g.score <= 100 and g.letter == letter_for(g.score)
    assert [r.factor for r in g.reasons] == ["kyc", "membership", "history", "affordability"]
    assert all(r.text.endswith(".") and r.text[0].isupper() for r in g.reasons)


@settings(max_examples=400, deadline=None)
@given(inputs, st.integers(0, 10**7), st.integers(0, 10**7))
def test_more_income_never_gives_a_worse_grade(inp, a, b):
    low, high = grade(replace(inp, monthly_income=min(a, b))), grade(replace(inp, monthly_income=max(a, b)))
    assert high.score >= low.score and high.letter <= low.letter  # "A" < "B": a smaller letter is better


@settings(max_examples=400, deadline=None)
@given(inputs, st.integers(0, 2000), st.integers(0, 2000))
def test_longer_membership_never_gives_a_worse_grade(inp, a, b):
    short, long = grade(replace(inp, membership_days=min(a, b))), grade(replace(inp, membership_days=max(a, b)))
    assert long.score >= short.score and long.letter <= short.letter


@settings(max_examples=200, deadline=None)
@given(inputs)
def test_verifying_and_repaying_never_hurt(inp):
    g = grade(inp)
    assert grade(replace(inp, kyc_verified=True)).score >= g.score
    assert grade(replace(inp, loans_repaid=inp.loans_repaid + 1)).score >= g.score
    assert grade(replace(inp, installments_late=inp.installments_late + 1)).score <= g.score
    assert grade(replace(inp, loans_defaulted=inp.loans_defaulted + 1)).score <= g.score


# --- purity -------------------------------------------------------------------------------------


def test_grading_imports_only_stdlib_and_uses_no_float():
    tree = ast.parse(Path(grading.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    # marketplace.texts is pure too (tests/unit/test_texts.py): the reasons as translatable texts
    assert imported <= {"__future__", "dataclasses", "decimal", "marketplace.money", "marketplace.texts"}
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, float)]
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Div)]
