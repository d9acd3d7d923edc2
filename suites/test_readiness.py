"""Production readiness: one test per model, failing below the required grade with the reason.

The grade combines WER, RTF and hallucination over every selected dataset ([tool.speechlab.grades]);
the required grade is --speechlab-min-grade or [tool.speechlab.grades] min_grade.
"""
import pytest

from pytest_speechlab import check_grade


def test_production_readiness(speechlab_grade, speechlab_min_grade):
    if speechlab_min_grade is None:
        pytest.skip(f"no required grade set (--speechlab-min-grade); graded {speechlab_grade}")
    check_grade(speechlab_grade, speechlab_min_grade)
