# Loads the goldenpath plugin (fixtures/plugin.py lists its modules); nothing else belongs here.
pytest_plugins = ["fixtures.plugin"]
