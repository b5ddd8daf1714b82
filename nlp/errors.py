"""The one error a caller of the NLP engine has to handle.

Why a dedicated type: the worker and the `classify` contract must tell "this model directory is
unusable" (exit non-zero, never serve predictions) apart from "this one post is odd" (answer it
anyway). Every load-time problem becomes a ModelError whose message names the file and what was
expected, so an operator can fix the directory without reading a traceback.
"""

from __future__ import annotations


class ModelError(Exception):
    """A model directory is missing, incomplete, corrupted or inconsistent with its manifest."""
