"""End-to-end fixtures: the tiny model is the NLP suite's, built once per session by the
project's own training code (no weights are downloaded or committed for tests)."""

from tests.nlp.conftest import shared_data, tiny_model_dir, trained  # noqa: F401 - fixtures
