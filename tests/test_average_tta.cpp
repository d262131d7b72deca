// ModelAverage (lookahead and EMA over parameters and BatchNorm buffers, checkpointed by the
// Trainer) and test-time augmentation, against values computed here by other means.
#include <catch2/catch.hpp>

#include <filesystem>

#include <headnet/data/cifar10.hpp>
#include <headnet/headnet.hpp>

#include "fake_images.hpp"

using namespace headnet;

namespace {
data::ImageSet tta_images(int count) { return headnet_test::fake_images(count, 8); }
}  // namespace

TEST_CASE("ModelAverage averages parameters and float buffers, copies counts, writes back", "[average]") {
  Sequential<double> net;
  net.add("conv", Conv2d<double>(2, 3, 3));
  net.add("bn", BatchNorm2d<double>(3));
  train::ModelAverage<double> average(net);
  const auto before = net.state_dict().clone();
  // Move the model: a training-mode forward updates BatchNorm's statistics and count.
  Generator gen(1);
  Tensor<double> x({2, 2, 5, 5});
  for (double& v : x) v = gen.uniform(-1, 1);
  for (double& v : net.state_dict().at("conv.weight")) v += 0.5;
  net.forward(x);
  const auto after = net.state_dict().clone();
  average.update(0.8);
  for (const auto& e : average.average()) {
    INFO(e.name);
    for (std::int64_t i = 0; i < e.value.numel(); ++i) {
      const double want = e.integer ? after.at(e.name).data()[i]
                                    : 0.8 * before.at(e.name).data()[i] + 0.2 * after.at(e.name).data()[i];
      CHECK(e.value.data()[i] == Approx(want).margin(1e-13));
    }
  }
  CHECK(average.average().at("bn.num_batches_tracked").data()[0] == 1.0);
  average.copy_to_model();
  for (const auto& e : average.average()) CHECK(std::equal(e.value.begin(), e.value.end(), net.state_dict().at(e.name).begin()));
}

TEST_CASE("A lookahead average travels in Trainer checkpoints", "[average][trainer]") {
  const data::ImageSet set = tta_images(16);
  manual_seed(2);
  Sequential<float> net;
  net.add("conv", Conv2d<float>(3, 4, 3, 2, 1));
  net.add("bn", BatchNorm2d<float>(4));
  net.add(Flatten<float>());
  net.add("fc", Linear<float>(4 * 16 * 16, 10));
  data::BatchLoader loader(set, 8, true, 1);
  SGD<float> sgd(net.parameters(), SGDOptions(0.01));
  train::ModelAverage<float> lookahead(net);
  train::TrainerOptions options;
  options.epochs = 1;
  options.progress = false;
  train::Trainer trainer(net, sgd, loader, options);
  trainer.checkpoint_extra("lookahead", lookahead.average());
  trainer.on_step = [&](const train::StepInfo&) { lookahead.update(0.5), lookahead.copy_to_model(); };
  trainer.fit();
  const std::string path = (std::filesystem::temp_directory_path() / "headnet_lookahead.safetensors").string();
  trainer.save_checkpoint(path);
  const auto saved = lookahead.average().clone();
  lookahead.update(0.0);  // now equal to the model, whatever it was
  for (float& v : net.state_dict().at("fc.bias")) v += 1.0f;
  lookahead.update(0.0);
  trainer.load_checkpoint(path);
  for (const auto& e : saved) CHECK(std::equal(e.value.begin(), e.value.end(), lookahead.average().at(e.name).begin()));
}

TEST_CASE("TTA averages the logits of mirrored and translated views with the recipe's weights", "[tta]") {
  // A linear model: f(view) = W view + b, so TTA's logits are W (the weighted mean view) + b,
  // which this test builds by hand from shifted and mirrored pixels.
  const data::ImageSet set = tta_images(12);
  manual_seed(3);
  Sequential<float> net;
  net.add(Flatten<float>());
  net.add("fc", Linear<float>(3072, 10));
  data::BatchLoader loader(set, 5, false, 0);
  for (int level : {0, 1, 2}) {
    const train::Evaluation e = train::evaluate_tta(net, loader, level);
    loader.start_epoch();
    Tensor<float> images;
    std::vector<std::int32_t> labels;
    std::int64_t correct = 0;
    auto reflect = [](int p) { return p < 0 ? -p : p > 31 ? 62 - p : p; };
    while (loader.next(images, labels)) {
      Tensor<float> mean_view(images.shape());
      for (std::int64_t n = 0; n < images.size(0); ++n)
        for (int c = 0; c < 3; ++c)
          for (int i = 0; i < 32; ++i)
            for (int j = 0; j < 32; ++j) {
              auto px = [&](int d, bool mirror) { return images.at(n, c, reflect(i + d), reflect((mirror ? 31 - j : j) + d)); };
              float v = px(0, false);
              if (level == 1) v = 0.5f * (px(0, false) + px(0, true));
              if (level == 2)
                v = 0.25f * (px(0, false) + px(0, true)) +
                    0.125f * (px(-1, false) + px(-1, true) + px(1, false) + px(1, true));
              mean_view.at(n, c, i, j) = v;
            }
      const Tensor<float> logits = net.forward(mean_view);
      for (std::int64_t n = 0; n < logits.size(0); ++n) {
        const float* row = logits.data() + n * 10;
        correct += std::max_element(row, row + 10) - row == labels[std::size_t(n)];
      }
    }
    INFO("level " << level);
    CHECK(e.samples == 12);
    CHECK(e.accuracy == Approx(100.0 * double(correct) / 12));
  }
  CHECK(train::evaluate_tta(net, loader, 0).accuracy == train::evaluate(net, loader).accuracy);
  CHECK_THROWS_WITH(train::evaluate_tta(net, loader, 3), "evaluate_tta: level must be 0, 1 or 2, got 3");
}
