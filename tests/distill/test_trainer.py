import pytest
import torch

from edgekd.data.images import Split, Splits
from edgekd.distill import AlphaSchedule, Curriculum, KDConfig, distill, evaluate, train_config
from edgekd.errors import ConfigError, DataError
from edgekd.models import ModelConfig, build_model


def _model(name, data, **options):
    torch.manual_seed(0)
    cfg = ModelConfig(name, data.input_shape, data.num_classes, options)
    return build_model(cfg), cfg


def test_tiny_end_to_end_distill_beats_chance_and_writes_a_checkpoint(digits8, tmp_path):
    teacher, _ = _model("student_mlp", digits8, hidden=64)
    distill(None, teacher, digits8, train_config(epochs=4, lr=1e-2))
    t_acc = evaluate(teacher, digits8.test)
    assert t_acc > 0.85
    student, cfg = _model("student_mlp", digits8, hidden=8)
    config = KDConfig(epochs=4, lr=1e-2, temperature=3.0, alpha=AlphaSchedule("exponential", 0.9, 0.3),
                      curriculum=Curriculum("confidence", "linear", start=0.4, saturate=0.5))
    history = distill(teacher, student, digits8, config, checkpoint=tmp_path / "s.pt", model_config=cfg)
    assert len(history.epochs) == 4
    pools = [e["pool"] for e in history.epochs]
    assert pools[0] < pools[-1] == len(digits8.train)
    alphas = [e["alpha"] for e in history.epochs]
    assert alphas[0] > alphas[-1] >= 0.3
    assert evaluate(student, digits8.test) > 0.5  # 10 classes: chance is 0.1
    assert (tmp_path / "s.pt").is_file()


def test_resume_continues_and_matches_an_uninterrupted_run(digits8, tmp_path):
    config = train_config(epochs=3, lr=1e-2, seed=3)
    full, cfg = _model("student_mlp", digits8, hidden=8)
    distill(None, full, digits8, config)
    part, _ = _model("student_mlp", digits8, hidden=8)
    distill(None, part, digits8, config.replace(epochs=3), checkpoint=tmp_path / "c.pt", model_config=cfg)
    # pretend the run died after epoch 2: rewrite the checkpoint from a 2-epoch run, then resume
    two, _ = _model("student_mlp", digits8, hidden=8)
    distill(None, two, digits8, config, checkpoint=tmp_path / "r.pt", model_config=cfg)
    state = torch.load(tmp_path / "r.pt", weights_only=True)
    assert state["epoch"] == 2
    resumed, _ = _model("student_mlp", digits8, hidden=8)
    two_epochs, _ = _model("student_mlp", digits8, hidden=8)
    distill(None, two_epochs, digits8, config.replace(epochs=2), checkpoint=tmp_path / "half.pt", model_config=cfg)
    distill(None, resumed, digits8, config, checkpoint=tmp_path / "half.pt", resume=True, model_config=cfg)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_curriculum_without_teacher_is_refused(digits8):
    student, _ = _model("student_mlp", digits8, hidden=4)
    with pytest.raises(ConfigError, match="curriculum"):
        distill(None, student, digits8, KDConfig(epochs=1, curriculum=Curriculum()))


def test_single_class_and_empty_data_are_refused(digits8):
    student, _ = _model("student_mlp", digits8, hidden=4)
    one = Split(digits8.train.x[:10], torch.zeros(10, dtype=torch.long))
    with pytest.raises(DataError, match="single class"):
        distill(None, student, Splits(one, one, one, 10, "x"), train_config(epochs=1))
    empty = Split(digits8.train.x[:0], digits8.train.y[:0])
    with pytest.raises(DataError, match="empty"):
        distill(None, student, Splits(empty, empty, empty, 10, "x"), train_config(epochs=1))


def test_feature_matching_trains_a_projection(digits8):
    teacher, _ = _model("teacher_cnn", digits8, width=8)
    student, _ = _model("student_cnn", digits8, width=4)
    config = KDConfig(epochs=1, alpha=AlphaSchedule("constant", 0.5, 0.5),
                      feature_pairs=[("pw", "features")], feature_weight=1.0)
    history = distill(teacher, student, digits8, config)
    assert history.final["loss"] > 0
    with pytest.raises(ConfigError, match="no module named 'nope'"):
        distill(teacher, student, digits8, config.replace(feature_pairs=[("nope", "features")]))
