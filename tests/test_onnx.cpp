// ONNX: PyTorch's exports read by headnet, headnet's exports read back bit for bit, the Graph
// container's gradients, the protobuf codec, and refusals of bad files and unsupported models.
// (The ONNX checker and onnxruntime read headnet's files in tests/onnx_interop_test.sh.)
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <headnet/headnet.hpp>

#include "gradient_check.hpp"
#include "onnx_models.hpp"

using namespace headnet;
using namespace headnet_test;

namespace {

std::string temp_path(const std::string& name) { return "onnx_test_" + name; }

std::vector<unsigned char> read_onnx_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<unsigned char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

Tensor<float> random_input(const Shape& shape, std::uint64_t seed) {
  Generator gen(seed);
  Tensor<float> x(shape);
  for (float& v : x) v = float(gen.uniform(-1, 1));
  return x;
}

Shape with_batch(Shape s, std::int64_t n) {
  s[0] = n;
  return s;
}

// A graph input or output of shape (N, channels, 8, 8).
io::onnx::ValueInfoProto image_value(const std::string& name, std::int64_t channels) {
  io::onnx::ValueInfoProto v;
  v.name = name;
  v.elem_type = io::onnx::FLOAT;
  v.dims = {-1, channels, 8, 8};
  v.dim_params = {"N", "", "", ""};
  v.has_shape = true;
  return v;
}

// A model of one node, written with the library's own encoder, for refusal tests.
std::string one_node_model(const std::string& op, std::vector<io::onnx::AttributeProto> attributes = {}) {
  io::onnx::ModelProto m;
  m.ir_version = 8;
  m.opset_import = {{"", 17}};
  m.has_graph = true;
  io::onnx::NodeProto n;
  n.op_type = op;
  n.name = "the_node";
  n.inputs = {"x"};
  n.outputs = {"y"};
  n.attributes = std::move(attributes);
  m.graph.nodes = {n};
  m.graph.inputs = {image_value("x", 3)};
  m.graph.outputs = {image_value("y", 3)};
  return io::onnx::encode_model(m);
}

Graph<float> parse(const std::string& bytes) {
  return io::parse_onnx<float>(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), "test.onnx");
}

}  // namespace

TEST_CASE("ONNX: models exported by PyTorch's torch.onnx give PyTorch's logits", "[onnx][pytorch]") {
  for (const std::string name : {"torch_tutorial", "torch_resnet"}) {
    INFO(name);
    const std::string base = std::string(HEADNET_TEST_DATA_DIR) + "/onnx/" + name;
    std::ifstream in(base + ".json");
    REQUIRE(in);
    const auto ref = nlohmann::json::parse(in);
    const auto dims = ref["input_shape"].get<std::vector<std::int64_t>>();
    REQUIRE(dims.size() == 4);
    const Shape shape{dims[0], dims[1], dims[2], dims[3]};
    const Tensor<float> x = Tensor<float>::from_vector(shape, ref["input"].get<std::vector<float>>());
    const auto expected = ref["logits"].get<std::vector<double>>();

    io::OnnxInfo info;
    Graph<float> model = io::load_onnx<float>(base + ".onnx", &info);
    CHECK(info.input_name == "input");
    CHECK(info.output_name == "logits");
    CHECK(info.input_shape == with_batch(shape, 1));
    const Tensor<float> y = model.forward(x);
    REQUIRE(y.numel() == std::int64_t(expected.size()));
    double worst = 0;
    for (std::size_t i = 0; i < expected.size(); ++i)
      worst = std::max(worst, std::fabs(double(y.data()[i]) - expected[i]) / std::max(1.0, std::fabs(expected[i])));
    INFO("worst relative difference " << worst);
    CHECK(worst < 1e-4);
  }
  // PyTorch's names survive: the tutorial network's state dict is PyTorch's.
  Graph<float> tutorial = io::load_onnx<float>(std::string(HEADNET_TEST_DATA_DIR) + "/onnx/torch_tutorial.onnx");
  std::vector<std::string> keys;
  for (const auto& e : tutorial.state_dict()) keys.push_back(e.name);
  CHECK(keys == std::vector<std::string>{"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias",
                                         "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"});
  // Nodes named with dots (torch's folded "/layer1/conv1/Conv" becomes "layer1.conv1") are still
  // addressable by their dotted parameter names.
  Graph<float> resnet = io::load_onnx<float>(std::string(HEADNET_TEST_DATA_DIR) + "/onnx/torch_resnet.onnx");
  bool found = false;
  for (const auto& p : resnet.parameters()) found = found || p.name == "layer1.conv1.weight";
  REQUIRE(found);
  const std::size_t before = resnet.trainable_parameters().size();
  resnet.set_requires_grad("layer1.conv1.weight", false);
  CHECK(resnet.trainable_parameters().size() == before - 1);
}

TEST_CASE("ONNX: headnet -> ONNX -> headnet gives bit-identical eval outputs and the same state dict", "[onnx]") {
  for (const auto& c : onnx_cases()) {
    INFO(c.name);
    Sequential<float> net = c.make();
    randomise(net, 7);
    const std::string path = temp_path(c.name + ".onnx");
    io::save_onnx(path, net, c.input);
    io::OnnxInfo info;
    Graph<float> back = io::load_onnx<float>(path, &info);
    CHECK(info.producer_name == "headnet");
    CHECK(info.input_shape == c.input);
    for (std::int64_t batch : {1, 3}) {
      const Tensor<float> x = random_input(with_batch(c.input, batch), 100 + batch);
      const Tensor<float> expected = net.forward(x).clone();
      const Tensor<float> got = back.forward(x);
      REQUIRE(got.shape() == expected.shape());
      CHECK(std::memcmp(got.data(), expected.data(), sizeof(float) * std::size_t(got.numel())) == 0);
    }
    // Parameters and buffers come back under the same names with the same values (BatchNorm's
    // num_batches_tracked is not in ONNX: it reads back as 0; a BatchNorm without affine
    // parameters is written with ones and zeros, which read back as parameters).
    auto original = net.state_dict();
    auto loaded = back.state_dict();
    for (const auto& e : original) {
      if (e.name.find("num_batches_tracked") != std::string::npos) continue;
      const auto* other = loaded.find(e.name);
      INFO(e.name);
      REQUIRE(other != nullptr);
      CHECK(std::memcmp(other->value.data(), e.value.data(), sizeof(float) * std::size_t(e.value.numel())) == 0);
    }
    std::remove(path.c_str());
  }
}

TEST_CASE("ONNX: an imported model trains further", "[onnx]") {
  Sequential<float> net = every_layer_net();
  randomise(net, 3);
  io::save_onnx(temp_path("train.onnx"), net, Shape{1, 3, 13, 14});
  Graph<float> model = io::load_onnx<float>(temp_path("train.onnx"));
  model.train();
  const Tensor<float> x = random_input({8, 3, 13, 14}, 5);
  std::vector<std::int64_t> labels{0, 1, 2, 3, 4, 5, 6, 7};
  Tensor<float> dy({8, 10});
  SGD<float> sgd(model.trainable_parameters(), SGDOptions(0.05).momentum(0.9));
  double first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    // The net ends in LogSoftmax: the NLL loss is -mean(log p[label]), dy = -1/N at the labels.
    const Tensor<float> logp = model.forward(x);
    double loss = 0;
    dy.zero();
    for (int i = 0; i < 8; ++i) {
      loss -= logp.data()[i * 10 + labels[i]] / 8;
      dy.data()[i * 10 + labels[i]] = -1.0f / 8;
    }
    if (step == 0) first = loss;
    last = loss;
    model.zero_grad();
    model.backward(dy);
    sgd.step();
  }
  INFO("loss " << first << " -> " << last);
  CHECK(last < 0.5 * first);
  std::remove(temp_path("train.onnx").c_str());
}

TEST_CASE("Graph backward matches finite differences: shared values, sums, a value used three times", "[gradient][onnx]") {
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    INFO(threads << " threads");
    Graph<double> g;
    const int conv = g.add("conv", std::make_unique<Conv2d<double>>(2, 3, 3, 1, 1), g.input());
    const int act = g.add("act", std::make_unique<Tanh<double>>(), conv);
    const int branch = g.add("branch", std::make_unique<Conv2d<double>>(3, 3, 1, 1, 0), act);
    const int sum1 = g.add_sum("sum1", branch, act);       // act used twice
    const int sum2 = g.add_sum("sum2", sum1, act);         // and a third time
    const int skip = g.add("skip", std::make_unique<Conv2d<double>>(2, 3, 3, 1, 1), g.input());  // input used twice
    const int sum3 = g.add_sum("sum3", sum2, skip);
    g.add("unused", std::make_unique<Sigmoid<double>>(), act);  // not on the way to the output
    g.set_output(sum3);
    Generator gen(21);
    g.reset_parameters(gen);
    const auto report = check_gradients(g, random_tensor({2, 2, 5, 4}, gen), gen);
    INFO("worst " << report.worst_error << " in " << report.worst_name);
    CHECK_FALSE(report.some_gradient_all_zero);
    CHECK(report.worst_error < 1e-6);
    std::vector<std::string> names;
    for (auto& p : g.parameters()) names.push_back(p.name);
    CHECK(names == std::vector<std::string>{"conv.weight", "conv.bias", "branch.weight", "branch.bias", "skip.weight", "skip.bias"});
  }
  set_num_threads(2);
}

TEST_CASE("Graph refuses bad wiring and names the node", "[onnx][errors]") {
  Graph<float> g;
  CHECK_THROWS_WITH(g.add("a", std::make_unique<ReLU<float>>(), 5), Catch::Contains("'a' reads value 5, which does not exist"));
  const int a = g.add("a", std::make_unique<Linear<float>>(4, 3), g.input());
  CHECK_THROWS_WITH(g.add("a", std::make_unique<ReLU<float>>(), a), Catch::Contains("duplicate node name 'a'"));
  g.add_sum("sum", a, g.input());
  CHECK_THROWS_WITH(g.output_shape(Shape{2, 4}), Catch::Contains("node 'sum' (Add): the inputs' shapes (2, 3) and (2, 4) differ"));
}

TEST_CASE("Protobuf codec: varints, negative integers, packed fields, fixed floats", "[onnx][protobuf]") {
  io::ProtoWriter w;
  w.int_field(1, 300);
  w.int_field(2, -1);
  w.int_field(3, std::int64_t(1) << 62);
  w.float_field(4, 1.5f);
  w.packed_ints(5, {1, -2, 1 << 20});
  w.packed_floats(6, {0.25f, -3.0f});
  w.bytes_field(7, std::string("conv1.weight"));
  const std::string bytes = w.bytes();
  CHECK(static_cast<unsigned char>(bytes[0]) == 0x08);  // field 1, varint
  CHECK(static_cast<unsigned char>(bytes[1]) == 0xac);  // 300 = 0xac 0x02
  CHECK(static_cast<unsigned char>(bytes[2]) == 0x02);
  io::ProtoReader r(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), "test");
  io::ProtoField f;
  std::vector<std::int64_t> ints;
  std::vector<float> floats;
  std::vector<std::int64_t> scalars;
  float f4 = 0;
  std::string text;
  while (r.next(f)) {
    if (f.number <= 3) scalars.push_back(f.as_int());
    if (f.number == 4) f4 = f.as_float();
    if (f.number == 5) r.append_ints(f, ints);
    if (f.number == 6) r.append_floats(f, floats);
    if (f.number == 7) text = f.as_string();
  }
  CHECK(scalars == std::vector<std::int64_t>{300, -1, std::int64_t(1) << 62});
  CHECK(f4 == 1.5f);
  CHECK(ints == std::vector<std::int64_t>{1, -2, 1 << 20});
  CHECK(floats == std::vector<float>{0.25f, -3.0f});
  CHECK(text == "conv1.weight");
  // A length beyond the end is refused.
  const std::string bad = std::string("\x3a\x05" "ab", 4);
  io::ProtoReader rb(reinterpret_cast<const unsigned char*>(bad.data()), bad.size(), "bad.onnx");
  CHECK_THROWS_WITH(rb.next(f), Catch::Contains("bad.onnx: field 7 claims 5 bytes, only 2 remain"));
}

TEST_CASE("ONNX: unsupported operators and attributes are refused, naming the node", "[onnx][errors]") {
  CHECK_THROWS_WITH(parse(one_node_model("Resize")),
                    Catch::Contains("test.onnx: node 'the_node' (Resize): operator not supported; supported: Conv"));
  CHECK_THROWS_WITH(parse(one_node_model("Relu", {io::detail::attr_int("bogus", 1)})),
                    Catch::Contains("node 'the_node' (Relu): attribute 'bogus' is not supported"));
  CHECK_THROWS_WITH(parse(one_node_model("MaxPool", {io::detail::attr_ints("kernel_shape", {2, 3})})),
                    Catch::Contains("node 'the_node' (MaxPool): needs a square 2-D kernel_shape"));
  CHECK_THROWS_WITH(parse(one_node_model("MaxPool", {io::detail::attr_ints("kernel_shape", {2, 2}),
                                                     io::detail::attr_ints("dilations", {2, 2})})),
                    Catch::Contains("dilated windows are not supported"));
  CHECK_THROWS_AS(parse(one_node_model("Erf")), DataError);
  CHECK_NOTHROW(parse(one_node_model("Relu")));
  // A file that does not exist, an empty one, one that is not ONNX.
  CHECK_THROWS_WITH(io::load_onnx<float>("no_such_model.onnx"), Catch::Contains("no_such_model.onnx: cannot open"));
  { std::ofstream(temp_path("empty.onnx")); }
  CHECK_THROWS_WITH(io::load_onnx<float>(temp_path("empty.onnx")), Catch::Contains("the file is empty"));
  CHECK_THROWS_AS(parse("this is not a protobuf message at all"), DataError);
  std::remove(temp_path("empty.onnx").c_str());
}

namespace {

// A small model, written field by field: Conv(x, w) -> Relu, with `edit` applied to its parts.
std::string conv_model(const std::function<void(io::onnx::ModelProto&)>& edit) {
  io::onnx::ModelProto m;
  m.ir_version = 8;
  m.opset_import = {{"", 17}};
  m.has_graph = true;
  io::onnx::TensorProto w;
  w.name = "w";
  w.data_type = io::onnx::FLOAT;
  w.dims = {4, 3, 3, 3};
  w.floats.assign(108, 0.1);
  m.graph.initializers = {w};
  io::onnx::NodeProto conv;
  conv.op_type = "Conv";
  conv.name = "conv";
  conv.inputs = {"x", "w"};
  conv.outputs = {"h"};
  conv.attributes = {io::detail::attr_ints("kernel_shape", {3, 3}), io::detail::attr_ints("pads", {1, 1, 1, 1})};
  io::onnx::NodeProto relu;
  relu.op_type = "Relu";
  relu.name = "relu";
  relu.inputs = {"h"};
  relu.outputs = {"y"};
  m.graph.nodes = {conv, relu};
  m.graph.inputs = {image_value("x", 3)};
  m.graph.outputs = {image_value("y", 4)};
  edit(m);
  return io::onnx::encode_model(m);
}

}  // namespace

TEST_CASE("ONNX: malformed files each get a clear error", "[onnx][errors]") {
  // The unedited model reads and runs.
  Graph<float> ok = parse(conv_model([](io::onnx::ModelProto&) {}));
  CHECK(ok.forward(random_input({2, 3, 8, 8}, 1)).shape() == Shape{2, 4, 8, 8});

  SECTION("truncated: a length past the end") {
    const std::string bytes = conv_model([](io::onnx::ModelProto&) {});
    CHECK_THROWS_WITH(parse(bytes.substr(0, bytes.size() - 40)), Catch::Contains("test.onnx: ModelProto: field 7 claims"));
  }
  SECTION("wrong wire type") {
    io::ProtoWriter w;
    w.int_field(1, 8);
    w.int_field(7, 5);  // the graph as a varint
    CHECK_THROWS_WITH(parse(w.bytes()), Catch::Contains("test.onnx: ModelProto: field graph (7) has wire type 0, expected 2"));
  }
  SECTION("huge dims") {
    const std::string bytes = conv_model([](io::onnx::ModelProto& m) { m.graph.initializers[0].dims = {std::int64_t(1) << 40, std::int64_t(1) << 40, 3, 3}; });
    CHECK_THROWS_WITH(parse(bytes), Catch::Contains("tensor 'w' has too many elements"));
    const std::string big = conv_model([](io::onnx::ModelProto& m) { m.graph.initializers[0].dims = {std::int64_t(1) << 30, 3, 3, 3}; });
    CHECK_THROWS_WITH(parse(big), Catch::Contains("tensor 'w' has 432 bytes of raw_data, its shape needs 115964116992"));
  }
  SECTION("negative dims") {
    const std::string bytes = conv_model([](io::onnx::ModelProto& m) { m.graph.initializers[0].dims = {-4, 3, 3, 3}; });
    CHECK_THROWS_WITH(parse(bytes), Catch::Contains("tensor 'w' has a negative dimension -4"));
  }
  SECTION("missing initialiser") {
    const std::string bytes = conv_model([](io::onnx::ModelProto& m) { m.graph.initializers.clear(); });
    CHECK_THROWS_WITH(parse(bytes), Catch::Contains("node 'conv' (Conv): weight 'w' must be an initializer or a Constant"));
  }
  SECTION("a dangling input") {
    const std::string bytes = conv_model([](io::onnx::ModelProto& m) { m.graph.nodes[1].inputs = {"nowhere"}; });
    CHECK_THROWS_WITH(parse(bytes), Catch::Contains("node 'relu' (Relu): input 'nowhere' is not computed by an earlier node"));
  }
  SECTION("a cycle") {
    const std::string bytes = conv_model([](io::onnx::ModelProto& m) { m.graph.nodes[0].inputs[0] = "y"; });
    CHECK_THROWS_WITH(parse(bytes), Catch::Contains("node 'conv' (Conv): input 'y' is not computed by an earlier node"));
  }
  SECTION("an output no node computes") {
    const std::string bytes = conv_model([](io::onnx::ModelProto& m) { m.graph.outputs[0].name = "z"; });
    CHECK_THROWS_WITH(parse(bytes), Catch::Contains("test.onnx: output 'z' is not computed by any node"));
  }
  SECTION("a weight that does not fit the input") {
    const std::string bytes = conv_model([](io::onnx::ModelProto& m) { m.graph.inputs[0].dims = {-1, 5, 8, 8}; });
    CHECK_THROWS_WITH(parse(bytes), Catch::Contains("node 'conv' (Conv): weight (4, 3, 3, 3) with group 1 does not fit input (1, 5, 8, 8)"));
  }
  SECTION("external data, several inputs, an integer input") {
    CHECK_THROWS_WITH(parse(conv_model([](io::onnx::ModelProto& m) { m.graph.initializers[0].external = true; })),
                      Catch::Contains("initializer 'w' keeps its data in an external file"));
    CHECK_THROWS_WITH(parse(conv_model([](io::onnx::ModelProto& m) { m.graph.inputs.push_back(m.graph.inputs[0]); m.graph.inputs[1].name = "x2"; })),
                      Catch::Contains("the graph has several inputs ('x', 'x2')"));
    CHECK_THROWS_WITH(parse(conv_model([](io::onnx::ModelProto& m) { m.graph.inputs[0].elem_type = io::onnx::INT64; })),
                      Catch::Contains("input 'x' has element type INT64, headnet reads FLOAT"));
  }
}

TEST_CASE("ONNX: a layer with no ONNX form is refused when writing, naming it", "[onnx][errors]") {
  struct Odd : Layer<float> {
    std::string type() const override { return "Odd"; }
    Shape output_shape(const Shape& x) const override { return x; }
    Tensor<float> forward(const Tensor<float>& x) override { return x; }
    Tensor<float> backward(const Tensor<float>& dy) override { return dy; }
  };
  Sequential<float> net;
  net.add("fc", Linear<float>(4, 4));
  net.add("odd", Odd());
  CHECK_THROWS_WITH(io::save_onnx(temp_path("odd.onnx"), net, Shape{1, 4}),
                    Catch::Contains("save_onnx: layer 'odd' (Odd) has no ONNX form"));
  CHECK_THROWS_AS(io::save_onnx(temp_path("odd.onnx"), net, Shape{1, 5}), ShapeError);
  CHECK_FALSE(std::ifstream(temp_path("odd.onnx")).good());  // nothing written
}

TEST_CASE("ONNX: every truncation and many corruptions of a file are refused or read, never a crash", "[onnx][errors]") {
  Sequential<float> net = every_layer_net();
  randomise(net, 9);
  io::save_onnx(temp_path("corrupt.onnx"), net, Shape{1, 3, 13, 14});
  const auto bytes = read_onnx_bytes(temp_path("corrupt.onnx"));
  REQUIRE(bytes.size() > 1000);
  int refused = 0, read = 0;
  auto attempt = [&](const std::vector<unsigned char>& b) {
    try {
      Graph<float> g = io::parse_onnx<float>(b.data(), b.size(), "corrupt.onnx");
      g.forward(random_input({2, 3, 13, 14}, 1));  // what loads must run
      ++read;
    } catch (const DataError& e) {
      CHECK(std::string(e.what()).rfind("corrupt.onnx: ", 0) == 0);
      ++refused;
    }
  };
  for (std::size_t cut = 0; cut < bytes.size(); cut += std::max<std::size_t>(1, bytes.size() / 700)) {
    attempt(std::vector<unsigned char>(bytes.begin(), bytes.begin() + std::ptrdiff_t(cut)));
  }
  Generator gen(17);
  for (int trial = 0; trial < 400; ++trial) {
    auto b = bytes;
    const int flips = 1 + int(gen.uniform() * 4);
    for (int k = 0; k < flips; ++k) b[std::size_t(gen.uniform() * double(b.size() - 1))] ^= std::uint8_t(1 + gen.uniform() * 254);
    attempt(b);
  }
  INFO(refused << " refused, " << read << " read");
  CHECK(refused > 300);
  std::remove(temp_path("corrupt.onnx").c_str());
}
