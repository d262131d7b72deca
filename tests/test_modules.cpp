// Modules: layers that contain layers, buffers, state dicts with PyTorch's names, strict loading,
// frozen parameters, Residual, and the walks (train/eval, reset, input-gradient flags).
#include <catch2/catch.hpp>

#include <sstream>

#include "gradient_check.hpp"
#include "module_reference.hpp"
#include "residual_model.hpp"

using namespace headnet;
using namespace headnet_test;

TEST_CASE("The residual model's state_dict has PyTorch's keys, shapes and order", "[modules][state_dict][pytorch]") {
  auto net = residual_test_model<float>();
  const auto dict = net.state_dict();
  const auto& expected = module_reference()["residual_state_dict"];
  REQUIRE(dict.size() == expected.size());
  std::size_t i = 0;
  for (const auto& e : dict) {
    const auto& want = expected[i++];
    INFO("entry " << i - 1 << ": " << e.name);
    CHECK(e.name == want["key"].get<std::string>());
    std::vector<std::int64_t> shape;
    for (int d = 0; d < e.value.rank(); ++d) shape.push_back(e.value.size(d));
    CHECK(shape == want["shape"].get<std::vector<std::int64_t>>());
    CHECK(e.integer == (want["dtype"].get<std::string>() == "int64"));
  }
  CHECK(dict.contains("layer1.0.bn1.running_var"));
  CHECK(dict.contains("layer2.0.shortcut.1.num_batches_tracked"));
  // parameters() lists the trainable subset in the same order; buffers() the rest.
  std::size_t params = net.parameters().size(), buffers = net.buffers().size();
  CHECK(params + buffers == dict.size());
  CHECK(net.parameters()[0].name == "conv1.weight");
  CHECK(net.buffers()[0].name == "bn1.running_mean");
}

TEST_CASE("load_state_dict is strict, lists every problem as PyTorch does, and changes nothing on error",
          "[modules][state_dict][errors]") {
  auto net = residual_test_model<double>();
  auto other = residual_test_model<double>();
  other.reset_parameters(std::uint64_t(7));
  const auto before = net.state_dict().clone();

  SECTION("a good dict is copied, buffers included") {
    other.state_dict().at("bn1.running_var").data()[0] = 3.5;
    net.load_state_dict(other.state_dict());
    for (const auto& e : other.state_dict()) {
      INFO(e.name);
      CHECK(std::equal(e.value.begin(), e.value.end(), net.state_dict().at(e.name).begin()));
    }
    CHECK(net.state_dict().at("bn1.running_var").data()[0] == 3.5);
  }
  SECTION("missing, unexpected and wrong-shaped keys") {
    StateDict<double> broken;
    for (const auto& e : other.state_dict()) {
      if (e.name == "layer1.0.bn1.running_var") continue;
      if (e.name == "fc.weight") {
        broken.add(e.name, Tensor<double>({10, 15}));
        continue;
      }
      broken.add(e.name, e.value, e.integer);
    }
    broken.add("layer3.conv.weight", Tensor<double>({1}));
    try {
      net.load_state_dict(broken);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(std::string(e.what()) ==
            "Error(s) in loading state_dict for Sequential:"
            "\n\tUnexpected key(s) in state_dict: \"layer3.conv.weight\"."
            "\n\tMissing key(s) in state_dict: \"layer1.0.bn1.running_var\"."
            "\n\tsize mismatch for fc.weight: copying a param with shape (10, 15) from checkpoint, the shape in current "
            "model is (10, 16).");
    }
    for (const auto& e : before) CHECK(std::equal(e.value.begin(), e.value.end(), net.state_dict().at(e.name).begin()));
  }
  SECTION("strict = false reports what it skipped, and still refuses a wrong shape") {
    StateDict<double> partial;
    partial.add("conv1.weight", other.state_dict().at("conv1.weight"));
    partial.add("extra", Tensor<double>({2}));
    const LoadResult r = net.load_state_dict(partial, false);
    CHECK(r.unexpected_keys == std::vector<std::string>{"extra"});
    CHECK(r.missing_keys.size() == net.state_dict().size() - 1);
    CHECK(std::equal(net.state_dict().at("conv1.weight").begin(), net.state_dict().at("conv1.weight").end(),
                     other.state_dict().at("conv1.weight").begin()));
    StateDict<double> wrong;
    wrong.add("fc.bias", Tensor<double>({3}));
    CHECK_THROWS_WITH(net.load_state_dict(wrong, false), Catch::Contains("size mismatch for fc.bias"));
  }
}

TEST_CASE("train/eval, reset and input-gradient flags reach every descendant", "[modules]") {
  auto net = residual_test_model<float>();
  net.eval();
  for (auto& m : net.named_modules()) {
    INFO(m.first);
    CHECK_FALSE(m.second->is_training());
  }
  net.train();
  for (auto& m : net.named_modules()) CHECK(m.second->is_training());

  // Names of modules are PyTorch's dotted paths; the residual body is transparent.
  std::vector<std::string> names;
  for (auto& m : net.named_modules()) names.push_back(m.first);
  CHECK(std::find(names.begin(), names.end(), "layer2.0.shortcut.0") != names.end());
  CHECK(std::find(names.begin(), names.end(), "layer2.0.conv1") != names.end());

  // reset_parameters reaches nested layers and resets BatchNorm's statistics.
  net.state_dict().at("layer2.0.shortcut.1.running_var").fill(5);
  net.reset_parameters(std::uint64_t(1));
  const auto a = net.state_dict().clone();
  CHECK(a.at("layer2.0.shortcut.1.running_var").data()[0] == 1.0f);
  net.reset_parameters(std::uint64_t(2));
  CHECK(net.state_dict().at("layer2.0.conv2.weight").data()[0] != a.at("layer2.0.conv2.weight").data()[0]);
  net.reset_parameters(std::uint64_t(1));
  for (const auto& e : a) CHECK(std::equal(e.value.begin(), e.value.end(), net.state_dict().at(e.name).begin()));

  // The root skips dx; everything inside must still pass it on.
  net.set_needs_input_grad(false);
  for (auto& m : net.named_modules()) {
    INFO(m.first);
    const bool first_in_chain = m.first == "" || m.first == "conv1";
    CHECK(m.second->needs_input_grad() == !first_in_chain);
  }
}

TEST_CASE("A branch built from a fresh Sequential returns its input gradient", "[modules]") {
  Sequential<double> branch;  // built on its own, as a user writes a block
  branch.add(Linear<double>(3, 4));
  branch.add(ReLU<double>());
  Tensor<double> x({2, 3}, 0.5);
  const Tensor<double> y = branch.forward(x);
  const Tensor<double> dx = branch.backward(Tensor<double>(y.shape(), 1.0));
  CHECK(dx.shape() == x.shape());
}

TEST_CASE("Frozen parameters get no gradient and no update", "[modules][requires_grad]") {
  manual_seed(3);
  auto net = residual_test_model<float>();
  net.set_requires_grad("conv1.weight", false);
  net.set_requires_grad("layer2.0.bn2.weight", false);  // BatchNorm: bias trained, weight frozen
  CHECK_THROWS_WITH(net.set_requires_grad("layer9.weight", false),
                    "Sequential: set_requires_grad: no parameter named 'layer9.weight'");
  CHECK(net.trainable_parameters().size() == net.parameters().size() - 2);
  for (const auto& p : net.parameters())
    CHECK(p.requires_grad == (p.name != "conv1.weight" && p.name != "layer2.0.bn2.weight"));

  SGD<float> sgd(net.parameters(), SGDOptions(0.1).momentum(0.9));  // skips the frozen ones by itself
  CHECK(sgd.parameters().size() == net.parameters().size() - 2);
  const auto before = net.state_dict().clone();
  Generator gen(5);
  Tensor<float> x({4, 3, 8, 8});
  for (float& v : x) v = float(gen.uniform(-1, 1));
  std::vector<std::int32_t> labels{1, 2, 3, 4};
  CrossEntropyLoss<float> loss;
  for (int step = 0; step < 3; ++step) {
    sgd.zero_grad();
    loss.forward(net.forward(x), labels);
    net.backward(loss.backward());
    sgd.step();
  }
  for (const auto& p : net.parameters()) {
    INFO(p.name);
    const Tensor<float>& old = before.at(p.name);
    const bool changed = !std::equal(old.begin(), old.end(), p.value.begin());
    CHECK(changed == p.requires_grad);
    if (!p.requires_grad) {
      for (float g : p.grad) CHECK(g == 0.0f);  // not computed at all
    }
  }
  net.set_requires_grad(false);
  CHECK(net.trainable_parameters().empty());
  net.set_requires_grad(true);
  CHECK(net.trainable_parameters().size() == net.parameters().size());
}

TEST_CASE("Residual backward matches finite differences through both branches and nested blocks",
          "[gradient][residual]") {
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    INFO(threads << " threads");
    SECTION("identity shortcut") {
      Sequential<double> body;
      body.add(Conv2d<double>(3, 3, 3, 1, 1, false));  // a bias before BatchNorm has no gradient at all
      body.add(BatchNorm2d<double>(3));
      body.add(Conv2d<double>(3, 3, 3, 1, 1, false));
      Residual<double> block(std::move(body));
      Generator gen(11);
      block.reset_parameters(gen);
      const auto report = check_gradients(block, random_tensor({2, 3, 5, 7}, gen), gen);
      INFO("worst " << report.worst_error << " in " << report.worst_name);
      CHECK_FALSE(report.some_gradient_all_zero);
      CHECK(report.worst_error < 1e-6);
    }
    SECTION("strided 1x1 conv + BatchNorm shortcut") {
      Sequential<double> body;
      body.add("conv1", Conv2d<double>(2, 4, 3, 2, 1, false));
      body.add("bn1", BatchNorm2d<double>(4));
      Sequential<double> shortcut;
      shortcut.add(Conv2d<double>(2, 4, 1, 2, 0, false));
      shortcut.add(BatchNorm2d<double>(4));
      Residual<double> block(std::move(body), std::move(shortcut));
      Generator gen(12);
      block.reset_parameters(gen);
      for (auto& p : block.parameters())
        if (p.name.find("bn") != std::string::npos || p.name.find("shortcut.1") != std::string::npos)
          for (double& v : p.value) v = gen.uniform(0.5, 1.5);
      const auto report = check_gradients(block, random_tensor({3, 2, 7, 5}, gen), gen);
      INFO("worst " << report.worst_error << " in " << report.worst_name);
      CHECK_FALSE(report.some_gradient_all_zero);
      CHECK(report.worst_error < 1e-6);
    }
    SECTION("nested: a residual inside a residual's body, inside a Sequential") {
      Sequential<double> inner_body;
      inner_body.add(Linear<double>(6, 6));
      Sequential<double> outer_body;
      outer_body.add("fc1", Linear<double>(6, 6));
      outer_body.add("inner", Residual<double>(std::move(inner_body)));
      outer_body.add("fc2", Linear<double>(6, 6));
      Sequential<double> net;
      net.add("block", Residual<double>(std::move(outer_body), Linear<double>(6, 6)));
      net.add("head", Linear<double>(6, 3));
      Generator gen(13);
      net.reset_parameters(gen);
      const auto report = check_gradients(net, random_tensor({3, 6}, gen), gen);
      INFO("worst " << report.worst_error << " in " << report.worst_name);
      CHECK_FALSE(report.some_gradient_all_zero);
      CHECK(report.worst_error < 1e-6);
      std::vector<std::string> names;
      for (auto& p : net.parameters()) names.push_back(p.name);
      CHECK(names == std::vector<std::string>{"block.fc1.weight", "block.fc1.bias", "block.inner.0.weight",
                                              "block.inner.0.bias", "block.fc2.weight", "block.fc2.bias",
                                              "block.shortcut.weight", "block.shortcut.bias", "head.weight", "head.bias"});
    }
  }
  set_num_threads(2);
}

TEST_CASE("Residual refuses branches whose shapes differ", "[residual][errors]") {
  Residual<float> block(Conv2d<float>(3, 4, 3, 1, 1));
  CHECK_THROWS_WITH(block.forward(Tensor<float>({1, 3, 5, 5})),
                    "Residual: the body's output (1, 4, 5, 5) and the identity shortcut's (1, 3, 5, 5) differ: give a "
                    "shortcut that maps the input to (1, 4, 5, 5)");
  Sequential<float> body;
  body.add("shortcut", ReLU<float>());
  CHECK_THROWS_WITH(Residual<float>(std::move(body), ReLU<float>()),
                    "Residual: the body already has a layer named 'shortcut': choose another shortcut_name");
}
