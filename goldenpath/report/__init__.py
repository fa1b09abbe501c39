"""What a run reports beside the tests: SVG charts for Allure, the files Allure reads beside the results."""
