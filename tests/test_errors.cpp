// Every shape error a user can meet, with its message.
#include <catch2/catch.hpp>

#include <headnet/headnet.hpp>

using namespace headnet;

namespace {
Sequential<float> tutorial_net(int conv1 = 6) {
  Sequential<float> net;
  net.add("conv1", Conv2d<float>(3, conv1, 5));
  net.add(ReLU<float>());
  net.add(MaxPool2d<float>(2));
  net.add("conv2", Conv2d<float>(conv1, 16, 5));
  net.add(ReLU<float>());
  net.add(MaxPool2d<float>(2));
  net.add(Flatten<float>());
  net.add("fc1", Linear<float>(400, 120));
  return net;
}
}  // namespace

TEST_CASE("Sequential names the layer that cannot take its input", "[errors][sequential]") {
  auto net = tutorial_net();
  CHECK_THROWS_WITH(net.check({4, 3, 36, 36}),
                    "layer 7 'fc1' (Linear): expects 400 input features, got 576 (input (4, 576))");
  CHECK_THROWS_WITH(net.forward(Tensor<float>({2, 1, 32, 32})),
                    "layer 0 'conv1' (Conv2d): expects 3 input channels, got 1 (input (2, 1, 32, 32))");
  CHECK_THROWS_WITH(net.forward(Tensor<float>({2, 3, 32})),
                    "layer 0 'conv1' (Conv2d): expects input (N, C, H, W), got (2, 3, 32)");
  CHECK_THROWS_WITH(net.check({1, 3, 12, 12}),
                    "layer 3 'conv2' (Conv2d): input 4x4 with padding 0 is smaller than the 5x5 kernel");
  CHECK_THROWS_WITH(net.check({1, 3, 14, 14}),
                    "layer 5 (MaxPool2d): input 1x1 is smaller than the 2x2 window");
  CHECK(net.check({4, 3, 32, 32}) == Shape{4, 120});
}

TEST_CASE("Layers on their own name themselves", "[errors][layers]") {
  Linear<float> fc(400, 120);
  CHECK_THROWS_WITH(fc.forward(Tensor<float>({4, 16, 5, 5})),
                    "Linear: expects 400 input features, got 400 (input (4, 16, 5, 5)); it takes (N, features): "
                    "put a Flatten before it");
  CHECK_THROWS_WITH(fc.forward(Tensor<float>({4, 300})), "Linear: expects 400 input features, got 300 (input (4, 300))");
  Conv2d<float> conv(3, 6, 5);
  CHECK_THROWS_WITH(conv.backward(Tensor<float>({1, 6, 28, 28})),
                    "Conv2d: backward expects a gradient of shape (), got (1, 6, 28, 28) (was forward called?)");
  conv.forward(Tensor<float>({1, 3, 32, 32}));
  CHECK_THROWS_WITH(conv.backward(Tensor<float>({1, 6, 27, 28})),
                    "Conv2d: backward expects a gradient of shape (1, 6, 28, 28), got (1, 6, 27, 28)");
  MaxPool2d<float> pool(2);
  CHECK_THROWS_WITH(pool.forward(Tensor<float>({4, 10})), "MaxPool2d: expects input (N, C, H, W), got (4, 10)");
}

TEST_CASE("Impossible layer arguments are refused at construction", "[errors][layers]") {
  CHECK_THROWS_WITH(Conv2d<float>(0, 6, 5), "Conv2d: in_channels must be at least 1, got 0");
  CHECK_THROWS_WITH(Conv2d<float>(3, 0, 5), "Conv2d: out_channels must be at least 1, got 0");
  CHECK_THROWS_WITH(Conv2d<float>(3, 6, 0), "Conv2d: kernel_size must be at least 1, got 0");
  CHECK_THROWS_WITH(Conv2d<float>(3, 6, 5, 0), "Conv2d: stride must be at least 1, got 0");
  CHECK_THROWS_WITH(Conv2d<float>(3, 6, 5, 1, -1), "Conv2d: padding must be at least 0, got -1");
  CHECK_THROWS_WITH(Linear<float>(0, 10), "Linear: in_features must be at least 1, got 0");
  CHECK_THROWS_WITH(Linear<float>(10, -2), "Linear: out_features must be at least 1, got -2");
  CHECK_THROWS_WITH(MaxPool2d<float>(0), "MaxPool2d: kernel_size must be at least 1, got 0");
  CHECK_THROWS_WITH(MaxPool2d<float>(2, -1), "MaxPool2d: stride must be at least 1, got -1");
  CHECK_THROWS_WITH(Shape({1, 2, 3, 4, 5}), "Shape: at most 4 dimensions are supported, got 5");
}

TEST_CASE("Sequential refuses duplicate or dotted names", "[errors][sequential]") {
  Sequential<float> net;
  net.add("fc", Linear<float>(2, 2));
  CHECK_THROWS_WITH(net.add("fc", Linear<float>(2, 2)), "Sequential::add: duplicate layer name 'fc'");
  CHECK_THROWS_WITH(net.add("a.b", ReLU<float>()), "Sequential::add: layer name 'a.b' must not contain '.'");
  CHECK_THROWS_WITH(net.layer("nope"), "Sequential: no layer named 'nope'");
}

TEST_CASE("CrossEntropyLoss checks labels and shapes", "[errors][loss]") {
  CrossEntropyLoss<float> loss;
  Tensor<float> logits({2, 10});
  CHECK_THROWS_WITH(loss.forward(logits, std::vector<std::int32_t>{3, 10}),
                    "CrossEntropyLoss: label 10 of sample 1 is outside [0, 10)");
  CHECK_THROWS_WITH(loss.forward(logits, std::vector<std::int32_t>{-1, 0}),
                    "CrossEntropyLoss: label -1 of sample 0 is outside [0, 10)");
  CHECK_THROWS_WITH(loss.forward(logits, std::vector<std::int32_t>{1}),
                    "CrossEntropyLoss: 1 labels for logits (2, 10)");
  CHECK_THROWS_WITH(loss.forward(Tensor<float>({2, 10, 1, 1}), std::vector<std::int32_t>{1, 2}),
                    "CrossEntropyLoss: expects logits (N, classes), got (2, 10, 1, 1)");
  CHECK_THROWS_WITH(CrossEntropyLoss<float>().backward(), "CrossEntropyLoss: backward called before forward");
}

TEST_CASE("parameters() are named like PyTorch's state_dict", "[sequential]") {
  auto net = tutorial_net();
  std::vector<std::string> names;
  for (auto& p : net.parameters()) names.push_back(p.name);
  CHECK(names == std::vector<std::string>{"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight",
                                          "fc1.bias"});
  Sequential<float> unnamed;
  unnamed.add(Linear<float>(2, 3));
  CHECK(unnamed.parameters()[0].name == "0.weight");
  net.eval();
  CHECK_FALSE(net[0].is_training());
  net.train();
  CHECK(net[3].is_training());
}
