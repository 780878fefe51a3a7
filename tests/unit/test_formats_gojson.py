"""pybox.formats.gojson: JSON read as Go's encoding/json reads it, refused in
Go's words -- the scanner's (a json.Decoder's and json.Unmarshal's flavours)
and the decoder's UnmarshalTypeError -- for the API's bodies and the plugins'
config.json alike."""

import json

import pytest

from pybox.formats import gojson
from pybox.formats.gojson import Bool, Int, Map, Ptr, Slice, Str, Struct

pytestmark = pytest.mark.unit


# -- the scanner -----------------------------------------------------------------------------
# (text, a json.Decoder's words, json.Unmarshal's words): what Go 1.24 answers
SYNTAX = [
    ("{", "unexpected EOF", "unexpected end of JSON input"),
    ('{"a": [1, 2', "unexpected EOF", "unexpected end of JSON input"),
    ('["abc', "unexpected EOF", "unexpected end of JSON input"),
    ('{"a', "unexpected EOF", "unexpected end of JSON input"),
    ("[1 2]", "invalid character '2' after array element",
     "invalid character '2' after array element"),
    ('{"a" 1}', "invalid character '1' after object key",
     "invalid character '1' after object key"),
    ('{"a": 1 "b": 2}', "invalid character '\"' after object key:value pair",
     "invalid character '\"' after object key:value pair"),
    ('{"a": [1, {"b": 2} 3]}', "invalid character '3' after array element",
     "invalid character '3' after array element"),
    ('{"a": "x]" "b"}', "invalid character '\"' after object key:value pair",
     "invalid character '\"' after object key:value pair"),
    ("{1: 2}", "invalid character '1' looking for beginning of object key string",
     "invalid character '1' looking for beginning of object key string"),
    ("[,]", "invalid character ',' looking for beginning of value",
     "invalid character ',' looking for beginning of value"),
    ("'a'", "invalid character '\\'' looking for beginning of value",
     "invalid character '\\'' looking for beginning of value"),
    ("[\x01]", "invalid character '\\x01' looking for beginning of value",
     "invalid character '\\x01' looking for beginning of value"),
    ('["a\nb"]', "invalid character '\\n' in string literal",
     "invalid character '\\n' in string literal"),
    ('["\\q"]', "invalid character 'q' in string escape code",
     "invalid character 'q' in string escape code"),
    ('["\\u12x4"]', "invalid character 'x' in \\u hexadecimal character escape",
     "invalid character 'x' in \\u hexadecimal character escape"),
    ("[NaN]", "invalid character 'N' looking for beginning of value",
     "invalid character 'N' looking for beginning of value"),
    ("Infinity", "invalid character 'I' looking for beginning of value",
     "invalid character 'I' looking for beginning of value"),
    ("-Infinity", "invalid character 'I' in numeric literal",
     "invalid character 'I' in numeric literal"),
    ("5x", "invalid character 'x' after top-level value",
     "invalid character 'x' after top-level value"),
    ('"a"b', "invalid character 'b' after top-level value",
     "invalid character 'b' after top-level value"),
    ("[" * 100_000, "exceeded max depth", "exceeded max depth"),
]


@pytest.mark.parametrize("text, stream_words, unmarshal_words", SYNTAX)
def test_syntax_errors_in_gos_words(text, stream_words, unmarshal_words):
    with pytest.raises(gojson.GoJSONError) as info:
        gojson.read_value(text)
    assert str(info.value) == stream_words
    with pytest.raises(gojson.GoJSONError) as info:
        gojson.unmarshal(text.encode())
    assert str(info.value) == unmarshal_words


@pytest.mark.parametrize("text", ["", " \n\t "])
def test_nothing_at_all(text):
    # a json.Decoder: io.EOF, which callers word themselves ("got EOF while reading ...")
    with pytest.raises(gojson.Empty) as info:
        gojson.read_value(text)
    assert str(info.value) == "EOF"
    with pytest.raises(gojson.GoJSONError, match="^unexpected end of JSON input$"):
        gojson.unmarshal(text)


@pytest.mark.parametrize("text, value, more", [
    ('{"a": 1}', {"a": 1}, False),
    (' [1] \n', [1], False),
    ("[] x", [], True),    # Decode reads one value; Decoder.More() sees the rest
    ("{}{}", {}, True),
    ("[]]", [], False),    # More() is false before ']' and '}'
    ("5 x", 5, True),      # a space ends the number: no scanner error
])
def test_decoder_reads_one_value_then_more(text, value, more):
    assert gojson.read_value(text) == (value, more)


@pytest.mark.parametrize("text, words", [
    ("{}{}", "invalid character '{' after top-level value"),
    ("[] x", "invalid character 'x' after top-level value"),
    ("5 x", "invalid character 'x' after top-level value"),
])
def test_unmarshal_takes_exactly_one_value(text, words):
    with pytest.raises(gojson.GoJSONError) as info:
        gojson.unmarshal(text)
    assert str(info.value) == words


def test_syntax_error_of_python_json_error():
    # for callers that parse with json.loads themselves (plugin set's body)
    for text, words in [("[1] x", "invalid character 'x' after top-level value"),
                        ("[1,", "unexpected EOF")]:
        with pytest.raises(json.JSONDecodeError) as info:
            json.loads(text)
        assert gojson.syntax_error(text, info.value, stream=True) == words
    with pytest.raises(json.JSONDecodeError) as info:
        json.loads("[1,")
    assert gojson.syntax_error("[1,", info.value, stream=False) == "unexpected end of JSON input"


def test_numbers_keep_their_text():
    value = gojson.unmarshal('[1.50, 1e2, -0, 12]')
    assert [gojson.number_text(v) for v in value] == ["1.50", "1e2", "0", "12"]
    assert value[0] == 1.5 and isinstance(value[0], float)
    big = "9" * 5000  # past Python's int conversion limit: kept as text
    assert gojson.number_text(gojson.unmarshal(big)) == big


# -- typed decoding --------------------------------------------------------------------------
INNER = Struct("Inner", "pkg.Inner", [("Size", Int("uint8")), ("Tags", Slice(Str()))])
OUTER = Struct("Outer", "pkg.Outer", [
    ("Name", Str()), ("On", Bool()), ("Count", Int("int")), ("Inner", INNER),
    ("Opt", Ptr(INNER)), ("Labels", Map(Str())), ("*", Struct("Embedded", "pkg.Embedded", [
        ("Deep", Int("int32"))]))])


def decode_error(text, typ=OUTER):
    with pytest.raises(gojson.GoJSONError) as info:
        gojson.decode(gojson.unmarshal(text), typ)
    return str(info.value)


@pytest.mark.parametrize("text, words", [
    ("[]", "json: cannot unmarshal array into Go value of type pkg.Outer"),
    ('"x"', "json: cannot unmarshal string into Go value of type pkg.Outer"),
    ('{"Name": 5}', "json: cannot unmarshal number into Go struct field Outer.Name of type string"),
    ('{"on": "true"}', "json: cannot unmarshal string into Go struct field Outer.On of type bool"),
    ('{"Count": 1.5}',
     "json: cannot unmarshal number 1.5 into Go struct field Outer.Count of type int"),
    ('{"Count": 1.50}',
     "json: cannot unmarshal number 1.50 into Go struct field Outer.Count of type int"),
    ('{"Count": 9223372036854775808}', "json: cannot unmarshal number 9223372036854775808 "
                                       "into Go struct field Outer.Count of type int"),
    ('{"Count": true}', "json: cannot unmarshal bool into Go struct field Outer.Count of type int"),
    ('{"Inner": {"Size": 256}}',
     "json: cannot unmarshal number 256 into Go struct field Inner.Inner.Size of type uint8"),
    ('{"Inner": {"Size": -1}}',
     "json: cannot unmarshal number -1 into Go struct field Inner.Inner.Size of type uint8"),
    ('{"Inner": {"Tags": "a"}}',
     "json: cannot unmarshal string into Go struct field Inner.Inner.Tags of type []string"),
    ('{"Inner": {"Tags": ["a", 1]}}',
     "json: cannot unmarshal number into Go struct field Inner.Inner.Tags of type string"),
    ('{"Opt": []}', "json: cannot unmarshal array into Go struct field Outer.Opt of type pkg.Inner"),
    ('{"Labels": {"a": {}}}',
     "json: cannot unmarshal object into Go struct field Outer.Labels of type string"),
    ('{"Labels": []}',
     "json: cannot unmarshal array into Go struct field Outer.Labels of type map[string]string"),
    # an embedded struct's fields are named through its type (Go 1.24)
    ('{"deep": "x"}',
     "json: cannot unmarshal string into Go struct field Outer.Embedded.Deep of type int32"),
    # the first type error is the one reported, after the whole decode
    ('{"Name": 1, "On": 2}',
     "json: cannot unmarshal number into Go struct field Outer.Name of type string"),
])
def test_type_errors_in_gos_words(text, words):
    assert decode_error(text) == words


def test_fields_case_insensitive_unknown_ignored_null_untouched():
    value = gojson.decode(gojson.unmarshal(
        '{"NAME": "a", "bogus": 1, "on": null, "Opt": null, "labels": null, "\u212aey": 1}'),
        OUTER)
    assert value == {"Name": "a", "Opt": None, "Labels": None}
    # the exact name and its case variants are one field: the last one wins
    assert gojson.decode({"name": "a", "Name": "b"}, OUTER) == {"Name": "b"}
    # Go's fold: the Kelvin sign and the long s match K and S
    assert gojson.decode({"\u017fize": 3}, INNER) == {"Size": 3}


def test_a_struct_met_twice_is_decoded_into_once():
    value = gojson.decode({"Inner": {"Size": 1}, "inner": {"Tags": ["t"]}}, OUTER)
    assert value == {"Inner": {"Size": 1, "Tags": ["t"]}}
    # a bad second object leaves what the first one set
    with pytest.raises(gojson.GoJSONError):
        gojson.decode({"Inner": {"Size": 1}, "inner": 5}, OUTER)


def test_list_and_map_entries_of_the_wrong_type_are_zero_values():
    typ = Slice(Int("int"))
    st = gojson.DecodeState()
    assert typ.decode([1, "x", None, 3], st) == [1, 0, 0, 3]
    assert st.saved == "json: cannot unmarshal string into Go value of type int"


class Picky(gojson.GoType):
    """A type with its own UnmarshalJSON, which fails."""

    go = "pkg.Picky"

    def decode(self, v, st):
        raise gojson.Fatal(f"{v!r} is not picky")


def test_an_unmarshaler_error_ends_the_decode_and_wins():
    typ = Struct("T", "pkg.T", [("A", Str()), ("P", Slice(Picky()))])
    # Go's decoder returns the Unmarshaler's error over a type error it saved before
    assert decode_error('{"A": 1, "P": [5]}', typ) == "5 is not picky"


def test_strings_get_gos_replacement_for_lone_surrogates():
    assert gojson.decode(gojson.unmarshal('["a\\ud800b"]'), Slice(Str())) == ["a\ufffdb"]


def test_complete_fills_zero_values():
    value = gojson.decode({"inner": {"size": 2}}, OUTER)
    assert gojson.complete(value, OUTER) == {
        "Name": "", "On": False, "Count": 0, "Inner": {"Size": 2, "Tags": None},
        "Opt": None, "Labels": None, "Deep": 0}
    assert gojson.complete(gojson.decode(None, OUTER), OUTER)["Inner"] == {"Size": 0,
                                                                           "Tags": None}


def test_render_keeps_what_fits_and_never_raises():
    stored = {"Name": 5, "Inner": {"Tags": ["a", 7]}, "Extra": [1], "name": "case variant"}
    assert gojson.render(stored, OUTER) == {"Inner": {"Tags": ["a", ""]}, "Extra": [1]}
    assert gojson.render([1], OUTER) == {}
