"""The standard evaluation suites, shipped inside pytest-speechlab as ``pytest_speechlab.suites``.

In this repository: ``pytest suites/``. In any project that installed pytest-speechlab:
``pytest --pyargs pytest_speechlab.suites`` (or ``speechlab init`` to copy them into ./suites).
"""
