// examples/cifar10_common.hpp: the tutorial's recipe, shared by cifar10-train and cifar10-sweep:
// finding the data, one training run on headnet's Trainer, and writing results and charts.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <headnet/data/cifar10.hpp>
#include <headnet/headnet.hpp>
#include <headnet/models/tutorial_net.hpp>
#include <headnet/viz/chart.hpp>

namespace cifar10 {

using headnet::data::Cifar10;
using headnet::data::ImageSet;
using headnet::train::Evaluation;

// The tutorial's hyperparameters (and the sweep's widths): one struct, printed into results.json.
struct Recipe {
  int epochs = 2;
  int batch = 4;
  double lr = 0.001;
  double momentum = 0.9;
  int conv1 = 6;
  int conv2 = 16;
  std::uint64_t seed = 0;
  int threads = 0;            // 0: all cores
  int print_every = 2000;     // mini-batches between the tutorial's loss lines
  int eval_batch = 1000;

  nlohmann::json to_json() const {
    return {{"epochs", epochs}, {"batch", batch}, {"lr", lr},     {"momentum", momentum},
            {"conv1", conv1},   {"conv2", conv2}, {"seed", seed}, {"threads", threads}};
  }
  static Recipe from_json(const nlohmann::json& j) {
    Recipe r;
    r.epochs = j.at("epochs");
    r.batch = j.at("batch");
    r.lr = j.at("lr");
    r.momentum = j.at("momentum");
    r.conv1 = j.at("conv1");
    r.conv2 = j.at("conv2");
    r.seed = j.at("seed");
    r.threads = j.at("threads");
    return r;
  }
};

struct RunResult {
  Recipe recipe;
  std::vector<std::pair<double, double>> loss_curve;  // (epoch as a fraction, mean loss since the last point)
  Evaluation test;
  double train_seconds = 0;
  double images_per_second = 0;
};

// How one run reports and checkpoints.
struct RunOptions {
  std::function<void(const std::string&)> log;  // the tutorial's loss lines; may be empty
  bool progress = true;
  std::string progress_prefix;
  std::string checkpoint_path;      // empty: no checkpoints
  std::int64_t checkpoint_every = 2000;
  std::int64_t kill_at_step = 0;    // testing only
  std::string resume_from;          // a checkpoint to continue from
};

// A folder with the six .bin files, or one holding cifar-10-batches-bin/. Throws with advice.
inline std::string find_data_folder(const std::string& given) {
  namespace fs = std::filesystem;
  for (const std::string& candidate : {given, given + "/cifar-10-batches-bin"}) {
    if (fs::exists(candidate + "/data_batch_1.bin")) return candidate;
  }
  throw headnet::DataError("no CIFAR-10 data in '" + given +
                           "': expected data_batch_1.bin ... data_batch_5.bin and test_batch.bin there or in its "
                           "cifar-10-batches-bin/ folder. Run scripts/get_cifar10.sh to download (or unpack) them.");
}

inline Evaluation evaluate(headnet::Layer<float>& net, const ImageSet& set, int batch) {
  headnet::data::BatchLoader loader(set, batch, false, 0);
  return headnet::train::evaluate(net, loader);
}

// The recipe stored in a checkpoint (to build the network before loading it).
inline Recipe checkpoint_recipe(const std::string& path) {
  const auto metadata = headnet::train::Trainer::checkpoint_metadata_of(path);
  if (!metadata.count("headnet_checkpoint") || !metadata.count("recipe")) {
    throw headnet::DataError("'" + path + "' is not a headnet checkpoint of cifar10-train (its metadata lacks a recipe)");
  }
  try {
    return Recipe::from_json(nlohmann::json::parse(metadata.at("recipe")));
  } catch (const nlohmann::json::exception& e) {
    throw headnet::DataError("checkpoint '" + path + "': malformed recipe: " + e.what());
  }
}

// One run: SGD with the recipe's learning rate and momentum, batches shuffled from the recipe's
// seed, the tutorial's loss line every print_every steps; then the test set.
inline RunResult train_and_evaluate(const Recipe& recipe, const ImageSet& train_set, const ImageSet& test,
                                    headnet::Sequential<float>& net, const RunOptions& run = RunOptions()) {
  headnet::SGD<float> sgd(net.parameters(), headnet::SGDOptions(recipe.lr).momentum(recipe.momentum));
  headnet::data::BatchLoader loader(train_set, recipe.batch, true, recipe.seed);
  headnet::train::TrainerOptions options;
  options.epochs = recipe.epochs;
  options.log_every = recipe.print_every;
  options.progress = run.progress;
  options.progress_prefix = run.progress_prefix;
  options.checkpoint_path = run.checkpoint_path;
  options.checkpoint_every = run.checkpoint_every;
  options.debug_kill_at_step = run.kill_at_step;
  headnet::train::Trainer trainer(net, sgd, loader, options);
  trainer.checkpoint_metadata = {{"recipe", recipe.to_json().dump()}};
  trainer.on_log = [&](int epoch, std::int64_t step, double mean_loss) {
    char line[64];
    std::snprintf(line, sizeof line, "[%d, %5lld] loss: %.3f", epoch + 1, (long long)step, mean_loss);
    if (run.log) run.log(line);
  };
  if (!run.resume_from.empty()) {
    trainer.load_checkpoint(run.resume_from);
    if (run.log)
      run.log("Resuming " + run.resume_from + " at epoch " + std::to_string(trainer.state().epoch + 1) + ", step " +
              std::to_string(trainer.state().step));
  }
  trainer.fit();
  RunResult result;
  result.recipe = recipe;
  result.loss_curve = trainer.state().loss_curve;
  result.train_seconds = trainer.state().seconds;
  result.images_per_second = trainer.images_per_second();
  result.test = evaluate(net, test, recipe.eval_batch);
  return result;
}

inline std::vector<std::string> class_names() {
  return std::vector<std::string>(Cifar10::class_names().begin(), Cifar10::class_names().end());
}

inline nlohmann::json evaluation_json(const Evaluation& e) {
  nlohmann::json per_class = nlohmann::json::object();
  for (int c = 0; c < 10; ++c) per_class[class_names()[std::size_t(c)]] = e.class_accuracy[std::size_t(c)];
  return {{"test_accuracy", e.accuracy}, {"class_accuracy", per_class}, {"confusion_matrix", e.confusion}};
}

inline nlohmann::json run_json(const RunResult& r) {
  nlohmann::json j = evaluation_json(r.test);
  j["config"] = r.recipe.to_json();
  j["loss_curve"] = nlohmann::json::array();
  for (const auto& point : r.loss_curve) j["loss_curve"].push_back({{"epoch", point.first}, {"loss", point.second}});
  j["train_seconds"] = r.train_seconds;
  j["images_per_second"] = r.images_per_second;
  j["headnet_version"] = HEADNET_VERSION_STRING;
  return j;
}

// The three charts of one run: per-class accuracy, training loss, confusion matrix.
inline void draw_run_charts(const std::string& folder, const RunResult& r, const std::string& name) {
  using namespace headnet::viz;
  bar_chart(folder + "/class_accuracy.png",
            "Per-class test accuracy, " + name + " (overall " + fixed(r.test.accuracy, 2) + "%)", class_names(),
            r.test.class_accuracy, "accuracy (%)", 100);
  LineSeries loss{"training loss", {}, {}};
  for (const auto& p : r.loss_curve) loss.x.push_back(p.first), loss.y.push_back(p.second);
  line_chart(folder + "/loss.png", "Training loss, " + name, "epoch", "cross-entropy loss", {loss});
  heatmap(folder + "/confusion.png", "Confusion matrix, " + name, class_names(), r.test.confusion, "true class",
          "predicted class");
}

inline void write_text_atomically(const std::string& path, const std::string& text) {
  headnet::io::write_file_atomically(path, text);
}

}  // namespace cifar10
