"""Every exit path of ``python -m helpers.select``."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from helpers import registry, select


def _entry(name: str, **over) -> dict:
    e = {
        "name": name, "technique": "test", "path": f"{name}.tflite", "size_bytes": 1000, "gzip_bytes": 900,
        "params": 250, "sparsity": 0.0, "accuracy": 0.9, "latency_ms": {"1": 0.05, "2": 0.04},
        "input": {"shape": [1, 8, 8, 1], "dtype": "float32", "scale": 0.0, "zero_point": 0},
        "sha256": hashlib.sha256(name.encode()).hexdigest(), "peak_memory_bytes": 4 * 2**20,
    }
    e.update(over)
    return e


@pytest.fixture()
def manifest(tmp_path):
    path = registry.manifest_path(tmp_path)
    for e in (
        _entry("big", size_bytes=600 * 1024, accuracy=0.99, latency_ms={"1": 0.05, "2": 0.03}),
        _entry("small", size_bytes=150 * 1024, accuracy=0.97, latency_ms={"1": 0.02, "2": 0.02}),
    ):
        (tmp_path / e["path"]).write_bytes(e["name"].encode())
        registry.register_variant(path, e, "digits")
    return path


def run(capsys, *args):
    code = select.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_chooses_and_prints_name_and_path(manifest, capsys):
    code, out, err = run(capsys, "--manifest", manifest)
    assert code == 0 and err == ""
    name, path = out.split()
    assert name == "big" and path.endswith("big.tflite")
    code, out, _ = run(capsys, "--manifest", manifest, "--max-size-kb", 200)
    assert code == 0 and out.split()[0] == "small"
    code, out, _ = run(capsys, "--manifest", manifest, "--objective", "fastest", "--min-accuracy", 0.9)
    assert out.split()[0] == "small"


def test_json_prints_the_whole_entry(manifest, capsys):
    code, out, _ = run(capsys, "--manifest", manifest, "--profile", "low_end_phone", "--json")
    entry = json.loads(out)
    assert code == 0 and entry == registry.load_manifest(manifest)["variants"][1]


def test_profile_objective_is_the_default_and_the_flag_wins(manifest, capsys):
    # low_end_phone optimises for speed: with a loose size limit it takes the faster "small"
    code, out, _ = run(capsys, "--manifest", manifest, "--profile", "low_end_phone", "--max-size-kb", 1000)
    assert code == 0 and out.split()[0] == "small"
    code, out, _ = run(capsys, "--manifest", manifest, "--profile", "low_end_phone", "--max-size-kb", 1000,
                       "--max-latency-ms", 1, "--objective", "best_accuracy")
    assert code == 0 and out.split()[0] == "big"


def test_profile_flags_override(manifest, capsys):
    code, out, _ = run(capsys, "--manifest", manifest, "--profile", "high_end_phone")
    assert code == 0 and out.split()[0] == "big"
    code, out, _ = run(capsys, "--manifest", manifest, "--profile", "high_end_phone", "--max-latency-ms", 0.025, "--threads", 1)
    assert code == 0 and out.split()[0] == "small"


def test_nothing_fits_exits_4_naming_the_constraint(manifest, capsys):
    code, out, err = run(capsys, "--manifest", manifest, "--max-size-kb", 100)
    assert code == select.EXIT_NO_FIT == 4 and out == ""
    assert err.count("\n") == 1 and "max size 100 KB rules out every variant" in err and "small" in err
    code, _, err = run(capsys, "--manifest", manifest, "--min-accuracy", 0.98, "--max-latency-ms", 0.01, "--threads", 2)
    assert code == 4 and "max latency 0.01 ms at 2 thread(s)" in err and "left after min accuracy 0.98" in err
    code, _, err = run(capsys, "--manifest", manifest, "--profile", "microcontroller")
    assert code == 4 and "max peak memory 128 KB" in err


def test_smallest_fallback_exits_0_with_a_note(manifest, capsys):
    code, out, err = run(capsys, "--manifest", manifest, "--max-size-kb", 100, "--fallback", "smallest")
    assert code == 0 and out.split()[0] == "small"
    assert "serving the smallest variant" in err and "max size 100 KB" in err


def test_missing_and_corrupt_files_are_skipped_with_a_note(manifest, capsys):
    (manifest.parent / "big.tflite").write_bytes(b"changed")
    code, out, err = run(capsys, "--manifest", manifest)
    assert code == 0 and out.split()[0] == "small" and "skipped big" in err and "sha256" in err
    (manifest.parent / "small.tflite").unlink()
    code, out, err = run(capsys, "--manifest", manifest)
    assert code == select.EXIT_MANIFEST == 3 and out == "" and "missing" in err and "no usable variant" in err


def test_a_malformed_variant_is_skipped_like_a_missing_file(manifest, capsys):
    doc = json.loads(manifest.read_text())
    doc["variants"][0]["latency_ms"] = {"1": "NaN"}  # "big" now breaks the schema
    doc["variants"][1]["peak_memory_bytes"] = 4 * 2**20
    manifest.write_text(json.dumps(doc))
    code, out, err = run(capsys, "--manifest", manifest)
    assert code == 0 and out.split()[0] == "small"
    assert "note: skipped big: malformed entry: " in err and "latency_ms" in err


def test_peak_memory_as_a_mapping_is_a_malformed_variant_not_a_crash(manifest, capsys):
    doc = json.loads(manifest.read_text())
    doc["variants"][1]["peak_memory_bytes"] = {"1": 1000}
    manifest.write_text(json.dumps(doc))
    code, out, err = run(capsys, "--manifest", manifest, "--max-memory-kb", "1e6")
    assert code == 0 and out.split()[0] == "big" and "skipped small" in err and "peak_memory_bytes" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [("{oops", "not valid JSON"), ('{"dataset": "digits"}', "expected an object"), ("[]", "expected an object"),
     ('{"dataset": "digits", "variants": [], "schema_version": 7}', "schema_version 7"),
     ('{"dataset": "digits", "variants": []}', "no usable variant"),
     ("\ufeff\x00\x01", "not valid JSON"), ("[" * 100000, "not valid JSON"), ("1" * 5000, "not valid JSON")],
)
def test_malformed_manifest_exits_3_with_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "manifest.json"
    path.write_text(content)
    code, out, err = run(capsys, "--manifest", path)
    assert code == 3 and out == "" and message in err and err.count("\n") == 1 and err.startswith("error:")


def test_missing_manifest_exits_3_with_one_line(tmp_path, capsys):
    code, out, err = run(capsys, "--manifest", tmp_path / "nope.json")
    assert code == 3 and out == "" and "no manifest at" in err and err.count("\n") == 1
    code, out, err = run(capsys, "--manifest", tmp_path)  # a directory is not a manifest either
    assert code == 3 and "no manifest at" in err
    bad = tmp_path / "latin1.json"
    bad.write_bytes(b'{"dataset": "\xe9"}')
    code, out, err = run(capsys, "--manifest", bad)
    assert code == 3 and "not valid JSON" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [["--min-accuracy", "95"], ["--max-size-kb", "-5"], ["--max-latency-ms", "fast"], ["--threads", "0"],
     ["--profile", "toaster"], ["--objective", "cheapest"], []],
)
def test_bad_arguments_exit_2(manifest, capsys, args):
    argv = args if args == [] else ["--manifest", str(manifest), *args]
    with pytest.raises(SystemExit) as info:
        select.main(argv)
    assert info.value.code == select.EXIT_USAGE == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


# Every budget a user can type: (flag, value) -> exit status, and what the one line says.
ODD_BUDGETS = [
    ("--max-size-kb", "inf", 0, "big"), ("--max-size-kb", "1e400", 0, "big"), ("--max-size-kb", "Infinity", 0, "big"),
    ("--max-memory-kb", "inf", 0, "big"), ("--max-memory-kb", "1e400", 0, "big"), ("--max-latency-ms", "inf", 0, "big"),
    ("--max-size-kb", "1e306", 0, "big"),  # * 1024 overflows a float: still no limit
    ("--max-size-kb", "1e300", 0, "big"), ("--max-latency-ms", "1e300", 0, "big"),
    ("--max-size-kb", "0.0001", 4, "max size 0.0001 KB rules out every variant"),  # under one byte
    ("--max-size-kb", "5e-324", 4, "rules out every variant"),
    ("--max-memory-kb", "0.5", 4, "max peak memory 0.5 KB"),
    ("--max-latency-ms", "1e-9", 4, "max latency 1e-09 ms"),
    ("--max-size-kb", "nan", 2, "not a number (nan)"), ("--max-latency-ms", "NaN", 2, "not a number"),
    ("--max-memory-kb", "-inf", 2, "must be positive"),
    ("--max-size-kb", "0", 2, "must be positive"), ("--max-size-kb", "-0", 2, "must be positive"),
    ("--max-size-kb", "-5", 2, "must be positive"), ("--max-latency-ms", "0", 2, "must be positive"),
    ("--max-size-kb", "", 2, "is not a number"), ("--max-size-kb", "ten", 2, "is not a number"),
    ("--max-size-kb", "0x10", 2, "is not a number"), ("--max-size-kb", "12KB", 2, "is not a number"),
    ("--max-size-kb", "1,5", 2, "is not a number"), ("--max-size-kb", "\u0661", 0, "big"),  # Arabic-Indic 1: float() reads 1.0 -> 1 KB? see below
    ("--min-accuracy", "nan", 2, "fraction in [0, 1]"), ("--min-accuracy", "inf", 2, "fraction in [0, 1]"),
    ("--min-accuracy", "-0.1", 2, "fraction in [0, 1]"), ("--min-accuracy", "1.0000001", 2, "fraction in [0, 1]"),
    ("--min-accuracy", "1", 4, "min accuracy 1 rules out"), ("--min-accuracy", "0", 0, "big"),
    ("--threads", "1e400", 2, "whole number"), ("--threads", "2.5", 2, "whole number"), ("--threads", "-1", 2, "between 1 and"),
    ("--threads", "99999999999999999999", 2, "between 1 and"), ("--threads", "1024", 0, "big"),
]


@pytest.mark.parametrize(("flag", "value", "status", "says"), ODD_BUDGETS)
def test_every_typed_budget_gets_a_choice_or_one_line(manifest, capsys, flag, value, status, says):
    if value == "\u0661":  # float() accepts Unicode digits: 1 KB is below both variants -> nothing fits
        status, says = 4, "max size 1 KB"
    try:
        code = select.main(["--manifest", str(manifest), f"{flag}={value}"])
    except SystemExit as exc:  # argparse refusals
        code = exc.code
    out, err = capsys.readouterr()
    assert code == status, err
    if status == 0:
        assert out.split()[0] == says and err == ""
    else:
        assert out == "" and err.count("\n") == 1 and says in err and "Traceback" not in err


def test_help_documents_the_exit_statuses(capsys):
    with pytest.raises(SystemExit) as info:
        select.main(["--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    for line in ("0  a variant was chosen", "2  usage", "3  the manifest is unusable", "4  nothing fits", "'inf'"):
        assert line in out


def test_cli_process_no_tensorflow_no_traceback(manifest, tmp_path):
    probe = (
        "import sys; from helpers import select; code = select.main(sys.argv[1:]); "
        "assert 'tensorflow' not in sys.modules, 'the CLI imported TensorFlow'; "
        "assert not {'pandas', 'numpy', 'rfc3987_syntax'} & set(sys.modules), 'the CLI imported a slow module'; sys.exit(code)"
    )
    ok = subprocess.run([sys.executable, "-c", probe, "--manifest", str(manifest)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split()[0] == "big"
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    cases = [(["--manifest", str(bad)], 3), (["--manifest", str(manifest), "--max-size-kb", "1"], 4),
             (["--manifest", str(manifest), "--max-size-kb", "1e400"], 0), (["--manifest", str(manifest), "--max-size-kb", "nan"], 2),
             (["--manifest", str(manifest), "--max-memory-kb", "inf", "--profile", "microcontroller"], 0)]
    for args, status in cases:
        done = subprocess.run([sys.executable, "-m", "helpers.select", *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == status, done.stderr
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == (0 if status == 0 else 1)
