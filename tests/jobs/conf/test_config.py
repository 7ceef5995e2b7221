"""Config validation names the bad key; the CLI reports it before anything is spent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from actors.errors import ConfigError
from actors.providers.batch import get_batch_api
from jobs.cli import main
from jobs.conf.batching import BATCH_PROVIDERS
from jobs.conf.loader import missing_keys, resolved_yaml
from jobs.conf.schema import PROVIDERS
from jobs.config import load_config
from jobs.driver import models_named
from jobs.paper.figures import DIVERSE_SHARE
from jobs.stages.compliance_scope import DEMO_SPEC
from jobs.stages.settings.pipeline import STAGE_SPECS

DEMO = Path(__file__).resolve().parents[3] / "conf" / "demo.yaml"
DEFAULT = DEMO.with_name("default.yaml")


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("models.o3.limits.rpmx=5", "models.o3.limits.rpmx"),
        ("models.o3.limits.rpm=abc", "models.o3.limits.rpm"),
        ("models.o3.limits.rpm=-5", "models.o3.limits.rpm"),
        ("models.o3.provider=openia", "models.o3.provider"),
        ("models.o3.base_url=api.openai.com", "models.o3.base_url"),
        ("models.o3.account=nobody", "models.o3.account"),
        ("models.o3.params.temprature=0.5", "models.o3.params"),
        ("models.o3.api_key_env=not-a-name", "models.o3.api_key_env"),
        ("engine.batch_size=0", "engine.batch_size"),
        ("engine.fail_fast_after=-1", "engine.fail_fast_after"),
        ("emulator.faults.server_500=1.5", "emulator.faults.server_500"),
        ("stages.scores.model=nobody", "stages.scores.model"),
        ("stages.scenarios.generators={nobody: 1}", "stages.scenarios.generators"),
        ("budget_usd=-1", "budget_usd"),
    ],
)
def test_bad_values_name_their_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(DEMO, [override])


def test_batch_providers_are_the_wire_formats_with_a_batch_api() -> None:
    """`batch.providers` keys are checked against a list, so that loading a config imports no adapter."""
    assert [p for p in PROVIDERS if get_batch_api(p) is not None] == list(BATCH_PROVIDERS)


SPEC = f"stages.compliance.spec={DEMO_SPEC}"
"""Any spec file: the paper config's real judges need one named."""


def test_both_shipped_configs_load() -> None:
    demo, paper = load_config(DEMO), load_config(DEFAULT, [SPEC])
    assert set(demo.models) == set(paper.models) and len(demo.models) == 14  # 12 responders + 2 embedders
    assert demo.models["o3"].base_url.startswith("http://127.0.0.1:")
    assert paper.models["o3"].base_url == "https://api.openai.com/v1"
    assert paper.models["claude_opus_4"].api_key_env == "ANTHROPIC_API_KEY"
    assert paper.stages.pairs.n_pairs == 150_000
    # Both run every stage, selecting the δ-diverse scenarios before paying for responses.
    assert list(paper.pipeline) == list(demo.pipeline) == [s.name for s in STAGE_SPECS]
    assert paper.pipeline.index("diversity") < paper.pipeline.index("responses")
    for conf in (demo, paper):
        assert (
            conf.stages.responses.scope == conf.stages.rubrics.scope == conf.stages.scores.scope == "diverse"
        )
    assert paper.stages.embeddings.model == "gemini_embedding_001"
    assert paper.models["gemini_embedding_001"].params == {"dimensions": 3072}
    # Compliance as in the paper: the OpenAI models' responses, 1,000 per bin of their own D.
    cc = paper.stages.compliance
    assert cc.models == cc.families["openai"] == ["gpt_4_1", "gpt_4_1_mini", "gpt_4o", "o3", "o4_mini"]
    assert (cc.per_bin, cc.bin_subset) == (1000, None)


def test_cli_reports_config_errors_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(DEMO), "models.o3.limits.rpm=-5"]) == 1
    err = capsys.readouterr().err
    assert "config key 'models.o3.limits.rpm'" in err and "Traceback" not in err


def test_a_config_error_prints_only_its_own_line() -> None:
    """No library's loader lines (faiss's, at import) before the error: the command prints one line."""
    done = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "run", str(DEMO), "stages.pairs.nn_pairs=1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "specstress: error: config key 'stages.pairs.nn_pairs': Key 'nn_pairs' not in 'PairsConf'. "
        "Did you mean: 'n_pairs'?"
    ]


def test_verbose_shows_the_libraries_lines_too(tmp_path: Path) -> None:
    """A command that gets past its config imports the libraries; -v shows their lines."""
    done = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "-v", "estimate", str(DEMO), f"run_dir={tmp_path}/run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "faiss.loader" in done.stderr


def test_estimate_counts_the_paper_scale_generation_calls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        ["estimate", str(DEFAULT), f"run_dir={tmp_path}/run", "stages.pairs.n_pairs=3000", SPEC, "--json"]
    )
    assert rc == 0
    import json

    out = json.loads(capsys.readouterr().out)
    neutral = [ln for ln in out["lines"] if ln["stage"] == "scenarios_neutral"]
    assert sum(ln["calls"] for ln in neutral) == 3000 and all(ln["exact"] for ln in neutral)
    assert {ln["model"] for ln in neutral} == {"claude_opus_4", "claude_3_7_sonnet", "o3"}
    assert out["total_cost_usd"] > 0 and out["binding_limit"]["scenarios_neutral"] != "none"
    # The judges' draws (5 bins and 3 samples of 1,000) exceed the 6,585 scenarios expected kept:
    # every one is judged, for the five OpenAI models.
    kept = round(3 * 3000 * DIVERSE_SHARE)
    assert [ln["calls"] for ln in out["lines"] if ln["stage"] == "compliance"] == [5 * kept] * 3


def test_emulate_command_serves_the_wire_formats(tmp_path: Path) -> None:
    import json
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "emulate", "--port", str(port), "--config", str(DEMO)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello?"}]}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            data=body,
            headers={"Authorization": "Bearer test", "Content-Type": "application/json"},
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    answer = json.loads(resp.read())
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "emulator did not start"
                time.sleep(0.2)
        assert (
            answer["object"] == "chat.completion" and answer["choices"][0]["message"]["role"] == "assistant"
        )
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_the_local_model_config_needs_no_key_and_writes_none(tmp_path: Path) -> None:
    local = load_config(DEMO.with_name("local-llm.yaml"))
    used = models_named(local, list(local.pipeline))
    assert used == ["smollm2_cool", "smollm2_warm"]  # every role, on the local server
    assert all(local.models[m].api_key_env is None for m in used)
    assert all(local.models[m].base_url == "http://127.0.0.1:8080/v1" for m in used)
    assert missing_keys(local, used) == []
    assert resolved_yaml(local).count("api_key_env: null") == 2
    # Leaving the field out is still an error: no key has to be said, not forgotten.
    keyless = tmp_path / "keyless.yaml"
    keyless.write_text(
        f"include: ['{DEMO.with_name('local-llm.yaml')}']\n"
        "models:\n  forgot: {provider: openai, model_id: m, base_url: 'http://127.0.0.1:9/v1'}\n"
    )
    with pytest.raises(ConfigError, match=r"models\.forgot\.api_key_env"):
        load_config(keyless)
