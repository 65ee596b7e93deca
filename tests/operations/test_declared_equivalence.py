"""A revision's ``equivalent_sha256``: read from its source, never run, refused when malformed."""

from __future__ import annotations

import pytest

from autopr_migrate.history.equivalence import BadDeclaration, declared_equivalents

SHA = "ab" * 32


@pytest.mark.parametrize(
    "source",
    [
        f'equivalent_sha256 = {{"{SHA}": "same  index,\\n built safely"}}',
        f'equivalent_sha256: dict[str, str] = {{"{SHA}": "same index, built safely"}}',
    ],
)
def test_a_declaration_is_read_from_the_source(tmp_path, source) -> None:
    revision = tmp_path / "r.py"
    revision.write_text(f"revision = 'r1'\n{source}\n\ndef upgrade():\n    pass\n")
    assert declared_equivalents(revision) == {SHA: "same index, built safely"}


def test_nothing_declared_or_a_file_that_does_not_parse_declares_nothing(tmp_path) -> None:
    plain = tmp_path / "plain.py"
    plain.write_text("revision = 'r1'\n")
    broken = tmp_path / "broken.py"
    broken.write_text("def upgrade(:\n")
    assert declared_equivalents(plain) == declared_equivalents(broken) == {}


def test_reading_it_runs_nothing(tmp_path) -> None:
    marker = tmp_path / "ran"
    revision = tmp_path / "r.py"
    revision.write_text(
        f"open({str(marker)!r}, 'w').close()\nequivalent_sha256 = {{{SHA!r}: 'same'}}\n"
    )
    assert declared_equivalents(revision) == {SHA: "same"}
    assert not marker.exists()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("compute()", "it is not a literal"),
        (f'[("{SHA}", "same")]', "it is a list"),
        ('{"e01ebeef": "same"}', "'e01ebeef'... is not one"),
        (f'{{"{SHA.upper()}": "same"}}', "is not one"),
        (f'{{"{SHA}": "   "}}', f"the reason for {SHA[:12]}... is not"),
        (f'{{"{SHA}": "x" * 3}}', "it is not a literal"),
        (f'{{"{SHA}": "{"y" * 301}"}}', f"the reason for {SHA[:12]}... is not"),
    ],
)
def test_a_malformed_declaration_is_refused_in_one_line(tmp_path, value, says) -> None:
    revision = tmp_path / "2099_01_01_r1_rewritten.py"
    revision.write_text(f"equivalent_sha256 = {value}\n")
    with pytest.raises(BadDeclaration) as refused:
        declared_equivalents(revision)
    message = str(refused.value)
    assert says in message and "\n" not in message
    assert message.startswith("2099_01_01_r1_rewritten.py: equivalent_sha256 must be")
    assert "y" * 40 not in message


@pytest.mark.parametrize(
    "source",
    [
        f"equivalent_sha256 = {{{SHA!r}: 'same'}}\nequivalent_sha256 = {{}}\n",
        f"equivalent_sha256 = {{{SHA!r}: 'same'}}\nequivalent_sha256[{SHA!r}] = 'x'\n",
        f"equivalent_sha256 = {{{SHA!r}: 'same'}}\ndef upgrade():\n    global equivalent_sha256\n",
        f"if True:\n    equivalent_sha256 = {{{SHA!r}: 'same'}}\n",
        f"def upgrade():\n    equivalent_sha256 = {{{SHA!r}: 'same'}}\n",
        "from elsewhere import equivalent_sha256\n",
        f"a = equivalent_sha256 = {{{SHA!r}: 'same'}}\n",
        f"equivalent_sha256 = {{{SHA!r}: 'same'}}\ntry:\n    pass\n"
        "except Exception as equivalent_sha256:\n    pass\n",
        f"equivalent_sha256 = {{{SHA!r}: 'same'}}\nmatch 1:\n    case _ as equivalent_sha256:\n"
        "        pass\n",
    ],
)
def test_a_name_bound_other_than_once_at_the_top_level_is_refused(tmp_path, source) -> None:
    """What Python would end up with must be what is read: one top-level assignment only."""
    revision = tmp_path / "r.py"
    revision.write_text(source)
    with pytest.raises(BadDeclaration, match="must be bound once, by a top-level"):
        declared_equivalents(revision)
