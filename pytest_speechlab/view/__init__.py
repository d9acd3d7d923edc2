"""The history viewer: ``speechlab view`` (app.py) over what data.py reads from the results store."""
