"""jsonargparse type errors become one plain sentence; other messages pass through."""

from __future__ import annotations

import pytest

from medxai.cli import main
from medxai.parse_errors import describe_parse_error

SEQUENCE_ERROR = (
    "Parser key \"explain.methods\": Expected a <class 'collections.abc.Sequence'>. Got value: gradcam"
)
UNION_ERROR = (
    "Parser key \"trainer.max_epochs\": Does not validate against any of the Union subtypes Subtypes: "
    "[<class 'int'>, <class 'NoneType'>] Errors: - Expected a <class 'int'> - Expected a <class "
    "'NoneType'> Given value type: <class 'str'> Given value: abc"
)


def test_sequence_error_suggests_brackets() -> None:
    assert describe_parse_error(SEQUENCE_ERROR) == (
        "Invalid --explain.methods value 'gradcam': expected a list in brackets, e.g. '[gradcam]'"
    )


def test_union_error_lists_expected_types() -> None:
    # The type of the given value (str) is not among the expected types.
    assert describe_parse_error(UNION_ERROR) == "Invalid --trainer.max_epochs value 'abc': expected an integer or null"


@pytest.mark.parametrize("message", ["unrecognized arguments: --foo", 'Parser key "a": Something else'])
def test_other_messages_unchanged(message: str) -> None:
    assert describe_parse_error(message) == message


def test_cli_reports_plain_type_error(tmp_path, capsys) -> None:
    status = main(["fit", f"--trainer.default_root_dir={tmp_path}", "--quantus.metrics", "Complexity"])
    stderr = capsys.readouterr().err
    assert status == 2
    assert "medxai: error: Invalid --quantus.metrics value 'Complexity': expected a list in brackets, e.g. '[Complexity]' or null." in stderr
    assert "Union subtypes" not in stderr
