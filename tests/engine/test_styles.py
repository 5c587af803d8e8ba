"""Style table, normalisation, apply_style, random style and [[arrays]] against the Fooocus oracle.

The style JSON files are GPL data and are never copied into the repository: the tests read them from
``shared/fooocus-data/sdxl_styles`` (skipped when absent) and compare with ``oracle/styles.json``.
"""
from __future__ import annotations

import json
import random
import shutil

import pytest
from conftest import FOOOCUS_DATA, load_json

from engine import styles as S


@pytest.fixture(scope="module")
def styles_dir():
    d = FOOOCUS_DATA / "sdxl_styles"
    if not d.is_dir():
        pytest.skip(f"Fooocus style files not found at {d}")
    return d


@pytest.fixture(scope="module")
def table(styles_dir):
    return S.load_styles(styles_dir)


@pytest.fixture(scope="module")
def oracle(oracle_dir):
    return load_json("styles.json")


def test_style_keys_in_oracle_order(table, oracle):
    assert oracle["n_styles"] == 277
    assert len(table) == 277
    assert list(table.keys()) == oracle["style_keys"]
    assert S.legal_style_names(table) == oracle["legal_style_names"]
    assert oracle["fooocus_expansion"] == S.FOOOCUS_V2
    assert oracle["random_style_name"] == S.RANDOM_STYLE


def test_table_metadata(table, styles_dir):
    assert [f.name for f in table.files] == list(S.FOOOCUS_STYLE_FILES)
    assert table.searched == [styles_dir]
    assert table.sources["Fooocus Sharp"].name == "sdxl_styles_fooocus.json"
    assert table.sources["Pebble Art"].name == "sdxl_styles_marc_k3nt3l.json"
    assert all(isinstance(p, str) and isinstance(n, str) for p, n in table.values())


def test_provider_prefixes_match_loaded_sources(table):
    """The prefix heuristic used in error messages agrees with the real source of every prefixed style."""
    for name, src in table.sources.items():
        guess = S.style_provider_file(name)
        if guess is not None:
            assert guess == src.name, name
        else:
            assert src.name in ("sdxl_styles_diva.json", "sdxl_styles_marc_k3nt3l.json"), name


def test_apply_style_cases(table, oracle):
    cases = oracle["apply_style_cases"]
    assert len(cases) == 30
    for c in cases:
        pos, neg, has = S.apply_style(table, c["style"], c["prompt"])
        assert pos == c["positive"], c["style"]
        assert neg == c["negative"], c["style"]
        assert has is c["has_prompt_placeholder"], c["style"]


def test_normalize_cases(oracle):
    cases = oracle["normalize_key_cases"]
    assert len(cases) > 20
    for c in cases:
        assert S.normalize_style_name(c["in"]) == c["out"], c["in"]


def test_normalize_rejects_non_str():
    with pytest.raises(ValueError, match="name"):
        S.normalize_style_name(None)


def test_random_style_cases(table, oracle):
    for c in oracle["get_random_style_cases"]:
        assert S.random_style(table, random.Random(c["seed"])) == c["style"], c["seed"]


def test_random_style_errors(table):
    with pytest.raises(ValueError, match="rng"):
        S.random_style(table, 42)
    with pytest.raises(ValueError, match="styles"):
        S.random_style({}, random.Random(0))


def test_apply_arrays_cases(oracle):
    cases = oracle["apply_arrays_cases"]
    assert len(cases) == 8
    for c in cases:
        assert S.apply_arrays(c["text"], c["index"]) == c["out"], c


def test_apply_arrays_extra():
    # options are not stripped; the same array twice uses two digits; index wraps at the product.
    assert S.apply_arrays("[[a, b]]", 1) == " b"
    assert S.apply_arrays("[[x,y]] [[x,y]]", 2) == "x y"
    assert S.apply_arrays("[[x,y]] [[x,y]]", 1) == "y x"
    assert S.apply_arrays("[[p,q,r]]", 10**20) == ["p", "q", "r"][10**20 % 3]
    assert S.apply_arrays("[[]] end", 0) == " end"
    with pytest.raises(ValueError, match="index"):
        S.apply_arrays("[[a,b]]", 1.0)
    with pytest.raises(ValueError, match="text"):
        S.apply_arrays(None, 0)


def _write(path, obj):
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def test_user_files_first_sorted_then_fooocus_order(tmp_path, styles_dir, oracle):
    user = tmp_path / "user"
    user.mkdir()
    _write(user / "zeta.json", [{"name": "zz-top", "prompt": "z {prompt}"}])
    _write(user / "Alpha.json", [{"name": "my-style", "prompt": "{prompt}, mine", "negative_prompt": "bad"}])
    _write(user / "beta.JSON", [{"name": "b style"}])
    (user / "notes.txt").write_text("ignored", encoding="utf-8")
    # the Fooocus files come from another folder, listed first: the fixed order still puts them last
    t = S.load_styles([styles_dir, user])
    assert list(t)[:3] == ["My Style", "B Style", "Zz Top"]
    assert list(t)[3:] == oracle["style_keys"]
    assert t["My Style"] == ("{prompt}, mine", "bad")
    assert t["B Style"] == ("", "")
    assert [f.name for f in t.files][:3] == ["Alpha.json", "beta.JSON", "zeta.json"]


def test_duplicate_keeps_first_position_and_last_value(tmp_path, styles_dir, table):
    user = tmp_path / "dup"
    user.mkdir()
    _write(user / "custom.json",
           [{"name": "fooocus-sharp", "prompt": "mine {prompt}", "negative_prompt": "n"}])
    t = S.load_styles([user, styles_dir])
    keys = list(t)
    assert keys[0] == "Fooocus Sharp"
    assert len(keys) == 277
    assert t["Fooocus Sharp"] == table["Fooocus Sharp"]  # the Fooocus file is loaded later and wins
    assert t.sources["Fooocus Sharp"].name == "sdxl_styles_fooocus.json"


def test_fooocus_files_identified_by_name_in_any_folder(tmp_path, styles_dir, oracle):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for i, name in enumerate(S.FOOOCUS_STYLE_FILES):
        shutil.copy(styles_dir / name, (a if i % 2 else b) / name)
    t = S.load_styles([str(a), b / "..missing", b])
    assert list(t) == oracle["style_keys"]
    t2 = S.load_styles([a / n for n in reversed(S.FOOOCUS_STYLE_FILES) if (a / n).exists()]
                       + [b / n for n in S.FOOOCUS_STYLE_FILES if (b / n).exists()])
    assert list(t2) == oracle["style_keys"]
    # the same file given twice is read once
    t3 = S.load_styles([b, b, a])
    assert list(t3) == oracle["style_keys"]
    assert len(t3.files) == 6


def test_missing_paths_give_empty_table(tmp_path):
    t = S.load_styles(tmp_path / "nope")
    assert len(t) == 0 and t.files == [] and t.searched == [tmp_path / "nope"]


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", "malformed JSON"),
        ('{"name": "x"}', "expected a JSON list"),
        ('["x"]', "entry 0 is a str"),
        ('[{"prompt": "x"}]', "entry 0 has no string 'name'"),
        ('[{"name": "a"}, {"name": "b", "prompt": 3}]', "entry 1 .*'prompt'"),
        ('[{"name": "a", "negative_prompt": null}]', "entry 0 .*'negative_prompt'"),
    ],
)
def test_malformed_files_name_the_file(tmp_path, content, match):
    f = tmp_path / "broken_styles.json"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=match) as exc:
        S.load_styles(tmp_path)
    assert "broken_styles.json" in str(exc.value)


def test_non_utf8_file_names_the_file(tmp_path):
    f = tmp_path / "latin.json"
    f.write_bytes(b'[{"name": "caf\xe9"}]')
    with pytest.raises(ValueError, match="latin.json.*UTF-8"):
        S.load_styles(f)


def test_bad_path_type():
    with pytest.raises(ValueError, match="paths"):
        S.load_styles([3])


def test_apply_style_unknown_name(table):
    with pytest.raises(ValueError,
                       match="Fooocus Sharpp.*did you mean 'Fooocus Sharp'.*ComfyUI/models/styles"):
        S.apply_style(table, "Fooocus Sharpp", "a cat")
    with pytest.raises(ValueError, match="prompt"):
        S.apply_style(table, "Fooocus Sharp", None)


def test_missing_style_error_names_provider(tmp_path, styles_dir):
    only = tmp_path / "only"
    only.mkdir()
    shutil.copy(styles_dir / "sdxl_styles_fooocus.json", only)
    t = S.load_styles(only)
    assert len(t) == 8
    msg = str(S.missing_style_error("SAI Anime", t.searched, t))
    assert "'SAI Anime'" in msg and str(only) in msg
    assert "sdxl_styles_sai.json" in msg
    assert "sdxl_styles/" in msg and "ComfyUI/models/styles" in msg
    msg = str(S.missing_style_error("Pebble Art", t.searched, t))
    assert "sdxl_styles_diva.json or sdxl_styles_marc_k3nt3l.json" in msg
    # with every file loaded, no provider is blamed
    full = S.load_styles(styles_dir)
    msg = str(S.missing_style_error("SAI Nothing", full.searched, full))
    assert "sdxl_styles_sai.json" not in msg and "SAI Nothing" in msg
    msg = str(S.missing_style_error(12, None, None))
    assert "12" in msg and "the loaded style table" in msg
    assert isinstance(S.missing_style_error("x", [], {}), ValueError)
