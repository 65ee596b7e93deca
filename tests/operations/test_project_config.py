"""Projects declared in a file: what is read, and one clear line for what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopr_migrate.errors import ConfigurationError
from autopr_migrate.targets.project import DEFAULT_VERSION_TABLE, project_for


def _environ(tmp_path: Path, text: str, name: str = "autopr-migrate.toml") -> dict[str, str]:
    path = tmp_path / name
    path.write_text(text)
    return {"AUTOPR_MIGRATE_CONFIG": str(path)}


def test_a_target_without_a_project_uses_the_default(tmp_path) -> None:
    environ = {"AUTOPR_ALEMBIC_CONFIG": str(tmp_path / "alembic.ini")}
    project = project_for("app", environ)
    assert project.name == "default" and project.config_file == tmp_path / "alembic.ini"
    assert project.version_table == DEFAULT_VERSION_TABLE


def test_a_declared_project_is_read_relative_to_its_file(tmp_path) -> None:
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "alembic.ini").write_text("[alembic]\n")
    environ = _environ(
        tmp_path,
        "[projects.svc]\n"
        'config = "svc/alembic.ini"\n'
        'version_locations = ["svc/a", "svc/b"]\n'
        'x = ["tenant=acme"]\n'
        'version_table = "svc_version"\n'
        'version_table_schema = "svc"\n'
        "[projects.svc.environment]\n"
        'SVC_DATABASE_URL = "{url}"\n'
        "[targets.billing]\n"
        'project = "svc"\n',
    )
    project = project_for("billing", environ)
    assert project.config_file == tmp_path / "svc" / "alembic.ini"
    assert project.version_locations == (str(tmp_path / "svc/a"), str(tmp_path / "svc/b"))
    assert project.x_arguments == ("tenant=acme",)
    assert (project.version_table, project.version_table_schema) == ("svc_version", "svc")
    assert project.environment == (("SVC_DATABASE_URL", "{url}"),)
    assert project_for("other", environ).name == "default"
    environ["AUTOPR_DB_OTHER_PROJECT"] = "svc"
    assert project_for("other", environ).name == "svc"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[projects.svc\n", "cannot be read as TOML"),
        ('[projects.svc]\nscript_location = "m"\ncolour = "blue"\n', "colour: Extra inputs"),
        ('[projects.svc]\nscript_location = "m"\nversion_table = "v; DROP"\n', "not a plain SQL"),
        ("[projects.svc]\n", "names neither config"),
        ('[projects.svc]\nconfig = "nowhere.ini"\n', "is not a file"),
        ('[projects.svc]\nscript_location = "m"\n[targets.app]\nproject = "x"\n', "not declared"),
    ],
)
def test_a_wrong_declaration_is_one_line_that_says_what_to_fix(tmp_path, text, said) -> None:
    environ = _environ(
        tmp_path, text + '[targets.app]\nproject = "svc"\n' * ("targets" not in text)
    )
    with pytest.raises(ConfigurationError, match=said) as refused:
        project_for("app", environ)
    assert "\n" not in str(refused.value)


def test_a_config_variable_naming_nothing_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigurationError, match="which is not a file"):
        project_for("app", {"AUTOPR_MIGRATE_CONFIG": str(tmp_path / "missing.toml")})
