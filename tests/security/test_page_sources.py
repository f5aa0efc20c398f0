"""The templates and scripts themselves need nothing the Content-Security-Policy forbids (no app, no database)."""

from __future__ import annotations

import re

import pytest

from marketplace.config import BASE_DIR

from .test_headers import inline_code_problems

TEMPLATES = sorted((BASE_DIR / "templates").rglob("*.html"))
SCRIPTS = sorted((BASE_DIR / "static").rglob("*.js")) + sorted((BASE_DIR / "templates").rglob("*.js"))


@pytest.fixture(autouse=True)
def _clean_database():
    """Overrides the suite's autouse database fixture: these read files only."""
    yield


def test_templates_have_no_inline_script_style_or_handlers():
    assert len(TEMPLATES) > 20
    problems = []
    for path in TEMPLATES:
        source = re.sub(r"\{#.*?#\}", "", path.read_text(encoding="utf-8"), flags=re.S)  # Jinja comments
        source = re.sub(r"\{\{.*?\}\}", "/x", source)  # an expression in src="{{ ... }}" is a same-site path
        name = path.relative_to(BASE_DIR)
        problems += [f"{name}: {problem}" for problem in inline_code_problems(source)]
        if re.search(r"<style\b|\sstyle\s*=", source):
            problems.append(f"{name}: inline style")
    assert problems == [], "\n".join(problems)


def test_scripts_need_no_unsafe_eval():
    assert SCRIPTS
    evaluating = re.compile(r"\beval\s*\(|\bnew\s+Function\s*\(|set(?:Timeout|Interval)\s*\(\s*['\"`]")
    offenders = [str(p.relative_to(BASE_DIR)) for p in SCRIPTS if evaluating.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
