"""Set-up shared by the test modules.

Fixtures:

- ``search_cli``: runs ``python search.py ARGS`` in a fresh process from the repository root
  (:func:`run_search`), for what only a real process shows: exit codes, one-line errors, imports.
- ``synthetic``: a tiny generated dataset, (DataConfig, Dataset), once per test module.
- ``browser``: headless Chromium through selenium, one per test module; the tests that take it
  skip, saying why, when the browser is not installed (helpers in tests/browser.py).

Helper modules: tests/conftest_data.py (tiny datasets in the real CIFAR and image-folder on-disk
formats), tests/studies.py (the factories: ``smoke_cfg`` for every test study's config, each test
module overriding what it is about; ``quick_recipe``; hand-made studies on disk; TINY_DATA).

Markers (registered in pyproject.toml): ``slow``, ``ray``, ``browser``, ``postgres``, ``gpu``. The fast
core suite: ``python -m pytest -q -m "not slow and not ray and not browser and not postgres and not gpu"``.
Tests marked ``gpu`` skip, saying why, where torch sees no CUDA device.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import optuna
import pytest
import torch

from softshare.data import DataConfig, load_dataset
from tests import REPO
from tests.browser import CHROMEDRIVER, CHROMIUM, ERROR_COLLECTOR

# Optuna's INFO lines (a study created, a trial finished) drown the output of every test that
# runs a study: warnings and errors only, for the whole suite.
optuna.logging.set_verbosity(optuna.logging.WARNING)

# Ray is the [ray] extra: without it the Ray backend's tests are not collected (they import it).
collect_ignore = [] if importlib.util.find_spec("ray") else ["test_ray_backend.py"]


def pytest_collection_modifyitems(config, items) -> None:
    """Skip the ``gpu`` tests, with the reason, where there is no CUDA device."""
    if torch.cuda.is_available():
        return
    why = pytest.mark.skip(
        reason=f"no CUDA device: torch {torch.__version__} sees none "
        f"(built with CUDA {torch.version.cuda or 'none'}); the gpu tests need one"
    )
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(why)


def run_search(
    *args: str, cwd: os.PathLike | str = REPO, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``python search.py ARGS`` (this interpreter), its output captured as text."""
    return subprocess.run(
        [sys.executable, str(REPO / "search.py"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def synthetic():
    """(DataConfig, Dataset): 400 generated 16x16 training images, 100 test images."""
    cfg = DataConfig(dataset="synthetic", synthetic_train=400, synthetic_test=100, image_size=16)
    return cfg, load_dataset(cfg)


@pytest.fixture
def search_cli():
    """:func:`run_search`: ``search_cli("study", "x", ..., timeout=120)``."""
    return run_search


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.skip(
            f"no headless Chromium: {', '.join(missing)} missing "
            "(Debian: apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": ERROR_COLLECTOR})
    yield driver
    driver.quit()
