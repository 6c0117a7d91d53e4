import ast
import random

import numpy as np
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
    # double-quoted strings between single-quoted ones: an odd number of apostrophes, keywords,
    # escapes, and double quotes inside single-quoted strings before and after them
    """{'x': 'a "b"', 'n': "it's None", 'v': True, 'e': "a\\nb's\\t", 'q': "'", 'w': ['"', "''", None]}""",
    """["True's", 'False', "x", '"', "y", 'z']""",
    # escaped quotes (Python writes them when a string holds both kinds), also in a double-quoted
    # string and beside escaped backslashes, and ones the rewrite leaves to the token rewrite
    """{'both': 'I hit \\'R\\' "now"', 'dq': "it\\'s \\"x\\"", 'n': 'a\\\\nb\\'', 'k': 'None\\'s'}""",
    """['a\\\\', 'b\\\\\\'c', "d\\\\", 'e\\/f']""",
    # no double quote anywhere (the array rewrite): keywords and their letters in and out of strings
    "[None, 'N', 'T', True, 'F', False, 'Nyéri None', 'True', {'None': [None]}, 'x', None]",
    "None",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_same_values_as_literal_eval(text):
    assert pyliteral.loads(text) == ast.literal_eval(text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{'a': __import__('os').system('true')}", r"function call \"__import__\('os'\)\.system\('true'\)\" at byte 6$"),
        ("{'é': nan}", r"name 'nan' at byte 7$"),  # byte offsets count UTF-8 bytes: é is two
        ("{'a': [1, 2", r"text ends early \(after 11 bytes\): '\[' was never closed \(opened at byte 6\)"),
        ("{'a': 1} trailing", r"invalid syntax at byte 9, near 'trailing'"),
        ("[1, Nonsense, 'x']", r"name 'Nonsense' at byte 4$"),
        ("[Tru, 'x']", r"name 'Tru' at byte 1$"),
        # JSON's keywords are not Python's, on the quote-swap path and on the token rewrite (\/)
        ("{'a': 'not true', 'b': true}", r"name 'true' at byte 23$"),
        ("{'a': [1, null]}", r"name 'null' at byte 10$"),
        ("{'a\\/': false}", r"name 'false' at byte 8$"),
        ("", r"empty text"),
        ("[" * 5000 + "]" * 5000, r"(nested too deeply|too many nested|parenthes)"),
        ("[" + "9" * 5000 + "]", r"integer literal of 5000 digits"),
    ],
)
def test_hostile_or_broken_text_says_where(text, message):
    with pytest.raises(pyliteral.LiteralError, match=message):
        pyliteral.loads(text)


def test_the_exact_parser_refuses_texts_beyond_its_bound(monkeypatch):
    monkeypatch.setattr(pyliteral, "MAX_EXACT_PARSE_CHARS", 100)
    assert pyliteral.loads("(1, 2)") == (1, 2)  # a tuple: JSON cannot say it, the exact parser can
    with pytest.raises(pyliteral.LiteralError, match=r"too large for the exact parser"):
        pyliteral.loads("(" + "1.5, " * 30 + ")")


def test_random_literals_parse_as_literal_eval_reads_them():
    """Strings built from quotes, backslashes, keywords and escape-like letters, written by
    repr() (which chooses double quotes, or escapes a quote when a string holds both kinds, as
    Python does): every path of the rewrite must give literal_eval's values."""
    rng = random.Random(7)
    pieces = ["'", '"', "\\", "a", " ", "True", "None", "False", "n", "/", "é", "\t", "u00e9", "x41", ",", "["]

    def text_value():
        return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))

    def value(depth=0):
        kind = rng.randint(0, 6 if depth < 3 else 3)
        if kind <= 1:
            return text_value()
        if kind == 2:
            return rng.choice([True, False, None, -1, 2.5e-07])
        if kind == 3:
            return rng.uniform(-1e3, 1e3)
        if kind == 4:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        if kind == 5:
            return {text_value(): value(depth + 1) for _ in range(rng.randint(0, 4))}
        return (value(depth + 1), value(depth + 1))

    for _ in range(3000):
        text = repr(value())
        try:
            expected = ast.literal_eval(text)
        except (SyntaxError, ValueError):
            continue
        assert repr(pyliteral.loads(text)) == repr(expected), text


NUMBER_LISTS = {"t": False, "x": True}
CUT_CASES = [
    "{'t': [0, 1.5, -1, 2e3], 'x': [[1, 2], [3.25]], 'v': True}",
    "{'n': 'the text \\'t\\': [1, 2] in a string', 't': [4, 5]}",  # the key inside a string first
    """{'n': "'t': [1, 2]", 't': [4, 5]}""",
    "{'c': {'t': [1, 2]}, 't': [4, 5]}",  # the key of a nested dict first
    "{'c': {'t': [1, 2]}}",
    "{'t': [1, 2], 't': [3]}",  # a later duplicate wins, as in Python
    "{'t': [1, True, 2], 'x': [[1], [None]]}",  # not all numbers: lists
    "{'t': [], 'x': [[], [1]]}",
    "{'t': [1, 9007199254740993, -9223372036854775808, 18446744073709551615], 'x': [[0.1, -0, -0.0, 1e-320]]}",
    "{'t': [1, 2], 'x': [[1, [2]]]}",
    "{'t': [1, 2], 'note': '\\x7f'}",  # the placeholder's character in the text
    "[{'t': [1, 2]}]",
    "{'t': [1, 2], 'x': [[3, 4]], 'bad': (1,)}",  # the rest is no JSON: the exact parser reads it
    "{'x': [], 't': [1], 'a': [[2, 3]]}",  # an empty list of lists, a "]]" later in the text
    "{'x': [1, [2]], 't': [1]}",  # a list of lists whose first item is a number
    "{'x': [ \n\t[1.5], [2]], 't': [1]}",  # JSON whitespace before the first inner list
]


@pytest.mark.parametrize("text", CUT_CASES)
def test_number_lists_hold_what_literal_eval_reads(text):
    expected = ast.literal_eval(text)
    parsed = pyliteral.loads(text, NUMBER_LISTS)
    if not isinstance(expected, dict):
        assert parsed == expected
        return
    assert parsed.keys() == expected.keys()
    for key, value in parsed.items():
        if isinstance(value, np.ndarray):  # an array holds exactly the floats of Python's numbers
            assert not NUMBER_LISTS[key] and value.tolist() == [float(x) for x in expected[key]]
        elif isinstance(value, list) and value and all(isinstance(v, np.ndarray) for v in value):
            assert NUMBER_LISTS[key] and [v.tolist() for v in value] == [[float(x) for x in v] for v in expected[key]]
        else:
            assert value == expected[key] and type(value) is type(expected[key]), key


def test_a_list_of_lists_is_cut_only_when_its_first_item_is_a_list():
    # the cut of a list of lists is tried only where it could stand (`_LIST_OF_LISTS`): the
    # others keep Python's lists, as when the cut was tried and refused
    assert [v.tolist() for v in pyliteral.loads("{'x': [ \n\t[1.5], [2]]}", NUMBER_LISTS)["x"]] == [[1.5], [2.0]]
    assert pyliteral.loads("{'x': [], 'a': [[2, 3]]}", NUMBER_LISTS) == {"x": [], "a": [[2, 3]]}
    assert pyliteral.loads("{'x': [1, [2]]}", NUMBER_LISTS) == {"x": [1, [2]]}


def test_number_lists_of_a_real_profile_are_arrays(artisan_dir):
    text = (artisan_dir / "roast_25-08-30_1650.alog").read_text(encoding="utf-8")
    expected = ast.literal_eval(text)
    parsed = pyliteral.loads(text, {"timex": False, "temp2": False, "extratemp1": True})
    assert isinstance(parsed["timex"], np.ndarray) and parsed["timex"].tolist() == [float(v) for v in expected["timex"]]
    assert [v.tolist() for v in parsed["extratemp1"]] == [[float(x) for x in v] for v in expected["extratemp1"]]
    assert {k: v for k, v in parsed.items() if k not in ("timex", "temp2", "extratemp1")} == {
        k: v for k, v in expected.items() if k not in ("timex", "temp2", "extratemp1")}


def test_number_lists_read_numbers_as_python_does():
    """Decimals of every magnitude, as repr() and as shorter roundings, and 64-bit integers: each
    array value is the float of what Python reads (`-0` is the integer 0)."""
    rng = random.Random(3)
    values = [rng.uniform(-1e3, 1e3) for _ in range(1500)] + [rng.random() * 10.0 ** rng.randint(-300, 300) for _ in range(1500)]
    texts = [repr(v) for v in values] + [f"{v:.{rng.randint(1, 17)}g}" for v in values]
    texts += [str(rng.randint(-2**63, 2**64 - 1)) for _ in range(500)] + ["-0", "0.0", "-0.0", "5e-324", "1.7976931348623157e308"]
    parsed = pyliteral.loads("{'t': [" + ", ".join(texts) + "]}", {"t": False})["t"]
    assert isinstance(parsed, np.ndarray)
    assert parsed.tobytes() == np.array([float(ast.literal_eval(t)) for t in texts]).tobytes()  # bit for bit


def test_none_outside_strings_stays_on_the_byte_level_rewrite():
    # None is the commonest keyword of an Artisan file: its lowercase n must not send the text
    # to the slower token rewrite (it did, whatever the docstring said)
    assert pyliteral._swapped_bytes("{'a': None, 'b': [None, True], 'c': 'None t', 'd': False}") == b'{"a": null, "b": [null, true], "c": "None t", "d": false}'
    for text in ("[Nonf]", "[Non]", "[NNone]", "[None, n]", "[true]"):  # not Python: the general path decides
        assert pyliteral._swapped_bytes(text) is None


def test_json_keywords_inside_strings_keep_a_large_text_off_the_exact_parser(monkeypatch):
    # a Python-only escape sends the text to the token rewrite; the word "true" in a note must
    # not send it on to the exact parser, which refuses texts beyond its bound (a lost roast)
    monkeypatch.setattr(pyliteral, "MAX_EXACT_PARSE_CHARS", 20)
    text = "{'notes': 'true love \\x41', 'n': [None, 1]}"
    assert pyliteral.loads(text) == ast.literal_eval(text)
    with pytest.raises(pyliteral.LiteralError):  # outside a string JSON's keyword is still no literal
        pyliteral.loads("{'a': true, 'b': '\\x41'}")
