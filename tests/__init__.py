"""The test suite; REPO is the repository root every test module runs scripts from."""

import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
