"""Library errors name Python parameters; the command line words them with the running command's flags.

A Python caller gets ``sampling_ratio must be ...`` (the name it passed), a shell user ``--sampling-ratio must
be ...`` (the flag it typed), from one :class:`uolrps.core.errors.OptionError` reworded in uolrps/cli/main.py. The
guards below keep flag names out of the library's error messages and out of the names and labels it passes.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

from uolrps.cli.main import main
from uolrps.core.errors import OptionError, UserError

ROOT = Path(__file__).resolve().parents[1] / "uolrps"


# ---- the mechanism, on hand-made messages ----------------------------------------------------------------
def test_reworded_replaces_the_parameter_word_only():
    e = OptionError("/data/split/a.csv has no 'split' column, so split test cannot be applied", "split")
    assert isinstance(e, UserError) and str(e) == e.message  # the Python API sees the parameter name
    # the path and the quoted column name keep their text; the parameter becomes the flag
    assert e.reworded({"split": "--split"}) == "/data/split/a.csv has no 'split' column, so --split test cannot be applied"


def test_reworded_several_parameters_and_longer_names():
    e = OptionError("int8_calib and int8_images need int8", "int8_calib", "int8_images", "int8")
    flags = {"int8_calib": "--int8-calib", "int8_images": "--int8-images", "int8": "--int8"}
    assert e.reworded(flags) == "--int8-calib and --int8-images need --int8"
    # a parameter the running command does not have keeps its Python name
    assert e.reworded({"int8": "--int8"}) == "int8_calib and int8_images need --int8"
    assert OptionError("box: x2 < x1 in box.jpg", "box").reworded({"box": "--box"}) == "--box: x2 < x1 in box.jpg"
    # name=VALUE, where written, is the place of the flag (the word may come earlier in prose)
    e = OptionError("the weights file is missing: pass weights=PATH", "weights")
    assert e.reworded({"weights": "--weights"}) == "the weights file is missing: pass --weights PATH"
    with pytest.raises(TypeError):
        OptionError("no parameter named")


# ---- (1) the Python API names the parameter ----------------------------------------------------------------
def test_python_api_names_the_parameter_not_the_flag(tmp_path):
    from uolrps.calib.wstar import compute_wstar
    from uolrps.export.triton.repo import RepoSettings

    with pytest.raises(OptionError) as info:
        compute_wstar(tmp_path, sampling_ratio=2, progress=False)
    assert str(info.value) == "sampling_ratio must be in (0, 1], but got 2"
    assert info.value.params == ("sampling_ratio",)
    with pytest.raises(OptionError) as info:
        RepoSettings(max_batch=0)
    assert str(info.value) == "max_batch must be at least 1, but got 0" and "--" not in str(info.value)
    with pytest.raises(OptionError, match=r"^kind must be gpu or cpu, but got 'tpu'$"):
        RepoSettings(kind="tpu")


# ---- (2) the command line prints the flag of the running command -------------------------------------------
def test_cli_words_the_message_with_the_flag(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    assert main(["triton-repo", str(model), "-o", str(tmp_path / "repo"), "--max-batch", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --max-batch must be at least 1, but got 0"
    assert main(["triton-repo", str(model), "-o", str(tmp_path / "repo"), "--queue-delay-us", "-5"]) == 2
    assert capsys.readouterr().err.strip() == "error: --queue-delay-us must be >= 0 microseconds, but got -5"
    assert main(["calib", str(tmp_path), "--sampling-ratio", "2", "-o", str(tmp_path / "w.npz")]) == 2
    assert capsys.readouterr().err.strip() == "error: --sampling-ratio must be in (0, 1], but got 2.0"
    # bench's parameter is run_bench(batches=...): the CLI parameter has the library's name, the flag is --batch
    assert main(["bench", str(model), "--batch", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --batch must be a comma-separated list of positive ints (e.g. 1,4,8), but got '0'"


# ---- (3) the guard: no flag names in the library's error messages ------------------------------------------
ERRORS = {"UserError", "OptionError"}
FLAG = re.compile(r"(?<![\w-])--[a-zA-Z]")
COMMAND_LINE = re.compile(r"`[^`]*`")  # `uolrps calib IMAGES --backbone vits -o wstar.npz`: a command to type

# Messages that point to a flag of ANOTHER command (what to redo), not a parameter of the failing call.
OTHER_COMMAND = {
    ("export/triton/repo.py", "export it with --dynamic-batch"),  # the fix is an `uolrps export` option
    ("export/tensorrt/profile.py", "export with --dynamic-batch"),  # (same, for `uolrps build`)
    ("export/tensorrt/profile.py", "(a fixed --size)"),  # (same)
    ("runtime/backends/trt.py", "rebuild it without --dla"),  # an `uolrps build` option
    ("explain/representers.py", "calibrate without --classwise"),  # the fix is an `uolrps calib` option
}
# Flag-like text that is no flag of ours, or that no caller can reword (checked by the argument guard below).
NOT_OURS = {
    ("export/tensorrt/trtexec.py", "--"),  # the argv of trtexec, another program: its own flags
    ("bench/doctor.py", "--"),  # `uolrps doctor`'s checklist: what to type in the shell (flags, `python -m venv` ones)
    ("runtime/sourcelist.py", ": --size"),  # a sources file line's own syntax (`cam0=0 --size 640x480 --fps 30`),
    ("runtime/sourcelist.py", ": --fps must be"),  # quoted as the user wrote it in the file, whatever the caller
    ("runtime/sourcelist.py", "(--size WxH, --fps N"),
    ("runtime/sourcelist.py", "(use --size, --fps"),
    ("calib/wstar.py", " (--base "),  # the calibration file's record of how it was made (metadata, not a message)
    ("model/sidecar.py", "--meta "),  # a warning handed back as text (EngineDescription.warnings): not reworded
}


def _error_messages(tree: ast.AST):
    """(line, literal text) of each UserError/OptionError raised with string literals (f-strings included)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name in ERRORS and node.args:
                parts = [n.value for n in ast.walk(node.args[0]) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
                yield node.lineno, "".join(parts)


def test_every_option_error_names_its_parameters():
    """An OptionError without parameter names would fail when raised (a TypeError, not the user's error)."""
    bare = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "OptionError" and len(node.args) < 2:
                bare.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}")
    assert not bare, "OptionError raised without the parameter names it mentions: " + ", ".join(bare)


def _library_modules():
    """(path relative to uolrps/, parsed tree) of every library module: all but the command line's."""
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if not rel.startswith("cli/"):
            yield rel, ast.parse(path.read_text(encoding="utf-8"))


def test_library_error_messages_name_no_flags():
    offenders = []
    for rel, tree in _library_modules():
        for line, text in _error_messages(tree):
            bare = COMMAND_LINE.sub("", text)
            if FLAG.search(bare) and not any(rel == f and s in text for f, s in OTHER_COMMAND):
                offenders.append(f"uolrps/{rel}:{line}: {text!r}")
    assert not offenders, "library errors that name CLI flags (raise OptionError with the parameter name):\n" + \
        "\n".join(offenders)


def test_guard_sees_multi_line_and_f_string_messages():
    src = 'raise UserError(f"--batch must be at least 1, but got {b}: "\n    "try --size")\nraise UserError("run `uolrps x --y`")'
    found = [(line, FLAG.search(COMMAND_LINE.sub("", text)) is not None) for line, text in _error_messages(ast.parse(src))]
    assert sorted(found) == [(1, True), (3, False)]


# ---- (4) the guard on arguments: no flag strings passed into library helpers or logs ---------------------------
def _flag_arguments(tree: ast.AST):
    """(line, text) of each string argument of a call (``check_output_path(p, "--save")``, a dict of labels, a log
    message) and each parameter default (``where="--size"``) that names a flag outside a `command line`."""
    def texts(node):  # a literal, an f-string or a concatenation is one text; a dict/list/tuple, one per element
        if isinstance(node, ast.Dict):
            for part in [k for k in node.keys if k is not None] + node.values:
                yield from texts(part)
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            for part in node.elts:
                yield from texts(part)
        elif isinstance(node, (ast.Constant, ast.JoinedStr, ast.BinOp)):
            parts = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            if parts:
                yield "".join(parts)

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            given = list(node.args) + [k.value for k in node.keywords]
        elif isinstance(node, ast.arguments):
            given = node.defaults + [d for d in node.kw_defaults if d is not None]
        else:
            continue
        for arg in given:
            for text in texts(arg):
                if FLAG.search(COMMAND_LINE.sub("", text)):
                    yield arg.lineno, text


def test_library_passes_no_flag_strings():
    """Library code passes a parameter's Python name to helpers that name what they check (``check_output_path(path,
    "save")``, ``write_atomic(..., "json_path")``, ``check_distinct_outputs({"jsonl": ...})``), so the error is an
    OptionError the CLI rewords; logs and labels name parameters too. The CLI's own calls keep their flags."""
    offenders = []
    for rel, tree in _library_modules():
        for line, text in _flag_arguments(tree):
            if not any(rel == f and s in text for f, s in OTHER_COMMAND | NOT_OURS):
                offenders.append(f"uolrps/{rel}:{line}: {text!r}")
    assert not offenders, "library code that passes CLI flags as names or text (pass the parameter's name):\n" + \
        "\n".join(offenders)


def test_argument_guard_sees_labels_dicts_defaults_and_logs():
    src = """
check_output_path(path, "--save", FOURCC)
write_atomic(p, write, name="--json")
check_distinct_outputs({"--json": a, "save_vis": b})
def parse_size(text, where="--size"): pass
log.info(f"--loop has no effect on {x}")
check_output_path(path, "save", FOURCC)
raise UserError(f"run `uolrps calib {x} --classwise` first")
log.info("%s frames", n)
"""
    found = sorted((line, text) for line, text in _flag_arguments(ast.parse(src)))
    assert found == [(2, "--save"), (3, "--json"), (4, "--json"), (5, "--size"), (6, "--loop has no effect on ")]


# ---- (5) converted modules: the Python API names the parameter, `uolrps run` / `uolrps eval` the flag ----------
def _cli_line(message: str, param: str, flag: str) -> str:
    """What the command line must print for a library message that opens with ``param``: the flag in its place."""
    assert message.startswith(param + " ")
    return f"error: {flag}{message[len(param):]}"


@pytest.fixture()
def image(tmp_path):
    import cv2
    import numpy as np

    path = tmp_path / "a.png"
    assert cv2.imwrite(str(path), np.full((32, 32, 3), 128, np.uint8))
    return path


@pytest.mark.parametrize("param,flag,value,config", [
    ("serve", "--serve", "no-port", dict(serve="no-port")),  # recording.parse_serve
    ("fps", "--fps", "-2", dict(capture="fps")),  # capture.CaptureOptions
    ("rtsp_transport", "--rtsp-transport", "quic", dict(capture="rtsp_transport")),
    ("smooth", "--smooth", "1.5", dict(smooth=1.5)),  # options.check_smooth, in RunConfig
    ("batch_wait_ms", "--batch-wait-ms", "20000", dict(batch_wait_ms=20000.0)),
    ("size", "--size", "0x480", None),  # sourcelist.parse_size, called by the CLI with the library's name
])
def test_run_options_python_names_and_cli_flags(tmp_path, image, capsys, param, flag, value, config):
    from uolrps.runtime.capture import CaptureOptions
    from uolrps.runtime.runner import RunConfig
    from uolrps.runtime.sourcelist import parse_size

    with pytest.raises(OptionError) as info:
        if config is None:
            parse_size(value)
        elif config.get("capture"):
            CaptureOptions(**{param: float(value) if param == "fps" else value})
        else:
            RunConfig(source=str(image), model="m.onnx", **config)
    message = str(info.value)
    assert message.startswith(param + " ") and info.value.params == (param,) and "--" not in message
    assert main(["run", "--video", str(image), "--model", str(tmp_path / "m.onnx"), flag, value]) == 2
    assert capsys.readouterr().err.strip() == _cli_line(message, param, flag)


def test_run_outputs_and_sources_file_python_names_and_cli_flags(tmp_path, image, capsys):
    """Checked by the runner before the model loads: jsonl (paths.check_output_path) and sources_file (a file
    that lists nothing), which the CLI calls --sources."""
    from uolrps.runtime.runner import RunConfig, run

    folder = tmp_path / "out"
    folder.mkdir()
    empty = tmp_path / "none.txt"
    empty.write_text("# nothing yet\n")
    model = str(tmp_path / "m.onnx")
    for config, param, argv in [(RunConfig(source=str(image), model=model, jsonl=folder), "jsonl",
                                 ["--video", str(image), "--jsonl", str(folder)]),
                                (RunConfig(sources_file=empty, model=model), "sources_file", ["--sources", str(empty)])]:
        with pytest.raises(OptionError) as info:
            run(config)
        assert info.value.params == (param,)
        assert main(["run", "--model", model, *argv]) == 2
        flag = argv[-2]
        assert capsys.readouterr().err.strip() == _cli_line(str(info.value), param, flag)


def test_eval_json_path_python_name_and_cli_flag(tmp_path, capsys):
    from uolrps.eval.evaluate import evaluate

    model, out = tmp_path / "m.onnx", tmp_path / "result.txt"
    with pytest.raises(OptionError) as info:
        evaluate(tmp_path, model, json_path=out)  # checked before the data set or the model is read
    assert str(info.value) == f"json_path {str(out)!r} must end in .json"
    assert main(["eval", str(tmp_path), "--model", str(model), "--json", str(out)]) == 2
    assert capsys.readouterr().err.strip() == _cli_line(str(info.value), "json_path", "--json")


def test_server_token_renamed_for_the_run():
    """start_server(token=...) is RunConfig.serve_token, which `uolrps run` calls --serve-token."""
    from uolrps.serve.auth import TOKEN_ENV, resolve_token

    if os.environ.get(TOKEN_ENV):
        pytest.skip(f"{TOKEN_ENV} is set in this environment")
    with pytest.raises(OptionError) as info:
        resolve_token("0.0.0.0", None)
    assert info.value.params == ("token",) and "give token=TOKEN or set" in str(info.value)
    run_error = info.value.renamed({"token": "serve_token"})
    assert run_error.params == ("serve_token",)
    assert str(run_error) == str(info.value).replace("give token=TOKEN", "give serve_token=TOKEN")
    assert run_error.reworded({"serve_token": "--serve-token"}) == \
        str(info.value).replace("give token=TOKEN", "give --serve-token TOKEN")
    # a bare word is renamed as a word; a parameter not in the map keeps its name
    e = OptionError("port 80 is taken and token is empty", "port", "token").renamed({"token": "serve_token"})
    assert (str(e), e.params) == ("port 80 is taken and serve_token is empty", ("port", "serve_token"))


def test_check_helpers_name_parameters_or_keep_a_flag():
    """A library call passes the parameter (an OptionError the CLI rewords); a CLI's own call passes its flag or a
    label (a UserError, as written)."""
    from uolrps.core.options import check_at_least, check_between, check_choice, check_interval, check_positive

    cases = [(lambda n: check_positive(0, n, "number of frames"), "must be a positive number of frames, but got 0"),
             (lambda n: check_between(-1, 0, 10_000, n), "must be between 0 and 10000, but got -1"),
             (lambda n: check_interval(1.0, n, 0, 1, "[)"), "must be in [0, 1), but got 1.0"),
             (lambda n: check_interval(0.0, n, 0, 1, "(]"), "must be in (0, 1], but got 0.0"),
             (lambda n: check_at_least(0, 1, n), "must be at least 1, but got 0"),
             (lambda n: check_choice("quic", ("tcp", "udp"), n), "must be tcp or udp, but got 'quic'"),
             (lambda n: check_choice("x", ("a", "b", "c"), n), "must be a, b or c, but got 'x'")]
    for check, rest in cases:
        with pytest.raises(OptionError) as info:
            check("max_frames")
        assert (str(info.value), info.value.params) == (f"max_frames {rest}", ("max_frames",))
        with pytest.raises(UserError) as info:
            check("--max-frames")
        assert not isinstance(info.value, OptionError) and str(info.value) == f"--max-frames {rest}"
    assert check_positive(0.5, "x") == 0.5 and check_interval(0.0, "x", 0, 1, "[)") == 0.0
    assert check_choice("tcp", ("tcp", "udp"), "x") == "tcp" and check_between(10_000, 0, 10_000, "x") == 10_000
    with pytest.raises(OptionError):
        check_positive(float("nan"), "fps")


def test_eval_and_explain_counts_are_checked_once_in_the_library(tmp_path, capsys):
    """--n-vis and -k are checked by the library alone (the CLI kept copies); the CLI words them with its flags."""
    from uolrps.eval.evaluate import evaluate
    from uolrps.explain.representers import explain

    model, image, calib = tmp_path / "m.onnx", tmp_path / "a.jpg", tmp_path / "c.npz"
    for p in (model, image, calib):
        p.write_bytes(b"")
    with pytest.raises(OptionError, match=r"^n_vis \(.*\) must be at least 1, but got 0$"):
        evaluate(tmp_path, model, n_vis=0)
    with pytest.raises(OptionError, match=r"^k must be at least 1, but got 0$"):
        explain(image, model, calib, k=0)
    assert main(["eval", str(tmp_path), "--model", str(model), "--n-vis", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --n-vis (") and err.endswith("must be at least 1, but got 0")
    assert main(["explain", str(image), "--model", str(model), "--calib", str(calib), "-k", "0",
                 "-o", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err.strip() == "error: -k must be at least 1, but got 0"
