"""Optimizer state survives a save/load round trip without pickle."""
import torch

from refseg_ros.training.state import load_optimizer, save_optimizer


def _model_and_opt(seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW([{"params": model[0].parameters(), "lr": 1e-4},
                             {"params": model[2].parameters(), "lr": 1e-3}], weight_decay=1e-4)
    return model, opt


def _step(model, opt, x):
    opt.zero_grad()
    model(x).pow(2).mean().backward()
    opt.step()


def test_resumed_optimizer_continues_identically(tmp_path):
    x = torch.randn(16, 4)
    model_a, opt_a = _model_and_opt(0)
    for _ in range(3):
        _step(model_a, opt_a, x)
    save_optimizer(opt_a, tmp_path / "opt.safetensors", extra={"step": 3})
    model_b, opt_b = _model_and_opt(1)
    model_b.load_state_dict(model_a.state_dict())
    assert load_optimizer(opt_b, tmp_path / "opt.safetensors") == {"step": 3}
    for _ in range(2):
        _step(model_a, opt_a, x)
        _step(model_b, opt_b, x)
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    assert opt_b.param_groups[1]["lr"] == 1e-3
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))
