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


def test_feature_matching_trains_a_projection_and_pulls_the_features_together(digits8, tmp_path, monkeypatch):
    import copy

    from edgekd.checkpoint import load_checkpoint
    from edgekd.distill import feature_loss
    from edgekd.distill import trainer as trainer_module

    teacher, _ = _model("teacher_cnn", digits8, width=8)
    distill(None, teacher, digits8, train_config(epochs=2, lr=1e-2))
    student, cfg = _model("student_cnn", digits8, width=4)
    config = KDConfig(epochs=3, lr=1e-2, alpha=AlphaSchedule("constant", 0.5, 0.5),
                      feature_pairs=[("pw", "features")], feature_weight=1.0)

    def hint_loss(model, projection):  # the FitNets loss on the test images, outside the trainer
        feats = {}
        hooks = [model.pw.register_forward_hook(lambda m, i, o: feats.__setitem__("s", o)),
                 teacher.features.register_forward_hook(lambda m, i, o: feats.__setitem__("t", o))]
        with torch.no_grad():
            model.eval()(digits8.test.x), teacher.eval()(digits8.test.x)
            loss = feature_loss(feats["s"], feats["t"], projection).item()
        for h in hooks:
            h.remove()
        return loss

    built = []
    real_build = trainer_module._build_projections
    monkeypatch.setattr(trainer_module, "_build_projections",
                        lambda *a: built.append(copy.deepcopy(real_build(*a))) or copy.deepcopy(built[-1]))
    init_student = copy.deepcopy(student)
    distill(teacher, student, digits8, config, checkpoint=tmp_path / "f.pt", model_config=cfg)
    init_projection = built[0][0]
    before = hint_loss(init_student, init_projection)
    trained = torch.nn.Linear(8, 16, bias=False)
    trained.load_state_dict({"weight": load_checkpoint(tmp_path / "f.pt")["projections"]["0.weight"]})
    assert not torch.equal(trained.weight, init_projection.weight)  # the projection is trained
    assert hint_loss(student, trained) < 0.5 * before
    with pytest.raises(ConfigError, match="no module named 'nope'"):
        distill(teacher, student, digits8, config.replace(feature_pairs=[("nope", "features")]))


def test_alpha_one_student_learns_the_teachers_function_not_the_labels(digits8):
    """With alpha = 1 only the teacher speaks. The teacher here answers with a *permuted* class
    (class k -> k + 1 mod 10), so a student that learns from it agrees with it, and not with the labels."""
    teacher, _ = _model("student_mlp", digits8, hidden=64)
    distill(None, teacher, digits8, train_config(epochs=4, lr=1e-2))
    with torch.no_grad():  # roll the output layer: the teacher now says k + 1 where it meant k
        teacher.fc2.weight.copy_(teacher.fc2.weight.roll(1, dims=0))
        teacher.fc2.bias.copy_(teacher.fc2.bias.roll(1))
    x = digits8.test.x

    def agreement(student):
        with torch.no_grad():
            return (student.eval()(x).argmax(1) == teacher.eval()(x).argmax(1)).float().mean().item()

    student, _ = _model("student_mlp", digits8, hidden=16)
    at_init = agreement(student)
    distill(teacher, student, digits8, KDConfig(epochs=6, lr=1e-2, temperature=2.0, alpha=AlphaSchedule("constant", 1.0, 1.0)))
    assert at_init < 0.3 and agreement(student) > 0.8
    assert evaluate(student, digits8.test) < 0.2  # the labels were not used
