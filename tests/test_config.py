import json
from dataclasses import dataclass, field

import pytest

from edgekd.config import Config, load_config, register
from edgekd.distill import AlphaSchedule, Curriculum, KDConfig
from edgekd.errors import ConfigError


def test_kd_config_round_trips_through_dict_and_json(tmp_path):
    cfg = KDConfig(epochs=3, alpha=AlphaSchedule("cosine", 0.9, 0.1), curriculum=Curriculum(pacing="root"),
                   feature_pairs=[("conv1", "stem.0")], feature_weight=0.1)
    d = cfg.to_dict()
    assert d["type"] == "kd" and d["version"] == 1 and d["alpha"]["type"] == "alpha_schedule"
    assert Config.from_dict(d) == cfg
    path = tmp_path / "kd.json"
    path.write_text(json.dumps(d))
    assert load_config(path) == cfg


def test_unknown_key_names_the_key():
    d = KDConfig().to_dict()
    d["epochz"] = 3
    with pytest.raises(ConfigError, match="epochz"):
        Config.from_dict(d)


@pytest.mark.parametrize("field_name, value, needle", [
    ("epochs", "3", "KDConfig.epochs: expected an integer"),
    ("lr", True, "KDConfig.lr: expected a number"),
    ("epochs", 0, "KDConfig.epochs: must be >= 1"),
    ("temperature", 0.0, "KDConfig.temperature"),
])
def test_wrong_type_or_range_names_the_field(field_name, value, needle):
    d = KDConfig().to_dict()
    d[field_name] = value
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        Config.from_dict(d)


@pytest.mark.parametrize("start", [-0.1, 1.5])
def test_alpha_out_of_range_is_refused(start):
    with pytest.raises(ConfigError, match=r"AlphaSchedule\.start: alpha must be in \[0, 1\]"):
        AlphaSchedule("linear", start=start, end=0.5)


def test_nested_config_errors_name_the_path():
    d = KDConfig().to_dict()
    d["alpha"]["kind"] = "sawtooth"
    with pytest.raises(ConfigError, match="AlphaSchedule.kind"):
        Config.from_dict(d)


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json: not valid JSON"):
        load_config(bad)
    with pytest.raises(ConfigError, match="missing.json: config file not found"):
        load_config(tmp_path / "missing.json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"type": "nonexistent"}))
    with pytest.raises(ConfigError, match="unknown config type 'nonexistent'"):
        load_config(other)


def test_newer_version_is_refused():
    d = KDConfig().to_dict()
    d["version"] = 99
    with pytest.raises(ConfigError, match="newer"):
        Config.from_dict(d)


def test_register_rejects_a_second_class_under_one_name():
    @register("test_only_cfg")
    @dataclass
    class A(Config):
        x: int = 1

    with pytest.raises(ConfigError, match="registered twice"):
        @register("test_only_cfg")
        @dataclass
        class B(Config):
            x: int = 1
