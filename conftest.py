# Loads the gate's fixtures (fixtures/plugin.py lists them; its options and hooks are the installed
# goldenpath plugin); nothing else belongs here.
pytest_plugins = ["fixtures.plugin"]
