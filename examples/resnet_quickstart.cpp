// resnet-quickstart: the README's program. A small residual network with BatchNorm, trained on
// CIFAR-10 by the library's Trainer with AdamW and a cosine schedule, saved, reloaded, evaluated.
//   resnet-quickstart DATA_FOLDER [EPOCHS]
#include <cstdio>
#include <string>
#include <headnet/data/cifar10.hpp>
#include <headnet/headnet.hpp>
using namespace headnet;

Sequential<float> block(int in, int out, int stride) {  // conv-bn-relu-conv-bn + shortcut, then relu
  Sequential<float> body, shortcut, b;
  body.add("conv1", Conv2d<float>(in, out, 3, stride, 1, false));
  body.add("bn1", BatchNorm2d<float>(out));
  body.add("relu", ReLU<float>());
  body.add("conv2", Conv2d<float>(out, out, 3, 1, 1, false));
  body.add("bn2", BatchNorm2d<float>(out));
  shortcut.add(Conv2d<float>(in, out, 1, stride, 0, false));
  shortcut.add(BatchNorm2d<float>(out));
  b.add(stride == 1 && in == out ? Residual<float>(std::move(body)) : Residual<float>(std::move(body), std::move(shortcut)));
  b.add(ReLU<float>());
  return b;
}

Sequential<float> resnet() {
  Sequential<float> net;
  net.add("stem", block(3, 32, 1));
  net.add("layer1", block(32, 64, 2));   // 16x16
  net.add("layer2", block(64, 128, 2));  // 8x8
  net.add("pool", MaxPool2d<float>(8));
  net.add("flatten", Flatten<float>());
  net.add("fc", Linear<float>(128, 10));
  return net;
}

int main(int argc, char** argv) {
  headnet::bound_openmp_spinning(argv);  // a fair share of a busy machine (core/parallel.hpp)
  if (argc < 2) return std::fprintf(stderr, "usage: %s DATA_FOLDER [EPOCHS]\n", argv[0]), 2;
  const auto train_set = data::read_cifar10_train(argv[1]), test_set = data::read_cifar10_test(argv[1]);
  const int epochs = argc > 2 ? std::stoi(argv[2]) : 5;
  manual_seed(0);
  auto net = resnet();
  data::BatchLoader loader(train_set, 64, /*shuffle=*/true, /*seed=*/0), test(test_set, 500, false, 0);
  AdamW<float> adamw(net.parameters(), AdamWOptions(2e-3).weight_decay(5e-4));
  CosineAnnealingLR<float> cosine(adamw, epochs * loader.batches_per_epoch());
  train::TrainerOptions options;
  options.epochs = epochs;
  train::Trainer trainer(net, adamw, loader, options);
  trainer.set_scheduler(&cosine);
  trainer.set_validation(&test);  // accuracy after each epoch, on the progress line
  trainer.fit();

  io::save_safetensors("resnet.safetensors", net.state_dict());  // PyTorch's names, BatchNorm statistics included
  auto reloaded = resnet();
  reloaded.load_state_dict(io::load_safetensors<float>("resnet.safetensors"));
  std::printf("test accuracy %.2f%% (reloaded: %.2f%%)\n", train::evaluate(net, test).accuracy,
              train::evaluate(reloaded, test).accuracy);
}
