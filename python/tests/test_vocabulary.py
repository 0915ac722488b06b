"""The root README's "One vocabulary" table (issue #19): the Python column names members that
exist, and the old names it calls deprecated still answer with a DeprecationWarning."""

from __future__ import annotations

import inspect
import pathlib

import pytest

import pgentra

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def python_column() -> dict:
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("### One vocabulary")
    rows = [l for l in lines[start:] if l.startswith("| ")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    col = header.index("Python")
    table = {}
    for row in rows[1:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) != len(header):
            break
        table[cells[0]] = cells[col]
    return table


def test_the_python_column_names_members_that_exist():
    t = python_column()
    for concept, names in {
        "token": ["token", "token_async"],
        "connection string": ["connection_string"],
        "invalidate if still cached": ["invalidate_if"],
        "identity request count": ["token_requests"],
    }.items():
        for name in names:
            assert f"`{name}" in t[concept] or f"`.{name}" in t[concept], (concept, t[concept])
            member = inspect.getattr_static(pgentra.Connector, name)
            # The kind of member the cell shows: `name(...)` a method, `.name` a property.
            if f"`.{name}`" in t[concept]:
                assert inspect.isdatadescriptor(member), f"{name} should be a property"
            else:
                assert f"`{name}(" in t[concept], (concept, t[concept])
                assert inspect.isroutine(member), f"{name} should be a method"
    assert "`.service_code`" in t["service code (`AADSTS…`)"] and pgentra.Error.service_code is None
    assert "`.kind`" in t["error kind"] and pgentra.ConfigError.kind == "configuration"
    assert "seconds" in t["timeout (one token acquisition)"]
    # The old names it lists as deprecated.
    assert "`dsn()`: deprecated" in t["connection string"] and "`.code`: deprecated" in t["service code (`AADSTS…`)"]
    with pytest.deprecated_call():
        assert pgentra.ConfigError("x").code is None
