"""Key rules of the spec's "Details", the key convention, and listing prefixes."""

from __future__ import annotations

import pytest

from factflow_storage.errors import InvalidKey
from factflow_storage.keys import (KeyParts, build_key, execution_prefix, parse_key, validate_execution_id,
                                   validate_key, validate_prefix, validate_segment)

VALID_KEYS = [
    "a",
    "a/b/c",
    "executions/e1/route/stage/msg-1.json",
    "notes/readme.txt",
    "a-b", "a.b", "a0", "a b", "~tilde",
    ".hidden",  # a dot file is a name, not a '.' segment
    "..double-dot-name",
    "dir.with.dots/file..name",
    "données/résumé.md",
    "日本/語",
    "emoji/😀",
    "meta.json",  # only the '.meta.json' ending is reserved
    "x.meta.jsonl",
    "x/.meta",
    "_factflowx/y",
    "factflow/_factflow/z",  # reserved only at the top
    "a/" * 511 + "b",  # 1023 bytes
]


@pytest.mark.parametrize("key", VALID_KEYS)
def test_valid_keys_pass_unchanged(key):
    assert validate_key(key) == key


INVALID_KEYS = {
    "empty": ("", "empty"),
    "leading slash": ("/a", "absolute"),
    "absolute path": ("/etc/passwd", "absolute"),
    "trailing slash": ("a/", "empty segment"),
    "double slash": ("a//b", "empty segment"),
    "only slash": ("/", "absolute"),
    "dot segment": ("a/./b", "'.' segment"),
    "lone dot": (".", "'.' segment"),
    "dotdot segment": ("a/../b", "'..' segment"),
    "lone dotdot": ("..", "'..' segment"),
    "leading dotdot": ("../etc/passwd", "'..' segment"),
    "trailing dotdot": ("a/..", "'..' segment"),
    "backslash": ("a\\b", "backslash"),
    "windows traversal": ("..\\..\\etc", "backslash"),
    "nul": ("a\x00b", "control"),
    "newline": ("a\nb", "control"),
    "tab": ("a\tb", "control"),
    "escape": ("a\x1bb", "control"),
    "delete char": ("a\x7fb", "control"),
    "c1 control": ("a\x85b", "control"),
    "sidecar name": ("a/b.meta.json", ".meta.json"),
    "sidecar segment in the middle": ("a/x.meta.json/b", ".meta.json"),
    "bare sidecar suffix": (".meta.json", ".meta.json"),
    "reserved prefix": ("_factflow/executions/e1.json", "reserved"),
    "reserved prefix, shallow": ("_factflow/x", "reserved"),
    # An object named like the records directory would collide with it on a filesystem.
    "reserved name": ("_factflow", "reserved"),
    "lone surrogate": ("a\udc80b", "UTF-8"),
}


@pytest.mark.parametrize("key, reason", INVALID_KEYS.values(), ids=INVALID_KEYS.keys())
def test_invalid_keys_are_refused_with_a_clear_reason(key, reason):
    with pytest.raises(InvalidKey) as caught:
        validate_key(key)
    message = str(caught.value)
    assert reason in message
    assert repr(key) in message
    assert "\n" not in message  # safe as one line on stderr
    assert isinstance(caught.value, ValueError)


def test_length_limit_is_1024_utf8_bytes():
    assert validate_key("k" * 1024) == "k" * 1024
    with pytest.raises(InvalidKey, match="longer than 1024 bytes"):
        validate_key("k" * 1025)
    # Bytes, not characters: 512 two-byte characters fill the limit exactly.
    assert validate_key("é" * 512) == "é" * 512
    with pytest.raises(InvalidKey, match="longer than 1024 bytes"):
        validate_key("é" * 512 + "k")
    with pytest.raises(InvalidKey, match="longer than 1024 bytes"):
        validate_key("😀" * 256 + "k")


@pytest.mark.parametrize("prefix", ["", "a", "a/", "a/b/", "executions/e1/", "executions/e", "_f", "_factfl",
                                    "x.meta", "日本/"])
def test_valid_prefixes(prefix):
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/", "/a", "a//", "a//b/", "./", "a/../", "a\\", "a\x00",
                                    "_factflow", "_factflow/", "_factflow/executions/", "x.meta.json/",
                                    "a/" * 512 + "b"])
def test_invalid_prefixes(prefix):
    with pytest.raises(InvalidKey, match="invalid prefix"):
        validate_prefix(prefix)


@pytest.mark.parametrize("value", ["", "a/b", ".", "..", "x.meta.json", "a\\b", "a\nb", "_factflow"])
def test_segments_must_be_one_valid_segment(value):
    with pytest.raises(InvalidKey, match="invalid execution id"):
        validate_segment(value, "execution id")


def test_build_and_parse_a_conventional_key():
    key = build_key("exec-1", "sitemap_scraper", "web_scraper", "msg-0001.html")
    assert key == "executions/exec-1/sitemap_scraper/web_scraper/msg-0001.html"
    assert parse_key(key) == KeyParts("exec-1", "sitemap_scraper", "web_scraper", "msg-0001.html")


def test_msg_id_may_contain_slashes():
    key = build_key("e", "r", "s", "part/7/chunk.json")
    assert parse_key(key) == KeyParts("e", "r", "s", "part/7/chunk.json")


@pytest.mark.parametrize("key, parts", [
    ("executions/e1", KeyParts("e1")),
    ("executions/e1/", KeyParts("e1")),
    ("executions/e1/r/", KeyParts("e1", "r")),
    ("executions/e1/r/s/", KeyParts("e1", "r", "s")),
    ("executions/e1/r", KeyParts("e1", "r")),
    ("executions/e1/r/s", KeyParts("e1", "r", "s")),
])
def test_parse_partial_keys(key, parts):
    assert parse_key(key) == parts


@pytest.mark.parametrize("key", ["notes/readme.txt", "executions", "executions/", "executionsx/e/r/s/m", "a"])
def test_keys_outside_the_convention_parse_to_none_but_stay_valid(key):
    assert parse_key(key) is None


@pytest.mark.parametrize("args", [
    ("", "r", "s", "m"),
    ("e/1", "r", "s", "m"),
    ("..", "r", "s", "m"),
    ("e", "r/x", "s", "m"),
    ("e", "r", "", "m"),
    ("e", "r", "s", ""),
    ("e", "r", "s", "../m"),
    ("e", "r", "s", "m.meta.json"),
])
def test_build_key_refuses_bad_parts(args):
    with pytest.raises(InvalidKey):
        build_key(*args)


def test_execution_prefix():
    assert execution_prefix("exec-1") == "executions/exec-1/"
    with pytest.raises(InvalidKey):
        execution_prefix("../x")


def test_execution_ids_must_also_name_a_record():
    assert validate_execution_id("exec-1.meta-data") == "exec-1.meta-data"
    with pytest.raises(InvalidKey, match="record name would end in '.meta.json'"):
        validate_execution_id("x.meta")
    with pytest.raises(InvalidKey, match="invalid execution id"):
        validate_execution_id("a/b")
