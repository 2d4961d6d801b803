import re

from app.settings import PROJECT_ROOT, Settings


def test_env_example_documents_every_setting_and_parses():
    text = (PROJECT_ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z_]+)=", text, re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}
    settings = Settings(_env_file=PROJECT_ROOT / ".env.example")
    assert settings.redis_url == "redis://localhost:6379/0"


def test_readme_test_command_is_what_ci_runs():
    readme = (PROJECT_ROOT / "README.md").read_text()
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    command = "./setup_tools.sh --with-test-tools && .venv/bin/python -m pytest"
    assert command in readme and command in ci
