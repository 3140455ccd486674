"""The examples in the docstrings run and print what they say."""

import doctest

import pytest

import anykmeans._config
import anykmeans._kmeans


@pytest.mark.parametrize("module", [anykmeans._kmeans, anykmeans._config], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
