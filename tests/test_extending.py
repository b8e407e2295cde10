"""The checklists of docs/architecture.md ("Adding a model, a regularizer, a metric, a dataset"), kept true: every
option of a config group is wired the way the checklist says and is pinned by the test it names."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from hydra.utils import get_object
from omegaconf import OmegaConf

from regbench import metrics
from regbench.config import CONF_DIR, group_options
from test_models import PUBLISHED
from test_models_imagenet import TORCHVISION

ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


@pytest.mark.parametrize("model", group_options("model"))
def test_every_model_takes_an_activation_and_places_and_has_its_count_pinned(model: str) -> None:
    target = OmegaConf.load(CONF_DIR / "model" / f"{model}.yaml")._target_
    assert target.startswith("regbench.models.")
    parameters = inspect.signature(get_object(target)).parameters
    assert {"act", "places"} <= set(parameters), f"{target} must take act and places"
    assert model in PUBLISHED or model in TORCHVISION, f"pin {model}'s parameter count in tests/test_models*.py"


@pytest.mark.parametrize("name", sorted(metrics.METRICS))
def test_every_metric_has_a_direction_and_a_function(name: str) -> None:
    metric = metrics.METRICS[name]
    assert isinstance(metric.higher_is_better, bool)
    assert metric.function is None or callable(metric.function)


@pytest.mark.parametrize("dataset", group_options("dataset"))
def test_every_dataset_loads_with_a_function_of_regbench_data(dataset: str) -> None:
    from regbench.config import compose_choices

    load = OmegaConf.select(compose_choices([f"dataset={dataset}"]), "dataset.load._target_")
    assert load.startswith("regbench.data.") and callable(get_object(load))


def test_the_checklists_name_tests_that_exist() -> None:
    named = set(re.findall(r"`(tests/test_\w+\.py)", ARCHITECTURE.read_text()))
    assert named and all((ARCHITECTURE.parents[1] / path).is_file() for path in named), named
