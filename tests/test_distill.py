import pytest
import torch
from torch import nn

from seg_common.engine import evaluate, train_one_epoch
from seg_common.losses import DistillationLoss, cross_entropy, distillation_loss, with_aux
from seg_common.models import Distiller, PSPNet


def tiny(width=4, classes=3):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.Dropout2d(0.5), nn.Conv2d(width, classes, 1))


def batches(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(2, 3, 8, 8, generator=g), torch.randint(0, 3, (2, 8, 8), generator=g)) for _ in range(n)]


def test_training_changes_the_student_only_and_the_teacher_stays_in_eval_mode():
    torch.manual_seed(0)
    student, teacher = tiny(), tiny(8)
    model = Distiller(student, teacher)
    before_teacher = {k: v.clone() for k, v in teacher.state_dict().items()}
    before_student = {k: v.clone() for k, v in student.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    train_one_epoch(model, batches(), opt, loss_fn=DistillationLoss(alpha=1.0, temperature=2.0), device="cpu",
                    progress=False)
    assert not teacher.training and model.student.training
    for k, v in teacher.state_dict().items():                 # weights and BatchNorm statistics
        assert torch.equal(v, before_teacher[k]), k
    assert any(not torch.equal(v, before_student[k]) for k, v in student.state_dict().items())


def test_the_loss_is_the_task_loss_plus_alpha_times_the_distillation_term():
    torch.manual_seed(0)
    x, y = batches(1)[0]
    model = Distiller(tiny(), tiny(8)).train()
    torch.manual_seed(1)
    student_out, teacher_out = model(x)
    loss_fn = DistillationLoss(alpha=0.5, temperature=3.0)
    expected = cross_entropy(student_out, y) + 0.5 * distillation_loss(student_out, teacher_out, y, 3.0)
    assert torch.allclose(loss_fn((student_out, teacher_out), y), expected)
    with torch.no_grad():
        teacher_again = model.teacher(x)                      # the teacher ran in eval mode: deterministic
    assert torch.equal(teacher_out, teacher_again)


def test_a_pspnet_student_keeps_its_aux_loss_and_eval_returns_the_student():
    torch.manual_seed(0)
    student, teacher = PSPNet(3, "resnet18"), PSPNet(3, "resnet18", aux=False)
    model = Distiller(student, teacher).train()
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    (main, aux), teacher_logits = model(x)
    loss_fn = DistillationLoss(with_aux(weight=0.4), alpha=1.0)
    expected = cross_entropy(main, y) + 0.4 * cross_entropy(aux, y) + distillation_loss(main, teacher_logits, y)
    assert torch.allclose(loss_fn(((main, aux), teacher_logits), y), expected)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), student.eval()(x))
    scores = evaluate(model, [(x, y)], 3, device="cpu", progress=False)
    assert 0 <= scores["miou"] <= 1


def test_negative_alpha_is_refused():
    with pytest.raises(ValueError, match="non-negative"):
        DistillationLoss(alpha=-0.1)


def test_a_missing_teacher_is_refused_with_a_clear_error():
    with pytest.raises(TypeError, match="teacher"):
        Distiller(tiny(), None)


def test_the_engine_records_each_part_of_a_composite_loss_and_they_add_up():
    torch.manual_seed(0)
    student, teacher = PSPNet(3, "resnet18"), PSPNet(3, "resnet18", aux=False)
    model = Distiller(student, teacher)
    data = [(torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))) for _ in range(2)]
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    stats = train_one_epoch(model, data, opt, loss_fn=DistillationLoss(with_aux(weight=0.4), alpha=0.5),
                            device="cpu", progress=False)
    parts = stats.parts
    assert set(parts) == {"main", "aux", "distill"}
    assert abs(stats.loss - (parts["main"] + 0.4 * parts["aux"] + 0.5 * parts["distill"])) < 1e-5
    plain = train_one_epoch(student, data, torch.optim.SGD(student.parameters(), lr=0.0), loss_fn=with_aux(),
                            device="cpu", progress=False).parts
    assert set(plain) == {"main", "aux"}
