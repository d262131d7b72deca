// models::resnet9 and models::resnet18_cifar for tests/models_interop.py: for each, the initial
// state dict (NAME_initial.safetensors), three batches and their labels (NAME_batches.safetensors),
// the losses of three SGD steps (lr 0.02, momentum 0.9) in training mode, the state dict after them
// (NAME_trained.safetensors) and the eval-mode logits of the first batch with it (in
// NAME_results.safetensors). In double precision: in float, a rounding difference of 1e-7 can
// flip a near-tie of a max-pool and send a gradient elsewhere, which after three steps moves the
// loss by more than 1e-4 on one machine and not on another; the float path's eval-mode logits are
// compared too (NAME_float_*).
//   models_interop_fixture FOLDER
#include <cstdio>
#include <string>

#include <headnet/headnet.hpp>
#include <headnet/models/resnet.hpp>

int main(int argc, char** argv) {
  using namespace headnet;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s FOLDER\n", argv[0]);
    return 2;
  }
  const std::string folder = argv[1];
  try {
    for (const std::string name : {"resnet9", "resnet18_cifar"}) {
      using T = double;
      manual_seed(11);
      auto net = name == "resnet9" ? models::resnet9<T>() : models::resnet18_cifar<T>();
      io::save_safetensors(folder + "/" + name + "_initial.safetensors", net.state_dict());
      Generator gen(12);
      StateDict<T> batches;
      std::vector<std::vector<std::int32_t>> labels(3, std::vector<std::int32_t>(4));
      Tensor<T> label_values({3, 4});
      for (int b = 0; b < 3; ++b) {
        Tensor<T> x({4, 3, 32, 32});
        for (T& v : x) v = gen.uniform(-1, 1);
        for (int i = 0; i < 4; ++i) {
          labels[std::size_t(b)][std::size_t(i)] = std::int32_t(gen.below(10));
          label_values.data()[b * 4 + i] = T(labels[std::size_t(b)][std::size_t(i)]);
        }
        batches.add("x" + std::to_string(b), x);
      }
      batches.add("labels", label_values);
      io::save_safetensors(folder + "/" + name + "_batches.safetensors", batches);

      SGD<T> sgd(net.parameters(), SGDOptions(0.02).momentum(0.9));
      CrossEntropyLoss<T> criterion;
      Tensor<T> losses({3});
      for (int b = 0; b < 3; ++b) {
        sgd.zero_grad();
        losses.data()[b] = criterion.forward(net.forward(batches.at("x" + std::to_string(b))), labels[std::size_t(b)]);
        net.backward(criterion.backward());
        sgd.step();
      }
      io::save_safetensors(folder + "/" + name + "_trained.safetensors", net.state_dict());
      net.eval();
      StateDict<T> results;
      results.add("losses", losses);
      results.add("logits", net.forward(batches.at("x0")));
      io::save_safetensors(folder + "/" + name + "_results.safetensors", results);

      // The float model (the direct kernels) with the trained weights: eval-mode logits.
      auto net32 = name == "resnet9" ? models::resnet9<float>() : models::resnet18_cifar<float>();
      net32.load_state_dict(io::load_safetensors<float>(folder + "/" + name + "_trained.safetensors"));
      net32.eval();
      StateDict<float> results32;
      results32.add("logits", net32.forward(io::load_safetensors<float>(folder + "/" + name + "_batches.safetensors").at("x0")));
      io::save_safetensors(folder + "/" + name + "_float_results.safetensors", results32);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "models_interop_fixture: %s\n", e.what());
    return 1;
  }
}
