import ast

import pytest

from daena_pipelines.telemetry import pyliteral

SAMPLES = [
    "{'a': 1, 'b': [1.5, -1, 2e3], 'c': True, 'd': False, 'e': None}",
    """{'quote': "it's", 'dq': 'say "hi"', 'esc': 'line\\\\nbreak', 'tab': 'a\\tb', 'uni': 'Kenya Nyéri ☕'}""",
    "{'True': 'None', 'nested': {'x': [[1, 2], [3]]}, 'empty': {}, 'list': []}",
    "{'hex': '\\x41\\u00e9', 'tuple': (1, 2), 'big': 123456789012345678901234567890}",
    "{'neg': -0.5, 'exp': 1.5e-07, 'ints': [0, -1, 10]}",
    """{'q': 'say "hi"', 'k': 'None True', 'r': False}""",  # double quotes only inside strings
    """{'a': "x', 'b': 'y", 'c': '"'}""",  # one double-quoted string that looks like two keys
]


@pytest.mark.parametrize("text", SAMPLES)
def test_same_values_as_literal_eval(text):
    assert pyliteral.loads(text) == ast.literal_eval(text)


@pytest.mark.parametrize(
    "text, error",
    [
        ("{'a': __import__('os').system('true')}", ValueError),
        ("{'a': [1, 2", SyntaxError),
        ("{'a': 1} trailing", SyntaxError),
        ("[" * 5000 + "]" * 5000, (SyntaxError, RecursionError, MemoryError)),
    ],
)
def test_hostile_or_broken_text_raises(text, error):
    with pytest.raises(error):
        pyliteral.loads(text)
