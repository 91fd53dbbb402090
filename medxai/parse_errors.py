"""Rewrite jsonargparse's type errors as one plain sentence per bad option value.

jsonargparse reports a value of the wrong type with Python class names and the whole Union it
tried, for example ``Parser key "trainer.max_epochs": Does not validate against any of the
Union subtypes Subtypes: [<class 'int'>, <class 'NoneType'>] ... Given value: abc``.
:func:`describe_parse_error` turns that into ``Invalid --trainer.max_epochs value 'abc':
expected an integer or null.`` and leaves every other message as it is.
"""

from __future__ import annotations

import re

_KEY = re.compile(r'^Parser key "(?P<key>[^"]+)":')
_VALUE = re.compile(r"(?:Given value|Got value): (?P<value>.*?)(?:\.?$|\. Given value type)")
_CLASS = re.compile(r"<class '(?P<name>[\w.]+)'>|(?P<generic>collections\.abc\.Sequence|list)\[")

# Python type name -> how the expected value reads in a message. {value} is the given value.
TYPE_WORDS: dict[str, str] = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a text value",
    "NoneType": "null",
    "collections.abc.Sequence": "a list in brackets, e.g. '[{value}]'",
    "list": "a list in brackets, e.g. '[{value}]'",
    "dict": "a mapping, e.g. '{key: value}'",
}


def describe_parse_error(message: str) -> str:
    """Return a plain version of a jsonargparse type error, or ``message`` unchanged.

    Args:
        message: The text of the ``ArgumentError``, on one line.

    Returns:
        ``"Invalid --KEY value 'VALUE': expected A or B"`` when the message names the key, the
        given value and at least one expected type listed in :data:`TYPE_WORDS`.
    """
    key_match = _KEY.match(message)
    value_match = _VALUE.search(message)
    if key_match is None or value_match is None:
        return message
    # The expected types come before "Given value type", which names the type of the bad value.
    end = message.find("Given value type")
    expected: list[str] = []
    for match in _CLASS.finditer(message[: end if end >= 0 else value_match.start()]):
        word = TYPE_WORDS.get(match.group("name") or match.group("generic"))
        if word and word not in expected:
            expected.append(word)
    if not expected:
        return message
    value = value_match.group("value").strip()
    words = " or ".join(word.format(value=value) for word in expected)
    return f"Invalid --{key_match.group('key')} value '{value}': expected {words}"
