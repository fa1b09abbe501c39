# Loads the goldenpath plugin; nothing else belongs here.
pytest_plugins = ["fixtures.plugin", "fixtures.allure_files"]
