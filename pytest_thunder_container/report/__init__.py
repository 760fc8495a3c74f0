"""The certification report (JSON + HTML) and the files allure reads."""
