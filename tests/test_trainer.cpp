// The library's Trainer: bit-exact resume from a checkpoint taken mid-epoch (AdamW, a schedule, a
// shuffled loader, BatchNorm buffers), refusal of corrupt and mismatched checkpoints without
// touching the model or the file, the NaN guard naming a nested layer, and the logging callbacks.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <headnet/data/cifar10.hpp>
#include <headnet/headnet.hpp>

#include "fake_images.hpp"

using namespace headnet;

namespace {

data::ImageSet trainer_images(int count) { return headnet_test::fake_images(count, 99); }

// (N, 3, 32, 32) -> (N, 10): conv, BatchNorm, ReLU, a residual block, pooling, dropout, linear.
Sequential<float> small_model(int width = 4) {
  Sequential<float> body;
  body.add("conv", Conv2d<float>(width, width, 3, 1, 1, false));
  body.add("bn", BatchNorm2d<float>(width));
  Sequential<float> net;
  net.add("stem", Conv2d<float>(3, width, 3, 2, 1, false));
  net.add("bn", BatchNorm2d<float>(width));
  net.add(ReLU<float>());
  Sequential<float> layer;
  layer.add(Residual<float>(std::move(body)));
  layer.add(ReLU<float>());
  net.add("layer1", std::move(layer));
  net.add(MaxPool2d<float>(16));
  net.add(Flatten<float>());
  net.add("drop", Dropout<float>(0.25));  // its random stream must be checkpointed too
  net.add("fc", Linear<float>(width, 10));
  return net;
}

std::string trainer_scratch(const std::string& name) {
  const std::string folder = std::filesystem::temp_directory_path().string() + "/headnet_test_trainer";
  std::filesystem::create_directories(folder);
  return folder + "/" + name;
}

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// One run's pieces, built the same way every time.
struct Run {
  Sequential<float> model;
  data::BatchLoader loader;
  AdamW<float> optimizer;
  CosineAnnealingLR<float> schedule;
  train::Trainer trainer;
  Run(const data::ImageSet& set, std::uint64_t seed, const train::TrainerOptions& options, int width = 4)
      : model((manual_seed(seed), small_model(width))),
        loader(set, 8, true, 5),
        optimizer(model.parameters(), AdamWOptions(0.01)),
        schedule(optimizer, 3 * loader.batches_per_epoch()),
        trainer(model, optimizer, loader, options) {
    trainer.set_scheduler(&schedule);
  }
};

}  // namespace

TEST_CASE("Trainer resumes bit-exactly from a mid-epoch checkpoint", "[trainer][resume]") {
  // AdamW, a cosine schedule, a shuffled loader, BatchNorm buffers and Dropout's random stream.
  const data::ImageSet set = trainer_images(60);  // 8 batches an epoch, the last one of 4
  train::TrainerOptions options;
  options.epochs = 3;
  options.progress = false;
  options.checkpoint_path = trainer_scratch("a.safetensors");
  options.checkpoint_every = 3;
  Run a(set, 1, options);
  const std::string snapshot = trainer_scratch("snapshot.safetensors");
  a.trainer.on_step = [&](const train::StepInfo& s) {
    if (s.global_step == 13) std::filesystem::copy_file(options.checkpoint_path, snapshot,
                                                        std::filesystem::copy_options::overwrite_existing);
  };
  a.trainer.fit();

  options.checkpoint_path = trainer_scratch("b.safetensors");
  Run b(set, 2, options);  // other initial weights: the checkpoint must replace them all
  b.trainer.load_checkpoint(snapshot);
  CHECK(b.trainer.state().epoch == 1);  // global step 12 = epoch 2 (index 1), step 4
  CHECK(b.trainer.state().step == 4);
  CHECK(b.optimizer.steps() == 12);
  CHECK(b.schedule.last_epoch() == 12);
  b.trainer.fit();

  const auto sa = a.model.state_dict(), sb = b.model.state_dict();
  for (const auto& e : sa) {
    INFO(e.name);
    CHECK(std::equal(e.value.begin(), e.value.end(), sb.at(e.name).begin()));
  }
  CHECK(sa.at("bn.num_batches_tracked").data()[0] == 24.0f);
  CHECK(a.trainer.state().loss_curve == b.trainer.state().loss_curve);
  CHECK(a.optimizer.lr(0) == b.optimizer.lr(0));
}

TEST_CASE("Trainer refuses corrupt and mismatched checkpoints, leaving model and file as they were",
          "[trainer][errors]") {
  const data::ImageSet set = trainer_images(24);
  train::TrainerOptions options;
  options.epochs = 1;
  options.progress = false;
  options.checkpoint_path = trainer_scratch("good.safetensors");
  Run a(set, 1, options);
  a.trainer.fit();
  const std::string good = bytes_of(options.checkpoint_path);

  SECTION("another architecture") {
    options.checkpoint_path.clear();
    Run wide(set, 3, options, 6);
    const auto before = wide.model.state_dict().clone();
    try {
      wide.trainer.load_checkpoint(trainer_scratch("good.safetensors"));
      FAIL("no error");
    } catch (const DataError& e) {
      CHECK_THAT(e.what(), Catch::StartsWith("checkpoint '" + trainer_scratch("good.safetensors") +
                                             "': Error(s) in loading state_dict for Sequential:"));
      CHECK_THAT(e.what(), Catch::Contains("size mismatch for stem.weight: copying a param with shape (4, 3, 3, 3) "
                                           "from checkpoint, the shape in current model is (6, 3, 3, 3)."));
    }
    for (const auto& e : before) CHECK(std::equal(e.value.begin(), e.value.end(), wide.model.state_dict().at(e.name).begin()));
    CHECK(bytes_of(trainer_scratch("good.safetensors")) == good);
  }
  SECTION("another optimiser") {
    manual_seed(1);
    auto model = small_model();
    data::BatchLoader loader(set, 8, true, 5);
    SGD<float> sgd(model.parameters(), SGDOptions(0.1));
    train::Trainer t(model, sgd, loader);
    CHECK_THROWS_WITH(t.load_checkpoint(trainer_scratch("good.safetensors")),
                      "checkpoint '" + trainer_scratch("good.safetensors") + "': it was written with the AdamW optimiser, this run uses SGD");
  }
  SECTION("no schedule where the run had one") {
    manual_seed(1);
    auto model = small_model();
    data::BatchLoader loader(set, 8, true, 5);
    AdamW<float> adamw(model.parameters());
    train::Trainer t(model, adamw, loader);
    CHECK_THROWS_WITH(t.load_checkpoint(trainer_scratch("good.safetensors")),
                      Catch::Contains("it has a learning-rate schedule (CosineAnnealingLR), this run has none"));
  }
  SECTION("a truncated file") {
    const std::string cut = trainer_scratch("cut.safetensors");
    std::ofstream(cut, std::ios::binary) << good.substr(0, good.size() / 2);
    const std::string cut_bytes = bytes_of(cut);
    options.checkpoint_path.clear();
    Run b(set, 2, options);
    const auto before = b.model.state_dict().clone();
    CHECK_THROWS_AS(b.trainer.load_checkpoint(cut), DataError);
    CHECK_THROWS_WITH(b.trainer.load_checkpoint(cut), Catch::Contains("'" + cut + "'"));
    for (const auto& e : before) CHECK(std::equal(e.value.begin(), e.value.end(), b.model.state_dict().at(e.name).begin()));
    CHECK(bytes_of(cut) == cut_bytes);
  }
  SECTION("a weights file that is not a checkpoint") {
    const std::string weights = trainer_scratch("weights.safetensors");
    io::save_safetensors(weights, a.model.state_dict());
    CHECK_THROWS_WITH(a.trainer.load_checkpoint(weights),
                      "'" + weights + "' is not a headnet checkpoint (its metadata has no trainer state)");
  }
}

TEST_CASE("Trainer's NaN guard names the step and the first non-finite layer inside blocks", "[trainer][errors]") {
  const data::ImageSet set = trainer_images(16);
  train::TrainerOptions options;
  options.epochs = 1;
  options.progress = false;
  Run run(set, 1, options);
  for (float& w : run.model.state_dict().at("layer1.0.conv.weight")) w = 3e37f;  // finite, but its output is not
  try {
    run.trainer.fit();
    FAIL("no error");
  } catch (const NumericError& e) {
    CHECK(std::string(e.what()) ==
          "training diverged at epoch 1, step 1: the loss is NaN; layer 'layer1.0.conv' (Conv2d) is the first to "
          "output a NaN or infinity (try a smaller learning rate)");
  }
  run.model.state_dict().at("fc.bias").data()[3] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(run.trainer.fit(), Catch::Contains("parameter fc.bias holds a NaN or infinity"));
}

TEST_CASE("Trainer's callbacks: loss lines per window, restarting each epoch, and the loss curve", "[trainer]") {
  const data::ImageSet set = trainer_images(40);  // 5 batches of 8
  train::TrainerOptions options;
  options.epochs = 2;
  options.progress = false;
  options.log_every = 2;
  options.curve_points_per_epoch = 5;
  Run run(set, 1, options);
  std::vector<std::pair<int, std::int64_t>> logged;
  std::vector<float> losses;
  run.trainer.on_step = [&](const train::StepInfo& s) { losses.push_back(s.loss); };
  run.trainer.on_log = [&](int epoch, std::int64_t step, double mean) {
    logged.push_back({epoch, step});
    const std::size_t end = std::size_t(epoch * 5 + step);
    CHECK(mean == Approx((double(losses[end - 2]) + double(losses[end - 1])) / 2));
  };
  int epochs_ended = 0;
  run.trainer.on_epoch_end = [&](int, const train::TrainerState&) { ++epochs_ended; };
  run.trainer.fit();
  CHECK(logged == std::vector<std::pair<int, std::int64_t>>{{0, 2}, {0, 4}, {1, 2}, {1, 4}});
  CHECK(epochs_ended == 2);
  CHECK(run.trainer.state().loss_curve.size() == 10);
  CHECK(run.trainer.state().images_seen == 80);
}
