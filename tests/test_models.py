import pytest
import torch

from autoopt_lab.models import CifarLeNet, MnistCNN, build_model, model_name_for


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_the_paper():
    assert n_params(build_model("mnist_cnn")) == 21_840
    assert n_params(build_model("cifar_lenet")) == 62_006


def test_per_tensor_shapes():
    shapes = {n: tuple(p.shape) for n, p in MnistCNN().named_parameters()}
    assert shapes == {
        "conv1.weight": (10, 1, 5, 5),
        "conv1.bias": (10,),
        "conv2.weight": (20, 10, 5, 5),
        "conv2.bias": (20,),
        "fc1.weight": (50, 320),
        "fc1.bias": (50,),
        "fc2.weight": (10, 50),
        "fc2.bias": (10,),
    }
    shapes = {n: tuple(p.shape) for n, p in CifarLeNet().named_parameters()}
    assert shapes["fc1.weight"] == (120, 400)
    assert shapes["fc3.weight"] == (10, 84)


@pytest.mark.parametrize(
    "name,shape", [("mnist_cnn", (3, 1, 28, 28)), ("cifar_lenet", (3, 3, 32, 32))]
)
def test_outputs_are_log_probabilities(name, shape):
    model = build_model(name).eval()
    with torch.no_grad():
        out = model(torch.randn(shape))
    assert out.shape == (3, 10)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(3))


def test_dropout_only_in_train_mode():
    torch.manual_seed(0)
    model = build_model("mnist_cnn")
    x = torch.randn(4, 1, 28, 28)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))
    model.train()
    with torch.no_grad():
        assert not torch.allclose(model(x), model(x))


def test_model_for_dataset_and_bad_names():
    assert model_name_for("mnist") == "mnist_cnn"
    assert model_name_for("FashionMNIST") == "mnist_cnn"
    assert model_name_for("cifar10") == "cifar_lenet"
    with pytest.raises(ValueError, match="allowed: mnist_cnn, cifar_lenet"):
        build_model("resnet")
    with pytest.raises(ValueError, match="allowed: mnist, fashion-mnist, cifar10"):
        model_name_for("imagenet")
