"""The study config: the example file, defaults from the paper, one-line errors for bad values."""
from __future__ import annotations

import pytest
from tests.study.helpers import REPO

from study.config import ConfigError, StudyConfig, load_config


def test_example_config_loads_with_the_papers_defaults() -> None:
    cfg = load_config(REPO / "data" / "study.toml")
    assert (cfg.tasks_per_rater, cfg.ratings_per_task, cfg.catch_per_rater) == (31, 2, 3)
    assert cfg.identity == "invite" and cfg.confidence is False
    assert cfg.practice.trials >= 3 and cfg.practice.max_rounds >= 1
    assert "{code}" in cfg.prolific_completion_url
    assert "voluntary" in cfg.consent_text and "Can't decide" in cfg.instructions_text
    assert load_config(None) == StudyConfig()


@pytest.mark.parametrize(
    "text, message",
    [
        ("[study]\nidentity = 'email'\n", "identity must be one of invite, prolific, open"),
        ("[study]\ntasks_per_rater = 0\n", "tasks_per_rater must be >= 1"),
        ("[study]\ntask_per_rater = 5\n", "unknown key 'task_per_rater'"),
        ("[study]\nconfidence = 'yes'\n", "confidence must be true or false"),
        ("[practice]\ntrials = 2\n", "practice.trials must be >= 3"),
        ("[practice]\ntrials = 3\nmin_correct = 4\n", "practice.min_correct must be between 1 and practice.trials"),
        ("[prolific]\ncompletion_url = 'https://x/'\n", "must contain {code}"),
        ("[survey]\nx = 1\n", "unknown section [survey]"),
        ("[study\n", "not valid TOML"),
    ],
)
def test_bad_configs_are_refused_with_one_line(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert str(exc.value).startswith(str(path))


def test_missing_config_file_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")
