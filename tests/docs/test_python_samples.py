"""The Python SDK README's `Worker(...)` options, run as written: the call builds a Worker (it
connects only when run), and each option it shows has the default the SDK has."""

from __future__ import annotations

import ast
import inspect

from cerebelum import Worker

from .blocks import marked_for

BLOCKS = marked_for(__file__)
DOC_BLOCKS = [block.text for block in BLOCKS]  # tests/docs/test_coverage.py: each is run below


def options_block() -> str:
    (found,) = [b.text for b in BLOCKS if b.doc == "worker-sdk/python/README.md" and b.text.startswith("Worker(")]
    return found


def test_every_block_marked_for_this_module_has_a_test_here() -> None:
    assert [options_block()] == DOC_BLOCKS


def test_the_worker_options_sample_builds_a_worker_as_written() -> None:
    namespace: dict[str, object] = {"Worker": Worker, "task_queue": "orders"}
    worker = eval(compile(options_block(), "README.md", "eval"), namespace)  # the doc's own sample, as written
    assert isinstance(worker, Worker)


def test_the_worker_options_sample_shows_every_option_with_the_sdks_default() -> None:
    call = ast.parse(options_block(), mode="eval").body
    assert isinstance(call, ast.Call)
    shown = {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}
    parameters = inspect.signature(Worker.__init__).parameters
    real = {name: p.default for name, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert shown == real
    assert [arg.id for arg in call.args if isinstance(arg, ast.Name)] == ["task_queue"]
