import os
import random

import numpy as np
import pytest
import torch

from slem.train.checkpoint import atomic_torch_save, load_checkpoint, restore_training_state, save_checkpoint
from slem.train.distributed import DataOrder, DistInfo
from slem.train.ema import EMA
from slem.train.metrics import MetricsLogger, plot_learning_curve, read_metrics
from slem.train.status import write_status


def _setup(seed=0):
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002
    random.seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1)
    return model, opt, sched, EMA(model, 0.9)


def _train(model, opt, sched, ema, order, steps):
    for _ in range(steps):
        ids = order.next_batch()
        # data and noise depend on the batch and on every RNG, so a badly restored state shows up
        x = torch.tensor([[i, i * 0.5, 1.0] for i in ids], dtype=torch.float32) + 0.01 * torch.randn(
            len(ids), 3
        )
        x = x + float(np.random.rand()) + random.random()  # noqa: NPY002
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        opt.step()
        ema.update(model)
        sched.step(float(loss.detach()))


def test_exact_resume_of_tiny_module(tmp_path):
    ref = _setup()
    order_ref = DataOrder(list(range(7)), 2, seed=3, info=DistInfo())
    _train(*ref, order_ref, 12)

    model, opt, sched, ema = _setup()
    order = DataOrder(list(range(7)), 2, seed=3, info=DistInfo())
    _train(model, opt, sched, ema, order, 5)
    save_checkpoint(
        tmp_path / "latest.pt",
        model=model,
        optimizer=opt,
        scheduler=sched,
        ema=ema,
        step=5,
        data_state=order.state_dict(),
        best_metric=1.0,
    )
    _train(model, opt, sched, ema, order, 3)  # wander off, then come back

    model2, opt2, sched2, ema2 = _setup(seed=99)
    state = load_checkpoint(tmp_path / "latest.pt")
    restore_training_state(state, model=model2, optimizer=opt2, scheduler=sched2, ema=ema2)
    order2 = DataOrder(list(range(7)), 2, seed=3, info=DistInfo())
    order2.load_state_dict(state["data_state"])
    _train(model2, opt2, sched2, ema2, order2, 7)
    for a, b in zip(ref[0].state_dict().values(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for k in ref[3].shadow:
        assert torch.equal(ref[3].shadow[k], ema2.shadow[k])


def test_data_order_deterministic_and_sharded():
    a = DataOrder(list(range(10)), 2, seed=1, info=DistInfo())
    b = DataOrder(list(range(10)), 2, seed=1, info=DistInfo())
    seq = [a.next_batch() for _ in range(12)]
    assert seq == [b.next_batch() for _ in range(12)]
    first_epoch = sorted(i for batch in seq[:5] for i in batch)
    assert first_epoch == list(range(10))
    assert seq[:5] != seq[5:10]  # a new permutation each epoch
    r0 = DataOrder(list(range(8)), 2, seed=1, info=DistInfo(0, 2))
    r1 = DataOrder(list(range(8)), 2, seed=1, info=DistInfo(1, 2))
    for _ in range(4):
        x, y = r0.next_batch(), r1.next_batch()
        assert len(x) == len(y) == 2 and not set(x) & set(y)
    with pytest.raises(RuntimeError, match="different seed"):
        DataOrder(list(range(8)), 2, seed=2, info=DistInfo()).load_state_dict(r0.state_dict())


def test_ema_average_and_apply():
    model = torch.nn.Linear(2, 1, bias=False)
    ema = EMA(model, 0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    before = ema.shadow["weight"].clone()
    ema.update(model)
    d = min(0.5, 2 / 11)
    torch.testing.assert_close(ema.shadow["weight"], d * before + (1 - d) * torch.ones_like(before))
    with ema.applied(model):
        torch.testing.assert_close(model.weight, ema.shadow["weight"])
    assert torch.all(model.weight == 1.0)
    with pytest.raises(ValueError):
        EMA(model, 1.0)


def test_atomic_save_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "x.pt"
    atomic_torch_save({"a": 1}, path)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_torch_save({"a": Boom()}, path)
    assert torch.load(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]


def test_metrics_logger_truncates_on_resume_and_plots(tmp_path):
    log = MetricsLogger(tmp_path)
    for step in range(1, 6):
        log.log("train", step, {"loss": 1.0 / step})
    log.log("validation", 5, {"loss": 0.3})
    log.close()
    MetricsLogger(tmp_path, resume_step=3).close()
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3]
    png = plot_learning_curve(tmp_path / "metrics.jsonl", tmp_path / "curve.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_status_file(tmp_path):
    import json

    write_status(tmp_path, "walltime", step=3)
    data = json.loads((tmp_path / "status.json").read_text())
    assert data["state"] == "walltime" and data["exit_code"] == 120 and data["step"] == 3
    with pytest.raises(ValueError):
        write_status(tmp_path, "exploded")
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
