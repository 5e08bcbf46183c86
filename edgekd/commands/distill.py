"""``edgekd distill``: train a model (optionally from a teacher checkpoint) on a shipped dataset."""
import json

from ..config import Config


def add_parser(sub):
    p = sub.add_parser("distill", help="train a student, optionally distilled from a teacher checkpoint",
                       description="Train --model on --dataset. With --teacher, distill with the KD config.")
    p.add_argument("--dataset", default="mnist5k", help="mnist5k | digits8 | mnist (with --data)")
    p.add_argument("--data", default=None, help="path for --dataset mnist (IDX folder or .npz)")
    p.add_argument("--model", default="student_cnn", help="registered model name")
    p.add_argument("--model-options", default="{}", help='JSON dict of builder options, e.g. \'{"width": 8}\'')
    p.add_argument("--teacher", default=None, help="teacher checkpoint (.pt) written by edgekd")
    p.add_argument("--config", default=None, help="KD config JSON file (type 'kd')")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a KD config field (JSON value), e.g. --set epochs=3 --set alpha.kind='\"cosine\"'")
    p.add_argument("--seed", type=int, default=0, help="seed of the data split, initialization and batch order")
    p.add_argument("--out", required=True, help="checkpoint path to write")
    p.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="STEPS",
                   help="also checkpoint every STEPS optimizer steps inside an epoch (0: once per epoch)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (under torchrun, cuda means this rank's GPU)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="bf16: autocast forward passes")
    p.add_argument("--deterministic", action="store_true",
                   help="torch.use_deterministic_algorithms(True): bit-identical reruns and resumes")
    p.set_defaults(func=run)
    return p


def apply_overrides(config_dict: dict, overrides) -> dict:
    """``key=value`` or ``a.b=value`` (JSON value; bare strings allowed) into a config dict."""
    from ..errors import ConfigError

    out = json.loads(json.dumps(config_dict))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"--set {key}: {part!r} is not a nested config")
            node = node[part]
        node[parts[-1]] = value
    return out


def run(args):
    import torch

    from ..checkpoint import load_checkpoint
    from ..config import load_config
    from ..data import load_dataset
    from ..distill import KDConfig, distill, evaluate
    from ..errors import CheckpointError, ConfigError
    from ..models import ModelConfig, build_model

    data = load_dataset(args.dataset, seed=args.seed, path=args.data)
    base = load_config(args.config) if args.config else KDConfig(seed=args.seed)
    if not isinstance(base, KDConfig):
        raise ConfigError(f"{args.config}: expected a config of type 'kd', got {base._type_name!r}")
    config = Config.from_dict(apply_overrides(base.to_dict(), args.set))
    teacher = None
    if args.teacher:
        state = load_checkpoint(args.teacher)
        teacher = build_model(ModelConfig.from_dict(state.get("model_config"), where=f"{args.teacher}: model_config"))
        try:
            teacher.load_state_dict(state["model"])
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise CheckpointError(f"{args.teacher}: the weights do not fit the model_config stored with them ({first})") from None
    else:
        config = config.replace(alpha=config.alpha.replace(start=0.0, end=0.0), curriculum=None)
    try:
        options = json.loads(args.model_options)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--model-options: not valid JSON ({err.msg})") from None
    model_config = ModelConfig(args.model, data.input_shape, data.num_classes, options)
    if args.deterministic:
        torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)
    student = build_model(model_config)
    distill(teacher, student, data, config, checkpoint=args.out, resume=args.resume, model_config=model_config,
            device=args.device, checkpoint_every=args.checkpoint_every, precision=args.precision)
    from ..distributed import is_main_process, teardown

    if is_main_process():  # under torchrun only rank 0 reports
        print(f"test accuracy {evaluate(student, data.test, device=args.device):.4f}; checkpoint {args.out}")
    teardown()
