"""HarSettings reads only its own variables: the home is HAR_HOME (or ./data), never the user's $HOME."""

from pathlib import Path

import pytest

from har_assets.settings import HarSettings


def test_only_har_home_names_the_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HAR_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MODEL_NAME", "not-ours")
    assert HarSettings().home == Path("data")
    assert HarSettings().model_name == "har-activity"
    monkeypatch.setenv("HAR_HOME", str(tmp_path / "study"))
    assert HarSettings().home == tmp_path / "study"
    assert HarSettings(home=Path("elsewhere")).home == Path("elsewhere")
